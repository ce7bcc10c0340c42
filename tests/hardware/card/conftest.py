"""Fixtures of the emulated-card tests (helpers in cardkit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cardkit import SAM_SERIAL, Terminal, demo_keys, personalised_image

from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.sam.emulator import EmulatedSAM


@pytest.fixture
def store(tmp_path: Path) -> CardImageStore:
    store = CardImageStore(tmp_path / "card.json")
    store.commit(personalised_image())
    return store


@pytest.fixture
def card(store: CardImageStore) -> Iterator[EmulatedCard]:
    card = EmulatedCard(store)
    card.power_on()
    yield card
    card.power_off()


@pytest.fixture
def sam() -> EmulatedSAM:
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL)
    sam.power_on()
    return sam


@pytest.fixture(params=["regular", "extended"])
def terminal(card: EmulatedCard, sam: EmulatedSAM, request: pytest.FixtureRequest) -> Terminal:
    """A hand-written terminal in regular mode and in Rev 3.2 extended mode."""
    return Terminal(card, sam, extended=request.param == "extended")
