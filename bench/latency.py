"""The `hold-latency` scenario: holds measured by an independent load generator, wrk.

The other scenarios drive the service with this repository's own asyncio client. Here `wrk`
(Debian's package; `make bench` installs it when it can) keeps 50 and then 500 keep-alive
connections busy for a fixed time, each sending its next `POST /api/v1/orders` for one ticket of
a big general-admission offer as soon as the previous answer is in (closed loop). wrk measures
the latency itself (HdrHistogram-corrected percentiles with `--latency`); a small Lua script
rotates the buyers' tokens and counts the answers by status. Afterwards the event store must
hold exactly as many tickets claimed on the offer as wrk saw 201s (nothing lost, nothing extra),
and no more than were offered.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import seed
from bench.cpu import usage
from bench.scenarios import Bench, _rate
from bench.stack import log

WRK = "wrk"
# wrk's Lua state is per thread: each thread counts its answers, `done` adds them up.
SCRIPT = """
tokens = {%(tokens)s}
body = '%(body)s'
n = 0
counts = {}
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
init = function(args)
  n = math.random(1, #tokens)
end
request = function()
  n = n %% #tokens + 1
  return wrk.format("POST", "/api/v1/orders",
    {["Authorization"] = "Bearer " .. tokens[n], ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    table.insert(parts, string.format('"%%d": %%d', status, count))
  end
  io.write(string.format('WRK_JSON {"statuses": {%%s}, "p50": %%d, "p90": %%d, "p99": %%d, "p999": %%d, ' ..
    '"max": %%d, "mean": %%.1f, "requests": %%d, "duration_us": %%d, "connect_errors": %%d, ' ..
    '"read_errors": %%d, "write_errors": %%d, "timeouts": %%d, "status_errors": %%d}\\n',
    table.concat(parts, ", "), latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status))
end
"""


def wrk_available() -> bool:
    return shutil.which(WRK) is not None


def hold_latency(b: Bench) -> dict[str, Any]:
    """For each connection count: a fresh offer, wrk for the set time, then the store checked."""
    if not wrk_available():
        raise RuntimeError("wrk is not installed (apt-get install wrk; `make bench` does it when run as root)")
    s = b.scale
    tokens = b.tokens()
    phases = {}
    for connections in s.latency_connections:
        # Enough tickets that the offer never sells out within the phase (200 µs per hold would
        # be 5,000/s; twice that, with room).
        offered = int(s.latency_seconds * 12_000)
        show = seed.create_ga_show(b.writer, b.people.organizer_id, offered, f"Latency Night {connections}")
        b.stack.wait_caught_up(show.position)
        log(f"hold-latency: wrk, {connections} connections, {s.latency_seconds:g} s, {offered} tickets on offer")
        phases[str(connections)] = _phase(b, show, offered, tokens, connections, s.latency_seconds)
        log(f"hold-latency: {connections} connections: {json.dumps(_short(phases[str(connections)]))}")
    return {
        "scenario": "hold-latency",
        "generator": _wrk_version(),
        "phases": phases,
        "definition": (
            "wrk -t2 -c<connections> -d<seconds> --latency: closed loop, keep-alive; holds_per_s = 201 answers / "
            "wrk's measured duration; latency percentiles are wrk's own (all answers); store check: the 201s "
            "wrk counted <= tickets claimed on the offer in the event store <= those + one request in flight "
            "per connection when wrk stopped, and <= offered"
        ),
    }


def _phase(b: Bench, show: seed.GaShow, offered: int, tokens: list[str], connections: int,
           seconds: float) -> dict[str, Any]:  # fmt: skip
    body = json.dumps({"items": [{"offer_id": str(show.offer_id), "quantity": 1}]})
    script = SCRIPT % {"tokens": ", ".join(f'"{t}"' for t in tokens), "body": body}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "holds.lua"
        path.write_text(script)
        before = b.stack.meter.snapshot()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(  # noqa: S603 - a fixed program and arguments
            [WRK, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency", "-s", str(path),
             b.stack.base_url],
            capture_output=True, text=True, timeout=seconds + 120, check=False,
        )  # fmt: skip
        after = b.stack.meter.snapshot()
        # wrk starts after the first snapshot and is gone by the second, so neither sees it: its
        # CPU is what this process's reaped children gained meanwhile.
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cpu = reaped.ru_utime + reaped.ru_stime - children.ru_utime - children.ru_stime
    found = re.search(r"^WRK_JSON (.*)$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    figures = json.loads(found.group(1))
    statuses = {int(k): v for k, v in figures["statuses"].items()}
    created = statuses.get(201, 0)
    duration = figures["duration_us"] / 1e6
    offer: Any = b.app.get_offer(show.offer_id)
    claimed = int(offer.held + offer.sold)
    errors = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return {
        "connections": connections,
        "holds_per_s": _rate(created, duration),
        "requests": figures["requests"],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": {k: round(figures[k] / 1000, 2) for k in ("p50", "p90", "p99", "p999", "max", "mean")},
        "socket_errors": errors,
        "seconds": round(duration, 2),
        "cpu": usage(before, after, reaped_loadgen_s=wrk_cpu),
        "invariants": {
            "offered": offered,
            "claimed_in_store": claimed,
            "answered_201": created,
            # wrk stops with up to one request in flight per connection, uncounted; the
            # service may have stored those.
            "in_flight_at_stop": claimed - created,
            "ok": created <= claimed <= min(created + connections, offered),
            "violations": int(not created <= claimed <= min(created + connections, offered)),
        },
        "wrk_output": out.stdout.split("WRK_JSON")[0].strip().splitlines()[-12:],
    }


def _short(phase: dict[str, Any]) -> dict[str, Any]:
    return {k: phase[k] for k in ("holds_per_s", "statuses", "latency_ms", "socket_errors")} | {
        "store_ok": phase["invariants"]["ok"]
    }


def _wrk_version() -> str:
    out = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "wrk"
