"""Reason codes of a fare decision and the French text the gate's display line shows.

One table, :data:`DISPLAY_TEXT`, maps every code to its text; ``docs/tariffs.md`` reproduces it.
The texts are short enough for a two-line validator display and say nothing about the holder's
social or employment situation beyond what the holder needs to understand the decision.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a card was accepted or refused."""

    # Accepted
    OK = "ok"
    TRANSFER = "transfer"
    SCHOOL_TRANSPORT = "school_transport"
    MOBILITY_AID = "mobility_aid"
    BIKE_SHELTER_OPEN = "bike_shelter_open"
    # Refused, in the order the checks run
    CARD_BLOCKED = "card_blocked"
    CARD_INVALIDATED = "card_invalidated"
    UNKNOWN_NETWORK = "unknown_network"
    CARD_EXPIRED = "card_expired"
    ALREADY_VALIDATED = "already_validated"
    OUT_OF_ZONE = "out_of_zone"
    CONTRACT_NOT_YET_VALID = "contract_not_yet_valid"
    CONTRACT_EXPIRED = "contract_expired"
    PROFILE_EXPIRED = "profile_expired"
    CARNET_EMPTY = "carnet_empty"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    NOT_VALID_HERE = "not_valid_here"
    NO_VALID_CONTRACT = "no_valid_contract"
    BIKE_SHELTER_REFUSED = "bike_shelter_refused"
    READ_ONLY = "read_only"

    @property
    def text(self) -> str:
        """The French display text."""
        return DISPLAY_TEXT[self]

    @property
    def accepts(self) -> bool:
        """Whether this reason opens the gate or door."""
        return self in ACCEPTING


DISPLAY_TEXT: dict[Reason, str] = {
    Reason.OK: "Bon voyage",
    Reason.TRANSFER: "Correspondance",
    Reason.SCHOOL_TRANSPORT: "Transport scolaire gratuit",
    # Neutral on purpose: the gate display is public, and an employment right is nobody's
    # business but the holder's (the inspector, who reads the card with the holder, sees it).
    Reason.MOBILITY_AID: "Bon voyage",
    Reason.BIKE_SHELTER_OPEN: "Abri vélo : accès autorisé",
    Reason.CARD_BLOCKED: "Carte bloquée",
    Reason.CARD_INVALIDATED: "Carte invalidée",
    Reason.UNKNOWN_NETWORK: "Carte non reconnue",
    Reason.CARD_EXPIRED: "Carte expirée",
    Reason.ALREADY_VALIDATED: "Déjà validé",
    Reason.OUT_OF_ZONE: "Hors zone",
    Reason.CONTRACT_NOT_YET_VALID: "Titre pas encore valide",
    Reason.CONTRACT_EXPIRED: "Titre expiré",
    Reason.PROFILE_EXPIRED: "Justificatif de réduction expiré",
    Reason.CARNET_EMPTY: "Carnet épuisé",
    Reason.INSUFFICIENT_BALANCE: "Solde insuffisant",
    Reason.NOT_VALID_HERE: "Titre non valable ici",
    Reason.NO_VALID_CONTRACT: "Aucun titre valide",
    Reason.BIKE_SHELTER_REFUSED: "Abri vélo : accès refusé",
    Reason.READ_ONLY: "Lecture seule (contrôle)",
}

ACCEPTING: frozenset[Reason] = frozenset(
    {
        Reason.OK,
        Reason.TRANSFER,
        Reason.SCHOOL_TRANSPORT,
        Reason.MOBILITY_AID,
        Reason.BIKE_SHELTER_OPEN,
    }
)

# When no way of paying works, the refusal names the most useful reason found among the
# contracts, in this order (a pass valid elsewhere says more than an old expired one).
REFUSAL_PRIORITY: tuple[Reason, ...] = (
    Reason.OUT_OF_ZONE,
    Reason.CONTRACT_NOT_YET_VALID,
    Reason.CONTRACT_EXPIRED,
    Reason.PROFILE_EXPIRED,
    Reason.CARNET_EMPTY,
    Reason.INSUFFICIENT_BALANCE,
    Reason.NOT_VALID_HERE,
    Reason.NO_VALID_CONTRACT,
)


def format_euros(cents: int) -> str:
    """Eurocents as French-formatted euros: ``1230`` -> ``"12,30 €"``."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole},{rest:02d} €"
