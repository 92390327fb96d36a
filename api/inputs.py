"""What the API lets in: text without control characters, JSON of sane depth, clean query strings
and paths.

Everything a request body carries may end up in the event store, and the store is replayed by
every read model forever: a NUL byte that Postgres refuses in a `text` or `jsonb` column, stored
once, would stop a projector at every restart. So one rule, applied here to every JSON body and
every query string and path before any handler sees them:

- no control characters (C0, DEL, C1) in any string, except tab, line feed and carriage return
  in the multi-line fields (`MULTILINE_FIELDS`): a 422 naming the field;
- JSON nested deeper than `MAX_DEPTH` (no body of this API needs more than seven levels) is a 400,
  before it can exhaust the decoder's recursion;
- a query string or path with a control character, or whose percent-encoding is not UTF-8, is
  a 400 (they reach SQL parameters and file names).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, SerializationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from domain.errors import DomainError, Invalid

BODY_METHODS = {"POST", "PUT", "PATCH"}

MAX_DEPTH = 32
# Route option: the handler reads and checks its raw body itself (the Stripe webhook, whose
# signature covers the exact bytes and whose payload is not ours to judge).
RAW_BODY = "raw_body"
# Route option: the body is an HTML form (a web page's POST), checked like JSON fields.
FORM_BODY = "form_body"
# Route option: the body is an HTML form with a file (multipart); the handler checks its fields.
FILE_FORM_BODY = "file_form_body"
# Route option: the body is raw bytes of one of these media types (a set), read and checked by
# the handler itself (an event's image); anything else is a 415.
RAW_BODY_TYPES = "raw_body_types"
# Free text where a line break belongs; every other string is a single line.
MULTILINE_FIELDS = frozenset({"description", "reason", "message", "notes"})
SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A control character in a (decoded) query string or path.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BadRequest(DomainError):
    """Malformed beyond validation (control characters in a URL, absurd nesting): 400."""

    code = "bad_request"


class TooDeeplyNested(BadRequest):
    code = "too_deeply_nested"


def check_json(value: Any, *, text: bool = True) -> None:
    """Raise `TooDeeplyNested` or (with `text`) `Invalid` naming the first string with a control
    character, for a decoded JSON body."""
    # An explicit stack: a recursive walk is what deep nesting is meant to break.
    stack: list[tuple[Any, str, int, bool]] = [(value, "", 0, False)]
    while stack:
        item, path, depth, multiline = stack.pop()
        if depth > MAX_DEPTH:
            raise TooDeeplyNested(f"the JSON body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            if text and (MULTI_LINE if multiline else SINGLE_LINE).search(item):
                raise Invalid(_message(multiline), field=path or "body", code="validation_error")
        elif isinstance(item, dict):
            for key, child in item.items():
                name = str(key)
                if text and SINGLE_LINE.search(name):
                    raise Invalid(_message(False), field=path or "body", code="validation_error")
                stack.append((child, f"{path}.{name}" if path else name, depth + 1, name in MULTILINE_FIELDS))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1, multiline) for i, child in enumerate(item))


def _message(multiline: bool) -> str:
    if multiline:
        return "must not contain control characters (tab and line breaks are allowed)"
    return "must not contain control characters or line breaks"


def check_url(path: str, query_string: bytes) -> None:
    """Raise `BadRequest` if the (decoded) path or the query string carries a control character
    or percent-encodes something that is not UTF-8."""
    if _CONTROL.search(path):
        raise BadRequest("the path contains a control character")
    if not query_string:
        return
    try:
        decoded = unquote_to_bytes(query_string.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the query string is not UTF-8") from None
    if _CONTROL.search(decoded):
        raise BadRequest("the query string contains a control character")


def clean_header(value: bytes) -> str | None:
    """A header value as text, or None if it carries a control character (CR and LF cannot
    arrive here; HTTP parsers refuse them)."""
    text = value.decode("latin-1")
    return None if _CONTROL.search(text) else text


async def check_request(request: Request[Any, Any, Any]) -> None:
    """Bodies of state-changing API calls must be JSON (415 otherwise), nested at most
    `MAX_DEPTH` levels (400) and free of control characters (422); see `api/inputs.py`.

    The body is decoded here the way Litestar decodes it for the handler's `data` (and cached
    for it), so checking costs no second decode. Reads the raw ASGI headers: this runs on every
    request, and parsing them all into `Headers` cost more than the check itself.
    """
    if request.method not in BODY_METHODS:
        return
    length = content_type = None
    for name, value in request.scope["headers"]:
        if name == b"content-length" and length is None:
            length = value
        elif name == b"content-type" and content_type is None:
            content_type = value
    if length is None or length == b"0":
        return
    media_type = (content_type or b"").decode("latin-1").split(";")[0].strip().lower()
    if request.route_handler.opt.get(FORM_BODY):
        if media_type != "application/x-www-form-urlencoded":
            raise HTTPException(status_code=415, detail="send application/x-www-form-urlencoded")
        form = await request.form()
        check_json({key: form.getall(key) for key in form})
        return
    if request.route_handler.opt.get(FILE_FORM_BODY):
        if media_type != "multipart/form-data":
            raise HTTPException(status_code=415, detail="send multipart/form-data")
        return
    raw_types = request.route_handler.opt.get(RAW_BODY_TYPES)
    if raw_types:
        if media_type not in raw_types:
            raise HTTPException(status_code=415, detail=f"send {' or '.join(sorted(raw_types))}")
        return
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, detail="send application/json")
    if request.route_handler.opt.get(RAW_BODY):
        return
    try:
        data = await request.json()
    except RecursionError:
        raise TooDeeplyNested(f"the JSON body is nested deeper than {MAX_DEPTH} levels") from None
    except (SerializationException, ValueError):
        return  # malformed: the handler's own decoding answers 400 as usual
    check_json(data)


class RefuseBadUrls(ASGIMiddleware):
    """400 for a path or query string with control characters or non-UTF-8 percent-encoding,
    before any route sees it (they reach SQL parameters and file names)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        check_url(scope["path"], scope.get("query_string", b""))
        await next_app(scope, receive, send)
