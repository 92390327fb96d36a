"""One error shape everywhere: {"error", "code", "field_errors"?}; domain errors mapped once."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import eventsourcing.persistence
import msgspec
import psycopg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from psycopg_pool import PoolTimeout

from api.inputs import BadRequest
from api.services import ReadModelsLagging, Unavailable
from api.webhooks import BadSignature
from commands.accounts import BadCredentials, NotAuthenticated
from commands.base import Busy
from commands.payments_gateway import PaymentProviderError
from domain.errors import Conflict, DomainError, Forbidden, Gone, Invalid, NotFound

log = logging.getLogger("api")


class ErrorBody(msgspec.Struct, omit_defaults=True):
    error: str
    code: str
    field_errors: dict[str, list[str]] | None = None


DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (BadCredentials, 401),
    (NotAuthenticated, 401),
    (BadSignature, 400),
    (BadRequest, 400),
    (PaymentProviderError, 502),
    (Invalid, 422),
    (Conflict, 409),
    (Gone, 410),
    (NotFound, 404),
    (Forbidden, 403),
    (Busy, 503),
    (Unavailable, 503),
]

HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}

_MALFORMED = re.compile(r"malformed|JSON|truncated|Expecting|invalid character|trailing", re.IGNORECASE)


def error_response(status: int, message: str, code: str, field_errors: dict[str, list[str]] | None = None,
                   headers: dict[str, str] | None = None) -> Response[ErrorBody]:  # fmt: skip
    return Response(
        ErrorBody(error=message, code=code, field_errors=field_errors),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def domain_error_parts(exc: DomainError) -> tuple[int, ErrorBody, dict[str, str] | None]:
    """Status, body and extra headers of a domain error's answer (shared with the express lane)."""
    status = next((s for cls, s in DOMAIN_STATUS if isinstance(exc, cls)), 400)
    field_errors = {exc.field: [exc.message]} if exc.field and status == 422 else None
    if status == 422 and field_errors is None:
        field_errors = {"body": [exc.message]}
    headers = {"Retry-After": "2" if isinstance(exc, Unavailable) else "1"} if status == 503 else None
    return status, ErrorBody(error=exc.message, code=exc.code, field_errors=field_errors), headers


def domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorBody]:
    status, body, headers = domain_error_parts(exc)
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    """Litestar reports both unparsable bodies and wrong shapes as ValidationException;
    the contract separates them: 400 for malformed JSON, 422 (with field errors) for shape."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    if not extra and _MALFORMED.search(str(exc.detail)):
        return error_response(400, "the request body is not valid JSON", "malformed_json")
    field_errors: dict[str, list[str]] = {}
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        key = str(item.get("key") or item.get("source") or "body")
        if key == "data":
            key = "body"
        if "malformed" in message.lower() or "JSON is" in message:
            return error_response(400, "the request body is not valid JSON", "malformed_json")
        field_errors.setdefault(_field_name(key, message), []).append(_clean(message))
    if not field_errors:
        field_errors["body"] = [str(exc.detail)]
    return error_response(422, "the request is not valid", "validation_error", field_errors)


def _field_name(key: str, message: str) -> str:
    found = re.search(r"at `\$\.([^`]+)`", message)
    if found:
        return found.group(1)
    unknown = re.search(r"unknown field `([^`]+)`", message)
    if unknown:
        return unknown.group(1) if key == "body" else f"{key}.{unknown.group(1)}"
    return key


def _clean(message: str) -> str:
    return re.sub(r" - at `\$[^`]*`", "", message)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    code = HTTP_CODES.get(status, "error")
    message = exc.detail or code.replace("_", " ")
    if isinstance(exc, NotAuthorizedException):
        message = "authentication required" if "No JWT" in message else "invalid or expired token"
    if status == 400 and _MALFORMED.search(message):
        code, message = "malformed_json", "the request body is not valid JSON"
    return error_response(status, message, code, headers=dict(exc.headers or {}))


class Accepted(msgspec.Struct):
    """A write that is saved, answered before the read models show it."""

    status: str
    detail: str
    position: int


def lagging(_: Request[Any, Any, Any], exc: ReadModelsLagging) -> Response[Accepted]:
    """The change is stored; only the read models are behind. 202, not a "retry": repeating the
    request would make the change twice."""
    body = Accepted(
        status="accepted",
        detail="the change is saved; reads may not show it for a moment while read models catch up",
        position=exc.position,
    )
    return Response(body, status_code=202, media_type=MediaType.JSON)


# The database went away (restarting, failing over): a read or write could not run; 503, as for Redis.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    PoolTimeout,
    eventsourcing.persistence.OperationalError,
    eventsourcing.persistence.InterfaceError,
)

UNAVAILABLE = ErrorBody(error="a backing service is unavailable; try again shortly", code=Unavailable.code)


def unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Redis (queue, rate limits, sessions) or Postgres did not answer: 503, try again shortly.

    After Postgres restarted, every pooled connection is dead; without a check each would fail
    one more request before its pool replaced it. A database error has the pools (the read
    pool, and the applications' stores) check theirs in the background, so a restart costs a
    request or two a 503, not one per pooled connection."""
    log.warning("a backing service is unavailable: %r", exc)
    services = request.app.state.get("services")
    if isinstance(exc, DATABASE_DOWN) and services is not None and not _checks:
        _checks.add(task := asyncio.get_running_loop().create_task(_check_pools(services)))
        task.add_done_callback(_checks.discard)
    return error_response(503, UNAVAILABLE.error, UNAVAILABLE.code, headers={"Retry-After": "2"})


_checks: set[asyncio.Task[None]] = set()  # the running check (a task needs a reference until done)


async def _check_pools(services: Any) -> None:
    try:
        await services.pool.check()
        for app in (services.boxoffice, services.accounts, services.inbox):
            await asyncio.to_thread(app.recorder.datastore.pool.check)
    except Exception:  # the database is still away: the next failure checks again
        log.info("checking the database pools failed", exc_info=True)


INTERNAL = ErrorBody(error="internal error", code="internal_error")


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL.error, INTERNAL.code)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    ReadModelsLagging: lagging,
    **dict.fromkeys((*Unavailable.CAUSES, *DATABASE_DOWN), unavailable),
    Exception: internal_error,
}
