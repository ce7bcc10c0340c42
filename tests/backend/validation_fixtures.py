"""Shared helpers of the upload / validation / ledger / reconciliation tests.

- :class:`TerminalSim`: a terminal with its Ed25519 device key and an emulated SAM (in-memory
  trace master key) producing journal records with real traceable signatures, and signed
  batches through :func:`card_schema.uploads.batch.sign_batch`.
- :func:`ctr` and :class:`CardSim`: card transaction counters as real (Calypso) cards give them:
  counting DOWN from ``0xFFFFFF``. Tests write ``ctr(n)`` for the counter of the card's session
  number ``n``, so the order reads naturally and the values on the wire are realistic.
- :func:`vl_db`: a fresh migrated database per test, on SQLite and on PostgreSQL (one
  throwaway cluster for the whole session, a database per test cloned from a migrated template).

Test modules import the fixtures they use (``from tests.backend.validation_fixtures import ...``).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.orm import Session, sessionmaker

from backend.auth.roles import TerminalKind
from backend.db import make_engine, make_sessionmaker
from backend.migrate import upgrade
from backend.pgcluster import PostgresCluster, PostgresUnavailable, throwaway_cluster
from backend.terminals.service import register_terminal
from backend.uploads.service import UploadOutcome, receive_batch
from backend.validation.loop import ValidationLoop
from backend.validation.models import OperatorStation, ProductValue
from backend.validation.prepare import RecordPreparer
from backend.validation.providers import InMemoryPseudonymizer, InMemoryTraceKeys
from card_schema.errors import VerificationError
from card_schema.traceability import sam_trace_key, traceable_signature
from card_schema.uploads.batch import Batch, UncertainRef, key_id, sign_batch
from card_schema.uploads.counters import CARD_COUNTER_MAX, card_tx_counter_of
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    Resolution,
    TransactionIntent,
    TransactionKind,
    TransactionState,
)
from card_schema.uploads.signing import intent_signing_bytes, sam_signature_input

TRACE_MASTER = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
PSEUDONYM_KEY = b"validation-tests-pseudonym-key!!"
T0 = datetime(2025, 9, 1, 7, 30, tzinfo=UTC)
OPERATOR_STATIONS = {1042: "ilevia", 2001: "arc-en-ciel"}
CARNET_PRODUCT = 31
CARNET_TRIP_VALUE = 165


def ctr(session: int) -> int:
    """The card transaction counter read at the open of the card's session number ``session``.

    Calypso counts down: session 0 of a fresh card reads ``0xFFFFFF``, session 1 ``0xFFFFFE``...
    """
    return card_tx_counter_of(session)


@dataclass
class CardSim:
    """A card's transaction counter: starts at ``0xFFFFFF - used`` and decrements per session.

    Attributes:
        serial: card serial.
        counter: the counter the next session will read at open.
    """

    serial: bytes
    used: int = 0
    counter: int = field(init=False)

    def __post_init__(self) -> None:
        self.counter = CARD_COUNTER_MAX - self.used

    def session(self) -> int:
        """The counter of a new committed session (read at open), then decremented."""
        value = self.counter
        self.counter -= 1
        return value


def movement(purse: str, amount: int, before: int) -> PurseMovement:
    """A purse movement (eurocents unless the purse is a counter)."""
    unit = PurseUnit.COUNT if ".counter" in purse else PurseUnit.EUROCENT
    return PurseMovement(purse, unit, amount, before, before + amount)


@dataclass
class TerminalSim:
    """A terminal: device key, SAM, journal sequence."""

    terminal_id: str
    sam_serial: bytes = bytes.fromhex("5A000001")
    station_id: int | None = 1042
    school_uai: str | None = None
    seq: int = 1000
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    sam_counter: int = field(default=0)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The registered device key."""
        return self.private_key.public_key()

    def record(
        self,
        card: bytes,
        counter: int,
        *,
        kind: TransactionKind = TransactionKind.VALIDATION,
        application: str = "plum",
        movements: Sequence[PurseMovement] = (),
        at: datetime | None = None,
        product_code: int | None = 21,
        last_events: Sequence[bytes] = (),
        written_event: bytes | None = None,
        committed: bool = True,
        forge: bool = False,
        seq: int | None = None,
    ) -> JournalRecord:
        """A decided record, SAM-signed when committed (``forge``: signature of other bytes).

        ``counter`` is the raw card counter (see :func:`ctr`: real cards count down).
        """
        if seq is None:
            self.seq += 1
            seq = self.seq
        intent = TransactionIntent(
            kind=kind,
            application=application,
            card_serial=card,
            card_tx_counter=counter,
            occurred_at=at or T0 + timedelta(minutes=seq % 600),
            movements=tuple(movements),
            product_code=product_code,
            station_id=self.station_id,
            school_uai=self.school_uai,
            last_events=tuple(last_events),
            written_event=written_event
            if written_event is not None
            else bytes([counter % 256]) + card[-4:] + bytes(24),
        )
        if not committed:
            return JournalRecord(
                terminal_id=self.terminal_id,
                seq=seq,
                state=TransactionState.ABORTED,
                intent=intent,
                resolution=Resolution.CARD_REFUSAL,
                abort_reason="6985 conditions of use not satisfied",
                decided_at=intent.occurred_at + timedelta(milliseconds=200),
            )
        signed = sam_signature_input(intent_signing_bytes(self.terminal_id, seq, intent))
        if forge:
            signed = signed[::-1]
        self.sam_counter += 1
        key = sam_trace_key(TRACE_MASTER, self.sam_serial)
        mac = traceable_signature(key, self.sam_serial, self.sam_counter, signed)
        return JournalRecord(
            terminal_id=self.terminal_id,
            seq=seq,
            state=TransactionState.COMMITTED,
            intent=intent,
            sam_signature=self.sam_serial + self.sam_counter.to_bytes(3, "big") + mac,
            resolution=Resolution.CARD_CLOSE,
            decided_at=intent.occurred_at + timedelta(milliseconds=180),
        )

    def sv_debit(self, card: bytes, session: int, before: int) -> JournalRecord:
        """A committed wallet debit of 1,00 € at the card's session number ``session``."""
        return self.record(
            card,
            ctr(session),
            kind=TransactionKind.SV_DEBIT,
            application="wallet",
            movements=[movement("wallet.sv", -100, before)],
        )

    def batch(
        self, records: Sequence[JournalRecord], uncertain: Sequence[JournalRecord] = ()
    ) -> bytes:
        """Signed wire bytes of a batch of ``records`` (``uncertain``: undecided ones)."""
        refs = tuple(
            UncertainRef(r.seq, r.intent.card_serial, r.intent.card_tx_counter) for r in uncertain
        )
        batch = Batch(
            self.terminal_id,
            T0 + timedelta(hours=1),
            tuple(sorted(records, key=lambda r: r.seq)),
            refs,
        )
        return sign_batch(batch, self.private_key)


class KeyRing:
    """Terminal public keys by (terminal id, key id), as ``terminal_public_key`` would give."""

    def __init__(self, *terminals: TerminalSim) -> None:
        self._keys = {(t.terminal_id, key_id(t.public_key)): t.public_key for t in terminals}

    def add(self, terminal: TerminalSim) -> None:
        """Register another terminal."""
        self._keys[(terminal.terminal_id, key_id(terminal.public_key))] = terminal.public_key

    def __call__(self, _session: Session, terminal_id: str, key: str) -> Ed25519PublicKey:
        try:
            return self._keys[(terminal_id, key.upper())]
        except KeyError:
            raise VerificationError(f"unknown key {key} for {terminal_id}") from None


class FakeKeys:
    """What the app needs from the KeyService for uploads: SAM keys and pseudonyms, in memory."""

    def __init__(self) -> None:
        self._trace = InMemoryTraceKeys(TRACE_MASTER)
        self._pseudonyms = InMemoryPseudonymizer(PSEUDONYM_KEY)

    def sam_trace_key(self, sam_serial: bytes) -> bytes:
        return self._trace.sam_trace_key(sam_serial)

    def pseudonym_period(self, at: datetime) -> int:
        return self._pseudonyms.pseudonym_period(at)

    def pseudonym(self, card_serial: bytes, at: datetime) -> str:
        return self._pseudonyms.pseudonym(card_serial, at)

    def close(self) -> None:
        return None


def register_gate(session: Session, gate: TerminalSim, station_id: int = 1042) -> dict[str, str]:
    """Register ``gate`` (its SAM serial and device key) and return its request headers."""
    registered = register_terminal(
        session,
        terminal_id=gate.terminal_id,
        kind=TerminalKind.GATE,
        station_id=station_id,
        sam_serial=gate.sam_serial,
        public_key=gate.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw),
    )
    return {
        "Authorization": f"Bearer {registered.credential}",
        "X-Regioncard-Terminal": gate.terminal_id,
    }


@dataclass
class VLDatabase:
    """A migrated database for one test."""

    url: str
    engine: Engine
    factory: sessionmaker[Session]
    dialect: str
    prepare_at_upload: bool = False  # the upload worker prepares records, as the app does

    def loop(self, **kwargs: Any) -> ValidationLoop:
        """A validation loop with in-memory SAM keys and pseudonyms."""
        return ValidationLoop(
            self.factory,
            InMemoryTraceKeys(TRACE_MASTER),
            InMemoryPseudonymizer(PSEUDONYM_KEY),
            **kwargs,
        )

    def upload(self, keys: KeyRing, terminal: TerminalSim, body: bytes) -> UploadOutcome:
        """Receive ``body`` from ``terminal`` as the upload endpoint does."""
        return receive_batch(
            self.factory,
            terminal.terminal_id,
            body,
            keys,
            max_bytes=2 * 1024 * 1024,
            max_records=5000,
            prepare=RecordPreparer(
                InMemoryTraceKeys(TRACE_MASTER), InMemoryPseudonymizer(PSEUDONYM_KEY)
            ).prepare_body
            if self.prepare_at_upload
            else None,
        )

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value of a SQL query."""
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a SQL query."""
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))


def pseudonym_of(card: bytes, at: datetime = T0) -> str:
    """The pseudonym the tests' loop stores ``card`` under."""
    return InMemoryPseudonymizer(PSEUDONYM_KEY).pseudonym(card, at)


def seed_revenue_tables(factory: sessionmaker[Session]) -> None:
    """Stations of two operators, a carnet product valued per trip, a season pass."""
    with factory() as session, session.begin():
        session.execute(
            insert(OperatorStation),
            [
                {"station_id": s, "operator_id": o, "network_id": 1}
                for s, o in OPERATOR_STATIONS.items()
            ],
        )
        session.execute(
            insert(ProductValue),
            [
                {
                    "product_code": CARNET_PRODUCT,
                    "name": "carnet 10",
                    "trip_value": CARNET_TRIP_VALUE,
                    "pass_product": False,
                },
                {
                    "product_code": 21,
                    "name": "Pass Pass mensuel",
                    "trip_value": 0,
                    "pass_product": True,
                },
            ],
        )


class _PostgresOnce:
    """One throwaway cluster per test session, with a migrated template database."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.cluster: PostgresCluster | None = None
        self.error: str | None = None
        self._names = itertools.count()

    def get(self) -> PostgresCluster:
        if self.cluster is None and self.error is None:
            try:
                self.cluster = self._stack.enter_context(throwaway_cluster())
                atexit.register(self._stack.close)
                upgrade(self.url("regioncard"))
                admin = self.admin()
                with admin.connect() as conn:
                    conn.execute(text("CREATE DATABASE vl_template TEMPLATE regioncard"))
                admin.dispose()
            except PostgresUnavailable as exc:
                self.error = str(exc)
        if self.cluster is None:
            pytest.skip(f"PostgreSQL unavailable: {self.error}")
        return self.cluster

    def url(self, database: str) -> str:
        assert self.cluster is not None
        return self.cluster.url.rsplit("/", 1)[0] + "/" + database

    def admin(self) -> Engine:
        return create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")

    def fresh_database(self) -> str:
        self.get()
        name = f"vl_test_{next(self._names)}"
        admin = self.admin()
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} TEMPLATE vl_template"))
        admin.dispose()
        return self.url(name)


_POSTGRES = _PostgresOnce()


def fresh_postgres_database() -> str:
    """A new migrated database in the test session's PostgreSQL cluster."""
    return _POSTGRES.fresh_database()


def _sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'regioncard.db'}"
    upgrade(url)
    return url


@pytest.fixture(
    params=["sqlite", "postgresql", "sqlite-prepared-at-upload", "postgresql-prepared-at-upload"]
)
def vl_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VLDatabase]:
    """A freshly migrated database (SQLite file, or a PostgreSQL database of the test cluster).

    Every test runs with records prepared by the loop and prepared by the upload worker
    (``backend/validation/prepare.py``): both must give the same outcomes.
    """
    dialect, _, prepared = str(request.param).partition("-")
    url = _sqlite_url(tmp_path) if dialect == "sqlite" else _POSTGRES.fresh_database()
    engine = make_engine(url)
    try:
        yield VLDatabase(url, engine, make_sessionmaker(engine), dialect, bool(prepared))
    finally:
        engine.dispose()


@pytest.fixture
def vl_sqlite(tmp_path: Path) -> Iterator[VLDatabase]:
    """A freshly migrated SQLite database only."""
    url = _sqlite_url(tmp_path)
    engine = make_engine(url)
    try:
        yield VLDatabase(url, engine, make_sessionmaker(engine), "sqlite")
    finally:
        engine.dispose()
