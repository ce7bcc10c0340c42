"""``regioncard gate`` and ``regioncard inspect``: the gate validator and the inspector's reader.

Readers are named as :func:`firmware_host.readers.open_reader` specs (``pcsc:<pattern>``; a bare
pattern means PC/SC). The private pcscd of the demos and tests is reached through the
``PCSCLITE_CSOCK_NAME`` environment variable (``hardware/pcsc_stack.py``).

With ``--backend URL --credential-file F --backend-key PEM`` the gate fetches its signed tables
in the background (:mod:`terminal.sync`); with ``--upload-key PEM`` as well (the gate's Ed25519
device key) it uploads its journal from a background thread (:mod:`terminal.uploader`), every
``--upload-minutes`` and after each tap, without the barrier ever waiting for the network.

With ``--backend-key`` the gate keeps the tables it accepted in ``<journal>.tables/`` (or
``--tables-dir``) and reloads them at start, verified again with that key: a gate restarting
while the backend is unreachable keeps its deny-list and tariff
(:class:`terminal.fares.store.TableStore`). The inspector receives no pushes and keeps its tables
in memory.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from card_schema.argtypes import http_url
from firmware_host.osdp.gate import ConsoleGatePeripheral, GatePeripheral
from firmware_host.readers import Reader, open_reader
from terminal.actions import ActionLists, ActionOutbox
from terminal.actions.writer import ActionWriter
from terminal.fares import load_tariff
from terminal.fares.model import GateKind, Mode, Place
from terminal.fares.signed import PushedTables
from terminal.fares.store import TableStore
from terminal.gate import GateValidator
from terminal.gate.barrier import BarrierLog
from terminal.journal import Journal
from terminal.sync import BackendSync
from terminal.uploader import JournalUploader, add_upload_options, uploader_from_options

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``gate`` and ``inspect`` commands."""
    gate = subparsers.add_parser(
        "gate",
        help="valideur de quai (ou porte d'abri vélos) / gate validator",
        description="Valideur : décide hors ligne (liste d'opposition signée, contrats, "
        "correspondances), écrit l'événement sur la carte, ouvre la barrière.",
    )
    gate.add_argument(
        "--reader", required=True, help="lecteur de cartes : pcsc:<motif> ou un motif"
    )
    gate.add_argument("--sam", required=True, help="lecteur du SAM : pcsc:<motif> ou un motif")
    gate.add_argument("--station", required=True, type=int, help="numéro de la station (lieu)")
    _place_arguments(gate)
    gate.add_argument("--journal", type=Path, help="journal (défaut ./gate-<station>.db)")
    gate.add_argument("--terminal-id", help="identifiant du terminal (défaut GATE-<station>)")
    gate.add_argument("--tariff", type=Path, help="table tarifaire JSON (défaut : celle fournie)")
    gate.add_argument("--backend-key", type=Path, help="clé publique Ed25519 du serveur (PEM)")
    gate.add_argument(
        "--tables-dir",
        type=Path,
        help="où garder les tables signées acceptées (défaut <journal>.tables ; "
        "avec --backend-key)",
    )
    gate.add_argument(
        "--backend",
        metavar="URL",
        type=http_url,
        help="serveur d'où charger les tables signées (avec --backend-key)",
    )
    gate.add_argument(
        "--credential-file", type=Path, help="fichier de l'identifiant du terminal (rct_...)"
    )
    gate.add_argument(
        "--sync-minutes", type=float, default=5.0, help="minutes entre deux chargements des tables"
    )
    add_upload_options(gate, "gate")
    gate.add_argument("--osdp", metavar="PORT", help="port série du contrôleur de barrière (OSDP)")
    gate.add_argument(
        "--osdp-scbk-file", type=Path, help="fichier de la clé du canal sécurisé OSDP (32 hex)"
    )
    gate.add_argument("--bike-shelter", action="store_true", help="mode porte d'abri vélos")
    gate.add_argument("--once", action="store_true", help="traiter une validation puis quitter")
    gate.add_argument("--wait", type=float, default=3600.0, help="secondes d'attente d'une carte")
    gate.set_defaults(handler=_gate)

    insp = subparsers.add_parser(
        "inspect", help="contrôleur : lire et expliquer une carte, sans écrire / inspector"
    )
    insp.add_argument(
        "--reader", required=True, help="lecteur de cartes : pcsc:<motif> ou un motif"
    )
    insp.add_argument("--sam", help="lecteur du SAM (inutilisé : le contrôle n'écrit pas)")
    insp.add_argument("--station", type=int, default=0, help="où se tient le contrôleur")
    _place_arguments(insp)
    insp.add_argument("--tariff", type=Path, help="table tarifaire JSON (défaut : celle fournie)")
    insp.add_argument("--wait", type=float, default=60.0, help="secondes d'attente d'une carte")
    insp.set_defaults(handler=_inspect)


def _place_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zone", type=int, default=1, help="zone tarifaire du lieu")
    parser.add_argument("--network", type=int, default=250001, help="réseau du lieu")
    parser.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=Mode.URBAN.value,
        help="mode de transport",
    )
    parser.add_argument("--line", type=int, help="ligne (valideurs embarqués)")


def _reader(spec: str) -> Reader:
    return open_reader(spec if ":" in spec else f"pcsc:{spec}")


def _place(args: argparse.Namespace) -> Place:
    return Place(args.station, args.zone, args.network, Mode(args.mode), args.line)


def _tables(args: argparse.Namespace, tables_dir: Path | None = None) -> PushedTables:
    """The tables in force: the packaged (or ``--tariff``) ones, then the stored ones.

    ``tables_dir`` (the gate's) keeps what is accepted and is reloaded here; only with
    ``--backend-key``: without it nothing can be pushed nor verified, so nothing is stored.
    """
    key: Ed25519PublicKey
    if getattr(args, "backend_key", None):
        loaded = load_pem_public_key(args.backend_key.read_bytes())
        if not isinstance(loaded, Ed25519PublicKey):
            raise SystemExit("--backend-key: not an Ed25519 public key")
        key = loaded
    else:  # no pushes expected: an ephemeral key that verifies nothing
        key = Ed25519PrivateKey.generate().public_key()
        tables_dir = None
    try:
        store = TableStore(tables_dir) if tables_dir is not None else None
    except OSError as exc:
        raise SystemExit(f"cannot open the tables directory {tables_dir}: {exc}") from exc
    return PushedTables(key, load_tariff(args.tariff), store=store)


def _tables_dir(args: argparse.Namespace, journal_path: Path) -> Path:
    """Where the gate keeps its accepted tables: ``--tables-dir``, else next to the journal."""
    chosen: Path | None = getattr(args, "tables_dir", None)
    if chosen is not None and not getattr(args, "backend_key", None):
        raise SystemExit("--tables-dir needs --backend-key (stored tables are verified with it)")
    return chosen if chosen is not None else Path(f"{journal_path}.tables")


def _action_writer(
    args: argparse.Namespace, tables_dir: Path, journal_path: Path
) -> ActionWriter | None:
    """Action lists (kept in the tables directory) and the outbox ``<journal>.actions``.

    Only with ``--backend-key`` (lists are verified with it); ``None`` otherwise.
    """
    if not getattr(args, "backend_key", None):
        return None
    loaded = load_pem_public_key(args.backend_key.read_bytes())
    if not isinstance(loaded, Ed25519PublicKey):
        raise SystemExit("--backend-key: not an Ed25519 public key")
    try:
        lists = ActionLists(loaded, store=TableStore(tables_dir))
        outbox = ActionOutbox(f"{journal_path}.actions")
    except (OSError, sqlite3.Error) as exc:
        raise SystemExit(f"cannot open the action lists: {exc}") from exc
    return ActionWriter(lists, outbox)


def _backend_sync(
    args: argparse.Namespace,
    terminal_id: str,
    tables: PushedTables,
    actions: ActionWriter | None = None,
) -> BackendSync | None:
    """The backend client of ``--backend``, after one first round (``None`` without it)."""
    if not getattr(args, "backend", None):
        return None
    if not args.backend_key:
        raise SystemExit("--backend needs --backend-key (tables are verified with it)")
    if not args.credential_file:
        raise SystemExit("--backend needs --credential-file (the terminal credential)")
    if args.sync_minutes <= 0:
        raise SystemExit("--sync-minutes must be positive")
    credential = args.credential_file.read_text(encoding="ascii").strip()
    sync = BackendSync(
        args.backend,
        terminal_id,
        credential,
        tables,
        timeout_s=5.0,
        actions=actions.lists if actions is not None else None,
        outbox=actions.outbox if actions is not None else None,
    )
    report = sync.sync()  # at start, before any card: nothing waits for it
    log.info(
        "tables from %s: tariff %s, deny-list %s", args.backend, report.tariff, report.deny_list
    )
    sync.start(args.sync_minutes * 60.0, immediately=False)
    return sync


def _journal_uploader(
    args: argparse.Namespace, terminal_id: str, journal_path: Path
) -> JournalUploader | None:
    """The journal uploader of ``--upload-key`` (to ``--backend``), not started yet."""
    return uploader_from_options(
        journal_path,
        terminal_id,
        backend_url=getattr(args, "backend", None),
        credential_file=getattr(args, "credential_file", None),
        upload_key=getattr(args, "upload_key", None),
        interval=getattr(args, "upload_minutes", 1.0) * 60.0,
    )


def _peripheral(args: argparse.Namespace) -> GatePeripheral:
    if not args.osdp:
        return ConsoleGatePeripheral(sys.stdout)
    from firmware_host.osdp.control_panel import OSDPControlPanel
    from firmware_host.osdp.gate import OSDPGatePeripheral

    if args.osdp_scbk_file is None:
        raise SystemExit("--osdp needs --osdp-scbk-file (the secure channel key)")
    scbk = bytes.fromhex(args.osdp_scbk_file.read_text(encoding="ascii").strip())
    return OSDPGatePeripheral(OSDPControlPanel(args.osdp, scbk))


def _gate(args: argparse.Namespace) -> int:
    terminal_id = args.terminal_id or f"GATE-{args.station}"
    journal_path = args.journal or Path(f"gate-{args.station}.db")
    kind = GateKind.BIKE_SHELTER if args.bike_shelter else GateKind.GATE
    uploader = _journal_uploader(args, terminal_id, journal_path)  # options checked first
    tables_dir = _tables_dir(args, journal_path)
    reader, sam_reader = _reader(args.reader), _reader(args.sam)
    peripheral = _peripheral(args)
    barrier_log = BarrierLog(f"{journal_path}.barrier")  # barrier outcome of each validation
    tables = _tables(args, tables_dir)
    # Doors of bike shelters open without a session: only validators write pending loads.
    actions = _action_writer(args, tables_dir, journal_path) if kind is GateKind.GATE else None
    sync: BackendSync | None = None
    try:
        sync = _backend_sync(args, terminal_id, tables, actions)
        with Journal.open(journal_path, terminal_id) as journal:
            gate = GateValidator(
                reader,
                sam_reader,
                journal,
                tables,
                peripheral,
                _place(args),
                kind=kind,
                barrier_log=barrier_log,
                actions=actions,
            )
            log.info("gate %s ready at station %d (pid %d)", terminal_id, args.station, os.getpid())
            if uploader is not None:
                uploader.start()  # its own thread and journal handle: no tap waits for it
            while True:
                if not reader.wait_for_card(args.wait):
                    print("aucune carte présentée")
                    return 1 if args.once else 0
                result = gate.on_card()
                print(f"{result.display}  [{result.outcome.value}]")
                if uploader is not None:
                    uploader.wake()  # returns at once; the round runs in the upload thread
                if args.once:
                    return 0 if result.accepted else 1
                reader.wait_for_removal(args.wait)
    finally:
        if uploader is not None:
            uploader.stop(flush=True)  # one last try; what is left goes at the next start
        if sync is not None:
            sync.stop()
        barrier_log.close()
        peripheral.close()
        if actions is not None and actions.outbox is not None:
            actions.outbox.close()


def _inspect(args: argparse.Namespace) -> int:
    reader = _reader(args.reader)
    if not reader.wait_for_card(args.wait):
        print("aucune carte présentée")
        return 1
    from terminal.gate.inspector import inspect_card

    report = inspect_card(reader, _tables(args), _place(args))
    print(f"carte {report.serial}")
    for line in (*report.card_lines, *(c.text for c in report.contracts), *report.other_lines):
        print(f"  {line}")
    if report.last_validation:
        print(f"  dernière validation : {report.last_validation}")
    return 0
