"""The wallet's SV debit log records, and cyclic logs without their blank records.

Shared by every terminal that debits the wallet in a session of its own next to another one (the
canteen till, the gate's pay-as-you-go): the card's SV debit log is the evidence that a debit was
made, read at the next tap (``docs/canteen.md``, ``docs/gate.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from card_schema.errors import SchemaError
from card_schema.layout import RECORD_SIZE
from card_schema.records import decode_record, encode_record
from card_schema.uploads.records import (
    PurseMovement,
    PurseUnit,
    TransactionIntent,
    TransactionKind,
)

WALLET_PURSE = "wallet.sv"

BLANK_RECORD = bytes(RECORD_SIZE)


@dataclass(frozen=True)
class WalletDebit:
    """One ``wallet.sv_debit_log`` record (Calypso's 19-byte debit log): an SV debit.

    Attributes:
        at: local date and time given by the terminal in the SV Debit command.
        amount: eurocents debited (negative for an undebit; the card logs the command's
            amount, negative for a debit).
        balance: balance after the operation.
        sv_tnum: the card's SV transaction number after the operation.
        sam_id: serial of the SAM of the terminal that made it (4 bytes as an integer): the
            card's log names the terminal by its SAM.
        sam_tnum: that SAM's SV transaction number.
        kvc: version of the SV key used.
    """

    at: datetime
    amount: int
    balance: int
    sv_tnum: int
    sam_id: int
    sam_tnum: int
    kvc: int

    @classmethod
    def from_record(cls, raw: bytes) -> WalletDebit | None:
        """Decode an SV debit log record; ``None`` for a blank or unreadable one."""
        if raw == BLANK_RECORD:
            return None
        try:
            fields = decode_record("wallet.sv_debit_log", raw)
        except SchemaError:
            return None
        day = fields["date"]
        when = fields["time"]
        if not isinstance(day, str) or not isinstance(when, str):
            return None
        parsed = date.fromisoformat(day)
        hour, minute = (int(part) for part in when.split(":"))
        return cls(
            at=datetime(parsed.year, parsed.month, parsed.day, hour, minute),
            amount=-int(fields["amount"]),
            balance=int(fields["balance"]),
            sv_tnum=int(fields["sv_tnum"]),
            sam_id=int(fields["sam_id"]),
            sam_tnum=int(fields["sam_tnum"]),
            kvc=int(fields["kvc"]),
        )

    def to_record(self) -> bytes:
        """The 29 bytes the card writes for this debit (``docs/secure-session.md``, SV log)."""
        return encode_record(
            "wallet.sv_debit_log",
            {
                "amount": -self.amount,
                "date": self.at.date().isoformat(),
                "time": self.at.strftime("%H:%M"),
                "kvc": self.kvc,
                "sam_id": self.sam_id,
                "sam_tnum": self.sam_tnum,
                "balance": self.balance,
                "sv_tnum": self.sv_tnum,
            },
        )


def non_blank(records: Sequence[bytes]) -> tuple[bytes, ...]:
    """The records of a cyclic log without the never-written (all-zero) ones, newest first.

    Blank records are all alike: two different logs (the canteen log, the SV debit log) both
    start as three blank records, so keeping them would let one log's history be read as the
    other's (see ``docs/canteen.md``, "Recovery").
    """
    return tuple(bytes(r) for r in records if bytes(r) != BLANK_RECORD)


def sv_debit_intent(
    *,
    kind: TransactionKind,
    card_serial: bytes,
    card_tx_counter: int,
    kvc: int,
    balance_before: int,
    sv_tnum_before: int,
    amount: int,
    at: datetime,
    sam_id: bytes,
    sam_tnum: int,
    occurred_at: datetime,
    last_events: Sequence[bytes],
    product_code: int | None = None,
    station_id: int | None = None,
    school_uai: str | None = None,
) -> TransactionIntent:
    """The journal intent of an SV debit session in the wallet, with the log record it writes.

    The SV Get of the session (sent before the close) gives ``balance_before`` and
    ``sv_tnum_before``, and SV Prepare the SAM transaction number; the card's debit log entry
    is then fully determined, so the intent can be journaled before the close (write-ahead).

    Args:
        kind: what the debit pays for (a canteen meal, a pay-as-you-go ride).
        card_serial: the card.
        card_tx_counter: the card's transaction counter read at Open Secure Session.
        kvc: version of the SV key of the session.
        balance_before: SV balance read in the session, eurocents.
        sv_tnum_before: SV transaction number read in the session.
        amount: eurocents to debit (positive).
        at: local date and time given to the card in the SV Debit command.
        sam_id: the SAM serial written in the SV Debit command (and the card's log).
        sam_tnum: the SAM's SV transaction number of the debit (from SV Prepare).
        occurred_at: when the tap happened (aware).
        last_events: the debit log as read before the session (:func:`non_blank`).
        product_code: product or service code of what is paid for.
        station_id: station of the terminal, if any.
        school_uai: school of the terminal, if any.
    """
    balance_after = balance_before - amount
    written = WalletDebit(
        at=at,
        amount=amount,
        balance=balance_after,
        sv_tnum=sv_tnum_before + 1,
        sam_id=int.from_bytes(sam_id, "big"),
        sam_tnum=sam_tnum,
        kvc=kvc,
    ).to_record()
    return TransactionIntent(
        kind=kind,
        application="wallet",
        card_serial=card_serial,
        card_tx_counter=card_tx_counter,
        occurred_at=occurred_at,
        movements=(
            PurseMovement(WALLET_PURSE, PurseUnit.EUROCENT, -amount, balance_before, balance_after),
        ),
        product_code=product_code,
        station_id=station_id,
        school_uai=school_uai,
        last_events=tuple(last_events),
        written_event=written,
    )
