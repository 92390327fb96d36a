"""The supervisor of `ticketing run` with real child processes: a child that exits is started
again after a growing pause while the others run on, what a killed child started goes with it,
and a signal to the supervising process stops every child."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.claims_client import answers_challenge
from workers.processes import ROOT, Backoff, pid_alive, spawn, stop_process
from workers.supervisor import Liveness, Supervisor

PYTHON = sys.executable


def test_the_pause_doubles_up_to_the_cap_and_starts_over_after_a_long_run() -> None:
    backoff = Backoff(initial=0.5, cap=30.0, reset_after=60.0)
    assert [backoff.failed(1.0) for _ in range(9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.failed(61.0) == 0.5  # it had stayed up: a new failure
    assert backoff.failed(0.0) == 1.0


class Reports:
    """What the supervisor says, with when it said it."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            self.lines.append((time.monotonic(), message))

    def matching(self, pattern: str) -> list[tuple[float, re.Match[str]]]:
        with self.lock:
            return [(at, m) for at, line in self.lines if (m := re.fullmatch(pattern, line))]


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[Supervisor, Reports]]:
    commands = {
        "steady": [PYTHON, "-c", "import time; time.sleep(120)"],
        "crasher": [PYTHON, "-c", "import sys; sys.exit(3)"],
    }
    supervisor = Supervisor(
        commands, os.environ, log_dir=tmp_path, backoff=lambda: Backoff(initial=0.2, cap=0.8, reset_after=60)
    )
    reports = Reports()
    supervisor.start()
    supervisor.watch(reports, every=0.02)
    try:
        yield supervisor, reports
    finally:
        supervisor.stop()


def test_a_child_that_keeps_exiting_is_restarted_with_growing_pauses_and_the_others_run_on(
    supervised: tuple[Supervisor, Reports],
) -> None:
    supervisor, reports = supervised
    steady = supervisor.child("steady").pid
    time.sleep(4.5)
    exits = reports.matching(r"crasher exited with 3, restarting in ([\d.]+) s \(log: .*crasher\.log\)")
    pauses = [float(m.group(1)) for _, m in exits]
    # 0.2 + 0.4 + 0.8 + 0.8 + ... (plus the interpreter's start each time): never a tight loop.
    assert pauses[:4] == [0.2, 0.4, 0.8, 0.8], reports.lines
    assert 4 <= len(pauses) <= 7, reports.lines
    starts = [at for at, _ in reports.matching(r"crasher started again \(restart \d+\)")]
    for (exited_at, m), started_at in zip(exits, starts, strict=False):
        assert started_at - exited_at >= float(m.group(1)) - 0.01
    assert supervisor.restarts("crasher") == len(starts)
    assert supervisor.child("steady").pid == steady and supervisor.child("steady").poll() is None
    assert not reports.matching(r"steady .*")


def test_a_killed_child_is_restarted_and_what_it_started_goes_with_it(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    # The child starts a grandchild (as uvicorn and dramatiq start their workers) and waits.
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        grandchild = subprocess.Popen([{PYTHON!r}, "-c", "import time; time.sleep(120)"])
        open({str(marker)!r}, "w").write(str(grandchild.pid))
        time.sleep(120)
    """)
    supervisor = Supervisor(
        {"parent": [PYTHON, "-c", script]}, os.environ, log_dir=tmp_path, backoff=lambda: Backoff(initial=0.3)
    )
    reports = Reports()
    supervisor.start()
    supervisor.watch(reports, every=0.02)
    try:
        _wait_for(marker.exists)
        grandchild = int(marker.read_text())
        marker.unlink()
        first = supervisor.child("parent").pid
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: reports.matching(r"parent started again \(restart 1\)"))
        assert reports.matching(r"parent was killed by SIGKILL, restarting in 0\.3 s \(log: .*\)")
        assert supervisor.child("parent").pid != first and supervisor.child("parent").poll() is None
        _wait_for(lambda: not pid_alive(grandchild) or _zombie(grandchild))
        _wait_for(marker.exists)  # the new one started its own
    finally:
        supervisor.stop()
    assert supervisor.child("parent").poll() is not None


def test_a_child_that_cannot_be_started_again_is_retried_with_the_same_pauses(tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.write_text(f"#!{PYTHON}\nraise SystemExit(2)\n")
    program.chmod(0o755)
    supervisor = Supervisor(
        {"gone": [str(program)]}, os.environ, log_dir=tmp_path, backoff=lambda: Backoff(initial=0.2, cap=0.4)
    )
    reports = Reports()
    supervisor.start()
    _wait_for(lambda: supervisor.child("gone").poll() is not None)
    program.unlink()  # say, a redeploy that removed it
    supervisor.watch(reports, every=0.02)
    try:
        time.sleep(2)
    finally:
        supervisor.stop()
    failures = reports.matching(r"gone could not be started \(FileNotFoundError.*\), trying again in ([\d.]+) s")
    assert [float(m.group(1)) for _, m in failures][:3] == [0.4, 0.4, 0.4], reports.lines
    assert 3 <= len(failures) <= 6, reports.lines  # every 0.4 s, not every round of 0.02 s


# A service like the claims service: every new connection gets a framed 32-byte challenge.
CHALLENGER = """
import asyncio, os, sys
async def greet(reader, writer):
    writer.write(b"\\x00\\x00\\x00\\x20" + os.urandom(32))
    await writer.drain()
async def main():
    server = await asyncio.start_unix_server(greet, path=sys.argv[1])
    async with server:
        await asyncio.Event().wait()
asyncio.run(main())
"""


def test_a_child_that_stops_answering_its_probe_is_killed_and_started_again(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    supervisor = Supervisor(
        {"server": [PYTHON, "-c", CHALLENGER, str(sock)]}, os.environ, log_dir=tmp_path,
        backoff=lambda: Backoff(initial=0.3),
        probes={"server": lambda timeout: answers_challenge(f"unix:{sock}", timeout)},
        liveness=Liveness(every=0.1, timeout=0.2, failures=3, grace=30),
    )  # fmt: skip
    reports = Reports()
    supervisor.start()
    supervisor.watch(reports, every=0.02)
    try:
        _wait_for(lambda: answers_challenge(f"unix:{sock}", 1.0))
        time.sleep(1.0)  # ten probes, all answered
        assert reports.lines == []
        first = supervisor.child("server")
        os.kill(first.pid, signal.SIGSTOP)  # alive, but answers nothing
        stopped = time.monotonic()
        _wait_for(lambda: reports.matching(r"server started again \(restart 1\)"))
        [(killed_at, _)] = reports.matching(
            r"server answered none of its last 3 liveness probes \(one every 0\.1 s\): "
            r"killing it \(log: .*server\.log\)"
        )
        assert 0.3 <= killed_at - stopped < 5, reports.lines
        assert reports.matching(r"server was killed by SIGKILL, restarting in 0\.3 s \(log: .*\)")
        assert first.poll() is not None and supervisor.child("server").pid != first.pid
        _wait_for(lambda: answers_challenge(f"unix:{sock}", 1.0))  # the new one answers
        time.sleep(1.0)
        assert supervisor.restarts("server") == 1, reports.lines
    finally:
        supervisor.stop()


def test_a_child_that_has_never_answered_its_probe_is_given_its_grace(tmp_path: Path) -> None:
    supervisor = Supervisor(
        {"slow": [PYTHON, "-c", "import time; time.sleep(120)"]}, os.environ, log_dir=tmp_path,
        backoff=lambda: Backoff(initial=5),
        probes={"slow": lambda timeout: answers_challenge(f"unix:{tmp_path}/never.sock", timeout)},
        liveness=Liveness(every=0.1, timeout=0.1, failures=3, grace=1.5),
    )  # fmt: skip
    reports = Reports()
    supervisor.start()
    started = time.monotonic()
    supervisor.watch(reports, every=0.02)
    try:
        _wait_for(lambda: reports.matching(r"slow was killed by SIGKILL, .*"))
    finally:
        supervisor.stop()
    [(killed_at, _)] = reports.matching(r"slow answered none of its last \d+ liveness probes .*")
    assert 1.5 <= killed_at - started < 5, reports.lines


def test_a_signal_to_the_supervising_process_stops_every_child(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    # A process like `ticketing run`: children supervised from a thread, the main thread waiting
    # for SIGINT/SIGTERM; one child keeps crashing meanwhile.
    program = textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from workers.processes import Backoff
        from workers.supervisor import Supervisor

        steady = "import os, time; open(os.path.join({str(pids)!r}, str(os.getpid())), 'w'); time.sleep(120)"
        supervisor = Supervisor(
            {{"steady": [sys.executable, "-c", steady], "crasher": [sys.executable, "-c", "raise SystemExit(1)"]}},
            os.environ, log_dir=Path({str(tmp_path)!r}), backoff=lambda: Backoff(initial=0.1, cap=0.2),
        )
        stop = []  # as run_service: Event.set() in a handler can deadlock with the Event's wait()
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        supervisor.start()
        supervisor.watch(lambda line: print(line, flush=True), every=0.02)
        print("ready", flush=True)
        while not stop:
            time.sleep(0.5)
        supervisor.stop()
        print("stopped", flush=True)
    """)
    proc = subprocess.Popen([PYTHON, "-c", program], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        _wait_for(lambda: any(pids.iterdir()))
        time.sleep(1)  # a few restarts of the crasher
        steady = int(next(pids.iterdir()).name)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert out.strip().endswith("stopped"), out
    assert "crasher exited with 1, restarting in" in out
    assert not pid_alive(steady)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return False


def _wait_for(check: object, timeout: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_a_niced_child_runs_at_a_lower_priority_in_its_session_too(tmp_path: Path) -> None:
    """The mailer's way: the child's own nice value, and its session's (Linux shares the CPU
    between sessions first, where autogroups are on), restarts included."""
    sleeper = [PYTHON, "-c", "import time; time.sleep(60)"]
    commands = {"plain": sleeper, "low": sleeper}
    supervisor = Supervisor(commands, os.environ, log_dir=tmp_path, niceness={"low": 10})
    supervisor.start()
    try:
        low, plain = supervisor.child("low").pid, supervisor.child("plain").pid
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        assert os.getpriority(os.PRIO_PROCESS, low) == min(base + 10, 19)
        assert os.getpriority(os.PRIO_PROCESS, plain) == base
        groups = Path("/proc/self/autogroup")
        if groups.exists():
            assert Path(f"/proc/{low}/autogroup").read_text().split()[-1] == str(min(base + 10, 19))
            assert Path(f"/proc/{plain}/autogroup").read_text().split()[-1] != str(min(base + 10, 19))
            # A process that never left init's session reads an empty line here (the root group,
            # as under CI's container init); the niced child has a group of its own either way.
            own_group = groups.read_text().split()[:1]
            assert Path(f"/proc/{low}/autogroup").read_text().split()[:1] not in ([], own_group)
        supervisor.child("low").kill()
        supervisor.child("low").wait(10)
        deadline = time.monotonic() + 10
        while supervisor.child("low").pid == low or supervisor.child("low").poll() is not None:
            supervisor.revive(lambda _: None)
            assert time.monotonic() < deadline, "the niced child was not started again"
            time.sleep(0.1)
        assert os.getpriority(os.PRIO_PROCESS, supervisor.child("low").pid) == min(base + 10, 19)
    finally:
        supervisor.stop()


@pytest.mark.parametrize("run_by", ["the supervisor", "another"])
def test_a_log_past_its_size_is_cut_back_and_the_child_writes_on_at_its_start(tmp_path: Path, run_by: str) -> None:
    """Its children's logs, and those of processes it does not run (the embedded services')."""
    writer = [
        PYTHON,
        "-u",
        "-c",
        "import itertools, time\nfor n in itertools.count():\n    print(f'line {n:08d}')\n    time.sleep(0.0002)",
    ]
    log, kept = tmp_path / "chatty.log", tmp_path / "chatty.log.1"
    if run_by == "the supervisor":
        supervisor = Supervisor({"chatty": writer}, os.environ, log_dir=tmp_path, max_log_bytes=50_000)
    else:
        other = spawn(writer, env=os.environ, log_path=log)
        supervisor = Supervisor({}, os.environ, log_dir=tmp_path, max_log_bytes=50_000, other_logs=[log])
    reports = Reports()
    supervisor.start()
    try:
        deadline = time.monotonic() + 20
        while log.stat().st_size <= 50_000:
            assert time.monotonic() < deadline, "the child wrote too little"
            time.sleep(0.05)
        supervisor.trim_logs(reports)
        assert kept.stat().st_size > 50_000
        time.sleep(0.3)
        text = log.read_bytes()
        assert 0 < len(text) < 50_000
        assert not text.startswith(b"\0"), "written at the old offset: the log is full of holes"
        numbers = [int(n) for n in re.findall(r"^line (\d{8})$", text.decode(), re.MULTILINE)]
        last_kept = int(re.findall(r"^line (\d{8})$", kept.read_bytes().decode(), re.MULTILINE)[-1])
        assert numbers and numbers[0] > last_kept and numbers == sorted(numbers)
        assert reports.matching(r"chatty's log passed 0 MiB: its lines so far are in .*chatty\.log\.1")
    finally:
        supervisor.stop()
        if run_by == "another":
            stop_process(other)
