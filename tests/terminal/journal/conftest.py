"""Fixtures of the journal tests: a journal in a temporary directory, intents, a device key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.uploads.records import (
    PurseMovement,
    PurseUnit,
    TransactionIntent,
    TransactionKind,
)
from terminal.journal.store import Journal

TERMINAL_ID = "CANTINE-59-0007"
NOW = datetime(2025, 9, 1, 11, 45, tzinfo=UTC)


class StepClock:
    """A clock that moves one second per reading: deterministic, never the wall clock."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(journal_path: Path) -> Iterator[Journal]:
    handle = Journal.open(journal_path, TERMINAL_ID, clock=StepClock())
    yield handle
    handle.close()


@pytest.fixture
def device_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"journal tests").digest())


@pytest.fixture
def make_intent() -> Callable[..., TransactionIntent]:
    """An SV debit intent; keyword arguments override any field."""

    def make(**overrides: Any) -> TransactionIntent:
        fields: dict[str, Any] = {
            "kind": TransactionKind.CANTEEN_MEAL,
            "application": "cursus",
            "card_serial": bytes.fromhex("00000000CAFE0001"),
            "card_tx_counter": 41,
            "occurred_at": NOW,
            "movements": (
                PurseMovement("cursus.canteen_aid", PurseUnit.EUROCENT, -250, 300, 50),
                PurseMovement("wallet.sv", PurseUnit.EUROCENT, -80, 1000, 920),
            ),
            "product_code": 3,
            "school_uai": "0590001A",
            "last_events": (b"\x11" * 29, b"\x22" * 29),
            "written_event": b"\x33" * 29,
        }
        fields.update(overrides)
        return TransactionIntent(**fields)

    return make
