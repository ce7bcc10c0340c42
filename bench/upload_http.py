"""Benchmark: N terminals uploading signed batches over HTTP to ``regioncard backend serve``.

For N = 1, 8, 32 and 200 simulated terminals (``--terminals`` to choose), on SQLite and on
PostgreSQL (a throwaway cluster), a fresh database each time: the real command serves the API
(uvicorn, its validation loop in a second process), the terminals are registered in the database,
and each terminal (a thread with its own HTTP connection) posts its batches one after the other,
all terminals at once. A refused upload (any status but 200) is counted by status and sent
again after a jittered back-off, as a gate does (``terminal/journal/upload.py``), until acked.

Records are the ones of ``bench/validation_loop.py`` (SAM-signed, Ed25519-signed batches of
``--batch`` records). The served backend has its own random keys, so its loop files these
records as forged: that changes nothing to an upload (verified, prepared, stored the same way).

Per run: records acked per second (first send to last ack), p50 / p99 of the ack latency (one
POST, from send to answer), errors by status, and, in the same run, the in-process upload rate
of the same batches (``receive_batch`` in one thread, with the upload worker's preparation, on a
fresh database of the same kind): ``http_vs_in_process`` is the ratio. Prints one JSON object::

    .venv/bin/python bench/upload_http.py --quick
    .venv/bin/python bench/upload_http.py --db both
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from backend.auth.roles import TerminalKind  # noqa: E402
from backend.db import make_engine, make_sessionmaker  # noqa: E402
from backend.migrate import upgrade  # noqa: E402
from backend.pgcluster import PostgresCluster, throwaway_cluster  # noqa: E402
from backend.terminals.service import register_terminal  # noqa: E402
from backend.uploads.service import receive_batch  # noqa: E402
from backend.validation.prepare import RecordPreparer  # noqa: E402
from backend.validation.providers import InMemoryPseudonymizer, InMemoryTraceKeys  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_vl", ROOT / "bench" / "validation_loop.py")
assert _spec is not None and _spec.loader is not None
vl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vl)

DEADLINE_S = 600.0


def workload(terminals: int, records: int, per_batch: int) -> list[tuple[Any, list[bytes]]]:
    """``terminals`` terminals and their signed batches, about ``records`` records in all."""
    random.seed(terminals)
    sims = [vl._Terminal(i) for i in range(terminals)]
    per_terminal = max(per_batch, records // terminals)
    cards = [vl._Card(random.getrandbits(64).to_bytes(8, "big")) for _ in range(records // 2 + 1)]
    out = []
    for sim in sims:
        batches = []
        for first in range(0, per_terminal, per_batch):
            at = vl.T0 + timedelta(minutes=first)
            count = min(per_batch, per_terminal - first)
            batch = [vl._record(sim, random.choice(cards), at) for _ in range(count)]
            batches.append(vl._batch_bytes(sim, batch, at))
        out.append((sim, batches))
    return out


@contextmanager
def databases(kind: str) -> Iterator[Any]:
    """A factory of fresh migrated database URLs of ``kind``."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-http-") as folder:
            names = iter(range(1000))
            yield lambda: _sqlite(f"sqlite:///{folder}/db{next(names)}.db")
    else:
        with throwaway_cluster() as cluster:
            names = iter(range(1000))
            yield lambda: _postgres(cluster, f"bench{next(names)}")


def _sqlite(url: str) -> str:
    upgrade(url)
    return url


def _postgres(cluster: PostgresCluster, name: str) -> str:
    admin = create_engine(cluster.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = cluster.url.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    return url


def register(url: str, work: list[tuple[Any, list[bytes]]]) -> dict[str, dict[str, str]]:
    """Register every terminal (device key, SAM); their request headers."""
    engine = make_engine(url)
    headers = {}
    with make_sessionmaker(engine)() as session, session.begin():
        for sim, _ in work:
            registered = register_terminal(
                session,
                terminal_id=sim.id,
                kind=TerminalKind.GATE,
                station_id=sim.station,
                sam_serial=sim.sam_serial,
                public_key=sim.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            )
            headers[sim.id] = {
                "Authorization": f"Bearer {registered.credential}",
                "X-Regioncard-Terminal": sim.id,
                "Content-Type": "application/json",
            }
    engine.dispose()
    return headers


def in_process(url: str, work: list[tuple[Any, list[bytes]]]) -> float:
    """Records per second of the upload service called directly, one batch after the other."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    keys = {(sim.id, vl.key_id(sim.key.public_key())): sim.key.public_key() for sim, _ in work}
    lookup = vl._lookup(keys)
    preparer = RecordPreparer(InMemoryTraceKeys(vl.TRACE_MASTER), InMemoryPseudonymizer(b"x" * 32))
    records = 0
    start = time.perf_counter()
    for sim, batches in work:
        for body in batches:
            outcome = receive_batch(
                factory,
                sim.id,
                body,
                lookup,
                max_bytes=4 << 20,
                max_records=5000,
                prepare=preparer.prepare_body,
            )
            if outcome.status_code != 200:
                raise SystemExit(f"in-process upload refused: {outcome.ack}")
            records += body.count(b'"terminal_seq":')
    elapsed = time.perf_counter() - start
    engine.dispose()
    return records / elapsed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(url: str, folder: Path, workers: int = 1) -> Iterator[tuple[str, int]]:
    """``regioncard backend serve`` on ``url``; yields (host, port)."""
    port = _free_port()
    env = {
        **os.environ,
        "REGIONCARD_VAR_DIR": str(folder),
        "REGIONCARD_DATABASE_URL": url,
        "REGIONCARD_JWT_SECRET": "bench-secret-0123456789abcdef0123456789",
    }
    command = [sys.executable, "-m", "regioncard", "backend", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    server = subprocess.Popen(
        [*command, "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("regioncard backend serve did not start") from None
                time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def over_http(
    host: str, port: int, work: list[tuple[Any, list[bytes]]], headers: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """Every terminal posts its batches, all terminals at once; latencies and errors."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    guard = threading.Lock()
    barrier = threading.Barrier(len(work) + 1)

    def terminal(sim: Any, batches: list[bytes]) -> None:
        rng = random.Random(sim.id)
        conn = http.client.HTTPConnection(host, port, timeout=DEADLINE_S)
        barrier.wait()
        for body in batches:
            attempt = 0
            while True:
                attempt += 1
                sent = time.perf_counter()
                try:
                    conn.request("POST", "/api/v1/uploads", body=body, headers=headers[sim.id])
                    answer = conn.getresponse()
                    answer.read()
                    status = str(answer.status)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=DEADLINE_S)
                    status = type(exc).__name__
                took = time.perf_counter() - sent
                with guard:
                    latencies.append(took)
                    if status != "200":
                        errors[status] += 1
                if status == "200":
                    break
                if attempt > 8:
                    raise SystemExit(f"{sim.id}: upload never acked ({status})")
                time.sleep(rng.uniform(0, min(10.0, 0.2 * 2**attempt)))  # full jitter
        conn.close()

    threads = [threading.Thread(target=terminal, args=item) for item in work]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    records = sum(body.count(b'"terminal_seq":') for _, batches in work for body in batches)
    latencies.sort()
    return {
        "records": records,
        "batches": sum(len(b) for _, b in work),
        "records_per_s": round(records / wall),
        "ack_p50_s": round(latencies[len(latencies) // 2], 3),
        "ack_p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
        "ack_max_s": round(latencies[-1], 3),
        "errors_by_status": dict(errors),
    }


def stored_once(url: str, batches: int) -> bool:
    """Every batch stored exactly once."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT count(*), count(DISTINCT batch_id) FROM upload_batches")
        ).one()
    engine.dispose()
    return tuple(rows) == (batches, batches)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--terminals", default="1,8,32,200", help="comma-separated N")
    parser.add_argument("-n", "--records", type=int, default=40_000, help="records per run")
    parser.add_argument("--batch", type=int, default=50, help="records per batch")
    parser.add_argument("--quick", action="store_true", help="8,000 records per run")
    parser.add_argument("--workers", type=int, default=1, help="API processes of serve")
    args = parser.parse_args(argv)
    records = 8_000 if args.quick else args.records
    counts = [int(n) for n in args.terminals.split(",")]
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    result: dict[str, Any] = {
        "bench": "upload_http",
        "records_per_run": records,
        "records_per_batch": args.batch,
        "cpu_count": os.cpu_count(),
        "layout": f"regioncard backend serve: uvicorn ({args.workers} API process(es)) "
        "+ 1 validation loop process",
    }
    for kind in kinds:
        runs = {}
        with databases(kind) as fresh, tempfile.TemporaryDirectory() as folder:
            for n in counts:
                work = workload(n, records, args.batch)
                local = in_process(fresh(), work)
                url = fresh()
                headers = register(url, work)
                with served(url, Path(folder) / f"var{n}", args.workers) as (host, port):
                    measured = over_http(host, port, work, headers)
                measured["stored_once"] = stored_once(url, measured["batches"])
                measured["in_process_records_per_s"] = round(local)
                measured["http_vs_in_process"] = round(measured["records_per_s"] / local, 2)
                runs[str(n)] = measured
        result[kind] = runs
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
