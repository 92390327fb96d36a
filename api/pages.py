"""Web pages served by the API process, outside /api/v1 (API.md "Web pages").

`/verify?token=…` is where the verification mail links to: the page shows a button that
confirms the address with a POST from the page (a link alone must not change anything: mail
scanners and link previews open links), then says whether it worked. Plain HTML, no script.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from api.inputs import FORM_BODY
from api.services import Services
from commands.accounts import InvalidToken, MailedSecrets

MAX_TOKEN = 200

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#141414}}
button{{font-size:1rem;padding:.6rem 1.2rem}} input{{font-size:1rem;width:100%;padding:.4rem}}</style>
</head><body><h1>{title}</h1>{body}</body></html>"""

_FORM = (
    '<form method="post" action="/verify">{field}<p><button type="submit">Confirm my e-mail address</button></p></form>'
)


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    return Response(
        _PAGE.format(title=escape(title), body=body),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


def _form(token: str) -> str:
    if token:
        field = f'<input type="hidden" name="token" value="{escape(token)}">'
    else:
        field = '<p><label>Verification token from the mail<br><input name="token" required></label></p>'
    return _FORM.format(field=field)


class PagesController(Controller):
    path = "/"
    include_in_schema = False

    @get("/verify", exclude_from_auth=True)
    async def verify_page(self, token: str = "") -> Response[str]:
        """The page the verification mail links to: one button to confirm."""
        token = token[:MAX_TOKEN]
        return _page(
            "Confirm your e-mail address",
            "<p>Confirm that this e-mail address belongs to your ticketing account.</p>" + _form(token),
        )

    @post("/verify", exclude_from_auth=True, exclude_from_csrf=True, opt={FORM_BODY: True}, status_code=200)
    async def verify(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[str]:
        """Redeem the token (once, within 24 hours), as POST /api/v1/auth/verify-email does."""
        token = str(data.get("token", "")).strip()
        try:
            if not token or len(token) > MAX_TOKEN:
                raise InvalidToken("the verification token is invalid or has expired", field="token")
            user_id = await MailedSecrets(services.settings.jwt_secret).redeem_verification(services.redis, token)
        except InvalidToken:
            return _page(
                "This link does not work",
                "<p>The verification link is invalid, was already used, or has expired (after 24 hours). "
                "Sign in and ask for a new verification mail.</p>" + _form(""),
                status=422,
            )
        await services.command(lambda: services.accounts.mark_verified(user_id), app=services.accounts, actor=user_id)
        return _page(
            "E-mail address confirmed", "<p>Thank you: your e-mail address is confirmed. You can buy tickets now.</p>"
        )
