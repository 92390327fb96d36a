"""Web pages for people (API.md "Web pages"), served by the API's Litestar app outside /api/v1.

Server-rendered HTML (Jinja2 templates in `templates/`) with a little JavaScript of our own in
`static/` (progressive enhancement: the seat picker, the hold's countdown, the door scanner). The
pages call the same commands and read models as the JSON routes; their scripts call the JSON
routes with the session cookie and the CSRF header. Controllers by page group:

    session.py    /login, /register, /logout (cookie session, CSRF field in every form)
    shop.py       /, /e/{event_id} (listing, event page with the seat map, hold)
    checkout.py   /checkout/{order_id} (countdown, pay), /me (orders, tickets, waitlist)
    mytickets.py  /me/tickets/{id}/… (attendee name, pass on, refund)
    organizer.py  /organizer (own events, sales, chart, attendee CSV)
    manage.py     /organizer/events/… (new draft, tiers and offers, publish, cancel)
    scan.py       /scan/{event_id} (door scanner)
    admin.py      /admin (accounts, categories, venue layouts)
    devpay.py     paying with localstripe's test cards (development only)
"""

from __future__ import annotations

from pathlib import Path

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from api.web.admin import AdminPagesController
from api.web.checkout import CheckoutController
from api.web.manage import ManageController
from api.web.mytickets import MyTicketsPagesController
from api.web.organizer import OrganizerPagesController
from api.web.scan import ScanController
from api.web.session import SessionController
from api.web.shop import ShopController

HERE = Path(__file__).resolve().parent


def web_routes() -> list[ControllerRouterHandler]:
    static = create_static_files_router(
        path="/static/web", directories=[HERE / "static"], include_in_schema=False, opt={"exclude_from_auth": True}
    )
    return [
        SessionController,
        ShopController,
        CheckoutController,
        MyTicketsPagesController,
        OrganizerPagesController,
        ManageController,
        ScanController,
        AdminPagesController,
        static,
    ]


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)
