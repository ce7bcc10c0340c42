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
from terminal.journal.store import Journal
from terminal.sync import BackendSync
from terminal.uploader import JournalUploader, add_upload_options, uploader_from_options

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``canteen`` subcommand."""
    parser = subparsers.add_parser(
        "canteen",
        help="canteen till of a school (Cursus aid then wallet), or its daily report",
        description="Caisse de restauration scolaire : aide cantine puis porte-monnaie, "
        "un repas par service, menu du jour, rapport quotidien.",
    )
    parser.add_argument("--school", required=True, metavar="UAI", help="school UAI (0801234G)")
    parser.add_argument("--reader", default="", metavar="PATTERN", help="card reader (PC/SC name)")
    parser.add_argument("--sam", default="", metavar="PATTERN", help="SAM reader (PC/SC name)")
    parser.add_argument("--journal", type=Path, default=Path("canteen.journal"), metavar="PATH")
    parser.add_argument("--menu", type=Path, default=DEFAULT_MENU_PATH, metavar="FILE")
    parser.add_argument("--tariff", type=Path, default=DEFAULT_TARIFF_PATH, metavar="FILE")
    parser.add_argument("--pos", type=int, default=1, help="point-of-sale number (0-65535)")
    parser.add_argument("--terminal-id", default=None, help="journal terminal id")
    parser.add_argument("--once", action="store_true", help="serve one card, then stop")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a card")
    parser.add_argument("--report", metavar="DATE", help="print the daily report of DATE")
    parser.add_argument("--json", action="store_true", help="report as JSON")
    parser.add_argument("--backend", metavar="URL", help="backend to upload the journal to")
    parser.add_argument(
        "--credential-file", type=Path, metavar="FILE", help="terminal credential (rct_...)"
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
    if args.report is not None:
        return _report(args)
    if not args.reader or not args.sam:
        raise RegionCardError("--reader and --sam name the card and SAM readers")
    uploader = journal_uploader(args)  # options checked before the readers are opened
    from firmware_host.readers.pcsc import PCSCReader  # pyscard only when a till runs

    tariff = load_tariff(args.tariff)
    menus = MenuBook.load(args.menu)
    card_reader = PCSCReader(args.reader)
    sam_reader = PCSCReader(args.sam)
    pulled = action_sync(args)  # once the readers are there: a first round, then background
    with Journal.open(args.journal, _terminal_id(args)) as journal:
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
            f"--report takes a date like 2026-11-27, not {args.report!r}"
        ) from None
    with Journal.open(args.journal, _terminal_id(args), owner=False) as journal:
        records = journal.records()
    report = daily_report(records, RefusalLog.beside(args.journal).read(day), args.school, day)
    print(report.to_json_text() if args.json else report.to_text())
    return 0
