"""Tariff tables (no FastAPI here): check, publish, sign in the HSM, serve the current one.

A supervisor publishes a whole table (the JSON format of docs/tariffs.md); the backend checks its
structure and cross-references without importing the terminal (:func:`check_table`), gives it the
next version (the ``version`` inside the payload is set to it: terminals refuse a payload whose
version differs from the envelope's; a supervisor's first table is version 2, since terminals ship
the packaged table as version 1), signs it with the table-signing key that also signs the
deny-lists, and stores the signed bytes. ``GET /api/v1/tariffs/current`` serves the latest.

Terminals refuse a tariff envelope issued more than 90 days ago (terminal/fares/signed.py); the
current table is therefore signed again with a fresh ``issued_at`` when it is read more than
:data:`RESIGN_AFTER` after its last signature (same version and payload: a terminal that already
holds it simply skips it).

Seeding: with no table published and a seed file configured (a JSON file in the same format, e.g.
``terminal/fares/data/default_tariff.json``), the first read publishes that file as version 1.
Without a seed file, reading before the first publication is a 404 "aucun tarif publié".
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.columns import canonical_json, utcnow
from backend.errors import InvalidRequest, NotFound
from backend.keys.envelopes import TableSigner, envelope, sign_payload
from backend.tariffs.models import TariffVersion
from backend.tariffs.schemas import TariffTableIn

TARIFF_KIND = "tariff"
RESIGN_AFTER = timedelta(days=30)  # well inside the terminals' 90-day limit
SEED_PUBLISHER = "seed"
# Every terminal ships the packaged table as version 1 (terminal/fares/data/default_tariff.json)
# and refuses a version that is not newer: a supervisor's first table is therefore version 2.
# Only the seed file (normally that same packaged table) is published as version 1.
PACKAGED_VERSION = 1

_FRENCH = {
    "missing": "champ obligatoire manquant",
    "extra_forbidden": "champ inconnu",
    "int_type": "entier attendu",
    "string_type": "texte attendu",
    "bool_type": "booléen attendu",
    "list_type": "liste attendue",
    "dict_type": "objet attendu",
    "model_type": "objet attendu",
    "literal_error": "valeur non permise",
    "greater_than_equal": "valeur trop petite",
    "greater_than": "valeur trop petite",
    "less_than_equal": "valeur trop grande",
    "too_short": "liste ou texte trop court",
    "string_too_short": "texte vide",
    "string_too_long": "texte trop long",
    "value_error": "valeur invalide",
}


def _where(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "table"


def _refusal(errors: list[ErrorDetails]) -> InvalidRequest:
    shown = errors[:5]
    french = "; ".join(f"{_where(e)} : {_FRENCH.get(e['type'], 'valeur invalide')}" for e in shown)
    english = "; ".join(f"{_where(e)}: {e['msg']}" for e in shown)
    more = f" (+{len(errors) - len(shown)})" if len(errors) > len(shown) else ""
    return InvalidRequest(
        f"table tarifaire invalide : {french}{more}", f"invalid tariff table: {english}{more}"
    )


def _refuse(french: str, english: str) -> InvalidRequest:
    return InvalidRequest(
        f"table tarifaire invalide : {french}", f"invalid tariff table: {english}"
    )


def _unique(ids: list[str], what: str) -> set[str]:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise _refuse(f"identifiant {what} en double : {item}", f"duplicate {what} id {item}")
        seen.add(item)
    return seen


def _check_references(table: TariffTableIn) -> None:
    media = _unique([m.fare_media_id for m in table.fare_media], "fare_media")
    riders = _unique([r.rider_category_id for r in table.rider_categories], "rider_category")
    areas = _unique([a.area_id for a in table.areas], "area")
    _unique([p.fare_product_id for p in table.fare_products], "fare_product")
    products = {p.fare_product_id: p for p in table.fare_products}
    for product in table.fare_products:
        pid = product.fare_product_id
        if product.fare_media_id not in media:
            raise _refuse(
                f"produit {pid} : support {product.fare_media_id} inconnu",
                f"product {pid}: unknown fare media {product.fare_media_id}",
            )
        if product.rider_category_id not in riders:
            raise _refuse(
                f"produit {pid} : catégorie {product.rider_category_id} inconnue",
                f"product {pid}: unknown rider category {product.rider_category_id}",
            )
        if product.kind == "carnet" and not product.trips:
            raise _refuse(
                f"carnet {pid} sans nombre de voyages", f"carnet {pid} needs a number of trips"
            )
    for code in (table.school_transport_product_id, table.mobility_aid_product_id):
        if code not in products or products[code].kind != "entitlement":
            raise _refuse(
                f"{code} doit être un produit « entitlement » de la table",
                f"{code} must be an entitlement product of the table",
            )
    groups = {rule.leg_group_id for rule in table.leg_rules}
    for rule in table.leg_rules:
        if rule.fare_product_id is not None and rule.fare_product_id not in products:
            raise _refuse(
                f"règle {rule.leg_group_id} : produit {rule.fare_product_id} inconnu",
                f"leg rule {rule.leg_group_id}: unknown product {rule.fare_product_id}",
            )
        for area in (rule.from_area_id, rule.to_area_id):
            if area is not None and area not in areas:
                raise _refuse(
                    f"règle {rule.leg_group_id} : zone {area} inconnue",
                    f"leg rule {rule.leg_group_id}: unknown area {area}",
                )
    for transfer in table.transfer_rules:
        for group in (transfer.from_leg_group_id, transfer.to_leg_group_id):
            if group not in groups:
                raise _refuse(
                    f"correspondance : groupe {group} inconnu",
                    f"transfer rule: unknown leg group {group}",
                )


def check_table(data: Any) -> dict[str, Any]:
    """Check a tariff table's structure and cross-references; return it as a plain dict.

    The returned dict is the table as given (not re-serialised with defaults), so the terminals
    apply their own defaults exactly as for the packaged file.

    Raises:
        InvalidRequest: not an object, a missing or unknown key, a wrong type (amounts are integer
            eurocents), a duplicate id, a reference to an unknown product, area, media, rider
            category or leg group, a carnet without trips, a paid transfer... (422, French first).
    """
    if not isinstance(data, dict):
        raise _refuse("un objet JSON est attendu", "a JSON object is expected")
    try:
        table = TariffTableIn.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc.errors()) from exc
    _check_references(table)
    return json.loads(json.dumps(data))


def current_version(session: Session) -> int:
    """The latest published version (0 before the first)."""
    return int(session.scalar(select(func.max(TariffVersion.version))) or 0)


def publish(
    session: Session,
    signer: TableSigner,
    data: Any,
    *,
    published_by: str,
    now: datetime | None = None,
    seed: bool = False,
) -> TariffVersion:
    """Check a table, give it the next version, sign it in the HSM and store it.

    The next version is the latest plus one, and at least ``PACKAGED_VERSION + 1`` unless
    ``seed`` (the terminals already hold version 1: the packaged table).

    Args:
        session: database session.
        signer: the key service (table-signing key).
        data: the decoded JSON table; its ``version``, if any, is replaced.
        published_by: username of the supervisor (or ``"seed"``).
        now: signing time (default: now).
        seed: publishing the seed file (may be version 1).

    Raises:
        InvalidRequest: the table does not pass :func:`check_table`.
    """
    payload = check_table(data)
    now = now or utcnow()
    version = current_version(session) + 1
    if not seed:
        version = max(version, PACKAGED_VERSION + 1)
    payload["version"] = version
    row = TariffVersion(
        version=version,
        valid_from=payload["valid_from"],
        payload=canonical_json(payload),
        issued_at=now,
        signature=sign_payload(signer, TARIFF_KIND, version, now, payload),
        published_by=published_by[:64],
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def seed_from_file(
    session: Session, signer: TableSigner, path: Path, *, now: datetime | None = None
) -> TariffVersion | None:
    """Publish the table of ``path`` as version 1 if nothing is published yet.

    Returns:
        The new version, or ``None`` when a table already exists (another request seeded it).

    Raises:
        NotFound: the file cannot be read, is not JSON, or its table does not pass
            :func:`check_table` (a configuration error: still no table published).
    """
    if current_version(session):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotFound(
            f"aucun tarif publié (fichier initial {path} illisible)",
            f"no tariff published (seed file {path} unreadable: {exc})",
        ) from exc
    try:
        return publish(session, signer, data, published_by=SEED_PUBLISHER, now=now, seed=True)
    except InvalidRequest as exc:
        raise NotFound(
            f"aucun tarif publié (fichier initial {path} refusé : {exc.message_fr})",
            f"no tariff published (seed file {path} refused: {exc.message_en})",
        ) from exc
    except IntegrityError:  # a concurrent first read seeded it: read theirs
        session.rollback()
        return None


def versions(session: Session) -> list[TariffVersion]:
    """Every published version, newest first."""
    return list(session.scalars(select(TariffVersion).order_by(TariffVersion.version.desc())))


def current_envelope(
    session: Session,
    signer: TableSigner,
    *,
    seed_file: Path | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The signed envelope of the latest table (kind ``tariff``), re-signed if old.

    Args:
        session: database session.
        signer: the key service (table-signing key).
        seed_file: table published as version 1 when none exists yet (optional).
        now: current time (default: now).

    Raises:
        NotFound: no table published and no seed file.
    """
    now = now or utcnow()
    version = current_version(session)
    if not version and seed_file is not None:
        seed_from_file(session, signer, seed_file, now=now)
        version = current_version(session)
    row = session.get(TariffVersion, version) if version else None
    if row is None:
        raise NotFound("aucun tarif publié", "no tariff table published yet")
    payload = json.loads(row.payload)
    if now - row.issued_at > RESIGN_AFTER:
        row.issued_at = now
        row.signature = sign_payload(signer, TARIFF_KIND, row.version, now, payload)
        session.flush()
    return envelope(TARIFF_KIND, row.version, row.issued_at, payload, row.signature)
