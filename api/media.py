"""Stored images (`GET /media/{sha256}.webp`): the shows' pictures, by the hash of their bytes.

A name is the SHA-256 of what it serves, so an answer never changes: browsers and proxies keep
it for a year without asking again (`immutable`), and an If-None-Match is answered at once. The
bytes are only ever ours (re-encoded on upload, `commands/media.py`), served as `image/webp`
with the API's security headers (`nosniff`; a CSP under which nothing in them can run)."""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec

from api.services import Services
from commands.media import MEDIA_TYPE
from domain.errors import NotFound

NAME = re.compile(r"([0-9a-f]{64})\.webp")
CACHE_FOREVER = "public, max-age=31536000, immutable"


class MediaController(Controller):
    path = "/media"
    tags = ["Catalog"]

    @get(
        "/{name:str}",
        operation_id="getMedia",
        exclude_from_auth=True,
        media_type=MEDIA_TYPE,
        responses={
            200: ResponseSpec(data_container=bytes, media_type=MEDIA_TYPE, description="The image (WebP)"),
            304: ResponseSpec(data_container=None, description="The client's copy is this image"),
        },
        response_headers=[
            ResponseHeader(name="Cache-Control", value=CACHE_FOREVER, documentation_only=True),
            ResponseHeader(name="ETag", description="The image's hash", documentation_only=True),
        ],
    )
    async def image(self, name: str, request: Request[Any, Any, Any], services: Services) -> Response[bytes]:
        """A show's picture by `{sha256}.webp`, as given in an event's `image_url`, `image.url`
        and `image.card_url`; 404 for any other name."""
        found = NAME.fullmatch(name)
        if found is None:
            raise NotFound("no such image", code="image_not_found")
        sha256 = found.group(1)
        headers = {"Cache-Control": CACHE_FOREVER, "ETag": f'"{sha256}"'}
        if request.headers.get("if-none-match") in (f'"{sha256}"', f'W/"{sha256}"'):
            return Response(content=b"", status_code=304, headers=headers)
        data = await services.call(lambda: services.boxoffice.image_bytes(sha256))
        if data is None:
            raise NotFound("no such image", code="image_not_found")
        return Response(content=data, media_type=MEDIA_TYPE, headers=headers)
