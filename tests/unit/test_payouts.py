"""Payouts to organizers and Stripe.js settings, without services: the platform fee's rounding,
the PaymentIntent a destination charge is created with, the start-up checks of the Stripe keys,
and the checkout page's CSP extension."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from api.security import API_CSP, STRIPE_JS_CSP, WEB_CSP, SecurityHeaders
from commands.payments import platform_fee
from commands.payments_gateway import Payout, intent_params
from ticketing import Settings


@pytest.mark.parametrize(
    ("amount", "basis_points", "fee"),
    [
        (2500, 250, 63),  # 62.5 rounds half up
        (2000, 250, 50),
        (999, 250, 25),  # 24.975
        (19, 250, 0),  # 0.475
        (20, 250, 1),  # 0.5 rounds up
        (1, 4999, 0),
        (1, 5000, 1),
        (300, 10_000, 300),  # 100 %: all of it
        (300, 0, 0),
        (0, 250, 0),
        (-5, 250, 0),
    ],
)
def test_the_platform_fee_is_rounded_half_up_and_never_more_than_the_amount(
    amount: int, basis_points: int, fee: int
) -> None:
    assert platform_fee(amount, basis_points) == fee


def test_the_fee_is_never_more_than_the_amount_whatever_the_rate() -> None:
    assert platform_fee(300, 20_000) == 300


def test_a_linked_organizer_gets_a_destination_charge_less_the_fee() -> None:
    order_id = uuid4()
    params: Any = intent_params(
        order_id=order_id, amount=2500, currency="EUR", description="Show — order",
        payout=Payout("acct_123", 63), destination_charges=True,
    )  # fmt: skip
    assert params["transfer_data"] == {"destination": "acct_123"}
    assert params["application_fee_amount"] == 63
    assert params["amount"] == 2500 and params["currency"] == "eur"
    assert params["metadata"] == {
        "order_id": str(order_id),
        "description": "Show — order",
        "payout_destination": "acct_123",
        "platform_fee": "63",
    }


def test_no_fee_no_application_fee_and_no_link_no_destination() -> None:
    free: Any = intent_params(
        order_id=uuid4(), amount=2500, currency="EUR", description="x", payout=Payout("acct_1", 0),
        destination_charges=True,
    )  # fmt: skip
    assert free["transfer_data"] == {"destination": "acct_1"} and "application_fee_amount" not in free
    unlinked: Any = intent_params(
        order_id=uuid4(), amount=2500, currency="EUR", description="x", payout=None, destination_charges=True
    )
    assert "transfer_data" not in unlinked and "application_fee_amount" not in unlinked
    assert set(unlinked["metadata"]) == {"order_id", "description"}


def test_a_gateway_without_connect_records_the_payout_in_the_metadata_only() -> None:
    params: Any = intent_params(
        order_id=uuid4(), amount=2500, currency="EUR", description="x", payout=Payout("acct_dev_1", 63),
        destination_charges=False,
    )  # fmt: skip
    assert "transfer_data" not in params and "application_fee_amount" not in params
    assert params["metadata"]["payout_destination"] == "acct_dev_1" and params["metadata"]["platform_fee"] == "63"


def _production(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DATA_DIR": str(tmp_path),
        "ENVIRONMENT": "production",
        "TICKET_SIGNING_KEY": "k" * 40,
        "PERSONAL_DATA_SECRET": "p" * 40,
        **extra,
    }


def test_production_against_stripe_needs_the_publishable_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STRIPE_PUBLISHABLE_KEY is not set"):
        Settings.from_env(_production(tmp_path, STRIPE_API_KEY="sk_live_abc"))
    ok = Settings.from_env(_production(tmp_path, STRIPE_API_KEY="sk_live_abc", STRIPE_PUBLISHABLE_KEY="pk_live_xyz"))
    assert ok.stripe_publishable_key == "pk_live_xyz"
    # A stand-in (STRIPE_API_BASE), no Stripe at all, or development: nothing to complain about.
    Settings.from_env(_production(tmp_path, STRIPE_API_KEY="sk_test_abc", STRIPE_API_BASE="http://127.0.0.1:8420"))
    Settings.from_env(_production(tmp_path))
    Settings.from_env({"DATA_DIR": str(tmp_path), "STRIPE_API_KEY": "sk_live_abc"})


@pytest.mark.parametrize(
    ("secret", "publishable"),
    [("sk_live_abc", "pk_test_xyz"), ("sk_test_abc", "pk_live_xyz"), ("sk_test_abc", "sk_test_abc")],
)
def test_the_publishable_key_must_be_one_and_of_the_secret_keys_mode(
    tmp_path: Path, secret: str, publishable: str
) -> None:
    with pytest.raises(ValueError, match="STRIPE_PUBLISHABLE_KEY must be"):
        Settings.from_env(_production(tmp_path, STRIPE_API_KEY=secret, STRIPE_PUBLISHABLE_KEY=publishable))


@pytest.mark.parametrize("percent", ["-1", "100.5", "nan", "lots"])
def test_the_platform_fee_percent_must_be_a_percentage(tmp_path: Path, percent: str) -> None:
    with pytest.raises(ValueError):
        Settings.from_env({"DATA_DIR": str(tmp_path), "PLATFORM_FEE_PERCENT": percent})
    assert Settings.from_env({"DATA_DIR": str(tmp_path), "PLATFORM_FEE_PERCENT": "2.5"}).platform_fee_percent == "2.5"


def _headers(path: str, *sent: tuple[bytes, bytes]) -> dict[bytes, bytes]:
    start: Any = {"type": "http.response.start", "status": 200, "headers": list(sent)}
    SecurityHeaders(hsts=False)(start, path)
    return dict(start["headers"])


def test_only_the_checkout_page_that_asks_gets_the_stripe_js_policy() -> None:
    ask = (b"x-csp-extension", b"stripe-js")
    checkout = _headers("/checkout/abc", ask)
    assert checkout[b"content-security-policy"] == STRIPE_JS_CSP.encode() and b"x-csp-extension" not in checkout
    assert _headers("/checkout/abc")[b"content-security-policy"] == WEB_CSP.encode()
    for path in ("/organizer", "/e/abc", "/"):  # another page asking is not heard
        other = _headers(path, ask)
        assert other[b"content-security-policy"] == WEB_CSP.encode() and b"x-csp-extension" not in other
    assert _headers("/api/v1/orders", ask)[b"content-security-policy"] == API_CSP.encode()
    assert _headers("/checkout/abc", (b"x-csp-extension", b"anything"))[b"content-security-policy"] == WEB_CSP.encode()


def test_the_stripe_js_policy_adds_exactly_what_stripe_documents() -> None:
    def parts(policy: str) -> set[str]:
        return {p.strip() for p in policy.split(";")}

    added = parts(STRIPE_JS_CSP) - parts(WEB_CSP)
    assert added == {
        "script-src 'self' https://js.stripe.com",
        "connect-src 'self' https://api.stripe.com",
        "frame-src https://js.stripe.com https://hooks.stripe.com",
    }
    assert parts(WEB_CSP) - parts(STRIPE_JS_CSP) == {"script-src 'self'", "connect-src 'self'"}
