"""`python -m bench [scenario ...] [--quick]`: benchmark the service; see bench/__init__.py.

Prints one JSON object per scenario on stdout as it finishes (progress goes to stderr) and writes
`bench/results/<UTC timestamp>.json` and `bench/results/latest.md` (with `-quick` for --quick).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from bench import report
from bench.config import FULL, HTTP_SCENARIOS, QUICK, SCENARIOS
from bench.stack import BenchStack, log
from ticketing import ROOT


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so every process of the stack is stopped on the way out.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios (all by default) against a fresh stack; 0 when all of them ran."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=f"any of {', '.join(SCENARIOS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="scaled-down sizes for development (a few minutes)")
    parser.add_argument("--web-workers", type=int, default=2, help="API processes (default 2, one per core)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the data and the buyers")
    parser.add_argument("--replay-budget", type=float, default=None, help="seconds allowed for the rebuilds")
    parser.add_argument("--no-write", action="store_true", help="print only; write nothing to bench/results")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    chosen = [s for s in SCENARIOS if s in (args.scenarios or SCENARIOS)]
    scale = QUICK if args.quick else FULL
    # Seconds for the four rebuilds; with the limits of the other scenarios a full run stays near
    # 20 minutes even when every phase runs into its limit.
    replay_budget = args.replay_budget or (180.0 if args.quick else 480.0)
    signal.signal(signal.SIGTERM, _terminate)

    started = datetime.now(UTC)
    clock = time.monotonic()
    run: dict[str, Any] = {
        "scale": scale.name,
        "started_at": started.strftime("%Y-%m-%d %H:%M:%S"),
        "scenarios_requested": chosen,
        "machine": report.machine(),
        "git": report.git_state(),
        "scenarios": [],
        "findings": [],
    }
    interrupted = False
    try:
        with BenchStack(web_workers=args.web_workers) as stack:
            run["service"] = stack.config()
            run["setup"] = _setup(stack, scale, args.seed, chosen, run)
            bench = run["setup"].pop("_bench")
            for name in chosen:
                log(f"--- {name}")
                try:
                    if name in HTTP_SCENARIOS:
                        seconds = stack.start_app()
                        if seconds:
                            run["setup"]["app_start_s"] = round(seconds, 3)
                    summary = _run(name, bench, replay_budget)
                except KeyboardInterrupt:
                    raise
                except Exception as error:  # noqa: BLE001 - one failed scenario is reported, the rest still run
                    log(f"{name} failed: {error!r}")
                    summary = {"scenario": name, "error": f"{type(error).__name__}: {error}"}
                    summary["traceback"] = traceback.format_exc()[-4000:]
                    dead = stack.dead()
                    if dead:
                        summary["processes_exited"] = dead
                        run["scenarios"].append(summary)
                        print(json.dumps(summary), flush=True)  # noqa: T201
                        break
                run["scenarios"].append(summary)
                print(json.dumps(summary), flush=True)  # noqa: T201 - the JSON summaries are the output
            bench.app.close()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; the stack is stopped")
    run["interrupted"] = interrupted
    run["findings"] += _noisy_neighbours(run["scenarios"])
    run["git_at_end"] = report.git_state()
    if run["git_at_end"] != run["git"]:
        # The service's processes import its code when they start, so a run that straddles an
        # edit may have measured a mix of versions.
        run["findings"].append(
            f"the repository changed during the run (commit {run['git']['commit'][:12]} with "
            f"{run['git']['dirty_files']} uncommitted files at the start, {run['git_at_end']['commit'][:12]} with "
            f"{run['git_at_end']['dirty_files']} at the end)"
        )
    run["duration_s"] = round(time.monotonic() - clock, 1)
    run["targets"] = report.evaluate(run["scenarios"])
    if not args.no_write and run["scenarios"]:
        json_path, md_path = report.write(run, started)
        log(f"results: {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")
    failed = interrupted or any("error" in s for s in run["scenarios"])
    return 1 if failed else 0


def _noisy_neighbours(summaries: list[dict[str, Any]]) -> list[str]:
    """Phases during which something outside the benchmark used a noticeable share of the CPU."""
    notes = []
    for summary in summaries:
        cpu = summary.get("cpu") or {}
        phases = {"": cpu} if "wall_s" in cpu else cpu
        for phase, figures in phases.items():
            if not isinstance(figures, dict) or not figures.get("machine_busy_s"):
                continue
            share = figures["other_s"] / figures["machine_busy_s"]
            # Per-process CPU times come in 10 ms ticks and Postgres has ~100 processes, so small
            # amounts of `other` are rounding, not a neighbour.
            if share > 0.1 and figures["other_s"] > 2:
                name = f"{summary['scenario']} {phase}".strip()
                notes.append(
                    f"{name}: {figures['other_s']:.1f} s of CPU ({share:.0%} of the machine's busy time) went to "
                    "processes outside the benchmark; its figures may be lower than on a quiet machine."
                )
    return notes


def _setup(stack: BenchStack, scale: Any, seed: int, chosen: list[str], run: dict[str, Any]) -> dict[str, Any]:
    """Accounts and the write side, and the pipeline probe that decides how big saves are written."""
    from bench import seed as seeding
    from bench.probe import PROBE_BYTES, pipeline_carries_large_parameters
    from bench.scenarios import Bench
    from ticketing import open_accounts, open_boxoffice

    log(f"stack up in {stack.started_s:.1f}s (.data/bench); probing psycopg pipelines with a large parameter")
    probe_started = time.monotonic()
    pipeline_ok, probe_said = pipeline_carries_large_parameters(stack.settings.database_url)
    if not pipeline_ok:
        run["findings"].append(
            f"psycopg pipeline mode hangs on a {PROBE_BYTES:,}-byte parameter (bench/probe.py): every save() "
            "of about 1 MB or more (e.g. publishing a show with ~2,000+ seats) hangs holding the event table's "
            "EXCLUSIVE lock. Set-up saves were written without a pipeline (bench.seed.Writer)."
        )
    accounts = open_accounts(stack.settings)
    try:
        people = seeding.create_accounts(accounts, scale.accounts, "bench")
    finally:
        accounts.close()
    app = open_boxoffice(stack.settings)
    bench = Bench(
        stack=stack,
        scale=scale,
        app=app,
        writer=seeding.Writer(app, pipeline_ok=pipeline_ok),
        people=people,
        rng=random.Random(seed),
    )
    log(f"{len(people.buyers)} buyer accounts in {people.seconds:.1f}s")
    return {
        "stack_start_s": round(stack.started_s, 3),
        "pipeline_probe": {
            "ok": pipeline_ok,
            "bytes": PROBE_BYTES,
            "said": probe_said,
            "seconds": round(time.monotonic() - probe_started, 2),
        },
        "accounts": len(people.buyers),
        "accounts_s": round(people.seconds, 3),
        "_bench": bench,
    }


def _run(name: str, bench: Any, replay_budget: float) -> dict[str, Any]:
    from bench import scenarios

    if name == "hot-ga":
        return scenarios.hot_ga(bench)
    if name == "hot-seats":
        return scenarios.hot_seats(bench)
    if name == "seat-map":
        return scenarios.seat_map(bench)
    if name == "browse":
        return scenarios.browse(bench)
    if name in ("hot-funnel", "hot-ga-long", "many-shows"):
        from bench import funnel

        return {"hot-funnel": funnel.hot_funnel, "hot-ga-long": funnel.hot_ga_long, "many-shows": funnel.many_shows}[
            name
        ](bench)
    if name == "expiry":
        from bench.expiry import expiry

        return expiry(bench)
    if name == "hold-latency":
        from bench.latency import hold_latency

        return hold_latency(bench)
    if name == "report":
        from bench.report_bench import report

        return report(bench, replay_budget)
    return scenarios.replay(bench, replay_budget)


if __name__ == "__main__":
    sys.exit(main())
