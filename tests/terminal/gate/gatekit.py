"""A gate validator on an emulated card and SAM (in-process readers), for the gate tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from enginekit import Clock, Rig

from card_schema.uploads.records import TransactionState
from firmware_host.osdp.gate import ConsoleGatePeripheral
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.image import CardImage
from hardware.sam.emulator import EmulatedSAM
from terminal.fares import load_tariff
from terminal.fares.model import GateKind, Mode, Place
from terminal.fares.signed import PushedTables
from terminal.gate import GateValidator, TapOutcome, TapResult
from terminal.gate.barrier import BarrierLog
from terminal.journal import Journal

METRO = Place(station_id=101, zone=1, network_id=250001, mode=Mode.URBAN)
BACKEND_KEY = Ed25519PrivateKey.generate()  # signs the pushed tables of the gate tests
SHELTER = Place(station_id=601, zone=1, network_id=250001, mode=Mode.URBAN)


@dataclass
class GateRig:
    rig: Rig
    journal: Journal
    gate: GateValidator
    clock: Clock
    display: io.StringIO
    tables: PushedTables
    journal_path: Path
    barrier_log: BarrierLog

    def tap(self, fault_hook: object = None) -> TapResult:
        self.rig.present(fault_hook)
        return self.gate.on_card()

    def ride(self) -> TapResult:
        """One tap, then the clock moves past anti-passback and the transfer window."""
        result = self.tap()
        self.clock.advance(minutes=30)
        return result

    def close(self) -> None:
        self.barrier_log.close()
        self.journal.close()

    def counter(self, slot: int = 1) -> int:
        record = self.rig.image().applications["plum"].records["counters"][0]
        return int.from_bytes(record[(slot - 1) * 3 : slot * 3], "big")

    def events(self) -> list[bytes]:
        return list(self.rig.image().applications["plum"].records["events"])


def build_gate(
    directory: Path,
    *,
    kind: GateKind = GateKind.GATE,
    place: Place = METRO,
    clock: Clock | None = None,
    terminal_id: str = "GATE-TEST-1",
    tables: PushedTables | None = None,
    sam: EmulatedSAM | None = None,
) -> GateRig:
    """A gate on an emulated card and SAM; ``sam`` replaces the rig's default SAM."""
    rig = Rig(directory)
    if sam is not None:
        rig.sam = sam
        rig.sam_reader = InProcessReader(sam, name="sam")
    tables = tables or PushedTables(BACKEND_KEY.public_key(), load_tariff())
    journal_path = directory / "journal.db"
    journal = Journal.open(journal_path, terminal_id)
    barrier_log = BarrierLog(directory / "journal.db.barrier")
    clock = clock or Clock()
    display = io.StringIO()
    gate = GateValidator(
        rig.reader,
        rig.sam_reader,
        journal,
        tables,
        ConsoleGatePeripheral(display),
        place,
        clock=clock,
        kind=kind,
        barrier_log=barrier_log,
    )
    return GateRig(rig, journal, gate, clock, display, tables, journal_path, barrier_log)


def assert_before_or_after(gate_rig: GateRig, before: CardImage, first: TapResult) -> None:
    """After a failed carnet tap (5 trips left before it): the card is byte for byte before or
    after the session, and the journal agrees (COMMITTED only if on the card, never ABORTED if
    the card committed)."""
    after = gate_rig.rig.image()
    unchanged = after.applications == before.applications
    committed = (
        gate_rig.counter(1) == 4
        and gate_rig.events()[0] != before.applications["plum"].records["events"][0]
    )
    assert unchanged or committed, "the card is neither before nor after the session"
    states = [r.state for r in gate_rig.journal.records()]
    if unchanged:
        assert TransactionState.COMMITTED not in states
        assert not first.accepted
    else:
        assert TransactionState.ABORTED not in states, states


def assert_charged_once(gate_rig: GateRig, first: TapResult, second: TapResult) -> None:
    """After the failed tap and the next one: exactly one trip charged, one event, one COMMITTED
    record, nothing UNCERTAIN, the passenger let through exactly once."""
    assert gate_rig.counter(1) == 4, "exactly one trip charged"
    assert sum(1 for e in gate_rig.events() if any(e)) == 1, "exactly one event written"
    records = gate_rig.journal.records()
    assert [r.state for r in records].count(TransactionState.COMMITTED) == 1
    assert not [r for r in records if r.state is TransactionState.UNCERTAIN]
    # the passenger went through once: at the failed tap, or at the next one
    assert [first.accepted, second.accepted].count(True) == 1
    if second.accepted:
        assert second.outcome in (TapOutcome.COMMITTED, TapOutcome.RECOVERED)
