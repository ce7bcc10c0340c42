"""Audit trail: every desk lookup of a holder or a card (who, what, when, why)."""
