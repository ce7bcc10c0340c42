"""Ma région numérique: the digital services directory and the stored-value (SV) logs.

The SV logs carry what a Calypso SV Get returns with the balance: the last load, the last debits
(Calypso SV; compare the Calypso Networks Association terminal API ``SvLoadLogRecord`` /
``SvDebitLogRecord``: date, time, amount, balance, KVC, SAM id, SV transaction number). Ours are
byte-aligned like Calypso's, with the EN 1545 day and minute counts in their 2-byte date and time.
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


def _sv_log(amount_doc: str) -> Fields:
    """One SV log entry, byte-aligned as the card writes it at each SV operation (the emulated card,
    hardware/card/emulator.py, appends exactly these 17 bytes, then zeros to 29)."""
    return (
        Date("date", width=16, doc="date of the operation (days since 1997-01-01, 2 bytes)"),
        Time("time", width=16, doc="time of the operation (minutes, 2 bytes)"),
        Amount("amount", 24, signed=True, doc=amount_doc),
        Amount("balance", 24, signed=True, doc="balance after the operation"),
        UInt("sv_tnum", 16, doc="SV transaction number of the card after the operation"),
        UInt("terminal_id", 32, doc="location / SAM id given by the terminal"),
        UInt("kvc", 8, doc="key version of the SV key used"),
    )


RECORD_TYPES: tuple[RecordType, ...] = (
    fixed("wallet.services", "Services numériques (digital services)", SERVICES_FIELDS),
    fixed("wallet.sv_load_log", "Dernier rechargement (SV load log)", _sv_log("amount loaded")),
    fixed("wallet.sv_debit_log", "Paiements (SV debit log)", _sv_log("amount debited")),
)
