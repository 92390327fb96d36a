"""The event store's mapper: the library's, decoding stored events faster, with the same result.

`eventsourcing`'s JSON transcoder parses every stored event with the `json` module and an
`object_hook` called for every JSON object, turning `{"_type_": "uuid_hex", "_data_": ...}`
and `{"_type_": "datetime_iso", ...}` objects into UUIDs and datetimes in Python: about half of
a replay's CPU went there, and a fifth of an API process's during a seated on-sale (the claim
writer fast-forwarding seats the other process had changed). `EventDecoder` produces the very
same domain event objects (class, `__dict__`, value types) from the same stored bytes, without
changing the stored format:

1. the UUID and datetime objects are unwrapped into their strings (split and join, no parsing);
2. msgspec decodes the result into a Struct derived from the event class's annotations, so
   UUIDs and datetimes are parsed in C, and unknown or missing fields are errors;
3. the number of UUIDs and datetimes the result holds must equal the number unwrapped, which
   proves each one landed in a field annotated as such (a UUID kept in a `str` field would not).

A field the event class declares with a default (`actor_id` on every event, `domain/audit.py`;
`Order.Placed.number`) may be missing from the stored state, as it is in events stored before
the field existed: the fast path then leaves it out of the event's `__dict__` too, exactly as the
library's mapper does (the class attribute supplies the default), instead of falling back.

Anything else — event classes whose annotations are not plain (`Any`, `dict`, Decimal ...), a
class version above 1, a cipher or compressor, a value that does not fit its annotation — is
decoded by the library's own mapper, so the result never differs from `Mapper.to_domain_event`.

`FastMapper` is that mapper with the fast path, selected through the library's `MAPPER_TOPIC`
setting (`ticketing.Settings.eventsourcing_env`), so aggregates loaded and fast-forwarded by
the commands and events applied by the read models all go through it.

It is also where personal data is sealed and opened (`commands/privacy.py`): the fields an event
class names in `personal_data` (`domain/privacy.py`) are stored sealed with their owner's key and
read back plain, or empty once the owner is erased. Sealed values are strings, so the fast path
decodes them as any other; the work is one dictionary look-up per event for the classes without
personal data.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoder,
    find_id_convertor,
)
from eventsourcing.utils import resolve_topic

from commands.privacy import Vault
from domain.errors import Invalid
from domain.privacy import Erasure, erased_values, personal_fields

# How the transcoder writes UUIDs and datetimes: `{"_type_":"uuid_hex","_data_":"<32 hex>"}`,
# `{"_type_":"datetime_iso","_data_":"<isoformat>"}`. Inside a JSON string a quote is always
# escaped, so `{"_type_":"` can only be the start of such an object (and a hex string or an ISO
# time holds no quote).
_TAG = b'{"_type_":"'
_TAGGED = re.compile(rb'\{"_type_":"(?:uuid_hex|datetime_iso)","_data_":("[^"]*")\}')
# The fields the mapper takes from the stored event's columns, not from its state.
_COLUMNS = ("originator_id", "originator_version")

# How many UUIDs and datetimes a field's value holds: a function of the value, or a number when
# every value of the field holds the same (a plain UUID or datetime field: msgspec refuses null).
Counter = Callable[[Any], int] | int


class Stored(Protocol):
    """What decoding reads of a stored event (a `StoredEvent` or anything with its fields)."""

    @property
    def originator_id(self) -> UUID | str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


class Unsupported(TypeError):
    """An annotation the fast path does not decode; the mapper handles the class."""


class EventDecoder:
    """`decode(stored)` == `mapper.to_domain_event(stored)`, faster for the event classes it knows."""

    def __init__(self, mapper: Mapper[Any], fallback: Callable[[Any], Any] | None = None) -> None:
        self.mapper = mapper
        self._mapper_decode: Callable[[Any], Any] = fallback or mapper.to_domain_event
        transcoder = mapper.transcoder
        self.enabled = (
            isinstance(transcoder, JSONTranscoder)
            and mapper.cipher is None
            and mapper.compressor is None
            and transcoder.names.get("uuid_hex") is not None
            and transcoder.names.get("datetime_iso") is not None
        )
        self._plans: dict[str, _Plan | None] = {}
        self.fallbacks = 0  # events the mapper decoded

    def _fallback(self, stored: Stored) -> Any:
        self.fallbacks += 1
        return self._mapper_decode(stored)

    def decode(self, stored: Stored) -> Any:
        plan = self._plans.get(stored.topic, _MISSING)
        if plan is _MISSING:
            plan = self._plans[stored.topic] = self._plan(stored.topic) if self.enabled else None
        if plan is None:
            return self._fallback(stored)
        unwrapped = _unwrap(stored.state)
        if unwrapped is None:
            return self._fallback(stored)
        state, tagged = unwrapped
        try:
            fields = plan.decoder.decode(state)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._fallback(stored)
        event_state: dict[str, Any] = msgspec.structs.asdict(fields)
        for name, finish in plan.finishers:
            event_state[name] = finish(event_state[name])
        counted = plan.counted_always
        for name, count in plan.counters:
            counted += count(event_state[name])
        if counted != tagged:
            return self._fallback(stored)
        for name in plan.optional:
            if event_state[name] is msgspec.UNSET:
                del event_state[name]  # not stored: the class's default, as the mapper leaves it
        originator_id = stored.originator_id
        if type(originator_id) is not UUID:
            return self._fallback(stored)
        event_state["originator_id"] = plan.id_convertor(originator_id)
        event_state["originator_version"] = stored.originator_version
        event = object.__new__(plan.cls)
        object.__setattr__(event, "__dict__", event_state)
        return event

    def _plan(self, topic: str) -> _Plan | None:
        try:
            cls = resolve_topic(topic)
            if getattr(cls, "class_version", 1) != 1:
                return None
            hints = typing.get_type_hints(cls)
            defaults = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
            fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
            counters: list[tuple[str, Callable[[Any], int]]] = []
            fixed = 0
            finishers: list[tuple[str, Callable[[Any], Any]]] = []
            optional: list[str] = []
            for name, hint in hints.items():
                if name in _COLUMNS or typing.get_origin(hint) is typing.ClassVar:
                    continue
                spec, count, finish = _field(hint)
                if name in defaults and finish is None:
                    # May be missing (stored before the field existed): UNSET, then left out.
                    fields.append((name, spec | msgspec.UnsetType, msgspec.UNSET))
                    optional.append(name)
                    count = _unless_unset(count) if count is not None else None
                else:
                    fields.append((name, spec))
                if isinstance(count, int):
                    fixed += count
                elif count is not None:
                    counters.append((name, count))
                if finish is not None:
                    finishers.append((name, finish))
            struct = msgspec.defstruct(f"{cls.__qualname__}State", fields, forbid_unknown_fields=True, kw_only=True)
            id_convertor = find_id_convertor(cls, UUID)
        except (Unsupported, TypeError, NameError, ValueError, AttributeError):
            return None
        return _Plan(
            cls,
            msgspec.json.Decoder(struct),
            fixed,
            tuple(counters),
            tuple(finishers),
            tuple(optional),
            id_convertor,
        )


def _unwrap(state: bytes) -> tuple[bytes, int] | None:
    """The stored JSON with each UUID and datetime object replaced by its string, and how many
    there were; None if it holds any other kind of tagged object.

    One `re.split` does it in C: the pattern's one group is the object's quoted string, so the
    pieces joined are the text around the objects with those strings in their place. A tagged
    object the pattern does not take (another type, or not in the transcoder's shape) leaves a
    tag behind, and the caller falls back to the library's mapper."""
    parts = _TAGGED.split(state)
    joined = b"".join(parts) if len(parts) > 1 else state
    if _TAG in joined:
        return None
    return joined, len(parts) // 2


class _Plan(typing.NamedTuple):
    cls: type
    decoder: msgspec.json.Decoder[Any]
    # How many UUIDs and datetimes the fields that always hold the same number hold together,
    counted_always: int
    # and per other field, how many its value holds.
    counters: tuple[tuple[str, Callable[[Any], int]], ...]
    # Per field: Structs standing in for TypedDicts, turned back into dicts.
    finishers: tuple[tuple[str, Callable[[Any], Any]], ...]
    # Fields with a default on the class: absent from the event when absent from the state.
    optional: tuple[str, ...]
    # What the mapper does to a UUID originator id (for classes typed with UUID ids: nothing).
    id_convertor: Callable[[Any], Any]


_MISSING: Any = object()


def _field(hint: Any) -> tuple[Any, Counter | None, Callable[[Any], Any] | None]:
    """(msgspec type, counter of UUIDs/datetimes, finisher) for an annotation, or Unsupported."""
    if hint in (UUID, datetime):
        return hint, 1, None
    if hint is float:
        return int | float, None, None  # the json module keeps 24 an int even where float is annotated
    if hint in (str, int, bool, type(None)):
        return hint, None, None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        parts = [_field(option) for option in options]
        if any(finish is not None for _, _, finish in parts):
            raise Unsupported(hint)
        counted = [option for option, (_, count, _) in zip(options, parts, strict=True) if count is not None]
        if counted and not set(options) <= {*counted, type(None)}:
            raise Unsupported(hint)  # e.g. UUID | str: which one a string is would be ambiguous
        return typing.Union[tuple(spec for spec, _, _ in parts)], (_one if counted else None), None  # noqa: UP007
    if origin is list:
        (item,) = typing.get_args(hint)
        spec, count, finish = _field(item)
        return types.GenericAlias(list, (spec,)), _sum(count), (_each(finish) if finish else None)
    if typing.is_typeddict(hint):
        return _typeddict(hint)
    raise Unsupported(hint)


def _typeddict(hint: Any) -> tuple[Any, Counter | None, Callable[[Any], Any] | None]:
    if hint.__optional_keys__:
        raise Unsupported(hint)
    fields = []
    counters: list[tuple[str, Callable[[Any], int]]] = []
    fixed = 0
    for name, item in typing.get_type_hints(hint).items():
        spec, count, finish = _field(item)
        if finish is not None:
            raise Unsupported(hint)
        fields.append((name, spec))
        if isinstance(count, int):
            fixed += count
        elif count is not None:
            counters.append((name, count))
    struct = msgspec.defstruct(hint.__name__, fields, forbid_unknown_fields=True)
    asdict = msgspec.structs.asdict
    if not counters:
        return struct, (fixed or None), asdict

    def count_item(value: dict[str, Any]) -> int:
        return fixed + sum(c(value[name]) for name, c in counters)

    return struct, count_item, asdict


def _one(value: Any) -> int:
    return 0 if value is None else 1


def _unless_unset(count: Counter) -> Counter:
    if isinstance(count, int):
        return lambda value: 0 if value is msgspec.UNSET else count
    return lambda value: 0 if value is msgspec.UNSET else count(value)


def _sum(count: Counter | None) -> Counter | None:
    if count is None:
        return None
    if isinstance(count, int):
        return lambda values: count * len(values)
    return lambda values: sum(count(v) for v in values)


def _each(finish: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda values: [finish(v) for v in values]


# A NUL character as the transcoder writes it (`\u0000`), not preceded by an escaping backslash
# (`\\u0000` is a backslash and the letters u0000, harmless text).
_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


class UnstorableText(Invalid):
    """Text with a NUL character: Postgres refuses it in `text` and `jsonb`, so a read model
    could never apply the event. Refused before it is stored (the API refuses it earlier still)."""

    code = "unstorable_text"


def without_nul(state: bytes) -> bytes:
    """Stored event state with every NUL character replaced by U+FFFD."""
    return _NUL.sub(rb"\1\\ufffd", state)


class FastMapper(Mapper[UUID]):
    """`Mapper` whose `to_domain_event` takes the `EventDecoder` fast path (same events).

    It also keeps NUL characters out of the store, both ways: an event carrying one is refused
    (`UnstorableText`), and one stored before that check existed is read back with U+FFFD in its
    place, by the aggregates and every read model alike, so it can never stop a projector.
    """

    def __init__(self, transcoder: Transcoder, compressor: Compressor | None = None, cipher: Cipher | None = None):
        super().__init__(transcoder, compressor, cipher)
        self.decoder = EventDecoder(self, fallback=super().to_domain_event)
        # Set by the application (`commands.base.BaseApplication`); without one, nothing is sealed.
        self.vault: Vault | None = None
        self._personal: dict[type, _Personal | None] = {}

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if self.vault is not None:
            personal = self._personal.get(type(domain_event), _MISSING)
            if personal is _MISSING:
                personal = self._personal_of(type(domain_event))
            if personal is not None:
                domain_event = personal.sealed(domain_event, self.vault)
        stored = super().to_stored_event(domain_event)
        if b"\\u0000" in stored.state and _NUL.search(stored.state):
            raise UnstorableText("text must not contain NUL characters")
        return stored

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        if b"\\u0000" in stored_event.state:
            event = self.decoder.decode(_Sanitised(stored_event, without_nul(stored_event.state)))
        else:
            event = self.decoder.decode(stored_event)
        if self.vault is not None:
            # Inline, not a method call: this runs for every event of a replay.
            personal = self._personal.get(type(event), _MISSING)
            if personal is _MISSING:
                personal = self._personal_of(type(event))
            if personal is not None:
                personal.open(event, self.vault)
        return event

    def _personal_of(self, cls: type) -> _Personal | None:
        try:
            return self._personal[cls]
        except KeyError:
            fields, owner = personal_fields(cls)
            if cls is Erasure.Recorded:
                found: _Personal | None = _Personal((), "person_id", {}, forget=True)
            elif fields:
                found = _Personal(fields, owner, erased_values(cls))
            else:
                found = None
            self._personal[cls] = found
            return found


class _Personal(typing.NamedTuple):
    """How one event class's personal fields are sealed and opened."""

    fields: tuple[str, ...]
    owner: str
    # What each field reads as once its owner is erased: "" or, where the field allows it, None.
    empty: dict[str, Any]
    # An erasure: every process that reads it drops the person's cached key.
    forget: bool = False

    def sealed(self, domain_event: Any, vault: Vault) -> Any:
        state = domain_event.__dict__
        owner = state.get(self.owner)
        if not self.fields or not isinstance(owner, UUID):
            return domain_event
        copy = object.__new__(type(domain_event))
        plain = {f: v for f in self.fields if isinstance(v := state.get(f), str)}
        if any("\x00" in v for v in plain.values()):
            raise UnstorableText("text must not contain NUL characters")
        values = {f: vault.seal(owner, v) for f, v in plain.items()}
        object.__setattr__(copy, "__dict__", {**state, **values})
        return copy

    def open(self, event: Any, vault: Vault) -> None:
        state = event.__dict__
        if self.forget:
            if isinstance(person := state.get(self.owner), UUID):
                vault.forget(person)
            return
        for name in self.fields:
            value = state.get(name)
            if isinstance(value, str):
                plain = vault.open(value)
                state[name] = self.empty[name] if plain is None else plain


class _Sanitised:
    """A stored event (or notification) with its state replaced; every other field as it was."""

    def __init__(self, stored: Any, state: bytes) -> None:
        self._stored = stored
        self.state = state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stored, name)
