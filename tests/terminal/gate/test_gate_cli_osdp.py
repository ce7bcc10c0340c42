"""``regioncard gate --osdp PORT``: the CLI's barrier path against the emulated barrier controller.

The barrier controller (libosdp peripheral mode) runs on its own pty; the CLI's gate opens its
OSDP control panel on the pty slave with the secure channel key from ``--osdp-scbk-file``. The
card and SAM readers are the in-process ones of the gate tests (``_reader`` patched: the pcscd
path is covered by ``test_gate_pcsc.py``).
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from enginekit import Rig, make_card

from card_schema.uploads.records import TransactionState
from firmware_host.osdp.gate import GateText
from firmware_host.readers.base import Reader
from hardware.osdp_peripheral import BarrierController
from terminal import cli as gate_cli
from terminal.journal import Journal

pytestmark = pytest.mark.integration


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    gate_cli.register(parser.add_subparsers())
    return parser.parse_args(list(argv))


def test_gate_cli_opens_the_osdp_barrier_for_a_valid_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(tmp_path)
    rig.personalise(make_card(carnet_trips=5))
    readers: dict[str, Reader] = {"card": rig.reader, "sam": rig.sam_reader}
    monkeypatch.setattr(gate_cli, "_reader", lambda spec: readers[spec])
    scbk = os.urandom(16)
    key_file = tmp_path / "scbk"
    key_file.write_text(scbk.hex(), encoding="ascii")
    controller = BarrierController(
        scbk, firmware_key=Ed25519PrivateKey.generate().public_key(), host_timeout=2.0
    )
    controller.start()
    try:
        args = _args(
            "gate",
            "--reader",
            "card",
            "--sam",
            "sam",
            "--station",
            "101",
            "--network",
            "250001",
            "--journal",
            str(tmp_path / "gate.db"),
            "--osdp",
            controller.device_path,
            "--osdp-scbk-file",
            str(key_file),
            "--once",
            "--wait",
            "20",
        )

        def passenger() -> None:
            # The card comes once the gate is online (idle text over the secure channel), and
            # the passenger walks through once the barrier is open.
            assert controller.wait_for(lambda s: s.display == GateText.IDLE, 10)
            rig.present()
            if controller.wait_for(lambda s: s.barrier_open, 10):
                controller.simulate_passage()

        walker = threading.Thread(target=passenger, daemon=True)
        walker.start()
        assert args.handler(args) == 0
        walker.join(10)
        state = controller.snapshot()
        assert state.openings == 1
        assert controller.secure_channel_active or state.host_lost
    finally:
        controller.close()
    with Journal.open(tmp_path / "gate.db", "GATE-101") as journal:
        assert [r.state for r in journal.records()] == [TransactionState.COMMITTED]
    assert (tmp_path / "gate.db.barrier").exists()
