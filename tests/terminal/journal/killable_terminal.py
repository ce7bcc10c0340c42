"""A minimal terminal and card for the SIGKILL tests of the journal (test helper, also a script).

The card is a file: a transaction counter, a cyclic event log of 3 records, an SV balance, and
(for the test's eyes only) the history of every session it committed. A session's changes are
applied by one atomic ``os.replace``, which is the anti-tearing of a real card: a session not
closed leaves the card as it was. The card's counter moves at each committed session.

The terminal follows the journal's write-ahead protocol (``docs/journal.md``) and uploads to a
"backend" that is a directory of received batch bodies. Run as a script, it performs a fixed plan
of transactions and kills itself with SIGKILL at the checkpoint named on the command line; the
test then calls :func:`restart` in its own process and checks that card, journal and backend
agree. The gate-level version of this test, with the emulated card and SAM, belongs to the gate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.uploads.batch import Ack, AckStatus, verify_batch
from card_schema.uploads.records import PurseMovement, PurseUnit, TransactionIntent, TransactionKind
from terminal.journal.store import Journal
from terminal.journal.upload import RetryPolicy, UploadQueue

TERMINAL_ID = "GATE-LIL-0042"
CARD_SERIAL = bytes.fromhex("0000000012345678")
INITIAL_BALANCE = 2_000
FARE = 170
EVENT_LOG_DEPTH = 3
DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test terminal key").digest())
EPOCH = datetime(2025, 9, 1, 7, 30, tzinfo=UTC)

# The plan run before the kill: what the card does with each session.
PLAN = ("ok", "refused", "lost_response", "ok", "ok")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class CardImage:
    """What a tap reads: counter, event log (newest first), balance."""

    counter: int
    events: tuple[bytes, ...]
    balance: int


class FileCard:
    """The card model; every committed session is one atomic file replacement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            self._save({"counter": 1, "events": [], "balance": INITIAL_BALANCE, "history": []})

    def _load(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.path.read_text())
        return loaded

    def _save(self, state: dict[str, Any]) -> None:
        _atomic_write(self.path, json.dumps(state).encode())

    def read(self) -> CardImage:
        """Open session: what the terminal reads."""
        state = self._load()
        return CardImage(
            state["counter"], tuple(bytes.fromhex(e) for e in state["events"]), state["balance"]
        )

    def close_session(self, counter_at_open: int, event: bytes, amount: int) -> None:
        """Commit the session: counter, event, balance, all at once (anti-tearing)."""
        state = self._load()
        assert state["counter"] == counter_at_open, "another session ran in between"
        state["counter"] += 1
        state["events"] = [event.hex(), *state["events"]][:EVENT_LOG_DEPTH]
        state["balance"] += amount
        state["history"].append(
            {"counter": counter_at_open, "event": event.hex(), "amount": amount}
        )
        self._save(state)

    def history(self) -> list[dict[str, Any]]:
        """Ground truth: every committed session (test only; a real card keeps 3 events)."""
        history: list[dict[str, Any]] = self._load()["history"]
        return history

    def balance(self) -> int:
        """Current SV balance."""
        balance: int = self._load()["balance"]
        return balance


class DirectoryBackend:
    """Transport to a fake backend: each received body is a file; acks like the real one will."""

    def __init__(self, directory: Path, checkpoint: Checkpoints) -> None:
        self.directory = directory
        directory.mkdir(exist_ok=True)
        self.checkpoint = checkpoint

    def send(self, batch_bytes: bytes) -> bytes:
        """Store the body (durably), then acknowledge it."""
        self.checkpoint.reach("before_send")
        batch = verify_batch(batch_bytes, DEVICE_KEY.public_key())
        received = sorted(self.directory.iterdir())
        name = f"{len(received):04d}-{hashlib.sha256(batch_bytes).hexdigest()[:16]}.json"
        _atomic_write(self.directory / name, batch_bytes)
        self.checkpoint.reach("after_backend_received")
        seen = {verify_batch(p.read_bytes(), DEVICE_KEY.public_key()).batch_id for p in received}
        status = AckStatus.DUPLICATE if batch.batch_id in seen else AckStatus.ACCEPTED
        return Ack(batch.batch_id, status).encode()


class Checkpoints:
    """Kills this process with SIGKILL when the named checkpoint of the named session is reached."""

    def __init__(self, kill_step: str | None, kill_tx: int | None, announce: bool) -> None:
        self.kill_step = kill_step
        self.kill_tx = kill_tx
        self.announce = announce
        self.tx: int | None = None
        self.phase = ""

    def reach(self, step: str) -> None:
        """A step of the protocol is done (or about to be, for ``in_*`` steps)."""
        if self.announce:
            print(f"{self.tx} {step}", flush=True)
        if step == self.kill_step and self.tx == self.kill_tx:
            os.kill(os.getpid(), signal.SIGKILL)

    def sql_trace(self, statement: str) -> None:
        """SQLite trace hook: the COMMIT of begin/commit/abort/... about to run."""
        if statement.strip().upper() == "COMMIT" and self.phase:
            self.reach(f"in_{self.phase}")


def open_journal(directory: Path, checkpoint: Checkpoints | None = None) -> Journal:
    """The terminal's journal; with a checkpoint, its SQL COMMITs are kill points too."""
    journal = Journal.open(
        directory / "journal.db", TERMINAL_ID, clock=lambda: EPOCH + timedelta(hours=1)
    )
    if checkpoint is not None:
        journal._conn.set_trace_callback(checkpoint.sql_trace)
    return journal


def tap(journal: Journal, card: FileCard, tx: int, fate: str, checkpoint: Checkpoints) -> None:
    """One tap at the gate: resolve earlier uncertain sessions, then one SV debit session."""
    checkpoint.tx = tx
    image = card.read()
    checkpoint.phase = "resolve"
    journal.resolve(CARD_SERIAL, image.counter, image.events)
    checkpoint.phase = ""
    checkpoint.reach("before_begin")
    event = f"EVT{tx:03d}".encode().ljust(29, b"\x00")
    intent = TransactionIntent(
        kind=TransactionKind.SV_DEBIT,
        application="wallet",
        card_serial=CARD_SERIAL,
        card_tx_counter=image.counter,
        occurred_at=EPOCH + timedelta(minutes=tx),
        movements=(
            PurseMovement(
                "wallet.sv", PurseUnit.EUROCENT, -FARE, image.balance, image.balance - FARE
            ),
        ),
        product_code=1,
        station_id=1042,
        last_events=image.events,
        written_event=event,
    )
    checkpoint.phase = "begin"
    seq = journal.begin(intent)
    checkpoint.phase = ""
    checkpoint.reach("after_begin")
    if fate == "refused":
        checkpoint.reach("after_card_refusal")
        checkpoint.phase = "abort"
        journal.abort(seq, "6985: conditions of use not satisfied")
        checkpoint.phase = ""
        checkpoint.reach("after_abort")
        return
    card.close_session(image.counter, event, -FARE)
    checkpoint.reach("after_card_close")
    if fate == "lost_response":
        checkpoint.phase = "mark_uncertain"
        journal.mark_uncertain(seq)
        checkpoint.phase = ""
        checkpoint.reach("after_mark_uncertain")
        return
    checkpoint.phase = "commit"
    journal.commit(seq, b"SAM" + seq.to_bytes(4, "big") + b"\x5a" * 8)
    checkpoint.phase = ""
    checkpoint.reach("after_commit")


def upload(journal: Journal, directory: Path, checkpoint: Checkpoints) -> None:
    """Upload everything decided, batches of 2 records (so there are several)."""
    queue = UploadQueue(
        journal,
        DirectoryBackend(directory / "backend", checkpoint),
        DEVICE_KEY,
        max_records=2,
        retry=RetryPolicy(max_attempts=1),
        sleep=lambda _: None,
        clock=lambda: EPOCH + timedelta(hours=2),
    )
    checkpoint.phase = "store_batch"
    queue.prepare_batches()
    checkpoint.phase = ""
    checkpoint.reach("after_batches_stored")
    checkpoint.phase = "mark_acked"
    report = queue.upload()
    checkpoint.phase = ""
    assert report.complete, report
    checkpoint.reach("after_upload")


def run(directory: Path, kill_step: str | None, kill_tx: int | None, announce: bool) -> None:
    """The plan, with an upload after each tap."""
    checkpoint = Checkpoints(kill_step, kill_tx, announce)
    card = FileCard(directory / "card.json")
    journal = open_journal(directory, checkpoint)
    for tx, fate in enumerate(PLAN):
        tap(journal, card, tx, fate, checkpoint)
        upload(journal, directory, checkpoint)
    journal.close()


def restart(directory: Path, more_taps: int = 2) -> Journal:
    """After the kill: reopen, the card comes back, a few more taps, upload everything."""
    checkpoint = Checkpoints(None, None, announce=False)
    card = FileCard(directory / "card.json")
    journal = open_journal(directory)
    for tx in range(len(PLAN), len(PLAN) + more_taps):
        tap(journal, card, tx, "ok", checkpoint)
    upload(journal, directory, checkpoint)
    return journal


def main() -> None:
    """Script entry: ``killable_terminal.py DIR [--kill-step S --kill-tx N] [--announce]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--kill-step")
    parser.add_argument("--kill-tx", type=int)
    parser.add_argument("--announce", action="store_true")
    args = parser.parse_args()
    run(args.directory, args.kill_step, args.kill_tx, args.announce)
    sys.exit(0)


if __name__ == "__main__":
    main()
