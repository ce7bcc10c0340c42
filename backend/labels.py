"""French labels shown to people (agents, supervisors, auditors, operators), defined once.

The desk page, the back office (through ``GET /api/v1/labels``) and the demo report all read
these tables; codes (``card_counter_gap``, ``funder:region:canteen``) stay in small print beside
the label. Pure module: no database, no FastAPI.
"""

from __future__ import annotations

ANOMALY_KINDS_FR: dict[str, str] = {
    "forged_signature": "Signature du module de sécurité invalide",
    "replay": "Transaction rejouée (compteur carte déjà vu)",
    "sequence_reuse": "Numéro de séquence du terminal réutilisé",
    "sequence_gap": "Séquence du terminal incomplète",
    "card_counter_gap": "Transaction de carte manquante (pas encore remontée)",
    "chain_break": "Soldes de la carte incohérents",
    "ring_fence_violation": "Aide dépensée hors de son usage",
    "unexplained_movement": "Mouvement d'argent inexpliqué",
    "recovered_from_card_log": "Transaction reconstituée depuis le journal de la carte",
    "batch_conflict": "Lot reçu deux fois avec un contenu différent",
    "kind_violation": "Opération interdite pour ce type de terminal",
    "sam_mismatch": "Module de sécurité différent de celui enregistré",
}

ANOMALY_STATES_FR = {"open": "ouverte", "resolved": "résolue"}

CARD_STATUSES_FR = {
    "issuing": "en cours d'émission",
    "active": "active",
    "blocked": "bloquée (opposition)",
    "replaced": "remplacée",
}

JOB_STATUSES_FR = {
    "queued": "en attente du poste",
    "waiting_card": "en attente de la carte",
    "writing": "écriture en cours",
    "interrupted": "interrompue",
    "done": "terminée",
    "failed": "échouée",
}

APPLICATIONS_FR = {
    "plum": "PLUM (transports)",
    "cursus": "Cursus (jeunes)",
    "employment": "Mes droits pour l'emploi",
    "wallet": "Ma région numérique (porte-monnaie)",
}

PURSES_FR = {
    "wallet.sv": "porte-monnaie",
    "cursus.books_aid": "aide Cursus livres et équipement",
    "cursus.sport_aid": "aide Cursus sport et loisirs",
    "cursus.canteen_aid": "aide Cursus cantine",
}

AID_PURPOSES_FR = {
    "books": "livres et équipement",
    "sport": "sport et loisirs",
    "canteen": "cantine",
    "mobility": "mobilité",
}

ROLES_FR = {"agent": "agent", "supervisor": "superviseur", "auditor": "auditeur"}

TERMINAL_KINDS_FR = {
    "gate": "valideur de gare",
    "canteen": "caisse de cantine",
    "bike_shelter": "abri vélos",
    "inspector": "contrôleur",
    "desk": "guichet",
}

# Operators of the region's networks (operator_id as in the tariff tables).
OPERATORS_FR = {
    "plum": "Réseau PLUM",
    "ter": "TER Hauts-de-France",
    "ilevia": "Ilévia (Lille)",
    "tadao": "Tadao (bassin minier)",
    "cars-hdf": "Cars Hauts-de-France",
    "ametis": "Ametis (Amiens)",
}

_SUSPENSE_FR = {
    "ring_fence": "aide hors usage",
    "card_log_recovery": "reconstitué du journal carte",
    "unexplained_credit": "crédit inexpliqué",
    "unknown_purse": "porte-monnaie inconnu",
}


def anomaly_kind_fr(kind: str) -> str:
    """The French name of an anomaly kind (the code itself for a kind not listed)."""
    return ANOMALY_KINDS_FR.get(kind, kind)


def operator_fr(operator_id: str) -> str:
    """The French name of a transit operator (network)."""
    return OPERATORS_FR.get(operator_id, f"Réseau {operator_id.upper()}")


_operator = operator_fr


def account_fr(account: str) -> str:
    """The French label of a ledger account (``backend/ledger/accounts.py`` names them).

    >>> account_fr("funder:region:canteen")
    'Financeur région — cantine'
    """
    parts = account.split(":")
    head = parts[0]
    if head == "funder" and len(parts) == 3:
        purpose = AID_PURPOSES_FR.get(parts[2], parts[2])
        return f"Financeur {parts[1].replace('region', 'région')} — {purpose}"
    if head == "operator" and len(parts) == 3:
        what = parts[2]
        if what == "revenue":
            return f"{_operator(parts[1])} — recettes"
        purpose = AID_PURPOSES_FR.get(what.removeprefix("aid."), what)
        return f"{_operator(parts[1])} — aide {purpose}"
    if head == "school" and len(parts) == 3:
        what = (
            "repas payés au porte-monnaie"
            if parts[2] == "canteen.wallet"
            else ("aide " + AID_PURPOSES_FR.get(parts[2].removeprefix("aid."), parts[2]))
        )
        return f"Établissement {parts[1]} — {what}"
    if head in ("operator", "school", "merchant", "terminal") and len(parts) == 2:
        names = {"operator": operator_fr(parts[1]), "school": f"Établissement {parts[1]}"}
        return names.get(head, f"{'Commerçant' if head == 'merchant' else 'Terminal'} {parts[1]}")
    if head == "merchant" and len(parts) == 3:
        purpose = AID_PURPOSES_FR.get(parts[2].removeprefix("aid."), parts[2])
        return f"Commerçant {parts[1]} — aide {purpose}"
    if head == "terminal" and len(parts) == 3:
        return f"Terminal {parts[1]} — recettes"
    if head == "sales" and len(parts) == 2:
        return f"Point de vente {parts[1]} — encaissements"
    if head == "card" and len(parts) == 3:
        return f"Carte {parts[1][:8]}… — {PURSES_FR.get(parts[2], parts[2])}"
    if head == "suspense" and len(parts) == 2:
        return f"Attente d'explication — {_SUSPENSE_FR.get(parts[1], parts[1])}"
    if head == "clearing" and len(parts) >= 2:
        return f"Compensation — {account_fr(':'.join(parts[1:]))}"
    if account == "plum:carnet_pool":
        return "Réseau PLUM — carnets vendus, à répartir"
    if account == "plum:pass_pool":
        return "Réseau PLUM — abonnements vendus, à répartir"
    if account == "region:plum":
        return "Réseau PLUM (région) — recettes transport à reverser"
    if account == "region:wallet":
        return "Région — porte-monnaie Ma région numérique"
    if head == "region" and len(parts) == 2:
        return f"Région — {parts[1]}"
    if head in OPERATORS_FR and len(parts) == 1:
        return OPERATORS_FR[head]
    return account


def all_labels() -> dict[str, dict[str, str]]:
    """Every fixed table, for the pages (``GET /api/v1/labels``)."""
    return {
        "anomaly_kinds": dict(ANOMALY_KINDS_FR),
        "anomaly_states": dict(ANOMALY_STATES_FR),
        "card_statuses": dict(CARD_STATUSES_FR),
        "job_statuses": dict(JOB_STATUSES_FR),
        "applications": dict(APPLICATIONS_FR),
        "purses": dict(PURSES_FR),
        "aid_purposes": dict(AID_PURPOSES_FR),
        "roles": dict(ROLES_FR),
        "terminal_kinds": dict(TERMINAL_KINDS_FR),
    }
