"""Fuzzing the card's APDU parser and dispatch with hypothesis.

Properties: ``transmit`` never raises; it answers at least a status word and never ``6F00`` (the
emulator's own defect marker); without a valid SAM signature nothing ever reaches the image file;
inside a real session, random commands never leave an invalid image.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cardkit import SAM_SERIAL, Terminal, demo_keys, personalised_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card_schema.crypto import KeyRole
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.sam.emulator import EmulatedSAM

KNOWN_INS = [
    0xA4,
    0xCA,
    0xB2,
    0xDC,
    0xD2,
    0xE2,
    0x32,
    0x30,
    0x8A,
    0x8E,
    0x7C,
    0xB8,
    0xBA,
    0xBC,
    0x04,
    0x44,
]
DF_NAMES = [b"1TIC.ICA", b"3MTR.ICA", b"HDF.WALLET", b"HDF.CURSUS", b"HDF.EMPLOI"]


@st.composite
def structured_apdus(draw: st.DrawFn) -> bytes:
    cla = draw(st.sampled_from([0x00, 0x94, 0x00, 0x80, 0xFF]))
    ins = draw(st.one_of(st.sampled_from(KNOWN_INS), st.integers(0, 255)))
    p1 = draw(st.one_of(st.sampled_from([0, 1, 2, 4, 8, 9, 0x80]), st.integers(0, 255)))
    sfi = draw(st.sampled_from([0, 1, 7, 8, 9, 0x14, 0x15, 0x19, 0x1D, 0x1E, 31]))
    p2 = draw(st.one_of(st.just(sfi << 3 | draw(st.integers(0, 7))), st.integers(0, 255)))
    data = draw(
        st.one_of(
            st.just(b""),
            st.sampled_from([*DF_NAMES, b"\x20\x00", b"\x20\x01", b"\x3f\x00", b"\x00\x02"]),
            st.binary(min_size=1, max_size=40),
        )
    )
    le = draw(st.one_of(st.none(), st.integers(0, 255)))
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        apdu += bytes([le])
    return apdu


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> CardImageStore:
    store = CardImageStore(tmp_path_factory.mktemp("fuzz") / "card.json")
    store.commit(personalised_image())
    return store


def check_response(response: bytes) -> None:
    assert isinstance(response, bytes) and len(response) >= 2
    assert response[-2:] != b"\x6f\x00", "emulator defect"


def assert_image_unchanged(store: CardImageStore, apdus: list[bytes]) -> None:
    """Run ``apdus`` on a fresh card (each answered, none a defect): the image file is unchanged."""
    before = store.load()
    card = EmulatedCard(store)
    card.power_on()
    for apdu in apdus:
        check_response(card.transmit(apdu))
    card.power_off()
    assert store.load() == before


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_bytes(fuzz_store: CardImageStore, apdus: list[bytes]) -> None:
    assert_image_unchanged(fuzz_store, apdus)


@settings(max_examples=400, deadline=None)
@given(st.lists(structured_apdus(), min_size=1, max_size=12))
def test_structured_apdus_without_keys_change_nothing(
    fuzz_store: CardImageStore, apdus: list[bytes]
) -> None:
    assert_image_unchanged(fuzz_store, apdus)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    df_name=st.sampled_from(DF_NAMES),
    role=st.sampled_from(list(KeyRole)),
    apdus=st.lists(structured_apdus(), max_size=8),
)
def test_random_commands_inside_a_real_session(
    tmp_path: Path, df_name: bytes, role: KeyRole, apdus: list[bytes]
) -> None:
    store = CardImageStore(tmp_path / "card.json")
    store.commit(personalised_image())
    card = EmulatedCard(store)
    card.power_on()
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL)
    sam.power_on()
    terminal = Terminal(card, sam)
    terminal.select(df_name)
    terminal.open_session(role)
    for apdu in apdus:
        check_response(terminal.send(apdu))
    check_response(card.transmit(terminal.close_apdu()))
    card.power_off()
    store.load().validate()  # reloads and fits the layout, whatever was committed
