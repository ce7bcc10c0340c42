"""French first for the operator: argparse's own messages and headings, translated.

argparse looks its messages up through :func:`gettext.gettext`, bound to the name ``_`` in the
``argparse`` module. :func:`install` rebinds that name to a lookup in :data:`MESSAGES` (French,
then the English original for the operations log); unknown messages stay as they are. Called once
before the parser is built, since headings are looked up at construction.
"""

from __future__ import annotations

import argparse

MESSAGES = {
    "usage: ": "usage : ",
    "positional arguments": "arguments",
    "options": "options",
    "show this help message and exit": "afficher cette aide et quitter",
    "%(prog)s: error: %(message)s\n": "%(prog)s : erreur : %(message)s\n",
    "argument %(argument_name)s: %(message)s": "argument %(argument_name)s : %(message)s",
    "the following arguments are required: %s": (
        "arguments obligatoires manquants : %s / the following arguments are required"
    ),
    "unrecognized arguments: %s": "arguments inconnus : %s / unrecognized arguments",
    "invalid choice: %(value)r (choose from %(choices)s)": (
        "choix invalide : %(value)r (possibles : %(choices)s) / invalid choice"
    ),
    "invalid %(type)s value: %(value)r": (
        "valeur invalide (%(type)s attendu) : %(value)r / invalid %(type)s value"
    ),
    "expected one argument": "une valeur attendue / expected one argument",
    "expected at most one argument": "une valeur au plus / expected at most one argument",
    "expected at least one argument": "une valeur au moins / expected at least one argument",
    "ambiguous option: %(option)s could match %(matches)s": (
        "option ambiguë : %(option)s peut désigner %(matches)s / ambiguous option"
    ),
    "not allowed with argument %s": "incompatible avec l'argument %s / not allowed with it",
    "one of the arguments %s is required": (
        "l'un de ces arguments est obligatoire : %s / one of the arguments is required"
    ),
    "ignored explicit argument %r": "valeur en trop ignorée : %r / ignored explicit argument",
    "can't open '%(filename)s': %(error)s": (
        "impossible d'ouvrir '%(filename)s' : %(error)s / cannot open file"
    ),
}


def _translate(message: str) -> str:
    return MESSAGES.get(message, message)


def install() -> None:
    """Make argparse speak French first (idempotent)."""
    argparse._ = _translate  # type: ignore[attr-defined]
