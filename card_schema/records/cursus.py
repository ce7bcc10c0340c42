"""Cursus, the young people's application: student record, ring-fenced aid, canteen log.

Our own records, declared with the same EN 1545 engine and conventions as Intercode (dates in days
since 1997-01-01, times in minutes, amounts in eurocents, network ids in BCD). Field names are
snake_case to tell them from the Intercode names of PLUM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from card_schema.en1545 import (
    Amount,
    Date,
    DateTime,
    Enum,
    NetworkId,
    NotShowable,
    Scalar,
    UInt,
    Zones,
)
from card_schema.errors import SchemaError
from card_schema.layout import COUNTERS_PER_RECORD
from card_schema.records.base import Fields, RecordType, fixed

_UAI_LETTERS = " ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class UAI(Scalar):
    """A school's UAI (unité administrative immatriculée, the French school register number):
    7 digits and a check letter, e.g. ``0801234X``. 28 bits of BCD for the digits, then the letter
    on 5 bits (A=1..Z=26), 33 bits in all instead of 64 as ASCII."""

    width: int = 33
    codec = "UAI: 7 BCD digits + 5-bit letter"

    def to_json(self, raw: int) -> Any:
        digits, letter = f"{raw >> 5:07x}", raw & 0x1F
        if not digits.isdigit() or not 1 <= letter <= 26:
            raise NotShowable
        return digits + _UAI_LETTERS[letter]

    def from_json(self, value: Any, where: str) -> int:
        if (
            not isinstance(value, str)
            or len(value) != 8
            or not value[:7].isascii()
            or not value[:7].isdigit()
            or not ("A" <= value[7] <= "Z")
        ):
            raise SchemaError(f"a UAI is 7 digits and a capital letter, got {value!r}", field=where)
        return int(value[:7], 16) << 5 | _UAI_LETTERS.index(value[7])


LEVELS = {
    0: "unknown",
    1: "sixieme",
    2: "cinquieme",
    3: "quatrieme",
    4: "troisieme",
    5: "seconde",
    6: "premiere",
    7: "terminale",
    8: "cap_1",
    9: "cap_2",
    10: "bts_1",
    11: "bts_2",
    12: "apprentice",
    13: "higher_education",
}
BOARDING = {0: "day_pupil", 1: "half_board", 2: "boarder"}  # externe, demi-pensionnaire, interne
TRANSPORT_RIGHTS = {0: "none", 1: "free", 2: "reduced"}

STUDENT_FIELDS: Fields = (
    UInt("version", 6, doc="layout version of the Cursus application (1)"),
    UAI("school_uai", doc="school of the pupil"),
    Enum("level", 5, values=LEVELS, doc="class level"),
    Enum("boarding", 2, values=BOARDING, doc="boarding status"),
    Date("valid_from", doc="first day of the school year"),
    Date("valid_until", doc="last day of the school year"),
    Enum("school_transport", 2, values=TRANSPORT_RIGHTS, doc="school transport entitlement"),
    NetworkId("transport_network_id", doc="network where the entitlement applies"),
    Zones("transport_zones", 16, doc="zones of the entitlement"),
)

AID_COUNTER_NAMES = ("books_equipment", "sport_leisure", "canteen")
# Counter 9: number of the last action-list aid credit written on this card (télédistribution,
# docs/action-lists.md). Updated in the same Update Record as the credit itself, so a credit and
# its number commit together: a terminal that finds a number at least the action's skips it.
AID_LAST_ACTION = "last_action"
AID_COUNTER_FIELDS: Fields = tuple(
    Amount(AID_COUNTER_NAMES[i], 24, doc=f"{AID_COUNTER_NAMES[i].replace('_', ' ')} aid")
    if i < len(AID_COUNTER_NAMES)
    else UInt(AID_LAST_ACTION, 24, doc="last action-list credit written (action number)")
    if i == COUNTERS_PER_RECORD - 1
    else UInt(f"counter_{i + 1}", 24, doc="spare counter")
    for i in range(COUNTERS_PER_RECORD)
)

MEAL_SERVICES = {0: "unknown", 1: "breakfast", 2: "lunch", 3: "snack", 4: "dinner"}
FUNDERS = {0: "none", 1: "region", 2: "department", 3: "commune", 4: "school_social_fund"}

CANTEEN_LOG_FIELDS: Fields = (
    DateTime("served_at", doc="date and time of the meal"),
    UAI("school_uai", doc="school of the canteen"),
    Enum("service", 3, values=MEAL_SERVICES, doc="meal service"),
    Enum("funder", 4, values=FUNDERS, doc="funder of the aid part"),
    Amount("aid_amount", 16, doc="paid from the canteen aid counter"),
    Amount("wallet_amount", 16, doc="paid from the wallet (stored value)"),
    UInt("terminal_id", 16, doc="point of sale"),
)

RECORD_TYPES: tuple[RecordType, ...] = (
    fixed("cursus.student", "Élève (student record)", STUDENT_FIELDS),
    fixed(
        "cursus.aid_counters", "Aides réservées (ring-fenced aid, eurocents)", AID_COUNTER_FIELDS
    ),
    fixed("cursus.canteen_log", "Passage cantine (canteen log)", CANTEEN_LOG_FIELDS),
)
