"""Does a large statement parameter get through psycopg's pipeline mode?

The `eventsourcing` Postgres recorder inserts all events of one `save()` as a single array
parameter, inside `conn.pipeline()`. With psycopg 3.3.9 (binary, libpq 18) a parameter of about
1 MB never got sent: `pipeline.sync()` waited forever while the server, holding the event table's
EXCLUSIVE lock from the same transaction, waited for the rest of the message, and every other
writer then failed on its lock timeout. Publishing a show with ~2,000 seats is such a save. The
service now pins psycopg 3.2.10, which passes; the probe stays so a regression shows up as a
finding instead of a benchmark that hangs.

`python -m bench.probe DATABASE_URL SIZE` sends one SIZE-byte parameter in pipeline mode and
exits 0 when it comes back; the benchmark runs it in a child process with a time limit, so a hang
costs seconds and no lock.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg

# Above the ~1 MB at which psycopg 3.3.9 hangs, and quick to send when pipelines work.
PROBE_BYTES = 1_500_000


def main() -> None:
    """Send one large parameter through a pipeline and print how long it took."""
    url, size = sys.argv[1], int(sys.argv[2])
    started = time.monotonic()
    with psycopg.connect(url) as conn, conn.pipeline() as pipeline, conn.cursor() as curs:
        curs.execute("SELECT length(%s::bytea)", (b"x" * size,))
        pipeline.sync()
        row = curs.fetchone()
    assert row is not None and row[0] == size
    print(f"{size} bytes through a pipeline in {time.monotonic() - started:.3f}s", flush=True)  # noqa: T201


def pipeline_carries_large_parameters(
    database_url: str, size: int = PROBE_BYTES, timeout: float = 30
) -> tuple[bool, str]:
    """Run the probe in a child process: (whether it finished within `timeout`, what it said)."""
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.probe", database_url, str(size)],
            timeout=timeout,
            capture_output=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f}s"
    said = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()
    return done.returncode == 0, said[-1] if said else ""


if __name__ == "__main__":
    main()
