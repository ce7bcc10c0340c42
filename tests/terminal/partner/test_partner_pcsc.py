"""The employment partners' reader through the real pcscd, with the emulated card and a partner SAM.

- It reads « Mes droits pour l'emploi » only: every Select it sends names HDF.EMPLOI, and it
  shows the situation and rights in French.
- The consultation is appended to the card's log in a secure session and journaled.
- A holder who refuses: no APDU reaches the card, nothing is shown, nothing is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from partner_kit import (
    PARTNER_SAM_SERIAL,
    TERMINAL_ID,
    Clock,
    RecordingPCSCReader,
    consultations,
    holder_image,
    new_card_file,
    partner_keys,
    selected_names,
)

from card_schema.uploads.records import TransactionKind, TransactionState
from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.vpcd import VPCDBridge
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.pcsc_stack import PCSCStack
from hardware.sam.emulator import EmulatedSAM
from terminal.canteen.screen import RecordingScreen
from terminal.journal.store import Journal
from terminal.partner.reader import ConsultationReason, PartnerReader

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def card_in_reader(stack: PCSCStack, card: EmulatedCard) -> Iterator[None]:
    with VPCDBridge(card, stack.card_port, name="card") as bridge:
        assert bridge.wait_connected(5)
        assert stack.wait_for_card_state(stack.card_reader, True, 5)
        yield
    assert stack.wait_for_card_state(stack.card_reader, False, 5)


@contextlib.contextmanager
def partner_desk(
    stack: PCSCStack, tmp_path: Path
) -> Iterator[tuple[PartnerReader, RecordingPCSCReader, RecordingScreen, Journal]]:
    sam = EmulatedSAM(partner_keys(), PARTNER_SAM_SERIAL, counter_file=tmp_path / "sam.json")
    screen = RecordingScreen()
    with (
        VPCDBridge(sam, stack.sam_port, name="sam") as sam_bridge,
        Journal.open(tmp_path / "partner.journal", TERMINAL_ID) as journal,
    ):
        assert sam_bridge.wait_connected(5)
        assert stack.wait_for_card_state(stack.sam_reader, True, 5)
        card_reader = RecordingPCSCReader(stack.card_reader)
        reader = PartnerReader(
            card_reader,
            PCSCReader(stack.sam_reader),
            journal,
            partner="mission_locale",
            site=8021,
            terminal_number=3,
            clock=Clock(),
            screen=screen,
        )
        yield reader, card_reader, screen, journal
    # The SAM left its reader: the next test's SAM is seen afresh.
    assert stack.wait_for_card_state(stack.sam_reader, False, 5)


def test_partner_reads_employment_only_and_logs_the_consultation(
    pcsc_stack: PCSCStack, tmp_path: Path
) -> None:
    path = new_card_file(tmp_path / "card.json", holder_image())
    before = CardImageStore(path).load()
    with partner_desk(pcsc_stack, tmp_path) as (reader, card_reader, screen, journal):
        with card_in_reader(pcsc_stack, EmulatedCard(CardImageStore(path))):
            result = reader.consult(holder_agrees=True)
            card_reader.disconnect()
        records = journal.records()
    assert result.reason == ConsultationReason.SHOWN, result.lines
    # Only « Mes droits pour l'emploi » was ever selected: no PLUM, Cursus or wallet.
    assert selected_names(card_reader.sent) == [b"HDF.EMPLOI"]
    text = "\n".join(screen.last)
    assert "Situation : demandeur d'emploi" in text
    assert "Aide à la mobilité : ouvert, 120,00 € restants sur 200,00 €" in text
    assert "Compte personnel de formation : ouvert, 110 h restantes sur 150 h" in text
    # The card's consultation log names the partner, its site and the time.
    logged = consultations(path)
    assert len(logged) == 1
    assert logged[0]["partner"] == "mission_locale"
    assert logged[0]["partner_site"] == 8021
    assert logged[0]["consulted_at"] == "2026-12-01T10:20"
    assert logged[0]["read"] == ["situation", "right_1", "right_2", "right_3", "right_4"]
    after = CardImageStore(path).load()
    # Nothing else changed: rights, Cursus, wallet and PLUM as before.
    for app in ("plum", "cursus", "wallet"):
        assert after.applications[app].records == before.applications[app].records
    assert after.applications["wallet"].sv_balance == before.applications["wallet"].sv_balance
    employment_before = before.applications["employment"].records
    employment_after = after.applications["employment"].records
    assert employment_after["rights"] == employment_before["rights"]
    assert employment_after["situation"] == employment_before["situation"]
    assert after.transaction_counter == before.transaction_counter - 1
    # Journaled as a committed consultation, ready for the upload.
    assert [(r.state, r.intent.kind, r.intent.application) for r in records] == [
        (TransactionState.COMMITTED, TransactionKind.CONSULTATION, "employment")
    ]


def test_a_refused_reading_sends_nothing_shows_nothing_writes_nothing(
    pcsc_stack: PCSCStack, tmp_path: Path
) -> None:
    path = new_card_file(tmp_path / "card.json", holder_image())
    raw_before = path.read_bytes()
    with partner_desk(pcsc_stack, tmp_path) as (reader, card_reader, screen, journal):
        with card_in_reader(pcsc_stack, EmulatedCard(CardImageStore(path))):
            result = reader.consult(holder_agrees=False)
        records = journal.records()
    assert result.reason == ConsultationReason.REFUSED
    assert not result.shown and result.situation is None and result.rights == []
    assert screen.last == [ConsultationReason.REFUSED]
    assert card_reader.sent == []
    assert path.read_bytes() == raw_before
    assert records == []
