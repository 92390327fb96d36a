"""At the door: scanners granted per event, check-in by QR code (online, and synced from
scanners that worked offline with the event's scanner kit), and the organizer's attendee list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast
from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from api.access import owned_event, visible_event
from api.common import AwareDatetime, Page, PageParam, PageSizeParam, page_of
from api.security import Principal
from api.services import Services
from commands.door import INVALID, Scan, ScanResult
from commands.tickets_signing import CODE_VERSION, InvalidTicketCode, human_code
from domain.errors import Forbidden, Invalid, NotFound
from domain.order import AlreadyCheckedIn, WrongDay
from projections import queries

# A scanner syncing a whole evening offline sends its scans in batches of at most this many.
MAX_BATCH = 500
# Scanner clocks drift; a scan claiming to be from further in the future than this is refused.
CLOCK_SKEW = timedelta(minutes=5)
KIT_PAGE_DEFAULT = 1000
KIT_PAGE_MAX = 5000


class CheckInCreate(msgspec.Struct, forbid_unknown_fields=True):
    qr_data: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class CheckIn(msgspec.Struct):
    ticket_id: UUID
    code: str
    status: str
    checked_in_at: datetime
    checked_in_by: UUID | None
    attendee_name: str | None
    tier_name: str | None
    day: str | None
    section: str | None
    row: str | None
    seat: str | None


class CheckInRefused(msgspec.Struct, omit_defaults=True):
    """The contract's error body, with what a door needs to know about the refusal: when (and by
    whom) the ticket was first admitted (`already_checked_in`), the day a day pass is valid on
    (`wrong_day`)."""

    error: str
    code: str
    ticket_id: UUID | None = None
    first_checked_in_at: datetime | None = None
    checked_in_by: UUID | None = None
    valid_day: str | None = None


class ScannerCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


class Scanner(msgspec.Struct):
    account_id: UUID
    granted_at: datetime


class KitTicket(msgspec.Struct):
    ticket_id: UUID
    code: str
    # The issue of the ticket its current QR code carries; a code with a lower one was replaced.
    generation: int
    status: str  # valid | checked_in | voided
    checked_in_at: datetime | None
    attendee_name: str | None
    tier_id: UUID
    tier_name: str | None
    day: str | None
    section: str | None
    row: str | None
    seat: str | None


class KitKey(msgspec.Struct):
    """A key ticket codes may be signed with: its id and the raw Ed25519 public key (base64url)."""

    key_id: str
    public_key: str


class ScannerKit(msgspec.Struct):
    """What a scanner needs to admit people without a network: the keys to verify ticket codes
    with, and the event's tickets to de-duplicate against. Page with `after=next_after` until
    `next_after` is null.

    `public_key`/`key_id` name the key new codes are signed with; `public_keys` lists every key a
    valid code may carry the signature of (that one first, then the previous ones kept after a
    rotation, TICKET_SIGNING_OLD_KEYS): a scanner accepts a code any of them verifies."""

    event_id: UUID
    event_title: str
    timezone: str
    days: list[str]
    algorithm: str
    code_format: str
    public_key: str
    key_id: str
    public_keys: list[KitKey]
    generated_at: datetime
    total_items: int
    tickets: list[KitTicket]
    next_after: UUID | None


class SyncedScan(msgspec.Struct, forbid_unknown_fields=True):
    qr_data: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    scanned_at: AwareDatetime
    scanner_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class CheckInBatchCreate(msgspec.Struct, forbid_unknown_fields=True):
    scans: Annotated[list[SyncedScan], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class ScanOutcome(msgspec.Struct):
    index: int
    result: str  # checked_in | already_checked_in | wrong_day | voided | invalid
    message: str
    ticket_id: UUID | None
    scanner_ref: str | None
    # checked_in: when this scan admitted the ticket; already_checked_in: the first admission.
    checked_in_at: datetime | None
    checked_in_by: UUID | None
    valid_day: str | None


class CheckInBatch(msgspec.Struct):
    results: list[ScanOutcome]
    counts: dict[str, int]


class Attendee(msgspec.Struct):
    ticket_id: UUID
    code: str
    order_id: UUID
    holder_id: UUID
    attendee_name: str | None
    status: str
    tier_name: str | None
    day: str | None
    section: str | None
    row: str | None
    seat: str | None
    checked_in_at: datetime | None


def ticket_status(row: dict[str, Any]) -> str:
    return "checked_in" if row["checked_in_at"] and row["status"] == "valid" else row["status"]


def refused(exc: AlreadyCheckedIn | WrongDay, ticket_id: UUID) -> Response[CheckInRefused]:
    body = CheckInRefused(error=exc.message, code=exc.code, ticket_id=ticket_id)
    if isinstance(exc, AlreadyCheckedIn):
        body.first_checked_in_at = exc.first_checked_in_at
        body.checked_in_by = exc.checked_in_by
    else:
        body.valid_day = exc.valid_day
    return Response(body, status_code=409, media_type=MediaType.JSON)


async def may_scan(services: Services, user: Principal, event_id: UUID) -> dict[str, Any]:
    """The event row if the caller may work its door (owner, its scanners, admins): 404 if they
    cannot see the event, 403 otherwise."""
    row = await visible_event(services, user, event_id)
    if user.is_admin or row["organizer_id"] == user.id:
        return row
    async with services.pool.connection() as conn:
        if await queries.is_scanner(conn, event_id, user.id):
            return row
    raise Forbidden("you are not a scanner of this event", code="not_a_scanner")


class DoorController(Controller):
    path = "/events"
    tags = ["Check-in"]

    @post(
        "/{event_id:uuid}/check-ins",
        operation_id="checkIn",
        status_code=200,
        responses={409: ResponseSpec(CheckInRefused, description="Already checked in, wrong day, or not valid")},
    )
    async def check_in(
        self, event_id: UUID, data: CheckInCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Response[CheckIn]:
        """Scan a ticket: 200 the first time; 409 `already_checked_in` after (with
        `first_checked_in_at` and `checked_in_by`), 409 `wrong_day` for a day pass on another day
        in the show's time zone (with `valid_day`); forged or malformed codes 422, tickets of
        other events 404. Owner, scanners of the event, admins."""
        user = request.user
        await visible_event(services, user, event_id)
        try:
            verified = services.signer.verify(data.qr_data.strip())
        except InvalidTicketCode:
            raise Invalid("not a valid ticket code", code="invalid_ticket_code", field="qr_data") from None
        async with services.pool.connection() as conn:
            ticket = await queries.ticket(conn, verified.ticket_id)
        if ticket is None or verified.event_id != event_id or ticket["event_id"] != event_id:
            raise NotFound("no such ticket for this event", code="ticket_not_found")
        try:
            await services.command(
                lambda: services.boxoffice.check_in(
                    event_id=event_id,
                    order_id=ticket["order_id"],
                    ticket_id=verified.ticket_id,
                    generation=verified.generation,
                    scanner_id=user.id,
                    scanner_is_admin=user.is_admin,
                ),
                actor=user.id,
            )
        except (AlreadyCheckedIn, WrongDay) as exc:
            # Answered here rather than by the exception handler: the body carries the details.
            return cast("Response[CheckIn]", refused(exc, verified.ticket_id))
        async with services.pool.connection() as conn:
            row = await queries.ticket(conn, verified.ticket_id)
        assert row is not None and row["checked_in_at"] is not None
        return Response(
            CheckIn(
                ticket_id=row["id"],
                code=human_code(row["id"]),
                status="checked_in",
                checked_in_at=row["checked_in_at"],
                checked_in_by=row["checked_in_by"],
                attendee_name=row["attendee_name"],
                tier_name=row["tier_name"],
                day=row["tier_day"],
                section=row["section"],
                row=row["row_label"],
                seat=row["seat"],
            )
        )

    @post("/{event_id:uuid}/check-ins/batch", operation_id="syncCheckIns", status_code=200)
    async def check_in_batch(
        self, event_id: UUID, data: CheckInBatchCreate, request: Request[Principal, Any, Any], services: Services
    ) -> CheckInBatch:
        """Sync scans an offline scanner made (at most 500 per request): one result per scan, in
        the order sent. The first scan of a ticket wins, by `scanned_at` (also over a check-in
        recorded since, if it was earlier); later ones are `already_checked_in` with the first
        time. Forged codes, other events' tickets and scans dated in the future are `invalid`;
        refunded or reissued tickets `voided`; day passes scanned on another day `wrong_day`.
        Sending the same batch again changes nothing and answers the same. Owner, scanners, admins."""
        user = request.user
        await visible_event(services, user, event_id)
        latest = datetime.now(UTC) + CLOCK_SKEW
        early: dict[int, ScanResult] = {}
        verified: dict[int, tuple[UUID, int]] = {}
        for index, scan in enumerate(data.scans):
            try:
                code = services.signer.verify(scan.qr_data.strip())
            except InvalidTicketCode:
                early[index] = ScanResult(index, INVALID, "not a valid ticket code")
                continue
            if code.event_id != event_id:
                early[index] = ScanResult(index, INVALID, "no such ticket for this event")
            elif scan.scanned_at > latest:
                early[index] = ScanResult(index, INVALID, "scanned_at is in the future")
            else:
                verified[index] = (code.ticket_id, code.generation)
        async with services.pool.connection() as conn:
            rows = await queries.tickets_by_ids(conn, list({t for t, _ in verified.values()}))
        orders = {r["id"]: r["order_id"] for r in rows if r["event_id"] == event_id}
        scans = []
        for index, (ticket_id, generation) in verified.items():
            if ticket_id not in orders:
                early[index] = ScanResult(index, INVALID, "no such ticket for this event")
            else:
                at = data.scans[index].scanned_at.astimezone(UTC)
                scans.append(Scan(index, ticket_id, orders[ticket_id], generation, at))
        # Always through the command: it decides whether the caller may scan at all.
        results = await services.command(
            lambda: services.boxoffice.check_in_batch(
                event_id=event_id, scans=scans, scanner_id=user.id, scanner_is_admin=user.is_admin
            ),
            actor=user.id,
        )
        by_index = {**early, **{r.index: r for r in results}}
        outcomes = []
        counts: dict[str, int] = {}
        for index, scan in enumerate(data.scans):
            r = by_index[index]
            counts[r.result] = counts.get(r.result, 0) + 1
            outcomes.append(
                ScanOutcome(
                    index=index,
                    result=r.result,
                    message=r.message,
                    ticket_id=verified[index][0] if index in verified else None,
                    scanner_ref=scan.scanner_ref,
                    checked_in_at=r.checked_in_at,
                    checked_in_by=r.checked_in_by,
                    valid_day=r.valid_day,
                )
            )
        return CheckInBatch(results=outcomes, counts=counts)

    @get("/{event_id:uuid}/scanner-kit", operation_id="getScannerKit")
    async def scanner_kit(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        after: UUID | None = None,
        limit: Annotated[int, Parameter(ge=1, le=KIT_PAGE_MAX)] = KIT_PAGE_DEFAULT,
    ) -> Response[ScannerKit]:
        """Everything a scanner needs offline: the Ed25519 public key that ticket codes are
        signed with (raw, base64url; `key_id` names it), every key still accepted
        (`public_keys`, after a rotation) and the event's tickets with their
        current generation, check-in state, attendee name, tier, day and seat, in pages of up to
        5,000 by ticket id (`after=<next_after>`). Owner, scanners of the event, admins."""
        event = await may_scan(services, request.user, event_id)
        async with services.pool.connection() as conn:
            rows = await queries.door_tickets(conn, event_id, after, limit)
            total = await queries.count_event_tickets(conn, event_id)
        kit = ScannerKit(
            event_id=event_id,
            event_title=event["title"],
            timezone=event["timezone"],
            days=list(event["days"] or []),
            algorithm="Ed25519",
            code_format=CODE_VERSION,
            public_key=services.signer.public_key_b64,
            key_id=services.signer.key_id,
            public_keys=[KitKey(kid, key) for kid, key in services.signer.verification_keys],
            generated_at=datetime.now(UTC),
            total_items=total,
            tickets=[
                KitTicket(
                    ticket_id=r["id"],
                    code=human_code(r["id"]),
                    generation=r["generation"],
                    status=ticket_status(r),
                    checked_in_at=r["checked_in_at"],
                    attendee_name=r["attendee_name"],
                    tier_id=r["tier_id"],
                    tier_name=r["tier_name"],
                    day=r["tier_day"],
                    section=r["section"],
                    row=r["row_label"],
                    seat=r["seat"],
                )
                for r in rows
            ],
            next_after=rows[-1]["id"] if len(rows) == limit else None,
        )
        # Attendee names: kept off shared caches.
        return Response(kit, headers={"Cache-Control": "private, no-store"})

    @get("/{event_id:uuid}/attendees", operation_id="listEventAttendees")
    async def attendees(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        status: Annotated[str | None, Parameter(pattern=r"^(valid|checked_in|voided)$")] = None,
    ) -> Page[Attendee]:
        """The event's tickets with attendee names, seats and check-ins, by name (owner, admins);
        `status` filters valid (not yet in), checked_in or voided tickets."""
        await owned_event(services, request.user, event_id)
        async with services.pool.connection() as conn:
            rows, total = await queries.event_attendees(conn, event_id, page, page_size, status)
        return page_of(
            [
                Attendee(
                    ticket_id=r["id"],
                    code=human_code(r["id"]),
                    order_id=r["order_id"],
                    holder_id=r["owner_id"],
                    attendee_name=r["attendee_name"],
                    status=ticket_status(r),
                    tier_name=r["tier_name"],
                    day=r["tier_day"],
                    section=r["section"],
                    row=r["row_label"],
                    seat=r["seat"],
                    checked_in_at=r["checked_in_at"],
                )
                for r in rows
            ],
            total,
            page,
            page_size,
        )

    @get("/{event_id:uuid}/scanners", operation_id="listScanners")
    async def list_scanners(
        self,
        event_id: UUID,
        request: Request[Principal, Any, Any],
        services: Services,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[Scanner]:
        """Door staff allowed to check tickets in for this event (owner)."""
        await owned_event(services, request.user, event_id)
        async with services.pool.connection() as conn:
            rows, total = await queries.scanners_page(conn, event_id, page, page_size)
        return page_of(
            [Scanner(account_id=r["account_id"], granted_at=r["granted_at"]) for r in rows], total, page, page_size
        )

    @post("/{event_id:uuid}/scanners", operation_id="grantScanner", status_code=201)
    async def grant(
        self, event_id: UUID, data: ScannerCreate, request: Request[Principal, Any, Any], services: Services
    ) -> Scanner:
        """Let an existing account check tickets in for this event (owner)."""
        return await grant_scanner(services, request.user, event_id, data.email)

    @delete("/{event_id:uuid}/scanners/{account_id:uuid}", operation_id="revokeScanner", status_code=204)
    async def revoke(
        self, event_id: UUID, account_id: UUID, request: Request[Principal, Any, Any], services: Services
    ) -> None:
        """Withdraw a scanner's access (owner)."""
        await owned_event(services, request.user, event_id)
        await services.command(lambda: services.boxoffice.revoke_scanner(event_id, account_id), actor=request.user.id)


async def grant_scanner(services: Services, user: Principal, event_id: UUID, email: str) -> Scanner:
    """Let the account with this e-mail check tickets in for the caller's show (422 if none)."""
    await owned_event(services, user, event_id)
    found = await services.call(lambda: services.accounts.lookup(email))
    if found is None:
        raise Invalid("no account with this e-mail", field="email")
    target = found
    await services.command(lambda: services.boxoffice.grant_scanner(event_id, target), actor=user.id)
    async with services.pool.connection() as conn:
        rows = [r for r in await queries.scanners(conn, event_id) if r["account_id"] == target]
    granted = rows[0]["granted_at"] if rows else datetime.now().astimezone()
    return Scanner(account_id=target, granted_at=granted)
