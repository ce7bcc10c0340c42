"""Request validation errors in French, field by field (no pydantic English in ``message_fr``).

:func:`validation_errors_fr` turns pydantic's error list into one French sentence and one entry
per field (``{"field", "message_fr"}``), which the pages show beside the field at fault. Field
names are translated by :data:`FIELD_NAMES_FR`; a message raised by a validator is written
``"<fr> / <en>"`` and its French half is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FIELD_NAMES_FR = {
    "family_name": "nom",
    "given_name": "prénom",
    "birth_date": "date de naissance",
    "email": "adresse électronique",
    "phone": "téléphone",
    "postal_address": "adresse postale",
    "postcode": "code postal",
    "card_serial": "numéro de carte",
    "serial": "numéro de carte",
    "new_serial": "numéro de la nouvelle carte",
    "reason": "motif",
    "desk_terminal_id": "poste de guichet",
    "holder_id": "titulaire",
    "wallet_reload_cents": "rechargement du porte-monnaie",
    "amount_cents": "montant",
    "school_year": "année scolaire",
    "school_uai": "UAI de l'établissement",
    "purpose": "usage de l'aide",
    "contracts": "contrats",
    "applications": "applications",
    "add_applications": "applications à ajouter",
    "remove_applications": "applications à retirer",
    "code": "code",
    "name": "nom",
    "fare_product_id": "identifiant tarifaire",
    "application": "application",
    "terminal_id": "identifiant du terminal",
    "kind": "type",
    "username": "identifiant",
    "password": "mot de passe",
    "duration_days": "durée (jours)",
    "trips": "nombre de voyages",
    "limit": "nombre de lignes",
}

_TYPE_FR = {
    "missing": "obligatoire",
    "string_too_short": "trop court",
    "string_too_long": "trop long",
    "too_short": "trop peu d'éléments",
    "too_long": "trop d'éléments",
    "string_pattern_mismatch": "format incorrect",
    "string_type": "texte attendu",
    "int_parsing": "nombre entier attendu",
    "int_type": "nombre entier attendu",
    "int_from_float": "nombre entier attendu",
    "float_parsing": "nombre attendu",
    "float_type": "nombre attendu",
    "bool_parsing": "oui ou non attendu",
    "bool_type": "oui ou non attendu",
    "date_parsing": "date attendue (AAAA-MM-JJ)",
    "date_from_datetime_parsing": "date attendue (AAAA-MM-JJ)",
    "date_type": "date attendue (AAAA-MM-JJ)",
    "datetime_parsing": "date et heure attendues",
    "datetime_from_date_parsing": "date et heure attendues",
    "enum": "valeur inconnue",
    "literal_error": "valeur inconnue",
    "extra_forbidden": "champ inconnu",
    "list_type": "liste attendue",
    "dict_type": "objet attendu",
    "model_attributes_type": "objet attendu",
    "model_type": "objet attendu",
    "json_invalid": "JSON mal formé",
    "union_tag_invalid": "valeur inconnue",
}

_BOUNDS_FR = {
    "greater_than": "doit être supérieur à {gt}",
    "greater_than_equal": "doit être au moins {ge}",
    "less_than": "doit être inférieur à {lt}",
    "less_than_equal": "doit être au plus {le}",
}


def _field(loc: Sequence[Any]) -> str:
    """The field's name in the request (the last named part of the location)."""
    named = [str(p) for p in loc if not isinstance(p, int) and p not in ("body", "query", "path")]
    return named[-1] if named else ""


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in _BOUNDS_FR:
        try:
            return _BOUNDS_FR[kind].format(**{k: str(v) for k, v in ctx.items()})
        except KeyError:
            return "valeur hors des limites"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", "")) or str(error.get("msg", ""))
        if " / " in text:
            return text.split(" / ", 1)[0]
        return "valeur refusée"
    return _TYPE_FR.get(kind, "valeur refusée")


def validation_errors_fr(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    """One French sentence and the per-field French messages for pydantic ``errors``."""
    fields: list[dict[str, str]] = []
    for error in errors:
        field = _field(error.get("loc", ()))
        fields.append({"field": field, "message_fr": _message(error)})
    parts = [
        f"{FIELD_NAMES_FR.get(f['field'], f['field']) or 'requête'} : {f['message_fr']}"
        for f in fields[:5]
    ]
    return "requête invalide — " + " ; ".join(parts), fields
