"""CPU accounting per process group (API, projector, Postgres, load generator, ...).

A snapshot records, for every process of interest, its own CPU time plus the CPU of the children
it has already reaped (Linux's cutime/cstime). The difference of two snapshots is then exact even
when processes come and go in between: a Postgres backend that exits is reaped by the postmaster,
whose children counters then carry its whole lifetime, while its CPU before the first snapshot is
subtracted because it was counted there on its own. The machine-wide busy time comes from
/proc/stat, so CPU used by anything outside the benchmark (another test run on the machine) shows
up as `other` instead of silently slowing the service down.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Imported untyped: the lock file has no stubs for psutil (types-psutil).
psutil: Any = importlib.import_module("psutil")

# Substrings of a command line that identify a process of the stack, checked in order.
GROUPS: tuple[tuple[str, str], ...] = (
    ("bench.loadgen", "loadgen"),
    ("wrk -t", "loadgen"),  # the independent generator of hold-latency
    ("bench.rebuild", "rebuild"),
    ("uvicorn", "api"),
    ("projections run", "projector"),
    ("ticketing claims", "claims"),
    ("ticketing notifier", "notifier"),
    ("--queues mail", "mailer"),
    ("dramatiq", "worker"),
    ("ticketing scheduler", "scheduler"),
    ("redis-server", "redis"),
    ("localstripe", "localstripe"),
    ("workers.mailsink", "mailsink"),
)
# Everything that serves requests, for the server-vs-load-generator split.
SERVER_GROUPS = frozenset(
    {"api", "claims", "projector", "notifier", "worker", "mailer", "scheduler"}
    | {"postgres", "redis", "localstripe", "mailsink"}
)


def classify(proc: psutil.Process) -> str:
    """The group of a process, from its command line."""
    try:
        if proc.username() == "embedded_postgres" or proc.name().startswith("postgres"):
            return "postgres"
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    for needle, group in GROUPS:
        if needle in cmdline:
            return group
    return "other-child"


def _total(times: Any, *, with_children: bool) -> float:
    own = float(times.user + times.system)
    if with_children:
        own += float(times.children_user + times.children_system)
    return own


@dataclass
class Snapshot:
    """CPU seconds per process (keyed by pid and start time) and the machine's counters."""

    at: float
    procs: dict[tuple[int, float], tuple[str, float]] = field(default_factory=dict)
    machine: dict[str, float] = field(default_factory=dict)


class CpuMeter:
    """Takes snapshots of every process the benchmark cares about.

    `roots` returns the processes whose trees are tracked: the bench process itself (its children
    are the stack's processes and the load generator) and the postmaster, which `pg_ctl`
    daemonises out of our tree.
    """

    def __init__(self, roots: Callable[[], Iterable[psutil.Process]]) -> None:
        self.roots = roots
        self.me = os.getpid()

    def snapshot(self) -> Snapshot:
        snap = Snapshot(at=time.monotonic())
        seen: set[int] = set()
        groups: dict[int, str] = {}
        for root in self.roots():
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in family:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                try:
                    with proc.oneshot():
                        # The bench process reaps the load generator; its children counters would
                        # count the generator twice, so only its own time is taken.
                        is_me = proc.pid == self.me
                        cpu = _total(proc.cpu_times(), with_children=not is_me)
                        key = (proc.pid, proc.create_time())
                        group = "bench" if is_me else classify(proc)
                        if group == "other-child":
                            # uvicorn's and dramatiq's workers are spawned interpreters whose
                            # command line names neither; they belong to their parent's group.
                            group = groups.get(proc.ppid(), group)
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    continue
                groups[proc.pid] = group
                snap.procs[key] = (group, cpu)
        machine = psutil.cpu_times()
        snap.machine = {
            name: float(getattr(machine, name, 0.0))
            for name in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        }
        return snap


def usage(before: Snapshot, after: Snapshot, reaped_loadgen_s: float = 0.0) -> dict[str, Any]:
    """CPU seconds per group between two snapshots, with the server / load-generator split.
    `reaped_loadgen_s`: a load generator's CPU that neither snapshot saw (a child that started
    after the first and was reaped before the second, like wrk)."""
    groups: dict[str, float] = {"loadgen": reaped_loadgen_s} if reaped_loadgen_s else {}
    for key, (group, cpu) in after.procs.items():
        start = before.procs.get(key)
        groups[group] = groups.get(group, 0.0) + cpu - (start[1] if start else 0.0)
    for key, (group, cpu) in before.procs.items():
        if key not in after.procs:
            # Exited and reaped: its lifetime now sits in its parent's children counters.
            groups[group] = groups.get(group, 0.0) - cpu
    wall = after.at - before.at
    delta = {k: after.machine[k] - before.machine[k] for k in after.machine}
    busy = sum(v for k, v in delta.items() if k not in ("idle", "iowait"))
    server = sum(v for g, v in groups.items() if g in SERVER_GROUPS)
    loadgen = groups.get("loadgen", 0.0)
    ours = sum(groups.values())
    cores = psutil.cpu_count() or 1
    return {
        "wall_s": round(wall, 3),
        "cores": cores,
        "server_s": round(server, 3),
        "loadgen_s": round(loadgen, 3),
        "bench_process_s": round(groups.get("bench", 0.0), 3),
        "by_group_s": {g: round(v, 3) for g, v in sorted(groups.items()) if abs(v) >= 0.0005},
        "machine_busy_s": round(busy, 3),
        "machine_steal_s": round(delta.get("steal", 0.0), 3),
        # Busy time no process of ours accounts for: other workloads on the machine, kernel work.
        "other_s": round(busy - ours, 3),
        "share": {
            "server_of_measured": _ratio(server, server + loadgen),
            "loadgen_of_measured": _ratio(loadgen, server + loadgen),
            "server_of_machine": _ratio(server, wall * cores),
            "loadgen_of_machine": _ratio(loadgen, wall * cores),
            "machine_utilisation": _ratio(busy, wall * cores),
        },
    }


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole > 0 else 0.0
