"""Ma région numérique: the digital services directory and the stored-value (SV) logs.

The SV logs carry what a Calypso SV Get returns with the balance: the last load, the last debits,
in Calypso's layouts (Keyple ``SvLoadLogRecord`` / ``SvDebitLogRecord``: 22 and 19 bytes), with
the EN 1545 day and minute counts in their 2-byte date and time.
"""

from __future__ import annotations

from card_schema.en1545 import Amount, Date, Flags, Time, UInt
from card_schema.records.base import Fields, RecordType, fixed

SERVICES = {
    0: "my_menu_my_school",  # canteen menu « Mon menu, mon école »
    1: "realtime_transit",  # real-time transit « ça a l'heure »
    2: "bike_shelters",
    3: "libraries",
    4: "sport_facilities",
    5: "culture_pass",
    6: "school_life",
    7: "employment_news",
}

SERVICES_FIELDS: Fields = (
    UInt("version", 6, doc="layout version of the application (1)"),
    Flags("enabled", 32, names=SERVICES, doc="digital services the holder enabled"),
    Date("updated", doc="last change of the list"),
)


SV_LOAD_LOG_FIELDS: Fields = (
    Date("date", width=16, doc="date of the reload (days since 1997-01-01, 2 bytes)"),
    UInt("free_1", 8, doc="first free byte of the SV Reload command"),
    UInt("kvc", 8, doc="key version of the SV key used"),
    UInt("free_2", 8, doc="second free byte of the SV Reload command"),
    Amount("balance", 24, signed=True, doc="balance after the reload"),
    Amount("amount", 24, signed=True, doc="amount loaded"),
    Time("time", width=16, doc="time of the reload (minutes, 2 bytes)"),
    UInt("sam_id", 32, doc="serial of the SAM that prepared the reload"),
    UInt("sam_tnum", 24, doc="SAM transaction number of the reload"),
    UInt("sv_tnum", 16, doc="SV transaction number of the card after the reload"),
)
"""Calypso SV load log (22 bytes, as SV Get returns it; the card's record is zero padded to 29).
Byte order as Keyple's ``SvLoadLogRecord`` reads it: date (0), free (2), KVC (3), free (4),
balance (5), amount (8), time (11), SAM id (13), SAM transaction number (17), SV tnum (20)."""

SV_DEBIT_LOG_FIELDS: Fields = (
    Amount("amount", 16, signed=True, doc="amount of the command: negative for a debit"),
    Date("date", width=16, doc="date of the operation (days since 1997-01-01, 2 bytes)"),
    Time("time", width=16, doc="time of the operation (minutes, 2 bytes)"),
    UInt("kvc", 8, doc="key version of the SV key used"),
    UInt("sam_id", 32, doc="serial of the SAM that prepared the operation"),
    UInt("sam_tnum", 24, doc="SAM transaction number of the operation"),
    Amount("balance", 24, signed=True, doc="balance after the operation"),
    UInt("sv_tnum", 16, doc="SV transaction number of the card after the operation"),
)
"""Calypso SV debit log (19 bytes, zero padded to 29 on the card), order of Keyple's
``SvDebitLogRecord``: amount (0), date (2), time (4), KVC (6), SAM id (7), SAM transaction
number (11), balance (14), SV tnum (17)."""


RECORD_TYPES: tuple[RecordType, ...] = (
    fixed("wallet.services", "Services numériques (digital services)", SERVICES_FIELDS),
    fixed("wallet.sv_load_log", "Dernier rechargement (SV load log)", SV_LOAD_LOG_FIELDS),
    fixed("wallet.sv_debit_log", "Paiements (SV debit log)", SV_DEBIT_LOG_FIELDS),
)
