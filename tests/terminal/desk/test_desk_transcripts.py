"""Whole-job transcripts at the desk (personalisation, contracts, school aid, SV reload), in
regular and Rev 3.2 extended mode.

Every APDU the desk station sends to the card and to its SAM is recorded, then checked against
Calypso Rev 3 framing as Eclipse Keyple builds it (``CommandOpenSecureSession``,
``CommandCloseSecureSession``, ``CommandSvGet``, ``CommandSvReload``; legacy SAM
``CommandGetChallenge``, ``CommandSelectDiversifier``, ``CommandDigestInit``,
``CommandDigestClose``, ``CommandDigestAuthenticate``, ``CommandSvPrepareLoad``,
``CommandSvCheck``; facts in docs/calypso-conformance.md). The expected bytes are written from
those facts, never recorded from our own output. Load Card Key (``80 D8``) is ours (the desk SAM
holds no master key) and is only counted. The mode is the card's startup information.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskkit import DESK_ID, SAM_SERIAL, LiveBackend, blank_card, desk_sam, live_backend

from firmware_host.readers.inprocess import InProcessReader
from terminal.desk import DeskStation

pytestmark = pytest.mark.integration

OK = b"\x90\x00"

REQUEST: dict[str, Any] = {
    "applications": ["plum", "wallet", "cursus"],
    "contracts": [10, 2],
    "wallet_reload_cents": 2000,
    "school_aid": [
        {"purpose": "books", "amount_cents": 5500, "funder": "region", "school_year": "2025-2026"}
    ],
    "student": {"school_uai": "0801234G", "level": "premiere"},
}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    with live_backend(tmp_path_factory.mktemp("desk-transcript-backend")) as live:
        yield live


class RecordingReader(InProcessReader):
    """Keeps every command and answer it carries."""

    def __init__(self, chip: Any, name: str) -> None:
        super().__init__(chip, name)
        self.exchanges: list[tuple[bytes, bytes]] = []

    def _transmit_raw(self, apdu: bytes) -> bytes:
        response = super()._transmit_raw(apdu)
        self.exchanges.append((bytes(apdu), bytes(response)))
        return response


@pytest.mark.parametrize("extended", [False, True], ids=["regular", "extended"])
def test_desk_job_transcript_has_calypso_framing(
    backend: LiveBackend, tmp_path: Path, extended: bool
) -> None:
    backend.job(holder_id=backend.holder("Transcrit", "Guichet"), **REQUEST)
    card, store = blank_card(tmp_path)
    card.rev32_mode = extended
    serial = store.load().serial
    reader = RecordingReader(card, "desk")
    sam_reader = RecordingReader(desk_sam(), "sam")
    station = DeskStation(
        reader, sam_reader, backend.url, DESK_ID, backend.credential, card_timeout=0.2
    )
    outcome = station.process_next_job()
    assert outcome is not None and outcome.done, outcome
    assert store.load().applications["wallet"].sv_balance == 2000

    size = 8 if extended else 4
    cards, sams = reader.exchanges, sam_reader.exchanges
    assert all(r[-2:] in (OK, b"\x62\x83") for _, r in cards), [
        (c.hex(), r[-2:].hex()) for c, r in cards if r[-2:] != OK
    ]
    assert all(r[-2:] == OK for _, r in sams)

    # -- card: Open / Close Secure Session ----------------------------------------------------
    opens = [(c, r[:-2]) for c, r in cards if c[1] == 0x8A]
    closes = [(c, r[:-2]) for c, r in cards if c[1] == 0x8E and len(c) > 5]
    assert len(opens) == len(closes) >= 7  # perso x3, two contracts, aid, SV reload
    for command, answer in opens:
        assert command[0] == 0x00
        assert command[2] & 0x07 in (1, 2, 3)  # key index: issuer, load, debit
        assert command[3] & 0x07 == (2 if extended else 1)
        if extended:
            assert command[4] == 9 and command[5] == 0x00 and len(command) == 5 + 9 + 1
        else:
            assert command[4] == 4 and len(command) == 5 + 4 + 1
        assert command[-1] == 0x00
        # counter (3) || random (1|5) || ratification || KIF || KVC || length || record
        header = 3 + (5 if extended else 1) + 4
        assert len(answer) == header + answer[header - 1]
    for command, _ in closes:
        assert command[:4] in (b"\x00\x8e\x80\x00", b"\x00\x8e\x00\x00")
        assert command[4] == size and len(command) == 5 + size + 1 and command[-1] == 0x00

    # -- SAM: the session sequence ------------------------------------------------------------
    def sam_of(ins: int) -> list[tuple[bytes, bytes]]:
        return [(c, r[:-2]) for c, r in sams if c[1] == ins]

    challenges = sam_of(0x84)
    assert len(challenges) == len(opens)
    for (command, challenge), (open_command, _) in zip(challenges, opens, strict=True):
        assert command == bytes([0x80, 0x84, 0x00, 0x00, size])
        assert open_command[-1 - size : -1] == challenge  # the open carries the SAM's challenge
    for command, _ in sam_of(0x14):
        assert command == b"\x80\x14\x00\x00\x08" + serial
    inits = sam_of(0x8A)
    assert len(inits) == len(opens)
    for (command, _), (_, open_answer) in zip(inits, opens, strict=True):
        assert command[:4] == bytes([0x80, 0x8A, 0x02 if extended else 0x00, 0xFF])
        header = 3 + (5 if extended else 1) + 4
        kif, kvc = open_answer[header - 3], open_answer[header - 2]
        assert command[5:7] == bytes([kif, kvc]) and command[7:] == open_answer
    digest_closes = sam_of(0x8E)
    assert len(digest_closes) == len(closes)
    for (command, signature), (close_command, _) in zip(digest_closes, closes, strict=True):
        assert command == bytes([0x80, 0x8E, 0x00, 0x00, size])
        assert close_command[5 : 5 + size] == signature
    authenticates = sam_of(0x82)
    assert len(authenticates) == len(closes)
    for (command, _), (_, close_answer) in zip(authenticates, closes, strict=True):
        assert command[:5] == bytes([0x80, 0x82, 0x00, 0x00, size])
        assert command[5:] == close_answer[-size:]
    assert len(sam_of(0xD8)) >= 1  # Load Card Key: ours, the desk SAM's keys come wrapped

    # -- stored value: SV Get, SV Prepare Load, SV Reload, SV Check ---------------------------
    sv_gets = [(c, r) for c, r in cards if c[1] == 0x7C]
    reloads = [(c, r) for c, r in cards if c[1] == 0xB8]
    prepares = sam_of(0x56)
    checks = sam_of(0x58)
    assert len(reloads) == len(prepares) == len(checks) == 1 and sv_gets
    sv_get, sv_answer = sv_gets[-1]
    assert sv_get == (b"\x00\x7c\x01\x07\x3d" if extended else b"\x00\x7c\x00\x07\x21")
    prepare, prepared = prepares[0]
    assert prepare[:4] == b"\x80\x56\x01\xff"
    assert prepare[5 : 5 + 4 + len(sv_answer)] == sv_get[1:5] + sv_answer
    partial = prepare[5 + 4 + len(sv_answer) :]
    lc = 0x1C if extended else 0x17
    assert partial[:5] == bytes([0xB8, 0x00, 0x00, lc, 0x00]) and len(partial) == 15
    reload, reload_answer = reloads[0]
    assert reload[:4] == bytes([0x00, 0xB8]) + prepared[:2]
    assert reload[4] == lc and len(reload) == 5 + lc  # no Le in a session
    assert reload[5] == prepared[2] and reload[6:16] == partial[5:]
    assert reload[16:20] == SAM_SERIAL  # SAM id: the desk SAM's serial
    assert reload[20:23] == prepared[3:6] and reload[23:] == prepared[6:]
    assert len(prepared) == 6 + (10 if extended else 5)
    assert reload_answer == OK  # answer postponed to the close
    sv_close = next(a for c, a in closes if cards.index((c, a + OK)) > cards.index(reloads[0]))
    sv_signature = 6 if extended else 3
    assert sv_close[0] == 1 + sv_signature  # postponed data: length counting itself || SV sig
    assert (
        checks[0][0]
        == bytes([0x80, 0x58, 0x00, 0x00, sv_signature]) + sv_close[1 : 1 + sv_signature]
    )
