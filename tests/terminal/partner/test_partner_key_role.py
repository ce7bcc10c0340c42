"""The partner SAM's key role: employment debit only. It cannot write rights nor open any other
application's session (the card and the SAM refuse, not only the reader's code)."""

from __future__ import annotations

from pathlib import Path

import pytest
from partner_kit import (
    MOBILITY,
    PARTNER_SAM_SERIAL,
    holder_image,
    new_card_file,
    partner_keys,
)

from card_schema.crypto import KeyRole
from card_schema.records import encode_record
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.sam.emulator import EmulatedSAM
from terminal.engine import (
    CalypsoCard,
    CardError,
    CardTransactionManager,
    EngineError,
    SAMError,
    SAMResource,
)


def _manager(tmp_path: Path) -> tuple[CardTransactionManager, Path]:
    path = new_card_file(tmp_path / "card.json", holder_image())
    sam = EmulatedSAM(partner_keys(), PARTNER_SAM_SERIAL, counter_file=tmp_path / "sam.json")
    card_reader = InProcessReader(EmulatedCard(CardImageStore(path)), name="card")
    atr = card_reader.connect()
    tm = CardTransactionManager(
        card_reader, CalypsoCard(atr=atr), SAMResource(InProcessReader(sam, name="sam"))
    )
    return tm, path


def test_partner_sam_cannot_open_a_load_session_to_write_rights(tmp_path: Path) -> None:
    tm, path = _manager(tmp_path)
    raw = path.read_bytes()
    tm.process_select_application("employment")
    richer = dict(MOBILITY, remaining=20_000)
    with pytest.raises(SAMError):
        # The SAM has no employment load key: its Digest Init (sent with the first digest
        # elements) is refused, so the session can never be closed.
        tm.process_opening(KeyRole.LOAD)
        tm.prepare_update_record("rights", 1, encode_record("employment.right", richer))
        tm.process_closing()
    assert path.read_bytes() == raw


def test_rights_refused_by_the_card_in_a_partner_debit_session(tmp_path: Path) -> None:
    tm, path = _manager(tmp_path)
    rights_before = CardImageStore(path).load().applications["employment"].records["rights"]
    tm.process_select_application("employment")
    tm.process_opening(KeyRole.DEBIT)
    richer = dict(MOBILITY, remaining=20_000)
    tm.prepare_update_record("rights", 1, encode_record("employment.right", richer))
    with pytest.raises(CardError) as refused:
        tm.process_closing()
    assert refused.value.sw == 0x6982
    after = CardImageStore(path).load().applications["employment"].records["rights"]
    assert after == rights_before


@pytest.mark.parametrize("application", ["plum", "cursus", "wallet"])
def test_partner_sam_opens_no_session_outside_employment(tmp_path: Path, application: str) -> None:
    tm, path = _manager(tmp_path)
    raw = path.read_bytes()
    tm.process_select_application(application)
    with pytest.raises(EngineError):
        tm.process_opening(KeyRole.DEBIT)
        tm.process_closing()
    assert path.read_bytes() == raw
