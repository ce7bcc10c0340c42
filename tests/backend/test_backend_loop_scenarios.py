"""The eight disagreements of issue 16 between the validation loop and its documented rules.

Each is a fixed history of one card's sessions r0, r1, r2... Gates A and B read the card's event
log, gate C reads none, D is a desk. The loop runs after each step (separate chunks), on SQLite
and PostgreSQL, records prepared by the loop and at upload. The rules: ``docs/validation-loop.md``.
"""

from __future__ import annotations

from typing import Any

from backend.ledger.service import account_balance, check_balanced
from card_schema.uploads.records import JournalRecord, TransactionKind
from tests.backend.validation_fixtures import (
    KeyRing,
    TerminalSim,
    VLDatabase,
    ctr,
    movement,
    pseudonym_of,
    seed_revenue_tables,
    vl_db,
)

__all__ = ["vl_db"]  # the fixture, imported for pytest

CARD = bytes.fromhex("00000000CAFE0016")
WALLET: dict[str, Any] = {"application": "wallet", "product_code": None}


class Card:
    """One card's sessions at gates A, B, C and desk D, and what the backend holds of them."""

    def __init__(self, db: VLDatabase) -> None:
        seed_revenue_tables(db.factory)
        self.db = db
        self.a = TerminalSim("GATE-A", sam_serial=bytes.fromhex("5A000001"))
        self.b = TerminalSim("GATE-B", sam_serial=bytes.fromhex("5A000002"))
        self.c = TerminalSim("GATE-C", sam_serial=bytes.fromhex("5A000003"))
        self.d = TerminalSim("DESK-D", sam_serial=bytes.fromhex("5A000004"), station_id=None)
        self.keys = KeyRing(self.a, self.b, self.c, self.d)
        self.loop = db.loop()
        self.pseudonym = pseudonym_of(CARD)
        self.events: dict[int, bytes] = {}

    def reload(self, session: int, before: int, amount: int = 1000) -> JournalRecord:
        """A reload at desk D."""
        return self._made(
            session,
            self.d.record(
                CARD,
                ctr(session),
                kind=TransactionKind.SV_RELOAD,
                movements=[movement("wallet.sv", amount, before)],
                **WALLET,
            ),
        )

    def debit(
        self, gate: TerminalSim, session: int, before: int, amount: int = 150
    ) -> JournalRecord:
        """A wallet debit at ``gate`` (A and B read the card log)."""
        return self._made(
            session,
            gate.record(
                CARD,
                ctr(session),
                kind=TransactionKind.SV_DEBIT,
                movements=[movement("wallet.sv", -amount, before)],
                last_events=self._log(gate, session),
                **WALLET,
            ),
        )

    def validation(self, gate: TerminalSim, session: int) -> JournalRecord:
        """A season-pass validation (no money) at ``gate``."""
        return self._made(
            session, gate.record(CARD, ctr(session), last_events=self._log(gate, session))
        )

    def copy(self, gate: TerminalSim, original: JournalRecord) -> JournalRecord:
        """The same card session reported again by ``gate`` (a replay)."""
        intent = original.intent
        return gate.record(
            CARD,
            intent.card_tx_counter,
            kind=intent.kind,
            movements=intent.movements,
            **WALLET,
        )

    def _log(self, gate: TerminalSim, session: int) -> list[bytes]:
        if gate is self.c or gate is self.d:
            return []
        return [self.events[n] for n in range(session - 1, max(-1, session - 4), -1)]

    def _made(self, session: int, record: JournalRecord) -> JournalRecord:
        assert record.intent.written_event is not None
        self.events[session] = record.intent.written_event
        return record

    def arrive(self, *records: JournalRecord) -> None:
        """Each terminal uploads its records (one batch each, in the order of the first
        record of each), then the loop runs."""
        terminals = {t.terminal_id: t for t in (self.a, self.b, self.c, self.d)}
        for terminal_id in dict.fromkeys(r.terminal_id for r in records):
            mine = [r for r in records if r.terminal_id == terminal_id]
            terminal = terminals[terminal_id]
            self.db.upload(self.keys, terminal, terminal.batch(mine))
        self.loop.run_once()

    def balance(self, account: str) -> int:
        with self.db.factory() as session:
            return account_balance(session, account)

    @property
    def mirror(self) -> int:
        """The ledger's mirror of the card's wallet."""
        return self.balance(f"card:{self.pseudonym}:wallet.sv")

    def anomalies(self, kind: str, *, resolved: bool | None = None) -> int:
        where = {None: "", True: " AND resolved_at IS NOT NULL", False: " AND resolved_at IS NULL"}
        return int(
            self.db.scalar(
                f"SELECT count(*) FROM anomalies WHERE kind = :k{where[resolved]}", k=kind
            )
        )

    def open_anomalies(self) -> list[str]:
        return sorted(
            r[0] for r in self.db.rows("SELECT kind FROM anomalies WHERE resolved_at IS NULL")
        )

    def balanced(self) -> None:
        with self.db.factory() as session:
            assert check_balanced(session).total == 0


def test_1_a_replay_after_a_confirmed_recovery_is_not_charged_again(vl_db: VLDatabase) -> None:
    card = Card(vl_db)
    r0 = card.reload(0, 0)
    r1 = card.debit(card.a, 1, 1000)
    r2 = card.validation(card.b, 2)  # its log carries r1
    card.arrive(r0, r2)
    assert card.db.scalar("SELECT status FROM taps WHERE card_tx_counter = :c", c=ctr(1)) == (
        "recovered"
    )
    card.arrive(r1)  # the original confirms the recovery
    card.arrive(card.copy(card.c, r1))  # then a copy from C: a replay
    assert card.mirror == 850
    assert card.balance("operator:ilevia:revenue") == 150
    assert card.balance("suspense:card_log_recovery") == 0
    assert card.anomalies("replay") == 1
    charged = card.db.rows(
        "SELECT status FROM taps WHERE card_tx_counter = :c AND charged", c=ctr(1)
    )
    assert [row[0] for row in charged] == ["confirms_recovered"]
    card.balanced()


def test_1b_the_same_when_the_session_carrying_the_log_is_a_debit(vl_db: VLDatabase) -> None:
    card = Card(vl_db)
    r0 = card.reload(0, 0)
    r1 = card.debit(card.a, 1, 1000)
    r2 = card.debit(card.b, 2, 850, amount=100)
    card.arrive(r0, r2)
    assert card.balance("suspense:card_log_recovery") == 150  # r1 inferred from the chain
    card.arrive(r1)
    card.arrive(card.copy(card.c, r1))
    assert card.mirror == 750
    assert card.balance("suspense:card_log_recovery") == 0
    assert card.balance("operator:ilevia:revenue") == 250
    assert card.anomalies("replay") == 1
    card.balanced()


def test_2_no_chain_break_after_a_confirmation(vl_db: VLDatabase) -> None:
    card = Card(vl_db)
    r0 = card.reload(0, 0)
    r1 = card.debit(card.a, 1, 1000)
    r2 = card.validation(card.b, 2)  # r1 recovered, without money: r2 moves no purse
    r3 = card.debit(card.a, 3, 850)
    card.arrive(r0, r2)
    card.arrive(r1, r3)
    assert card.anomalies("chain_break") == 0
    assert card.open_anomalies() == []
    assert card.mirror == 700
    card.balanced()


def test_3_late_originals_correct_the_inference_of_a_run_of_missing_sessions(
    vl_db: VLDatabase,
) -> None:
    card = Card(vl_db)
    r0 = card.reload(0, 0)
    r1, r2, r3 = (card.debit(card.a, n, 1000 - 150 * (n - 1)) for n in (1, 2, 3))
    r4 = card.debit(card.b, 4, 550, amount=100)  # its log carries r3, r2, r1
    card.arrive(r0, r4)
    assert card.anomalies("recovered_from_card_log", resolved=False) == 3
    assert card.mirror == 450
    assert card.balance("suspense:card_log_recovery") == 450
    card.arrive(r2)
    assert card.mirror == 450  # r2's 1,50 € replaces part of the inference, not added to it
    assert card.balance("suspense:card_log_recovery") == 300
    card.arrive(r3)
    card.arrive(r1)
    assert card.mirror == 450
    assert card.balance("suspense:card_log_recovery") == 0
    assert card.balance("operator:ilevia:revenue") == 550
    assert card.open_anomalies() == []
    card.balanced()


def test_4_the_card_log_of_an_out_of_order_record_recovers_a_lost_session(
    vl_db: VLDatabase,
) -> None:
    card = Card(vl_db)
    r0 = card.reload(0, 0)
    card.debit(card.c, 1, 1000)  # r1: lost at C (never uploaded)
    r2 = card.debit(card.a, 2, 850)  # its log carries r1
    r3 = card.validation(card.c, 3)
    card.arrive(r0, r3)
    assert card.anomalies("card_counter_gap", resolved=False) == 2  # r1 and r2
    card.arrive(r2)  # late, out of order
    assert card.db.scalar("SELECT status FROM taps WHERE card_tx_counter = :c", c=ctr(1)) == (
        "recovered"
    )
    assert card.open_anomalies() == ["recovered_from_card_log"]
    assert card.mirror == 700
    card.balanced()


def test_5_a_recovered_session_without_money_is_not_known_for_the_chain(
    vl_db: VLDatabase,
) -> None:
    card = Card(vl_db)
    r0 = card.reload(0, 0)
    card.debit(card.c, 1, 1000)  # r1: lost at C
    r2 = card.validation(card.b, 2)  # r1 recovered, no purse to infer its money from
    r3 = card.debit(card.a, 3, 850, amount=100)
    card.arrive(r0, r2)
    card.arrive(r3)
    assert card.anomalies("chain_break") == 0
    assert card.open_anomalies() == ["recovered_from_card_log"]
    assert card.balance("suspense:card_log_recovery") == 150  # r1's debit, inferred
    assert card.mirror == 750
    card.balanced()


def test_6_card_gaps_do_not_depend_on_the_delivery_order(vl_db: VLDatabase) -> None:
    card = Card(vl_db)
    r0, r1, r2 = (card.validation(card.c, n) for n in (0, 1, 2))
    r3 = card.validation(card.c, 3)
    card.arrive(r3)
    card.arrive(r0)  # later session first: r1 and r2 are gaps, as in the natural order
    assert card.anomalies("card_counter_gap", resolved=False) == 2
    card.arrive(r1, r2)
    assert card.anomalies("card_counter_gap", resolved=False) == 0
    assert card.anomalies("card_counter_gap", resolved=True) == 2
    assert card.open_anomalies() == []


def test_7_a_purse_jump_absorbed_by_a_recovery_reappears_with_the_original(
    vl_db: VLDatabase,
) -> None:
    card = Card(vl_db)
    r0 = card.reload(0, 0)
    r1 = card.debit(card.a, 1, 1000)  # leaves 850
    r2 = card.debit(card.b, 2, 650, amount=100)  # starts 2,00 € lower than r1 left
    card.arrive(r0, r2)
    assert card.anomalies("chain_break") == 0  # r1 recovered, the 3,50 € inferred on it
    assert card.balance("suspense:card_log_recovery") == 350
    card.arrive(r1)
    assert card.anomalies("chain_break") == 1  # as in the natural order
    assert card.balance("suspense:card_log_recovery") == 0
    card.balanced()


def test_8_a_chain_across_a_gap_filled_by_a_session_without_money_is_checked(
    vl_db: VLDatabase,
) -> None:
    card = Card(vl_db)
    r0 = card.debit(card.a, 0, 1000)  # leaves 850
    r1 = card.validation(card.c, 1)
    r2 = card.debit(card.c, 2, 1150)  # 3,00 € more than r0 left
    card.arrive(r0, r2)
    assert card.anomalies("chain_break") == 0  # r1 missing: it could explain the jump
    card.arrive(r1)  # it moved no money: the jump is unexplained
    assert card.anomalies("chain_break") == 1
    card.balanced()
