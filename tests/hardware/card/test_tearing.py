"""Anti-tearing: power cut after every APDU of a write session, and at every step of its commit.

Whatever the instant of the cut, the image file reloads as exactly the card before the session or
exactly the card after it (the full image is compared, transaction counter and flags included).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cardkit import SAM_SERIAL, Terminal, demo_keys, personalised_image, sw

from card_schema.crypto import KeyRole
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImage, CardImageStore, CommitStep, PowerCut
from hardware.sam.emulator import EmulatedSAM

# The card APDUs of a gate validation, in order (index = APDU number since power-on).
SELECT, OPEN, APPEND, DECREASE, UPDATE, CLOSE, RATIFY = range(7)
WRITE_SESSION_APDUS = 6  # select .. close
DEFERRED_SESSION_APDUS = 7  # select .. close without ratification, ratification command


def write_session(terminal: Terminal, *, ratify_at_close: bool = True) -> None:
    """Select, open (reading the environment), three writes, close (and ratify if deferred)."""
    assert sw(terminal.select(b"1TIC.ICA")) == 0x9000
    terminal.open_session(KeyRole.DEBIT, sfi=0x07, record=1)
    assert terminal.send(bytes.fromhex("00E2004005") + b"EVENT") == b"\x90\x00"
    assert terminal.send(bytes.fromhex("003001C803000001"))[-2:] == b"\x90\x00"
    assert terminal.send(bytes.fromhex("00DC01EC02") + b"SP") == b"\x90\x00"
    assert sw(terminal.close(ratify=ratify_at_close)) == 0x9000
    if not ratify_at_close:
        assert terminal.card.transmit(bytes.fromhex("00B2000000")) == b"\x90\x00"


def run(path: Path, **hooks: object) -> CardImageStore:
    """Personalise a card at ``path``, run the write session with the given fault hooks."""
    store = CardImageStore(path)
    store.commit(personalised_image())
    store.commit_hook = hooks.get("commit_hook")  # type: ignore[assignment]
    card = EmulatedCard(store, fault_hook=hooks.get("fault_hook"))  # type: ignore[arg-type]
    card.power_on()
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL)
    sam.power_on()
    try:
        write_session(Terminal(card, sam), ratify_at_close=bool(hooks.get("ratify", True)))
    except PowerCut:
        pass
    else:
        assert not hooks.get("fault_hook") and not hooks.get("commit_hook"), "no cut happened"
    store.commit_hook = None
    return store


@pytest.fixture(scope="module")
def before() -> CardImage:
    return personalised_image()


@pytest.fixture(scope="module")
def after(tmp_path_factory: pytest.TempPathFactory) -> CardImage:
    image = run(tmp_path_factory.mktemp("after") / "card.json").load()
    assert image.transaction_counter == 0xFFFFFE and image.ratified
    return image


def cut_after(index: int) -> object:
    def hook(n: int) -> None:
        if n == index:
            raise PowerCut(f"cut after APDU {n}")

    return hook


def cut_at(step: CommitStep, occurrence: int = 1) -> object:
    seen = 0

    def hook(at: CommitStep) -> None:
        nonlocal seen
        if at is step:
            seen += 1
            if seen == occurrence:
                raise PowerCut(f"cut at commit step {at.value}")

    return hook


@pytest.mark.parametrize("index", range(WRITE_SESSION_APDUS))
def test_power_cut_after_each_apdu(
    tmp_path: Path, before: CardImage, after: CardImage, index: int
) -> None:
    image = run(tmp_path / "card.json", fault_hook=cut_after(index)).load()
    # Until the close is processed nothing is written; once it is, all of it is.
    assert image == (after if index >= CLOSE else before)


@pytest.mark.parametrize("step", list(CommitStep))
def test_power_cut_during_the_close_commit(
    tmp_path: Path, before: CardImage, after: CardImage, step: CommitStep
) -> None:
    image = run(tmp_path / "card.json", commit_hook=cut_at(step)).load()
    renamed = list(CommitStep).index(step) > list(CommitStep).index(CommitStep.REPLACE)
    assert image == (after if renamed else before)


@pytest.mark.parametrize("index", range(DEFERRED_SESSION_APDUS))
def test_power_cut_with_deferred_ratification(
    tmp_path: Path, before: CardImage, after: CardImage, index: int
) -> None:
    image = run(tmp_path / "card.json", fault_hook=cut_after(index), ratify=False).load()
    if index < CLOSE:
        assert image == before
    elif index == CLOSE:  # committed, ratification command never came: the card says so
        unratified = after.copy()
        unratified.ratified = False
        assert image == unratified
    else:
        assert image == after


@pytest.mark.parametrize("step", list(CommitStep))
def test_power_cut_during_the_ratification_commit(
    tmp_path: Path, after: CardImage, step: CommitStep
) -> None:
    store = run(tmp_path / "card.json", commit_hook=cut_at(step, occurrence=2), ratify=False)
    image = store.load()
    renamed = list(CommitStep).index(step) > list(CommitStep).index(CommitStep.REPLACE)
    unratified = after.copy()
    unratified.ratified = False
    assert image == (after if renamed else unratified)


def test_the_card_works_after_a_cut(tmp_path: Path, after: CardImage) -> None:
    store = run(tmp_path / "card.json", fault_hook=cut_after(DECREASE))
    card = EmulatedCard(store)
    card.power_on()
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL)
    sam.power_on()
    write_session(Terminal(card, sam))
    assert store.load() == after
