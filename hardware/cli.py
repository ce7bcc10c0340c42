"""``regioncard card ...``: emulated card images and demo master keys.

- ``regioncard card new IMAGE [--serial HEX] [--keys KEYFILE] [--sample]``: a blank card (keys
  diversified from the master keys when a key file is given; without keys it cannot open secure
  sessions), or with ``--sample`` the sample card's content, to try the terminals.
- ``regioncard card show IMAGE``: what the image holds (never the keys, only their versions).
- ``regioncard card keys new KEYFILE``: random demo master keys, file mode 0600.
- ``regioncard card keys import-token KEYFILE --token LABEL --pin PIN``: copy them into a PKCS#11
  token as non-extractable AES keys (demo key ceremony).

Other ``hardware`` subcommands (``emulate``) register next to these in :func:`register`.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from card_schema.layout import CARD_LAYOUT
from hardware.bridges.emulate import register_emulate
from hardware.card.image import CardImageError, CardImageStore
from hardware.personalise import new_card, write_sample_content
from hardware.sam.keystore import KeyFileStore, import_into_token, new_key_file
from hardware.sam.softhsm import find_library


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``card`` command and its subcommands, and ``emulate``."""
    register_card(subparsers)
    register_emulate(subparsers)


def register_card(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    card = subparsers.add_parser(
        "card", help="images de cartes émulées et clés maîtres de démonstration / emulated cards"
    )
    sub = card.add_subparsers(dest="card_command", required=True, metavar="ACTION")

    new = sub.add_parser("new", help="créer une image de carte vierge / create a blank card image")
    new.add_argument("image", type=Path, help="fichier image de carte à créer (JSON)")
    new.add_argument(
        "--serial", help="numéro de série, 16 chiffres hexadécimaux (aléatoire par défaut)"
    )
    new.add_argument("--keys", type=Path, help="fichier des clés maîtres d'où diversifier les clés")
    new.add_argument("--force", action="store_true", help="remplacer une image existante")
    new.add_argument(
        "--sample",
        action="store_true",
        help="la personnaliser comme la carte exemple (celle de regioncard demo), pour essayer les "
        "terminaux",
    )
    new.set_defaults(handler=_card_new)

    show = sub.add_parser(
        "show", help="résumer une image de carte (les clés ne sont jamais affichées)"
    )
    show.add_argument("image", type=Path)
    show.set_defaults(handler=_card_show)

    keys = sub.add_parser("keys", help="clés maîtres de démonstration / demo master keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_new = keys_sub.add_parser(
        "new", help="écrire des clés maîtres aléatoires (mode 0600) / random demo master keys"
    )
    keys_new.add_argument("keyfile", type=Path)
    keys_new.set_defaults(handler=_keys_new)
    keys_import = keys_sub.add_parser(
        "import-token", help="importer un fichier de clés dans un jeton PKCS#11"
    )
    keys_import.add_argument("keyfile", type=Path)
    keys_import.add_argument("--token", required=True, help="étiquette du jeton")
    keys_import.add_argument("--pin", required=True, help="PIN utilisateur du jeton")
    keys_import.add_argument("--library", help="module PKCS#11 (SoftHSM2 par défaut)")
    keys_import.set_defaults(handler=_keys_import)


def _card_new(args: argparse.Namespace) -> int:
    store = CardImageStore(args.image)
    if store.exists() and not args.force:
        raise CardImageError(f"{args.image} exists already (use --force to replace it)")
    try:
        serial = bytes.fromhex(args.serial) if args.serial else secrets.token_bytes(8)
    except ValueError as exc:
        raise CardImageError(f"serial {args.serial!r} is not hex") from exc
    keys = KeyFileStore.load(args.keys) if args.keys else None
    image = new_card(serial, keys)
    if args.sample:
        write_sample_content(image)
    store.commit(image)
    kind = "carte exemple" if args.sample else "carte vierge"
    print(f"{kind} {serial.hex().upper()} -> {args.image}")
    return 0


def _card_show(args: argparse.Namespace) -> int:
    image = CardImageStore(args.image).load()
    print(f"serial              {image.serial.hex().upper()}")
    print(f"transaction counter {image.transaction_counter}")
    print(f"ratified            {'yes' if image.ratified else 'no'}")
    for app_layout in CARD_LAYOUT.applications:
        app = image.applications[app_layout.name]
        kvcs = ", ".join(f"{role.value} v{k.kvc}" for role, k in app.keys.items()) or "no keys"
        state = "INVALIDATED" if app.invalidated else "valid"
        line = f"{app_layout.name:<11} {app_layout.aid.decode()!s:<11} {state:<11} {kvcs}"
        if app_layout.stored_value:
            line += f"; SV {app.sv_balance / 100:.2f} EUR (tnum {app.sv_tnum})"
        print(line)
        for f in app_layout.files:
            used = sum(1 for r in app.records[f.name] if any(r))
            print(f"  {f.name:<17} {f.lid:04X} SFI {f.sfi:02X}  {used}/{f.record_count} records")
    return 0


def _keys_new(args: argparse.Namespace) -> int:
    new_key_file(args.keyfile)
    print(f"clés maîtres de démonstration -> {args.keyfile}")
    return 0


def _keys_import(args: argparse.Namespace) -> int:
    library = args.library or find_library()
    if library is None:
        raise CardImageError("no PKCS#11 module given and SoftHSM2 is not installed")
    keys = KeyFileStore.load(args.keyfile).master_keys()
    import_into_token(library, args.token, args.pin, keys)
    print(f"{len(keys)} clés importées dans le jeton {args.token}")
    return 0
