"""Running the load generator process, measuring CPU around it, and summarising its records."""

from __future__ import annotations

import contextlib
import json
import math
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from bench.cpu import usage
from bench.stack import BenchStack, log
from ticketing import ROOT
from workers.processes import child_preexec


@dataclass
class LoadRun:
    """What one run of the generator returned, with the CPU it and the server used."""

    records: list[list[Any]]
    state: dict[str, Any]
    stopped_by: str
    cpu: dict[str, Any]
    concurrency: int

    def of(self, tag: str) -> list[list[Any]]:
        return [r for r in self.records if r[4] == tag]


def _read_line(stream: IO[bytes], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"the load generator said nothing for {timeout:.0f}s")
    return stream.readline().decode().strip()


def run_load(stack: BenchStack, name: str, spec: dict[str, Any]) -> LoadRun:
    """Run `python -m bench.loadgen` on `spec`; CPU is sampled between its `go` and `finished`."""
    work = stack.data_dir / "loadgen"
    work.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = work / f"{name}.spec.json", work / f"{name}.result.json"
    result_path.unlink(missing_ok=True)
    spec = {"base_url": stack.base_url, **spec}
    spec_path.write_text(json.dumps(spec))
    stack.check_alive()
    with open(stack.log_dir / "loadgen.log", "ab") as errors:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.loadgen", str(spec_path), str(result_path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            preexec_fn=child_preexec(),  # noqa: PLW1509 - only system calls run in the child: the generator dies with the benchmark
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = _read_line(proc.stdout, 120)
        if line != "ready":
            raise RuntimeError(f"load generator failed to start ({line!r}); see {stack.log_dir / 'loadgen.log'}")
        before = stack.meter.snapshot()
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        line = _read_line(proc.stdout, float(spec["max_seconds"]) + float(spec.get("timeout", 30)) + 60)
        after = stack.meter.snapshot()
        if line != "finished":
            raise RuntimeError(f"load generator failed ({line!r}); see {stack.log_dir / 'loadgen.log'}")
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator exited with {proc.returncode}; see {stack.log_dir / 'loadgen.log'}")
    result = json.loads(result_path.read_bytes())
    stack.check_alive()
    cpu = usage(before, after)
    # The generator's own account of its CPU, over exactly the time it was sending.
    cpu["loadgen_self_reported_s"] = round(result["cpu_user_s"] + result["cpu_system_s"], 3)
    requests = len(result["records"])
    if requests:
        cpu["loadgen_us_per_request"] = round(cpu["loadgen_self_reported_s"] / requests * 1e6, 1)
        cpu["server_ms_per_request"] = round(cpu["server_s"] / requests * 1e3, 3)
    log(f"{name}: {requests} requests in {cpu['wall_s']:.1f}s, stopped by {result['stopped_by']}")
    return LoadRun(result["records"], result["state"], result["stopped_by"], cpu, int(spec["concurrency"]))


# --------------------------------------------------------------------------------------------
# Summaries


def percentile(ordered: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `ordered` is sorted."""
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def latency_ms(records: Iterable[list[Any]]) -> dict[str, Any]:
    """Count, mean and p50/p90/p95/p99/max of the records' latencies, in milliseconds."""
    values = sorted(r[1] * 1000 for r in records)
    if not values:
        return {"count": 0}
    out: dict[str, Any] = {"count": len(values), "mean": round(sum(values) / len(values), 2)}
    for p in (50, 90, 95, 99):
        out[f"p{p}"] = round(percentile(values, p), 2)
    out["max"] = round(values[-1], 2)
    return out


def outcomes(records: Iterable[list[Any]]) -> dict[str, int]:
    """How many requests ended how: `201`, `409 sold_out`, `0 ServerDisconnectedError`, ..."""
    counts = Counter(f"{r[2]} {r[3]}".strip() for r in records)
    return dict(sorted(counts.items()))


def per_second(records: Iterable[list[Any]], until: float | None = None) -> list[int]:
    """How many of the records completed in each second of the run (up to `until`)."""
    ends = [r[0] + r[1] for r in records]
    if not ends:
        return []
    horizon = until if until is not None else max(ends)
    buckets = [0] * (int(horizon) + 1)
    for end in ends:
        if end <= horizon:
            buckets[int(end)] += 1
    return buckets


def sustained(buckets: list[int]) -> dict[str, Any]:
    """Per-second rates over the whole seconds of a window (first and last seconds dropped)."""
    inner = buckets[1:-1] if len(buckets) > 2 else buckets
    if not inner:
        return {}
    ordered = sorted(inner)
    return {
        "seconds": len(inner),
        "min": ordered[0],
        "p10": round(percentile(ordered, 10), 1),
        "median": round(percentile(ordered, 50), 1),
        "max": ordered[-1],
    }


def elapsed(run: LoadRun) -> float:
    return max((r[0] + r[1] for r in run.records), default=0.0)


@contextlib.contextmanager
def timed() -> Any:
    """`with timed() as t: ...; t()` gives the seconds spent inside (rounded to ms)."""
    started = time.monotonic()
    done: list[float] = []

    def seconds() -> float:
        return round(done[0] if done else time.monotonic() - started, 3)

    try:
        yield seconds
    finally:
        done.append(time.monotonic() - started)
