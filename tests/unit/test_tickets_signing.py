from __future__ import annotations

import base64
import string
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.tickets_signing import (
    HUMAN_CODE_ALPHABET,
    InvalidTicketCode,
    TicketSigner,
    VerifiedTicket,
    human_code,
    verify_with_public_key,
)

SIGNER = TicketSigner.from_secret("ticket-signing-test-secret")
OTHER_SIGNER = TicketSigner.from_secret("some-other-deployment-secret")
TICKET = UUID("12345678-1234-5678-1234-567812345678")
EVENT = UUID("87654321-4321-8765-4321-876543218765")
CODE = SIGNER.sign(TICKET, EVENT)
B64_ALPHABET = string.ascii_letters + string.digits + "-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assert_rejected(data: str) -> None:
    # pytest.raises lets any other exception type through, failing the test.
    with pytest.raises(InvalidTicketCode):
        SIGNER.verify(data)
    with pytest.raises(InvalidTicketCode):
        verify_with_public_key(SIGNER.public_key_b64, data)


def test_signed_code_verifies_to_the_ticket_it_was_issued_for() -> None:
    ticket_id, event_id = uuid4(), uuid4()
    code = SIGNER.sign(ticket_id, event_id)
    assert SIGNER.verify(code) == VerifiedTicket(ticket_id=ticket_id, event_id=event_id, generation=0)


def test_scanner_with_only_the_public_key_accepts_a_genuine_code() -> None:
    assert verify_with_public_key(SIGNER.public_key_b64, CODE) == VerifiedTicket(TICKET, EVENT, 0)


def test_code_signed_by_another_key_is_rejected() -> None:
    forged = OTHER_SIGNER.sign(TICKET, EVENT)
    assert_rejected(forged)
    # Swapping in another key's signature over the same payload does not help either.
    assert_rejected(CODE.rsplit(".", 1)[0] + "." + forged.rsplit(".", 1)[1])


def test_code_is_short_ascii_and_carries_only_ids_and_generation() -> None:
    code = SIGNER.sign(TICKET, EVENT, generation=7)
    assert code.isascii()
    assert len(code) == 137  # two binary UUIDs, a 16-bit generation, a 64-byte signature
    version, payload, signature = code.split(".")
    assert version == "TK1"
    assert base64.urlsafe_b64decode(payload + "==") == TICKET.bytes + EVENT.bytes + (7).to_bytes(2, "big")
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64


def test_codes_are_stable_for_a_given_key_so_printed_tickets_keep_working() -> None:
    # Ed25519 signatures are deterministic: this vector is what other scanner implementations can test against.
    signer = TicketSigner.from_seed(bytes(range(32)))
    assert signer.sign(TICKET, EVENT, 7) == (
        "TK1.EjRWeBI0VngSNFZ4EjRWeIdlQyFDIYdlQyGHZUMhh2UABw."
        "KwEH_sKS_QzxLqQbQj6oM6lA-RnxPjlluL2ow5qNL_ifft2_56T_UT8Ade3TgmVfVeld2RM6X6dTnaNr9jGhAQ"
    )


def test_same_secret_gives_the_same_key_and_other_secrets_do_not() -> None:
    assert TicketSigner.from_secret("ticket-signing-test-secret").public_key_b64 == SIGNER.public_key_b64
    assert SIGNER.public_key_b64 == "OxahYIUEGWKoFBdxQMalV_L3lebupYkDw6K2qxdQynw"
    assert OTHER_SIGNER.public_key_b64 != SIGNER.public_key_b64
    with pytest.raises(ValueError):
        TicketSigner.from_secret("")


def test_seed_is_the_raw_ed25519_private_key() -> None:
    # The RFC 8032 public key for the all-zero seed.
    expected = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
    assert TicketSigner.from_seed(bytes(32)).public_key_b64 == b64(expected)
    for size in (0, 31, 33, 64):
        with pytest.raises(ValueError):
            TicketSigner.from_seed(bytes(size))


def test_reissued_ticket_gets_a_new_code_and_each_verifies_to_its_own_generation() -> None:
    first = SIGNER.sign(TICKET, EVENT, generation=0)
    second = SIGNER.sign(TICKET, EVENT, generation=1)
    assert first != second
    assert SIGNER.verify(first).generation == 0
    assert SIGNER.verify(second).generation == 1
    assert SIGNER.verify(SIGNER.sign(TICKET, EVENT, generation=65535)).generation == 65535


def test_generation_outside_sixteen_bits_is_refused_when_signing() -> None:
    for generation in (-1, 65536, 2**40):
        with pytest.raises(ValueError):
            SIGNER.sign(TICKET, EVENT, generation=generation)


def test_every_single_character_change_is_rejected() -> None:
    candidates = B64_ALPHABET + ".=+/ \n\x00é"
    for position, original in enumerate(CODE):
        for replacement in candidates:
            if replacement != original:
                assert_rejected(CODE[:position] + replacement + CODE[position + 1 :])


def test_every_deleted_or_inserted_character_is_rejected() -> None:
    for position in range(len(CODE) + 1):
        if position < len(CODE):
            assert_rejected(CODE[:position] + CODE[position + 1 :])
        for inserted in "A_.=":
            assert_rejected(CODE[:position] + inserted + CODE[position:])


def test_truncated_and_extended_codes_are_rejected() -> None:
    for length in range(len(CODE)):
        assert_rejected(CODE[:length])
    for suffix in ("\n", " ", "=", "==", "A", ".", CODE):
        assert_rejected(CODE + suffix)
    assert_rejected(" " + CODE)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "TK1",
        "TK1.",
        "TK1..",
        CODE.replace("TK1.", "TK2.", 1),
        CODE.replace("TK1.", "tk1.", 1),
        CODE.lower(),
        CODE.replace("-", "+").replace("_", "/"),
        CODE.replace(".", "=.", 1),
        "TK1." + "A" * 46 + "." + "A" * 86,
        "\ud800" * 137,
        "🎟" * 137,
    ],
)
def test_malformed_codes_raise_only_invalid_ticket_code(data: str) -> None:
    assert_rejected(data)


def test_huge_input_is_rejected_before_parsing() -> None:
    assert_rejected("TK1." + "A" * 10_000_000)
    assert_rejected(CODE + "A" * 120)


@given(st.text())
def test_arbitrary_text_is_rejected_cleanly(data: str) -> None:
    assert_rejected(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_the_prefix_are_rejected(data: bytes) -> None:
    assert_rejected("TK1." + b64(data))


@given(st.binary(min_size=34, max_size=34), st.binary(min_size=64, max_size=64))
def test_well_shaped_codes_without_a_genuine_signature_are_rejected(payload: bytes, signature: bytes) -> None:
    assert_rejected(f"TK1.{b64(payload)}.{b64(signature)}")


@given(st.text(alphabet=B64_ALPHABET, max_size=100), st.text(alphabet=B64_ALPHABET, max_size=100))
def test_arbitrary_base64_segments_are_rejected(payload: str, signature: str) -> None:
    assert_rejected(f"TK1.{payload}.{signature}")


@pytest.mark.parametrize("public_key", ["", "AAAA", SIGNER.public_key_b64 + "A", SIGNER.public_key_b64 + "=", "é" * 43])
def test_a_malformed_public_key_is_a_configuration_error_not_a_bad_ticket(public_key: str) -> None:
    with pytest.raises(ValueError):
        verify_with_public_key(public_key, CODE)


def test_human_code_is_short_unambiguous_and_deterministic() -> None:
    code = human_code(TICKET)
    assert code == human_code(UUID(str(TICKET)))
    assert code == "6J479-WHR7A"  # printed on tickets already handed out, so it must never change
    assert len(code) == 11
    assert code[5] == "-"
    assert set(code.replace("-", "")) <= set(HUMAN_CODE_ALPHABET)
    assert not set(HUMAN_CODE_ALPHABET) & set("0O1IL")


@given(st.uuids())
def test_every_human_code_uses_only_the_alphabet(ticket_id: UUID) -> None:
    code = human_code(ticket_id)
    assert len(code) == 11
    assert code[5] == "-"
    assert set(code[:5] + code[6:]) <= set(HUMAN_CODE_ALPHABET)


def test_different_tickets_get_different_human_codes() -> None:
    ids = [uuid4() for _ in range(2000)]
    assert len({human_code(ticket_id) for ticket_id in ids}) == len(ids)
