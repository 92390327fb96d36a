"""A development SMTP server that keeps every message it receives as a `.eml` file.

Run it as `python -m workers.mailsink --host 127.0.0.1 --port 1025 --dir .data/mail`. Each message
is written as `<dir>/<UTC timestamp>-<random id>.eml` holding the raw RFC 822 bytes exactly as
received, so tests and people can open it with `email.message_from_binary_file` or a mail client.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("workers.mailsink")


class MailDirHandler:
    """aiosmtpd handler storing each accepted message in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.directory / f"{stamp}-{secrets.token_hex(4)}.eml"
        # Write under a hidden name first: a reader polling for `*.eml` never sees half a message.
        partial = final.with_name(f".{final.name}.part")
        partial.write_bytes(raw)
        os.replace(partial, final)
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, directory: Path) -> None:
    """Accept mail on host:port until SIGTERM or SIGINT."""
    directory.mkdir(parents=True, exist_ok=True)
    handler = MailDirHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        # An explicit hostname keeps aiosmtpd from calling socket.getfqdn(), which can stall for
        # seconds on a machine without DNS.
        lambda: SMTP(handler, hostname="mailsink.localhost", enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("listening on %s:%d, storing messages in %s", host, port, directory)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m workers.mailsink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"), dest="directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mailsink %(levelname)s %(message)s")
    asyncio.run(serve(args.host, args.port, args.directory.resolve()))


if __name__ == "__main__":
    main()
