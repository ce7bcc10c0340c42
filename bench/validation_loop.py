"""Benchmark: verified card transactions per second, from upload to ledger.

Generates N signed records (a realistic mix: gate validations without movement, SV debits,
carnet counter decreases, canteen meals paid by aid then wallet) over many cards and terminals,
with real SAM traceable signatures (keys derived in memory from a trace master key: an in-memory
``TraceKeyProvider``, not the PKCS#11 token) and Ed25519-signed batches. Cards tap in rounds (a
card's taps are hours apart, terminals upload every few minutes), so records mostly arrive in
card-session order, as in the field. Card counters are realistic: they count down from
``0xFFFFFF`` (Calypso), each card having already run a few hundred sessions.

Measured, end to end: every batch through the upload service (``receive_batch``: strict decode,
Ed25519 check, preparation of the records as the app's upload worker does it, durable insert)
then the validation loop to the ledger, in one process (``single_process``) and as deployed
(``pipelined``: an upload process and a dedicated loop worker, ``ValidationLoop.serve``). In the
same run, ``crypto_bound`` does only the SAM signature checks over the same records (signing
bytes and batched CMAC per SAM, keys cached): ``ratio = tx_per_s / crypto_bound_tx_per_s``
shows the overhead. Figures and where the time goes: ``docs/validation-loop.md``.

Prints one JSON object::

    .venv/bin/python bench/validation_loop.py --db sqlite --quick
    .venv/bin/python bench/validation_loop.py --db both -n 200000
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db import make_engine, make_sessionmaker
from backend.ledger.models import LedgerEntry
from backend.ledger.service import check_balanced
from backend.migrate import upgrade
from backend.pgcluster import throwaway_cluster
from backend.uploads.service import receive_batch
from backend.validation.loop import LoopReport, ValidationLoop
from backend.validation.models import OperatorStation, ProductValue
from backend.validation.prepare import RecordPreparer
from backend.validation.providers import InMemoryPseudonymizer, InMemoryTraceKeys
from card_schema.traceability import (
    sam_trace_key,
    traceable_signature,
    verify_traceable_signatures,
)
from card_schema.uploads.batch import FORMAT, batch_id_for, key_id
from card_schema.uploads.counters import CARD_COUNTER_MAX
from card_schema.uploads.records import canonical_json, format_utc
from card_schema.uploads.signing import (
    sam_signature_input,
    wire_record_signing_bytes,
)

TRACE_MASTER = bytes(range(16))
PSEUDONYMS = b"bench" * 6
T0 = datetime(2025, 9, 1, 6, 0, tzinfo=UTC)
BATCH_RECORDS = 500
STATIONS = {1000 + i: f"op{i % 4}" for i in range(40)}


class _Card:
    def __init__(self, serial: bytes) -> None:
        self.serial = serial.hex().upper()
        self.counter = CARD_COUNTER_MAX - random.randrange(0, 500)  # read at the next open
        self.wallet = 50_000
        self.trips = 1000
        self.aid = 100_000
        self.log = ["00" * 29]


class _Terminal:
    def __init__(self, index: int) -> None:
        self.id = f"BENCH-T{index:04d}"
        self.key = Ed25519PrivateKey.generate()
        self.sam_serial = (0x5A000000 + index).to_bytes(4, "big")
        self.sam_key = sam_trace_key(TRACE_MASTER, self.sam_serial)
        self.sam_counter = 0
        self.seq = 0
        self.canteen = index % 5 == 4
        self.station = None if self.canteen else 1000 + index % 40
        self.pending: list[dict[str, Any]] = []


def _movement(purse: str, unit: str, amount: int, before: int) -> dict[str, Any]:
    return {
        "purse": purse,
        "unit": unit,
        "amount": amount,
        "balance_before": before,
        "balance_after": before + amount,
    }


def _record(terminal: _Terminal, card: _Card, at: datetime) -> dict[str, Any]:
    terminal.seq += 1
    counter = card.counter
    card.counter -= 1  # Calypso: the transaction counter counts down, one per session
    roll = random.random()
    if terminal.canteen:
        kind, application, product = "canteen_meal", "cursus", 900
        movements = [
            _movement("cursus.canteen_aid", "eurocent", -250, card.aid),
            _movement("wallet.sv", "eurocent", -80, card.wallet),
        ]
        card.aid -= 250
        card.wallet -= 80
    elif roll < 0.5:
        kind, application, product, movements = "validation", "plum", 21, []
    elif roll < 0.8:
        kind, application, product = "sv_debit", "wallet", 2
        movements = [_movement("wallet.sv", "eurocent", -180, card.wallet)]
        card.wallet -= 180
    else:
        kind, application, product = "counter_decrease", "plum", 31
        movements = [_movement("plum.counter.1", "count", -1, card.trips)]
        card.trips -= 1
    written = f"{counter % 256:02X}" + "00" * 28
    stamp = format_utc(at)
    record: dict[str, Any] = {
        "terminal_id": terminal.id,
        "terminal_seq": terminal.seq,
        "outcome": "COMMITTED",
        "resolution": "card_close",
        "abort_reason": None,
        "decided_at": stamp,
        "sam_signature": None,
        "kind": kind,
        "application": application,
        "card_serial": card.serial,
        "card_tx_counter": counter,
        "occurred_at": stamp,
        "movements": movements,
        "product_code": product,
        "station_id": terminal.station,
        "school_uai": "0590001A" if terminal.canteen else None,
        "last_events": list(card.log),
        "written_event": written,
    }
    card.log = [written, *card.log][:3]
    terminal.sam_counter += 1
    message = sam_signature_input(wire_record_signing_bytes(record))
    mac = traceable_signature(terminal.sam_key, terminal.sam_serial, terminal.sam_counter, message)
    record["sam_signature"] = (
        (terminal.sam_serial + terminal.sam_counter.to_bytes(3, "big") + mac).hex().upper()
    )
    return record


def _batch_bytes(terminal: _Terminal, records: list[dict[str, Any]], at: datetime) -> bytes:
    payload = {
        "format": FORMAT,
        "terminal_id": terminal.id,
        "batch_id": batch_id_for(
            terminal.id, records[0]["terminal_seq"], records[-1]["terminal_seq"]
        ),
        "created_at": format_utc(at),
        "first_seq": records[0]["terminal_seq"],
        "last_seq": records[-1]["terminal_seq"],
        "records": records,
        "uncertain": [],
    }
    signature = terminal.key.sign(canonical_json(payload))
    return canonical_json(
        {
            "batch": payload,
            "signature": {
                "alg": "Ed25519",
                "key_id": key_id(terminal.key.public_key()),
                "value": signature.hex().upper(),
            },
        }
    )


def generate(n: int, seed: int = 5) -> tuple[list[tuple[_Terminal, bytes]], dict[str, Any]]:
    """``n`` signed records in batches, in upload order; and the terminals' public keys."""
    random.seed(seed)
    terminals = [_Terminal(i) for i in range(max(4, n // 2000))]
    rounds = 4
    cards = [_Card(random.getrandbits(64).to_bytes(8, "big")) for _ in range(max(1, n // rounds))]
    batches: list[tuple[_Terminal, bytes]] = []
    made = 0
    for round_index in range(rounds):
        order = list(range(len(cards)))
        random.shuffle(order)
        at = T0 + timedelta(hours=3 * round_index)
        for position, card_index in enumerate(order):
            if made >= n:
                break
            terminal = terminals[random.randrange(len(terminals))]
            moment = at + timedelta(milliseconds=position * 37)
            terminal.pending.append(_record(terminal, cards[card_index], moment))
            made += 1
            if len(terminal.pending) >= BATCH_RECORDS:
                batches.append((terminal, _batch_bytes(terminal, terminal.pending, moment)))
                terminal.pending = []
        for terminal in terminals:  # end of the round: every terminal uploads what it holds
            if terminal.pending:
                batches.append((terminal, _batch_bytes(terminal, terminal.pending, at)))
                terminal.pending = []
    keys = {(t.id, key_id(t.key.public_key())): t.key.public_key() for t in terminals}
    return batches, keys


def crypto_only(batches: list[tuple[_Terminal, bytes]]) -> tuple[int, float]:
    """Check every SAM signature of the batches, nothing else; returns (count, seconds).

    As the upload worker checks them (``RecordPreparer.prepare``): the signing bytes of each
    record, then one batched check per SAM and batch
    (:func:`card_schema.traceability.verify_traceable_signatures`), keys cached.
    """
    decoded = [json.loads(body)["batch"]["records"] for _, body in batches]
    keys: dict[bytes, bytes] = {}
    provider = InMemoryTraceKeys(TRACE_MASTER)
    count = 0
    start = time.perf_counter()
    for records in decoded:
        by_sam: dict[bytes, list[tuple[bytes, bytes]]] = {}
        for record in records:
            raw = bytes.fromhex(record["sam_signature"])
            signed = sam_signature_input(wire_record_signing_bytes(record))
            by_sam.setdefault(raw[:4], []).append((raw, signed))
        for serial, items in by_sam.items():
            key = keys.get(serial)
            if key is None:
                key = keys[serial] = provider.sam_trace_key(serial)
            for result in verify_traceable_signatures(key, items):
                if isinstance(result, Exception):
                    raise SystemExit(f"a generated signature does not verify: {result}")
            count += len(items)
    return count, time.perf_counter() - start


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A migrated database URL of ``kind`` (``sqlite`` file or throwaway PostgreSQL)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-vl-") as folder:
            url = f"sqlite:///{folder}/bench.db"
            upgrade(url)
            yield url
    else:
        with throwaway_cluster() as cluster:
            upgrade(cluster.url)
            yield cluster.url


def _lookup(keys: dict[Any, Any]) -> Any:
    def lookup(_session: Session, terminal_id: str, key: str) -> Ed25519PublicKey:
        return keys[(terminal_id, key)]  # type: ignore[no-any-return]

    return lookup


def _upload_all(url: str, batches: list[tuple[_Terminal, bytes]], keys: dict[Any, Any]) -> None:
    """Every batch through the upload service, in order (one terminal connection at a time)."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    lookup = _lookup(keys)
    # As the app's upload endpoint: the upload worker prepares the records it has just
    # verified (SAM signatures, pseudonyms) and stores that beside the bytes.
    preparer = RecordPreparer(InMemoryTraceKeys(TRACE_MASTER), InMemoryPseudonymizer(PSEUDONYMS))
    for terminal, body in batches:
        outcome = receive_batch(
            factory,
            terminal.id,
            body,
            lookup,
            max_bytes=4 << 20,
            max_records=5000,
            prepare=preparer.prepare_body,
        )
        if outcome.status_code != 200:
            raise SystemExit(f"upload refused: {outcome.ack}")
    engine.dispose()


def _upload_timed(url: str, batches: list[tuple[_Terminal, bytes]], keys: Any, out: Any) -> None:
    """:func:`_upload_all`, then put (wall seconds, CPU seconds) of it on ``out``."""
    wall, cpu = time.perf_counter(), time.process_time()
    _upload_all(url, batches, keys)
    out.put((time.perf_counter() - wall, time.process_time() - cpu))


def run(
    kind: str,
    batches: list[tuple[_Terminal, bytes]],
    keys: dict[Any, Any],
    *,
    pipelined: bool,
    chunk_records: int,
) -> dict[str, Any]:
    """Upload every batch and run the loop to the ledger; time it.

    Sequential (one process): all uploads, then ``run_once()``; both stages are timed. Pipelined
    (two processes, as deployed: the upload endpoint and the background loop): a child process
    uploads while this one runs the loop on whatever is stored, until everything is posted;
    only the wall time from the first upload to the last ledger row is meaningful then.
    """
    with database(kind) as url:
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        with factory() as session, session.begin():
            session.add_all(
                OperatorStation(station_id=s, operator_id=o, network_id=1)
                for s, o in STATIONS.items()
            )
            session.add(ProductValue(product_code=31, name="carnet 10", trip_value=165))
        loop = ValidationLoop(
            factory,
            InMemoryTraceKeys(TRACE_MASTER),
            InMemoryPseudonymizer(PSEUDONYMS),
            chunk_records=chunk_records,
        )
        report = LoopReport()
        processes: dict[str, float] = {}
        start = time.perf_counter()
        if pipelined:
            context = multiprocessing.get_context("fork")
            times: Any = context.Queue()
            uploader = context.Process(target=_upload_timed, args=(url, batches, keys, times))
            cpu = time.process_time()
            uploader.start()
            stop = threading.Event()

            def stop_when_uploaded() -> None:
                uploader.join()
                stop.set()  # the worker then drains what is left and returns

            threading.Thread(target=stop_when_uploaded, daemon=True).start()
            report = loop.serve(stop, linger_s=0.2, poll_s=0.002)
            if uploader.exitcode != 0:
                raise SystemExit(f"uploader failed ({uploader.exitcode})")
            uploaded = done = time.perf_counter()
            upload_wall, upload_cpu = times.get()
            processes = {
                "upload_process_wall_s": round(upload_wall, 2),
                "upload_process_cpu_s": round(upload_cpu, 2),
                "loop_process_cpu_s": round(time.process_time() - cpu, 2),
            }
        else:
            _upload_all(url, batches, keys)
            uploaded = time.perf_counter()
            report = loop.run_once()
            done = time.perf_counter()
        with factory() as session:
            check = check_balanced(session)
            lines = session.scalar(select(func.count(LedgerEntry.id)))
        engine.dispose()
    if report.records != sum(body.count(b'"terminal_seq":') for _, body in batches):
        raise SystemExit(f"the loop read {report.records} records, not every one")
    return {
        "report": report,
        "upload_s": uploaded - start,
        "loop_s": done - uploaded,
        "total_s": done - start,
        "ledger_lines": lines,
        "ledger_total": check.total,
        "processes": processes,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("-n", "--transactions", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 transactions")
    parser.add_argument("--chunk", type=int, default=5000, help="records per loop transaction")
    args = parser.parse_args(argv)
    n = 20_000 if args.quick else args.transactions
    batches, keys = generate(n)
    # The generated workload is the bench's own baggage (tens of thousands of live objects a
    # server does not hold): keep it out of the cyclic GC's passes so they cost what they
    # would in the service.
    gc.collect()
    gc.freeze()
    count, crypto_s = crypto_only(batches)
    crypto_rate = count / crypto_s
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = {}
    for kind in kinds:
        one = run(kind, batches, keys, pipelined=False, chunk_records=args.chunk)
        two = run(kind, batches, keys, pipelined=True, chunk_records=args.chunk)
        report = one["report"]
        rate = count / one["total_s"]
        rate_2 = count / two["total_s"]
        results[kind] = {
            "tx_per_s": round(max(rate, rate_2)),
            "single_process": {
                "workers": 1,
                "tx_per_s": round(rate),
                "upload_tx_per_s": round(count / one["upload_s"]),
                "loop_tx_per_s": round(count / one["loop_s"]),
            },
            "pipelined": {
                "workers": 2,
                "layout": "1 upload process + 1 dedicated validation-loop worker "
                "(ValidationLoop.serve: full chunks, 200 ms linger), concurrently",
                "tx_per_s": round(rate_2),
                **two["processes"],
            },
            "ratio": round(max(rate, rate_2) / crypto_rate, 3),
            "posted": report.posted,
            "anomalies": report.anomalies,
            "ledger_lines": one["ledger_lines"],
            "ledger_balanced": one["ledger_total"] == 0 and two["ledger_total"] == 0,
            "same_result_pipelined": (two["report"].posted, two["ledger_lines"])
            == (report.posted, one["ledger_lines"]),
        }
    first = results[kinds[0]]
    print(
        json.dumps(
            {
                "bench": "validation_loop",
                "db": kinds[0] if len(kinds) == 1 else "both",
                "transactions": count,
                "tx_per_s": first["tx_per_s"],
                "crypto_bound_tx_per_s": round(crypto_rate),
                "ratio": first["ratio"],
                "per_db": results,
                "batches": len(batches),
                "batch_records": BATCH_RECORDS,
                "chunk_records": args.chunk,
                "cpus": os.cpu_count(),
                "measured_against": "in-memory TraceKeyProvider and pseudonymizer (no PKCS#11); "
                "upload = verify_batch_summary + preparation (SAM signatures, pseudonyms) + "
                "durable insert; loop = taps, dedup, chaining, ledger; crypto_bound = SAM "
                "signing bytes + batched CMAC per SAM only, as the upload worker checks them, "
                "one process; "
                "tx_per_s = the better of single_process and pipelined",
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
