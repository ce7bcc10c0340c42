"""Golden-frame review follow-ups (``tests/data/calypso/``, read from Eclipse Keyple).

1. PSO Compute Signature in full-serial mode ``68`` keeps 8 bytes of the message for the SAM's
   trace data (the reference's offset bound ``length·8 − 64``; ``48`` keeps 7), on the engine
   and on the emulated SAM; PSO Verify Signature has the golden frames.
2. The SAM product, class byte and digest buffer come from every ATR subtype as the reference's
   table says (``D0``..``D7`` are S1Dx; an unknown SAM has digest buffer 0).
4. SV outside a secure session: Keyple's four out-of-session transcripts replay on the engine
   (with the HEAD's Le ``03``/``06``) and run in their shape on the emulated card and SAM.
5. SV Get refusals: ``6D00``, ``6A81``, ``6A86`` as Keyple's status table.
6. Read Record(s) with the exact Le the layout gives.
7. Read Record Multiple, card Get Challenge, Get Data FCI: golden builders, emulated answers.

(Application type ``00`` in the startup information is checked by ``test_golden_frames.py``.)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from enginekit import SAM_SERIAL, demo_keys

from card_schema.calypso import SAMInfo
from card_schema.traceability import SIGNATURE_SIZE
from firmware_host.readers.inprocess import InProcessReader
from hardware.sam.emulator import EmulatedSAM
from terminal.engine.errors import SAMError
from terminal.engine.sam import (
    PSO_RECORD_MAX,
    TRACE_KIF,
    TRACE_KVC,
    SAMResource,
    pso_compute_signature_apdu,
    pso_verify_signature_apdu,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "calypso"


@cache
def document(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def golden(name: str, entry: str) -> dict[str, Any]:
    return next(e for e in document(name)["entries"] if e["name"] == entry)


def unhex(text: str) -> bytes:
    return bytes.fromhex(text)


# -- 1. PSO Compute / Verify Signature -------------------------------------------------------------


def test_engine_builds_the_golden_pso_compute_signature_full_serial() -> None:
    e = golden("sam_pso.json", "pso_compute_signature_traceability_full")
    f = e["apdu_fields"]
    apdu = pso_compute_signature_apdu(
        int(f["kif"], 16),
        int(f["kvc"], 16),
        f["trace_offset_bits"],
        unhex(f["message"]),
        mode=int(f["op_mode"], 16),
    )
    assert apdu.hex().upper() == e["apdu"]


def test_full_serial_mode_keeps_8_bytes_for_the_trace_and_truncated_mode_7() -> None:
    message = unhex(
        golden("sam_pso.json", "pso_compute_signature_traceability_full")["apdu_fields"]["message"]
    )
    last_full = len(message) * 8 - 64
    pso_compute_signature_apdu(1, 2, last_full, message, mode=0x68)
    with pytest.raises(ValueError, match="offset"):
        pso_compute_signature_apdu(1, 2, last_full + 1, message, mode=0x68)
    pso_compute_signature_apdu(1, 2, len(message) * 8 - 56, message, mode=0x48)
    with pytest.raises(ValueError, match="offset"):
        pso_compute_signature_apdu(1, 2, len(message) * 8 - 55, message, mode=0x48)
    with pytest.raises(ValueError, match="traceability"):
        pso_compute_signature_apdu(1, 2, 0, message, mode=0x88)


@pytest.mark.parametrize(
    ("name", "offset"),
    [("pso_verify_signature_default", None), ("pso_verify_signature_traceability_full", 1)],
)
def test_engine_builds_the_golden_pso_verify_signature(name: str, offset: int | None) -> None:
    e = golden("sam_pso.json", name)
    f = e["apdu_fields"]
    if offset is not None:
        assert f["trace_offset_bits"] == offset
    apdu = pso_verify_signature_apdu(
        int(f["kif"], 16), int(f["kvc"], 16), unhex(f["message"]), unhex(f["signature"]), offset
    )
    assert apdu.hex().upper() == e["apdu"]


@pytest.fixture
def sam(tmp_path: Path) -> EmulatedSAM:
    chip = EmulatedSAM(demo_keys(), SAM_SERIAL, counter_file=tmp_path / "sam.json")
    chip.power_on()
    return chip


def xfer(chip: EmulatedSAM, apdu: bytes) -> tuple[bytes, bytes]:
    raw = chip.transmit(apdu)
    return raw[:-2], raw[-2:]


def test_emulated_sam_writes_serial_and_counter_into_the_8_trace_bytes(sam: EmulatedSAM) -> None:
    record = b"record to sign"
    reserved = bytes(7) + b"\xa5"  # the 8th byte is the terminal's: the SAM leaves it
    message = b"\x01" + record[:4] + reserved + record[4:]
    counter = sam.counter
    data, sw = xfer(sam, pso_compute_signature_apdu(TRACE_KIF, TRACE_KVC, 5 * 8, message))
    assert sw == b"\x90\x00"
    assert len(data) == len(message) + SIGNATURE_SIZE
    completed = data[: len(message)]
    assert completed[:5] == message[:5]
    assert completed[5:9] == SAM_SERIAL
    assert int.from_bytes(completed[9:12], "big") == counter
    assert completed[12:] == message[12:]  # the 8th trace byte and the rest as sent
    # The SAM's own PSO Verify Signature accepts the completed message, and not a changed one.
    signature = data[len(message) :]
    _, sw = xfer(sam, pso_verify_signature_apdu(TRACE_KIF, TRACE_KVC, completed, signature, 40))
    assert sw == b"\x90\x00"
    changed = completed[:-1] + bytes([completed[-1] ^ 1])
    _, sw = xfer(sam, pso_verify_signature_apdu(TRACE_KIF, TRACE_KVC, changed, signature, 40))
    assert sw == b"\x69\x88"


def test_emulated_sam_refuses_a_full_serial_message_with_only_7_trace_bytes(
    sam: EmulatedSAM,
) -> None:
    message = b"abcdefghij"
    offset = len(message) * 8 - 56  # fits the truncated mode's bound, not the full-serial one
    apdu = bytes([0x80, 0x2A, 0x9E, 0x9A, 6 + len(message), 0xFF, TRACE_KIF, TRACE_KVC, 0x68])
    apdu += offset.to_bytes(2, "big") + message
    _, sw = xfer(sam, apdu)
    assert sw == b"\x6a\x80"


def test_engine_signature_through_the_emulated_sam_verifies_on_it(sam: EmulatedSAM) -> None:
    resource = SAMResource(InProcessReader(sam, name="sam"))
    record = bytes(range(PSO_RECORD_MAX))  # the longest record still fits the 206-byte message
    signed = resource.compute_signature(record)
    assert signed.sam_serial == SAM_SERIAL
    message = record + SAM_SERIAL + signed.counter.to_bytes(3, "big") + b"\x00"
    resource.verify_signature(message, signed.signature, len(record) * 8)
    with pytest.raises(SAMError):
        resource.verify_signature(b"\xff" + message[1:], signed.signature, len(record) * 8)
    with pytest.raises(ValueError):
        resource.compute_signature(record + b"\x00")


# -- 2. SAM products from the ATR subtype ----------------------------------------------------------

PRODUCTS = {
    "SAM_C1": "SAM C1",
    "SAM_S1DX": "SAM S1Dx",
    "SAM_S1E1": "SAM S1E1",
    "UNKNOWN": "unknown",
}


def expected_product(subtype: int) -> str:
    table = document("sam_atr.json")["layout"]["product_from_subtype"]
    if subtype == 0xC1:
        return "SAM_C1"
    if 0xD0 <= subtype <= 0xD7:
        assert "D0..D7" in table
        return "SAM_S1DX"
    if subtype == 0xE1:
        return "SAM_S1E1"
    return "UNKNOWN"


@pytest.mark.parametrize("subtype", range(256))
def test_sam_product_class_and_digest_buffer_follow_the_reference_table(subtype: int) -> None:
    layout = document("sam_atr.json")["layout"]
    product = expected_product(subtype)
    info = SAMInfo(0x48, 0x80, subtype, 0x20, 0x50, 0x17, bytes(4))
    assert info.product == PRODUCTS[product]
    assert info.digest_buffer == layout["max_digest_data_length"][product]
    assert info.class_byte == (0x94 if product == "SAM_S1DX" else 0x80)
    assert info.extended_mode is (product in layout["extended_mode_products"])


# -- 4. SV outside a secure session ----------------------------------------------------------------


def transcript(name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        t for t in document("transcripts.json")["transcripts"] if t["name"] == name
    )
    return found


class ScriptedChip:
    """Answers each expected APDU (in order) with its golden response; anything else 6D00."""

    def __init__(self, atr: bytes, steps: list[dict[str, str]]) -> None:
        self.atr = atr
        self.steps = list(steps)
        self.received: list[str] = []

    def power_on(self) -> bytes:
        return self.atr

    def power_off(self) -> None:
        pass

    def transmit(self, apdu: bytes) -> bytes:
        self.received.append(apdu.hex().upper())
        if self.steps and self.steps[0]["apdu"] == self.received[-1]:
            return unhex(self.steps.pop(0)["response"])
        return b"\x6d\x00"


@pytest.mark.parametrize(
    ("operation", "head"),
    [
        ("sv_reload_regular", "sv_reload_regular_out_of_session_head"),
        ("sv_debit_regular", "sv_debit_regular_out_of_session_head"),
    ],
)
def test_engine_builds_the_golden_out_of_session_sv_command(operation: str, head: str) -> None:
    """Outside a session the SV command carries Le 03 (regular), as Keyple's encoder sends."""
    from terminal.engine import commands

    e = golden("card_sv.json", operation)
    f = e["apdu_fields"]
    body = unhex(e["apdu"])[5:]
    mac_size = 5
    partial_size = 11 if operation.startswith("sv_reload") else 8
    partial = unhex(e["apdu"])[1:2] + b"\x00\x00" + bytes([len(body)]) + b"\x00"
    partial += body[1:partial_size]
    prepared = unhex(f["p1p2_challenge"]) + unhex(f["challenge_byte"])
    prepared += f["sam_tnum"].to_bytes(3, "big") + body[-mac_size:]
    built = commands.sv_operation(partial, prepared, unhex(f["sam_id"]), in_session=False)
    assert built.hex().upper() == golden("card_sv.json", head)["apdu"]
    assert commands.sv_operation(partial, prepared, unhex(f["sam_id"])).hex().upper() == e["apdu"]


OUT_OF_SESSION = [
    "sv_reload_out_of_session_regular",
    "sv_debit_out_of_session_regular",
    "sv_reload_out_of_session_extended",
    "sv_debit_out_of_session_extended",
]


@pytest.mark.parametrize("name", OUT_OF_SESSION)
def test_engine_replays_keyple_out_of_session_sv_transcript(name: str) -> None:
    """SV Get, Select Diversifier, SV Prepare, the SV command (with the HEAD's Le), SV Check:
    Keyple's bytes in Keyple's order, card and SAM."""
    from card_schema.calypso import SessionMode
    from terminal.engine import commands

    script = transcript(name)
    mode = SessionMode(script["mode"])
    card_steps = [s for s in script["steps"] if s["device"] == "card"]
    sam_steps = [s for s in script["steps"] if s["device"] == "sam"]
    le = "03" if mode is SessionMode.REGULAR else "06"
    card_steps[1] = {**card_steps[1], "apdu": card_steps[1]["apdu"] + le}  # HEAD's Le
    card = ScriptedChip(b"\x3b", card_steps)
    chip = ScriptedChip(unhex(script["sam_atr"]), sam_steps)
    sam = SAMResource(InProcessReader(chip, name="golden-sam"))
    debit = "debit" in name

    sv_get = commands.sv_get(debit, mode)
    raw = card.transmit(sv_get)
    assert raw[-2:] == b"\x90\x00"
    sam.select_diversifier(unhex("0000000011223344"))
    # The partial command as the SAM frame holds it (Keyple's values: date, amount, KVC...).
    prepare_apdu = unhex(sam_steps[1]["apdu"])
    partial = prepare_apdu[5 + 4 + len(raw) :]
    prepared = sam.sv_prepare(commands.sv_get_header(sv_get), raw, partial)
    sam_id = unhex(script["sam_atr"])[12:16]
    command = commands.sv_operation(partial, prepared, sam_id, in_session=False)
    answer = card.transmit(command)
    assert answer[-2:] == b"\x90\x00"
    sam.sv_check(answer[:-2])
    assert card.received == [s["apdu"] for s in card_steps]
    assert chip.received == [s["apdu"] for s in sam_steps]


@pytest.mark.parametrize("name", OUT_OF_SESSION)
def test_out_of_session_sv_transcript_runs_on_the_emulated_card_and_sam(
    tmp_path: Path, name: str
) -> None:
    """Keyple's out-of-session SV reload and debit, in their frames' shapes, on the emulators:
    the card commits at once, answers its SV signature (Le 03/06) and the SAM's SV Check takes
    it; a replayed command is refused."""
    from enginekit import SERIAL, make_card

    from card_schema.calypso import SessionMode
    from card_schema.layout import CARD_LAYOUT
    from hardware.card.emulator import EmulatedCard
    from hardware.card.image import CardImageStore
    from terminal.engine import commands

    script = transcript(name)
    mode = SessionMode(script["mode"])
    debit = "debit" in name
    store = CardImageStore(tmp_path / "card.json")
    store.commit(make_card(sv_balance=1000))
    card = EmulatedCard(store, rev32_mode=mode is SessionMode.EXTENDED)
    card.power_on()
    chip = EmulatedSAM(demo_keys(), SAM_SERIAL, counter_file=tmp_path / "sam.json")
    sam = SAMResource(InProcessReader(chip, name="sam"))
    aid = CARD_LAYOUT.application("wallet").aid
    assert (
        card.transmit(b"\x00\xa4\x04\x00" + bytes([len(aid)]) + aid + b"\x00")[-2:] == b"\x90\x00"
    )
    card_steps = [s for s in script["steps"] if s["device"] == "card"]
    sv_get = commands.sv_get(debit, mode)
    assert sv_get.hex().upper() == card_steps[0]["apdu"]
    raw = card.transmit(sv_get)
    assert raw[-2:] == b"\x90\x00" and len(raw) == len(unhex(card_steps[0]["response"]))
    answer = commands.parse_sv_get(raw[:-2])
    sam.select_diversifier(SERIAL)
    partial = commands.sv_partial(
        0xBA if debit else 0xB8, 250, b"\x32\x10", b"\x10\x32", answer.kvc, mode
    )
    prepared = sam.sv_prepare(commands.sv_get_header(sv_get), raw, partial)
    command = commands.sv_operation(partial, prepared, SAM_SERIAL, in_session=False)
    assert command[-1] == (6 if mode is SessionMode.EXTENDED else 3)
    reply = card.transmit(command)
    assert reply[-2:] == b"\x90\x00" and len(reply) == 2 + command[-1]
    sam.sv_check(reply[:-2])
    assert card.transmit(command)[-2:] == b"\x69\x85"  # one operation per SV Get
    card.power_off()
    card.power_on()  # committed, not a session's working copy
    card.transmit(b"\x00\xa4\x04\x00" + bytes([len(aid)]) + aid + b"\x00")
    after = commands.parse_sv_get(card.transmit(commands.sv_get(debit, mode))[:-2])
    assert after.balance == (750 if debit else 1250)
    assert after.tnum == answer.tnum + 1


# -- 5. SV Get refusals ---------------------------------------------------------------------------


def test_emulated_card_refuses_sv_get_with_the_reference_status_words(tmp_path: Path) -> None:
    """``6D00`` without stored value, ``6A81`` for P2, ``6A86`` for an Le P2 does not give:
    words of Keyple's SV Get status table, on its own SV Get frames."""
    from enginekit import make_card

    from card_schema.layout import CARD_LAYOUT
    from hardware.card.emulator import EmulatedCard
    from hardware.card.image import CardImageStore

    words = golden("card_sv.json", "sv_get_reload_regular")["status_words"]["words"]
    reload_frame = unhex(golden("card_sv.json", "sv_get_reload_regular")["apdu"])
    debit_frame = unhex(golden("card_sv.json", "sv_get_debit_regular")["apdu"])
    store = CardImageStore(tmp_path / "card.json")
    store.commit(make_card(sv_balance=1000))
    card = EmulatedCard(store)
    card.power_on()

    def select(app: str) -> None:
        aid = CARD_LAYOUT.application(app).aid
        assert card.transmit(b"\x00\xa4\x04\x00" + bytes([len(aid)]) + aid + b"\x00")[-2:] == (
            b"\x90\x00"
        )

    def sw(apdu: bytes) -> str:
        return card.transmit(apdu)[-2:].hex().upper()

    select("plum")
    assert sw(reload_frame) == "6D00" and "6D00" in words
    select("wallet")
    assert sw(reload_frame[:3] + b"\x08" + reload_frame[4:]) == "6A81" and "6A81" in words
    assert sw(reload_frame[:3] + b"\x09" + reload_frame[4:]) == "6A86" and "6A86" in words
    assert sw(debit_frame[:3] + b"\x07" + debit_frame[4:]) == "6A86"
    assert sw(reload_frame) == "9000" and sw(debit_frame) == "9000"


# -- 6. Read Record with the exact Le ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "read_record_sfi7_rec1_le29",
        "read_record_sfi8_rec1_le29",
        "read_record_counters_sfi10_le34",
        "read_record_6b_two_counters",
        "read_records_sfi7_rec3_to_4",
        "read_records_sfi1_rec1_to_2",
    ],
)
def test_engine_builds_the_golden_read_record_with_its_le(name: str) -> None:
    from terminal.engine import commands

    e = golden("card_files.json", name)
    f = e["apdu_fields"]
    multiple = f["p2_low_bits"] == 5
    built = commands.read_records(f["sfi"], f["record"], multiple=multiple, le=f["le"])
    assert built.hex().upper() == e["apdu"]


def test_read_records_le_is_the_golden_answer_length() -> None:
    from terminal.engine import commands

    assert golden("card_files.json", "read_records_sfi7_rec3_to_4")["apdu_fields"]["le"] == (
        commands.read_records_le(29, 2)
    )
    assert golden("card_files.json", "read_records_sfi1_rec1_to_2")["apdu_fields"]["le"] == (
        commands.read_records_le(1, 2)
    )
    assert commands.read_records_le(29, 9) == 0  # 279 bytes: Le 00


def test_engine_reads_with_the_exact_le_on_the_emulated_card(tmp_path: Path) -> None:
    """The selection's reads: the one-record environment by Read Record Le 1D (Keyple's frame
    for SFI 7 record 1), the 3-record event log by Read Records Le 3·31; the image gets both."""
    from enginekit import Rig, make_card

    from terminal.engine import CardSelection, select_card

    rig = Rig(tmp_path)
    image = make_card(carnet_trips=5)
    rig.personalise(image)
    sent: list[bytes] = []
    transmit = rig.card.transmit

    def logging_transmit(apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return transmit(apdu)

    rig.card.transmit = logging_transmit  # type: ignore[method-assign]
    rig.present()
    card = select_card(rig.reader, CardSelection("plum", reads=("environment", "events")))
    reads = [a.hex().upper() for a in sent if a[1] == 0xB2]
    assert reads == [golden("card_files.json", "read_record_sfi7_rec1_le29")["apdu"], "00B201455D"]
    plum = card.application("plum")
    assert plum.record("environment") == image.applications["plum"].records["environment"][0]
    assert plum.file_records("events") == image.applications["plum"].records["events"]


# -- 7. Read Record Multiple, card Get Challenge, Get Data FCI ---------------------------------


@pytest.mark.parametrize(
    "name", ["read_record_multiple_rec1_offset3_len1", "read_record_multiple_rec5_offset3_len1"]
)
def test_engine_builds_the_golden_read_record_multiple(name: str) -> None:
    from terminal.engine import commands

    e = golden("card_files.json", name)
    f = e["apdu_fields"]
    built = commands.read_record_multiple(f["sfi"], f["record"], f["offset"], f["length"])
    assert built.hex().upper() == e["apdu"]


def test_engine_builds_the_golden_get_challenge_and_get_data_fci() -> None:
    from terminal.engine import commands

    assert (
        commands.get_challenge().hex().upper() == golden("card_files.json", "get_challenge")["apdu"]
    )
    assert (
        commands.get_data_fci().hex().upper() == golden("card_files.json", "get_data_fci")["apdu"]
    )


@pytest.fixture
def plum_card(tmp_path: Path) -> Any:
    from enginekit import make_card

    from card_schema.layout import CARD_LAYOUT
    from hardware.card.emulator import EmulatedCard
    from hardware.card.image import CardImageStore

    store = CardImageStore(tmp_path / "card.json")
    image = make_card(carnet_trips=5)
    store.commit(image)
    card = EmulatedCard(store)
    card.power_on()
    aid = CARD_LAYOUT.application("plum").aid
    fci = card.transmit(b"\x00\xa4\x04\x00" + bytes([len(aid)]) + aid + b"\x00")
    assert fci[-2:] == b"\x90\x00"
    return card, image, fci[:-2]


def test_emulated_card_answers_read_record_multiple_in_the_golden_shape(plum_card: Any) -> None:
    """Keyple's frame shape on our event log (SFI 8, 3 records): one byte at offset 3 of each
    record from record 1; with a short Le, ``6200`` and the records that fit."""
    from terminal.engine import commands

    card, image, _ = plum_card
    events = image.applications["plum"].records["events"]
    e = golden("card_files.json", "read_record_multiple_rec1_offset3_len1")
    frame = unhex(e["apdu"])
    frame = frame[:3] + bytes([(8 << 3) | 5]) + frame[4:]  # our event log is SFI 8
    raw = card.transmit(frame)
    assert raw == b"".join(r[3:4] for r in events) + b"\x90\x00"
    short = commands.read_record_multiple(8, 1, 3, 1)[:-1] + b"\x02"
    assert card.transmit(short) == events[0][3:4] + events[1][3:4] + bytes.fromhex("6200")
    assert "6200" in e["response"][-4:]
    assert card.transmit(commands.read_record_multiple(8, 1, 28, 2))[-2:] == b"\x6a\x80"


def test_emulated_card_answers_get_challenge_and_get_data_fci_as_the_golden(
    plum_card: Any,
) -> None:
    from terminal.engine import commands

    card, _, fci = plum_card
    challenge = card.transmit(commands.get_challenge())
    want = golden("card_files.json", "get_challenge")["response"]
    assert challenge[-2:] == b"\x90\x00" and len(challenge) == len(unhex(want))
    assert card.transmit(commands.get_challenge()) != challenge  # a fresh one each time
    assert card.transmit(unhex("0084000004"))[-2:] == b"\x67\x00"  # always 8 bytes
    assert card.transmit(commands.get_data_fci()) == fci + b"\x90\x00"
    assert (
        card.transmit(commands.get_data_fci())[:1]
        == unhex(golden("card_files.json", "get_data_fci")["response"])[:1]
    )
