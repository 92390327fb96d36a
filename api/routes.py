"""Every controller under /api/v1, in one list (the app factory mounts it)."""

from __future__ import annotations

from typing import Any

from api.auth import AuthController
from api.categories import CategoryController
from api.events import ROUTES as EVENT_ROUTES
from api.orders import OrderController
from api.tickets import MyTicketsController, TicketController
from api.venues import VenueController
from api.webhooks import WebhookController

API_ROUTES: list[Any] = [
    AuthController,
    VenueController,
    CategoryController,
    *EVENT_ROUTES,
    OrderController,
    MyTicketsController,
    TicketController,
    WebhookController,
]
