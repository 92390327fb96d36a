"""Every controller under /api/v1, in one list (the app factory mounts it), with the error
responses of the contract documented on every operation."""

from __future__ import annotations

from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from api.accounts import AuthController
from api.admin import AdminAccountsController, AdminEventsController, PayoutController
from api.categories import CategoryController, CategoryEditController
from api.door import DoorController
from api.errors import ErrorBody
from api.events import EventController, OrganizerController
from api.history import HistoryController
from api.offers import OfferController, ShowOffersController, TierController
from api.orders import OrderController
from api.privacy import AccountErasureController, MyErasureController
from api.report_files import ReportFileController
from api.reports import ReportController
from api.seatmaps import SeatMapController
from api.tickets import MyTicketsController, OrderAttendeesController, TicketController
from api.venues import VenueController
from api.waitlist import MyWaitlistController, OfferWaitlistController, WaitlistController
from api.webhooks import WebhookController

ERRORS = {
    400: "Malformed JSON (or a bad webhook signature)",
    401: "Not authenticated, or a bad or expired token",
    403: "Authenticated but not allowed",
    404: "Unknown id, or a resource the caller may not see",
    409: "State conflict: sold out, seat taken, wrong lifecycle state, duplicate",
    410: "The hold has expired",
    413: "Request body too large",
    415: "Request body is not JSON",
    422: "Validation failed; see field_errors",
    429: "Rate limited; see Retry-After",
    503: "Busy or read models catching up; retry after Retry-After",
}


def document_errors(controllers: list[Any]) -> list[Any]:
    """Give every operation the contract's error shape for the 4xx/5xx it can answer.

    Litestar would otherwise document its own default error body, which this API never sends.
    """
    responses = {code: ResponseSpec(data_container=ErrorBody, description=text) for code, text in ERRORS.items()}
    for controller in controllers:
        for handler in vars(controller).values():
            if isinstance(handler, HTTPRouteHandler):
                handler.responses = {**responses, **(handler.responses or {})}
    return controllers


API_ROUTES: list[Any] = document_errors(
    [
        AuthController,
        MyErasureController,
        AccountErasureController,
        VenueController,
        CategoryController,
        CategoryEditController,
        AdminAccountsController,
        AdminEventsController,
        PayoutController,
        EventController,
        OrganizerController,
        ShowOffersController,
        TierController,
        OfferController,
        SeatMapController,
        DoorController,
        ReportController,
        ReportFileController,
        HistoryController,
        OrderController,
        OrderAttendeesController,
        MyTicketsController,
        TicketController,
        OfferWaitlistController,
        MyWaitlistController,
        WaitlistController,
        WebhookController,
    ]
)
