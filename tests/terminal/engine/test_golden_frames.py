"""Golden Calypso frames (``tests/data/calypso/``, read from Eclipse Keyple) against our code.

The frames were read from Keyple's public source, never recorded from this project
(``tests/data/calypso/README.md``). Checked here:

1. the data files hold well-formed frames with their source (repository, path, 40-hex commit);
2. ``card_schema.calypso`` parses the golden card and SAM ATRs and startup information as the
   reference does, and builds the same ATR bytes;
3. the engine's card builders (``terminal.engine.commands``) produce exactly the golden command
   bytes, and its parsers decode the golden answers to the golden meanings;
4. the engine's SAM resource (``terminal.engine.sam.SAMResource``) sends exactly the golden SAM
   commands and reads the golden answers (through an in-process reader whose chip answers the
   golden response);
5. the emulated card and SAM take commands of the golden shape and answer in the golden layout
   and lengths (cryptographic values differ; lengths and fixed fields do not), and refuse
   frames made wrong with the word the reference's status table gives;
6. the SAM side of one of Keyple's whole sessions (``transcripts.json``) is replayed byte for
   byte through the engine's SAM resource;
7. an SV debit in golden shapes runs on the emulated card and SAM, and its log has Calypso's
   19-byte layout;
8. the engine builds the golden SV Get, SV Prepare Debit, SV Debit and SV Check frames and
   parses the golden SV Get and Close answers.

Golden frames the engine does not match yet are not listed in the tables below; each table is
checked to name only entries that exist, so that a renamed entry cannot silently drop a check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from enginekit import SAM_SERIAL, SERIAL, demo_keys, make_card

from card_schema.calypso import (
    SessionMode,
    StartupInfo,
    card_atr,
    parse_card_atr,
    parse_sam_atr,
    sam_atr,
)
from card_schema.crypto import KeyRole
from card_schema.errors import SchemaError
from card_schema.layout import CARD_LAYOUT
from card_schema.records import decode_record, encode_record
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.sam.emulator import EmulatedSAM
from terminal.engine import commands
from terminal.engine.errors import SAMError
from terminal.engine.sam import SAMResource

DATA = Path(__file__).resolve().parents[2] / "data" / "calypso"
FILES = (
    "card_select.json",
    "card_files.json",
    "card_session.json",
    "card_sv.json",
    "sam_session.json",
    "sam_sv.json",
    "sam_pso.json",
    "sam_atr.json",
    "transcripts.json",
)
HEX = re.compile(r"^(?:[0-9A-F]{2})*$")
PLUM_DF = CARD_LAYOUT.application("plum").aid

Entry = dict[str, Any]


@cache
def document(name: str) -> dict[str, Any]:
    """One golden data file, parsed."""
    loaded: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return loaded


def entries(name: str) -> dict[str, Entry]:
    """The entries of one golden file, by name."""
    return {e["name"]: e for e in document(name)["entries"]}


def golden(name: str, entry: str) -> Entry:
    """One golden entry."""
    return entries(name)[entry]


def unhex(text: str) -> bytes:
    return bytes.fromhex(text)


def split_response(entry: Entry) -> tuple[bytes, bytes]:
    """Response data and status word of an entry."""
    raw = unhex(entry["response"])
    return raw[:-2], raw[-2:]


def mode_of(entry: Entry) -> SessionMode:
    return SessionMode.EXTENDED if entry["mode"] == "extended" else SessionMode.REGULAR


# -- 1. the data ---------------------------------------------------------------------------------


def all_sources() -> list[tuple[str, str, dict[str, Any]]]:
    found: list[tuple[str, str, dict[str, Any]]] = []

    def walk(file: str, where: str, node: Any) -> None:
        if isinstance(node, dict):
            for key in ("source", "response_source", "layout_source", "frames_source"):
                if key in node and isinstance(node[key], dict) and "repository" in node[key]:
                    found.append((file, f"{where}.{key}", node[key]))
            for key, value in node.items():
                walk(file, f"{where}.{key}", value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(file, f"{where}[{i}]", value)

    for file in FILES:
        walk(file, file, document(file))
    return found


def test_every_golden_fact_names_its_source() -> None:
    sources = all_sources()
    assert len(sources) > 100
    for file, where, source in sources:
        assert source["repository"].startswith("eclipse-keyple/"), where
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), where
        assert source["path"].endswith(".java"), where
        assert source["member"], where
        assert file in where


@pytest.mark.parametrize("file", FILES)
def test_golden_frames_are_well_formed(file: str) -> None:
    """Hex is upper case and whole bytes; Lc matches the data; the ISO case matches the length."""
    for entry in document(file)["entries"]:
        for key in ("apdu", "response"):
            if key in entry:
                assert HEX.match(entry[key]), (entry["name"], key)
        if "response" in entry:
            assert len(unhex(entry["response"])) >= 2, entry["name"]
        if "apdu" not in entry:
            continue
        apdu = unhex(entry["apdu"])
        case = entry["apdu_case"]
        expected = {1: 4, 2: 5, 3: 5 + apdu[4] if len(apdu) > 4 else -1}.get(
            case, 6 + apdu[4] if len(apdu) > 4 else -1
        )
        assert len(apdu) == expected, entry["name"]
        assert entry["mode"] in ("regular", "extended", "both"), entry["name"]
        assert entry["status_words"]["words"]["9000"], entry["name"]


# -- 2. ATRs and startup information -------------------------------------------------------------


def test_card_atr_golden_parses_and_builds_the_same_bytes() -> None:
    atr = document("card_select.json")["card_atr"][0]
    fields = atr["fields"]
    info = parse_card_atr(unhex(atr["atr"]))
    assert info.startup_without_buffer == unhex(fields["startup_info_bytes_1_to_6"])
    assert info.serial_low == unhex(fields["serial_low_4"])
    # Any buffer index: the ATR carries the startup information without it.
    six = unhex(fields["startup_info_bytes_1_to_6"])
    startup = StartupInfo(0x06, *six)
    assert card_atr(startup, unhex(fields["serial"])) == unhex(atr["atr"])
    assert len(unhex(atr["atr"])) == fields["length"]


def test_card_atr_of_another_length_is_refused() -> None:
    bad = next(a for a in document("card_select.json")["card_atr"] if a["name"].endswith("length"))
    with pytest.raises(SchemaError):
        parse_card_atr(unhex(bad["atr"]))


STARTUP_CASES = [c["name"] for c in document("card_select.json")["startup_info_cases"]]
STARTUP_NOT_CHECKED_HERE: set[str] = set()  # every case is checked


@pytest.mark.parametrize("case", [c for c in STARTUP_CASES if c not in STARTUP_NOT_CHECKED_HERE])
def test_startup_information_is_accepted_or_refused_as_the_reference_does(case: str) -> None:
    spec = next(c for c in document("card_select.json")["startup_info_cases"] if c["name"] == case)
    expected = spec["expected"]
    if not expected["accepted"]:
        with pytest.raises(SchemaError):
            StartupInfo.from_bytes(unhex(spec["startup_info"]))
        return
    info = StartupInfo.from_bytes(unhex(spec["startup_info"]))
    assert info.to_bytes() == unhex(spec["startup_info"])
    if "session_buffer_bytes" in expected:
        assert info.session_buffer_bytes == expected["session_buffer_bytes"]
    if "stored_value" in expected:
        assert info.stored_value is expected["stored_value"]
    if "extended_mode" in expected:
        assert info.rev32_mode is expected["extended_mode"]
    if "ratification_command_required" in expected:
        assert info.ratification_command_required is expected["ratification_command_required"]


def test_session_buffer_sizes_are_the_reference_table() -> None:
    table = document("card_select.json")["buffer_size_table"]["index_to_bytes"]
    low, high = (
        int(x, 16)
        for x in document("card_select.json")["buffer_size_table"]["valid_index_range_rev3"]
    )
    for index in range(low, high + 1):
        raw = bytes([index, 0x3C, 0x20, 0x05, 0x14, 0x10, 0x01])
        assert StartupInfo.from_bytes(raw).session_buffer_bytes == table[index]


SAM_PRODUCTS = {"SAM_C1": "SAM C1", "HSM_C1": "HSM C1"}


@pytest.mark.parametrize("name", [a["name"] for a in document("sam_atr.json")["atrs"]])
def test_sam_atr_golden_parses_and_builds_the_same_bytes(name: str) -> None:
    spec = next(a for a in document("sam_atr.json")["atrs"] if a["name"] == name)
    fields = spec["fields"]
    info = parse_sam_atr(unhex(spec["atr"]))
    assert info.platform == int(fields["platform"], 16)
    assert info.application_type == int(fields["application_type"], 16)
    assert info.application_subtype == int(fields["application_subtype"], 16)
    assert info.software_issuer == int(fields["software_issuer"], 16)
    assert info.software_version == int(fields["software_version"], 16)
    assert info.software_revision == int(fields["software_revision"], 16)
    assert info.serial == unhex(fields["serial"])
    assert info.product == SAM_PRODUCTS[fields["product_type"]]
    if "max_digest_data_length" in fields:
        assert info.digest_buffer == fields["max_digest_data_length"]
        assert info.extended_mode is fields["extended_mode"]
        assert info.class_byte == int(fields["class_byte"], 16)
    assert sam_atr(info) == unhex(spec["atr"])


# -- 3. card builders and parsers ------------------------------------------------------------------

Builder = Callable[[dict[str, Any]], bytes]

CARD_BUILDERS: dict[str, tuple[str, Builder]] = {
    "select_application_1tic_ica1": (
        "card_select.json",
        lambda f: commands.select_application(unhex(f["aid"])),
    ),
    "read_record_sfi7_rec1_le00": (
        "card_files.json",
        lambda f: commands.read_records(f["sfi"], f["record"], multiple=False),
    ),
    "get_data_traceability": ("card_files.json", lambda f: commands.get_data_traceability()),
    "update_record_sfi8_rec1_29b": (
        "card_files.json",
        lambda f: commands.update_record(f["sfi"], f["record"], unhex(f["data"])),
    ),
    "update_record_sfi7_rec1_4b": (
        "card_files.json",
        lambda f: commands.update_record(f["sfi"], f["record"], unhex(f["data"])),
    ),
    "update_record_sfi1_rec1_1b": (
        "card_files.json",
        lambda f: commands.update_record(f["sfi"], f["record"], unhex(f["data"])),
    ),
    "append_record_sfi9_4b": (
        "card_files.json",
        lambda f: commands.append_record(f["sfi"], unhex(f["data"])),
    ),
    "decrease_sfi1_counter1_by_100": (
        "card_files.json",
        lambda f: commands.change_counter(False, f["sfi"], f["counter"], f["value"]),
    ),
    "increase_sfi1_counter1_by_100": (
        "card_files.json",
        lambda f: commands.change_counter(True, f["sfi"], f["counter"], f["value"]),
    ),
    "ratification": ("card_session.json", lambda f: commands.ratification()),
    "abort_secure_session": ("card_session.json", lambda f: commands.cancel_secure_session()),
}


def _open(entry_mode: SessionMode) -> Builder:
    return lambda f: commands.open_secure_session(
        f["key_index"], unhex(f["sam_challenge"]), f["sfi"], f["record"], mode=entry_mode
    )


def _close() -> Builder:
    return lambda f: commands.close_secure_session(
        unhex(f["terminal_signature"]), ratify_now=f["ratify_now"]
    )


for _name, _entry in entries("card_session.json").items():
    if _entry["command"] == "Open Secure Session":
        CARD_BUILDERS[_name] = ("card_session.json", _open(mode_of(_entry)))
    elif _entry["command"] == "Close Secure Session":
        CARD_BUILDERS[_name] = ("card_session.json", _close())


def test_builder_table_names_golden_entries() -> None:
    for name, (file, _) in CARD_BUILDERS.items():
        assert name in entries(file), name


@pytest.mark.parametrize("name", sorted(CARD_BUILDERS))
def test_engine_builds_the_golden_card_command(name: str) -> None:
    file, build = CARD_BUILDERS[name]
    entry = golden(file, name)
    assert build(entry["apdu_fields"]).hex().upper() == entry["apdu"]


FCI_ENTRIES = [
    name
    for name, e in entries("card_select.json").items()
    if e["response_fields"].get("product_type") == "PRIME_REVISION_3"
    and "df_name" in e["response_fields"]
]


@pytest.mark.parametrize("name", FCI_ENTRIES)
def test_engine_parses_the_golden_fci(name: str) -> None:
    entry = golden("card_select.json", name)
    fields = entry["response_fields"]
    data, _ = split_response(entry)
    fci = commands.parse_fci(data)
    assert fci.df_name == unhex(fields["df_name"])
    assert fci.serial == unhex(fields["serial"])
    assert fci.startup_info is not None
    assert fci.startup_info.to_bytes() == unhex(fields["startup_info"])
    if "session_buffer_bytes" in fields:
        assert fci.startup_info.session_buffer_bytes == fields["session_buffer_bytes"]
    if "stored_value" in fields:
        assert fci.startup_info.stored_value is fields["stored_value"]
        assert fci.startup_info.rev32_mode is fields["extended_mode"]
        assert (
            fci.startup_info.ratification_command_required
            is fields["ratification_command_required"]
        )


OPEN_ENTRIES = [
    n for n, e in entries("card_session.json").items() if e["command"].startswith("Open")
]


@pytest.mark.parametrize("name", OPEN_ENTRIES)
def test_engine_parses_the_golden_open_secure_session_answer(name: str) -> None:
    entry = golden("card_session.json", name)
    fields = entry["response_fields"]
    data, sw = split_response(entry)
    assert sw == b"\x90\x00"
    answer = commands.parse_open_secure_session(data, mode_of(entry))
    assert answer.transaction_counter == fields["transaction_counter"]
    assert answer.previous_session_ratified is fields["previous_session_ratified"]
    assert answer.kif == int(fields["kif"], 16)
    assert answer.kvc == int(fields["kvc"], 16)
    assert answer.record == unhex(fields["record"])
    assert answer.card_challenge == data[: 3 + len(unhex(fields["card_random"]))]
    if "manage_secure_session_authorized" in fields:
        assert answer.session_management_allowed is fields["manage_secure_session_authorized"]


READ_RECORDS_ENTRIES = ["read_records_sfi7_rec3_to_4", "read_records_sfi1_rec1_to_2"]


@pytest.mark.parametrize("name", READ_RECORDS_ENTRIES)
def test_engine_parses_the_golden_read_records_answer(name: str) -> None:
    entry = golden("card_files.json", name)
    data, _ = split_response(entry)
    expected = {r["number"]: unhex(r["data"]) for r in entry["response_fields"]["records"]}
    assert commands.parse_records(data) == expected


def test_case_4_commands_are_digested_without_le() -> None:
    entry = golden("sam_session.json", "digest_update_case4_command_without_le")
    fields = entry["apdu_fields"]
    assert commands.digest_form(unhex(fields["card_apdu"])) == unhex(fields["element"])
    # A command without Le (Update Record) and one without data (Read Record) stay whole.
    for name in ("update_record_sfi8_rec1_29b", "read_record_sfi7_rec1_le29"):
        apdu = unhex(golden("card_files.json", name)["apdu"])
        assert commands.digest_form(apdu) == apdu


# -- 4. SAM frames ---------------------------------------------------------------------------------


class GoldenChip:
    """A chip that answers one golden response to whatever it gets, and keeps what it got.

    Its ATR is the reference's SAM C1 ATR, so the resource sees a SAM C1.
    """

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.received: list[bytes] = []
        self.atr = unhex(document("sam_atr.json")["atrs"][0]["atr"])

    def power_on(self) -> bytes:
        return self.atr

    def power_off(self) -> None:
        pass

    def transmit(self, apdu: bytes) -> bytes:
        self.received.append(bytes(apdu))
        return self.response


SAMCall = Callable[[SAMResource, Entry], Any]


def _sam_challenge(sam: SAMResource, e: Entry) -> Any:
    return sam.get_challenge(mode_of(e))


def _sam_close(sam: SAMResource, e: Entry) -> Any:
    return sam.digest_close(mode_of(e))


def _sam_init(sam: SAMResource, e: Entry) -> Any:
    f = e["apdu_fields"]
    sam.digest_init(
        int(f["kif"], 16), int(f["kvc"], 16), unhex(f["open_response_data"]), mode_of(e)
    )


SAM_CALLS: dict[str, tuple[SAMCall, str | None]] = {
    "get_challenge_regular": (_sam_challenge, "challenge"),
    "get_challenge_extended": (_sam_challenge, "challenge"),
    "select_diversifier_card_serial": (
        lambda sam, e: sam.select_diversifier(unhex(e["apdu_fields"]["diversifier"])),
        None,
    ),
    "select_diversifier_sam_serial": (
        lambda sam, e: sam.select_diversifier(unhex(e["apdu_fields"]["diversifier"])),
        None,
    ),
    "digest_init_regular": (_sam_init, None),
    "digest_init_regular_with_record": (_sam_init, None),
    "digest_init_extended": (_sam_init, None),
    "digest_update_command": (
        lambda sam, e: sam.digest_update(unhex(e["apdu_fields"]["element"])),
        None,
    ),
    "digest_update_response": (
        lambda sam, e: sam.digest_update(unhex(e["apdu_fields"]["element"])),
        None,
    ),
    "digest_update_case4_command_without_le": (
        lambda sam, e: sam.digest_update(unhex(e["apdu_fields"]["element"])),
        None,
    ),
    "digest_update_case4_answer": (
        lambda sam, e: sam.digest_update(unhex(e["apdu_fields"]["element"])),
        None,
    ),
    "digest_update_multiple_read": (
        lambda sam, e: sam.digest_update_multiple([unhex(x) for x in e["apdu_fields"]["elements"]]),
        None,
    ),
    "digest_update_multiple_short": (
        lambda sam, e: sam.digest_update_multiple([unhex(x) for x in e["apdu_fields"]["elements"]]),
        None,
    ),
    "digest_close_regular": (_sam_close, "terminal_signature"),
    "digest_close_extended": (_sam_close, "terminal_signature"),
    "digest_authenticate_regular": (
        lambda sam, e: sam.digest_authenticate(unhex(e["apdu_fields"]["card_signature"])),
        None,
    ),
    "digest_authenticate_extended": (
        lambda sam, e: sam.digest_authenticate(unhex(e["apdu_fields"]["card_signature"])),
        None,
    ),
}


def test_sam_table_names_golden_entries() -> None:
    for name in SAM_CALLS:
        assert name in entries("sam_session.json"), name


@pytest.mark.parametrize("name", sorted(SAM_CALLS))
def test_engine_sends_the_golden_sam_command_and_reads_its_answer(name: str) -> None:
    entry = golden("sam_session.json", name)
    chip = GoldenChip(unhex(entry["response"]))
    sam = SAMResource(InProcessReader(chip, name="golden-sam"))
    call, result_field = SAM_CALLS[name]
    result = call(sam, entry)
    assert [a.hex().upper() for a in chip.received] == [entry["apdu"]]
    if result_field is not None:
        assert result == unhex(entry["response_fields"][result_field])


# -- 5. the emulated card and SAM ----------------------------------------------------------------
#
# The emulators get the golden frames literally where the card's files allow it (our PLUM
# environment is SFI 7 record 1 like Keyple's test file, Keyple's key index 3 is our debit
# key) and frames of the golden shape otherwise; their answers must have the golden layout.


@pytest.fixture
def chips(tmp_path: Path) -> tuple[EmulatedCard, EmulatedSAM]:
    store = CardImageStore(tmp_path / "card.json")
    store.commit(make_card(carnet_trips=5, monthly_pass=True, sv_balance=1000))
    card = EmulatedCard(store)
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL, counter_file=tmp_path / "sam.json")
    card.power_on()
    sam.power_on()
    return card, sam


def xfer(chip: EmulatedCard | EmulatedSAM, apdu: bytes | str) -> tuple[bytes, bytes]:
    """Send one APDU; return answer data and status word."""
    raw = chip.transmit(unhex(apdu) if isinstance(apdu, str) else apdu)
    return raw[:-2], raw[-2:]


def ok(chip: EmulatedCard | EmulatedSAM, apdu: bytes | str) -> bytes:
    data, sw = xfer(chip, apdu)
    sent = apdu if isinstance(apdu, str) else apdu.hex().upper()
    assert sw == b"\x90\x00", f"{sent} -> {sw.hex().upper()}"
    return data


def select(card: EmulatedCard, df_name: bytes) -> bytes:
    """Select Application in the golden frame's shape; the FCI."""
    return ok(card, b"\x00\xa4\x04\x00" + bytes([len(df_name)]) + df_name + b"\x00")


def fci_fields(fci: bytes) -> tuple[bytes, bytes, bytes]:
    """DF name, serial and startup information of an FCI laid out as the golden one.

    Layout (Keyple ``CalypsoCardAdapterTest.buildSelectApplicationResponse``): ``6F L 84 L
    DF-name A5 L BF0C L C7 08 serial 53 07 startup-info``, every length exact.
    """
    n = fci[3]
    assert (fci[0], fci[1], fci[2]) == (0x6F, len(fci) - 2, 0x84)
    assert (fci[4 + n], fci[5 + n]) == (0xA5, len(fci) - 6 - n)
    assert fci[6 + n : 9 + n] == bytes([0xBF, 0x0C, len(fci) - 9 - n])
    assert fci[9 + n : 11 + n] == b"\xc7\x08"
    assert fci[19 + n : 21 + n] == b"\x53\x07"
    assert len(fci) == 28 + n
    return fci[4 : 4 + n], fci[11 + n : 19 + n], fci[21 + n : 28 + n]


def test_emulated_card_atr_has_the_golden_layout(chips: tuple[EmulatedCard, EmulatedSAM]) -> None:
    card, _ = chips
    golden_atr = unhex(document("card_select.json")["card_atr"][0]["atr"])
    atr = card.power_on()
    assert len(atr) == len(golden_atr) == 20
    assert atr[:6] == golden_atr[:6]  # 3B 8F 80 01 80 5A
    assert atr[16:19] == golden_atr[16:19]  # 82 90 00
    tck = 0
    for byte in atr[1:-1]:
        tck ^= byte
    assert atr[-1] == tck
    _, serial, startup = fci_fields(select(card, PLUM_DF))
    assert atr[12:16] == serial[4:]
    assert atr[6:12] == startup[1:]


@pytest.mark.parametrize("application", ["plum", "wallet"])
def test_emulated_card_fci_has_the_golden_layout(
    chips: tuple[EmulatedCard, EmulatedSAM], application: str
) -> None:
    card, _ = chips
    df_name = CARD_LAYOUT.application(application).aid
    name, serial, startup = fci_fields(select(card, df_name))
    assert name == df_name
    assert serial == SERIAL
    info = StartupInfo.from_bytes(startup)  # subtype not 00/FF, buffer index 06..37
    assert startup[3] not in (0x00, 0xFF)
    assert startup[2] >= 0x20 and not 0x90 <= startup[2] <= 0x9F  # a Prime Rev 3 product
    assert info.stored_value is CARD_LAYOUT.application(application).stored_value
    assert info.rev32_mode is card.rev32_mode


def test_emulated_card_answers_golden_read_record_frames(
    chips: tuple[EmulatedCard, EmulatedSAM],
) -> None:
    card, _ = chips
    select(card, PLUM_DF)
    environment = ok(card, golden("card_files.json", "read_record_sfi7_rec1_le29")["apdu"])
    assert len(environment) == 29
    assert ok(card, golden("card_files.json", "read_record_sfi7_rec1_le00")["apdu"]) == environment


def test_emulated_card_answers_exactly_le_counters(
    chips: tuple[EmulatedCard, EmulatedSAM],
) -> None:
    card, _ = chips
    select(card, PLUM_DF)
    counters_sfi = CARD_LAYOUT.application("plum").file("counters").sfi
    for n in (1, 2, 9):
        # Golden read_record_6b_two_counters: Le = 3 x counters, the answer exactly that long.
        apdu = bytes([0x00, 0xB2, 0x01, (counters_sfi << 3) | 4, 3 * n])
        values = ok(card, apdu)
        assert len(values) == 3 * n
        if n >= 2:  # make_card puts the carnet second: counter 2 holds its 5 trips
            assert values[3:6] == (5).to_bytes(3, "big")


def key_fields(application: str) -> tuple[int, int]:
    """KIF and KVC of an application's debit key on the test card (key version 1)."""
    return CARD_LAYOUT.application(application).kif(KeyRole.DEBIT), 1


OPEN_LITERAL = [
    "open_regular_debit_no_read",
    "open_regular_debit_read_sfi7_rec1",
    "open_extended_debit_no_read",
]


@pytest.mark.parametrize("name", OPEN_LITERAL)
def test_emulated_card_answers_the_golden_open_in_its_layout(
    chips: tuple[EmulatedCard, EmulatedSAM], name: str
) -> None:
    card, _ = chips
    entry = golden("card_session.json", name)
    select(card, PLUM_DF)
    answer = ok(card, entry["apdu"])
    want, _ = split_response(entry)
    fields = entry["response_fields"]
    assert len(answer) == len(want)  # our environment record is 29 bytes, like Keyple's
    at = 3 + len(unhex(fields["card_random"]))
    kif, kvc = key_fields("plum")
    assert (answer[at + 1], answer[at + 2], answer[at + 3]) == (kif, kvc, fields["record_length"])
    if entry["mode"] == "extended":
        assert answer[at] & 0x02  # Manage Secure Session allowed
    else:
        assert answer[at] in (0x00, 0x01)
    assert answer[at + 4 :] == (ok(card, "00B2013C1D") if fields["record_length"] else b"")


def lv(data: bytes) -> bytes:
    return bytes([len(data)]) + data


@pytest.mark.parametrize("mode", [SessionMode.REGULAR, SessionMode.EXTENDED])
def test_a_session_in_golden_shapes_runs_on_the_emulated_card_and_sam(
    chips: tuple[EmulatedCard, EmulatedSAM], mode: SessionMode
) -> None:
    """Keyple's session sequence and frames, a Decrease inside, in both modes."""
    card, sam = chips
    size = mode.signature_size
    extended = mode is SessionMode.EXTENDED
    select(card, PLUM_DF)
    challenge = ok(sam, b"\x80\x84\x00\x00" + bytes([mode.challenge_size]))
    assert len(challenge) == mode.challenge_size
    p2 = (7 << 3) | mode.open_p2_mode  # read the environment (SFI 7, record 1) as Keyple does
    open_data = (b"\x00" if extended else b"") + challenge
    opened = ok(card, b"\x00\x8a\x0b" + bytes([p2]) + lv(open_data) + b"\x00")
    kif, kvc = key_fields("plum")
    ok(sam, b"\x80\x14\x00\x00" + lv(SERIAL))
    ok(
        sam,
        b"\x80\x8a" + bytes([0x02 if extended else 0x00, 0xFF]) + lv(bytes([kif, kvc]) + opened),
    )
    counters_sfi = CARD_LAYOUT.application("plum").file("counters").sfi
    decrease = b"\x00\x30\x02" + bytes([counters_sfi << 3]) + b"\x03\x00\x00\x01\x00"
    new_value = ok(card, decrease)
    assert new_value == (4).to_bytes(3, "big")
    # CL-C4-MAC.1: the case 4 command is digested without its Le, the answer with its SW.
    ok(sam, b"\x80\x8c\x00\x00" + lv(decrease[:-1]))
    ok(sam, b"\x80\x8c\x00\x00" + lv(new_value + b"\x90\x00"))
    terminal_signature = ok(sam, b"\x80\x8e\x00\x00" + bytes([size]))
    assert len(terminal_signature) == size
    card_signature = ok(card, b"\x00\x8e\x80\x00" + lv(terminal_signature) + b"\x00")
    assert len(card_signature) == size
    ok(sam, b"\x80\x82\x00\x00" + lv(card_signature))
    card.power_on()
    select(card, PLUM_DF)
    assert ok(card, bytes([0x00, 0xB2, 0x01, (counters_sfi << 3) | 4, 0x00]))[3:6] == new_value


def test_emulated_sam_atr_and_challenges_have_the_golden_layout(
    chips: tuple[EmulatedCard, EmulatedSAM],
) -> None:
    _, sam = chips
    atr = sam.power_on()
    assert re.fullmatch(document("sam_atr.json")["layout"]["regex"], atr.hex().upper())
    assert atr[8] == 0xC1  # application subtype: SAM C1
    assert atr[12:16] == SAM_SERIAL
    for name in ("get_challenge_regular", "get_challenge_extended"):
        entry = golden("sam_session.json", name)
        assert len(ok(sam, entry["apdu"])) == entry["apdu_fields"]["le"]


# Status words: a frame of the golden shape made wrong in one way gets the word that the
# reference's status table of that command gives for that fault.
CARD_REFUSALS = [
    # (why, application selected first, golden file and entry whose table lists the word, APDU, SW)
    (
        "close without a session",
        "plum",
        "card_session.json",
        "close_regular_ratify_now",
        "008E80000412345678" + "00",
        "6985",
    ),
    (
        "open with P2 mode 3",
        "plum",
        "card_session.json",
        "open_regular_debit_no_read",
        "008A030304C1C2C3C400",
        "6B00",
    ),
    (
        "open with a key index 0",
        "plum",
        "card_session.json",
        "open_regular_debit_no_read",
        "008A000104C1C2C3C400",
        "6B00",
    ),
    (
        "open regular with a 5-byte challenge",
        "plum",
        "card_session.json",
        "open_regular_debit_no_read",
        "008A030105C1C2C3C4C500",
        "6700",
    ),
    (
        "open reading a record past the end",
        "plum",
        "card_session.json",
        "open_regular_debit_no_read",
        "008A2B3904C1C2C3C400",
        "6A83",
    ),
    (
        "read a record past the end",
        "plum",
        "card_files.json",
        "read_record_sfi7_rec1_le00",
        "00B2053C00",
        "6A83",
    ),
    (
        "read a file that is not there",
        "plum",
        "card_files.json",
        "read_record_sfi7_rec1_le00",
        "00B2011C00",
        "6A82",
    ),
    (
        "update out of a session",
        "plum",
        "card_files.json",
        "update_record_sfi7_rec1_4b",
        "00DC013C0400112233",
        "6982",
    ),
    (
        "decrease out of a session",
        "plum",
        "card_files.json",
        "decrease_sfi1_counter1_by_100",
        "003001C80300000100",
        "6982",
    ),
]


@pytest.mark.parametrize(
    ("application", "file", "name", "apdu", "sw"),
    [pytest.param(*r[1:], id=r[0]) for r in CARD_REFUSALS],
)
def test_emulated_card_refuses_with_the_reference_status_word(
    chips: tuple[EmulatedCard, EmulatedSAM],
    application: str,
    file: str,
    name: str,
    apdu: str,
    sw: str,
) -> None:
    card, _ = chips
    assert sw in golden(file, name)["status_words"]["words"]
    select(card, CARD_LAYOUT.application(application).aid)
    data, answered = xfer(card, apdu)
    assert (data, answered.hex().upper()) == (b"", sw)


def test_emulated_card_refuses_a_4_byte_signature_in_an_extended_session(
    chips: tuple[EmulatedCard, EmulatedSAM],
) -> None:
    card, _ = chips
    assert (
        "6700" in golden("card_session.json", "close_extended_ratify_now")["status_words"]["words"]
    )
    select(card, PLUM_DF)
    ok(card, golden("card_session.json", "open_extended_debit_no_read")["apdu"])
    assert xfer(card, "008E80000412345678" + "00") == (b"", b"\x67\x00")


SAM_REFUSALS = [
    ("get challenge with Le 05", "get_challenge_regular", "8084000005", "6700"),
    ("digest close without a digest", "digest_close_regular", "808E000004", "6985"),
    (
        "digest authenticate without a digest",
        "digest_authenticate_regular",
        "80820000049ABCDEF0",
        "6985",
    ),
    ("unknown instruction", "get_challenge_regular", "80EE000000", "6D00"),
    ("class 00", "get_challenge_regular", "0084000004", "6E00"),
]


@pytest.mark.parametrize(
    ("name", "apdu", "sw"), [pytest.param(*r[1:], id=r[0]) for r in SAM_REFUSALS]
)
def test_emulated_sam_refuses_with_the_reference_status_word(
    chips: tuple[EmulatedCard, EmulatedSAM], name: str, apdu: str, sw: str
) -> None:
    _, sam = chips
    assert sw in golden("sam_session.json", name)["status_words"]["words"]
    assert xfer(sam, apdu) == (b"", unhex(sw))


# -- 6. Keyple's whole exchanges (transcripts.json), SAM side --------------------------------------


class ScriptedChip:
    """A chip that expects the SAM APDUs of a golden transcript in order and answers each one
    the golden response; anything else is answered ``6D00`` and kept for the assertion."""

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


def transcript(name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        t for t in document("transcripts.json")["transcripts"] if t["name"] == name
    )
    return found


def test_engine_replays_keyple_sam_side_of_a_regular_session_with_a_sam_c1() -> None:
    """Get Challenge, Select Diversifier, Digest Init, one Digest Update Multiple for the read
    and its answer, Digest Close, Digest Authenticate: Keyple's bytes, in Keyple's order."""
    script = transcript("regular_session_read_close_digest_update_multiple")
    sam_steps = [s for s in script["steps"] if s["device"] == "sam"]
    card = {s["apdu"][:10]: s for s in script["steps"] if s["device"] == "card"}
    chip = ScriptedChip(unhex(script["sam_atr"]), sam_steps)
    sam = SAMResource(InProcessReader(chip, name="golden-sam"))
    mode = sam.session_mode(card_rev32=False)
    challenge = sam.get_challenge(mode)
    opened = unhex(card["008A030104"]["response"])[:-2]
    read_command = unhex(card["00B2013C1D"]["apdu"])
    read_answer = unhex(card["00B2013C1D"]["response"])
    sam.select_diversifier(unhex("0000000011223344"))
    answer = commands.parse_open_secure_session(opened, mode)
    sam.digest_init(answer.kif, answer.kvc, opened, mode)
    sam.digest_elements([commands.digest_form(read_command), read_answer])
    signature = sam.digest_close(mode)
    close = commands.close_secure_session(signature, ratify_now=True)
    assert close.hex().upper() == next(
        s["apdu"] for s in script["steps"] if s["apdu"][:4] == "008E"
    )
    sam.digest_authenticate(unhex("9ABCDEF0"))
    assert challenge == unhex("C1C2C3C4")
    assert chip.received == [s["apdu"] for s in sam_steps]


# -- 7. stored value on the emulated card and SAM --------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "sv_get_reload_regular",
        "sv_get_debit_regular",
        "sv_get_reload_extended",
        "sv_get_debit_extended",
    ],
)
def test_emulated_card_answers_the_golden_sv_get_in_its_layout(
    chips: tuple[EmulatedCard, EmulatedSAM], name: str
) -> None:
    card, _ = chips
    entry = golden("card_sv.json", name)
    select(card, CARD_LAYOUT.application("wallet").aid)
    answer = ok(card, entry["apdu"])
    want, _ = split_response(entry)
    assert len(answer) == len(want) == entry["apdu_fields"]["le"]
    balance_at = 17 if entry["mode"] == "extended" else 8
    assert int.from_bytes(answer[balance_at : balance_at + 3], "big", signed=True) == 1000


@pytest.mark.parametrize("mode", [SessionMode.REGULAR, SessionMode.EXTENDED])
def test_an_sv_debit_in_a_session_in_golden_shapes_logs_in_the_golden_layout(
    chips: tuple[EmulatedCard, EmulatedSAM], mode: SessionMode
) -> None:
    """In a secure session (Keyple's in-session form): SV Get, SAM SV Prepare Debit, card SV
    Debit without Le (answer postponed), close with the SV signature as postponed
    data, SAM Digest Authenticate and SV Check; then the debit log has the golden layout."""
    card, sam = chips
    extended = mode is SessionMode.EXTENDED
    terminal_mac, card_mac = (10, 6) if extended else (5, 3)
    size = mode.signature_size
    select(card, CARD_LAYOUT.application("wallet").aid)
    challenge = ok(sam, b"\x80\x84\x00\x00" + bytes([mode.challenge_size]))
    open_data = (b"\x00" if extended else b"") + challenge
    opened = ok(card, b"\x00\x8a\x03" + bytes([mode.open_p2_mode]) + lv(open_data) + b"\x00")
    kif, kvc = key_fields("wallet")
    ok(sam, b"\x80\x14\x00\x00" + lv(SERIAL))
    ok(
        sam,
        b"\x80\x8a" + bytes([0x02 if extended else 0x00, 0xFF]) + lv(bytes([kif, kvc]) + opened),
    )
    sv_get = b"\x00\x7c" + (b"\x01\x09\x3d" if extended else b"\x00\x09\x1e")
    before = ok(card, sv_get)
    ok(sam, b"\x80\x8c\x00\x00" + lv(sv_get))
    ok(sam, b"\x80\x8c\x00\x00" + lv(before + b"\x90\x00"))
    sv_kvc = before[8] if extended else before[0]
    tnum = int.from_bytes(before[9:11] if extended else before[1:3], "big")
    date, time = b"\x12\x34", b"\x56\x78"
    partial = bytes([0xBA, 0x00, 0x00, 15 + terminal_mac, 0x00])
    partial += (-100).to_bytes(2, "big", signed=True) + date + time + bytes([sv_kvc])
    prepared = ok(sam, b"\x80\x54\x01\xff" + lv(sv_get[1:] + before + b"\x90\x00" + partial))
    assert len(prepared) == 6 + terminal_mac
    debit = (
        b"\x00\xba"
        + prepared[:2]
        + lv(prepared[2:3] + partial[5:] + SAM_SERIAL + prepared[3:6] + prepared[6:])
    )
    data, sw = xfer(card, debit)
    # In a session the card's SV signature is postponed to the close: no data, 9000 or 6200
    # (both successful in the reference's SV Debit table).
    assert data == b""
    assert sw.hex().upper() in golden("card_sv.json", "sv_debit_regular")["status_words"]["words"]
    assert sw in (b"\x90\x00", b"\x62\x00")
    ok(sam, b"\x80\x8c\x00\x00" + lv(debit))
    ok(sam, b"\x80\x8c\x00\x00" + lv(sw))
    terminal_signature = ok(sam, b"\x80\x8e\x00\x00" + bytes([size]))
    closed = ok(card, b"\x00\x8e\x80\x00" + lv(terminal_signature) + b"\x00")
    # Postponed data: length (counting itself) || SV signature, then the card signature.
    assert len(closed) == 1 + card_mac + size and closed[0] == 1 + card_mac
    ok(sam, b"\x80\x82\x00\x00" + lv(closed[-size:]))
    ok(sam, b"\x80\x58\x00\x00" + lv(closed[1 : 1 + card_mac]))
    card.power_on()
    select(card, CARD_LAYOUT.application("wallet").aid)
    log = ok(card, sv_get)[-19:]
    assert int.from_bytes(log[0:2], "big", signed=True) == -100
    assert (log[2:4], log[4:6], log[6]) == (date, time, sv_kvc)
    assert log[7:11] == SAM_SERIAL and log[11:14] == prepared[3:6]
    assert int.from_bytes(log[14:17], "big", signed=True) == 900
    assert int.from_bytes(log[17:19], "big") == tnum + 1


# -- 8. stored value in the engine -----------------------------------------------------------------

SV_GET_NAMES = [
    "sv_get_reload_regular",
    "sv_get_debit_regular",
    "sv_get_reload_extended",
    "sv_get_debit_extended",
]


@pytest.mark.parametrize("name", SV_GET_NAMES)
def test_engine_builds_the_golden_sv_get_and_parses_its_answer(name: str) -> None:
    entry = golden("card_sv.json", name)
    fields = entry["response_fields"]
    debit = entry["apdu_fields"]["operation"] == "debit"
    assert commands.sv_get(debit, mode_of(entry)).hex().upper() == entry["apdu"]
    data, _ = split_response(entry)
    answer = commands.parse_sv_get(data)
    assert (answer.kvc, answer.tnum, answer.balance) == (
        int(fields["kvc"], 16),
        fields["tnum"],
        fields["balance"],
    )
    logs = document("card_sv.json")["sv_logs"]
    expected_load = unhex(logs["load_log_22"]["hex"]) if "load_log" in fields else None
    expected_debit = unhex(logs["debit_log_19"]["hex"]) if "debit_log" in fields else None
    assert (answer.load_log, answer.debit_log) == (expected_load, expected_debit)


SV_DEBIT_PAIRS = [
    ("sv_prepare_debit_regular", "sv_debit_regular"),
    ("sv_prepare_debit_extended", "sv_debit_extended"),
]


@pytest.mark.parametrize(("prepare", "operation"), SV_DEBIT_PAIRS)
def test_engine_sv_debit_frames_are_the_golden_ones(prepare: str, operation: str) -> None:
    """SV Prepare Debit (SAM) and SV Debit (card) from Keyple's SV Get answer and values."""
    entry = golden("sam_sv.json", prepare)
    fields = entry["apdu_fields"]
    card_fields = golden("card_sv.json", operation)["apdu_fields"]
    mode = mode_of(entry)
    partial = commands.sv_partial(
        0xBA,
        card_fields["debited"],
        unhex(card_fields["date"]),
        unhex(card_fields["time"]),
        int(card_fields["kvc"], 16),
        mode,
    )
    assert partial.hex().upper() == fields["sv_command_partial"]
    chip = GoldenChip(unhex(entry["response"]))
    sam = SAMResource(InProcessReader(chip, name="golden-sam"))
    prepared = sam.sv_prepare(
        unhex(fields["sv_get_header"]), unhex(fields["sv_get_response"]), partial
    )
    assert [a.hex().upper() for a in chip.received] == [entry["apdu"]]
    assert prepared == split_response(entry)[0]
    debit = commands.sv_operation(partial, prepared, unhex(card_fields["sam_id"]))
    assert debit.hex().upper() == golden("card_sv.json", operation)["apdu"]


@pytest.mark.parametrize("name", ["sv_check_regular", "sv_check_extended"])
def test_engine_sends_the_golden_sv_check(name: str) -> None:
    entry = golden("sam_sv.json", name)
    chip = GoldenChip(unhex(entry["response"]))
    sam = SAMResource(InProcessReader(chip, name="golden-sam"))
    sam.sv_check(unhex(entry["apdu_fields"]["card_sv_signature"]))
    assert [a.hex().upper() for a in chip.received] == [entry["apdu"]]


@pytest.mark.parametrize("name", ["close_regular_ratify_now", "close_extended_ratify_now"])
def test_engine_splits_the_golden_close_answer(name: str) -> None:
    entry = golden("card_session.json", name)
    data, _ = split_response(entry)
    postponed, signature = commands.parse_close_answer(data, mode_of(entry))
    assert (postponed, signature) == ([], unhex(entry["response_fields"]["card_signature"]))


SV_OPERATIONS = [
    ("sv_prepare_load_regular", "sv_reload_regular"),
    ("sv_prepare_load_extended", "sv_reload_extended"),
    ("sv_prepare_debit_regular", "sv_debit_regular"),
    ("sv_prepare_debit_extended", "sv_debit_extended"),
    ("sv_prepare_undebit_regular", "sv_undebit_regular"),
]


@pytest.mark.parametrize(("prepare", "operation"), SV_OPERATIONS)
def test_engine_sv_prepare_and_sv_command_from_golden_parts(prepare: str, operation: str) -> None:
    """SV Prepare Load / Debit / Undebit from Keyple's SV Get header, answer and partial
    command; the card's SV command from the partial command and the SAM's answer."""
    entry = golden("sam_sv.json", prepare)
    fields = entry["apdu_fields"]
    chip = GoldenChip(unhex(entry["response"]))
    sam = SAMResource(InProcessReader(chip, name="golden-sam"))
    partial = unhex(fields["sv_command_partial"])
    prepared = sam.sv_prepare(
        unhex(fields["sv_get_header"]), unhex(fields["sv_get_response"]), partial
    )
    assert [a.hex().upper() for a in chip.received] == [entry["apdu"]]
    card_command = golden("card_sv.json", operation)
    sam_id = unhex(card_command["apdu_fields"]["sam_id"])
    built = commands.sv_operation(partial, prepared, sam_id)
    assert built.hex().upper() == card_command["apdu"]


@pytest.mark.parametrize(
    ("record_type", "key", "log"),
    [
        ("wallet.sv_load_log", "read_reload_log", "record"),
        ("wallet.sv_debit_log", "read_debit_log", "response_first_record"),
    ],
)
def test_sv_log_records_of_the_card_decode_as_calypso_logs(
    record_type: str, key: str, log: str
) -> None:
    """The 29-byte log records Keyple reads from the SV log files (SFI 14h, 15h)."""
    files = document("card_sv.json")["sv_logs"]["log_files"]
    raw = unhex(files[key][log])
    if key == "read_debit_log":
        raw = raw[2:]  # Read Records: record number || length || record
    assert len(raw) == files["record_length"]
    fields = decode_record(record_type, raw)
    layout = document("card_sv.json")["sv_logs"][
        "load_log_22" if "load" in record_type else "debit_log_19"
    ]["layout"]
    size = 22 if "load" in record_type else 19
    assert raw[size:] == bytes(29 - size)  # the log, then zero padding
    offsets: dict[str, int] = {}
    at = 0
    for part in layout:  # e.g. "balance(3, signed)"
        name, width = part.split("(")[0], int(part.split("(")[1].split(",")[0].rstrip(")"))
        offsets[name] = at
        at += width
    signed = {"amount": True, "balance": True}
    for name, width in (("amount", 3 if size == 22 else 2), ("balance", 3), ("sv_tnum", 2)):
        value = int.from_bytes(
            raw[offsets[name] : offsets[name] + width], "big", signed=signed.get(name, False)
        )
        assert fields[name] == value, name
    assert fields["kvc"] == raw[offsets["kvc"]]
    assert fields["sam_id"] == int.from_bytes(raw[offsets["sam_id"] : offsets["sam_id"] + 4], "big")
    assert fields["sam_tnum"] == int.from_bytes(
        raw[offsets["sam_tnum"] : offsets["sam_tnum"] + 3], "big"
    )
    assert encode_record(record_type, fields) == raw


def test_engine_raises_on_the_golden_incorrect_card_signature() -> None:
    """Keyple's Digest Authenticate answered ``6988``: the engine raises, naming the word."""
    entry = golden("sam_session.json", "digest_authenticate_failed")
    chip = GoldenChip(unhex(entry["response"]))
    sam = SAMResource(InProcessReader(chip, name="golden-sam"))
    with pytest.raises(SAMError) as raised:
        sam.digest_authenticate(unhex(entry["apdu_fields"]["card_signature"]))
    assert raised.value.sw == 0x6988
    assert [a.hex().upper() for a in chip.received] == [entry["apdu"]]
