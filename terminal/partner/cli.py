"""``regioncard partner``: an employment partner's reader of « Mes droits pour l'emploi ».

Example::

    regioncard partner --partner mission_locale --site 8021 --desk 3 \\
        --reader "Regioncard vpcd 00 00" --sam "Regioncard vpcd 00 01" --journal partner.journal

For each card, the holder is asked (on the terminal) whether they agree to the reading; a refusal
sends nothing to the card. ``--holder-agrees`` answers yes for a holder who already agreed
(``--once``: one card, then stop). With ``--backend``, ``--credential-file`` and
``--upload-key`` the journal (the consultation records) is uploaded after each card.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from card_schema.errors import RegionCardError
from card_schema.records.employment import PARTNERS
from terminal.canteen.screen import StreamScreen
from terminal.journal.store import Journal
from terminal.partner.reader import PartnerReader
from terminal.uploader import add_upload_options, uploader_from_options

PARTNER_NAMES = sorted(name for name in PARTNERS.values() if name != "none")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``partner`` subcommand."""
    parser = subparsers.add_parser(
        "partner",
        help="employment partner's reader: « Mes droits pour l'emploi », with consent",
        description="Lecteur des partenaires de l'emploi : lit la situation et les droits avec "
        "l'accord du titulaire et inscrit la consultation sur la carte.",
    )
    parser.add_argument("--partner", required=True, choices=PARTNER_NAMES)
    parser.add_argument("--site", type=int, required=True, help="agency site number (0-65535)")
    parser.add_argument("--desk", type=int, default=1, help="desk number (0-65535)")
    parser.add_argument("--reader", default="", metavar="PATTERN", help="card reader (PC/SC name)")
    parser.add_argument("--sam", default="", metavar="PATTERN", help="SAM reader (PC/SC name)")
    parser.add_argument("--journal", type=Path, default=Path("partner.journal"), metavar="PATH")
    parser.add_argument("--terminal-id", default=None, help="journal terminal id")
    parser.add_argument("--holder-agrees", action="store_true", help="the holder agreed already")
    parser.add_argument("--once", action="store_true", help="one card, then stop")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a card")
    parser.add_argument("--backend", metavar="URL", help="backend to upload the journal to")
    parser.add_argument(
        "--credential-file", type=Path, metavar="FILE", help="terminal credential (rct_...)"
    )
    add_upload_options(parser, "reader")
    parser.set_defaults(handler=run)


def _terminal_id(args: argparse.Namespace) -> str:
    return args.terminal_id or f"PARTNER-{args.partner}-{args.site}-{args.desk}"


def _agrees(args: argparse.Namespace) -> bool:
    if args.holder_agrees:
        return True
    answer = input("Le titulaire accepte-t-il la lecture de ses droits ? [o/N] ")
    return answer.strip().lower() in ("o", "oui", "y", "yes")


def run(args: argparse.Namespace) -> int:
    """Read cards, one holder at a time."""
    if not 0 <= args.site < 1 << 16 or not 0 <= args.desk < 1 << 16:
        raise RegionCardError("--site et --desk sont des nombres de 0 à 65535")
    if not args.reader or not args.sam:
        raise RegionCardError("--reader et --sam nomment les lecteurs de carte et de SAM")
    uploader = uploader_from_options(
        args.journal,
        _terminal_id(args),
        backend_url=args.backend,
        credential_file=args.credential_file,
        upload_key=args.upload_key,
        interval=args.upload_minutes * 60.0,
    )
    from firmware_host.readers.pcsc import PCSCReader  # pyscard only when a reader runs

    card_reader, sam_reader = PCSCReader(args.reader), PCSCReader(args.sam)
    try:
        with Journal.open(args.journal, _terminal_id(args)) as journal:
            reader = PartnerReader(
                card_reader,
                sam_reader,
                journal,
                partner=args.partner,
                site=args.site,
                terminal_number=args.desk,
                clock=lambda: datetime.now(UTC),
                screen=StreamScreen(),
            )
            if uploader is not None:
                uploader.start()
            try:
                while True:
                    if not card_reader.wait_for_card(args.wait):
                        if args.once:
                            print("aucune carte présentée")
                            return 1
                        continue
                    result = reader.consult(holder_agrees=_agrees(args))
                    card_reader.disconnect()
                    if uploader is not None:
                        uploader.wake()
                    if args.once:
                        return 0 if result.shown else 3
                    card_reader.wait_for_removal(args.wait)
            finally:
                if uploader is not None:
                    uploader.stop(flush=True)
    finally:
        card_reader.close()
        sam_reader.close()
