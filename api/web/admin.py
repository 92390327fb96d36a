"""The admin's pages (`/admin`): accounts (search, role, disable), the category tree (create,
rename, delete) and venues with their seating layout (a JSON file uploaded through a form,
previewed as SVG). Each form calls the same code as the JSON route (api/admin.py,
api/categories.py, api/venues.py)."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile

from api.admin import Role, administer, list_accounts
from api.categories import LEVEL_NAMES, add_category, delete_category, rename_category
from api.inputs import FILE_FORM_BODY, check_json
from api.security import CSRF_IN_FORM, Principal, require_form_csrf
from api.services import Services
from api.venues import LayoutUpdate
from api.web.common import FORM, error_status, first, form_of, page_error, render, see_other, to_login, user_of
from domain.errors import DomainError
from projections import queries

PARENT = {"genre": "segment", "sub_genre": "genre"}
MAX_LAYOUT_BYTES = 1_000_000


def _admin(request: Request[Any, Any, Any]) -> Principal | Response[Any]:
    """The signed-in admin, else the answer to give instead (303 to /login, or 403)."""
    user = user_of(request)
    if user is None:
        return to_login(request)
    if user.role != "admin":
        return page_error(request, "Admins only", "This page is for administrators.", 403)
    return user


class AdminPagesController(Controller):
    path = "/admin"
    include_in_schema = False

    @get("/", exclude_from_auth=True)
    async def home(
        self, request: Request[Any, Any, Any], services: Services, q: str = "", role: str = "", page: int = 1
    ) -> Response[Any]:
        user = _admin(request)
        if not isinstance(user, Principal):
            return user
        return await _home(request, services, q[:200], role, max(1, min(page, 100_000)), "")

    @post("/accounts/{account_id:uuid}", exclude_from_auth=True, opt=FORM, status_code=303)
    async def account(self, request: Request[Any, Any, Any], services: Services, account_id: UUID) -> Response[Any]:
        """Role and disabled flag (as PATCH /admin/accounts/{id})."""
        user = _admin(request)
        if not isinstance(user, Principal):
            return user
        fields = await form_of(request)
        try:
            role = msgspec.convert(first(fields, "role", 20), Role)
            await administer(services, user, account_id, role, first(fields, "disabled", 5) == "yes")
        except msgspec.ValidationError:
            return await _home(request, services, "", "", 1, "Unknown role.", 422)
        except DomainError as error:
            return await _home(request, services, "", "", 1, str(error), error_status(error))
        return see_other("/admin")

    @post("/categories", exclude_from_auth=True, opt=FORM, status_code=303)
    async def create_category(self, request: Request[Any, Any, Any], services: Services) -> Response[Any]:
        """A segment (no parent), or a genre or sub-genre under the chosen parent."""
        user = _admin(request)
        if not isinstance(user, Principal):
            return user
        fields = await form_of(request)
        name, parent = first(fields, "name", 100), first(fields, "parent_id", 40)
        try:
            parent_id = UUID(parent) if parent else None
            parent_level = ""
            if parent_id is not None:
                async with services.pool.connection() as conn:
                    row = await queries.category(conn, parent_id)
                parent_level = row["level"] if row else "segment"
            await add_category(services, user.id, name, parent_id, parent_level)
        except ValueError:
            return await _home(request, services, "", "", 1, "Unknown parent category.", 422)
        except DomainError as error:
            return await _home(request, services, "", "", 1, str(error), error_status(error))
        return see_other("/admin#categories")

    @post("/categories/{category_id:uuid}", exclude_from_auth=True, opt=FORM, status_code=303)
    async def edit_category(
        self, request: Request[Any, Any, Any], services: Services, category_id: UUID
    ) -> Response[Any]:
        """Rename (`name`) or, with `delete=yes`, delete when unused."""
        user = _admin(request)
        if not isinstance(user, Principal):
            return user
        fields = await form_of(request)
        async with services.pool.connection() as conn:
            row = await queries.category(conn, category_id)
        if row is None:
            return page_error(request, "Not found", "There is no such category.", 404)
        try:
            if first(fields, "delete", 5) == "yes":
                await delete_category(services, user.id, category_id, row["level"])
            else:
                await rename_category(services, user.id, category_id, row["level"], first(fields, "name", 100))
        except DomainError as error:
            return await _home(request, services, "", "", 1, str(error), error_status(error))
        return see_other("/admin#categories")

    @get("/venues/{venue_id:uuid}", exclude_from_auth=True)
    async def venue(self, request: Request[Any, Any, Any], services: Services, venue_id: UUID) -> Response[Any]:
        user = _admin(request)
        if not isinstance(user, Principal):
            return user
        return await _venue_page(request, services, venue_id, "")

    @post(
        "/venues/{venue_id:uuid}/layout",
        exclude_from_auth=True,
        opt={FILE_FORM_BODY: True, CSRF_IN_FORM: True},
        status_code=303,
    )
    async def layout(self, request: Request[Any, Any, Any], services: Services, venue_id: UUID) -> Response[Any]:
        """A layout file (the JSON of PUT /venues/{id}/layout) through a form."""
        user = _admin(request)
        if not isinstance(user, Principal):
            return user
        form = await request.form()
        csrf = form.get("_csrf")
        require_form_csrf(request, csrf if isinstance(csrf, str) else "")
        upload = form.get("layout")
        if not isinstance(upload, UploadFile):
            return await _venue_page(request, services, venue_id, "Choose a layout file.", 422)
        raw = await upload.read(MAX_LAYOUT_BYTES + 1)
        try:
            if len(raw) > MAX_LAYOUT_BYTES:
                raise msgspec.ValidationError("the file is larger than 1 MB")
            decoded = msgspec.json.decode(raw)
            check_json(decoded)
            data = msgspec.convert(decoded, LayoutUpdate)
            sections = msgspec.to_builtins(data.sections)
            await services.command(lambda: services.boxoffice.set_venue_layout(venue_id, sections), actor=user.id)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as invalid:
            return await _venue_page(request, services, venue_id, f"This is not a layout: {invalid}", 422)
        except DomainError as error:
            return await _venue_page(request, services, venue_id, str(error), error_status(error))
        return see_other(f"/admin/venues/{venue_id}")


async def _home(
    request: Request[Any, Any, Any], services: Services, q: str, role: str, page: int, error: str, status: int = 200
) -> Response[Any]:
    role_filter = role if role in ("attendee", "organizer", "admin") else None
    accounts = await list_accounts(services, q, role_filter, page, 50)
    async with services.pool.connection() as conn:
        categories = await queries.category_tree(conn)
        venues, _ = await queries.list_venues(conn, 1, 100, None)
    children: dict[Any, list[dict[str, Any]]] = {}
    for row in categories:
        children.setdefault(row["parent_id"], []).append(row)
    return render(request, "admin.html", status=status, accounts=accounts, q=q, role=role_filter or "",
                  children=children, level_names=LEVEL_NAMES, venues=venues, error=error)  # fmt: skip


async def _venue_page(
    request: Request[Any, Any, Any], services: Services, venue_id: UUID, error: str, status: int = 200
) -> Response[Any]:
    try:
        venue = await services.call(lambda: services.boxoffice.get_venue(venue_id))
    except DomainError as refused:
        return page_error(request, "Not found", str(refused), error_status(refused))
    return render(request, "admin_venue.html", status=status, venue=venue, preview=layout_preview(venue.sections),
                  error=error)  # fmt: skip


def layout_preview(sections: list[Any]) -> dict[str, Any]:
    """Seats as circles in the layout's own coordinates, and the viewBox around them."""
    seats = [
        {"x": seat["x"], "y": seat["y"], "accessible": seat["accessible"],
         "title": f"{section['name']} · row {row['label']} · seat {seat['label']}"}
        for section in sections for row in section["rows"] for seat in row["seats"]
    ]  # fmt: skip
    if not seats:
        return {"seats": [], "view_box": "0 0 1 1", "r": 0.4}
    xs, ys = [s["x"] for s in seats], [s["y"] for s in seats]
    gaps = sorted({abs(a - b) for a, b in itertools.pairwise(xs) if a != b} | {1.0})
    r = min(gaps[0], 1.0) * 0.4
    box = f"{min(xs) - 2 * r} {min(ys) - 2 * r} {max(xs) - min(xs) + 4 * r} {max(ys) - min(ys) + 4 * r}"
    return {"seats": seats, "view_box": box, "r": r}
