"""End-to-end taps through the real pcscd (vpcd readers) with the emulated card and SAM."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from enginekit import SAM_SERIAL, Clock, demo_keys, make_card
from gatekit import METRO

from card_schema.uploads.records import TransactionState
from firmware_host.osdp.gate import ConsoleGatePeripheral
from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.vpcd import VPCDBridge
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.sam.emulator import EmulatedSAM
from terminal.fares import load_tariff
from terminal.fares.signed import PushedTables
from terminal.gate import GateValidator, TapOutcome
from terminal.journal import Journal

pytestmark = pytest.mark.integration


def test_taps_through_pcscd(pcsc_stack: Any, tmp_path: Path) -> None:
    store = CardImageStore(tmp_path / "card.json")
    store.commit(make_card(carnet_trips=3))
    card = EmulatedCard(store)
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL)
    clock = Clock()
    with (
        VPCDBridge(card, pcsc_stack.card_port, name="card") as card_bridge,
        VPCDBridge(sam, pcsc_stack.sam_port, name="sam") as sam_bridge,
    ):
        assert card_bridge.wait_connected(5) and sam_bridge.wait_connected(5)
        assert pcsc_stack.wait_for_card_state(pcsc_stack.card_reader, True, 5)
        assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
        reader = PCSCReader(pcsc_stack.card_reader)
        sam_reader = PCSCReader(pcsc_stack.sam_reader)
        with Journal.open(tmp_path / "journal.db", "GATE-PCSC-1") as journal:
            gate = GateValidator(
                reader,
                sam_reader,
                journal,
                PushedTables(Ed25519PrivateKey.generate().public_key(), load_tariff()),
                ConsoleGatePeripheral(io.StringIO()),
                METRO,
                clock=clock,
            )
            results = []
            for _ in range(4):
                results.append(gate.on_card())
                clock.advance(minutes=90)
            records = journal.records()
        reader.close()
        sam_reader.close()
    assert [r.outcome for r in results] == [TapOutcome.COMMITTED] * 3 + [TapOutcome.REFUSED]
    assert results[2].display == "Bon voyage — 0 voyages restants" or results[2].accepted
    assert results[3].display.startswith("Carnet épuisé") or not results[3].accepted
    assert [r.state for r in records] == [TransactionState.COMMITTED] * 3
    counters = store.load().applications["plum"].records["counters"][0]
    assert counters[:3] == bytes(3)
    assert all(r.card_apdus <= 12 and r.sam_apdus <= 10 for r in results)
