"""``regioncard osdp demo``: the emulated barrier controller on a pty, driven by the gate's OSDP
control panel through one refusal, one valid card with a passage, an outage and its recovery."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_host.osdp import OSDPControlPanel, OSDPGatePeripheral, PeripheralOfflineError
from hardware.osdp_peripheral import BarrierController, GateHardwareState, sign_image

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``regioncard osdp ...``."""
    parser = subparsers.add_parser("osdp", help="gate peripheral over OSDP (emulated controller)")
    sub = parser.add_subparsers(dest="osdp_command", required=True, metavar="ACTION")
    demo = sub.add_parser("demo", help="run an open/close cycle against the emulated controller")
    demo.set_defaults(handler=run_demo)


def _show(what: str, state: GateHardwareState) -> None:
    barrier = "ouverte" if state.barrier_open else "fermée"
    print(f"{what:<28} barrière {barrier:<8} voyant {state.led_shown:<6} « {state.display_shown} »")


def run_demo(args: argparse.Namespace) -> int:
    """Start the emulated controller on a pty and drive it; prints what a passenger would see."""
    scbk = os.urandom(16)
    signing_key = Ed25519PrivateKey.generate()
    with BarrierController(scbk, firmware_key=signing_key.public_key(), host_timeout=1.0) as pd:
        print(f"contrôleur de barrière émulé sur {pd.device_path}")
        gate = OSDPGatePeripheral(OSDPControlPanel(pd.device_path, scbk, silence_timeout=0.5))
        try:
            if not gate.cp.wait_link(True, 5):
                print("le contrôleur ne répond pas")
                return 1
            identity = gate.cp.identify()
            print(f"canal sécurisé établi; firmware {identity.firmware_version:#x}")
            pd.wait_for(lambda s: s.display != "", 2)
            _show("au repos", pd.snapshot())
            gate.signal_refused()
            _show("carte refusée", pd.snapshot())
            gate.signal_valid()
            _show("carte valide", pd.snapshot())
            pd.simulate_passage()
            passed = gate.wait_passage(5)
            pd.wait_for(lambda s: not s.barrier_open, 2)
            _show(f"passage {'détecté' if passed else 'absent'}", pd.snapshot())
            pd.channel.unplug()
            gate.cp.wait_link(False, 3)
            pd.wait_for(lambda s: s.host_lost, 3)
            try:
                gate.signal_valid()
            except PeripheralOfflineError as exc:
                print(f"câble débranché: {exc}")
            _show("contrôleur isolé", pd.snapshot())
            pd.channel.plug()
            gate.cp.wait_link(True, 5)
            pd.wait_for(lambda s: not s.host_lost and s.display_shown != "Hors service", 3)
            _show("câble rebranché", pd.snapshot())
            image = sign_image(signing_key, 0x020000, os.urandom(4000))
            version = gate.cp.update_firmware(image, timeout=30)
            print(f"firmware signé installé: {version:#x}")
        finally:
            gate.close()
    return 0
