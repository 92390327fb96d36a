"""The composition root: typed settings from the environment, the wiring of every process, and
the `ticketing` CLI.

It is the only module that knows every layer: it builds the applications (`commands/`) with
their policies and adapters (Stripe, the claims port), the read models (`projections/`), the
API (`api/`) and the worker processes (`workers/`) from `Settings`, and hands each process what
it needs. The entry points of the service's processes are here: `ticketing ...` (CLI),
`uvicorn ticketing:create_api --factory`, `dramatiq ticketing:worker`.

Nothing runs at import time; every entry point builds `Settings.from_env()` first. It is one
module (the design allows one beside the layers), so it is longer than the others: settings,
wiring, CLI, in that order.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

if TYPE_CHECKING:
    from api.services import Services
    from commands.accounts import Accounts
    from commands.boxoffice import BoxOffice
    from commands.inbox import Inbox
    from commands.tickets_signing import TicketSigner
    from workers.mail import Mailer
    from workers.tasks import Actors, Runtime

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    """Everything configurable, read once from the environment (12-factor)."""

    database_url: str = ""
    redis_url: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "tickets@example.test"
    # "none" (a local relay or the sink), "starttls" (port 587) or "tls" (port 465); login if a user is set.
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
    # Given to Stripe.js on the checkout page (pk_live_… or pk_test_…, the mode of STRIPE_API_KEY).
    stripe_publishable_key: str = ""
    # What the platform keeps of each payment routed to an organizer's payout account (percent).
    platform_fee_percent: str = "0"
    jwt_secret: str = ""
    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    web_concurrency: int = 1
    data_dir: Path = ROOT / ".data"
    hold_seconds: int = 900
    payment_hold_seconds: int = 600
    # However often payment is started, a hold ends at the latest this long after the order.
    max_hold_seconds: int = 1800
    refund_cutoff_hours: int = 48
    # How long the first in line of a waitlist has to pay the order kept for them.
    waitlist_offer_seconds: int = 1800
    # Seed of the Ed25519 key of ticket codes: its own secret, so rotating JWT_SECRET keeps tickets.
    ticket_signing_key: str = ""
    # Previous signing secrets (after a rotation): codes they signed still verify, none are signed.
    ticket_signing_old_keys: tuple[str, ...] = field(default_factory=tuple)
    # Wraps the per-person keys of personal data and keys the e-mail index (commands/privacy.py).
    personal_data_secret: str = ""
    max_body_bytes: int = 1_000_000
    projection_wait_seconds: float = 5.0
    sweep_interval_seconds: float = 30.0
    # Listing searches are answered from Redis while the read models have not moved (0: off).
    listing_cache_seconds: int = 60
    # POST /api/v1/orders from API clients is answered in front of the framework (api/express.py).
    express_orders: bool = True
    # Where the claims service listens (unix:/path or host:port); empty: each API process
    # places orders with a claim writer of its own (commands/claims_client.py).
    claims_address: str = ""
    # Shared by the claims service and its clients, who prove it (HMAC); required over TCP.
    claims_secret: str = ""
    # How long an API process waits for the claims service (handshake, each answer) before it
    # places the order with its own writer instead.
    claims_timeout_seconds: float = 1.0
    service_fee_percent: str = "0"
    service_fee_fixed: int = 0
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    public_url: str = ""
    # Peers (addresses or CIDRs) whose X-Forwarded-For names the client; nobody else's is read.
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    # Bearer token that opens /metrics and the detail of /ready (admins may use theirs); empty: admins only.
    metrics_token: str = ""
    # Per-client limits (the account on authenticated routes, else the address; logins: failures
    # only), "<count>/<second|minute|hour|day>"; RATE_LIMITS_ENABLED=false turns them off.
    rate_limits_enabled: bool = True
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "20/hour"
    rate_limit_forgot_password: str = "5/hour"  # noqa: S105 - a rate, not a password
    rate_limit_resend_verification: str = "5/hour"
    rate_limit_orders: str = "60/minute"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("DATA_DIR", str(ROOT / ".data"))).resolve()
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env.get("REDIS_URL", ""),
            smtp_host=env.get("SMTP_HOST", "127.0.0.1"),
            smtp_port=int(env.get("SMTP_PORT", "1025")),
            mail_from=env.get("MAIL_FROM", "tickets@example.test"),
            smtp_security=env.get("SMTP_SECURITY", "none").lower(),
            smtp_username=env.get("SMTP_USERNAME", ""),
            smtp_password=env.get("SMTP_PASSWORD", ""),
            stripe_api_key=env.get("STRIPE_API_KEY", ""),
            stripe_api_base=env.get("STRIPE_API_BASE", ""),
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
            stripe_publishable_key=_stripe_publishable_key(env),
            platform_fee_percent=_platform_fee_percent(env.get("PLATFORM_FEE_PERCENT", "0")),
            jwt_secret=env.get("JWT_SECRET", "") or _dev_secret(data_dir),
            environment=env.get("ENVIRONMENT", "development"),
            host=env.get("HOST", "127.0.0.1"),
            port=int(env.get("PORT", "8000")),
            web_concurrency=int(env.get("WEB_CONCURRENCY", "1")),
            data_dir=data_dir,
            hold_seconds=int(env.get("HOLD_SECONDS") or int(env.get("HOLD_MINUTES", "15")) * 60),
            payment_hold_seconds=int(env.get("PAYMENT_HOLD_SECONDS", "600")),
            max_hold_seconds=int(env.get("HOLD_MAX_SECONDS") or int(env.get("HOLD_MAX_MINUTES", "30")) * 60),
            refund_cutoff_hours=int(env.get("REFUND_CUTOFF_HOURS", "48")),
            waitlist_offer_seconds=int(
                env.get("WAITLIST_OFFER_SECONDS") or int(env.get("WAITLIST_OFFER_MINUTES", "30")) * 60
            ),
            ticket_signing_key=_ticket_signing_key(env, data_dir),
            ticket_signing_old_keys=tuple(
                k.strip() for k in env.get("TICKET_SIGNING_OLD_KEYS", "").split(",") if k.strip()
            ),
            personal_data_secret=_personal_data_secret(env, data_dir),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", "1000000")),
            projection_wait_seconds=float(env.get("PROJECTION_WAIT_SECONDS", "5")),
            sweep_interval_seconds=float(env.get("SWEEP_INTERVAL_SECONDS", "30")),
            listing_cache_seconds=int(env.get("LISTING_CACHE_SECONDS", "60")),
            express_orders=env.get("EXPRESS_ORDERS", "true").lower() not in ("false", "0", "no", "off"),
            claims_address=env.get("CLAIMS_ADDRESS", ""),
            claims_secret=env.get("CLAIMS_SECRET", ""),
            claims_timeout_seconds=float(env.get("CLAIMS_TIMEOUT_SECONDS", "1")),
            service_fee_percent=env.get("SERVICE_FEE_PERCENT", "0"),
            service_fee_fixed=int(env.get("SERVICE_FEE_FIXED", "0")),
            cors_origins=tuple(o for o in env.get("CORS_ORIGINS", "").split(",") if o),
            public_url=env.get("PUBLIC_URL", "").rstrip("/"),
            trusted_proxies=_networks(env.get("TRUSTED_PROXIES", "")),
            metrics_token=env.get("METRICS_TOKEN", ""),
            rate_limits_enabled=env.get("RATE_LIMITS_ENABLED", "true").lower() not in ("false", "0", "no", "off"),
            rate_limit_login=env.get("RATE_LIMIT_LOGIN", "10/minute"),
            rate_limit_register=env.get("RATE_LIMIT_REGISTER", "20/hour"),
            rate_limit_forgot_password=env.get("RATE_LIMIT_FORGOT_PASSWORD", "5/hour"),
            rate_limit_resend_verification=env.get("RATE_LIMIT_RESEND_VERIFICATION", "5/hour"),
            rate_limit_orders=env.get("RATE_LIMIT_ORDERS", "60/minute"),
        )

    @property
    def is_development(self) -> bool:
        return self.environment != "production"

    @property
    def base_url(self) -> str:
        """Where links in mails point: PUBLIC_URL (a front end, or a proxy in front of the API),
        else where the API listens."""
        if self.public_url:
            return self.public_url
        host = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def eventsourcing_env(self, *, create_tables: bool = False, pool_size: int = 8) -> dict[str, str]:
        """The `eventsourcing` library's persistence settings, derived from DATABASE_URL.

        Only `ticketing migrate` creates tables: several processes starting at once must not
        race to (re)create the same tables and functions.
        """
        url = urlsplit(self.database_url)
        query = dict(p.split("=", 1) for p in url.query.split("&") if "=" in p)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            # The library's recorder with a cheaper insert (commands/recorder.py).
            "APPLICATION_RECORDER_TOPIC": "commands.recorder:ColumnarRecorder",
            # The library's mapper with a faster decoder of stored events (commands/mapper.py).
            "MAPPER_TOPIC": "commands.mapper:FastMapper",
            "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": unquote(query.get("host", url.hostname or "127.0.0.1")),
            "POSTGRES_PORT": str(url.port or query.get("port", "5432")),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            # Connections each application keeps open (more are opened up to 16 beyond, and closed).
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": "16",
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
            "AGGREGATE_CACHE_MAXSIZE": "20000",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
            "CREATE_TABLE": "y" if create_tables else "n",
            # Read by commands.base.BaseApplication (the personal-data vault, the e-mail index).
            "PERSONAL_DATA_SECRET": self.personal_data_secret,
        }


def _networks(text: str) -> tuple[str, ...]:
    """TRUSTED_PROXIES: comma-separated addresses or CIDRs, each checked (ValueError if not one)."""
    return tuple(str(ipaddress.ip_network(part.strip(), strict=False)) for part in text.split(",") if part.strip())


def _stripe_publishable_key(env: Mapping[str, str]) -> str:
    """STRIPE_PUBLISHABLE_KEY, which Stripe.js needs to take a card on the checkout page.
    Production against Stripe itself (a secret key, no STRIPE_API_BASE stand-in) must set it,
    in the same mode as the secret key: without it no one could pay."""
    key = env.get("STRIPE_PUBLISHABLE_KEY", "").strip()
    secret = env.get("STRIPE_API_KEY", "")
    if key and not key.startswith("pk_"):
        raise ValueError("STRIPE_PUBLISHABLE_KEY must be a publishable key (pk_live_… or pk_test_…)")
    for mode in ("live", "test"):
        if key and secret.startswith(f"sk_{mode}_") and not key.startswith(f"pk_{mode}_"):
            raise ValueError(f"STRIPE_PUBLISHABLE_KEY must be a pk_{mode}_ key to go with a sk_{mode}_ STRIPE_API_KEY")
    real_stripe = secret and not env.get("STRIPE_API_BASE", "")
    if not key and real_stripe and env.get("ENVIRONMENT", "development") == "production":
        raise ValueError(
            "STRIPE_PUBLISHABLE_KEY is not set: the checkout page needs it for Stripe.js to take "
            "cards (Stripe dashboard → Developers → API keys)"
        )
    return key


def _platform_fee_percent(text: str) -> str:
    """PLATFORM_FEE_PERCENT: a number from 0 to 100 (ValueError otherwise)."""
    value = float(text)
    if not 0 <= value <= 100:
        raise ValueError(f"PLATFORM_FEE_PERCENT must be between 0 and 100, not {text}")
    return text


def _ticket_signing_key(env: Mapping[str, str], data_dir: Path) -> str:
    """TICKET_SIGNING_KEY; in development one generated once under .data/. Production must set
    it: a generated key would void every ticket when .data/ is lost or differs between hosts."""
    key = env.get("TICKET_SIGNING_KEY", "")
    if key:
        return key
    if env.get("ENVIRONMENT", "development") == "production":
        raise ValueError(
            "TICKET_SIGNING_KEY is not set: give it a long random value (tickets issued before it "
            "existed were signed with JWT_SECRET: set it to that value to keep them valid)"
        )
    return _dev_secret(data_dir, "ticket-signing-key")


def _personal_data_secret(env: Mapping[str, str], data_dir: Path) -> str:
    """PERSONAL_DATA_SECRET; in development one generated once under .data/. Production must set
    it and keep it: without it no personal data stored can be read, and no one can sign in."""
    key = env.get("PERSONAL_DATA_SECRET", "")
    if key:
        return key
    if env.get("ENVIRONMENT", "development") == "production":
        raise ValueError("PERSONAL_DATA_SECRET is not set: give it a long random value, and never change it")
    return _dev_secret(data_dir, "personal-data-secret")


def _dev_secret(data_dir: Path, name: str = "dev-secret") -> str:
    """A development signing key kept under .data/ so tokens survive restarts."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    return value


# Wiring ---------------------------------------------------------------------------------------


def open_boxoffice(settings: Settings, *, create_tables: bool = False) -> BoxOffice:
    """The BoxOffice application with the sales and payment policies and the Stripe adapter."""
    from commands.boxoffice import BoxOffice
    from commands.payments import PaymentPolicy
    from commands.payments_gateway import StripeGateway
    from commands.waitlist import WaitlistPolicy
    from domain.placement import SalesPolicy

    app = BoxOffice(env=settings.eventsourcing_env(create_tables=create_tables))
    app.policy = SalesPolicy(
        hold_seconds=settings.hold_seconds,
        fee_basis_points=round(float(settings.service_fee_percent) * 100),
        fee_fixed=settings.service_fee_fixed,
    )
    app.payment_policy = PaymentPolicy(
        payment_hold_seconds=settings.payment_hold_seconds,
        max_hold_seconds=settings.max_hold_seconds,
        refund_cutoff_hours=settings.refund_cutoff_hours,
        platform_fee_basis_points=round(float(settings.platform_fee_percent) * 100),
    )
    app.waitlist_policy = WaitlistPolicy(offer_seconds=settings.waitlist_offer_seconds)
    if settings.stripe_api_key:
        app.gateway = StripeGateway(
            settings.stripe_api_key, settings.stripe_api_base, publishable_key=settings.stripe_publishable_key
        )
    return app


def open_inbox(settings: Settings, *, create_tables: bool = False) -> Inbox:
    from commands.inbox import Inbox

    # Webhooks and account changes are a trickle next to sales: a small pool each.
    return Inbox(env=settings.eventsourcing_env(create_tables=create_tables, pool_size=2))


def open_accounts(settings: Settings, *, create_tables: bool = False) -> Accounts:
    from commands.accounts import Accounts

    return Accounts(env=settings.eventsourcing_env(create_tables=create_tables, pool_size=2))


def migrate(settings: Settings) -> None:
    """Create the event stores and every read model's tables (idempotent)."""
    from eventsourcing.persistence import Tracking

    from projections.base import ReadModel
    from projections.models import READ_MODELS, open_view
    from projections.notifier import NotifierProjection

    apps = (
        open_boxoffice(settings, create_tables=True),
        open_accounts(settings, create_tables=True),
        open_inbox(settings, create_tables=True),
    )
    for app in apps:
        app.close()
    notifier_is_new = not _table_exists(settings, "read.mail_outbox")
    models: list[type[ReadModel[Any]]] = [*READ_MODELS.values(), NotifierProjection]
    for projection_class in models:
        view = open_view(settings.eventsourcing_env(), projection_class, create_tables=True)
        if projection_class is NotifierProjection and notifier_is_new:
            # A notifier installed on a store with history starts at its head: the mails of the
            # past (confirmations, reminders of shows long over) are not sent to buyers now.
            boxoffice = open_boxoffice(settings)
            head = boxoffice.recorder.max_notification_id() or 0
            if head:
                view.insert_tracking(Tracking(application_name=boxoffice.name, notification_id=head))
            boxoffice.close()
        view.datastore.close()


def _table_exists(settings: Settings, name: str) -> bool:
    import psycopg

    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    return row is not None and row[0] is not None


def create_admin(settings: Settings, *, email: str, password: str, username: str) -> None:
    accounts = open_accounts(settings)
    try:
        accounts.ensure_admin(email=email, password=password, username=username)
    finally:
        accounts.close()


def load_demo(settings: Settings, *, progress: bool = False) -> list[str]:
    from commands.demo import DEMO_STEPS
    from commands.demo import load_demo as load

    boxoffice, accounts = open_boxoffice(settings), open_accounts(settings)
    try:
        if not progress:
            return load(boxoffice, accounts)
        from workers.progress import Bar

        with Bar("steps") as bar:
            bar.start(DEMO_STEPS, "accounts")
            return load(boxoffice, accounts, bar.step)
    finally:
        boxoffice.close()
        accounts.close()


def declare_actors(settings: Settings) -> Actors:
    """The dramatiq actors on a broker for REDIS_URL; what they need is built in the worker,
    on first use."""
    from workers.tasks import build_broker
    from workers.tasks import declare_actors as declare

    built: list[Runtime] = []
    building = threading.Lock()
    declared: list[Actors] = []

    def runtime() -> Runtime:
        with building:  # the worker's threads start at once: only the first one builds it
            if not built:
                rt = worker_runtime(settings)
                # Stock a worker returns (expiry, refunds, settling) goes to the waitlist at once.
                rt.boxoffice.after_waitlist_change = declared[0].queue_promotions
                built.append(rt)
            return built[0]

    declared.append(declare(build_broker(settings.redis_url), runtime))
    return declared[0]


def worker_runtime(settings: Settings) -> Runtime:
    """What the actors of a worker process use: the applications, the read side, mail."""
    from redis import Redis

    from commands.accounts import MailedSecrets
    from workers.mail import MailRuntime
    from workers.tasks import Runtime

    mail = MailRuntime(
        accounts=open_accounts(settings),
        redis=Redis.from_url(settings.redis_url),
        mailer=open_mailer(settings),
        secrets=MailedSecrets(settings.jwt_secret),
        base_url=settings.base_url,
        signer=ticket_signer(settings),
    )
    return Runtime(open_boxoffice(settings), open_inbox(settings), settings.database_url, mail)


def ticket_signer(settings: Settings) -> TicketSigner:
    """Signs with TICKET_SIGNING_KEY; accepts codes signed with TICKET_SIGNING_OLD_KEYS too."""
    from commands.tickets_signing import TicketSigner

    return TicketSigner.from_secret(settings.ticket_signing_key, settings.ticket_signing_old_keys)


def open_mailer(settings: Settings) -> Mailer:
    from workers.mail import Mailer

    return Mailer(
        settings.smtp_host, settings.smtp_port, settings.mail_from, security=settings.smtp_security,
        username=settings.smtp_username, password=settings.smtp_password,
    )  # fmt: skip


def create_api(settings: Settings | None = None) -> Any:
    """What uvicorn serves (`uvicorn ticketing:create_api --factory`): the API of `api/app.py`
    on this deployment's applications, claims port and workers."""
    from api.app import create_service
    from api.services import Services
    from commands.claims_client import ClaimClient
    from workers import heap

    settings = settings or Settings.from_env()
    actors = declare_actors(settings)

    async def open_services() -> Services:
        boxoffice = open_boxoffice(settings)
        if settings.claims_address:  # the claims service places every order, this process's writer if it is away
            boxoffice.claims = ClaimClient(
                settings.claims_address, fallback=boxoffice.writer,
                secret=settings.claims_secret, timeout=settings.claims_timeout_seconds,
            )  # fmt: skip
        # Holds placed through this process's writer expire at their deadline (the sweep is the
        # safety net); the claims service does the same for its own.
        boxoffice.writer.after_commit = actors.schedule_expiries
        # Stock that a request returns (a cancelled order, a refund) is offered to the waitlist.
        boxoffice.after_waitlist_change = actors.queue_promotions
        accounts = open_accounts(settings)
        # Payments of an organizer's orders go to the payout account they linked.
        boxoffice.payout_account_of = partial(payout_account_of, accounts)
        services = await Services.open(
            settings,
            boxoffice=boxoffice,
            accounts=accounts,
            inbox=open_inbox(settings),
            tasks=actors,
            signer=ticket_signer(settings),
        )
        heap.settle()  # once the services are open (see workers/heap.py)
        return services

    return create_service(settings, open_services)


def payout_account_of(accounts: Accounts, owner: UUID) -> str:
    """The payout account the organizer linked ("" if none, or no such account)."""
    found = accounts.find_by_id(owner)
    return found.payout_account if found is not None else ""


def worker() -> None:
    """The dramatiq worker's broker and actors (`dramatiq ticketing:worker`)."""
    import dramatiq

    from workers.metrics import Sampler, sample_backlogs

    settings = Settings.from_env()
    actors = declare_actors(settings)
    dramatiq.set_broker(actors.expire_hold.broker)
    Sampler("backlogs", sample_backlogs(settings.database_url)).start()  # webhook and mail backlogs


def run_claims_service(settings: Settings) -> None:
    import logging

    from workers import heap
    from workers.claims_service import run_claims_service as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not settings.claims_address:
        raise SystemExit("CLAIMS_ADDRESS is not set: say where the claims service listens (unix:/path or host:port)")
    boxoffice = open_boxoffice(settings)
    boxoffice.writer.after_commit = declare_actors(settings).schedule_expiries
    heap.settle()
    try:
        run(boxoffice.writer, settings.claims_address, settings.claims_secret)
    finally:
        boxoffice.close()


def report(settings: Settings, args: argparse.Namespace) -> str:
    """`ticketing report NAME`: replay the store (or one show's events) through a report."""
    from commands.tickets_signing import human_code
    from projections.reports.source import Source
    from workers.reports import run_report

    boxoffice, accounts = open_boxoffice(settings), open_accounts(settings)
    try:
        return run_report(
            Source(boxoffice, accounts), args.name, event_id=args.event, start=args.start, end=args.end,
            fmt=args.format, out=args.out, options={"bucket": args.bucket} if args.bucket else {},
            ticket_code=human_code,
        )  # fmt: skip
    finally:
        boxoffice.close()
        accounts.close()


def rebuild_with_progress(settings: Settings, name: str | None) -> dict[str, int]:
    from workers.progress import Bar
    from workers.projector import rebuild

    with Bar() as bar:
        bar.start(0, f"rebuilding {name or 'every read model'}")
        return rebuild(settings.eventsourcing_env(), name, progress=bar.reach)


def run(settings: Settings, *, demo: bool) -> int:
    """`ticketing run`: the whole service with embedded defaults (workers/supervisor.py)."""
    from workers.supervisor import run_service

    def prepare(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        stack_settings = Settings.from_env(env)
        migrate(stack_settings)
        # Pin the development signing keys so every child process agrees on them.
        pinned = {"JWT_SECRET": stack_settings.jwt_secret, "TICKET_SIGNING_KEY": stack_settings.ticket_signing_key,
                  "PERSONAL_DATA_SECRET": stack_settings.personal_data_secret}  # fmt: skip
        return pinned, load_demo(stack_settings) if demo else []

    return run_service(
        data_dir=settings.data_dir,
        host=settings.host,
        port=settings.port,
        web_workers=settings.web_concurrency,
        prepare=prepare,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ticketing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="start the whole service (embedded defaults when no URLs are set)")
    run_cmd.add_argument("--no-demo", action="store_true", help="skip loading the demo data set")
    sub.add_parser("migrate", help="create the event store and read-model tables")
    sub.add_parser("demo", help="load the demo data set (idempotent)")
    admin = sub.add_parser("create-admin", help="create (or promote) an admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--username", default="admin")
    proj = sub.add_parser("projections", help="run or rebuild read models")
    proj_sub = proj.add_subparsers(dest="action", required=True)
    proj_sub.add_parser("run", help="run every projection until stopped")
    rebuild_cmd = proj_sub.add_parser("rebuild", help="drop and rebuild read models from the event store")
    rebuild_cmd.add_argument("name", nargs="?", help="one read model (default: all)")
    proj_sub.add_parser("list", help="list read models and their positions")
    proj_sub.add_parser("errors", help="list the events read models could not apply (set aside)")
    retry_cmd = proj_sub.add_parser(
        "retry", help="apply set-aside events again, after a fix (when in doubt, rebuild the model instead)"
    )
    retry_cmd.add_argument("name", nargs="?", help="one read model (default: all)")
    rep = sub.add_parser("report", help="compute a report by replaying the event store (--list: which)")
    rep.add_argument("name", nargs="?", help="the report (see --list)")
    rep.add_argument("--list", action="store_true", help="list the reports and their formats")
    rep.add_argument("--event", type=UUID, help="one show (reads only its events); default: the whole store")
    rep.add_argument("--from", dest="start", metavar="T", help="rows from this ISO 8601 time (UTC) on")
    rep.add_argument("--to", dest="end", metavar="T", help="the report as it stood at this time")
    rep.add_argument("--format", choices=["csv", "json", "png", "svg"], help="default: from --out, else the first")
    rep.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    rep.add_argument("--bucket", choices=["minute", "5min", "hour", "day"], help="time buckets of charts")
    sub.add_parser("scheduler", help="enqueue periodic jobs (hold sweep) until stopped")
    sub.add_parser("claims", help="run the claims service (the one claim writer) on CLAIMS_ADDRESS")
    sub.add_parser("notifier", help="follow the event log and queue the mails it causes, until stopped")
    args = parser.parse_args(argv)
    settings = Settings.from_env()

    if args.command == "run":
        sys.exit(run(settings, demo=not args.no_demo))
    elif args.command == "migrate":
        migrate(settings)
    elif args.command == "demo":
        print("\n".join(load_demo(settings, progress=True)))
    elif args.command == "report":
        from workers.reports import list_reports

        if args.list or not args.name:
            print("\n".join(list_reports()))
        else:
            print(report(settings, args), file=sys.stderr)
    elif args.command == "create-admin":
        create_admin(settings, email=args.email, password=args.password, username=args.username)
        print(f"admin {args.email} ready")
    elif args.command == "projections":
        from workers.projector import list_errors, list_positions, retry_errors, run_forever

        env = settings.eventsourcing_env()
        if args.action == "run":
            run_forever(env)
        elif args.action == "rebuild":
            for name, count in rebuild_with_progress(settings, args.name).items():
                print(f"rebuilt {name}: {count} events")
        elif args.action == "errors":
            rows = list_errors(env)
            for row in rows:
                when = f"{row['last_failed_at']:%Y-%m-%d %H:%M:%S}"
                print(f"{row['model']}\t{row['notification_id']}\t{row['topic']}\t{row['originator_id']}\t"
                      f"tries={row['attempts']}\tlast={when}\t{row['error']}")  # fmt: skip
            print(f"{len(rows)} events set aside" if rows else "no events set aside")
        elif args.action == "retry":
            for name, (applied, failing) in retry_errors(env, args.name).items():
                print(f"{name}: applied {applied}, still failing {failing}")
        else:
            for name, position in list_positions(env).items():
                print(f"{name}\t{position}")
    elif args.command == "scheduler":
        from workers.scheduler import run_scheduler

        run_scheduler(declare_actors(settings), settings.sweep_interval_seconds)
    elif args.command == "claims":
        run_claims_service(settings)
    elif args.command == "notifier":
        from workers.notifier import run_notifier

        run_notifier(settings.eventsourcing_env(pool_size=2), declare_actors(settings).queue_mails)


if __name__ == "__main__":
    main()
