"""Signed, offline-verifiable ticket codes.

A ticket's QR code carries ``TK1.<payload>.<signature>``: the payload is the ticket id, the event
id and a reissue ``generation`` packed as bytes, the signature is Ed25519 over the text before the
last dot. Both parts are base64url without padding. No personal data is in the code, so a scanner
only needs the public key (``TicketSigner.public_key_b64``) to tell a genuine ticket from a forged
or altered one without a network connection; whether a genuine ticket was already used, voided or
superseded by a higher generation is still the scanner's check-in list's job.

Keys rotate: a signer signs with its current key and also accepts codes signed with the previous
keys it is given (``TICKET_SIGNING_OLD_KEYS``), so tickets printed or mailed before a rotation
still admit. Each key has an id (``key_id``, from its public key); the code itself keeps its
137-character format (a QR code stays as small, and every code issued so far stays valid), and is
verifiable by key id: ``verify`` reports which key it matched, and a scanner holds every valid
key with its id (``verification_keys``), trying the current one first.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "CODE_VERSION",
    "HUMAN_CODE_ALPHABET",
    "MAX_CODE_LENGTH",
    "MAX_GENERATION",
    "InvalidTicketCode",
    "TicketSigner",
    "VerifiedTicket",
    "human_code",
    "key_id_of",
    "verify_with_public_key",
    "verify_with_public_keys",
]

CODE_VERSION = "TK1"
MAX_GENERATION = 0xFFFF
# Far above a real code (137 characters), so a scanner can drop junk before any parsing.
MAX_CODE_LENGTH = 256

# ticket id (16) + event id (16) + generation (unsigned 16-bit, big-endian)
_PAYLOAD = struct.Struct(">16s16sH")
_SIGNATURE_SIZE = 64
_KEY_SIZE = 32
_PAYLOAD_B64_LENGTH = 46  # ceil(34 * 4 / 3)
_SIGNATURE_B64_LENGTH = 86  # ceil(64 * 4 / 3)
# Exact shape first: the stdlib base64 decoder silently skips characters outside the alphabet.
_B64 = "[A-Za-z0-9_-]"
_CODE = re.compile(rf"{CODE_VERSION}\.({_B64}{{{_PAYLOAD_B64_LENGTH}}})\.({_B64}{{{_SIGNATURE_B64_LENGTH}}})")

# Labels keep keys and codes derived here from ever colliding with other uses of the same secret.
_SEED_INFO = b"ticketing/ticket-signing-key/v1"
_HUMAN_CODE_LABEL = b"ticketing/human-code/v1:"

# No 0/O, 1/I/L (misread), and no U (fewer accidental words), as in Crockford's base32.
HUMAN_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
_HUMAN_CODE_LENGTH = 10


class InvalidTicketCode(Exception):
    """The scanned text is not a genuine ticket code of a supported version."""


@dataclass(frozen=True)
class VerifiedTicket:
    """What a genuine ticket code says: which ticket, for which event, which issue of it."""

    ticket_id: UUID
    event_id: UUID
    generation: int
    # The id of the key whose signature matched (the current one, or a previous one); not part
    # of what the ticket is, so not compared.
    key_id: str = field(default="", compare=False)


class TicketSigner:
    """Issues ticket codes with its current Ed25519 key; checks them against that key and the
    previous ones (codes issued before a rotation)."""

    def __init__(self, private_key: Ed25519PrivateKey, previous: Iterable[Ed25519PublicKey] = ()) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()
        current = _raw_public_key(self._public_key)
        keys = {current: self._public_key}
        for key in previous:
            keys.setdefault(_raw_public_key(key), key)  # the current key, or one listed twice: once
        # Current first: nearly every code scanned was signed with it.
        self._keys = [(key_id_of(raw), key) for raw, key in keys.items()]

    @classmethod
    def from_seed(cls, seed: bytes, previous: Iterable[bytes] = ()) -> TicketSigner:
        """A signer from the 32-byte Ed25519 private key seed (and the seeds of previous keys)."""
        for s in (seed, *previous):
            if len(s) != _KEY_SIZE:
                raise ValueError(f"an Ed25519 seed is {_KEY_SIZE} bytes, got {len(s)}")
        return cls(
            Ed25519PrivateKey.from_private_bytes(seed),
            [Ed25519PrivateKey.from_private_bytes(s).public_key() for s in previous],
        )

    @classmethod
    def from_secret(cls, secret: str, previous: Sequence[str] = ()) -> TicketSigner:
        """A signer whose key is derived deterministically from a configured secret string, and
        which also accepts codes signed with the keys of `previous` secrets (after a rotation).

        Every process given the same secret signs with the same key, so the public key handed to
        scanners stays stable. The secret must be long and random: anyone who learns it can
        issue tickets (and anyone who learns a previous one, until it is dropped from the list).
        """
        if not secret or not all(previous):
            raise ValueError("the ticket signing secret must not be empty")
        return cls.from_seed(_seed(secret), [_seed(p) for p in previous])

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    @property
    def public_key_b64(self) -> str:
        """The raw 32-byte public key, base64url without padding: what a scanner is configured with."""
        return _b64encode(_raw_public_key(self._public_key))

    @property
    def key_id(self) -> str:
        """A short name of the current public key (its SHA-256, first 8 bytes, base64url), so a
        scanner can tell that the key it holds is still the one tickets are signed with."""
        return self._keys[0][0]

    @property
    def verification_keys(self) -> list[tuple[str, str]]:
        """Every key a code may be signed with, as (key id, raw public key base64url), the
        current one first: what a scanner is configured with."""
        return [(kid, _b64encode(_raw_public_key(key))) for kid, key in self._keys]

    def sign(self, ticket_id: UUID, event_id: UUID, generation: int = 0) -> str:
        """The ticket code to put in the QR code (ASCII, always 137 characters).

        Bump ``generation`` whenever a ticket is reissued (a transfer, a replaced seat) so
        scanners that know the current generation can refuse the old code.
        """
        if not 0 <= generation <= MAX_GENERATION:
            raise ValueError(f"generation must be between 0 and {MAX_GENERATION}, got {generation}")
        payload = _PAYLOAD.pack(ticket_id.bytes, event_id.bytes, generation)
        signed_text = f"{CODE_VERSION}.{_b64encode(payload)}"
        signature = self._private_key.sign(signed_text.encode("ascii"))
        return f"{signed_text}.{_b64encode(signature)}"

    def verify(self, data: str) -> VerifiedTicket:
        """The ticket a code was issued for, with the id of the key that signed it (the current
        or a previous one); ``InvalidTicketCode`` for anything else."""
        return _verify_any(self._keys, data)


def verify_with_public_key(public_key_b64: str, data: str) -> VerifiedTicket:
    """Check a scanned code with nothing but the published public key, as an offline scanner does.

    ``InvalidTicketCode`` means the code must be refused. A malformed public key is a
    configuration error and raises ``ValueError`` instead, so it is never mistaken for a bad ticket.
    """
    return verify_with_public_keys([public_key_b64], data)


def verify_with_public_keys(public_keys_b64: Sequence[str], data: str) -> VerifiedTicket:
    """Check a scanned code against every published key (the scanner kit's `public_keys`): what
    an offline scanner does after a rotation, when printed tickets carry the previous key's
    signature. Same errors as ``verify_with_public_key``."""
    keys = []
    for public_key_b64 in public_keys_b64:
        raw = _b64decode_canonical(public_key_b64) if isinstance(public_key_b64, str) else None
        if raw is None or len(raw) != _KEY_SIZE:
            raise ValueError("the public key must be 32 bytes, base64url-encoded without padding")
        keys.append((key_id_of(raw), Ed25519PublicKey.from_public_bytes(raw)))
    if not keys:
        raise ValueError("no public key given")
    return _verify_any(keys, data)


def key_id_of(raw_public_key: bytes) -> str:
    """The id of a raw 32-byte public key: its SHA-256, first 8 bytes, base64url."""
    return _b64encode(hashlib.sha256(raw_public_key).digest()[:8])


def human_code(ticket_id: UUID) -> str:
    """A short code for the ticket, e.g. ``K7QXM-4RT2H``, to print and to read over the phone.

    Derived from the ticket id alone, so it is stable but not secret and not guaranteed unique
    (about 49 bits): look tickets up by it within one event or order, never as proof of ownership.
    """
    digest = hashlib.sha256(_HUMAN_CODE_LABEL + ticket_id.bytes).digest()
    # 128 bits reduced to 30**10 (about 2**49) values: the modulo bias is negligible.
    number = int.from_bytes(digest[:16], "big")
    symbols = []
    for _ in range(_HUMAN_CODE_LENGTH):
        number, index = divmod(number, len(HUMAN_CODE_ALPHABET))
        symbols.append(HUMAN_CODE_ALPHABET[index])
    half = _HUMAN_CODE_LENGTH // 2
    return "".join(symbols[:half]) + "-" + "".join(symbols[half:])


def _seed(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_SIZE, salt=None, info=_SEED_INFO).derive(
        secret.encode("utf-8", "surrogatepass")
    )


def _verify_any(keys: Sequence[tuple[str, Ed25519PublicKey]], data: str) -> VerifiedTicket:
    # Cheap shape checks first: scanners feed in whatever the camera read, of any size.
    if not isinstance(data, str) or len(data) > MAX_CODE_LENGTH:
        raise InvalidTicketCode("not a ticket code")
    if not data.startswith(CODE_VERSION + "."):
        raise InvalidTicketCode("not a ticket code of a supported version")
    match = _CODE.fullmatch(data)
    if match is None:
        raise InvalidTicketCode("malformed ticket code")
    payload = _b64decode_canonical(match[1])
    signature = _b64decode_canonical(match[2])
    # The spare low bits of the last base64 character would otherwise let several strings carry
    # the same signature; a code must have exactly one spelling.
    if payload is None or signature is None or len(payload) != _PAYLOAD.size or len(signature) != _SIGNATURE_SIZE:
        raise InvalidTicketCode("malformed ticket code")
    signed_text = data[: match.start(2) - 1].encode("ascii")
    for key_id, public_key in keys:
        try:
            public_key.verify(signature, signed_text)
        except InvalidSignature:
            continue
        ticket_bytes, event_bytes, generation = _PAYLOAD.unpack(payload)
        return VerifiedTicket(UUID(bytes=ticket_bytes), UUID(bytes=event_bytes), generation, key_id)
    raise InvalidTicketCode("ticket code signature does not match")


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode_canonical(text: str) -> bytes | None:
    """The bytes ``text`` encodes, or None unless it is their one unpadded base64url spelling."""
    if not text.isascii():
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:  # binascii.Error: impossible length or padding
        return None
    return data if _b64encode(data) == text else None
