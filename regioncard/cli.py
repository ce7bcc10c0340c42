"""``regioncard``: one command, a subcommand per role.

argparse (standard library) rather than Typer: no extra dependency on terminals, and each layer
registers its own subcommands with a plain ``register(subparsers)`` function, so this module only
lists where they live. A subcommand module that is not written yet is simply absent.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from card_schema.errors import RegionCardError

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
    parser = argparse.ArgumentParser(
        prog="regioncard",
        description="Carte régionale unifiée Hauts-de-France — unified regional card tools.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: APDU traces)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


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
    return result or 0
