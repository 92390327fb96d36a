"""The development SMTP sink's directory, read like a mailbox: one `.eml` file per message."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def all(self) -> list[EmailMessage]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            with open(path, "rb") as handle:
                message = email.message_from_binary_file(handle, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found

    def messages_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.all() if m["To"].addresses[0].addr_spec == address]

    def wait(self, address: str, subject: str, count: int = 1, timeout: float = 20) -> EmailMessage:
        """The `count`-th message with this subject to `address`, once it has arrived."""
        return self.wait_for(address, lambda m: m["Subject"] == subject, count, timeout, what=repr(subject))

    def wait_for(
        self,
        address: str,
        match: Callable[[EmailMessage], bool],
        count: int = 1,
        timeout: float = 20,
        what: str = "matching",
    ) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while True:
            matching = [m for m in self.messages_to(address) if match(m)]
            if len(matching) >= count:
                return matching[count - 1]
            assert time.monotonic() < deadline, f"no mail {what} #{count} to {address}"
            time.sleep(0.1)


def body(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body((kind,))
    assert part is not None, f"no {kind} part"
    content: str = part.get_content()
    return content
