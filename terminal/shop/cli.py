"""``regioncard shop``: a partner shop's Cursus aid till (sale, refund, daily report).

Examples::

    regioncard shop --purposes books --shop-name "Librairie du Beffroi" --pos 1 \\
        --reader "Regioncard vpcd 00 00" --sam "Regioncard vpcd 00 01" --journal shop.journal \\
        sale books 23,50 [--wallet]
    regioncard shop --purposes books --journal shop.journal ... refund books 10,00
    regioncard shop --purposes books --journal shop.journal report 2026-12-05 [--json]

With ``--backend``, ``--credential-file`` and ``--upload-key`` the journal is uploaded after the
operation (:mod:`terminal.uploader`), as the canteen till does.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime
from pathlib import Path

from card_schema.errors import RegionCardError
from terminal.canteen.screen import StreamScreen
from terminal.journal.store import Journal
from terminal.shop.report import report_json_text, shop_day_report
from terminal.shop.till import PURPOSES, ShopTill
from terminal.uploader import add_upload_options, uploader_from_options

AMOUNT = re.compile(r"^(\d{1,6})(?:[.,](\d{1,2}))?$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``shop`` subcommand."""
    parser = subparsers.add_parser(
        "shop",
        help="partner shop till: Cursus books / sport / leisure aid (sale, refund, report)",
        description="Caisse d'un commerce partenaire : aide Cursus livres, sport ou loisirs ; "
        "vente, remboursement le jour même, rapport quotidien.",
    )
    parser.add_argument(
        "--purposes", required=True, metavar="LIST", help="registered purposes: books,sport,leisure"
    )
    parser.add_argument("--shop-name", default="Commerce partenaire", help="printed on receipts")
    parser.add_argument("--reader", default="", metavar="PATTERN", help="card reader (PC/SC name)")
    parser.add_argument("--sam", default="", metavar="PATTERN", help="SAM reader (PC/SC name)")
    parser.add_argument("--journal", type=Path, default=Path("shop.journal"), metavar="PATH")
    parser.add_argument("--pos", type=int, default=1, help="till number (0-65535)")
    parser.add_argument("--terminal-id", default=None, help="journal terminal id")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a card")
    parser.add_argument("--json", action="store_true", help="report as JSON")
    parser.add_argument(
        "--wallet",
        action="store_true",
        help="sale: the holder agrees to pay the rest from the wallet",
    )
    parser.add_argument("--backend", metavar="URL", help="backend to upload the journal to")
    parser.add_argument(
        "--credential-file", type=Path, metavar="FILE", help="terminal credential (rct_...)"
    )
    add_upload_options(parser, "till")
    parser.add_argument("operation", choices=("sale", "refund", "report"))
    parser.add_argument("args", nargs="*", metavar="ARG", help="PURPOSE AMOUNT, or DATE")
    parser.set_defaults(handler=run)


def parse_amount(text: str) -> int:
    """``23,50`` or ``23.50`` or ``23`` euros -> eurocents.

    Raises:
        RegionCardError: not an amount.
    """
    match = AMOUNT.fullmatch(text.strip())
    if match is None or (cents := int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0"))) == 0:
        raise RegionCardError(f"montant invalide : {text!r} (exemple : 23,50)")
    return cents


def _purposes(text: str) -> frozenset[str]:
    purposes = frozenset(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(purposes - set(PURPOSES))
    if unknown or not purposes:
        raise RegionCardError(f"--purposes : usages inconnus {unknown} (books, sport, leisure)")
    return purposes


def _terminal_id(args: argparse.Namespace) -> str:
    return args.terminal_id or f"SHOP-{args.pos}"


def run(args: argparse.Namespace) -> int:
    """Sell, refund, or print the report."""
    purposes = _purposes(args.purposes)
    if args.operation == "report":
        return _report(args)
    if len(args.args) != 2:
        raise RegionCardError(f"{args.operation} attend un usage et un montant : books 23,50")
    purpose, amount = args.args[0], parse_amount(args.args[1])
    if purpose not in PURPOSES:
        raise RegionCardError(f"usage inconnu : {purpose} (books, sport, leisure)")
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
    from firmware_host.readers.pcsc import PCSCReader  # pyscard only when a till runs

    card_reader, sam_reader = PCSCReader(args.reader), PCSCReader(args.sam)
    try:
        with Journal.open(args.journal, _terminal_id(args)) as journal:
            till = ShopTill(
                card_reader,
                sam_reader,
                journal,
                shop_name=args.shop_name,
                purposes=purposes,
                pos_id=args.pos,
                clock=lambda: datetime.now(UTC),
                screen=StreamScreen(),
            )
            if not card_reader.wait_for_card(args.wait):
                print("aucune carte présentée")
                return 1
            if args.operation == "sale":
                result = till.sale(purpose, amount, wallet=args.wallet)
            else:
                result = till.refund(purpose, amount)
            card_reader.disconnect()
        if uploader is not None:
            uploader.start()
            uploader.stop(flush=True)
        return 0 if result.done else 3
    finally:
        card_reader.close()
        sam_reader.close()


def _report(args: argparse.Namespace) -> int:
    if len(args.args) != 1:
        raise RegionCardError("report attend une date : 2026-12-05")
    try:
        day = date.fromisoformat(args.args[0])
    except ValueError:
        raise RegionCardError(f"date invalide : {args.args[0]!r} (exemple : 2026-12-05)") from None
    with Journal.open(args.journal, _terminal_id(args), owner=False) as journal:
        records = journal.records()
    report = shop_day_report(records, _terminal_id(args), day)
    print(report_json_text(report) if args.json else report.to_text())
    return 0
