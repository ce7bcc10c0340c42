"""The decoded sample card (``regioncard demo --sample-card``).

The sample card of :mod:`card_schema.sample` (a lycéenne from Amiens), decoded application by
application; the demo's report shows it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from card_schema.layout import CARD_LAYOUT
from card_schema.records import RECORD_TYPES
from card_schema.records.cursus import AID_COUNTER_NAMES
from card_schema.records.plum import EVENT_MODES, EVENT_TRANSITIONS, HOLDER_PROFILES
from card_schema.sample import decode_card, sample_card
from terminal.fares.reasons import format_euros as euros

APPLICATION_LABELS = {
    "plum": "PLUM (transport)",
    "wallet": "Ma région numérique (porte-monnaie et services)",
    "cursus": "Cursus (jeunes : aides, cantine, transport scolaire)",
    "employment": "Mes droits pour l'emploi",
}


def _value(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if key in ("EventCode",):
            mode = EVENT_MODES.get(value >> 4, f"mode {value >> 4}")
            transition = EVENT_TRANSITIONS.get(value & 0xF, f"transition {value & 0xF}")
            return f"0x{value:02X} ({mode}, {transition})"
        if key == "HolderProfileNumber":
            return f"{value} ({HOLDER_PROFILES.get(value, 'inconnu')})"
        if key.endswith("Tariff"):
            return f"0x{value:04X}"
        if "amount" in key.lower() or key in ("balance", *AID_COUNTER_NAMES):
            return euros(value)
    if isinstance(value, list) and all(isinstance(v, (int, str)) for v in value):
        return ", ".join(str(v) for v in value) or "—"
    if value is None:
        return "—"
    return str(value)


def _lines(values: Mapping[str, Any], indent: str) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.append(f"{indent}{key}:")
            out.extend(_lines(value, indent + "  "))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value, start=1):
                out.append(f"{indent}{key} [{i}]:")
                out.extend(_lines(item, indent + "  "))
        elif key in ("granted", "remaining") and isinstance(value, int):
            unit = values.get("unit")
            shown = (
                euros(value) if unit == "eurocents" else f"{value} h" if unit == "hours" else value
            )
            out.append(f"{indent}{key}: {shown}")
        else:
            out.append(f"{indent}{key}: {_value(key, value)}")
    return out


def render_card() -> str:
    """The decoded sample card as text, application by application."""
    decoded = decode_card(sample_card())
    lines = ["Carte régionale Hauts-de-France — carte exemple (lycéenne, Amiens)", ""]
    for app in CARD_LAYOUT.applications:
        names = ", ".join(n.decode() for n in app.df_names)
        lines.append(f"== {APPLICATION_LABELS.get(app.name, app.title)} — DF {names} ==")
        for file in app.files:
            records = decoded[app.name][file.name]
            title = RECORD_TYPES[file.record_type].title
            lines.append(
                f"  {title} — fichier {file.lid:04X}, SFI {file.sfi:02X}, "
                f"{len(records)}/{file.record_count} enregistrement(s)"
            )
            for number, values in records:
                lines.append(f"    enregistrement {number}:")
                lines.extend(_lines(values, "      "))
        lines.append("")
    return "\n".join(lines)
