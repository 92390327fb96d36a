"""One error shape everywhere: {"error", "code", "field_errors"?}; domain errors mapped once."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.services import ReadModelsLagging
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
    (PaymentProviderError, 502),
    (Invalid, 422),
    (Conflict, 409),
    (Gone, 410),
    (NotFound, 404),
    (Forbidden, 403),
    (Busy, 503),
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
    headers = {"Retry-After": "1"} if status == 503 else None
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


LAGGING = ErrorBody(error="the write was saved but read models are catching up; retry", code="read_models_lagging")


def lagging(_: Request[Any, Any, Any], exc: ReadModelsLagging) -> Response[ErrorBody]:
    return error_response(503, LAGGING.error, LAGGING.code, headers={"Retry-After": "1"})


INTERNAL = ErrorBody(error="internal error", code="internal_error")


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL.error, INTERNAL.code)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    ReadModelsLagging: lagging,
    Exception: internal_error,
}
