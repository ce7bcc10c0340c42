"""``regioncard schema``: decode and encode single records from the command line.

- ``regioncard schema list``: the record types and their titles.
- ``regioncard schema decode <record-type> <hex>``: the record as JSON.
- ``regioncard schema encode <record-type> <json-file|->``: the record as hex.
- ``regioncard schema describe <record-type>``: the layout, field by field.

This module is the edge of the pure schema layer: it only parses arguments, reads the JSON file
named on the command line and prints; everything else is in :mod:`card_schema.records`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from card_schema.errors import SchemaError
from card_schema.records import (
    DEFAULT_VARIANT,
    RECORD_TYPES,
    PlumVariant,
    RecordContext,
    decode_record,
    encode_record,
    record_type,
)


def register(subparsers: Any) -> None:
    """Add ``schema`` and its subcommands to the ``regioncard`` parser."""
    schema = subparsers.add_parser("schema", help="décoder / encoder un enregistrement de la carte")
    sub = schema.add_subparsers(dest="schema_command", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="types d'enregistrement connus")
    listing.set_defaults(handler=_list)

    dec = sub.add_parser("decode", help="hex -> JSON")
    dec.add_argument("record_type", help="ex. plum.event, cursus.student")
    dec.add_argument("hex", help="the 29-byte record in hex (spaces allowed)")
    _add_context_options(dec)
    dec.set_defaults(handler=_decode)

    enc = sub.add_parser("encode", help="JSON -> hex")
    enc.add_argument("record_type")
    enc.add_argument("json_file", help="JSON file, or - for standard input")
    _add_context_options(enc)
    enc.set_defaults(handler=_encode)

    desc = sub.add_parser("describe", help="field list of a record type")
    desc.add_argument("record_type")
    _add_context_options(desc)
    desc.set_defaults(handler=_describe)


def _add_context_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tariff",
        type=lambda s: int(s, 0),
        help="plum.contract: BestContractTariff of its contract-list entry (e.g. 0x0202)",
    )
    parser.add_argument("--holder-profile-bits", type=int, choices=(2, 4), default=None)
    parser.add_argument(
        "--passenger-class-bits",
        type=int,
        choices=(6, 8),
        default=None,
        help="FF contract passenger class width (default 6, as field readers; 8: older data)",
    )


def _variant(args: argparse.Namespace) -> PlumVariant | None:
    if args.holder_profile_bits is None and args.passenger_class_bits is None:
        return None
    return PlumVariant(
        holder_profile_count_bits=args.holder_profile_bits
        or DEFAULT_VARIANT.holder_profile_count_bits,
        passenger_class_bits=args.passenger_class_bits or DEFAULT_VARIANT.passenger_class_bits,
    )


def _list(args: argparse.Namespace) -> int:
    for name, rt in sorted(RECORD_TYPES.items()):
        print(f"{name:26} {rt.title}")
    return 0


def _decode(args: argparse.Namespace) -> int:
    text = "".join(args.hex.split())
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise SchemaError(f"not hexadecimal: {args.hex!r}") from exc
    values = decode_record(args.record_type, raw, variant=_variant(args), tariff=args.tariff)
    print(json.dumps(values, ensure_ascii=False, indent=2))
    return 0


def _encode(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.json_file == "-" else Path(args.json_file).read_text()
    except OSError as exc:
        raise SchemaError(f"cannot read {args.json_file}: {exc.strerror}") from exc
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"not JSON: {exc}") from exc
    raw = encode_record(args.record_type, values, variant=_variant(args), tariff=args.tariff)
    print(raw.hex())
    return 0


def _describe(args: argparse.Namespace) -> int:
    rt = record_type(args.record_type)
    context = RecordContext(variant=_variant(args) or PlumVariant(), tariff=args.tariff)
    print(f"{rt.name} — {rt.title} ({rt.size} bytes)")
    for row in rt.rows(context):
        print(f"  {row.path:44} {row.bits:>5}  {row.codec}  {row.doc}")
    return 0
