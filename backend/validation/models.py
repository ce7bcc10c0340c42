"""Tables of the validation loop.

Privacy (blueprint section 4, CNIL practice): a tap names its card by a keyed pseudonym only, and
carries no holder profile, social or employment attribute (the upload format has no field for
them). The one table holding a card serial in clear, :class:`DenyCandidate`, serves fraud control
(a forged signature must reach the deny-list, which terminals match on the serial).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base

BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class TapStatus:
    """What the loop made of a record (``taps.status``)."""

    POSTED = "posted"  # committed, verified, charged once, posted to the ledger
    ABORTED = "aborted"  # the card did not commit: nothing charged
    FORGED = "forged"  # SAM signature does not verify: nothing charged, card flagged
    REPLAY = "replay"  # the card counter was already charged by another record
    RECOVERED = "recovered"  # rebuilt from a card's event log read at a later tap
    CONFIRMS_RECOVERED = "confirms_recovered"  # original of a recovered tap, arrived late
    KIND_VIOLATION = "kind_violation"  # does not fit its terminal's registration: not charged


class Tap(Base):
    """One card session reported by a terminal (or recovered from a card's log).

    Attributes:
        terminal_id: reporting terminal; ``None`` for a tap recovered from a card log.
        terminal_seq: the terminal's sequence; ``None`` for a recovered tap.
        card_pseudonym: keyed pseudonym of the card serial (never the serial).
        card_tx_counter: the card's transaction counter at Open Secure Session, as the card said
            (Calypso counts down: order a card's taps by
            :func:`card_schema.uploads.counters.session_number`).
        charged: this tap holds the card key ``(card_pseudonym, card_tx_counter)``: at most
            one tap per card session is charged (unique index on the card, the counter and
            0 for a charged tap, its id otherwise).
        status: a :class:`TapStatus` value.
        sam_verified: the SAM's traceable signature was present and verified.
        operator_id: transit operator the tap is attributed to (station mapping), if any.
        movements: canonical JSON list of the purse movements.
        written_event: hex of the card log record the session wrote (recovery matches it).
        record_digest: SHA-256 (first 16 bytes, hex) of the record's signing bytes.
    """

    __tablename__ = "taps"
    __table_args__ = (
        UniqueConstraint("terminal_id", "terminal_seq"),
        # One index for both: charged taps of a card session share the key (unique: charged
        # once); every other tap carries its own id. Queries by card read its leading columns.
        Index(
            "uq_taps_card_session",
            "card_pseudonym",
            "card_tx_counter",
            text("(CASE WHEN charged THEN 0 ELSE id END)"),
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    terminal_id: Mapped[str | None] = mapped_column(String(64))
    terminal_seq: Mapped[int | None] = mapped_column(BigInteger)
    batch_row: Mapped[int | None] = mapped_column(BigInteger)
    card_pseudonym: Mapped[str] = mapped_column(String(64))
    card_tx_counter: Mapped[int] = mapped_column(BigInteger)
    charged: Mapped[bool]
    status: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(24))
    application: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(12))
    resolution: Mapped[str] = mapped_column(String(24))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    product_code: Mapped[int | None]
    station_id: Mapped[int | None]
    school_uai: Mapped[str | None] = mapped_column(String(16))
    operator_id: Mapped[str | None] = mapped_column(String(32))
    movements: Mapped[str] = mapped_column(Text)
    sam_verified: Mapped[bool]
    sam_serial: Mapped[str | None] = mapped_column(String(8))
    sam_counter: Mapped[int | None]
    written_event: Mapped[str | None] = mapped_column(Text)
    record_digest: Mapped[str | None] = mapped_column(String(32))


class Anomaly(Base):
    """Something the loop noticed and a person (or a later record) must explain.

    ``kind`` is one of :data:`backend.validation.loop.ANOMALY_KINDS`. An anomaly that a later
    record explains (a gap filled) gets ``resolved_at`` and ``resolution``; none is ever deleted.
    """

    __tablename__ = "anomalies"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    terminal_id: Mapped[str | None] = mapped_column(String(64), index=True)
    terminal_seq: Mapped[int | None] = mapped_column(BigInteger)
    card_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    card_tx_counter: Mapped[int | None] = mapped_column(BigInteger)
    batch_id: Mapped[str | None] = mapped_column(String(160))
    detail: Mapped[str] = mapped_column(Text, default="")
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)


class DenyCandidate(Base):
    """A card the loop asks the deny-list domain to block (forged signature).

    Holds the serial in clear: this is the fraud-control use the CNIL practice allows, and the
    deny-list pushed to terminals is matched on serials.
    """

    __tablename__ = "deny_candidates"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    card_serial: Mapped[str] = mapped_column(String(32), unique=True)
    card_pseudonym: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    listed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PurseState(Base):
    """Per card (pseudonym): its latest charged session and each purse's last balance.

    ``last_counter`` is the raw card counter of the latest session (the LOWEST charged: Calypso
    counters count down, see :mod:`card_schema.uploads.counters`). ``purses`` is canonical JSON
    ``{purse: [card_tx_counter, balance_after]}``: one row per card keeps the loop to one read and
    one write per card and chunk.
    """

    __tablename__ = "purse_states"

    card_pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_counter: Mapped[int] = mapped_column(BigInteger)
    purses: Mapped[str] = mapped_column(Text)
    open_gaps: Mapped[int] = mapped_column(default=0)


class TerminalState(Base):
    """Per terminal: the highest terminal sequence known to exist, and open sequence gaps."""

    __tablename__ = "terminal_states"

    terminal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    open_gaps: Mapped[int] = mapped_column(default=0)


class Gap(Base):
    """A missing number: a terminal sequence or a card counter not received (yet).

    Attributes:
        scope: ``terminal`` (subject = terminal id) or ``card`` (subject = card pseudonym).
        number: the missing terminal sequence, or the raw card counter of the missing session.
        state: ``uncertain`` (terminal said it is undecided), ``missing`` (unexplained).
        closed_at: when a record (or a card log) filled it; ``None`` while open.
        closed_by: ``record`` or ``card_log``.
    """

    __tablename__ = "gaps"
    __table_args__ = (UniqueConstraint("scope", "subject", "number"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(12))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(12))


class OperatorStation(Base):
    """Which transit operator runs a station (revenue attribution, PLUM sharing)."""

    __tablename__ = "operator_stations"

    station_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    operator_id: Mapped[str] = mapped_column(String(32))
    network_id: Mapped[int | None]


class ProductValue(Base):
    """What one use of a product is worth, for revenue attribution.

    ``trip_value`` (eurocents) values one trip taken from a counter (carnet price / trips);
    ``pass_product`` marks season passes, whose pooled revenue is shared at clearing.
    """

    __tablename__ = "product_values"

    product_code: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100), default="")
    trip_value: Mapped[int] = mapped_column(default=0)
    pass_product: Mapped[bool] = mapped_column(default=False)


class LoopState(Base):
    """One row: the generation of the loop's state, bumped by every chunk the loop commits.

    The loop keeps the card states it wrote in memory between chunks; at the start of a
    chunk it reads this row, and if another loop (another process) committed in between, the
    generation differs and the memory is dropped. See docs/validation-loop.md.

    Attributes:
        id: always 1.
        generation: chunks committed so far.
    """

    __tablename__ = "loop_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
