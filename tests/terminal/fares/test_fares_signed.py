"""Tests of terminal.fares.signed: pushed tariff tables and deny-lists, signed and versioned.

Whatever is refused, the table in force stays (London Oyster, 2008). Keys are generated per test
session; every instant is fixed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fares_builders import METRO, SERIAL, TARIFF, at, card, tap

from card_schema.errors import RegionCardError, VerificationError
from terminal.fares.denylist import DenyList
from terminal.fares.errors import (
    DeltaChainRefused,
    MalformedTableRefused,
    PushedTableError,
    RollbackRefused,
    SignatureRefused,
    TableAgeRefused,
    WrongKindRefused,
)
from terminal.fares.reasons import Reason
from terminal.fares.rules import decide
from terminal.fares.signed import (
    PushedTables,
    SignedEnvelope,
    accept_deny_list,
    canonical_bytes,
    sign_envelope,
)

NOW = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


def tariff_payload(version: int, **changes: Any) -> dict[str, Any]:
    data = json.loads(TARIFF.model_dump_json())
    data.update(version=version, **changes)
    return data


def tariff_envelope(
    version: int, *, issued_at: datetime = NOW, key: Ed25519PrivateKey = KEY, **changes: Any
) -> SignedEnvelope:
    return sign_envelope(key, "tariff", version, issued_at, tariff_payload(version, **changes))


def full_list(version: int, serials: list[str], issued_at: datetime = NOW) -> SignedEnvelope:
    return sign_envelope(KEY, "deny_list", version, issued_at, {"serials": serials})


def delta(
    version: int,
    base: int,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    issued_at: datetime = NOW,
) -> SignedEnvelope:
    payload = {"base_version": base, "add": list(add), "remove": list(remove)}
    return sign_envelope(KEY, "deny_list_delta", version, issued_at, payload)


@pytest.fixture
def tables() -> PushedTables:
    return PushedTables(KEY.public_key(), TARIFF, DenyList(1, NOW - timedelta(hours=1), {"AA01"}))


# --- tariff tables -------------------------------------------------------------------------------


def test_newer_tariff_is_installed(tables: PushedTables) -> None:
    new = tables.offer_tariff(tariff_envelope(2), NOW)
    assert new.version == 2
    assert tables.tariff is new


def _tamper(envelope: SignedEnvelope) -> SignedEnvelope:
    payload = dict(envelope.payload)
    payload["anti_passback_seconds"] = 0
    return SignedEnvelope(
        envelope.kind, envelope.version, envelope.issued_at, payload, envelope.signature
    )


REFUSED_TARIFFS = [
    pytest.param(lambda: _tamper(tariff_envelope(2)), SignatureRefused, id="tampered-payload"),
    pytest.param(lambda: tariff_envelope(2, key=OTHER_KEY), SignatureRefused, id="other-key"),
    pytest.param(
        lambda: SignedEnvelope("tariff", 2, NOW, tariff_payload(2), b"\x00" * 64),
        SignatureRefused,
        id="zero-signature",
    ),
    pytest.param(
        lambda: SignedEnvelope("tariff", 2, NOW, tariff_payload(2), b"short"),
        SignatureRefused,
        id="truncated-signature",
    ),
    pytest.param(lambda: tariff_envelope(1), RollbackRefused, id="same-version-replay"),
    pytest.param(lambda: tariff_envelope(0), RollbackRefused, id="older-version"),
    pytest.param(
        lambda: tariff_envelope(2, issued_at=NOW - timedelta(days=90, seconds=1)),
        TableAgeRefused,
        id="too-old",
    ),
    pytest.param(
        lambda: tariff_envelope(2, issued_at=NOW + timedelta(minutes=6)),
        TableAgeRefused,
        id="from-the-future",
    ),
    pytest.param(lambda: full_list(2, []), WrongKindRefused, id="deny-list-as-tariff"),
    pytest.param(
        lambda: sign_envelope(KEY, "tariff", 2, NOW, {"version": 2, "open_all_gates": True}),
        MalformedTableRefused,
        id="signed-garbage",
    ),
    pytest.param(
        lambda: sign_envelope(KEY, "tariff", 3, NOW, tariff_payload(2)),
        MalformedTableRefused,
        id="payload-version-mismatch",
    ),
]


@pytest.mark.parametrize(("make", "error"), REFUSED_TARIFFS)
def test_refused_tariff_keeps_previous(
    tables: PushedTables, make: Any, error: type[PushedTableError]
) -> None:
    before = tables.tariff
    with pytest.raises(error) as info:
        tables.offer_tariff(make(), NOW)
    assert tables.tariff is before
    assert tables.pending_tariff is None
    assert isinstance(info.value, RegionCardError)
    assert "table précédente conservée" in str(info.value)
    assert "previous table kept" in str(info.value)


def test_signature_refusal_is_a_verification_error(tables: PushedTables) -> None:
    with pytest.raises(VerificationError):
        tables.offer_tariff(tariff_envelope(2, key=OTHER_KEY), NOW)


def test_age_bounds_are_accepted(tables: PushedTables) -> None:
    assert tables.offer_tariff(tariff_envelope(2, issued_at=NOW - timedelta(days=90)), NOW)
    assert tables.offer_tariff(tariff_envelope(3, issued_at=NOW + timedelta(minutes=5)), NOW)
    assert tables.tariff.version == 3


def test_bad_table_never_opens_the_gates(tables: PushedTables) -> None:
    """A forged 'everything is free' table is refused and the card stays refused."""
    free = tariff_payload(2)
    for product in free["fare_products"]:
        product["amount"] = 0
    forged = SignedEnvelope("tariff", 2, NOW, free, tariff_envelope(2).signature)
    empty = card(sv_balance=0)
    when = at(2025, 3, 10)
    assert decide(empty, tap(when), tables.tariff, tables.deny_list).reason is (
        Reason.INSUFFICIENT_BALANCE
    )
    with pytest.raises(SignatureRefused):
        tables.offer_tariff(forged, NOW)
    assert decide(empty, tap(when), tables.tariff, tables.deny_list).reason is (
        Reason.INSUFFICIENT_BALANCE
    )


def test_future_tariff_waits_for_its_day(tables: PushedTables) -> None:
    tables.offer_tariff(tariff_envelope(2, valid_from="2025-04-01"), NOW)
    assert tables.tariff.version == 1
    assert tables.pending_tariff is not None
    assert tables.tariff_at(at(2025, 3, 31, 23, 59)).version == 1
    with pytest.raises(RollbackRefused):  # the pending version counts for rollback
        tables.offer_tariff(tariff_envelope(2), NOW)
    assert tables.tariff_at(at(2025, 4, 1, 0, 0)).version == 2
    assert tables.pending_tariff is None


def test_envelope_json_round_trip(tables: PushedTables) -> None:
    envelope = tariff_envelope(2)
    received = SignedEnvelope.from_json(envelope.to_json())
    assert received.signed_bytes() == envelope.signed_bytes()
    assert tables.offer_tariff(received, NOW).version == 2


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"kind": "tariff", "version": 2, "issued_at": "2025-03-10T03:00:00", '
        '"payload": {}, "signature": ""}',
        '{"kind": "tariff", "version": 2, "issued_at": "2025-03-10T03:00:00+00:00", '
        '"payload": {}, "signature": "!!"}',
        '{"kind": "tariff", "version": 2, "issued_at": "2025-03-10T03:00:00+00:00", '
        '"payload": [], "signature": ""}',
    ],
    ids=["not-json", "empty", "naive-time", "bad-base64", "payload-not-object"],
)
def test_unreadable_envelope(text: str) -> None:
    with pytest.raises(MalformedTableRefused):
        SignedEnvelope.from_json(text)


def test_canonical_bytes_are_stable() -> None:
    paris = datetime(2025, 3, 10, 4, 0, tzinfo=at(2025, 1, 1).tzinfo)
    assert (
        canonical_bytes("deny_list", 3, paris, {"b": 1, "a": "é"})
        == (
            '{"issued_at":"2025-03-10T03:00:00+00:00","kind":"deny_list",'
            '"payload":{"a":"é","b":1},"version":3}'
        ).encode()
    )


# --- deny-lists ----------------------------------------------------------------------------------


def test_full_list_then_delta_chain(tables: PushedTables) -> None:
    tables.offer_deny_list(full_list(5, ["AA01", "bb02"]), NOW)
    assert tables.deny_list.version == 5 and "BB02" in tables.deny_list
    tables.offer_deny_list(delta(6, 5, add=[SERIAL], remove=["AA01"]), NOW)
    assert tables.deny_list.serials == {"BB02", SERIAL}
    tables.offer_deny_list(delta(7, 6, remove=["BB02"]), NOW)
    assert tables.deny_list.version == 7 and tables.deny_list.serials == {SERIAL}
    assert decide(card(), tap(at(2025, 3, 10), METRO), TARIFF, tables.deny_list).reason is (
        Reason.CARD_BLOCKED
    )


REFUSED_LISTS = [
    pytest.param(lambda: delta(3, 2, add=["CC"]), DeltaChainRefused, id="delta-skips-a-version"),
    pytest.param(lambda: delta(2, 0, add=["CC"]), DeltaChainRefused, id="delta-on-wrong-base"),
    pytest.param(lambda: delta(3, 1, add=["CC"]), DeltaChainRefused, id="delta-jumps-two"),
    pytest.param(lambda: delta(1, 0, add=["CC"]), RollbackRefused, id="delta-replay"),
    pytest.param(lambda: full_list(1, []), RollbackRefused, id="full-same-version"),
    pytest.param(lambda: full_list(0, []), RollbackRefused, id="full-older"),
    pytest.param(
        lambda: full_list(2, [], issued_at=NOW - timedelta(days=3, seconds=1)),
        TableAgeRefused,
        id="too-old",
    ),
    pytest.param(lambda: tariff_envelope(2), WrongKindRefused, id="tariff-as-deny-list"),
    pytest.param(
        lambda: sign_envelope(KEY, "action_list", 2, NOW, {"serials": []}),
        WrongKindRefused,
        id="unknown-kind",
    ),
    pytest.param(
        lambda: sign_envelope(KEY, "deny_list", 2, NOW, {"serials": ["not hex!"]}),
        MalformedTableRefused,
        id="bad-serial",
    ),
    pytest.param(
        lambda: sign_envelope(KEY, "deny_list", 2, NOW, {"serials": "AA01"}),
        MalformedTableRefused,
        id="serials-not-a-list",
    ),
    pytest.param(
        lambda: SignedEnvelope(
            "deny_list", 2, NOW, {"serials": []}, full_list(2, ["DD"]).signature
        ),
        SignatureRefused,
        id="emptied-list-keeps-old-signature",
    ),
]


@pytest.mark.parametrize(("make", "error"), REFUSED_LISTS)
def test_refused_deny_list_keeps_previous(
    tables: PushedTables, make: Any, error: type[PushedTableError]
) -> None:
    before = tables.deny_list
    with pytest.raises(error) as info:
        tables.offer_deny_list(make(), NOW)
    assert tables.deny_list is before
    assert "AA01" in tables.deny_list
    assert "liste précédente conservée" in str(info.value) or "table précédente" in str(info.value)


def test_delta_needs_a_base() -> None:
    with pytest.raises(DeltaChainRefused):
        accept_deny_list(DenyList(), delta(2, 1, add=["AA"]), KEY.public_key(), now=NOW)
    first = accept_deny_list(DenyList(), delta(1, 0, add=["aa"]), KEY.public_key(), now=NOW)
    assert "AA" in first and first.version == 1


def test_deny_list_age_is_reported() -> None:
    listed = DenyList(4, NOW, frozenset({"AA"}))
    assert listed.age(NOW + timedelta(days=4)) == timedelta(days=4)
    assert len(listed) == 1
    assert date(2025, 3, 10) not in listed  # not a serial: never matches
