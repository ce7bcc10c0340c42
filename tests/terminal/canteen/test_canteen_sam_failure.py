"""The till's SAM reader fails at every SAM APDU of a canteen debit (aid + wallet), then retry.

For each SAM APDU of the split-payment meal of the power-cut tests (3,20 € from the canteen aid,
0,60 € from the wallet: two sessions), the emulated SAM is pulled out of its reader during that
exchange: either the SAM executed the command and its answer was lost (``reached=True``) or the
command never reached it (``reached=False``). Then:

- the till says the SAM is out of order (not "tap again": a dead SAM is not fixed by the pupil);
- each session is on the card entirely or not at all, and the journal agrees with the card;
- a session whose card close was answered before the SAM failed (Digest Authenticate, and SV
  Check of the wallet session: the SAM commands after the card's close) is UNCERTAIN, never
  ABORTED: the card committed it;
- the SAM is put back, the pupil taps again (twice), and ends with exactly one meal, one aid
  debit, one wallet debit, all COMMITTED, nothing uncertain, served once.

A last test starts with no SAM in its reader at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from canteen_kit import (
    TillRig,
    assert_before_or_after,
    assert_final,
    assert_journal_agrees,
    card_state,
    reference_meal,
    split_meal_card,
)

from card_schema.uploads.records import TransactionState
from hardware.sam.emulator import EmulatedSAM
from terminal.canteen.reasons import MealReason
from terminal.engine.journaled import SessionOutcome
from terminal.engine.status import SAMCommand

SAM_UNAVAILABLE_TEXT = "Caisse hors service (module de sécurité), voir l'intendance"
WALLET_PART_UNPAID = "Repas enregistré, paiement porte-monnaie à compléter"

# One split-payment meal is 17 SAM APDUs today (checked below, with their order); the parameter
# list covers every index, and the test fails if the count changes so that it is kept complete.
SAM_APDU_COUNT = 17

_S = SAMCommand
SAM_MEAL: tuple[tuple[str, SAMCommand], ...] = (
    # Cursus session (aid debit + meal log); its modifications are anticipated: the card gets
    # them after Digest Close.
    ("cursus", _S.GET_CHALLENGE),  # before the card's Open Secure Session
    ("cursus", _S.SELECT_DIVERSIFIER),  # after it, right before Digest Init
    ("cursus", _S.DIGEST_INIT),
    ("cursus", _S.DIGEST_UPDATE_MULTIPLE),
    ("cursus", _S.DIGEST_CLOSE),
    ("cursus", _S.PSO_COMPUTE_SIGNATURE),  # after the journal's begin, before the card's close
    ("cursus", _S.DIGEST_AUTHENTICATE),  # after the card answered its close: it committed
    # Wallet session (SV Debit of the rest).
    ("wallet", _S.GET_CHALLENGE),
    ("wallet", _S.SELECT_DIVERSIFIER),
    ("wallet", _S.DIGEST_INIT),
    ("wallet", _S.DIGEST_UPDATE_MULTIPLE),
    ("wallet", _S.SV_PREPARE_DEBIT),
    ("wallet", _S.DIGEST_UPDATE_MULTIPLE),
    ("wallet", _S.DIGEST_CLOSE),
    ("wallet", _S.PSO_COMPUTE_SIGNATURE),
    ("wallet", _S.DIGEST_AUTHENTICATE),  # after the card answered its close: it committed
    ("wallet", _S.SV_CHECK),  # the card's SV signature came with its close answer
)

# The SAM commands as they go on the wire (INS, and P1 for Digest Update / Update Multiple).
_WIRE: dict[tuple[int, int], SAMCommand] = {
    (0x14, 0x00): _S.SELECT_DIVERSIFIER,
    (0x84, 0x00): _S.GET_CHALLENGE,
    (0x8A, 0x00): _S.DIGEST_INIT,
    (0x8A, 0x02): _S.DIGEST_INIT,  # Rev 3.2 extended session
    (0x8C, 0x00): _S.DIGEST_UPDATE,
    (0x8C, 0x80): _S.DIGEST_UPDATE_MULTIPLE,
    (0x8E, 0x00): _S.DIGEST_CLOSE,
    (0x82, 0x00): _S.DIGEST_AUTHENTICATE,
    (0x54, 0x01): _S.SV_PREPARE_DEBIT,
    (0x58, 0x00): _S.SV_CHECK,
    (0x2A, 0x9E): _S.PSO_COMPUTE_SIGNATURE,
    (0xCA, 0x00): _S.GET_DATA,
}


class RecordingSAM:
    """The emulated SAM, noting every command it receives (what went on the wire)."""

    def __init__(self, sam: EmulatedSAM) -> None:
        self.sam = sam
        self.commands: list[SAMCommand] = []

    def power_on(self) -> bytes:
        return self.sam.power_on()

    def power_off(self) -> None:
        self.sam.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        self.commands.append(_WIRE[(apdu[1], apdu[2])])
        return self.sam.transmit(apdu)


def test_the_split_meal_sam_apdu_count_is_what_the_sam_tests_cover(tmp_path: Path) -> None:
    assert reference_meal(tmp_path).sam_apdus == SAM_APDU_COUNT
    assert len(SAM_MEAL) == SAM_APDU_COUNT
    # The order, on the wire, and which session each APDU belongs to (the second Get
    # Challenge opens the wallet session).
    rig = TillRig(tmp_path, split_meal_card(tmp_path / "card.json"))
    recorder = RecordingSAM(rig.sam)
    rig.sam_reader.insert(recorder)
    rig.insert()
    result = rig.till.serve()
    rig.close()
    assert result.reason is MealReason.SERVED
    assert recorder.commands == [command for _, command in SAM_MEAL]
    wallet_from = recorder.commands.index(_S.GET_CHALLENGE, 1)
    assert [app for app, _ in SAM_MEAL] == ["cursus"] * wallet_from + ["wallet"] * (
        SAM_APDU_COUNT - wallet_from
    )


def _status_after_sam_failure(command: SAMCommand) -> str:
    """How the session whose SAM command failed ends (whatever ``reached``)."""
    if command in (_S.DIGEST_AUTHENTICATE, _S.SV_CHECK):
        return SessionOutcome.UNCERTAIN  # the card answered its close: it committed
    if command is _S.PSO_COMPUTE_SIGNATURE:
        return SessionOutcome.ABORTED  # journaled, close never sent
    return SessionOutcome.NOT_STARTED  # before the journal's begin: nothing journaled


def _tap_again(rig: TillRig) -> None:
    rig.clock.now = rig.clock.now.replace(minute=rig.clock.now.minute + 1)
    rig.insert()


@pytest.mark.parametrize("reached", [True, False], ids=["sam-executed", "sam-never-reached"])
@pytest.mark.parametrize(
    "index",
    [
        pytest.param(i, id=f"{i:02d}-{app}-{command.name.lower()}")
        for i, (app, command) in enumerate(SAM_MEAL)
    ],
)
def test_sam_reader_fails_at_each_sam_apdu_then_retry(
    tmp_path: Path, index: int, reached: bool
) -> None:
    app, command = SAM_MEAL[index]
    status = _status_after_sam_failure(command)
    card = split_meal_card(tmp_path / "card.json")
    rig = TillRig(tmp_path, card)
    rig.insert()
    rig.sam_reader.tear_after(index + 1, reached=reached)

    first = rig.till.serve()

    assert not rig.sam_reader.card_present(), "the SAM failure was not injected"
    assert first.sam_apdus == index + 1, "the failing SAM APDU is the last one of the tap"
    assert first.reason is MealReason.SAM_UNAVAILABLE, first.reason
    assert first.lines[0] == SAM_UNAVAILABLE_TEXT
    assert not first.served
    expected_sessions = [status] if app == "cursus" else [SessionOutcome.COMMITTED, status]
    assert [s.status for s in first.sessions] == expected_sessions
    # The journal: one record per session that reached its begin, in the state expected.
    journaled = [("cursus", TransactionState.COMMITTED)] if app == "wallet" else []
    if status == SessionOutcome.ABORTED:
        journaled.append((app, TransactionState.ABORTED))
    elif status == SessionOutcome.UNCERTAIN:
        journaled.append((app, TransactionState.UNCERTAIN))
    records = rig.journal.records()
    assert [(r.intent.application, r.state) for r in records] == journaled
    if command in (_S.DIGEST_AUTHENTICATE, _S.SV_CHECK):
        # The card answered its close, so it committed: never ABORTED.
        assert records[-1].state is TransactionState.UNCERTAIN
    # The card: the Cursus session committed if the wallet session ran or if only the SAM's
    # check of its close failed; the wallet session only in the latter case.
    state = card_state(card)
    assert_before_or_after(state)
    assert_journal_agrees(rig, state)
    meal_logged = app == "wallet" or status == SessionOutcome.UNCERTAIN
    wallet_debited = app == "wallet" and status == SessionOutcome.UNCERTAIN
    assert len(state.meals) == int(meal_logged)
    assert len(state.wallet_debits) == int(wallet_debited)
    assert (WALLET_PART_UNPAID in first.lines) == (app == "wallet")

    # The SAM is put back; the pupil taps again, and again.
    rig.sam_reader.insert(rig.sam)
    _tap_again(rig)
    second = rig.till.serve()
    assert_before_or_after(card_state(card))
    if app == "cursus":
        expected = (
            MealReason.PAYMENT_COMPLETED
            if status == SessionOutcome.UNCERTAIN
            else MealReason.SERVED
        )
    else:
        expected = (
            MealReason.RECOVERED
            if status == SessionOutcome.UNCERTAIN
            else MealReason.PAYMENT_COMPLETED
        )
    assert second.reason is expected, second.reason
    recovered = [(r.intent.application, r.state) for r in second.recovered]
    if status == SessionOutcome.UNCERTAIN:
        assert recovered == [(app, TransactionState.COMMITTED)]
    else:
        assert recovered == []
    _tap_again(rig)
    third = rig.till.serve()
    assert_before_or_after(card_state(card))
    assert third.reason is MealReason.ALREADY_SERVED
    assert_final(rig, [first, second, third])
    rig.close()


def test_no_sam_in_its_reader_from_the_start(tmp_path: Path) -> None:
    card = split_meal_card(tmp_path / "card.json")
    rig = TillRig(tmp_path, card)
    before = card_state(card)
    rig.sam_reader.remove()
    rig.insert()

    result = rig.till.serve()

    assert result.reason is MealReason.SAM_UNAVAILABLE
    assert result.lines[0] == SAM_UNAVAILABLE_TEXT
    assert not result.served
    assert result.sam_apdus == 0
    assert [s.status for s in result.sessions] == [SessionOutcome.NOT_STARTED]
    assert card_state(card) == before, "nothing written on the card"
    assert rig.journal.records() == []
    assert [r.reason for r in rig.refusals.read()] == [MealReason.SAM_UNAVAILABLE]

    # Once the SAM is in its reader, the same pupil gets the meal, once.
    rig.sam_reader.insert(rig.sam)
    _tap_again(rig)
    served = rig.till.serve()
    assert served.reason is MealReason.SERVED
    assert_final(rig, [result, served])
    rig.close()
