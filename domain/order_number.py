"""Human order numbers: eight characters a buyer can read out on the phone (`K7QF3MZX`).

Each order gets a serial from the store (a Postgres sequence: never the same twice, whichever
process asks), and the serial is turned into its number by a fixed permutation of the 40-bit
numbers: a bijection, so distinct serials give distinct numbers (unique by construction, with no
lookup), while consecutive orders do not get consecutive-looking numbers that would tell anyone
how many tickets a show sold. 32^8 = 2^40 numbers: enough for a trillion orders.

The alphabet leaves out 0/O and 1/I, which are read and typed the one for the other.
"""

from __future__ import annotations

import hashlib

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 8
_BITS = 5 * LENGTH  # 40
_HALF = _BITS // 2  # 20
_MASK = (1 << _HALF) - 1
_ROUNDS = 4


def _round(value: int, round_no: int) -> int:
    digest = hashlib.blake2b(f"{round_no}:{value}".encode(), digest_size=4, person=b"order-number").digest()
    return int.from_bytes(digest, "big") & _MASK


def _permute(serial: int) -> int:
    """A Feistel network over 40 bits: a permutation, whatever the round function."""
    left, right = serial >> _HALF, serial & _MASK
    for round_no in range(_ROUNDS):
        left, right = right, left ^ _round(right, round_no)
    return (left << _HALF) | right


def order_number(serial: int) -> str:
    """The number of the order with this serial (1 <= serial < 2^40)."""
    if not 0 < serial < (1 << _BITS):
        raise ValueError(f"order serial out of range: {serial}")
    value = _permute(serial)
    chars = []
    for _ in range(LENGTH):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def normalise_order_number(text: str) -> str | None:
    """What a person typed, as stored: upper case, spaces and dashes dropped; None if it cannot
    be an order number."""
    cleaned = text.upper().replace("-", "").replace(" ", "")
    if len(cleaned) != LENGTH or any(char not in ALPHABET for char in cleaned):
        return None
    return cleaned
