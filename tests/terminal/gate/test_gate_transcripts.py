"""Whole-session transcripts at the gate, in regular and Rev 3.2 extended mode.

Every APDU the gate sends to the card and to the SAM is recorded, then checked command by
command against Calypso Rev 3 framing as Eclipse Keyple's open-source terminal builds it
(``CommandOpenSecureSession``, ``CommandCloseSecureSession``; legacy SAM ``CommandGetChallenge``,
``CommandSelectDiversifier``, ``CommandDigestInit``, ``CommandDigestUpdateMultiple``,
``CommandDigestClose``, ``CommandDigestAuthenticate``, ``CommandPsoComputeSignature``; facts listed
in docs/calypso-conformance.md). The expected bytes are written from those facts, never recorded
from our own output. The mode is the card's: its startup information declares the Rev 3.2 mode or
not, and the SAM C1's ATR allows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from enginekit import SERIAL, make_card
from gatekit import GateRig, build_gate

from card_schema.crypto import KeyRole
from hardware.card.emulator import EmulatedCard
from hardware.sam.emulator import EmulatedSAM
from terminal.gate import TapOutcome


@dataclass
class Recorder:
    """An emulated chip between the reader and the emulator: every command and answer kept."""

    chip: EmulatedCard | EmulatedSAM
    exchanges: list[tuple[bytes, bytes]] = field(default_factory=list)

    def power_on(self) -> bytes:
        return self.chip.power_on()

    def power_off(self) -> None:
        self.chip.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        response = self.chip.transmit(apdu)
        self.exchanges.append((bytes(apdu), response))
        return response


@dataclass
class Transcript:
    card: list[tuple[bytes, bytes]]
    sam: list[tuple[bytes, bytes]]


@pytest.fixture(params=["regular", "extended"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gate_rig(tmp_path: Path) -> Iterator[GateRig]:
    rig = build_gate(tmp_path)
    try:
        yield rig
    finally:
        rig.close()


def tap(gate_rig: GateRig, extended: bool) -> tuple[Transcript, TapOutcome]:
    rig = gate_rig.rig
    rig.card.rev32_mode = extended
    card, sam = Recorder(rig.card), Recorder(rig.sam)
    rig.reader.remove()
    rig.reader.insert(card)  # type: ignore[arg-type]
    rig.sam_reader.remove()
    rig.sam_reader.insert(sam)  # type: ignore[arg-type]
    result = gate_rig.gate.on_card()
    return Transcript(card.exchanges, sam.exchanges), result.outcome


def assert_session_framing(t: Transcript, extended: bool, *, record_sfi: int) -> None:
    """The secure session part of a transcript, card and SAM, in the given mode."""
    size = 8 if extended else 4
    ok = b"\x90\x00"
    opens = [(c, r) for c, r in t.card if c[1] == 0x8A]
    closes = [(c, r) for c, r in t.card if c[1] == 0x8E]
    assert len(opens) == 1 and len(closes) == 1
    (open_cmd, open_answer), (close_cmd, close_answer) = opens[0], closes[0]
    # Open Secure Session: 00 8A, P1 = record 1 * 8 + key index 3 (debit), P2 = SFI * 8 + 1|2,
    # data = challenge (4) or 00 || challenge (8), Le 00.
    assert open_cmd[:4] == bytes([0x00, 0x8A, 1 * 8 + 3, record_sfi * 8 + (2 if extended else 1)])
    challenge = open_cmd[5:-1]
    if extended:
        assert open_cmd[4] == 9 and challenge[0] == 0x00 and len(challenge) == 9
        challenge = challenge[1:]
    else:
        assert open_cmd[4] == 4 and len(challenge) == 4
    assert open_cmd[-1] == 0x00
    # Answer: counter (3) || random (1|5) || ratification || KIF || KVC || length || record.
    data = open_answer[:-2]
    r = 3 + (5 if extended else 1)
    assert open_answer[-2:] == ok
    assert data[r + 1] == KeyRole.DEBIT.kif and data[r + 3] == 29 and len(data) == r + 4 + 29
    # Close Secure Session: 00 8E 80 (ratified at once, the reference's default without its
    # ratification mechanism) 00 Lc=4|8 signature Le 00.
    assert close_cmd[:5] == bytes([0x00, 0x8E, 0x80, 0x00, size]) and close_cmd[-1] == 0x00
    assert len(close_cmd) == 6 + size
    assert len(close_answer) == size + 2 and close_answer[-2:] == ok
    # SAM: Get Challenge (Le 04|08) before the card's open; then Select Diversifier (the serial
    # alone), Digest Init (P1 00|02, P2 FF, KIF || KVC || open answer), Digest Update Multiple,
    # Digest Close (Le 04|08), PSO Compute Signature, Digest Authenticate (the card's signature).
    sam = [c for c, _ in t.sam]
    assert [c[1] for c in sam] == [0x84, 0x14, 0x8A, 0x8C, 0x8E, 0x2A, 0x82]
    assert sam[0] == bytes([0x80, 0x84, 0x00, 0x00, size])
    assert t.sam[0][1][:-2] == challenge
    assert sam[1] == bytes([0x80, 0x14, 0x00, 0x00, 0x08]) + SERIAL
    init = bytes([data[r + 1], data[r + 2]]) + data
    assert sam[2] == bytes([0x80, 0x8A, 0x02 if extended else 0x00, 0xFF, len(init)]) + init
    assert sam[3][:4] == bytes([0x80, 0x8C, 0x80, 0x00])
    assert sam[4] == bytes([0x80, 0x8E, 0x00, 0x00, size])
    assert t.sam[4][1][:-2] == close_cmd[5 : 5 + size]  # the SAM's signature went to the card
    assert sam[5][:4] == bytes([0x80, 0x2A, 0x9E, 0x9A]) and sam[5][5:9] == b"\xff\x2e\x01\x68"
    assert sam[6] == bytes([0x80, 0x82, 0x00, 0x00, size]) + close_answer[:-2]
    assert all(resp[-2:] == ok for _, resp in t.sam)


def digested_elements(t: Transcript) -> list[bytes]:
    """The elements of the Digest Update Multiple (``length || element``, repeated)."""
    data = next(c for c, _ in t.sam if c[1] == 0x8C)[5:]
    elements, i = [], 0
    while i < len(data):
        elements.append(data[i + 1 : i + 1 + data[i]])
        i += 1 + data[i]
    return elements


def test_carnet_trip_transcript(gate_rig: GateRig, mode: str) -> None:
    extended = mode == "extended"
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    t, outcome = tap(gate_rig, extended)
    assert outcome is TapOutcome.COMMITTED
    ins = [c[1] for c, _ in t.card]
    # Select, 4 Read Records, Open (reads the counters), Decrease, Append, Close: 9 APDUs.
    assert ins == [0xA4, 0xB2, 0xB2, 0xB2, 0xB2, 0x8A, 0x30, 0xE2, 0x8E]
    assert t.card[0][0] == bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"
    assert_session_framing(t, extended, record_sfi=0x19)
    decrease, append = t.card[6][0], t.card[7][0]
    assert decrease == bytes.fromhex("003001C80300000100")  # counter 1 of SFI 19, minus 1, Le 00
    assert append[:5] == bytes.fromhex("00E200401D")  # Append Record, events (SFI 08), 29 bytes
    # The digest takes the Decrease (a case 4 command) without its Le, and both answers.
    assert digested_elements(t) == [
        decrease[:-1],
        t.card[6][1],
        append,
        t.card[7][1],
    ]
    assert gate_rig.counter(1) == 4


def test_season_pass_transcript(gate_rig: GateRig, mode: str) -> None:
    extended = mode == "extended"
    gate_rig.rig.personalise(make_card(monthly_pass=True))
    t, outcome = tap(gate_rig, extended)
    assert outcome is TapOutcome.COMMITTED
    ins = [c[1] for c, _ in t.card]
    # Select, 4 Read Records, Open, Append (the validation event), Close.
    assert ins == [0xA4, 0xB2, 0xB2, 0xB2, 0xB2, 0x8A, 0xE2, 0x8E]
    assert_session_framing(t, extended, record_sfi=0x19)
    append = t.card[6][0]
    assert digested_elements(t) == [append, t.card[6][1]]  # case 3: digested whole


def test_pay_as_you_go_sv_debit_transcript(gate_rig: GateRig, mode: str) -> None:
    """The wallet session of a pay-as-you-go ride: SV Get, SV Prepare Debit, SV Debit, the SV
    signature postponed to the close answer, SV Check after Digest Authenticate."""
    from test_gate_payg import BALANCE, FARE

    extended = mode == "extended"
    gate_rig.rig.personalise(make_card(sv_balance=BALANCE))
    t, outcome = tap(gate_rig, extended)
    assert outcome is TapOutcome.COMMITTED
    size, (mac_size, sig_size) = (8, (10, 6)) if extended else (4, (5, 3))
    sv_gets = [(c, r) for c, r in t.card if c[1] == 0x7C]
    (sv_get_cmd, sv_get_answer) = sv_gets[-1]  # the one of the wallet session
    # SV Get: P1 01 (Rev 3.2 layout) or 00, P2 09 (debit log), Le exact: 3D or 1E.
    assert sv_get_cmd == (bytes.fromhex("007C01093D") if extended else bytes.fromhex("007C00091E"))
    assert len(sv_get_answer) == sv_get_cmd[4] + 2
    (debit_cmd, debit_answer) = next((c, r) for c, r in t.card if c[1] == 0xBA)
    # SV Debit: P1 P2 = SAM challenge[0..1]; Lc 14 or 19; data: challenge[2] || amount (2,
    # negative) || date || time || KVC || SAM id || SAM tnum || MAC; no Le in a session.
    assert debit_cmd[4] == 15 + mac_size and len(debit_cmd) == 5 + debit_cmd[4]
    assert int.from_bytes(debit_cmd[6:8], "big", signed=True) == -FARE
    assert debit_cmd[13:17] == gate_rig.rig.sam.serial
    assert debit_answer == b"\x90\x00"
    (_, close_answer) = [(c, r) for c, r in t.card if c[1] == 0x8E][-1]
    assert close_answer[0] == 1 + sig_size and len(close_answer) == 1 + sig_size + size + 2
    # SAM, wallet session: Get Challenge, Select Diversifier, Digest Init, Digest Update
    # Multiple (the SV Get), SV Prepare Debit, Digest Update Multiple (the SV Debit), Digest
    # Close, PSO Compute Signature, Digest Authenticate, SV Check.
    sam = [c for c, _ in t.sam]
    wallet = sam[[i for i, c in enumerate(sam) if c[1] == 0x84][-1] :]
    assert [c[1] for c in wallet] == [0x84, 0x14, 0x8A, 0x8C, 0x54, 0x8C, 0x8E, 0x2A, 0x82, 0x58]
    prepare = wallet[4]
    header = bytes([0x7C, sv_get_cmd[2], 0x09, sv_get_cmd[4]])
    assert prepare[:4] == bytes([0x80, 0x54, 0x01, 0xFF])
    assert (
        prepare[5:]
        == header + sv_get_answer + bytes([0xBA, 0, 0, debit_cmd[4]]) + bytes([0]) + debit_cmd[6:13]
    )
    prepared = next(r for c, r in t.sam if c == prepare)[:-2]
    assert debit_cmd[2:4] + debit_cmd[5:6] == prepared[:3]  # the SAM challenge
    assert debit_cmd[17:20] == prepared[3:6] and debit_cmd[20:] == prepared[6:]
    assert wallet[-1] == bytes([0x80, 0x58, 0x00, 0x00, sig_size]) + close_answer[1 : 1 + sig_size]
