"""The transaction engine against the emulated card and SAM, through the in-process reader."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from enginekit import SAM_SERIAL, SERIAL, Rig, demo_keys, make_card

from card_schema.calypso import SessionMode
from card_schema.crypto import KeyRole
from firmware_host.readers.inprocess import InProcessReader
from hardware.sam.emulator import EmulatedSAM
from terminal.engine import (
    REGIONAL_CARD_ATR,
    APDUCounter,
    CardCommand,
    CardError,
    CardSelection,
    CardTransactionManager,
    CommunicationError,
    Outcome,
    SAMResource,
    SelectionError,
    SessionStateError,
    card_status,
    select_card,
)
from terminal.engine.status import CARD_STATUS, SAM_STATUS


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    rig = Rig(tmp_path)
    rig.personalise(make_card(carnet_trips=5, sv_balance=1000))
    rig.present()
    return rig


def _session(rig: Rig) -> tuple[CardTransactionManager, APDUCounter]:
    counter = APDUCounter()
    card = select_card(
        rig.reader, CardSelection("plum", reads=("events", "contract_list")), counter=counter
    )
    return CardTransactionManager(rig.reader, card, SAMResource(rig.sam_reader, counter)), counter


def test_selection_reads_piggy_backed_and_serial_from_fci(rig: Rig) -> None:
    counter = APDUCounter()
    card = select_card(
        rig.reader, CardSelection("plum", reads=("environment", "events")), counter=counter
    )
    assert card.serial == SERIAL
    assert card.current == "plum"
    assert len(card.application("plum").file_records("events")) == 3
    assert card.application("plum").record("environment") is not None
    assert counter.card == 3  # select + one Read Records per file


def test_selection_atr_filter(rig: Rig) -> None:
    with pytest.raises(SelectionError):
        select_card(rig.reader, CardSelection("plum", atr_pattern="3B8C.*"))
    card = select_card(rig.reader, CardSelection("plum", atr_pattern=REGIONAL_CARD_ATR))
    assert card.current == "plum"


def test_session_anticipated_close_commits_and_updates_image(rig: Rig) -> None:
    manager, counter = _session(rig)
    opening = manager.process_opening(KeyRole.DEBIT, read=("counters", 1))
    assert opening.previous_session_ratified
    assert manager.card.application("plum").counter("counters", 1) == 5
    event = b"\x11" * 29
    manager.prepare_decrease("counters", 1, 1).prepare_append_record("events", event)
    closing = manager.process_closing()
    assert closing.anticipated
    manager.process_ratification()
    app = manager.card.application("plum")
    assert app.counter("counters", 1) == 4
    assert app.file_records("events")[0] == event
    on_card = rig.image().applications["plum"]
    assert on_card.records["events"][0] == event
    assert on_card.records["counters"][0][:3] == (4).to_bytes(3, "big")
    assert rig.image().transaction_counter == opening.transaction_counter - 1
    # select + 2 reads + open + 2 writes + close + ratification; SAM 5 + one Digest Update
    # Multiple for the 4 elements (2 commands, 2 anticipated answers)
    assert counter.card == 8
    assert counter.sam_commands == [
        "Get Challenge",  # before Open Secure Session (Le 04 or 08 by mode)
        "Select Diversifier",  # the card serial alone, right before Digest Init
        "Digest Init",
        "Digest Update Multiple",
        "Digest Close",
        "Digest Authenticate",
    ]


def test_sv_debit_in_wallet_session(rig: Rig) -> None:
    manager, _ = _session(rig)
    manager.process_select_application("wallet")
    manager.process_opening(KeyRole.DEBIT)
    manager.prepare_sv_debit(180, datetime(2025, 9, 15, 8, 0))
    closing = manager.process_closing(ratify_now=True)
    assert not closing.anticipated
    sv = manager.card.application("wallet").sv
    assert sv is not None and sv.balance == 820
    assert rig.image().applications["wallet"].sv_balance == 820


def test_refused_write_cancels_the_session(rig: Rig) -> None:
    before = rig.image().to_json()
    manager, _ = _session(rig)
    manager.process_opening(KeyRole.DEBIT, read=("counters", 1))
    manager.prepare_append_record("events", b"\x22" * 29).prepare_decrease("counters", 1, 6)
    with pytest.raises(CardError) as err:
        manager.process_closing()
    assert err.value.sw == 0x6A80
    assert err.value.command is CardCommand.DECREASE
    assert not manager.in_session
    assert rig.image().to_json() == before


def test_writes_need_a_session(rig: Rig) -> None:
    manager, _ = _session(rig)
    with pytest.raises(SessionStateError):
        manager.prepare_append_record("events", b"\x01")


def test_close_answer_lost_says_it_may_have_reached_the_card(rig: Rig) -> None:
    manager, _ = _session(rig)
    manager.process_opening(KeyRole.DEBIT, read=("counters", 1))
    manager.prepare_append_record("events", b"\x33" * 29)
    rig.reader.tear_after(2)  # append, then the close is executed and its answer lost
    with pytest.raises(CommunicationError) as err:
        manager.process_closing()
    assert err.value.command is CardCommand.CLOSE_SECURE_SESSION
    assert err.value.may_have_reached_card
    assert rig.image().applications["plum"].records["events"][0] == b"\x33" * 29
    assert not rig.image().ratified


def test_card_pulled_before_close_commits_nothing(rig: Rig) -> None:
    before = rig.image().to_json()
    manager, _ = _session(rig)
    manager.process_opening(KeyRole.DEBIT)
    manager.prepare_append_record("events", b"\x44" * 29)
    rig.reader.tear_after(1, reached=False)
    with pytest.raises(CommunicationError) as err:
        manager.process_closing()
    assert err.value.command is CardCommand.APPEND_RECORD
    assert not err.value.may_have_reached_card
    assert rig.image().to_json() == before


def test_status_tables_cover_every_command() -> None:
    assert set(CARD_STATUS) == set(CardCommand)
    assert all(0x9000 in table for table in SAM_STATUS.values())
    assert card_status(CardCommand.SELECT_APPLICATION, 0x6283).outcome is Outcome.WARNING
    assert card_status(CardCommand.CLOSE_SECURE_SESSION, 0x6988).outcome is Outcome.SECURITY
    assert card_status(CardCommand.APPEND_RECORD, 0x6400).outcome is Outcome.RETRY
    assert card_status(CardCommand.READ_RECORDS, 0x1234).outcome is Outcome.REFUSED


def test_an_s1d_sam_runs_regular_sessions_one_digest_update_per_element(tmp_path: Path) -> None:
    """The SAM's ATR decides, as in the reference: an S1D SAM (subtype D0) gives a regular
    session even with a Rev 3.2 card, and takes one Digest Update per element."""
    rig = Rig(tmp_path)
    rig.sam = EmulatedSAM(demo_keys(), SAM_SERIAL, subtype=0xD0)
    rig.sam_reader = InProcessReader(rig.sam, name="sam")
    rig.personalise(make_card(carnet_trips=5))
    rig.present()
    counter = APDUCounter()
    sam = SAMResource(rig.sam_reader, counter)
    card = select_card(rig.reader, CardSelection("plum"), counter=counter)
    assert card.application("plum").rev32_mode  # the card could run extended sessions
    manager = CardTransactionManager(rig.reader, card, sam, counter=counter)
    opening = manager.process_opening(KeyRole.DEBIT, read=("counters", 1))
    assert opening.mode is SessionMode.REGULAR
    manager.prepare_decrease("counters", 1, 1).prepare_append_record("events", b"EVT")
    closing = manager.process_closing(ratify_now=True)
    assert len(closing.card_signature) == 4
    assert counter.sam_commands.count("Digest Update") == 4
    assert "Digest Update Multiple" not in counter.sam_commands
    assert rig.card.last_session_mode is SessionMode.REGULAR
