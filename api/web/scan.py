"""`/scan/{event_id}`: the door scanner. Its script (static/scan.js) posts each code to the
check-in route, POST /api/v1/events/{id}/check-ins, with the session cookie and the CSRF
header, and shows a big green answer for a first scan and a red one otherwise. Offline it
verifies codes in the browser with the scanner kit's public key (WebCrypto Ed25519), queues the
scans and syncs them to POST …/check-ins/batch when the network is back; it reads QR codes with
the camera where the browser has BarcodeDetector."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get

from api.door import may_scan
from api.services import Services
from api.web.common import page_error, render, to_login, user_of
from domain.errors import Forbidden, NotFound


class ScanController(Controller):
    path = "/scan"
    include_in_schema = False

    @get("/{event_id:uuid}", exclude_from_auth=True)
    async def scanner(self, request: Request[Any, Any, Any], services: Services, event_id: UUID) -> Response[Any]:
        user = user_of(request)
        if user is None:
            return to_login(request)
        try:
            event = await may_scan(services, user, event_id)
        except NotFound:
            return page_error(request, "Event not found", "There is no such event.", 404)
        except Forbidden:
            return page_error(request, "Not a scanner", "You do not work the door of this event.", 403)
        return render(request, "scan.html", event=event)
