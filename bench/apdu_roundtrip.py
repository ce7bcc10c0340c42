"""APDU round trip over each reader path: in-process, PC/SC (pcscd + vpcd), nfcpy UDP.

Runs N pairs of SELECT (by DF name) + READ RECORD through each path against the transport test chip
(``hardware.bridges.testchip``, so the card's own work is negligible and the figure is the stack's)
and prints one JSON object::

    {"bench": "apdu_roundtrip", "paths": {"inprocess": {...}, "pcsc": {...}, "nfc_udp": {...}},
     "context": {...}}

each path with ``apdu_per_s``, ``p50_ms``, ``p99_ms`` (per APDU, host clock) and ``n`` (APDUs).
pcscd is started privately through :mod:`hardware.pcsc_stack` and stopped at the end.

Usage: ``python bench/apdu_roundtrip.py [--quick] [-n PAIRS] [--chip testchip|card]``
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_host.readers.base import Reader
from firmware_host.readers.inprocess import InProcessReader
from firmware_host.readers.nfc import NFCReader
from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.nfc_udp import NFCUDPBridge
from hardware.bridges.testchip import TestChip
from hardware.bridges.vpcd import VPCDBridge
from hardware.icc import EmulatedICC
from hardware.pcsc_stack import PCSCStack, pcscd_version

SELECT = bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"
READ_RECORD = bytes.fromhex("00B2013C1D")


def _card_factory(workdir: Path) -> Callable[[], EmulatedICC]:
    from hardware.card.emulator import EmulatedCard
    from hardware.card.image import CardImageStore
    from hardware.personalise import new_card, write_records

    image = new_card(bytes.fromhex("0102030405060708"), None)
    write_records(image, "plum", "environment", [bytes(range(29))])
    path = workdir / "card.json"
    CardImageStore(path).commit(image)
    return lambda: EmulatedCard(CardImageStore(path))


def measure(reader: Reader, pairs: int) -> dict[str, float | int]:
    """Time each APDU of ``pairs`` SELECT + READ RECORD pairs (after a short warm-up)."""
    for _ in range(5):
        reader.transmit(SELECT)
        reader.transmit(READ_RECORD)
    samples: list[float] = []
    started = time.perf_counter()
    for _ in range(pairs):
        for apdu in (SELECT, READ_RECORD):
            t0 = time.perf_counter()
            response = reader.transmit(apdu)
            samples.append(time.perf_counter() - t0)
            if response[-2:] != b"\x90\x00":
                raise SystemExit(f"unexpected answer {response.hex()} to {apdu.hex()}")
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(samples, n=100)
    return {
        "apdu_per_s": round(len(samples) / elapsed, 1),
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(quantiles[98] * 1000, 3),
        "n": len(samples),
    }


@contextlib.contextmanager
def pcsc_reader(chip: EmulatedICC, stack: PCSCStack) -> Iterator[Reader]:
    with VPCDBridge(chip, stack.card_port, name="card") as bridge:
        if not bridge.wait_connected(5) or not stack.wait_for_card_state(
            stack.card_reader, True, 5
        ):
            raise SystemExit("pcscd did not see the bridged card")
        with PCSCReader(stack.card_reader) as reader:
            yield reader


@contextlib.contextmanager
def nfc_reader(chip: EmulatedICC) -> Iterator[Reader]:
    # ISO 14443 type B, as Calypso cards (the bridge's default)
    with NFCUDPBridge(chip, port=0) as bridge, NFCReader(bridge.path, targets=("106B",)) as reader:
        yield reader


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer APDUs: under a minute")
    parser.add_argument("-n", "--pairs", type=int, help="SELECT + READ RECORD pairs per path")
    parser.add_argument("--chip", choices=("testchip", "card"), default="testchip")
    args = parser.parse_args(argv)
    pairs = args.pairs or (1000 if args.quick else 10000)
    with tempfile.TemporaryDirectory() as tmp:
        factory: Callable[[], EmulatedICC] = (
            TestChip if args.chip == "testchip" else _card_factory(Path(tmp))
        )
        paths: dict[str, dict[str, float | int]] = {}
        with InProcessReader(factory()) as reader:
            paths["inprocess"] = measure(reader, pairs)
        with PCSCStack() as stack:
            with pcsc_reader(factory(), stack) as reader:
                paths["pcsc"] = measure(reader, pairs)
            private = stack.socket_path != Path("/run/pcscd/pcscd.comm")
        with nfc_reader(factory()) as reader:
            paths["nfc_udp"] = measure(reader, pairs)
    result = {
        "bench": "apdu_roundtrip",
        "paths": paths,
        "context": {
            "machine": " ".join(
                filter(None, (platform.node(), platform.machine(), platform.processor()))
            ),
            "python": platform.python_version(),
            "pcscd": pcscd_version(),
            "pcscd_private_socket": private,
            "pyscard": importlib.metadata.version("pyscard"),
            "nfcpy": importlib.metadata.version("nfcpy"),
            "chip": args.chip,
            "apdus": [SELECT.hex().upper(), READ_RECORD.hex().upper()],
            "pairs": pairs,
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
