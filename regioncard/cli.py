"""``regioncard``: one command, a subcommand per role.

argparse (standard library) rather than Typer: no extra dependency on terminals, and each layer
registers its own subcommands with a plain ``register(subparsers)`` function, so this module only
lists where they live. A subcommand module that is not written yet is simply absent.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from card_schema.errors import RegionCardError
from regioncard import french

# Modules that define ``register(subparsers)``; order is the order of ``regioncard --help``.
COMMAND_MODULES = (
    "card_schema.cli",
    "hardware.cli",
    "firmware_host.cli",
    "terminal.cli",
    "terminal.canteen.cli",
    "terminal.desk.cli",
    "terminal.partner.cli",
    "terminal.shop.cli",
    "backend.cli",
    "regioncard.demo",
    "regioncard.osdp_demo",
)


def build_parser() -> argparse.ArgumentParser:
    french.install()
    parser = argparse.ArgumentParser(
        prog="regioncard",
        description="Carte régionale unifiée Hauts-de-France — outils de la carte "
        "(unified regional card tools).",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="plus de journalisation (-vv : traces APDU) / more logging",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMANDE")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def explain(exc: BaseException) -> str:
    """A French sentence (then English) for an error that escaped a command's own handling."""
    if isinstance(exc, OSError):
        where = f" : {exc.filename}" if exc.filename else ""
        reasons = {
            errno.ENOENT: "fichier ou dossier introuvable",
            errno.EACCES: "accès refusé",
            errno.EPERM: "opération non permise",
            errno.EROFS: "système de fichiers en lecture seule",
            errno.ENOSPC: "disque plein",
            errno.EADDRINUSE: "adresse ou port déjà utilisé",
            errno.ECONNREFUSED: "connexion refusée",
        }
        reason = reasons.get(exc.errno or 0, "erreur du système")
        return f"{reason}{where} / {exc.strerror or exc}"
    module = type(exc).__module__
    if module.startswith(("sqlalchemy", "psycopg", "sqlite3")):
        first = (str(exc).splitlines() or [""])[0][:300]
        return f"base de données inaccessible ou invalide / database error: {first}"
    if isinstance(exc, ValueError):
        return f"valeur refusée : {exc}"
    return f"erreur inattendue ({type(exc).__name__}) : {exc} — relancez avec -v pour le détail"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, 5)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result: int | None = args.handler(args)
    except RegionCardError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` or a closed pager: not an error for the person reading.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        # Never a traceback for the operator: one French line, the detail with -v.
        if args.verbose:
            logging.getLogger("regioncard").exception("command failed")
        print(f"erreur : {explain(exc)}", file=sys.stderr)
        return 1
    return result or 0
