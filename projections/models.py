"""The read models, by name, and how to open them on a store's settings (an `eventsourcing` env)."""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment

from projections.base import SCHEMA, ReadModel, ReadModelView
from projections.catalog import CatalogProjection
from projections.holds import HoldsProjection
from projections.orders import OrdersProjection
from projections.tickets import TicketsProjection
from projections.waitlist import WaitlistProjection

READ_MODELS: dict[str, type[ReadModel[Any]]] = {
    p.name: p for p in (CatalogProjection, OrdersProjection, HoldsProjection, TicketsProjection, WaitlistProjection)
}


def open_view(
    env: dict[str, str], projection_class: type[ReadModel[Any]], *, create_tables: bool = False
) -> ReadModelView:
    """A read model's view (tables and tracking) in the `read` schema of the store `env` names."""
    view_env = {**env, "POSTGRES_SCHEMA": SCHEMA, "POSTGRES_POOL_SIZE": "2",
                "CREATE_TABLE": "y" if create_tables else "n"}  # fmt: skip
    factory = PostgresFactory(Environment(projection_class.name, view_env))
    return factory.tracking_recorder(projection_class.view_class)


def open_projection(env: dict[str, str], name: str) -> ReadModel[Any]:
    projection_class = READ_MODELS[name]
    return projection_class(view=open_view(env, projection_class))
