"""The card layout and the record registry agree."""

from __future__ import annotations

import pytest

from card_schema.errors import SchemaError
from card_schema.layout import (
    CARD_LAYOUT,
    COUNTER_SIZE,
    RECORD_SIZE,
    ApplicationLayout,
    FileLayout,
    FileType,
)
from card_schema.records import RECORD_TYPES, decode_record, encode_record


def test_every_file_names_a_known_record_type() -> None:
    missing = [
        f"{app.name}/{f.name}: {f.record_type}"
        for app in CARD_LAYOUT.applications
        for f in app.all_files
        if f.record_type not in RECORD_TYPES
    ]
    assert missing == []


def test_every_record_type_is_used_by_a_file() -> None:
    used = {f.record_type for app in CARD_LAYOUT.applications for f in app.all_files}
    assert set(RECORD_TYPES) == used


def test_record_types_are_prefixed_by_their_application() -> None:
    for app in CARD_LAYOUT.applications:
        for f in app.all_files:
            assert f.record_type.startswith(app.name + "."), f.record_type


def test_sfis_and_lids_unique_per_application() -> None:
    for app in CARD_LAYOUT.applications:
        sfis = [f.sfi for f in app.all_files]
        lids = [f.lid for f in app.all_files]
        assert len(set(sfis)) == len(sfis), app.name
        assert len(set(lids)) == len(lids), app.name
        assert app.lid not in lids


def test_application_lids_and_df_names_unique() -> None:
    apps = CARD_LAYOUT.applications
    assert len({a.lid for a in apps}) == len(apps)
    names = [n for a in apps for n in a.df_names]
    assert len(set(names)) == len(names)


def test_records_are_29_bytes() -> None:
    for app in CARD_LAYOUT.applications:
        for f in app.files:
            assert f.record_size == RECORD_SIZE == RECORD_TYPES[f.record_type].size
        for f in app.simulated_counters:
            assert f.record_size == COUNTER_SIZE == RECORD_TYPES[f.record_type].size


def test_per_contract_counter_files_show_the_common_counters() -> None:
    """202A-202D (SFI 0A-0D) are counters 1-4 of 2069: one counter, two files."""
    plum = CARD_LAYOUT.application("plum")
    common = plum.file("counters")
    assert (common.lid, common.sfi, common.type) == (0x2069, 0x19, FileType.COUNTERS)
    assert [(f.lid, f.sfi, f.counter_number) for f in plum.simulated_counters] == [
        (0x202A, 0x0A, 1),
        (0x202B, 0x0B, 2),
        (0x202C, 0x0C, 3),
        (0x202D, 0x0D, 4),
    ]
    assert plum.file_by_sfi(0x0B) is plum.file_by_lid(0x202B) is plum.file("counter_2")
    assert all(f.shares == "counters" and not f.access for f in plum.simulated_counters)
    # simulated files hold no records of their own: card images store only plum.files
    assert "counter_1" not in {f.name for f in plum.files}
    record = encode_record("plum.counters", {f"counter_{i}": i * 100 for i in range(1, 10)})
    for f in plum.simulated_counters:
        view = f.simulated_record(record)
        assert decode_record(f.record_type, view) == {"counter": f.counter_number * 100}


def test_simulated_counter_declarations_are_checked() -> None:
    counters = CARD_LAYOUT.application("plum").file("counters")
    with pytest.raises(SchemaError):  # no counters file to share
        FileLayout("c", 0x202A, 0x0A, FileType.SIMULATED_COUNTER, 1, "x", record_size=3)
    with pytest.raises(SchemaError):  # counter 10 of a 9-counter record
        FileLayout(
            "c", 0x202A, 0x0A, FileType.SIMULATED_COUNTER, 1, "x", record_size=3,
            shares="counters", counter_number=10,
        )  # fmt: skip
    with pytest.raises(SchemaError):  # shares a file that is not a counters file
        ApplicationLayout(
            "a", "A", (b"A",), 0x1000, (counters,),
            simulated_counters=(
                FileLayout(
                    "c", 0x202A, 0x0A, FileType.SIMULATED_COUNTER, 1, "x", record_size=3,
                    shares="nothing", counter_number=1,
                ),
            ),
        )  # fmt: skip
    with pytest.raises(SchemaError):
        counters.simulated_record(bytes(29))
