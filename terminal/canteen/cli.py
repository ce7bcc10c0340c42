"""``regioncard canteen``: the canteen till of one school, or its daily report.

Examples::

    regioncard canteen --school 0801234G --reader "Regioncard vpcd 00 00" \\
        --sam "Regioncard vpcd 00 01" --journal cantine.journal
    regioncard canteen --school 0801234G --journal cantine.journal --report 2026-11-27 [--json]
    regioncard canteen --school 0801234G --reader ... --sam ... --backend http://127.0.0.1:8000 \\
        --credential-file till.credential --upload-key till-device.pem [--upload-minutes 1]

With ``--backend``, ``--credential-file`` and ``--upload-key`` (the till's Ed25519 device key,
PEM, registered with the terminal) the journal is uploaded from a background thread
(:mod:`terminal.uploader`) every ``--upload-minutes`` and after each card; no pupil waits for the
network. Without ``--upload-key`` the records stay in the journal (a warning says so).

With ``--backend``, ``--credential-file`` and ``--backend-key`` (the backend's table-signing
public key, PEM) the till pulls its signed action list in the background and writes the Cursus
aid credits granted by funders at the pupil's next meal (docs/action-lists.md): the list is kept
in ``<journal>.tables/``, the writes to confirm in ``<journal>.actions``.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from card_schema.argtypes import http_url, school_uai
from card_schema.errors import RegionCardError
from terminal.actions import ActionLists, ActionOutbox
from terminal.actions.writer import ActionWriter
from terminal.canteen.menu import DEFAULT_MENU_PATH, MenuBook
from terminal.canteen.refusals import RefusalLog
from terminal.canteen.report import daily_report
from terminal.canteen.screen import StreamScreen
from terminal.canteen.tariff import DEFAULT_TARIFF_PATH, load_tariff
from terminal.canteen.till import CanteenTill
from terminal.fares.store import TableStore
from terminal.journal.store import Journal, remove_journal_files
from terminal.sync import BackendSync
from terminal.uploader import JournalUploader, add_upload_options, uploader_from_options

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``canteen`` subcommand."""
    parser = subparsers.add_parser(
        "canteen",
        help="caisse de cantine (aide Cursus puis porte-monnaie) ou son rapport / canteen till",
        description="Caisse de restauration scolaire : aide cantine puis porte-monnaie, "
        "un repas par service, menu du jour, rapport quotidien.",
    )
    parser.add_argument(
        "--school",
        required=True,
        type=school_uai,
        metavar="UAI",
        help="UAI de l'établissement (0801234G) / school UAI",
    )
    parser.add_argument(
        "--reader", default="", metavar="MOTIF", help="lecteur de cartes (nom PC/SC) / card reader"
    )
    parser.add_argument(
        "--sam", default="", metavar="MOTIF", help="lecteur du SAM (nom PC/SC) / SAM reader"
    )
    parser.add_argument(
        "--journal",
        type=Path,
        default=None,
        metavar="FICHIER",
        help="journal de la caisse (défaut : cantine-<UAI>-<caisse>.journal, un par caisse : "
        "un UAI mal tapé ne touche pas le journal d'une autre) / till journal",
    )
    parser.add_argument(
        "--menu", type=Path, default=DEFAULT_MENU_PATH, metavar="FICHIER", help="menus (JSON)"
    )
    parser.add_argument(
        "--tariff", type=Path, default=DEFAULT_TARIFF_PATH, metavar="FICHIER", help="tarifs (JSON)"
    )
    parser.add_argument("--pos", type=int, default=1, help="numéro de caisse (0-65535)")
    parser.add_argument("--terminal-id", default=None, help="identifiant du terminal")
    parser.add_argument("--once", action="store_true", help="servir une carte puis s'arrêter")
    parser.add_argument("--wait", type=float, default=30.0, help="secondes d'attente d'une carte")
    parser.add_argument("--report", metavar="DATE", help="afficher le rapport du jour DATE")
    parser.add_argument("--json", action="store_true", help="rapport en JSON")
    parser.add_argument(
        "--backend", metavar="URL", type=http_url, help="serveur où envoyer le journal"
    )
    parser.add_argument(
        "--credential-file", type=Path, metavar="FICHIER", help="identifiant du terminal (rct_...)"
    )
    parser.add_argument(
        "--backend-key",
        type=Path,
        metavar="PEM",
        help="backend table-signing public key: pull action lists (aid granted by funders)",
    )
    parser.add_argument("--sync-minutes", type=float, default=5.0, help="action-list pull period")
    add_upload_options(parser, "till")
    parser.set_defaults(handler=run)


def _terminal_id(args: argparse.Namespace) -> str:
    return args.terminal_id or f"CANTINE-{args.school}-{args.pos}"


def _journal_path(args: argparse.Namespace) -> Path:
    """``--journal``, else one file per till (school and point of sale in its name)."""
    if args.journal is None:
        args.journal = Path(f"cantine-{args.school}-{args.pos}.journal")
    return Path(args.journal)


def journal_uploader(args: argparse.Namespace) -> JournalUploader | None:
    """The uploader of ``--backend`` / ``--credential-file`` / ``--upload-key``, not started.

    Raises:
        RegionCardError: ``--upload-key`` without ``--backend``, ``--backend`` without
            ``--credential-file``, or an unreadable key or credential.
    """
    return uploader_from_options(
        args.journal,
        _terminal_id(args),
        backend_url=args.backend,
        credential_file=args.credential_file,
        upload_key=args.upload_key,
        interval=args.upload_minutes * 60.0,
    )


def action_sync(args: argparse.Namespace) -> tuple[ActionWriter, BackendSync] | None:
    """The action list, outbox and background sync of ``--backend-key`` (after a first round).

    Raises:
        RegionCardError: ``--backend-key`` without ``--backend`` / ``--credential-file``, a key
            that is not Ed25519, or files that cannot be opened.
    """
    if getattr(args, "backend_key", None) is None:
        return None
    if not args.backend or not args.credential_file:
        raise RegionCardError("--backend-key needs --backend and --credential-file")
    if args.sync_minutes <= 0:
        raise RegionCardError("--sync-minutes must be positive")
    try:
        key = load_pem_public_key(args.backend_key.read_bytes())
        credential = args.credential_file.read_text(encoding="ascii").strip()
    except (OSError, ValueError) as exc:
        raise RegionCardError(f"action lists: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise RegionCardError("--backend-key: not an Ed25519 public key")
    try:
        lists = ActionLists(key, store=TableStore(Path(f"{args.journal}.tables")))
        outbox = ActionOutbox(Path(f"{args.journal}.actions"))
    except (OSError, sqlite3.Error) as exc:
        raise RegionCardError(f"action lists: {exc}") from exc
    writer = ActionWriter(lists, outbox)
    sync = BackendSync(
        args.backend, _terminal_id(args), credential, None, actions=lists, outbox=outbox
    )
    sync.sync()  # before any card; a failure is logged and retried in the background
    sync.start(args.sync_minutes * 60.0, immediately=False)
    return writer, sync


def run(args: argparse.Namespace) -> int:
    """Run the till, or print the report."""
    journal_path = _journal_path(args)
    if args.report is not None:
        return _report(args)
    if not args.reader or not args.sam:
        raise RegionCardError(
            "--reader et --sam désignent les lecteurs de la carte et du SAM / "
            "--reader and --sam name the card and SAM readers"
        )
    uploader = journal_uploader(args)  # options checked before the readers are opened
    from firmware_host.readers.pcsc import PCSCReader  # pyscard only when a till runs

    tariff = load_tariff(args.tariff)
    menus = MenuBook.load(args.menu)
    card_reader = PCSCReader(args.reader)
    sam_reader = PCSCReader(args.sam)
    new_journal = not journal_path.exists()
    try:
        journal = Journal.open(journal_path, _terminal_id(args))
    except BaseException:
        if new_journal:
            remove_journal_files(journal_path)
        raise
    try:
        pulled = action_sync(args)  # once the readers are there: a first round, then background
    except BaseException:
        journal.close()
        if new_journal:
            remove_journal_files(journal_path)
        raise
    with journal:
        till = CanteenTill(
            card_reader,
            sam_reader,
            journal,
            args.school,
            tariff,
            lambda: datetime.now(UTC),
            StreamScreen(),
            pos_id=args.pos,
            menus=menus,
            refusals=RefusalLog.beside(args.journal),
            actions=pulled[0] if pulled is not None else None,
        )
        if uploader is not None:
            uploader.start()  # its own thread and journal handle
        try:
            till.show_menu()
            while True:
                if not card_reader.wait_for_card(args.wait):
                    if args.once:
                        print("aucune carte présentée")
                        return 1
                    continue
                result = till.serve()
                card_reader.disconnect()
                if uploader is not None:
                    uploader.wake()  # returns at once
                if args.once:
                    return 0 if result.served else 3
                card_reader.wait_for_removal(args.wait)
                till.show_menu()
        finally:
            if uploader is not None:
                uploader.stop(flush=True)  # one last try; the rest goes at the next start
            if pulled is not None:
                pulled[1].stop()
                if pulled[0].outbox is not None:
                    pulled[0].outbox.close()
            card_reader.close()
            sam_reader.close()


def _report(args: argparse.Namespace) -> int:
    try:
        day = date.fromisoformat(args.report)
    except ValueError:
        raise RegionCardError(
            f"--report attend une date comme 2026-11-27, pas {args.report!r} / "
            "--report takes a date like 2026-11-27"
        ) from None
    if not args.journal.is_file():
        raise RegionCardError(
            f"journal introuvable : {args.journal} (le rapport lit le journal d'une caisse) / "
            "no such journal"
        )
    with Journal.open(args.journal, _terminal_id(args), owner=False) as journal:
        records = journal.records()
    report = daily_report(records, RefusalLog.beside(args.journal).read(day), args.school, day)
    print(report.to_json_text() if args.json else report.to_text())
    return 0
