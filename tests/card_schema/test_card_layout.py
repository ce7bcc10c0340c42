"""The card layout and the record registry agree."""

from __future__ import annotations

from card_schema.layout import CARD_LAYOUT, RECORD_SIZE
from card_schema.records import RECORD_TYPES


def test_every_file_names_a_known_record_type() -> None:
    missing = [
        f"{app.name}/{f.name}: {f.record_type}"
        for app in CARD_LAYOUT.applications
        for f in app.files
        if f.record_type not in RECORD_TYPES
    ]
    assert missing == []


def test_every_record_type_is_used_by_a_file() -> None:
    used = {f.record_type for app in CARD_LAYOUT.applications for f in app.files}
    assert set(RECORD_TYPES) == used


def test_record_types_are_prefixed_by_their_application() -> None:
    for app in CARD_LAYOUT.applications:
        for f in app.files:
            assert f.record_type.startswith(app.name + "."), f.record_type


def test_sfis_and_lids_unique_per_application() -> None:
    for app in CARD_LAYOUT.applications:
        sfis = [f.sfi for f in app.files]
        lids = [f.lid for f in app.files]
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
