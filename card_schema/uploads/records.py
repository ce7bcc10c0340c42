"""What the journal records: the intent of a card transaction and the decided record.

These are plain values with a canonical JSON form (the same form goes into the SQLite row and into
the upload batch, see ``docs/batch-format.md``). Nothing here does IO.

Privacy rule (CNIL practice, blueprint section 4): a record carries the product or tariff code of
what was used, never the holder's profile, social category or employment situation; there is no
field for them, and the batch decoder refuses unknown fields.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from card_schema.uploads.counters import CARD_COUNTER_MAX
from card_schema.uploads.errors import BatchFormatError, RecordError

TERMINAL_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX_PATTERN = re.compile(r"[0-9A-F]*")  # and an even length: (?:[0-9A-F]{2})*, faster
_UTC_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_ASCII_UTC_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


class TransactionKind(Enum):
    """What a card session did; the backend's tariff and ledger rules key on it."""

    VALIDATION = "validation"  # transit entry or transfer, event written (PLUM)
    COUNTER_DECREASE = "counter_decrease"  # trips taken from a counter contract (PLUM)
    SV_DEBIT = "sv_debit"  # stored value purse debit (wallet)
    SV_RELOAD = "sv_reload"  # stored value purse reload (wallet)
    CANTEEN_MEAL = "canteen_meal"  # meal: canteen aid counter first, then wallet (cursus)
    AID_DEBIT = "aid_debit"  # ring-fenced aid spent outside the canteen (cursus)
    LOAD = "load"  # contract, aid credit or right written on the card (action list, desk)
    BIKE_SHELTER = "bike_shelter"  # bike-shelter door opened, event written
    CONSULTATION = "consultation"  # employment partner read the rights, log record appended
    AID_REFUND = "aid_refund"  # shop's same-day reversal of an aid_debit (cursus)


class TransactionState(Enum):
    """States of a journal record; see the diagram in ``docs/journal.md``."""

    PENDING = "PENDING"  # intent durable, close not yet answered
    COMMITTED = "COMMITTED"  # the card committed the session
    ABORTED = "ABORTED"  # the card did not commit the session (nothing changed on the card)
    UNCERTAIN = "UNCERTAIN"  # close response lost or process died: the next tap decides

    @property
    def decided(self) -> bool:
        """``True`` for the two final states, which are the only ones uploaded as records."""
        return self in (TransactionState.COMMITTED, TransactionState.ABORTED)


class Resolution(Enum):
    """How a decided record got its outcome, kept for audit and sent to the backend."""

    CARD_CLOSE = "card_close"  # close response received and verified
    CARD_REFUSAL = "card_refusal"  # the card refused (status word), session cancelled
    RECOVERED_FROM_CARD = "recovered_from_card"  # next tap: the card's log holds the event
    NOT_ON_CARD = "not_on_card"  # next tap: the card shows the session never committed


class PurseUnit(Enum):
    """Unit of a purse or counter movement."""

    EUROCENT = "eurocent"  # SV purse, ring-fenced aid counters
    COUNT = "count"  # trip counters, meal counters: a number of uses


def canonical_json(value: Any) -> bytes:
    """The one byte encoding of a JSON value: sorted keys, no spaces, UTF-8, no floats.

    For the values records hold (objects with ASCII keys, strings, integers, booleans, null,
    lists) this is exactly RFC 8785 (JSON Canonicalization Scheme), so another implementation
    of the backend can re-derive the signed bytes.

    Raises:
        RecordError: ``value`` holds a float (amounts are integers) or a non-JSON type.
    """
    _refuse_floats(value)
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError (lone surrogate) is a ValueError
        raise RecordError(f"not a JSON value: {exc}") from exc


MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON (RFC 7493): integers every JSON reader holds exactly


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise RecordError("floats are not allowed in records: amounts are integer eurocents")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise RecordError(f"integer {value} is beyond ±(2**53 - 1)")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def format_utc(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2025-09-01T07:31:02.123Z``.

    Raises:
        RecordError: ``moment`` is naive (a terminal clock without a zone is a bug).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise RecordError("timestamps must be timezone-aware (UTC)")
    moment = moment.astimezone(UTC)
    if moment.year >= 1000:  # what strftime("%Y") gives then, without its cost
        return (
            f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
        )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_utc(text: Any, *, field_name: str) -> datetime:
    """Inverse of :func:`format_utc`; refuses any other spelling.

    ASCII text (every timestamp a terminal writes) is read by :func:`fast_parse_utc`;
    anything else, and whatever it refuses, goes through :func:`_parse_utc_strptime`, the
    reference rule, which decides and words the refusal. Both accept and refuse exactly the
    same strings (``tests/card_schema/test_uploads_codec.py`` checks it with Hypothesis).
    """
    moment = fast_parse_utc(text)
    if moment is None:
        return _parse_utc_strptime(text, field_name=field_name)
    return moment


def fast_parse_utc(text: Any) -> datetime | None:
    """:func:`parse_utc` of an ASCII timestamp, or ``None`` to let the reference rule decide.

    The pattern fixes the position of every digit, and :class:`datetime` refuses exactly the
    out-of-range fields ``strptime`` refuses (month 13, 30 February, hour 24, second 60).
    """
    if type(text) is not str or _ASCII_UTC_PATTERN.fullmatch(text) is None:
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
            int(text[20:23]) * 1000,
            UTC,
        )
    except ValueError:
        return None


def _parse_utc_strptime(text: Any, *, field_name: str) -> datetime:
    """The reference parser of :func:`parse_utc` (``strptime``), slow but obviously right."""
    if not isinstance(text, str) or not _UTC_PATTERN.fullmatch(text):
        raise BatchFormatError(f"{field_name}: not a UTC timestamp like 2025-09-01T07:31:02.123Z")
    try:
        return datetime.strptime(text[:-1] + "000", "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError as exc:
        raise BatchFormatError(f"{field_name}: {exc}") from exc


def normalise_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, truncated to the millisecond (the precision of the records).

    A moment that is already so (what :func:`parse_utc` returns) is returned as is: it is
    equal, field for field and zone included, to what the format / re-parse round trip gives.
    """
    if (
        type(moment) is datetime
        and moment.tzinfo is UTC
        and not moment.microsecond % 1000
        and not moment.fold
        and moment.year >= 1000
    ):
        return moment
    return parse_utc(format_utc(moment), field_name="timestamp")


def to_hex(raw: bytes) -> str:
    """Upper-case hex, the one spelling of bytes in records."""
    return raw.hex().upper()


def from_hex(text: Any, *, field_name: str) -> bytes:
    """Inverse of :func:`to_hex`; lower case is refused so that re-encoding is byte-identical."""
    if not isinstance(text, str) or len(text) % 2 or not _HEX_PATTERN.fullmatch(text):
        raise BatchFormatError(f"{field_name}: not upper-case hex")
    return bytes.fromhex(text)


def check_terminal_id(terminal_id: str) -> str:
    """A terminal id is 1-64 characters of ``A-Z a-z 0-9 . _ -`` (it appears in batch ids).

    Raises:
        RecordError: it is not.
    """
    if not isinstance(terminal_id, str) or not TERMINAL_ID_PATTERN.fullmatch(terminal_id):
        raise RecordError(f"bad terminal id {terminal_id!r}: 1-64 of A-Z a-z 0-9 . _ -")
    return terminal_id


MOVEMENT_FIELDS = frozenset({"purse", "unit", "amount", "balance_before", "balance_after"})


@dataclass(frozen=True)
class PurseMovement:
    """One purse or counter changed by the session.

    Attributes:
        purse: which purse, in ``application.purse`` form: ``wallet.sv``,
            ``cursus.canteen_aid``, ``cursus.books_aid``, ``plum.counter.2``...
        unit: eurocents for money, a count for trip or meal counters.
        amount: signed change, negative for a debit (``balance_after - balance_before``).
        balance_before: value read at open session.
        balance_after: value the session writes.
    """

    purse: str
    unit: PurseUnit
    amount: int
    balance_before: int
    balance_after: int

    def __post_init__(self) -> None:
        if not self.purse:
            raise RecordError("a purse movement names its purse")
        if self.balance_before + self.amount != self.balance_after:
            raise RecordError(
                f"{self.purse}: balance before {self.balance_before} + amount {self.amount} "
                f"!= balance after {self.balance_after}"
            )

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON object (``docs/batch-format.md``, movement)."""
        return {
            "purse": self.purse,
            "unit": self.unit.value,
            "amount": self.amount,
            "balance_before": self.balance_before,
            "balance_after": self.balance_after,
        }

    @classmethod
    def from_json(cls, obj: Any) -> PurseMovement:
        """Inverse of :meth:`to_json`, strict on field names and types."""
        fields = expect_object(obj, MOVEMENT_FIELDS, "movement")
        try:
            return cls(
                purse=expect_str(fields["purse"], "movement.purse"),
                unit=PurseUnit(fields["unit"]),
                amount=expect_int(fields["amount"], "movement.amount"),
                balance_before=expect_int(fields["balance_before"], "movement.balance_before"),
                balance_after=expect_int(fields["balance_after"], "movement.balance_after"),
            )
        except ValueError as exc:
            raise BatchFormatError(f"movement: {exc}") from exc
        except BatchFormatError:
            raise
        except RecordError as exc:
            raise BatchFormatError(str(exc)) from exc


@dataclass(frozen=True)
class TransactionIntent:
    """What the terminal is about to ask the card to commit, recorded before Close Secure Session.

    Attributes:
        kind: what the session does.
        application: card application: ``plum``, ``wallet``, ``cursus`` or ``emploi``.
        card_serial: card serial number (Calypso application serial, raw bytes).
        card_tx_counter: the card's transaction counter as read at Open Secure Session; with the
            serial it is the card-side deduplication key. Calypso counters count down: order
            sessions by :func:`card_schema.uploads.counters.session_number`.
        occurred_at: tap time, timezone-aware; stored in UTC to the millisecond.
        movements: purses and counters the session changes, amounts in eurocents or counts.
        product_code: product or tariff code used (Intercode ContractTariff or catalogue code).
        station_id: station, stop or door id of the terminal's location, if any.
        school_uai: school UAI (canteen tills), if any.
        last_events: the card's event log records read at this tap, newest first, raw bytes.
        written_event: the log record this session appends (raw bytes), if it writes one; it is
            what the next tap looks for when the close response was lost.
    """

    kind: TransactionKind
    application: str
    card_serial: bytes
    card_tx_counter: int
    occurred_at: datetime
    movements: tuple[PurseMovement, ...] = ()
    product_code: int | None = None
    station_id: int | None = None
    school_uai: str | None = None
    last_events: tuple[bytes, ...] = ()
    written_event: bytes | None = None

    def __post_init__(self) -> None:
        if not self.application:
            raise RecordError("an intent names its card application")
        if not 1 <= len(self.card_serial) <= 16:
            raise RecordError("a card serial is 1 to 16 bytes")
        if not 0 <= self.card_tx_counter <= CARD_COUNTER_MAX:
            raise RecordError("a card transaction counter is 0 to 0xFFFFFF (3 bytes)")
        object.__setattr__(self, "occurred_at", normalise_utc(self.occurred_at))
        object.__setattr__(self, "movements", tuple(self.movements))
        object.__setattr__(self, "last_events", tuple(bytes(e) for e in self.last_events))

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON object of the intent fields (a subset of the batch record)."""
        return {
            "kind": self.kind.value,
            "application": self.application,
            "card_serial": to_hex(self.card_serial),
            "card_tx_counter": self.card_tx_counter,
            "occurred_at": format_utc(self.occurred_at),
            "movements": [m.to_json() for m in self.movements],
            "product_code": self.product_code,
            "station_id": self.station_id,
            "school_uai": self.school_uai,
            "last_events": [to_hex(e) for e in self.last_events],
            "written_event": None if self.written_event is None else to_hex(self.written_event),
        }

    @classmethod
    def from_json(cls, obj: Any) -> TransactionIntent:
        """Inverse of :meth:`to_json`, strict on field names and types."""
        return cls.from_fields(expect_object(obj, INTENT_FIELDS, "intent"))

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> TransactionIntent:
        """:meth:`from_json` of an object whose field names were checked (a batch record's)."""
        try:
            return cls(
                kind=TransactionKind(fields["kind"]),
                application=expect_str(fields["application"], "application"),
                card_serial=from_hex(fields["card_serial"], field_name="card_serial"),
                card_tx_counter=expect_int(fields["card_tx_counter"], "card_tx_counter"),
                occurred_at=parse_utc(fields["occurred_at"], field_name="occurred_at"),
                movements=tuple(
                    PurseMovement.from_json(m)
                    for m in expect_list(fields["movements"], "movements")
                ),
                product_code=expect_opt_int(fields["product_code"], "product_code"),
                station_id=expect_opt_int(fields["station_id"], "station_id"),
                school_uai=expect_opt_str(fields["school_uai"], "school_uai"),
                last_events=tuple(
                    from_hex(e, field_name="last_events")
                    for e in expect_list(fields["last_events"], "last_events")
                ),
                written_event=None
                if fields["written_event"] is None
                else from_hex(fields["written_event"], field_name="written_event"),
            )
        except ValueError as exc:
            raise BatchFormatError(f"intent: {exc}") from exc
        except BatchFormatError:
            raise
        except RecordError as exc:
            raise BatchFormatError(str(exc)) from exc


INTENT_FIELDS = frozenset(
    {
        "kind",
        "application",
        "card_serial",
        "card_tx_counter",
        "occurred_at",
        "movements",
        "product_code",
        "station_id",
        "school_uai",
        "last_events",
        "written_event",
    }
)


@dataclass(frozen=True)
class JournalRecord:
    """One row of the journal: an intent, its terminal sequence and what became of it.

    Attributes:
        terminal_id: the terminal that wrote the record.
        seq: terminal sequence, allocated at :meth:`Journal.begin`, never reused.
        state: current state.
        intent: what was asked of the card.
        sam_signature: the SAM's traceable signature (opaque bytes from the SAM layer: SAM serial,
            SAM counter, MAC), set when the close response verified; ``None`` otherwise.
        resolution: how the outcome was decided, ``None`` while undecided.
        abort_reason: why the card refused or why the session is known not to be on the card.
        decided_at: when the outcome became known (UTC), ``None`` while undecided.
        batch_id: upload batch holding the record once batched.
    """

    terminal_id: str
    seq: int
    state: TransactionState
    intent: TransactionIntent
    sam_signature: bytes | None = None
    resolution: Resolution | None = None
    abort_reason: str | None = None
    decided_at: datetime | None = None
    batch_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.decided_at is not None:
            object.__setattr__(self, "decided_at", normalise_utc(self.decided_at))


def expect_object(obj: Any, names: frozenset[str] | set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BatchFormatError(f"{what}: expected a JSON object")
    if obj.keys() != names:
        keys = set(obj)
        missing, extra = sorted(set(names) - keys), sorted(keys - set(names))
        raise BatchFormatError(f"{what}: missing fields {missing}, unknown fields {extra}")
    return obj


def expect_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BatchFormatError(f"{name}: expected an integer")
    return value


def expect_opt_int(value: Any, name: str) -> int | None:
    return None if value is None else expect_int(value, name)


def expect_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BatchFormatError(f"{name}: expected a string")
    return value


def expect_opt_str(value: Any, name: str) -> str | None:
    return None if value is None else expect_str(value, name)


def expect_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise BatchFormatError(f"{name}: expected a list")
    return value
