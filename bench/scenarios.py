"""The five scenarios of the performance issue. Each returns one JSON-able summary."""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from bench import seed
from bench.config import Scale
from bench.cpu import usage
from bench.drive import LoadRun, elapsed, latency_ms, outcomes, per_second, run_load, sustained, timed
from bench.invariants import check_ga, check_seats
from bench.stack import BenchStack, log
from commands.boxoffice import BoxOffice
from ticketing import ROOT


@dataclass
class Bench:
    """What the scenarios share: the stack, the write side in this process, buyers, fixtures."""

    stack: BenchStack
    scale: Scale
    app: BoxOffice
    writer: seed.Writer
    people: seed.People
    rng: random.Random
    seated: seed.SeatedShow | None = None
    seated_seed: dict[str, Any] = field(default_factory=dict)
    # An order hot-seats placed (id, buyer index, seat ids): seat-map cancels and re-holds it.
    seated_order: tuple[str, int, list[str]] | None = None

    def tokens(self, limit: int | None = None) -> list[str]:
        """Fresh access tokens (they live 15 minutes) for the buyers, by logging in over HTTP."""
        buyers = self.people.buyers[:limit]
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda b: self.stack.login(b.email, seed.PASSWORD), buyers))

    def buyer_id(self, token_index: int) -> UUID:
        return self.people.buyers[token_index].account_id

    def seated_show(self) -> seed.SeatedShow:
        """The 20,000-seat show (one per run), with the time its set-up and projection took."""
        if self.seated is None:
            s = self.scale
            log(f"seeding a {s.seats}-seat show")
            show = seed.create_seated_show(
                self.writer, self.people.organizer_id, s.seat_sections, s.seat_rows, s.seats_per_row
            )
            caught_up = self.stack.wait_caught_up(show.position)
            self.seated = show
            self.seated_seed = {
                "seats": show.seats,
                "layout_s": round(show.layout_s, 3),
                "publish_s": round(show.publish_s, 3),
                "projection_catch_up_s": caught_up["seconds"],
                "publish_path": "workaround (no pipeline)" if self.writer.workaround else "BoxOffice.publish_event",
            }
            log(f"seated show: publish {show.publish_s:.2f}s, projection caught up in {caught_up['seconds']:.2f}s")
        return self.seated


def _unanswered(records: list[list[Any]]) -> int:
    return sum(1 for r in records if r[2] == 0 or r[2] >= 500)


def _errors(records: list[list[Any]], expected: set[str]) -> dict[str, Any]:
    bad = [r for r in records if r[2] != 201 and f"{r[2]} {r[3]}" not in expected]
    return {"total": len(bad), "by_outcome": outcomes(bad)}


def _sale_figures(ok: list[Any], sold: int, window: float, sold_out_at: float | None,
                  records: list[Any]) -> dict[str, Any]:  # fmt: skip
    """The figures hot-ga and hot-seats share: rates over the selling window and counts."""
    return {
        "orders_per_s": _rate(len(ok), window),
        "tickets_per_s": _rate(sold, window),
        "orders_per_s_each_second": sustained(per_second(ok, window)),
        "time_to_sell_out_s": round(sold_out_at, 3) if sold_out_at else None,
        "sold_out": sold_out_at is not None,
        "orders_accepted": len(ok),
        "requests": len(records),
    }


def _rate(count: float, seconds: float | None) -> float:
    return round(count / seconds, 1) if seconds else 0.0


# --------------------------------------------------------------------------------------------
# hot-ga


def hot_ga(b: Bench) -> dict[str, Any]:
    """One offer of 20,000 tickets, 500 buyers of 1-4 tickets, until sold out + 5,000 rejections."""
    s = b.scale
    offsets = b.stack.log_offsets()
    with timed() as seed_s:
        show = seed.create_ga_show(b.writer, b.people.organizer_id, s.ga_tickets, "Hot GA Night")
        caught_up = b.stack.wait_caught_up(show.position)
    tokens = b.tokens()
    log(f"hot-ga: {s.ga_buyers} buyers for {s.ga_tickets} tickets")
    run = run_load(
        b.stack,
        "hot-ga",
        {
            "kind": "ga_orders",
            "concurrency": s.ga_buyers,
            "tokens": tokens,
            "offer_id": str(show.offer_id),
            "tickets": s.ga_tickets,
            "min_quantity": 1,
            "max_quantity": 4,
            "after_sellout": s.ga_rejections_after_sellout,
            "max_seconds": s.ga_max_seconds,
            "max_requests": 4 * s.ga_tickets + 4 * s.ga_rejections_after_sellout,
        },
    )
    records = run.of("order")
    ok = [r for r in records if r[2] == 201]
    sold_out_at: float | None = run.state.get("sold_out_at")
    window = sold_out_at or elapsed(run)
    selling = [r for r in records if r[0] + r[1] <= window]
    tickets = sum(r[6][1] for r in ok)
    log("hot-ga: checking invariants")
    accepted = [(UUID(r[6][2]), b.buyer_id(r[6][0]), r[6][1]) for r in ok]
    invariants = check_ga(
        b.app,
        event_id=show.event_id,
        offer_id=show.offer_id,
        offered=s.ga_tickets,
        accepted=accepted,
        unanswered=_unanswered(records),
    )
    return {
        "scenario": "hot-ga",
        "buyers": s.ga_buyers,
        "accounts": len(tokens),
        "offered": s.ga_tickets,
        **_sale_figures(ok, tickets, window, sold_out_at, records),
        "tickets_accepted": tickets,
        "rejections": {
            "sold_out": sum(1 for r in records if r[3] == "sold_out"),
            "sold_out_after_sell_out": run.state.get("rejected_after", 0),
        },
        "errors": _errors(records, {"409 sold_out"}),
        "outcomes": outcomes(records),
        "latency_ms": {
            "all": latency_ms(records),
            "accepted_201": latency_ms(ok),
            "rejected_409": latency_ms(r for r in records if r[2] == 409),
            "while_selling": latency_ms(selling),
        },
        "stopped_by": run.stopped_by,
        "cpu": run.cpu,
        "invariants": invariants,
        "seed": {
            "seconds": seed_s(),
            "publish_s": round(show.publish_s, 3),
            "projection_catch_up_s": caught_up["seconds"],
        },
        "log_findings": b.stack.log_findings(offsets),
    }


# --------------------------------------------------------------------------------------------
# hot-seats


def hot_seats(b: Bench) -> dict[str, Any]:
    """A 20,000-seat house, 500 buyers each after 2-4 adjacent seats near the stage."""
    s = b.scale
    offsets = b.stack.log_offsets()
    show = b.seated_show()
    tokens = b.tokens()
    log(f"hot-seats: {s.seat_buyers} buyers for {show.seats} seats")
    run = run_load(
        b.stack,
        "hot-seats",
        {
            "kind": "seat_orders",
            "concurrency": s.seat_buyers,
            "tokens": tokens,
            "offer_id": str(show.seat_offer_id),
            "rows": show.rows,
            "front_rank": s.seat_front_rank,
            "min_seats": 2,
            "max_seats": 4,
            "max_seconds": s.seat_max_seconds,
            "max_requests": 20 * show.seats,
        },
    )
    records = run.of("order")
    ok = [r for r in records if r[2] == 201]
    sold_out_at: float | None = run.state.get("sold_out_at")
    window = sold_out_at or elapsed(run)

    def seats_of(r: list[Any]) -> list[UUID]:
        row, first, count = r[6][1], r[6][2], r[6][3]
        return [UUID(x) for x in show.rows[row][first : first + count]]

    log("hot-seats: checking invariants")
    accepted = [(UUID(r[6][4]), b.buyer_id(r[6][0]), seats_of(r)) for r in ok]
    if ok:
        b.seated_order = (ok[0][6][4], ok[0][6][0], [str(x) for x in seats_of(ok[0])])
    invariants = check_seats(
        b.app,
        event_id=show.event_id,
        seat_ids={UUID(x) for row in show.rows for x in row},
        accepted=accepted,
        unanswered=_unanswered(records),
    )
    sizes: dict[int, int] = {}
    for r in records:
        sizes[r[6][3]] = sizes.get(r[6][3], 0) + 1
    errors = _errors(records, {"409 seat_taken"})
    seats_sold = sum(r[6][3] for r in ok)
    return {
        "scenario": "hot-seats",
        "buyers": s.seat_buyers,
        "accounts": len(tokens),
        "seats": show.seats,
        "front_rank": s.seat_front_rank,
        **_sale_figures(ok, seats_sold, window, sold_out_at, records),
        "seats_accepted": seats_sold,
        "seats_per_request": dict(sorted(sizes.items())),
        "rejections": {"seat_taken": sum(1 for r in records if r[3] == "seat_taken")},
        "collision_rate": round(1 - len(ok) / len(records), 4) if records else None,
        "collisions_not_409": errors["total"],
        "errors": errors,
        "outcomes": outcomes(records),
        "latency_ms": {
            "all": latency_ms(records),
            "accepted_201": latency_ms(ok),
            "rejected_409": latency_ms(r for r in records if r[2] == 409),
        },
        "generator_view": {k: v for k, v in run.state.items() if k != "sold_out_at"},
        "stopped_by": run.stopped_by,
        "cpu": run.cpu,
        "invariants": invariants,
        "seed": b.seated_seed,
        "log_findings": b.stack.log_findings(offsets),
    }


# --------------------------------------------------------------------------------------------
# seat-map


def _phase(run: LoadRun, tag: str) -> dict[str, Any]:
    records = run.of(tag)
    sizes = sorted(r[5] for r in records if r[2] == 200)
    out: dict[str, Any] = {
        "requests": len(records),
        "concurrency": run.concurrency,
        "outcomes": outcomes(records),
        "latency_ms": latency_ms(records),
    }
    if sizes:
        out["body_bytes"] = sizes[len(sizes) // 2]
    seconds = elapsed(run)
    if seconds:
        out["requests_per_s"] = _rate(len(records), seconds)
    return out


def seat_map(b: Bench) -> dict[str, Any]:
    """GET of the 20,000-seat map: first render after a change, repeats, and 304s."""
    s = b.scale
    offsets = b.stack.log_offsets()
    show = b.seated_show()
    path = f"/api/v1/events/{show.event_id}/seat-map"
    # What changes the map between GETs: cancelling and re-holding an order of hot-seats (whose
    # house is sold out), or holding and releasing a front seat of a fresh house.
    order_id, buyer, seats = b.seated_order or (None, 0, show.rows[0][:1])
    token = b.stack.login(b.people.buyers[buyer].email, seed.PASSWORD)
    log("seat-map: first GET after each change (a hold or a cancellation between GETs)")
    cold = run_load(
        b.stack,
        "seat-map-cold",
        {
            "kind": "bust_get",
            "concurrency": 1,
            "tokens": [token],
            "event_id": str(show.event_id),
            "seat_offer_id": str(show.seat_offer_id),
            "bust_seats": seats,
            "bust_order": order_id,
            "max_requests": 3 * s.seatmap_cold,
            "max_seconds": s.seatmap_max_seconds,
        },
    )
    # The generator keeps these response headers of the seat-map GETs, names lower-cased.
    etags = [r[6].get("etag") for r in cold.of("cold") if r[6]]
    encodings = sorted({r[6].get("content-encoding", "identity") for r in cold.of("cold") if r[6]})
    if not etags:
        raise RuntimeError("the seat map came without an ETag")
    etag = etags[-1]
    log("seat-map: repeated full GETs of one version, then 304s")
    repeat = run_load(
        b.stack,
        "seat-map-repeat",
        {
            "kind": "get",
            "concurrency": 1,
            "urls": [[path, "repeat"]],
            "max_requests": s.seatmap_cold,
            "max_seconds": s.seatmap_max_seconds * 0.75,
        },
    )
    loaded_full = run_load(
        b.stack,
        "seat-map-loaded",
        {
            "kind": "get",
            "concurrency": s.seatmap_concurrency,
            "urls": [[path, "full_loaded"]],
            "max_requests": s.seatmap_cold * 2,
            "max_seconds": s.seatmap_max_seconds * 0.75,
        },
    )
    not_modified = run_load(
        b.stack,
        "seat-map-304",
        {
            "kind": "get",
            "concurrency": 1,
            "urls": [[path, "not_modified"]],
            "headers": {"If-None-Match": etag},
            "max_requests": s.seatmap_warm // 5,
            "max_seconds": s.seatmap_max_seconds / 2,
        },
    )
    not_modified_loaded = run_load(
        b.stack,
        "seat-map-304-loaded",
        {
            "kind": "get",
            "concurrency": s.seatmap_concurrency,
            "urls": [[path, "not_modified_loaded"]],
            "headers": {"If-None-Match": etag},
            "max_requests": s.seatmap_warm,
            "max_seconds": s.seatmap_max_seconds / 2,
        },
    )
    return {
        "scenario": "seat-map",
        "seats": show.seats,
        "etag_example": etag,
        "versions_seen": len(set(etags)),
        "content_encoding": encodings,
        "phases": {
            "cold": {**_phase(cold, "cold"), "note": "first GET after a hold or cancel changed the map (1 client)"},
            "not_modified_after_change": _phase(cold, "not_modified"),
            "changes": _phase(cold, "bust"),
            "repeat_full": {
                **_phase(repeat, "repeat"),
                "note": "GET without If-None-Match, version unchanged (a cache may answer)",
            },
            "full_loaded": _phase(loaded_full, "full_loaded"),
            "not_modified": _phase(not_modified, "not_modified"),
            "not_modified_loaded": _phase(not_modified_loaded, "not_modified_loaded"),
        },
        "cpu": {
            "cold": cold.cpu,
            "repeat_full": repeat.cpu,
            "full_loaded": loaded_full.cpu,
            "not_modified": not_modified.cpu,
            "not_modified_loaded": not_modified_loaded.cpu,
        },
        "seed": b.seated_seed,
        "log_findings": b.stack.log_findings(offsets),
    }


# --------------------------------------------------------------------------------------------
# browse


def _browse_urls(rng: random.Random, catalog: seed.Catalog, n: int) -> list[list[str]]:
    """A fixed mix of listing queries: (path, kind)."""
    today = datetime.now(UTC).date()
    words = [*seed.GENRES, *(a.lower() for a in seed.ADJECTIVES), *(w.lower() for w in seed.NOUNS)]

    def window() -> dict[str, str]:
        start = today + timedelta(days=rng.randint(0, 330))
        return {"date_from": f"{start}T00:00:00Z", "date_to": f"{start + timedelta(days=30)}T00:00:00Z"}

    def prices() -> dict[str, str]:
        low = rng.randint(10, 150)
        return {"price_min": f"{low}.00", "price_max": f"{low + rng.randint(10, 100)}.00"}

    makers: list[tuple[str, Callable[[], dict[str, str]]]] = [
        ("plain", lambda: {"page": str(rng.randint(1, 5))}),
        ("q", lambda: {"q": rng.choice(words), "sort": "relevance"}),
        ("q_two_words", lambda: {"q": f"{rng.choice(seed.ADJECTIVES)} {rng.choice(seed.NOUNS)}".lower()}),
        ("city", lambda: {"city": rng.choice(catalog.cities)}),
        ("city_dates", lambda: {"city": rng.choice(catalog.cities), **window()}),
        ("prices", lambda: {**prices(), "sort": "price"}),
        ("available_by_price", lambda: {"available": "true", "sort": rng.choice(("price", "-price"))}),
        (
            "combined",
            lambda: {
                "q": rng.choice(seed.GENRES),
                "city": rng.choice(catalog.cities),
                "available": "true",
                "sort": "price",
            },
        ),
    ]
    urls = []
    for i in range(n):
        kind, make = makers[i % len(makers)]
        urls.append([f"/api/v1/events?{urlencode(make())}", kind])
    return urls


def browse(b: Bench) -> dict[str, Any]:
    """Listing search with filters over 10,000 published events."""
    s = b.scale
    offsets = b.stack.log_offsets()
    log(f"browse: seeding {s.browse_events} events at {s.browse_venues} venues")
    catalog = seed.seed_catalog(b.writer, b.people.organizer_id, s.browse_events, s.browse_venues, b.rng)
    caught_up = b.stack.wait_caught_up(catalog.position)
    log(f"browse: seeded in {catalog.seconds:.1f}s, projection caught up in {caught_up['seconds']:.1f}s")
    urls = _browse_urls(random.Random(11), catalog, 4000)
    # What each kind of query finds, so the latencies are not those of empty answers.
    found: dict[str, list[int]] = {}
    for path, kind in urls[:64]:
        status, body = b.stack.get_json(path)
        if status == 200:
            found.setdefault(kind, []).append(int(body["pagination"]["total_items"]))
    single = run_load(
        b.stack,
        "browse-single",
        {"kind": "get", "concurrency": 1, "urls": urls, "max_seconds": s.browse_seconds / 2},
    )
    loaded = run_load(
        b.stack,
        "browse-loaded",
        {"kind": "get", "concurrency": s.browse_concurrency, "urls": urls, "max_seconds": s.browse_seconds},
    )
    # The home page (server-rendered HTML, the same search through the listing cache) under the
    # same load: every tenth request of the 16 clients is a home page, plain or with the search
    # of the listing query before it (all kinds of query in turn).
    with_home = [item for i, url in enumerate(urls) for item in ([url, _home_url(i, url)] if i % 9 == 8 else [url])]
    home = run_load(
        b.stack,
        "browse-home",
        {"kind": "get", "concurrency": s.browse_concurrency, "urls": with_home, "max_seconds": s.browse_seconds},
    )
    kinds = sorted({k for _, k in urls})
    return {
        "scenario": "browse",
        "events": s.browse_events,
        "venues": s.browse_venues,
        "phases": {
            "single": {**_phase_all(single), "note": "one client"},
            "loaded": {**_phase_all(loaded), "note": f"{s.browse_concurrency} clients, closed loop"},
            "home": {
                **_phase_all(home),
                "home_page_ms": latency_ms(home.of("home")),
                "home_pages": len(home.of("home")),
                "note": f"{s.browse_concurrency} clients, closed loop, every tenth request GET / (HTML)",
            },
        },
        "by_kind_loaded_ms": {k: latency_ms(loaded.of(k)) for k in kinds},
        "total_items_by_kind": {k: {"min": min(v), "max": max(v)} for k, v in sorted(found.items())},
        "cpu": {"single": single.cpu, "loaded": loaded.cpu, "home": home.cpu},
        "seed": {
            "seconds": round(catalog.seconds, 3),
            "store_events_written": catalog.store_events_written,
            "projection_catch_up_s": caught_up["seconds"],
            "write_path": "workaround (no pipeline)" if b.writer.workaround else "BoxOffice.save",
        },
        "log_findings": b.stack.log_findings(offsets),
    }


def _home_url(i: int, api_url: list[str]) -> list[str]:
    """A home page: plain, or with the search of the API request beside it (the page's form
    takes the listing's filters)."""
    query = api_url[0].partition("?")[2]
    return ["/" if i % 18 == 8 else f"/?{query}", "home"]


def _phase_all(run: LoadRun) -> dict[str, Any]:
    seconds = elapsed(run)
    return {
        "requests": len(run.records),
        "concurrency": run.concurrency,
        "requests_per_s": _rate(len(run.records), seconds),
        "outcomes": outcomes(run.records),
        "latency_ms": latency_ms(run.records),
    }


# --------------------------------------------------------------------------------------------
# replay


def _store_size(b: Bench) -> int:
    recorder: Any = b.app.recorder
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(f"SELECT count(*) AS n FROM {recorder.events_table_name}")
        row = curs.fetchone()
    return int(row["n"])


def replay(b: Bench, budget_s: float) -> dict[str, Any]:
    """Rebuild every read model from a store of at least `replay_events` events."""
    s = b.scale
    b.stack.stop_app()  # an offline rebuild: no live runner competing, no API traffic
    before = _store_size(b)
    log(f"replay: store holds {before} events; writing sales history up to {s.replay_events}")
    buyers = [p.account_id for p in b.people.buyers]
    history = seed.seed_history(b.writer, b.people.organizer_id, buyers, s.replay_events - before, b.rng)
    total = _store_size(b)
    log(f"replay: {total} events in the store (history written in {history.seconds:.1f}s); rebuilding")
    env = {**b.stack.env, "PYTHONUNBUFFERED": "1"}
    deadline = time.monotonic() + budget_s
    models: dict[str, Any] = {}
    snap_all = b.stack.meter.snapshot()
    # One pass for every read model, as `ticketing projections rebuild` does it.
    for model in ("all",):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            models[model] = {"skipped": "time budget spent"}
            continue
        snap = b.stack.meter.snapshot()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "bench.rebuild", model],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=remaining,
                check=False,
            )
        except subprocess.TimeoutExpired:
            models[model] = {"timed_out_after_s": round(remaining, 1)}
            continue
        cpu = usage(snap, b.stack.meter.snapshot())
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The child has exited and been reaped: its whole CPU, start-up and imports included.
        process_cpu = (children_after.ru_utime - children_before.ru_utime) + (
            children_after.ru_stime - children_before.ru_stime
        )
        if done.returncode != 0:
            models[model] = {"failed": done.stderr.decode(errors="replace")[-2000:]}
            continue
        result = json.loads(done.stdout.decode().strip().splitlines()[-1])
        models[model] = {
            "applied": result["applied"],
            "applied_by_model": result.get("by_model", {}),
            "seconds": result["seconds"],
            "applied_per_s": _rate(result["applied"], result["seconds"]),
            "store_events_per_s": _rate(total, result["seconds"]),
            "cpu_s": {
                "rebuild": result["cpu_s"],  # as the child measured it, around rebuild() only
                "rebuild_process": round(process_cpu, 3),  # with interpreter start-up and imports
                "postgres": cpu["by_group_s"].get("postgres", 0.0),
            },
        }
        log(f"replay: {model} rebuilt in {result['seconds']:.1f}s ({result['applied']} events applied)")
    cpu_all = usage(snap_all, b.stack.meter.snapshot())
    rebuild_cpu = sum(m["cpu_s"]["rebuild_process"] for m in models.values() if "cpu_s" in m)
    cpu_all["by_group_s"]["rebuild_processes"] = round(rebuild_cpu, 3)
    cpu_all["server_s"] = round(cpu_all["server_s"] + rebuild_cpu, 3)
    cpu_all["other_s"] = round(cpu_all["other_s"] - rebuild_cpu, 3)
    cpu_all["note"] = "server_s = the rebuild processes + Postgres (the API and workers are stopped)"
    finished = [m for m in models.values() if "seconds" in m]
    seconds = sum(m["seconds"] for m in finished)
    complete = bool(finished) and len(finished) == len(models)
    return {
        "scenario": "replay",
        "events_in_store": total,
        "complete": complete,
        "seconds": round(seconds, 3),
        "events_per_s": _rate(total, seconds) if complete else None,
        "definition": "events in the store / wall time of rebuilding every read model, one pass over the "
        "store per group of models, two groups side by side (python -m bench.rebuild all, i.e. "
        "ticketing projections rebuild)",
        "models": models,
        "cpu": cpu_all,
        "seed": {
            "history_events_written": history.events_written,
            "history_seconds": round(history.seconds, 3),
            "history_events_per_s": _rate(history.events_written, history.seconds),
            "shows": history.shows,
            "orders": history.orders,
            "order_outcomes": history.outcomes,
            "write_path": "workaround (no pipeline)" if b.writer.workaround else "BoxOffice.save",
        },
    }
