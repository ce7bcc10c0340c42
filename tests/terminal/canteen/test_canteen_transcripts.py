"""Whole-session transcripts of a canteen meal (Cursus aid, then the wallet), regular and Rev 3.2
extended mode: every card and SAM APDU checked against Calypso framing as Eclipse Keyple builds
it (docs/calypso-conformance.md lists the classes). The expected bytes are written from those
facts, never recorded from our own output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from canteen_kit import TillRig, split_meal_card

from card_schema.crypto import KeyRole
from card_schema.layout import CARD_LAYOUT
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from terminal.canteen.reasons import MealReason


@dataclass
class Recorder:
    """The emulated chip between reader and emulator, every command and answer kept."""

    chip: object
    exchanges: list[tuple[bytes, bytes]] = field(default_factory=list)

    def power_on(self) -> bytes:
        return self.chip.power_on()  # type: ignore[attr-defined, no-any-return]

    def power_off(self) -> None:
        self.chip.power_off()  # type: ignore[attr-defined]

    def transmit(self, apdu: bytes) -> bytes:
        response: bytes = self.chip.transmit(apdu)  # type: ignore[attr-defined]
        self.exchanges.append((bytes(apdu), response))
        return response


@pytest.mark.parametrize("mode", ["regular", "extended"])
def test_split_meal_transcript(tmp_path: Path, mode: str) -> None:
    extended = mode == "extended"
    size, (mac_size, sig_size) = (8, (10, 6)) if extended else (4, (5, 3))
    rig = TillRig(tmp_path, split_meal_card(tmp_path / "card.json"))
    card = Recorder(EmulatedCard(CardImageStore(rig.card_path), rev32_mode=extended))
    sam = Recorder(rig.sam)
    rig.card_reader.insert(card)  # type: ignore[arg-type]
    rig.sam_reader.remove()
    rig.sam_reader.insert(sam)  # type: ignore[arg-type]
    result = rig.till.serve()
    rig.close()
    assert result.reason is MealReason.SERVED

    opens = [c for c, _ in card.exchanges if c[1] == 0x8A]
    closes = [(c, r) for c, r in card.exchanges if c[1] == 0x8E]
    assert len(opens) == 2 and len(closes) == 2  # Cursus (aid + meal log), then the wallet
    for open_cmd in opens:
        # key index 3 (debit), no record read, P2 01 | 02; data challenge or 00 || challenge
        assert open_cmd[2:4] == bytes([0x03, 0x02 if extended else 0x01])
        assert open_cmd[4] == (9 if extended else 4) and open_cmd[-1] == 0x00
    for close_cmd, _ in closes:
        assert close_cmd[4] == size and len(close_cmd) == 6 + size
    (_, aid_close), (_, wallet_close) = closes
    assert len(aid_close) == size + 2  # no SV operation: no postponed data
    assert wallet_close[0] == 1 + sig_size and len(wallet_close) == 1 + sig_size + size + 2
    # The aid: a Decrease of the canteen counter of Cursus' counters file (SFI 19).
    cursus = CARD_LAYOUT.application("cursus")
    decrease = next(c for c, _ in card.exchanges if c[1] == 0x30)
    assert decrease[3] == cursus.file("aid_counters").sfi << 3 and decrease[4] == 3
    # The wallet: SV Get in the session's mode, then SV Debit with the SAM's fields.
    sv_get = [c for c, _ in card.exchanges if c[1] == 0x7C][-1]
    assert sv_get == (bytes.fromhex("007C01093D") if extended else bytes.fromhex("007C00091E"))
    debit = next(c for c, _ in card.exchanges if c[1] == 0xBA)
    assert debit[4] == 15 + mac_size and debit[13:17] == rig.sam.serial
    # SAM, each session: Get Challenge, Select Diversifier, Digest Init; the wallet's SV Prepare
    # Debit (01 FF) and, after Digest Authenticate, SV Check of the postponed signature.
    ins = [c[1] for c, _ in sam.exchanges]
    assert ins == [
        0x84, 0x14, 0x8A, 0x8C, 0x8E, 0x2A, 0x82,
        0x84, 0x14, 0x8A, 0x8C, 0x54, 0x8C, 0x8E, 0x2A, 0x82, 0x58,
    ]  # fmt: skip
    commands = [c for c, _ in sam.exchanges]
    challenges = [c for c in commands if c[1] == 0x84]
    assert all(c == bytes([0x80, 0x84, 0x00, 0x00, size]) for c in challenges)
    inits = [c for c in commands if c[1] == 0x8A]
    assert all(c[2:4] == bytes([0x02 if extended else 0x00, 0xFF]) for c in inits)
    assert inits[0][5] == cursus.kif(KeyRole.DEBIT)  # each application its own KIF
    assert inits[1][5] == CARD_LAYOUT.application("wallet").kif(KeyRole.DEBIT)
    prepare = next(c for c in commands if c[1] == 0x54)
    assert prepare[2:4] == b"\x01\xff" and prepare[5:9] == sv_get[1:5]
    assert (
        commands[-1] == bytes([0x80, 0x58, 0x00, 0x00, sig_size]) + wallet_close[1 : 1 + sig_size]
    )
