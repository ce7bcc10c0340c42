"""Argument types of the ``regioncard`` command line, with French messages (no IO).

Every layer registers its own subcommands; these types are here, in the lowest layer, so that a
terminal's and the backend's options refuse a bad value the same way: with a French message
from argparse and exit code 2, before anything is opened or created.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from urllib.parse import urlsplit

_UAI = re.compile(r"^\d{7}[A-Z]$")


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"port invalide : {text!r} (entre 1 et 65535) / invalid port (1 to 65535)"
        )
    return value


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host, without its trailing slash."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"adresse invalide : {text!r} (attendu http://hôte:port) / "
            "invalid URL (expected http://host:port)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"port invalide dans l'adresse {text!r} / invalid port in URL"
        ) from None
    return text.rstrip("/")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer type refusing values under ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"nombre entier attendu, pas {text!r} / an integer is expected"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{value} est trop petit (au moins {minimum}) / too small (at least {minimum})"
            )
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def school_uai(text: str) -> str:
    """A school UAI: seven digits and a letter (``0801234G``)."""
    value = text.strip().upper()
    if not _UAI.match(value):
        raise argparse.ArgumentTypeError(
            f"UAI invalide : {text!r} (7 chiffres et une lettre, ex. 0801234G) / "
            "invalid UAI (7 digits and a letter)"
        )
    return value
