"""A gate validator on an emulated card and SAM (in-process readers), for the gate tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from enginekit import Clock, Rig

from firmware_host.osdp.gate import ConsoleGatePeripheral
from firmware_host.readers.inprocess import InProcessReader
from hardware.sam.emulator import EmulatedSAM
from terminal.fares import load_tariff
from terminal.fares.model import GateKind, Mode, Place
from terminal.fares.signed import PushedTables
from terminal.gate import GateValidator, TapResult
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
