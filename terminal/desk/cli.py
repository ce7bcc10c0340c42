"""``regioncard desk``: the desk station, bridging the desk's card reader and SAM to the backend.

Example::

    regioncard desk --backend http://127.0.0.1:8000 --terminal-id GUICHET-AMIENS-1 \\
        --credential-file desk.credential --reader "Regioncard vpcd 00 00" \\
        --sam "Regioncard vpcd 00 01"

The credential file holds the ``rct_...`` credential issued when a supervisor registered the
desk (``POST /api/v1/terminals``, kind ``desk``); keep it mode 0600.

The station journals its load steps in ``--journal`` (default ``./desk-<terminal id>.db``).
With ``--upload-key`` (the desk's Ed25519 device key, PEM PKCS#8, whose public key was registered
with the terminal) it uploads the journal to the backend after each job and every
``--upload-interval`` seconds; without it the records wait in the journal (a warning says so).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from card_schema.argtypes import http_url
from card_schema.errors import RegionCardError
from firmware_host.readers import Reader, open_reader
from terminal.desk.station import DeskStation
from terminal.journal import Journal
from terminal.journal.store import remove_journal_files
from terminal.uploader import load_device_key

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``desk`` subcommand."""
    parser = subparsers.add_parser(
        "desk",
        help="poste de guichet : écrit les cartes demandées par la page du guichet / desk station",
        description="Poste de guichet : écrit sur la carte posée sur le lecteur les émissions, "
        "chargements et remplacements demandés depuis la page du guichet.",
    )
    parser.add_argument(
        "--backend", required=True, metavar="URL", type=http_url, help="adresse du serveur"
    )
    parser.add_argument("--terminal-id", required=True, metavar="ID", help="identifiant du poste")
    parser.add_argument(
        "--credential-file",
        required=True,
        type=Path,
        metavar="FICHIER",
        help="identifiant du poste (rct_...)",
    )
    parser.add_argument("--reader", required=True, metavar="MOTIF", help="lecteur de cartes")
    parser.add_argument("--sam", required=True, metavar="MOTIF", help="lecteur du SAM")
    parser.add_argument(
        "--card-timeout", type=float, default=120.0, help="secondes d'attente d'une carte"
    )
    parser.add_argument("--once", action="store_true", help="traiter une demande puis s'arrêter")
    parser.add_argument(
        "--journal", type=Path, metavar="FICHIER", help="journal (défaut ./desk-<id>.db)"
    )
    parser.add_argument(
        "--upload-key",
        type=Path,
        metavar="FICHIER",
        help="clé Ed25519 du poste (PEM) : envoyer le journal au serveur",
    )
    parser.add_argument(
        "--upload-interval", type=float, default=60.0, help="secondes entre deux envois au repos"
    )
    parser.set_defaults(handler=run)


def reader_from_pattern(pattern: str) -> Reader:
    """A reader from ``pcsc:...`` / ``nfc:...``, or a bare PC/SC name pattern."""
    if pattern.startswith(("pcsc:", "nfc:")):
        return open_reader(pattern)
    return open_reader("pcsc:" + pattern)


def run(args: argparse.Namespace) -> int:
    """Run the station until interrupted (or one job with ``--once``)."""
    try:
        credential = args.credential_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RegionCardError(f"identifiant du poste illisible : {exc}") from exc
    upload_key = None if args.upload_key is None else load_device_key(args.upload_key)
    journal_path = args.journal or Path(f"desk-{args.terminal_id}.db")
    card_reader = reader_from_pattern(args.reader)  # before the journal: a missing reader
    sam_reader = reader_from_pattern(args.sam)  # leaves no new journal behind
    new_journal = not journal_path.exists()
    try:
        journal = Journal.open(journal_path, args.terminal_id)
    except BaseException:
        if new_journal:
            remove_journal_files(journal_path)
        raise
    with journal:
        station = DeskStation(
            card_reader,
            sam_reader,
            args.backend,
            args.terminal_id,
            credential,
            card_timeout=args.card_timeout,
            journal=journal,
            upload_key=upload_key,
            upload_interval=args.upload_interval,
        )
        print(f"poste de guichet {args.terminal_id} : en attente des demandes de {args.backend}")
        print(f"journal {journal_path}")
        if upload_key is None:
            log.warning("no --upload-key: the journal is kept in %s, not uploaded", journal_path)
        if args.once:
            outcome = station.process_next_job()
            station.upload()
            if outcome is None:
                print("aucune demande en attente")
                return 0
            print(f"demande {outcome.job.id} : {outcome.job.status}")
            return 0 if outcome.done else 1
        try:
            station.run_forever()
        except KeyboardInterrupt:
            log.info("stopped")
            station.upload()
    return 0
