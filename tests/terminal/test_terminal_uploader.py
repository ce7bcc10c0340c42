"""A gate's journal reaches a live backend (uvicorn on 127.0.0.1) through JournalUploader.

The gate runs on an emulated card and SAM (in-process readers, engine/enginekit.py); the backend
is the desk tests' (desk/deskkit.py), whose SoftHSM token holds the same demo master keys, so the
validation loop verifies the SAM signatures of the gate's records. The outage is a second uvicorn
server of the same app on a port of our own, stopped and started again. No test measures time:
waits poll a condition until a generous deadline.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

HERE = Path(__file__).resolve().parent
for kit in ("engine", "desk", "gate"):
    if str(HERE / kit) not in sys.path:
        sys.path.insert(0, str(HERE / kit))

from deskkit import LiveBackend, free_port, live_backend, serving  # noqa: E402
from enginekit import Rig, demo_keys, make_card  # noqa: E402
from gatekit import GateRig, build_gate  # noqa: E402

from card_schema.errors import RegionCardError  # noqa: E402
from card_schema.uploads.batch import Ack, AckStatus  # noqa: E402
from card_schema.uploads.records import TransactionState  # noqa: E402
from firmware_host.readers.inprocess import InProcessReader  # noqa: E402
from hardware.sam.emulator import EmulatedSAM  # noqa: E402
from terminal import cli  # noqa: E402
from terminal.canteen import cli as canteen_cli  # noqa: E402
from terminal.fares.model import Mode, Place  # noqa: E402
from terminal.journal import Journal  # noqa: E402
from terminal.journal.upload import HTTPUploadTransport, RetryPolicy  # noqa: E402
from terminal.uploader import JournalUploader, bearer_opener  # noqa: E402

pytestmark = pytest.mark.integration

METRO = Place(station_id=101, zone=1, network_id=250001, mode=Mode.URBAN)
ONE_TRY = RetryPolicy(max_attempts=1)
DEADLINE_S = 20.0  # a generous bound for polling, never an assertion on elapsed time


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@dataclass
class Terminal:
    """A gate registered on the backend with its device key."""

    terminal_id: str
    sam_serial: bytes
    credential: str
    device_key: Ed25519PrivateKey


def sam_serial_of(terminal_id: str) -> bytes:
    """One SAM per terminal (the backend refuses a SAM already in another terminal)."""
    return bytes.fromhex("5A01") + int(terminal_id.rsplit("-", 1)[1]).to_bytes(2, "big")


def register_gate(live: LiveBackend, terminal_id: str) -> Terminal:
    device_key = Ed25519PrivateKey.generate()
    public = device_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    credential = live.register_terminal(
        terminal_id=terminal_id,
        kind="gate",
        station_id=METRO.station_id,
        sam_serial=sam_serial_of(terminal_id).hex(),
        public_key=public.hex(),
    )
    return Terminal(terminal_id, sam_serial_of(terminal_id), credential, device_key)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    with live_backend(tmp_path_factory.mktemp("upload-backend")) as backend:
        yield backend


@contextmanager
def gate(directory: Path, terminal_id: str) -> Iterator[GateRig]:
    directory.mkdir(parents=True, exist_ok=True)
    sam = EmulatedSAM(demo_keys(), sam_serial_of(terminal_id), counter_file=directory / "sam.json")
    g = build_gate(directory, terminal_id=terminal_id, sam=sam)
    card_serial = bytes(4) + sam_serial_of(terminal_id)  # one card per test: no replays
    g.rig.personalise(make_card(card_serial, sv_balance=2000))
    try:
        yield g
    finally:
        g.close()


def backend_batches(live: LiveBackend, terminal_id: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from backend.db import transaction
    from backend.uploads.models import UploadBatch

    with transaction(live.app.state.sessionmaker) as session:
        rows = session.execute(
            select(UploadBatch.batch_id, UploadBatch.body_sha256)
            .where(UploadBatch.terminal_id == terminal_id)
            .order_by(UploadBatch.id)
        ).all()
    return [(batch_id, digest) for batch_id, digest in rows]


def backend_taps(live: LiveBackend, terminal_id: str) -> list[tuple[int, str]]:
    """Run the validation loop, then the terminal's taps as ``(terminal_seq, status)``."""
    from sqlalchemy import select

    from backend.db import transaction
    from backend.uploads.router import validation_loop_of
    from backend.validation.models import Tap

    validation_loop_of(live.app).run_once()
    with transaction(live.app.state.sessionmaker) as session:
        rows = session.execute(
            select(Tap.terminal_seq, Tap.status)
            .where(Tap.terminal_id == terminal_id)
            .order_by(Tap.terminal_seq)
        ).all()
    return [(int(seq or 0), str(status)) for seq, status in rows]  # a gate's taps have a seq


def committed(journal: Journal) -> list[int]:
    return [r.seq for r in journal.records(states=[TransactionState.COMMITTED])]


# -- uploads against the live backend ---------------------------------------------------------


def test_gate_journal_is_uploaded_and_the_validation_loop_posts_it(
    live: LiveBackend, tmp_path: Path
) -> None:
    term = register_gate(live, "GATE-UP-101")
    with gate(tmp_path, term.terminal_id) as g:
        assert g.ride().display == "Bon voyage — solde 18,20 €"
        assert g.ride().accepted
        seqs = committed(g.journal)  # a pay-as-you-go tap: a PLUM and a wallet session
        assert len(seqs) == 4 and g.journal.unuploaded_count() == 4
        uploader = JournalUploader(
            g.journal_path,
            term.terminal_id,
            live.url,
            term.credential,
            term.device_key,
            interval=60.0,
        )
        report = uploader.upload_now()
        assert report is not None and report.complete and report.records_acked == 4
        assert g.journal.unuploaded_count() == 0 and uploader.failed_rounds == 0
        batch_id = report.acked[0]
        stored = g.journal.batch(batch_id)
        assert stored is not None
        assert backend_batches(live, term.terminal_id) == [
            (batch_id, hashlib.sha256(stored.body).hexdigest())
        ]
        assert backend_taps(live, term.terminal_id) == [(seq, "posted") for seq in seqs]

        # In the background: a tap, a wake, and the record goes without anything else.
        uploader.start(immediately=False)
        try:
            assert g.ride().accepted
            uploader.wake()
            wait_until(lambda: g.journal.unuploaded_count() == 0, "third tap uploaded")
        finally:
            uploader.stop()
        seqs = committed(g.journal)
        assert len(seqs) == 6
        assert backend_taps(live, term.terminal_id) == [(seq, "posted") for seq in seqs]
        assert uploader.upload_now() is not None and uploader.last_report is not None
        assert uploader.last_report.acked == []  # nothing left, nothing sent twice


def test_backend_down_nothing_lost_uploaded_once_when_back(
    live: LiveBackend, tmp_path: Path
) -> None:
    term = register_gate(live, "GATE-UP-102")
    port = free_port()  # nobody listens there yet: the backend is down
    with gate(tmp_path, term.terminal_id) as g:
        uploader = JournalUploader(
            g.journal_path,
            term.terminal_id,
            f"http://127.0.0.1:{port}",
            term.credential,
            term.device_key,
            interval=60.0,
            retry_s=0.05,
            timeout_s=5.0,
            retry=ONE_TRY,
        )
        # Not immediately: a first round racing the first ride could batch part of its
        # records, and the test counts on the four of them waiting in one stored batch.
        uploader.start(immediately=False)
        try:
            assert g.ride().accepted  # the barrier opens; the uploader's thread is running
            assert g.ride().accepted
            uploader.wake()  # from here the uploads fail in the background
            wait_until(lambda: uploader.failed_rounds >= 3, "failed rounds while down")
            report = uploader.last_report
            assert report is not None and not report.complete
            down = committed(g.journal)
            assert len(down) == 4 and g.journal.unuploaded_count() == 4
            [outbox] = g.journal.unacked_batches()  # signed and stored before being sent
            assert backend_batches(live, term.terminal_id) == []

            # the backend 'comes back' on the port the uploader was given
            with serving(live.app, port, name="uvicorn-uploads", start_timeout_s=DEADLINE_S):
                wait_until(lambda: g.journal.unuploaded_count() == 0, "uploaded once back")
                assert g.ride().accepted
                uploader.wake()
                wait_until(lambda: g.journal.unuploaded_count() == 0, "third tap uploaded")
                # The round resets its failure count after the journal says all is uploaded.
                wait_until(lambda: uploader.failed_rounds == 0, "a successful round counted")
        finally:
            uploader.stop()
        sent = backend_batches(live, term.terminal_id)
        assert sent[0] == (outbox.batch_id, hashlib.sha256(outbox.body).hexdigest())
        assert len({batch_id for batch_id, _ in sent}) == len(sent) == 2
        seqs = committed(g.journal)
        assert len(seqs) == 6 and seqs[:4] == down
        assert backend_taps(live, term.terminal_id) == [(seq, "posted") for seq in seqs]

        # The same bytes again (an ack lost on the way): a duplicate, never a second record.
        transport = HTTPUploadTransport(
            live.url, term.terminal_id, opener=bearer_opener(term.credential)
        )
        ack = Ack.decode(transport.send(outbox.body))
        assert ack.batch_id == outbox.batch_id and ack.status is AckStatus.DUPLICATE
        assert [seq for seq, _ in backend_taps(live, term.terminal_id)] == seqs


def test_a_tap_never_waits_for_a_round_stuck_on_the_network(tmp_path: Path) -> None:
    """The upload thread is inside a request the 'backend' never answers while a card is
    served; the tap completes, and the round is still in progress when it does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        with gate(tmp_path, "GATE-UP-103") as g:
            assert g.ride().accepted
            uploader = JournalUploader(
                g.journal_path,
                "GATE-UP-103",
                f"http://127.0.0.1:{port}",
                "rct_unused",
                Ed25519PrivateKey.generate(),
                interval=60.0,
                timeout_s=30.0,
                retry=ONE_TRY,
            )
            uploader.start()
            try:
                connection, _ = listener.accept()  # the round is now waiting for an answer
                with connection:
                    assert g.ride().accepted
                    assert uploader.rounds == 0  # still in the first round
                    assert len(committed(g.journal)) == 4
                # connection closed without an answer: the round fails, nothing is lost
                wait_until(lambda: uploader.rounds == 1, "first round ended")
                assert uploader.failed_rounds == 1
            finally:
                uploader.stop()
            assert g.journal.unuploaded_count() == 4


# -- command lines ----------------------------------------------------------------------------


def _write_key(path: Path) -> Path:
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.register(sub)
    canteen_cli.register(sub)
    return parser


GATE_ARGS = ["gate", "--reader", "r", "--sam", "s", "--station", "7"]
CANTEEN_ARGS = ["canteen", "--school", "0801234G", "--reader", "r", "--sam", "s"]


def test_gate_cli_upload_options(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = _write_key(tmp_path / "device.pem")
    credential = tmp_path / "credential"
    credential.write_text("rct_abc\n", encoding="ascii")
    parser = _parser()

    alone = parser.parse_args([*GATE_ARGS, "--upload-key", str(key)])
    with pytest.raises(RegionCardError, match="--upload-key needs --backend"):
        cli._gate(alone)  # refused before any reader is opened

    full = parser.parse_args(
        [
            *GATE_ARGS,
            "--backend",
            "http://127.0.0.1:9",
            "--credential-file",
            str(credential),
            "--upload-key",
            str(key),
            "--upload-minutes",
            "2",
        ]
    )
    assert full.upload_minutes == 2.0 and full.sync_minutes == 5.0
    uploader = cli._journal_uploader(full, "GATE-7", tmp_path / "gate-7.db")
    assert uploader is not None and not uploader.started
    assert (uploader.terminal_id, uploader.backend_url, uploader.interval) == (
        "GATE-7",
        "http://127.0.0.1:9",
        120.0,
    )
    assert "rct_abc" not in repr(uploader)

    with caplog.at_level(logging.WARNING, logger="terminal.uploader"):
        no_key = parser.parse_args(
            [*GATE_ARGS, "--backend", "http://b", "--credential-file", str(credential)]
        )
        assert cli._journal_uploader(no_key, "GATE-7", tmp_path / "gate-7.db") is None
    assert "no --upload-key" in caplog.text

    no_credential = argparse.Namespace(**{**vars(full), "credential_file": None})
    with pytest.raises(RegionCardError, match="--credential-file"):
        cli._journal_uploader(no_credential, "GATE-7", tmp_path / "gate-7.db")
    zero = argparse.Namespace(**{**vars(full), "upload_minutes": 0.0})
    with pytest.raises(RegionCardError, match="--upload-minutes"):
        cli._journal_uploader(zero, "GATE-7", tmp_path / "gate-7.db")
    not_a_key = argparse.Namespace(**{**vars(full), "upload_key": credential})
    with pytest.raises(RegionCardError, match="clé d'envoi illisible"):
        cli._journal_uploader(not_a_key, "GATE-7", tmp_path / "gate-7.db")


def test_canteen_cli_upload_options(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = _write_key(tmp_path / "device.pem")
    credential = tmp_path / "credential"
    credential.write_text("rct_till\n", encoding="ascii")
    journal = tmp_path / "cantine.journal"
    parser = _parser()

    alone = parser.parse_args([*CANTEEN_ARGS, "--journal", str(journal), "--upload-key", str(key)])
    with pytest.raises(RegionCardError, match="--upload-key needs --backend"):
        canteen_cli.run(alone)  # refused before the readers are opened
    no_credential = parser.parse_args(
        [*CANTEEN_ARGS, "--backend", "http://b", "--upload-key", str(key)]
    )
    with pytest.raises(RegionCardError, match="--backend needs --credential-file"):
        canteen_cli.run(no_credential)

    full = parser.parse_args(
        [
            *CANTEEN_ARGS,
            "--journal",
            str(journal),
            "--backend",
            "http://127.0.0.1:9",
            "--credential-file",
            str(credential),
            "--upload-key",
            str(key),
        ]
    )
    assert full.upload_minutes == 1.0
    uploader = canteen_cli.journal_uploader(full)
    assert uploader is not None and not uploader.started
    assert (uploader.terminal_id, uploader.journal_path, uploader.interval) == (
        "CANTINE-0801234G-1",
        journal,
        60.0,
    )

    with caplog.at_level(logging.WARNING, logger="terminal.uploader"):
        plain = parser.parse_args(CANTEEN_ARGS)
        assert canteen_cli.journal_uploader(plain) is None
    assert "no --upload-key" in caplog.text


def test_gate_command_uploads_its_tap(
    live: LiveBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``regioncard gate --once`` with --backend, --credential-file and --upload-key: the tap's
    records are on the backend when the command returns (the uploader's last round)."""
    term = register_gate(live, "GATE-UP-104")
    rig = Rig(tmp_path)
    rig.sam = EmulatedSAM(demo_keys(), term.sam_serial, counter_file=tmp_path / "sam.json")
    rig.sam_reader = InProcessReader(rig.sam, name="sam")
    rig.personalise(make_card(bytes(4) + term.sam_serial, sv_balance=2000))
    rig.present()
    readers = {"card": rig.reader, "sam": rig.sam_reader}
    monkeypatch.setattr(cli, "_reader", lambda spec: readers[spec])
    with live.client() as client:
        raw = bytes.fromhex(client.get("/api/v1/deny-lists/public-key").json()["public_key"])
    backend_key = tmp_path / "backend.pem"
    backend_key.write_bytes(
        Ed25519PublicKey.from_public_bytes(raw).public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    )
    credential = tmp_path / "credential"
    credential.write_text(term.credential, encoding="ascii")
    device = tmp_path / "device.pem"
    device.write_bytes(
        term.device_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    journal_path = tmp_path / "gate.db"
    args = _parser().parse_args(
        [
            "gate",
            "--reader",
            "card",
            "--sam",
            "sam",
            "--station",
            str(METRO.station_id),
            "--terminal-id",
            term.terminal_id,
            "--journal",
            str(journal_path),
            "--backend",
            live.url,
            "--backend-key",
            str(backend_key),
            "--credential-file",
            str(credential),
            "--upload-key",
            str(device),
            "--once",
            "--wait",
            "1",
        ]
    )
    assert cli._gate(args) == 0
    with Journal.open(journal_path, term.terminal_id, owner=False) as journal:
        seqs = committed(journal)
        assert seqs and journal.unuploaded_count() == 0
    assert [seq for seq, _ in backend_taps(live, term.terminal_id)] == seqs
