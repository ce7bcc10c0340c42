"""``regioncard emulate``: the emulated card and SAM behind the real stacks until Ctrl-C.

``regioncard emulate --card IMAGE --sam KEYS [--pcsc | --nfc-udp PORT [--nfc-type B|A]]
[--system-pcscd]``

- ``--pcsc`` (default): card and SAM are readers of a private pcscd (see
  :mod:`hardware.pcsc_stack`); ``--system-pcscd`` uses the system's pcscd and its vpcd ports
  35963/35964 instead.
- ``--nfc-udp PORT``: the card answers nfcpy's ``udp`` driver on that port, as an ISO 14443
  type B card (``--nfc-type B``, the default: Calypso cards are type B) or type A
  (``--nfc-type A``); the SAM stays in the PC/SC SAM slot, as in a validator whose SAM sits in a
  contact slot.

Registered by :func:`hardware.cli.register`.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from card_schema.errors import RegionCardError

DEFAULT_SAM_SERIAL = "52430001"

EMULATE_HELP = """\
Carte et SAM émulés, derrière les vraies piles de lecteurs, jusqu'à Ctrl-C.
(Emulated card and SAM behind the real reader stacks until Ctrl-C.)

  --pcsc (défaut)   la carte et le SAM sont deux lecteurs d'un pcscd privé ;
                    --system-pcscd utilise le pcscd du système (ports vpcd 35963/35964)
  --nfc-udp PORT    la carte répond au pilote « udp » de nfcpy sur ce port ; le SAM reste
                    dans l'emplacement SAM PC/SC, comme dans un valideur à SAM en contact
"""


def register_emulate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``regioncard emulate``."""
    emulate = subparsers.add_parser(
        "emulate",
        help="carte et SAM émulés derrière pcscd ou le pilote UDP de nfcpy / emulated card and SAM",
        description=EMULATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    emulate.add_argument("--card", type=Path, required=True, help="card image (JSON)")
    emulate.add_argument("--sam", type=Path, required=True, help="SAM master key file (JSON)")
    emulate.add_argument("--sam-serial", default=DEFAULT_SAM_SERIAL, help="4-byte SAM serial, hex")
    where = emulate.add_mutually_exclusive_group()
    where.add_argument(
        "--pcsc", action="store_true", help="card and SAM as PC/SC readers (default)"
    )
    where.add_argument("--nfc-udp", type=int, metavar="PORT", help="card on nfcpy udp:PORT")
    emulate.add_argument(
        "--nfc-type",
        choices=("B", "A"),
        default="B",
        help="ISO 14443 type the card answers on --nfc-udp (default B, as Calypso cards)",
    )
    emulate.add_argument(
        "--system-pcscd",
        action="store_true",
        help="use the system pcscd's vpcd readers (ports 35963/35964) instead of a private pcscd",
    )
    emulate.set_defaults(handler=run_emulate)


def _load_chips(card_image: Path, sam_keys: Path, sam_serial: str) -> tuple[Any, Any]:
    # Imported here: the emulators are heavier than the bridges; CLI help must not need them.
    from hardware.card.emulator import EmulatedCard
    from hardware.card.image import CardImageStore
    from hardware.sam.emulator import EmulatedSAM
    from hardware.sam.keystore import KeyFileStore

    store = CardImageStore(card_image)
    if not store.exists():
        raise RegionCardError(f"no card image at {card_image} (create one: regioncard card new)")
    try:
        serial = bytes.fromhex(sam_serial)
    except ValueError as exc:
        raise RegionCardError(f"--sam-serial {sam_serial!r} is not hex") from exc
    return EmulatedCard(store), EmulatedSAM(KeyFileStore.load(sam_keys), serial)


def run_emulate(args: argparse.Namespace) -> int:
    """Start the bridges, print where the chips are, wait for Ctrl-C or SIGTERM, stop everything."""
    from hardware.bridges.nfc_udp import NFCUDPBridge
    from hardware.bridges.vpcd import DEFAULT_PORT, VPCDBridge
    from hardware.pcsc_stack import PCSCStack

    card, sam = _load_chips(args.card, args.sam, args.sam_serial)
    stack: PCSCStack | None = None
    bridges: list[Any] = []
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        if args.system_pcscd:
            card_port, sam_port = DEFAULT_PORT, DEFAULT_PORT + 1
            print("PC/SC: system pcscd, 'Virtual PCD 00 00' (card), 'Virtual PCD 00 01' (SAM)")
        else:
            stack = PCSCStack().start()
            card_port, sam_port = stack.card_port, stack.sam_port
            print(f"PC/SC: export PCSCLITE_CSOCK_NAME={stack.socket_path}")
            print(f"       card reader {stack.card_reader!r}, SAM reader {stack.sam_reader!r}")
        bridges.append(VPCDBridge(sam, sam_port, name="SAM").start())
        if args.nfc_udp is not None:
            card_bridge: Any = NFCUDPBridge(
                card, args.nfc_udp, technology=args.nfc_type, name="card"
            ).start()
            print(f"NFC: card (ISO 14443 type {args.nfc_type}) on nfcpy path {card_bridge.path}")
        else:
            card_bridge = VPCDBridge(card, card_port, name="card").start()
        bridges.append(card_bridge)
        print("emulating; Ctrl-C to stop", flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        for bridge in reversed(bridges):
            bridge.stop()
        if stack is not None:
            stack.stop()
    return 0
