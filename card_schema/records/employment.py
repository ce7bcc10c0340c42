"""Mes droits pour l'emploi: the holder's situation, rights, and who consulted them.

Our own records on the EN 1545 engine. They never feed PLUM: no employment or social attribute is
needed in a transit event (privacy rule; the terminal reads a mobility-aid right here when it
needs one, and the event it writes says nothing of it).
"""

from __future__ import annotations

from card_schema.en1545 import Date, DateTime, Enum, Flags, UInt
from card_schema.records.base import Fields, RecordType, fixed

AGE_BANDS = {0: "unknown", 1: "16-17", 2: "18-25", 3: "26-44", 4: "45-54", 5: "55-65"}
STATUSES = {
    0: "unknown",
    1: "job_seeker",
    2: "employee",
    3: "apprentice",
    4: "student",
    5: "vocational_trainee",
    6: "self_employed",
    7: "senior",
    8: "inactive",
}
PARTNERS = {
    0: "none",
    1: "france_travail",  # formerly Pôle emploi
    2: "mission_locale",
    3: "maison_emploi",
    4: "cap_emploi",
    5: "training_body",
    6: "pension_fund",
    7: "region",
    8: "apec",
    9: "chamber",  # CCI / CMA
}
RIGHTS = {
    1: "training_account",  # CPF
    2: "mobility_aid",
    3: "business_creation",
    4: "retraining",
    5: "skills_assessment",
    6: "vae",  # validation des acquis de l'expérience
    7: "apprenticeship",
    8: "internship_aid",
    9: "pension_info",
    10: "driving_licence_aid",
    11: "childcare_aid",
}
RIGHT_STATUSES = {0: "pending", 1: "open", 2: "used", 3: "expired", 4: "suspended", 5: "cancelled"}
UNITS = {0: "none", 1: "eurocents", 2: "hours"}
READ_ITEMS = {
    0: "situation",
    1: "right_1",
    2: "right_2",
    3: "right_3",
    4: "right_4",
    5: "consultation_log",
}

SITUATION_FIELDS: Fields = (
    UInt("version", 6, doc="layout version of the application (1)"),
    Enum("age_band", 3, values=AGE_BANDS, doc="age band (16-65)"),
    Enum("status", 4, values=STATUSES, doc="situation"),
    Date("valid_from", doc="situation known since"),
    Date("valid_until", doc="situation to be reviewed on"),
    Enum("referent", 4, values=PARTNERS, doc="partner following the holder"),
)

RIGHT_FIELDS: Fields = (
    Enum("right", 5, values=RIGHTS, doc="right code"),
    Enum("status", 3, values=RIGHT_STATUSES, doc="status of the right"),
    Date("valid_from", doc="first day"),
    Date("valid_until", doc="last day"),
    Enum("unit", 2, values=UNITS, doc="unit of the quantities"),
    UInt("granted", 24, doc="quantity granted (eurocents or hours)"),
    UInt("remaining", 24, doc="quantity left (eurocents or hours)"),
    Enum("partner", 4, values=PARTNERS, doc="partner that opened the right"),
    UInt("reference", 32, doc="partner's file number"),
)

CONSULTATION_FIELDS: Fields = (
    DateTime("consulted_at", doc="date and time of the reading"),
    Enum("partner", 4, values=PARTNERS, doc="who read the card"),
    UInt("partner_site", 16, doc="agency or site"),
    Flags("read", 8, names=READ_ITEMS, doc="what was read"),
    UInt("terminal_id", 16, doc="desk terminal"),
)

RECORD_TYPES: tuple[RecordType, ...] = (
    fixed("employment.situation", "Situation (holder situation)", SITUATION_FIELDS),
    fixed("employment.right", "Droit (right)", RIGHT_FIELDS),
    fixed("employment.consultation", "Consultation (who read the card)", CONSULTATION_FIELDS),
)
