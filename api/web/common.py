"""What every page shares: the signed-in person (from the session cookie), the CSRF token of its
forms, rendering, redirects to /login, and reading a posted form."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware.csrf import generate_csrf_token
from litestar.response import Redirect, Template

from api.errors import domain_error_parts
from api.inputs import FORM_BODY
from api.limits import Limit, count_hit
from api.security import CSRF_IN_FORM, Principal, csrf_cookie, optional_principal, require_form_csrf, signed_by_us
from api.services import Services
from domain.errors import DomainError

# Route options of a page handler that takes a form (checked like JSON fields, CSRF from the form).
FORM = {FORM_BODY: True, CSRF_IN_FORM: True}


def user_of(request: Request[Any, Any, Any]) -> Principal | None:
    """The signed-in person, from the session's access-token cookie (None when absent or expired)."""
    return optional_principal(request)


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 500:
        return "/"
    return target


def to_login(request: Request[Any, Any, Any]) -> Redirect:
    """303 to /login?next=<this page>."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?next={quote(here, safe='')}", status_code=303)


def see_other(path: str, cookies: list[Cookie] | None = None) -> Redirect:
    return Redirect(path, status_code=303, cookies=cookies or [])


def render(request: Request[Any, Any, Any], template: str, status: int = 200, **context: Any) -> Template:
    """The page, with `user` and `csrf` (the form token; the cookie is set when missing) in its context."""
    config: CSRFConfig = request.app.state.csrf_config
    current = request.cookies.get(config.cookie_name, "")
    fresh = not signed_by_us(config, current)
    token = generate_csrf_token(config.secret) if fresh else current
    context.setdefault("user", user_of(request))
    return Template(
        template_name=template,
        context={**context, "csrf": token, "fmt_time": fmt_time},
        status_code=status,
        headers={"Cache-Control": "no-store"},
        cookies=[csrf_cookie(config, token)] if fresh else [],
    )


async def form_of(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    """The posted form (every value of every field), after its CSRF field is checked (403 otherwise)."""
    form = await request.form()
    fields = {key: [str(v) for v in form.getall(key)] for key in form}
    require_form_csrf(request, (fields.get("_csrf") or [""])[0])
    return fields


def first(fields: dict[str, list[str]], name: str, limit: int = 500) -> str:
    return (fields.get(name) or [""])[0].strip()[:limit]


def fmt_time(at: datetime | None) -> str:
    return at.strftime("%a %d %b %Y, %H:%M UTC") if at else ""


def page_error(request: Request[Any, Any, Any], title: str, message: str, status: int) -> Response[Any]:
    return render(request, "message.html", status=status, title=title, message=message)


def error_status(error: DomainError) -> int:
    """The status the JSON routes answer this error with."""
    return domain_error_parts(error)[0]


async def over_limit(request: Request[Any, Any, Any], services: Services, operation: str, client: str) -> str | None:
    """Spend one request of the JSON route `operation`'s rate limit (the same budget, see
    api/limits.py); the refusal message when over it."""
    limits: dict[str, Limit] = request.app.state.get("rate_limits") or {}
    limit = limits.get(operation)
    if limit is None:
        return None
    _, refusal = await count_hit(services.redis, operation, limit, client)
    return refusal
