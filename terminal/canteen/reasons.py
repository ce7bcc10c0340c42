"""Reason codes of a canteen decision and the French line the till's screen shows.

One table, :data:`SCREEN_TEXT`, maps every code to its text; ``docs/canteen.md`` reproduces it.
The texts say what the pupil and the cashier need to know and nothing about the family's
situation (no "boursier", no aid level).
"""

from __future__ import annotations

from enum import StrEnum

from terminal.fares.reasons import format_euros


class MealReason(StrEnum):
    """Why a meal was served or refused."""

    # Served
    SERVED = "served"
    PAYMENT_COMPLETED = "payment_completed"  # the wallet part of a meal logged earlier, paid now
    RECOVERED = "recovered"  # the previous tap's session was committed after all: serve it
    # Refused, in the order the checks run
    OUT_OF_SERVICE = "out_of_service"
    NO_STUDENT_RECORD = "no_student_record"
    OTHER_SCHOOL = "other_school"
    OUT_OF_SCHOOL_YEAR = "out_of_school_year"
    ALREADY_SERVED = "already_served"
    NO_TARIFF = "no_tariff"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    # Refused by the till around the decision (the card or the reader, not the rules)
    CARD_INVALIDATED = "card_invalidated"
    CARD_ERROR = "card_error"
    TAP_AGAIN = "tap_again"
    SAM_UNAVAILABLE = "sam_unavailable"  # the till's SAM reader failed: call for help

    @property
    def text(self) -> str:
        """The French screen text."""
        return SCREEN_TEXT[self]

    @property
    def serves(self) -> bool:
        """Whether the pupil gets the tray."""
        return self in SERVING


SCREEN_TEXT: dict[MealReason, str] = {
    MealReason.SERVED: "Bon appétit",
    MealReason.PAYMENT_COMPLETED: "Bon appétit (paiement complété)",
    MealReason.RECOVERED: "Bon appétit (passage précédent confirmé)",
    MealReason.OUT_OF_SERVICE: "Hors service de restauration",
    MealReason.NO_STUDENT_RECORD: "Carte sans dossier élève",
    MealReason.OTHER_SCHOOL: "Élève d'un autre établissement",
    MealReason.OUT_OF_SCHOOL_YEAR: "Carte hors année scolaire",
    MealReason.ALREADY_SERVED: "Repas déjà pris",
    MealReason.NO_TARIFF: "Repas non prévu pour cet élève",
    MealReason.INSUFFICIENT_BALANCE: "Solde insuffisant",
    MealReason.CARD_INVALIDATED: "Carte invalidée",
    MealReason.CARD_ERROR: "Carte illisible, voir l'intendance",
    MealReason.TAP_AGAIN: "Présentez à nouveau la carte",
    MealReason.SAM_UNAVAILABLE: "Caisse hors service (module de sécurité), voir l'intendance",
}

SERVING: frozenset[MealReason] = frozenset(
    {MealReason.SERVED, MealReason.PAYMENT_COMPLETED, MealReason.RECOVERED}
)


__all__ = ["SCREEN_TEXT", "SERVING", "MealReason", "format_euros"]
