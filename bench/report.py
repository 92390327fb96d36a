"""Results: the machine, one JSON file per run, and `latest.md` with every figure next to its target."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.config import TARGETS, Target
from bench.cpu import psutil
from ticketing import ROOT

RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603, S607
        return done.stdout.strip()

    status = git("status", "--porcelain")
    # A fingerprint of the uncommitted changes, to notice edits made while a run was going on.
    changes = hashlib.sha256((status + git("diff", "HEAD")).encode()).hexdigest()[:12]
    return {"commit": git("rev-parse", "HEAD"), "dirty_files": len(status.splitlines()), "changes": changes}


def lookup(summary: dict[str, Any], dotted: str) -> Any:
    value: Any = summary
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def met(target: Target, value: Any) -> bool | None:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return None
    if target.op == ">=":
        return bool(value >= target.value)
    if target.op == "<":
        return bool(value < target.value)
    return bool(value == target.value)


def evaluate(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target of the scenarios that ran, with the measured value and whether it is met."""
    by_name = {s["scenario"]: s for s in summaries}
    rows = []
    for target in TARGETS:
        summary = by_name.get(target.scenario)
        if summary is None:
            continue
        value = lookup(summary, target.metric)
        rows.append(
            {
                "scenario": target.scenario,
                "metric": target.metric,
                "label": target.label,
                "value": value,
                "target": f"{target.op} {target.value:g}",
                "met": met(target, value),
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cpu_line(name: str, cpu: dict[str, Any]) -> str:
    share = cpu.get("share", {})
    return (
        f"| {name} | {cpu.get('wall_s', 0):.1f} | {cpu.get('server_s', 0):.1f} | {cpu.get('loadgen_s', 0):.1f} | "
        f"{share.get('loadgen_of_measured', 0):.1%} | {share.get('machine_utilisation', 0):.0%} | "
        f"{cpu.get('other_s', 0):.1f} | {_fmt(cpu.get('loadgen_us_per_request'))} |"
    )


def markdown(run: dict[str, Any]) -> str:
    """The run as a markdown page: machine, the target table, extra figures, CPU split."""
    m = run["machine"]
    lines = [
        f"# Benchmark results ({run['scale']})",
        "",
        f"Run {run['started_at']} UTC, {run['duration_s']:.0f} s in all; commit `{run['git']['commit'][:12]}`"
        f" ({run['git']['dirty_files']} uncommitted files).",
        "",
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, "
        f"{m['platform']}; load average at start {m['load_average_at_start']}.",
        f"Service: {run['service']['web_workers']} API processes (uvicorn) and the claims service, "
        "ENVIRONMENT=production, "
        f"holds {run['service']['env'].get('HOLD_SECONDS')} s, rate limits off; the load generator is a separate "
        "process on the same machine (a small asyncio HTTP/1.1 client on uvloop, one keep-alive connection per "
        "virtual user).",
        "",
        "| scenario | metric | value | target | met? |",
        "|---|---|---|---|---|",
    ]
    for row in run["targets"]:
        mark = {True: "yes", False: "**no**", None: "n/a"}[row["met"]]
        lines.append(f"| {row['scenario']} | {row['label']} | {_fmt(row['value'])} | {row['target']} | {mark} |")
    lines += ["", "## Other figures", "", "| scenario | figure | value |", "|---|---|---|"]
    for summary in run["scenarios"]:
        for label, path in _EXTRA.get(summary["scenario"], ()):
            lines.append(f"| {summary['scenario']} | {label} | {_fmt(lookup(summary, path))} |")
        if "error" in summary:
            lines.append(f"| {summary['scenario']} | **failed** | {summary['error'][:200]} |")
    lines += [
        "",
        "## CPU (seconds over the measured window)",
        "",
        "`other` is machine busy time no process of the benchmark accounts for: something else running, "
        "kernel work, and rounding (per-process times come in 10 ms ticks).",
        "",
        "| phase | wall | server | load generator | generator share | machine busy | other | generator µs/request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for summary in run["scenarios"]:
        cpu = summary.get("cpu") or {}
        if "wall_s" in cpu:
            lines.append(_cpu_line(summary["scenario"], cpu))
        else:
            for phase, phase_cpu in cpu.items():
                if isinstance(phase_cpu, dict) and "wall_s" in phase_cpu:
                    lines.append(_cpu_line(f"{summary['scenario']} {phase}", phase_cpu))
    if run.get("findings"):
        lines += ["", "## Findings", ""]
        lines += [f"- {finding}" for finding in run["findings"]]
    lines += ["", "## How to read this", ""]
    lines += [f"- {note}" for note in NOTES]
    lines.append("")
    return "\n".join(lines)


NOTES = (
    "Closed loop: each virtual user sends its next request when the previous answer is in, so throughput is "
    "what the service sustains at that concurrency and latency includes queueing in the service.",
    "A 201 from POST /orders comes after the API has waited for every read model to apply the order "
    "(read-your-writes), so projection speed is part of that latency; the projector's CPU is in the JSON.",
    "Virtual users share buyer accounts (user i logs in as account i mod the number of accounts); tokens are "
    "fetched over HTTP before each scenario and are not part of the measurement.",
    "Orders/s and tickets/s count 201s from the first request until the moment the last ticket or seat was "
    "taken (time to sell out); `orders_per_s_each_second` in the JSON shows how steady that was.",
    "hot-seats buyers pick rows near the stage from what they know to be free (every 201 marks seats taken), "
    "so collisions come from concurrent buyers choosing the same seats.",
    "seat-map `cold` is the first GET after a hold or a cancellation changed the map's version; `repeat_full` "
    "GETs one version again (the service may answer from its cache); `not_modified` sends the "
    "current ETag as If-None-Match.",
    "The load generator shares the machine's cores with the service; its CPU share is in the CPU table, and "
    "`other` shows CPU used by anything else on the machine during the window.",
)


_EXTRA: dict[str, tuple[tuple[str, str], ...]] = {
    "hot-ga": (
        ("tickets/s until sold out", "tickets_per_s"),
        ("time to sell out (s)", "time_to_sell_out_s"),
        ("orders accepted", "orders_accepted"),
        ("rejected sold_out", "rejections.sold_out"),
        ("p50 latency (ms)", "latency_ms.all.p50"),
        ("p95 latency (ms)", "latency_ms.all.p95"),
        ("errors", "errors.total"),
        ("errors by answer", "errors.by_outcome"),
        ("publish (s)", "seed.publish_s"),
    ),
    "hot-seats": (
        ("seats/s until sold out", "tickets_per_s"),
        ("time to sell out (s)", "time_to_sell_out_s"),
        ("orders accepted", "orders_accepted"),
        ("rejected seat_taken", "rejections.seat_taken"),
        ("collision rate", "collision_rate"),
        ("errors by answer", "errors.by_outcome"),
        ("p50 latency (ms)", "latency_ms.all.p50"),
        ("p95 latency (ms)", "latency_ms.all.p95"),
        ("publish of the seated show (s)", "seed.publish_s"),
        ("projection catch-up after publish (s)", "seed.projection_catch_up_s"),
    ),
    "seat-map": (
        ("seat map body (bytes)", "phases.cold.body_bytes"),
        ("cold p95 (ms)", "phases.cold.latency_ms.p95"),
        ("repeat full GET p50 (ms)", "phases.repeat_full.latency_ms.p50"),
        ("full GETs/s, loaded", "phases.full_loaded.requests_per_s"),
        ("304 p99 (ms)", "phases.not_modified.latency_ms.p99"),
        ("304s/s, loaded", "phases.not_modified_loaded.requests_per_s"),
        ("304 p99 loaded (ms)", "phases.not_modified_loaded.latency_ms.p99"),
    ),
    "browse": (
        ("p50 one client (ms)", "phases.single.latency_ms.p50"),
        ("p99 one client (ms)", "phases.single.latency_ms.p99"),
        ("p50 loaded (ms)", "phases.loaded.latency_ms.p50"),
        ("requests/s loaded", "phases.loaded.requests_per_s"),
        ("seeding (s)", "seed.seconds"),
        ("projection catch-up (s)", "seed.projection_catch_up_s"),
    ),
    "replay": (
        ("events in the store", "events_in_store"),
        ("rebuild, all models (s)", "seconds"),
        ("(model, event) applications/s", "models.all.applied_per_s"),
        ("events applied per model", "models.all.applied_by_model"),
        ("history seeding (events/s)", "seed.history_events_per_s"),
    ),
    "report": (
        ("events in the store", "events_in_store"),
        ("orders of the show", "show.orders"),
        ("events read for the show", "show.events_read"),
        ("show: CPU of the report's process (s)", "show.cpu_s"),
        ("show: the same report again, its events in Postgres's buffers (s)", "show.seconds_again"),
        ("show: the same report as a PNG chart (s)", "show.png_s"),
        ("show: peak RSS after the reports (MiB)", "show.peak_rss_mib.after_report"),
        ("store: summary of the whole store (s)", "store.seconds"),
        ("store: CPU of the report's process (s)", "store.cpu_s"),
        ("store: peak RSS after start-up (MiB)", "store.peak_rss_mib.after_start"),
        ("store: peak RSS after the report (MiB)", "store.peak_rss_mib.after_report"),
        ("seeding (events/s)", "seed.events_per_s"),
        ("read models rebuilt before (s)", "seed.rebuild_s"),
    ),
}


def write(run: dict[str, Any], started: datetime, results_dir: Path = RESULTS) -> tuple[Path, Path]:
    """Write `<UTC timestamp>[-quick].json` and `latest[-quick].md`; return their paths."""
    results_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if run["scale"] == "full" else f"-{run['scale']}"
    json_path = results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}{suffix}.json"
    json_path.write_text(json.dumps(run, indent=2, default=str) + "\n")
    md_path = results_dir / f"latest{suffix}.md"
    md_path.write_text(markdown(run))
    return json_path, md_path
