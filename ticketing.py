"""Composition root: typed settings from the environment, and the `ticketing` CLI.

Nothing here runs at import time; every entry point builds `Settings.from_env()` first.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    """Everything configurable, read once from the environment (12-factor)."""

    database_url: str = ""
    redis_url: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "tickets@example.test"
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
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
    ticket_signing_key: str = ""
    max_body_bytes: int = 1_000_000
    projection_wait_seconds: float = 5.0
    sweep_interval_seconds: float = 30.0
    # Listing searches are answered from Redis while the read models have not moved (0: off).
    listing_cache_seconds: int = 60
    # POST /api/v1/orders from API clients is answered in front of the framework (api/express.py).
    express_orders: bool = True
    # Where the claims service listens (unix:/path or host:port); empty: each API process
    # places orders with a claim writer of its own (commands/claims_remote.py).
    claims_address: str = ""
    service_fee_percent: str = "0"
    service_fee_fixed: int = 0
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    public_url: str = ""
    # Per-client (IP) limits, "<count>/<second|minute|hour|day>"; RATE_LIMITS_ENABLED=false turns them off.
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
            stripe_api_key=env.get("STRIPE_API_KEY", ""),
            stripe_api_base=env.get("STRIPE_API_BASE", ""),
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
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
            ticket_signing_key=env.get("TICKET_SIGNING_KEY", ""),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", "1000000")),
            projection_wait_seconds=float(env.get("PROJECTION_WAIT_SECONDS", "5")),
            sweep_interval_seconds=float(env.get("SWEEP_INTERVAL_SECONDS", "30")),
            listing_cache_seconds=int(env.get("LISTING_CACHE_SECONDS", "60")),
            express_orders=env.get("EXPRESS_ORDERS", "true").lower() not in ("false", "0", "no", "off"),
            claims_address=env.get("CLAIMS_ADDRESS", ""),
            service_fee_percent=env.get("SERVICE_FEE_PERCENT", "0"),
            service_fee_fixed=int(env.get("SERVICE_FEE_FIXED", "0")),
            cors_origins=tuple(o for o in env.get("CORS_ORIGINS", "").split(",") if o),
            public_url=env.get("PUBLIC_URL", "").rstrip("/"),
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

    def eventsourcing_env(self, *, create_tables: bool = False) -> dict[str, str]:
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
            "POSTGRES_POOL_SIZE": "8",
            "POSTGRES_MAX_OVERFLOW": "16",
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
            "AGGREGATE_CACHE_MAXSIZE": "20000",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
            "CREATE_TABLE": "y" if create_tables else "n",
        }


def _dev_secret(data_dir: Path) -> str:
    """A development signing key kept under .data/ so tokens survive restarts."""
    path = data_dir / "dev-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ticketing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the whole service (embedded defaults when no URLs are set)")
    run.add_argument("--no-demo", action="store_true", help="skip loading the demo data set")
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
    sub.add_parser("scheduler", help="enqueue periodic jobs (hold sweep) until stopped")
    sub.add_parser("claims", help="run the claims service (the one claim writer) on CLAIMS_ADDRESS")
    args = parser.parse_args(argv)
    settings = Settings.from_env()

    if args.command == "run":
        from workers.stack import run_service

        sys.exit(run_service(settings, demo=not args.no_demo))
    elif args.command == "migrate":
        from commands.setup import migrate

        migrate(settings)
    elif args.command == "demo":
        from commands.demo import load_demo

        print("\n".join(load_demo(settings)))
    elif args.command == "create-admin":
        from commands.setup import create_admin

        create_admin(settings, email=args.email, password=args.password, username=args.username)
        print(f"admin {args.email} ready")
    elif args.command == "projections":
        from projections.runner import list_errors, list_positions, rebuild, retry_errors, run_forever

        if args.action == "run":
            run_forever(settings)
        elif args.action == "rebuild":
            for name, count in rebuild(settings, args.name).items():
                print(f"rebuilt {name}: {count} events")
        elif args.action == "errors":
            rows = list_errors(settings)
            for row in rows:
                when = f"{row['last_failed_at']:%Y-%m-%d %H:%M:%S}"
                print(f"{row['model']}\t{row['notification_id']}\t{row['topic']}\t{row['originator_id']}\t"
                      f"tries={row['attempts']}\tlast={when}\t{row['error']}")  # fmt: skip
            print(f"{len(rows)} events set aside" if rows else "no events set aside")
        elif args.action == "retry":
            for name, (applied, failing) in retry_errors(settings, args.name).items():
                print(f"{name}: applied {applied}, still failing {failing}")
        else:
            for name, position in list_positions(settings).items():
                print(f"{name}\t{position}")
    elif args.command == "scheduler":
        from workers.scheduler import run_scheduler

        run_scheduler(settings)
    elif args.command == "claims":
        from workers.claims import run_claims_service

        run_claims_service(settings)


if __name__ == "__main__":
    main()
