"""Scenario sizes (full and `--quick`) and the targets from the performance issue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SCENARIOS = (
    "hot-ga", "hot-seats", "seat-map", "browse", "hot-funnel", "hot-ga-long", "many-shows", "expiry",
    "replay", "report", "hold-latency",
)  # fmt: skip
# Scenarios that need the API and its workers; `replay` and `report` run with them stopped.
HTTP_SCENARIOS = frozenset(
    {"hot-ga", "hot-seats", "seat-map", "browse", "hot-funnel", "hot-ga-long", "many-shows", "expiry", "hold-latency"}
)


@dataclass(frozen=True)
class Scale:
    """How big each scenario is. Every count is bounded and every load phase has a time limit."""

    name: str
    accounts: int
    # hot-ga: one general-admission offer, buyers take 1-4 tickets each.
    ga_tickets: int
    ga_buyers: int
    ga_rejections_after_sellout: int
    ga_max_seconds: float
    # hot-seats: sections x rows x seats; buyers pick 2-4 adjacent seats near the stage.
    seat_sections: int
    seat_rows: int
    seats_per_row: int
    seat_buyers: int
    # Mean rank (among rows that still have free seats, best first) of the row a buyer tries.
    seat_front_rank: float
    seat_max_seconds: float
    # seat-map: the first-render phase may take seatmap_max_seconds, the others less (see scenarios)
    seatmap_cold: int
    seatmap_warm: int
    seatmap_concurrency: int
    seatmap_max_seconds: float
    # browse
    browse_events: int
    browse_venues: int
    browse_seconds: float
    browse_concurrency: int
    # hot-funnel: one offer, buyers hold 1-2 tickets, pay, and Stripe's webhook confirms.
    funnel_tickets: int
    funnel_buyers: int
    funnel_rejections_after_sellout: int
    funnel_max_seconds: float
    # hot-ga-long: one offer sold one ticket per order (ga_buyers buyers).
    long_tickets: int
    long_max_seconds: float
    # many-shows: this many GA shows on sale at once (ga_buyers buyers).
    many_shows: int
    many_tickets: int
    # replay: total events the store holds before the rebuild.
    replay_events: int
    # report: total events the store holds, and the orders of the show whose report is timed.
    report_events: int
    report_show_orders: int
    # hold-latency: wrk's closed-loop connections (one phase each) and seconds per phase.
    latency_connections: tuple[int, ...]
    latency_seconds: float

    @property
    def seats(self) -> int:
        return self.seat_sections * self.seat_rows * self.seats_per_row


FULL = Scale(
    name="full",
    accounts=50,
    ga_tickets=20_000,
    ga_buyers=500,
    ga_rejections_after_sellout=5_000,
    ga_max_seconds=180,
    seat_sections=10,
    seat_rows=40,
    seats_per_row=50,
    seat_buyers=500,
    seat_front_rank=20,
    seat_max_seconds=180,
    seatmap_cold=100,
    seatmap_warm=5_000,
    seatmap_concurrency=16,
    seatmap_max_seconds=60,
    browse_events=10_000,
    browse_venues=200,
    browse_seconds=30,
    browse_concurrency=16,
    funnel_tickets=20_000,
    funnel_buyers=500,
    funnel_rejections_after_sellout=1_000,
    funnel_max_seconds=180,
    long_tickets=200_000,
    long_max_seconds=300,
    many_shows=20,
    many_tickets=1_000,
    replay_events=1_000_000,
    report_events=1_000_000,
    report_show_orders=20_000,
    latency_connections=(50, 500),
    latency_seconds=30,
)

QUICK = Scale(
    name="quick",
    accounts=20,
    ga_tickets=2_000,
    ga_buyers=200,
    ga_rejections_after_sellout=500,
    ga_max_seconds=60,
    seat_sections=5,
    seat_rows=20,
    seats_per_row=20,
    seat_buyers=200,
    seat_front_rank=8,
    seat_max_seconds=60,
    seatmap_cold=20,
    seatmap_warm=1_000,
    seatmap_concurrency=16,
    seatmap_max_seconds=30,
    browse_events=1_000,
    browse_venues=40,
    browse_seconds=8,
    browse_concurrency=16,
    funnel_tickets=2_000,
    funnel_buyers=200,
    funnel_rejections_after_sellout=200,
    funnel_max_seconds=60,
    long_tickets=20_000,
    long_max_seconds=60,
    many_shows=20,
    many_tickets=100,
    replay_events=50_000,
    report_events=60_000,
    report_show_orders=2_000,
    latency_connections=(50, 500),
    latency_seconds=5,
)


@dataclass(frozen=True)
class Target:
    """A figure from the issue: `metric` is a dotted path into the scenario's JSON summary."""

    scenario: str
    metric: str
    op: Literal[">=", "<", "=="]
    value: float
    label: str


TARGETS = (
    Target("hot-ga", "orders_per_s", ">=", 1000, "successful orders/s until sold out"),
    Target("hot-ga", "latency_ms.all.p99", "<", 250, "p99 latency of POST /orders (ms)"),
    Target("hot-ga", "errors.total", "==", 0, "errors (5xx, timeouts, unexpected codes)"),
    Target("hot-ga", "invariants.violations", "==", 0, "oversold / lost / phantom orders"),
    Target("hot-seats", "orders_per_s", ">=", 1000, "successful orders/s until sold out"),
    Target("hot-seats", "latency_ms.all.p99", "<", 250, "p99 latency of POST /orders (ms)"),
    Target("hot-seats", "collisions_not_409", "==", 0, "collisions not answered 409 seat_taken"),
    Target("hot-seats", "invariants.violations", "==", 0, "double-booked / lost / phantom orders"),
    Target("seat-map", "phases.cold.latency_ms.p50", "<", 15, "p50 of a full GET after a change (ms)"),
    Target("seat-map", "phases.not_modified.latency_ms.p50", "<", 2, "p50 of a 304 (ms)"),
    Target("browse", "phases.loaded.latency_ms.p99", "<", 30, "p99 of GET /events under load (ms)"),
    Target("browse", "phases.home.home_page_ms.p99", "<", 50, "p99 of the home page (HTML) under that load (ms)"),
    Target("hot-funnel", "purchases_per_s", ">=", 1000, "completed purchases/s (hold, payment, webhook, tickets)"),
    Target("hot-funnel", "latency_ms.hold.p99", "<", 250, "p99 of the hold, POST /orders (ms)"),
    Target("hot-funnel", "latency_ms.payment.p99", "<", 250, "p99 of POST /orders/{id}/payment (ms)"),
    Target("hot-funnel", "latency_ms.webhook.p99", "<", 250, "p99 of POST /webhooks/stripe (ms)"),
    Target("hot-funnel", "issuance_lag_ms.p99", "<", 1000, "p99 from the webhook to the tickets issued (ms)"),
    Target("hot-funnel", "invariants.violations", "==", 0, "oversold / lost payments or tickets"),
    Target("hot-ga-long", "selling_s", ">=", 50, "seconds of selling"),
    Target("hot-ga-long", "last_10s_vs_first_10s", ">=", 0.9, "orders in the last 10 s / in the first 10 s"),
    Target("hot-ga-long", "memory_mib.end_vs_10s", "<", 1.1, "service memory at the end / after 10 s"),
    Target("hot-ga-long", "invariants.violations", "==", 0, "oversold / lost / phantom orders"),
    Target("many-shows", "orders_per_s", ">=", 1000, "successful orders/s over 20 shows"),
    Target("many-shows", "latency_ms.all.p99", "<", 250, "p99 latency of POST /orders (ms)"),
    Target("many-shows", "invariants.violations", "==", 0, "oversold / lost / phantom orders"),
    Target("expiry", "seconds_to_back_on_sale", "<", 30, "25,000 lapsed holds back on sale, slower path (s)"),
    Target("replay", "events_per_s", ">=", 20_000, "rebuild of all read models (store events/s)"),
    Target("report", "show.seconds", "<", 1, "sales over time of the show with 20,000 orders (s)"),
    Target("report", "store.events_per_s", ">=", 100_000, "summary of the whole store (store events/s)"),
    Target("hold-latency", "phases.50.holds_per_s", ">=", 3800, "holds/s, wrk with 50 connections"),
    Target("hold-latency", "phases.50.latency_ms.p99", "<", 25, "p99 of a hold, wrk with 50 connections (ms)"),
    Target("hold-latency", "phases.500.holds_per_s", ">=", 6000, "holds/s, wrk with 500 connections"),
    Target("hold-latency", "phases.50.invariants.violations", "==", 0, "store vs 201s wrk counted (50)"),
    Target("hold-latency", "phases.500.invariants.violations", "==", 0, "store vs 201s wrk counted (500)"),
)
