"""A gate validator on an emulated card and SAM (in-process readers), for the gate tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from enginekit import Clock, Rig

from firmware_host.osdp.gate import ConsoleGatePeripheral
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

    def tap(self, fault_hook: object = None) -> TapResult:
        self.rig.present(fault_hook)
        return self.gate.on_card()

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
) -> GateRig:
    rig = Rig(directory)
    tables = PushedTables(BACKEND_KEY.public_key(), load_tariff())
    journal = Journal.open(directory / "journal.db", "GATE-TEST-1")
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
        barrier_log=BarrierLog(directory / "journal.db.barrier"),
    )
    return GateRig(rig, journal, gate, clock, display)
