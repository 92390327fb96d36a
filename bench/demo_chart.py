"""`python -m bench.demo_chart`: the README's sales-over-time chart, from the demo show.

`ticketing demo` puts the demo show on sale but sells nothing, so its chart would be empty. This
loads the demo data into a fresh store under .data/demo-chart (embedded Postgres), sells the
demo show's standing offer over the three weeks before today through the aggregates themselves
and, from the second week, its numbered seats (orders of 1-4 tickets placed at those times, 85%
paid a few minutes later, the rest expired; seeded, so the chart is the same each time), and writes the chart the way
`ticketing report sales-over-time --event <demo show> --bucket day --format png` does.
"""

from __future__ import annotations

import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from commands.demo import DEMO_EVENT
from commands.tickets_signing import human_code
from domain.ids import seat_id
from domain.order import Order, OrderItem
from domain.seat import Seat
from projections.reports.source import Source
from ticketing import ROOT, Settings, load_demo, migrate, open_accounts, open_boxoffice
from workers.embedded import EmbeddedServices
from workers.reports import run_report

ORDERS = 400
DAYS = 21


def sell(settings: Settings, offer_id: UUID, seat_offer: UUID, rng: random.Random) -> None:
    app = open_boxoffice(settings)
    try:
        offer, seat_price = app.get_offer(offer_id), app.get_offer(seat_offer).price
        opened = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
        # Most orders in the first days after the on-sale, a second rush in the last week.
        times = sorted(
            opened + timedelta(days=min(DAYS - 0.01, rng.expovariate(1 / 2.5) if rng.random() < 0.7 else
                                        rng.uniform(DAYS - 7, DAYS)))
            for _ in range(ORDERS)
        )  # fmt: skip
        # Numbered seats from the second week on: runs of 1-4 in a row, front rows first.
        rows = [[f"{section}/{row}/{n}" for n in range(1, 21)] for row in "ABCDEFGHIJ"
                for section in ("Centre", "Left", "Right")]  # fmt: skip
        orders: list[Order] = []
        seats: list[Seat] = []
        for at in times:
            order_id = uuid4()
            if at > opened + timedelta(days=7) and rng.random() < 0.5:
                row = next(r for r in rows if r)
                group: list[Seat] = [app.repository.get(seat_id(DEMO_EVENT, k)) for k in row[: rng.randint(1, 4)]]
                del row[: len(group)]
                for seat in group:
                    seat.hold(order_id, at + timedelta(minutes=15))
                items: list[OrderItem] = [
                    {"offer_id": seat_offer, "tier_id": seat.tier_id, "seat_id": seat.id, "quantity": 1,
                     "seat_label": f"{seat.section} {seat.row}-{seat.label}", "unit_price": seat_price}
                    for seat in group
                ]  # fmt: skip
                seats += group
            else:
                group, quantity = [], rng.randint(1, 4)
                offer.claim(order_id, quantity)
                items = [{"offer_id": offer.id, "tier_id": offer.tier_id, "seat_id": None, "seat_label": None,
                          "quantity": quantity, "unit_price": offer.price}]  # fmt: skip
            order = Order.place(
                order_id=order_id, buyer_id=uuid4(), event_id=DEMO_EVENT, currency="EUR", fee_basis_points=0,
                fee_fixed=0, at=at, hold_until=at + timedelta(minutes=15), items=items,
            )  # fmt: skip
            paid = rng.random() < 0.85
            if paid:
                for seat in group:
                    seat.sell(order_id)
                if not group:
                    offer.sell(order_id, quantity)
                order.pay(f"pi_demo_{order_id.hex}", order.total, at + timedelta(minutes=rng.uniform(1, 10)))
            else:
                order.expire(at + timedelta(minutes=16))
                for seat in group:
                    seat.release(order_id)
                if not group:
                    offer.release(order_id, quantity)
            orders.append(order)
        app.save(offer, *orders, *seats)
    finally:
        app.close()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "sales-over-time.png"
    data = ROOT / ".data" / "demo-chart"
    data.mkdir(parents=True, exist_ok=True)
    with EmbeddedServices(data, os.environ, fresh=True) as overrides:
        settings = Settings.from_env({**os.environ, **overrides, "DATA_DIR": str(data)})
        migrate(settings)
        lines = load_demo(settings)
        offers = next(line.split() for line in lines if line.startswith("offers"))  # offers GA <id> seated <id>
        sell(settings, UUID(offers[2]), UUID(offers[4]), random.Random(15))
        boxoffice, accounts = open_boxoffice(settings), open_accounts(settings)
        try:
            said = run_report(Source(boxoffice, accounts), "sales-over-time", event_id=DEMO_EVENT, start=None,
                              end=None, fmt="png", out=str(out), options={"bucket": "day"},
                              ticket_code=human_code)  # fmt: skip
        finally:
            boxoffice.close()
            accounts.close()
    sys.stdout.write(said + "\n")


if __name__ == "__main__":
    main()
