"""The gate fetches its signed tables from a live backend (uvicorn on 127.0.0.1) with BackendSync.

The gate runs on an emulated card and SAM (in-process readers, ../engine/enginekit.py) at a fixed
local time; the tables are verified at the real time, when the backend signed them.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = Path(__file__).resolve().parent
for kit in ("engine", "desk", "gate"):
    if str(HERE / kit) not in sys.path:
        sys.path.insert(0, str(HERE / kit))

from deskkit import LiveBackend, live_backend, register_terminal  # noqa: E402
from enginekit import SERIAL, make_card  # noqa: E402
from gatekit import GateRig, build_gate  # noqa: E402

from terminal import cli  # noqa: E402
from terminal.fares import load_tariff  # noqa: E402
from terminal.fares.model import Mode, Place  # noqa: E402
from terminal.fares.signed import PushedTables  # noqa: E402
from terminal.sync import BackendSync, Outcome  # noqa: E402

pytestmark = pytest.mark.integration

GATE_ID = "GATE-SYNC-101"
METRO = Place(station_id=101, zone=1, network_id=250001, mode=Mode.URBAN)
DEFAULT_TABLE = HERE.parents[1] / "terminal/fares/data/default_tariff.json"


@dataclass
class Remote:
    """A live backend with a registered gate."""

    live: LiveBackend
    credential: str
    public_key: Ed25519PublicKey

    def post(self, path: str, body: Any, *, supervisor: bool = True) -> Any:
        headers = self.live.supervisor_headers if supervisor else self.live.agent_headers
        with self.live.client() as client:
            answer = client.post(path, json=body, headers=headers)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def publish_tariff(self, single_fare: int) -> int:
        table = json.loads(DEFAULT_TABLE.read_text(encoding="utf-8"))
        table["fare_products"][0]["amount"] = single_fare  # TICKET_UNITAIRE
        return int(self.post("/api/v1/tariffs", table)["version"])

    def block(self, serial: str) -> None:
        holder = self.post("/api/v1/holders", {"anonymous": True}, supervisor=False)
        card = {"holder_id": holder["id"], "serial": serial, "applications": ["plum", "wallet"]}
        self.post("/api/v1/cards", card, supervisor=False)
        self.post(f"/api/v1/cards/{serial}/block", {"reason": "carte perdue"}, supervisor=False)

    def sync_for(self, tables: PushedTables, url: str | None = None) -> BackendSync:
        return BackendSync(url or self.live.url, GATE_ID, self.credential, tables, timeout_s=3)


@contextmanager
def remote_backend(directory: Path) -> Iterator[Remote]:
    with live_backend(directory) as live:
        with live.client() as client:
            credential = register_terminal(
                client, live.supervisor_headers, terminal_id=GATE_ID, kind="gate", station_id=101
            )
            raw = bytes.fromhex(client.get("/api/v1/deny-lists/public-key").json()["public_key"])
        yield Remote(live, credential, Ed25519PublicKey.from_public_bytes(raw))


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    with remote_backend(tmp_path_factory.mktemp("sync-backend")) as live:
        yield live


@contextmanager
def gate(
    directory: Path, public_key: Ed25519PublicKey, tables: PushedTables | None = None
) -> Iterator[GateRig]:
    directory.mkdir(parents=True, exist_ok=True)
    tables = tables or PushedTables(public_key, load_tariff())
    g = build_gate(directory, terminal_id=GATE_ID, tables=tables)
    g.rig.personalise(make_card(sv_balance=1000))  # a fixed school Monday: contracts valid
    try:
        yield g
    finally:
        g.close()


def test_gate_takes_tariff_and_deny_list_from_the_backend(remote: Remote, tmp_path: Path) -> None:
    with gate(tmp_path, remote.public_key) as g:
        sync = remote.sync_for(g.tables)
        assert g.ride().display == "Bon voyage — solde 8,20 €"  # packaged table: 1,80 €
        report = sync.sync()
        assert report.tariff is Outcome.NOTHING_PUBLISHED
        assert report.deny_list is Outcome.NOTHING_PUBLISHED and report.reached_backend

        version = remote.publish_tariff(150)
        remote.post("/api/v1/deny-lists/publish", None)  # deny-list version 1 (empty)
        report = sync.sync()
        assert (report.tariff, report.deny_list) == (Outcome.UPDATED, Outcome.UPDATED)
        assert g.tables.tariff.version == version and g.tables.deny_list.version == 1
        assert g.ride().display == "Bon voyage — solde 6,70 €"  # the backend's table: 1,50 €

        remote.block(SERIAL.hex().upper())
        assert sync.sync().deny_list is Outcome.UPDATED  # a delta from version 1
        assert SERIAL.hex().upper() in g.tables.deny_list.serials
        blocked = g.ride()
        assert not blocked.accepted and blocked.display == "Carte bloquée"
        assert sync.sync() == sync.sync()  # nothing newer: unchanged, nothing offered again
        assert sync.sync().tariff is Outcome.UNCHANGED

        fresh = PushedTables(remote.public_key, load_tariff())  # no list yet: the full one
        assert remote.sync_for(fresh).pull_deny_list() is Outcome.UPDATED
        assert fresh.deny_list == g.tables.deny_list


def test_tables_signed_by_another_key_are_refused_and_kept(remote: Remote) -> None:
    remote.publish_tariff(170)
    wrong = Ed25519PrivateKey.generate().public_key()
    tables = PushedTables(wrong, load_tariff())
    before = (tables.tariff, tables.deny_list)
    sync = remote.sync_for(tables)
    assert sync.sync().tariff is Outcome.REFUSED
    assert sync.pull_deny_list() is Outcome.REFUSED
    assert (tables.tariff, tables.deny_list) == before


def test_wrong_credential_is_logged_not_fatal(remote: Remote) -> None:
    tables = PushedTables(remote.public_key, load_tariff())
    sync = BackendSync(remote.live.url, GATE_ID, "rct_wrong", tables, timeout_s=3)
    report = sync.sync()
    assert not report.reached_backend and sync.failed_rounds == 1
    assert tables.tariff.version == 1


def test_backend_down_gate_keeps_working_with_the_tables_it_has(tmp_path: Path) -> None:
    backend = ExitStack()
    try:
        remote = backend.enter_context(remote_backend(tmp_path / "backend"))
        with gate(tmp_path / "gate", remote.public_key) as g:
            sync = remote.sync_for(g.tables)
            version = remote.publish_tariff(150)
            remote.block(SERIAL.hex().upper())
            assert sync.sync().reached_backend and sync.last_success is not None
            held = (g.tables.tariff, g.tables.deny_list)
            backend.close()  # the backend goes away (uvicorn stopped)

            report = sync.sync()  # logged, counted, not raised
            assert report.tariff is Outcome.UNREACHABLE and report.deny_list is Outcome.UNREACHABLE
            assert sync.failed_rounds == 1
            sync.start(interval_s=60, retry_s=0.05)  # failed rounds are retried sooner
            deadline = time.monotonic() + 30  # a bound for a busy machine, not a timing check
            while sync.failed_rounds < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            blocked = g.ride()  # decided on the tables in force, while the rounds keep failing
            sync.stop()
            assert sync.failed_rounds >= 3
            assert (g.tables.tariff, g.tables.deny_list) == held
            assert g.tables.tariff.version == version
            assert blocked.display == "Carte bloquée"
    finally:
        backend.close()


def gate_options(remote: Remote, directory: Path) -> argparse.Namespace:
    """The options of ``regioncard gate --backend ...`` (key and credential files written)."""
    pem_key = directory / "backend.pem"
    pem_key.write_bytes(
        remote.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    credential = directory / "credential"
    credential.write_text(remote.credential + "\n", encoding="ascii")
    return argparse.Namespace(
        backend=remote.live.url,
        backend_key=pem_key,
        credential_file=credential,
        sync_minutes=5.0,
        tariff=None,
        tables_dir=None,
    )


def test_gate_cli_syncs_at_start_and_in_the_background(remote: Remote, tmp_path: Path) -> None:
    args = gate_options(remote, tmp_path)
    tables = cli._tables(args)
    sync = cli._backend_sync(args, GATE_ID, tables)
    assert sync is not None
    try:
        assert tables.tariff.version >= 2 and sync.last_success is not None
    finally:
        sync.stop()
    for missing in ("backend_key", "credential_file"):
        broken = argparse.Namespace(**{**vars(args), missing: None})
        with pytest.raises(SystemExit, match=missing.replace("_", "-")):
            cli._backend_sync(broken, GATE_ID, tables)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    parsed = parser.parse_args(
        ["gate", "--reader", "r", "--sam", "s", "--station", "1", "--backend", "http://b"]
    )
    assert parsed.backend == "http://b" and parsed.sync_minutes == 5.0


def test_gate_cli_pulls_and_keeps_action_lists(remote: Remote, tmp_path: Path) -> None:
    args = gate_options(remote, tmp_path)
    journal = tmp_path / "gate.db"
    actions = cli._action_writer(args, tmp_path / "tables", journal)
    assert actions is not None and actions.outbox is not None
    sync = cli._backend_sync(args, GATE_ID, cli._tables(args), actions)
    assert sync is not None
    try:
        assert actions.lists.version > 0  # the first round, before any card
        held = actions.lists.version
    finally:
        sync.stop()
        actions.outbox.close()
    assert (tmp_path / "tables" / "action_list.json").exists()
    assert (journal.parent / "gate.db.actions").stat().st_mode & 0o777 == 0o600
    again = cli._action_writer(args, tmp_path / "tables", journal)
    assert again is not None and again.lists.version == held  # reloaded, verified again
    assert again.outbox is not None
    again.outbox.close()
    no_key = argparse.Namespace(**{**vars(args), "backend_key": None})
    assert cli._action_writer(no_key, tmp_path / "tables", journal) is None


def test_gate_restarted_while_the_backend_is_down_keeps_its_tables(tmp_path: Path) -> None:
    """The gate CLI stores what it accepted next to its journal and has it back at restart."""
    backend = ExitStack()
    try:
        remote = backend.enter_context(remote_backend(tmp_path / "backend"))
        args = gate_options(remote, tmp_path)
        tables_dir = cli._tables_dir(args, tmp_path / "gate.db")
        assert tables_dir == tmp_path / "gate.db.tables"
        version = remote.publish_tariff(150)
        remote.block(SERIAL.hex().upper())
        first = cli._backend_sync(args, GATE_ID, cli._tables(args, tables_dir))
        assert first is not None
        first.stop()
        accepted = (first.tables.tariff, first.tables.deny_list)
        assert accepted[0].version == version and SERIAL.hex().upper() in accepted[1]
        backend.close()  # the backend goes away, then the gate loses power and restarts

        restarted = cli._tables(args, tables_dir)
        assert (restarted.tariff, restarted.deny_list) == accepted
        sync = cli._backend_sync(args, GATE_ID, restarted)  # its first round fails, logged
        assert sync is not None
        sync.stop()
        assert sync.failed_rounds == 1 and sync.last_success is None
        assert (restarted.tariff, restarted.deny_list) == accepted
        with gate(tmp_path / "rig", remote.public_key, restarted) as g:
            assert g.ride().display == "Carte bloquée"  # the stolen card does not ride again
        keyless = cli._tables(argparse.Namespace(**{**vars(args), "backend_key": None}), tables_dir)
        assert keyless.store is None  # nothing to verify stored tables with: left alone
        assert sorted(p.name for p in tables_dir.iterdir()) == ["deny_list.json", "tariff.json"]
    finally:
        backend.close()
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    parsed = parser.parse_args(
        ["gate", "--reader", "r", "--sam", "s", "--station", "1", "--tables-dir", "/t"]
    )
    assert parsed.tables_dir == Path("/t")
    with pytest.raises(SystemExit, match="backend-key"):
        cli._tables_dir(argparse.Namespace(tables_dir=Path("/t"), backend_key=None), Path("j"))


def test_a_tap_never_waits_for_a_sync_round_stuck_on_the_network(tmp_path: Path) -> None:
    """The sync thread is inside a request a 'backend' accepted and never answers while a card is
    served: the tap completes on the tables in force, and the round is still in progress when it
    does (no timing: the order of events shows it)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        with gate(tmp_path / "gate", Ed25519PrivateKey.generate().public_key()) as g:
            sync = BackendSync(
                f"http://127.0.0.1:{port}", GATE_ID, "rct_unused", g.tables, timeout_s=30
            )
            sync.start(interval_s=60, retry_s=60)
            try:
                connection, _ = listener.accept()  # the first round now waits for an answer
                with connection:
                    assert g.ride().accepted
                    assert sync.failed_rounds == 0 and sync.last_success is None  # in progress
                    listener.close()  # the round's next request is refused at once
                # closed without an answer: the round fails, the tables in force stay
                deadline = time.monotonic() + 30
                while sync.failed_rounds == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert sync.failed_rounds == 1
            finally:
                sync.stop()
