"""prometheus_client's multiprocess mode as the processes of a stack use it: each process writes
files named by host and pid into PROMETHEUS_MULTIPROC_DIR, and `/metrics`'s exposition adds them
up; sampled levels take the most recent value; a fresh directory per stack starts empty."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from workers.metrics import fresh_multiprocess_dir

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, metrics_dir: Path) -> str:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_process_counts_into_one_exposition(tmp_path: Path) -> None:
    metrics_dir = Path(fresh_multiprocess_dir({}, tmp_path, "8000"))
    assert metrics_dir == tmp_path / "metrics" / "8000" and not any(metrics_dir.iterdir())
    (metrics_dir / "counter_stale-1.db").write_bytes(b"")
    assert Path(fresh_multiprocess_dir({}, tmp_path, "8000")) == metrics_dir
    assert not any(metrics_dir.iterdir()), "files of an earlier run are removed"
    assert fresh_multiprocess_dir({"PROMETHEUS_MULTIPROC_DIR": "/elsewhere"}, tmp_path, "8000") == "/elsewhere"

    writer = (
        "from commands.metrics import ORDERS_PLACED, record_tickets_issued\n"
        "from workers.metrics import ACTIVE_HOLDS\n"
        "ORDERS_PLACED.inc({n}); record_tickets_issued({n}); ACTIVE_HOLDS.set({n})\n"
    )
    run(writer.format(n=3), metrics_dir)
    run(writer.format(n=4), metrics_dir)
    host = socket.gethostname().replace("_", "-")
    names = sorted(p.name for p in metrics_dir.iterdir())
    assert len([n for n in names if n.startswith("counter_")]) == 2
    assert all(f"_{host}-" in n for n in names), names

    text = run("from api.observability import exposition; print(exposition().decode())", metrics_dir)
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["ticketing_orders_placed_total"] == 7
    assert samples["ticketing_tickets_issued_total"] == 7
    assert samples["ticketing_active_holds"] == 4  # the most recent sample, not a sum


def test_the_grafana_dashboard_uses_only_metrics_the_service_exports() -> None:
    import json
    import re

    from prometheus_client import REGISTRY

    import commands.metrics
    import workers.metrics
    from api.observability import request_metrics

    assert commands.metrics and workers.metrics
    request_metrics()
    # Every sample name a metric can have (labelled ones have no samples before their first use).
    exported = set(REGISTRY._names_to_collectors)
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bticketing_[a-z_]+", expr)}
    assert used, "the dashboard queries nothing"
    # Every business metric has a panel, and every panel a metric that exists.
    assert not used - exported, sorted(used - exported)
    business = {"ticketing_orders_placed_total", "ticketing_orders_refused_total", "ticketing_tickets_issued_total",
                "ticketing_active_holds", "ticketing_claim_batch_size_bucket", "ticketing_claim_wait_seconds_bucket",
                "ticketing_projection_lag_events", "ticketing_webhook_backlog", "ticketing_mail_backlog"}  # fmt: skip
    assert business <= used
