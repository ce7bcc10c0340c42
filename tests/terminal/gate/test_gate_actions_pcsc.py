"""A season pass sold by the backend, pulled by two gates, written once through the real pcscd.

Live backend (uvicorn, SQLite, SoftHSM-signed lists), two gates with their own journal, action
list and outbox, one emulated card and one emulated SAM behind vpcd readers of a private pcscd.
"""

from __future__ import annotations

import io
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from actionkit import SERIAL_HEX, contract_serials
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from enginekit import SAM_SERIAL, Clock, demo_keys, make_card
from gatekit import METRO

from firmware_host.osdp.gate import ConsoleGatePeripheral
from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.vpcd import VPCDBridge
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.sam.emulator import EmulatedSAM
from terminal.actions import ActionLists, ActionOutbox
from terminal.actions.writer import ActionWriter
from terminal.fares import load_tariff
from terminal.fares.signed import PushedTables
from terminal.fares.store import TableStore
from terminal.gate import GateValidator, TapOutcome
from terminal.journal import Journal
from terminal.sync import BackendSync, Outcome
from terminal.uploader import JournalUploader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "desk"))
from deskkit import live_backend

pytestmark = pytest.mark.integration


class _Gate:
    def __init__(
        self,
        directory: Path,
        name: str,
        live: Any,
        key: Ed25519PublicKey,
        stack: Any,
        clock: Clock,
        *,
        uploads: bool = False,
    ) -> None:
        directory.mkdir(parents=True)
        self.journal_path = directory / "journal.db"
        self.device_key = Ed25519PrivateKey.generate()
        upload = {
            "sam_serial": SAM_SERIAL.hex(),
            "public_key": self.device_key.public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
            .hex(),
        }
        self.credential = live.register_terminal(
            terminal_id=name, kind="gate", station_id=101, **(upload if uploads else {})
        )
        credential = self.credential
        self.lists = ActionLists(key, store=TableStore(directory / "tables"))
        self.outbox = ActionOutbox(directory / "actions.db")
        self.journal = Journal.open(self.journal_path, name)
        tables = PushedTables(key, load_tariff())
        self.sync = BackendSync(
            live.url, name, credential, tables, actions=self.lists, outbox=self.outbox
        )
        self.reader = PCSCReader(stack.card_reader)
        self.sam_reader = PCSCReader(stack.sam_reader)
        self.gate = GateValidator(
            self.reader,
            self.sam_reader,
            self.journal,
            tables,
            ConsoleGatePeripheral(io.StringIO()),
            METRO,
            clock=clock,
            actions=ActionWriter(self.lists, self.outbox),
        )

    def close(self) -> None:
        self.reader.close()
        self.sam_reader.close()
        self.journal.close()
        self.outbox.close()


def test_sold_pass_written_once_by_two_gates_and_confirmed(pcsc_stack: Any, tmp_path: Path) -> None:
    # Today: the backend proves a confirmation by the card's pseudonym of the current period.
    clock = Clock(datetime.now(UTC))
    store = CardImageStore(tmp_path / "card.json")
    store.commit(make_card())  # no contract: a gate refuses it without the load
    card = EmulatedCard(store)
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL)
    with live_backend(tmp_path / "backend") as live:
        with live.client() as client:
            raw = client.get("/api/v1/deny-lists/public-key").json()["public_key"]
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw))
        holder = live.holder()
        made = live.agent(
            "POST",
            "/api/v1/cards",
            json={"holder_id": holder, "serial": SERIAL_HEX, "applications": ["plum"]},
        )
        assert made.status_code == 201, made.text
        sale = live.agent(
            "POST", "/api/v1/products/loads", json={"card_serial": SERIAL_HEX, "product_code": 10}
        )
        assert sale.status_code == 201, sale.text
        action_id = sale.json()["action"]["id"]
        a = _Gate(tmp_path / "a", "GATE-ACT-A", live, key, pcsc_stack, clock, uploads=True)
        b = _Gate(tmp_path / "b", "GATE-ACT-B", live, key, pcsc_stack, clock)
        try:
            assert a.sync.sync().actions is Outcome.UPDATED
            assert b.sync.sync().actions is Outcome.UPDATED
            with (
                VPCDBridge(card, pcsc_stack.card_port, name="card") as card_bridge,
                VPCDBridge(sam, pcsc_stack.sam_port, name="sam") as sam_bridge,
            ):
                assert card_bridge.wait_connected(5) and sam_bridge.wait_connected(5)
                assert pcsc_stack.wait_for_card_state(pcsc_stack.card_reader, True, 5)
                assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
                first = a.gate.on_card()
                second = b.gate.on_card()  # the same second, at the next gate
                clock.advance(minutes=90)
                third = b.gate.on_card()  # a new trip through gate B
            assert first.outcome is TapOutcome.COMMITTED, first.display
            assert not second.accepted
            assert third.outcome is TapOutcome.COMMITTED, third.display
            assert contract_serials(store.load()) == [action_id]
            assert a.outbox.states() == {action_id: "committed"}
            assert b.outbox.states() == {}
            counter = a.journal.records()[0].intent.card_tx_counter
            a.sync.sync()  # too early: no uploaded session proves the write yet (409, kept)
            assert a.outbox.states() == {action_id: "committed"}
            uploader = JournalUploader(
                a.journal_path, "GATE-ACT-A", live.url, a.credential, a.device_key, interval=60.0
            )
            report = uploader.upload_now()
            assert report is not None and report.complete
            # Confirmed with the counter of the session that wrote it, once the backend's loop
            # has validated the uploaded session (a bounded wait, not a timing check).
            deadline = time.monotonic() + 30
            while a.outbox.states() != {action_id: "sent"} and time.monotonic() < deadline:
                a.sync.sync()
                time.sleep(0.1)
            assert a.outbox.states() == {action_id: "sent"}
            answer = live.agent("GET", f"/api/v1/action-lists/cards/{SERIAL_HEX}")
            (confirmed,) = answer.json()
            assert confirmed["status"] == "confirmed"
            assert confirmed["confirmed_card_tx_counter"] == counter
            assert b.sync.sync().actions is Outcome.UPDATED  # a newer list, without it
            assert b.lists.pending_for(SERIAL_HEX, "plum") == ()
        finally:
            a.close()
            b.close()
