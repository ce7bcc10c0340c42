"""Table-driven tests of terminal.fares.rules.decide: every edge of issue 4 and every reason code.

Each case is one tap: a card image, where and when, the deny-list, and what the gate must decide.
The default tariff (terminal/fares/data/default_tariff.json) is used throughout: pay-as-you-go
1,80 € (student -30 %, job seeker -50 %, senior -30 %), free transfers within 60 min (3 at most,
not back onto the same line or station), anti-passback 450 s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest
from fares_builders import (
    BUS_12,
    BUS_12_NEXT,
    BUS_ZONE2,
    COACH,
    METRO,
    METRO_OTHER,
    NO_DENY,
    SERIAL,
    SHELTER,
    TARIFF,
    TER,
    at,
    card,
    carnet,
    contract,
    event,
    tap,
)

from terminal.fares.denylist import DenyList
from terminal.fares.model import (
    CardImage,
    Environment,
    Event,
    EventKind,
    GateKind,
    HolderProfile,
    MobilityAid,
    ProfileCode,
    SchoolTransportEntitlement,
    Tap,
)
from terminal.fares.reasons import DISPLAY_TEXT, Reason
from terminal.fares.rules import CounterDebit, EntitlementDebit, decide

MONDAY = at(2025, 3, 10)  # a school Monday in March 2025
MARCH_PASS = contract()  # PASS_MOIS_1Z, zone 1, March 2025 (end from the tariff: 31 March)
STUDENT = HolderProfile(ProfileCode.STUDENT, valid_until=date(2025, 8, 31))
JOB_SEEKER = HolderProfile(ProfileCode.JOB_SEEKER, valid_until=date(2025, 6, 30))
SENIOR = HolderProfile(ProfileCode.SENIOR)
SCHOOL = SchoolTransportEntitlement(
    zones=frozenset({1, 2}),
    valid_from=date(2024, 9, 2),
    valid_until=date(2025, 7, 4),
    school_weekdays=frozenset({0, 1, 3, 4}),  # no school on Wednesday
    non_school_days=frozenset({date(2025, 4, 21)}),  # Easter Monday
)
AID_TRIPS = MobilityAid(
    record=2, valid_from=date(2025, 3, 1), valid_until=date(2025, 5, 31), trips_remaining=5
)
AID_AMOUNT = MobilityAid(
    record=3, valid_from=date(2025, 3, 1), valid_until=date(2025, 5, 31), amount_remaining=1000
)
BLOCKED = DenyList(version=7, serials=frozenset({SERIAL}))


@dataclass(frozen=True)
class Case:
    """One tap and what the gate must decide (``None`` fields are not checked)."""

    id: str
    card: CardImage
    tap: Tap
    reason: Reason
    deny_list: DenyList = NO_DENY
    sv_debit: int = 0
    counter_debit: CounterDebit | None = None
    entitlement_debit: EntitlementDebit | None = None
    contract_slot: int | None = None
    product_id: str | None = None
    is_transfer: bool = False
    display: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def pass_card(*contracts: object, **fields: object) -> CardImage:
    return card(contracts=tuple(contracts or (MARCH_PASS,)), **fields)


def wallet(balance: int, **fields: object) -> CardImage:
    return card(sv_balance=balance, **fields)


CASES: list[Case] = [
    # --- monthly pass, midnight, month end, leap day -------------------------------------------
    Case(
        "pass-ok", pass_card(), tap(MONDAY), Reason.OK, contract_slot=1, product_id="PASS_MOIS_1Z"
    ),
    Case(
        "pass-last-second-of-month",
        pass_card(),
        tap(at(2025, 3, 31, 23, 59, 59)),
        Reason.OK,
        contract_slot=1,
    ),
    Case("pass-midnight-expired", pass_card(), tap(at(2025, 4, 1, 0, 0)), Reason.CONTRACT_EXPIRED),
    Case(
        "explicit-end-date-inclusive",
        pass_card(contract(end=date(2025, 3, 15))),
        tap(at(2025, 3, 15, 23, 59, 59)),
        Reason.OK,
    ),
    Case(
        "explicit-end-date-next-midnight",
        pass_card(contract(end=date(2025, 3, 15))),
        tap(at(2025, 3, 16, 0, 0)),
        Reason.CONTRACT_EXPIRED,
    ),
    Case(
        "february-2025-ends-28",
        pass_card(contract(start=date(2025, 2, 1))),
        tap(at(2025, 2, 28, 23, 59)),
        Reason.OK,
    ),
    Case(
        "february-2025-expired-1-march",
        pass_card(contract(start=date(2025, 2, 1))),
        tap(at(2025, 3, 1, 0, 0)),
        Reason.CONTRACT_EXPIRED,
    ),
    Case(
        "leap-day-february-2024-valid-29",
        pass_card(contract(start=date(2024, 2, 1))),
        tap(at(2024, 2, 29, 12)),
        Reason.OK,
    ),
    Case(
        "leap-year-february-expired-1-march",
        pass_card(contract(start=date(2024, 2, 1))),
        tap(at(2024, 3, 1, 0, 0)),
        Reason.CONTRACT_EXPIRED,
    ),
    Case(
        "annual-from-leap-day-ends-28-feb",
        pass_card(contract("PASS_ANNUEL_1Z", start=date(2024, 2, 29))),
        tap(at(2025, 2, 28, 23, 59)),
        Reason.OK,
    ),
    Case(
        "annual-from-leap-day-expired-1-march",
        pass_card(contract("PASS_ANNUEL_1Z", start=date(2024, 2, 29))),
        tap(at(2025, 3, 1, 0, 0)),
        Reason.CONTRACT_EXPIRED,
    ),
    Case(
        "rolling-month-31-jan-ends-29-feb",
        pass_card(contract("PLUM_TER_MOIS", start=date(2024, 1, 31), zones=frozenset())),
        tap(at(2024, 2, 29, 18), TER),
        Reason.OK,
    ),
    Case(
        "rolling-month-31-jan-expired-1-march",
        pass_card(contract("PLUM_TER_MOIS", start=date(2024, 1, 31), zones=frozenset())),
        tap(at(2024, 3, 1, 7), TER),
        Reason.CONTRACT_EXPIRED,
    ),
    # --- not yet valid, datetime bounds -------------------------------------------------------
    Case(
        "not-yet-valid-last-second",
        pass_card(contract(start=date(2025, 4, 1))),
        tap(at(2025, 3, 31, 23, 59, 59)),
        Reason.CONTRACT_NOT_YET_VALID,
    ),
    Case(
        "valid-from-midnight",
        pass_card(contract(start=date(2025, 4, 1))),
        tap(at(2025, 4, 1, 0, 0)),
        Reason.OK,
    ),
    Case(
        "datetime-start-inclusive",
        pass_card(contract(start=at(2025, 3, 10, 9), end=at(2025, 3, 10, 18))),
        tap(at(2025, 3, 10, 9)),
        Reason.OK,
    ),
    Case(
        "datetime-start-one-second-early",
        pass_card(contract(start=at(2025, 3, 10, 9), end=at(2025, 3, 10, 18))),
        tap(at(2025, 3, 10, 8, 59, 59)),
        Reason.CONTRACT_NOT_YET_VALID,
    ),
    Case(
        "datetime-end-exclusive",
        pass_card(contract(start=at(2025, 3, 10, 9), end=at(2025, 3, 10, 18))),
        tap(at(2025, 3, 10, 18)),
        Reason.CONTRACT_EXPIRED,
    ),
    # --- card-level checks, in order ----------------------------------------------------------
    Case("deny-listed", pass_card(), tap(MONDAY), Reason.CARD_BLOCKED, deny_list=BLOCKED),
    Case(
        "deny-listed-before-invalidated",
        pass_card(invalidated=True),
        tap(MONDAY),
        Reason.CARD_BLOCKED,
        deny_list=BLOCKED,
    ),
    Case(
        "deny-list-other-card",
        pass_card(),
        tap(MONDAY),
        Reason.OK,
        deny_list=DenyList(3, serials=frozenset({"FFFF"})),
    ),
    Case("invalidated", pass_card(invalidated=True), tap(MONDAY), Reason.CARD_INVALIDATED),
    Case(
        "invalidated-before-environment",
        pass_card(invalidated=True, environment=Environment(date(2020, 1, 1))),
        tap(MONDAY),
        Reason.CARD_INVALIDATED,
    ),
    Case(
        "unknown-network",
        pass_card(environment=Environment(date(2030, 1, 1), network_id=756_000)),
        tap(MONDAY),
        Reason.UNKNOWN_NETWORK,
    ),
    Case(
        "legacy-lille-network-accepted",
        pass_card(environment=Environment(date(2030, 1, 1), network_id=250_149)),
        tap(MONDAY),
        Reason.OK,
    ),
    Case(
        "environment-last-day",
        pass_card(environment=Environment(date(2025, 3, 10))),
        tap(at(2025, 3, 10, 23, 59, 59)),
        Reason.OK,
    ),
    Case(
        "environment-expired",
        pass_card(environment=Environment(date(2025, 3, 9))),
        tap(MONDAY),
        Reason.CARD_EXPIRED,
    ),
    # --- place: zone, network, mode, profile --------------------------------------------------
    Case("out-of-zone", pass_card(), tap(MONDAY, BUS_ZONE2), Reason.OUT_OF_ZONE),
    Case(
        "out-of-zone-pays-from-wallet",
        pass_card(sv_balance=500),
        tap(MONDAY, BUS_ZONE2),
        Reason.OK,
        sv_debit=180,
        product_id="TICKET_UNITAIRE",
    ),
    Case(
        "two-zone-pass-in-zone-2",
        pass_card(contract("PASS_MOIS_2Z", zones=frozenset({1, 2}))),
        tap(MONDAY, BUS_ZONE2),
        Reason.OK,
    ),
    Case(
        "ter-pass-at-metro",
        pass_card(contract("PLUM_TER_MOIS", zones=frozenset())),
        tap(MONDAY, METRO),
        Reason.NOT_VALID_HERE,
    ),
    Case(
        "ter-pass-on-train",
        pass_card(contract("PLUM_TER_MOIS", zones=frozenset())),
        tap(MONDAY, TER),
        Reason.OK,
    ),
    Case(
        "ter-pass-on-coach",
        pass_card(contract("PLUM_TER_MOIS", zones=frozenset())),
        tap(MONDAY, COACH),
        Reason.OK,
    ),
    Case(
        "urban-pass-on-train",
        pass_card(contract("PASS_MOIS_4Z", zones=frozenset())),
        tap(MONDAY, TER),
        Reason.NOT_VALID_HERE,
    ),
    Case(
        "student-pass-with-profile",
        pass_card(contract("PASS_MOIS_ETUDIANT_1Z"), profiles=(STUDENT,)),
        tap(MONDAY),
        Reason.OK,
    ),
    Case(
        "student-pass-profile-last-day",
        pass_card(
            contract("PASS_MOIS_ETUDIANT_1Z"),
            profiles=(HolderProfile(ProfileCode.STUDENT, valid_until=date(2025, 3, 10)),),
        ),
        tap(at(2025, 3, 10, 23, 59)),
        Reason.OK,
    ),
    Case(
        "student-pass-profile-expired",
        pass_card(
            contract("PASS_MOIS_ETUDIANT_1Z"),
            profiles=(HolderProfile(ProfileCode.STUDENT, valid_until=date(2025, 3, 9)),),
        ),
        tap(MONDAY),
        Reason.PROFILE_EXPIRED,
    ),
    Case(
        "solidarity-pass-job-seeker",
        pass_card(contract("PASS_MOIS_SOLIDAIRE", zones=frozenset()), profiles=(JOB_SEEKER,)),
        tap(MONDAY, BUS_ZONE2),
        Reason.OK,
        product_id="PASS_MOIS_SOLIDAIRE",
    ),
    Case(
        "unknown-product-only",
        pass_card(contract("PRODUIT_RETIRE")),
        tap(MONDAY),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "expired-and-future-pass-says-not-yet",
        pass_card(
            contract(start=date(2025, 2, 1), slot=1), contract(start=date(2025, 4, 1), slot=2)
        ),
        tap(MONDAY),
        Reason.CONTRACT_NOT_YET_VALID,
    ),
    Case(
        "second-slot-pass-used",
        pass_card(contract(start=date(2025, 2, 1), slot=1), contract(slot=3)),
        tap(MONDAY),
        Reason.OK,
        contract_slot=3,
    ),
    # --- carnet in a counter ------------------------------------------------------------------
    Case(
        "carnet-trip",
        card(contracts=(carnet(),), counters={1: 10}),
        tap(MONDAY),
        Reason.OK,
        counter_debit=CounterDebit(1, 1),
        contract_slot=2,
        product_id="CARNET_10",
        display="Bon voyage — 9 voyages restants",
    ),
    Case(
        "carnet-last-trip",
        card(contracts=(carnet(),), counters={1: 1}),
        tap(MONDAY),
        Reason.OK,
        counter_debit=CounterDebit(1, 1),
        display="Bon voyage — 0 voyage restant",
    ),
    Case(
        "carnet-empty",
        card(contracts=(carnet(),), counters={1: 0}),
        tap(MONDAY),
        Reason.CARNET_EMPTY,
    ),
    Case(
        "carnet-empty-pays-from-wallet",
        card(contracts=(carnet(),), counters={1: 0}, sv_balance=1000),
        tap(MONDAY),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "carnet-not-on-train",
        card(contracts=(carnet(),), counters={1: 4}),
        tap(MONDAY, TER),
        Reason.NOT_VALID_HERE,
    ),
    Case(
        "pass-preferred-over-carnet",
        card(contracts=(MARCH_PASS, carnet()), counters={1: 4}),
        tap(MONDAY),
        Reason.OK,
        contract_slot=1,
    ),
    # --- pay as you go from the wallet, reduced fares, insufficient balance --------------------
    Case(
        "wallet-full-fare",
        wallet(500),
        tap(MONDAY),
        Reason.OK,
        sv_debit=180,
        product_id="TICKET_UNITAIRE",
        display="Bon voyage — solde 3,20 €",
    ),
    Case("wallet-exact-balance", wallet(180), tap(MONDAY), Reason.OK, sv_debit=180),
    Case(
        "wallet-one-cent-short",
        wallet(179),
        tap(MONDAY),
        Reason.INSUFFICIENT_BALANCE,
        display="Solde insuffisant — solde 1,79 €, trajet 1,80 €",
    ),
    Case("wallet-empty", wallet(0), tap(MONDAY), Reason.INSUFFICIENT_BALANCE),
    Case("wallet-overdrawn", wallet(-40), tap(MONDAY), Reason.INSUFFICIENT_BALANCE),
    Case(
        "wallet-student-30pc",
        wallet(500, profiles=(STUDENT,)),
        tap(MONDAY),
        Reason.OK,
        sv_debit=126,
    ),
    Case(
        "wallet-student-reduced-fare-exact",
        wallet(126, profiles=(STUDENT,)),
        tap(MONDAY),
        Reason.OK,
        sv_debit=126,
    ),
    Case(
        "wallet-job-seeker-50pc",
        wallet(500, profiles=(JOB_SEEKER,)),
        tap(MONDAY),
        Reason.OK,
        sv_debit=90,
    ),
    Case(
        "wallet-senior-30pc", wallet(500, profiles=(SENIOR,)), tap(MONDAY), Reason.OK, sv_debit=126
    ),
    Case(
        "wallet-best-reduction-wins",
        wallet(500, profiles=(STUDENT, JOB_SEEKER)),
        tap(MONDAY),
        Reason.OK,
        sv_debit=90,
    ),
    Case(
        "wallet-expired-profile-full-fare",
        wallet(500, profiles=(HolderProfile(ProfileCode.STUDENT, valid_until=date(2025, 1, 31)),)),
        tap(MONDAY),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "wallet-on-coach",
        wallet(500),
        tap(MONDAY, COACH),
        Reason.OK,
        sv_debit=180,
    ),
    Case("wallet-not-on-train", wallet(5000), tap(MONDAY, TER), Reason.NO_VALID_CONTRACT),
    Case("nothing-on-card", card(), tap(MONDAY), Reason.NO_VALID_CONTRACT),
    Case(
        "expired-pass-and-short-wallet-says-expired",
        pass_card(contract(start=date(2025, 2, 1)), sv_balance=10),
        tap(MONDAY),
        Reason.CONTRACT_EXPIRED,
    ),
    Case(
        "ter-pass-and-short-wallet-at-metro-says-balance",
        pass_card(contract("PLUM_TER_MOIS", zones=frozenset()), sv_balance=10),
        tap(MONDAY, METRO),
        Reason.INSUFFICIENT_BALANCE,
    ),
    # --- anti-passback ------------------------------------------------------------------------
    Case(
        "passback-same-station-449s",
        pass_card(events=(event(at(2025, 3, 10, 7, 52, 31), METRO, contract_slot=1),)),
        tap(MONDAY),
        Reason.ALREADY_VALIDATED,
    ),
    Case(
        "passback-same-station-450s-ok",
        pass_card(events=(event(at(2025, 3, 10, 7, 52, 30), METRO, contract_slot=1),)),
        tap(MONDAY),
        Reason.OK,
    ),
    Case(
        "passback-same-bus-line-other-stop",
        wallet(500, events=(event(at(2025, 3, 10, 7, 58), BUS_12),)),
        tap(MONDAY, BUS_12_NEXT),
        Reason.ALREADY_VALIDATED,
    ),
    Case(
        "passback-even-with-wallet",
        wallet(5000, events=(event(at(2025, 3, 10, 7, 59), METRO),)),
        tap(MONDAY),
        Reason.ALREADY_VALIDATED,
    ),
    Case(
        "passback-ignores-exit-events",
        wallet(500, events=(event(at(2025, 3, 10, 7, 59), METRO, kind=EventKind.EXIT),)),
        tap(MONDAY),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "future-event-ignored",
        wallet(500, events=(event(at(2025, 3, 10, 8, 5), METRO),)),
        tap(MONDAY),
        Reason.OK,
        sv_debit=180,
    ),
    # --- transfer window ----------------------------------------------------------------------
    Case(
        "transfer-other-station-free",
        wallet(500, events=(event(at(2025, 3, 10, 7, 30), METRO),)),
        tap(MONDAY, METRO_OTHER),
        Reason.TRANSFER,
        sv_debit=0,
        is_transfer=True,
        product_id="TICKET_UNITAIRE",
    ),
    Case(
        "transfer-window-upper-bound-inclusive",
        wallet(500, events=(event(at(2025, 3, 10, 7, 0), METRO),)),
        tap(at(2025, 3, 10, 8, 0, 0), BUS_12),
        Reason.TRANSFER,
        is_transfer=True,
    ),
    Case(
        "transfer-window-one-second-late",
        wallet(500, events=(event(at(2025, 3, 10, 7, 0), METRO),)),
        tap(at(2025, 3, 10, 8, 0, 1), BUS_12),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "transfer-window-from-journey-start",
        wallet(
            500,
            events=(
                event(
                    at(2025, 3, 10, 7, 50),
                    BUS_12,
                    kind=EventKind.TRANSFER,
                    journey_start=at(2025, 3, 10, 6, 59),
                    transfers=1,
                ),
            ),
        ),
        tap(MONDAY, METRO),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "transfer-across-midnight",
        wallet(500, events=(event(at(2025, 3, 9, 23, 50), METRO),)),
        tap(at(2025, 3, 10, 0, 30), BUS_12),
        Reason.TRANSFER,
        is_transfer=True,
    ),
    Case(
        "transfer-from-carnet-keeps-counter",
        card(
            contracts=(carnet(),),
            counters={1: 5},
            events=(event(at(2025, 3, 10, 7, 40), METRO, product_id="CARNET_10", contract_slot=2),),
        ),
        tap(MONDAY, BUS_12),
        Reason.TRANSFER,
        counter_debit=None,
        contract_slot=2,
        is_transfer=True,
    ),
    Case(
        "transfer-urban-to-coach",
        wallet(500, events=(event(at(2025, 3, 10, 7, 40), BUS_12),)),
        tap(MONDAY, COACH),
        Reason.TRANSFER,
        is_transfer=True,
    ),
    Case(
        "no-transfer-onto-same-line-after-passback",
        wallet(500, events=(event(at(2025, 3, 10, 7, 40), BUS_12),)),
        tap(MONDAY, BUS_12_NEXT),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "no-transfer-into-ter",
        wallet(500, events=(event(at(2025, 3, 10, 7, 40), BUS_12),)),
        tap(MONDAY, TER),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "transfer-count-exhausted",
        wallet(
            500,
            events=(
                event(
                    at(2025, 3, 10, 7, 50),
                    BUS_12,
                    kind=EventKind.TRANSFER,
                    journey_start=at(2025, 3, 10, 7, 30),
                    transfers=3,
                ),
            ),
        ),
        tap(MONDAY, METRO),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "pass-within-window-shows-transfer",
        pass_card(events=(event(at(2025, 3, 10, 7, 45), BUS_12, product_id="PASS_MOIS_1Z"),)),
        tap(MONDAY, METRO),
        Reason.TRANSFER,
        contract_slot=1,
        is_transfer=True,
    ),
    Case(
        "pass-out-of-zone-gets-no-free-transfer",
        pass_card(events=(event(at(2025, 3, 10, 7, 45), BUS_12, product_id="PASS_MOIS_1Z"),)),
        tap(MONDAY, BUS_ZONE2),
        Reason.OUT_OF_ZONE,
    ),
    # --- DST: durations in real time ----------------------------------------------------------
    Case(
        "dst-spring-forward-50-real-minutes",
        wallet(500, events=(event(at(2025, 3, 30, 1, 50), METRO),)),
        tap(at(2025, 3, 30, 3, 40), BUS_12),
        Reason.TRANSFER,
        is_transfer=True,
    ),
    Case(
        "dst-fall-back-50-real-minutes",
        wallet(500, events=(event(at(2025, 10, 26, 2, 30, fold=0), METRO),)),
        tap(at(2025, 10, 26, 2, 20, fold=1), BUS_12),
        Reason.TRANSFER,
        is_transfer=True,
    ),
    Case(
        "dst-fall-back-110-real-minutes",
        wallet(500, events=(event(at(2025, 10, 26, 1, 40), METRO),)),
        tap(at(2025, 10, 26, 2, 30, fold=1), BUS_12),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "dst-fall-back-passback-6-real-minutes",
        wallet(500, events=(event(at(2025, 10, 26, 2, 55, fold=0), METRO),)),
        tap(at(2025, 10, 26, 2, 1, fold=1), METRO),
        Reason.ALREADY_VALIDATED,
    ),
    # --- Cursus free school transport ---------------------------------------------------------
    Case(
        "school-monday-zone-1",
        card(school_transport=SCHOOL),
        tap(MONDAY, BUS_12),
        Reason.SCHOOL_TRANSPORT,
        product_id="TRANSPORT_SCOLAIRE",
    ),
    Case(
        "school-friday-last-second",
        card(school_transport=SCHOOL),
        tap(at(2025, 3, 14, 23, 59, 59), BUS_ZONE2),
        Reason.SCHOOL_TRANSPORT,
    ),
    Case(
        "school-saturday-midnight",
        card(school_transport=SCHOOL),
        tap(at(2025, 3, 15, 0, 0), BUS_12),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "school-wednesday-pays-from-wallet",
        card(school_transport=SCHOOL, sv_balance=500, profiles=(STUDENT,)),
        tap(at(2025, 3, 12, 13), BUS_12),
        Reason.OK,
        sv_debit=126,
    ),
    Case(
        "school-holiday",
        card(school_transport=SCHOOL),
        tap(at(2025, 4, 21, 8), BUS_12),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "school-year-last-day",
        card(school_transport=SCHOOL),
        tap(at(2025, 7, 4, 17), BUS_12),
        Reason.SCHOOL_TRANSPORT,
    ),
    Case(
        "school-year-over",
        card(school_transport=SCHOOL),
        tap(at(2025, 7, 7, 8), BUS_12),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "school-zone-not-entitled",
        card(school_transport=SCHOOL),
        tap(MONDAY, COACH),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "school-not-on-train",
        card(school_transport=SCHOOL),
        tap(MONDAY, dataclasses.replace(TER, zone=1)),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "school-but-pass-first",
        pass_card(school_transport=SCHOOL),
        tap(MONDAY, BUS_12),
        Reason.OK,
        contract_slot=1,
    ),
    Case(
        "school-before-carnet",
        card(school_transport=SCHOOL, contracts=(carnet(),), counters={1: 3}),
        tap(MONDAY, BUS_12),
        Reason.SCHOOL_TRANSPORT,
        counter_debit=None,
    ),
    # --- Mes droits pour l'emploi: mobility aid -----------------------------------------------
    Case(
        "mobility-aid-trip",
        card(mobility_aid=AID_TRIPS, profiles=(JOB_SEEKER,)),
        tap(MONDAY, BUS_12),
        Reason.MOBILITY_AID,
        entitlement_debit=EntitlementDebit("employment", 2, trips=1),
        product_id="AIDE_MOBILITE_EMPLOI",
    ),
    Case(
        "mobility-aid-amount-reduced-fare",
        card(mobility_aid=AID_AMOUNT, profiles=(JOB_SEEKER,)),
        tap(MONDAY, BUS_12),
        Reason.MOBILITY_AID,
        entitlement_debit=EntitlementDebit("employment", 3, amount=90),
    ),
    Case(
        "mobility-aid-amount-too-small",
        card(mobility_aid=dataclasses.replace(AID_AMOUNT, amount_remaining=100), sv_balance=500),
        tap(MONDAY, BUS_12),
        Reason.OK,
        sv_debit=180,
    ),
    Case(
        "mobility-aid-no-trip-left",
        card(mobility_aid=dataclasses.replace(AID_TRIPS, trips_remaining=0)),
        tap(MONDAY, BUS_12),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "mobility-aid-expired",
        card(mobility_aid=AID_TRIPS),
        tap(at(2025, 6, 1, 0, 0), BUS_12),
        Reason.NO_VALID_CONTRACT,
    ),
    Case(
        "mobility-aid-then-free-transfer",
        card(
            mobility_aid=AID_TRIPS,
            events=(event(at(2025, 3, 10, 7, 40), METRO, product_id="AIDE_MOBILITE_EMPLOI"),),
        ),
        tap(MONDAY, BUS_12),
        Reason.TRANSFER,
        entitlement_debit=None,
        is_transfer=True,
    ),
    # --- bike-shelter door: reads, never writes -----------------------------------------------
    Case(
        "shelter-annual-included",
        pass_card(contract("PASS_ANNUEL_1Z", start=date(2025, 1, 1))),
        tap(MONDAY, SHELTER, GateKind.BIKE_SHELTER),
        Reason.BIKE_SHELTER_OPEN,
        contract_slot=1,
    ),
    Case(
        "shelter-monthly-with-option",
        pass_card(contract(includes_bike_shelter=True)),
        tap(MONDAY, SHELTER, GateKind.BIKE_SHELTER),
        Reason.BIKE_SHELTER_OPEN,
    ),
    Case(
        "shelter-monthly-without-option",
        pass_card(),
        tap(MONDAY, SHELTER, GateKind.BIKE_SHELTER),
        Reason.BIKE_SHELTER_REFUSED,
    ),
    Case(
        "shelter-option-on-expired-pass",
        pass_card(contract(start=date(2025, 2, 1), includes_bike_shelter=True)),
        tap(MONDAY, SHELTER, GateKind.BIKE_SHELTER),
        Reason.CONTRACT_EXPIRED,
    ),
    Case(
        "shelter-option-not-sold-on-product",
        pass_card(
            contract("PASS_MOIS_SOLIDAIRE", includes_bike_shelter=True), profiles=(JOB_SEEKER,)
        ),
        tap(MONDAY, SHELTER, GateKind.BIKE_SHELTER),
        Reason.BIKE_SHELTER_REFUSED,
    ),
    Case(
        "shelter-wallet-does-not-open",
        wallet(5000),
        tap(MONDAY, SHELTER, GateKind.BIKE_SHELTER),
        Reason.BIKE_SHELTER_REFUSED,
    ),
    Case(
        "shelter-deny-listed",
        pass_card(contract("PASS_ANNUEL_1Z", start=date(2025, 1, 1))),
        tap(MONDAY, SHELTER, GateKind.BIKE_SHELTER),
        Reason.CARD_BLOCKED,
        deny_list=BLOCKED,
    ),
    # --- inspector ----------------------------------------------------------------------------
    Case(
        "inspector-reads-only",
        pass_card(),
        tap(MONDAY, METRO, GateKind.INSPECTOR),
        Reason.READ_ONLY,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    decision = decide(case.card, case.tap, TARIFF, case.deny_list, case.tap.when)

    assert decision.reason is case.reason, decision.display
    assert decision.accepted is case.reason.accepts
    assert decision.display.startswith(DISPLAY_TEXT[case.reason])
    if case.display is not None:
        assert decision.display == case.display
    assert decision.sv_debit == case.sv_debit
    assert decision.counter_debit == case.counter_debit
    assert decision.entitlement_debit == case.entitlement_debit
    assert decision.is_transfer is case.is_transfer
    if case.contract_slot is not None:
        assert decision.contract_slot == case.contract_slot
    if case.product_id is not None:
        assert decision.product_id == case.product_id


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_what_is_written(case: Case) -> None:
    """Only an accepted gate validation writes, and then exactly one event at this place."""
    decision = decide(case.card, case.tap, TARIFF, case.deny_list, case.tap.when)
    if not decision.accepted or case.tap.gate is not GateKind.GATE:
        assert not decision.writes
        assert decision.event is None
        return
    written = decision.event
    assert written is not None
    assert written.when == case.tap.when
    assert written.station_id == case.tap.place.station_id
    assert written.line_id == case.tap.place.line_id
    assert written.kind is (EventKind.TRANSFER if decision.is_transfer else EventKind.ENTRY)
    assert written.contract_slot == decision.contract_slot
    assert written.product_id == decision.product_id
    if not decision.is_transfer:
        assert written.journey_start == written.when
        assert written.transfers == 0


def test_every_reason_code_is_exercised() -> None:
    assert {c.reason for c in CASES} == set(Reason)


def test_every_reason_has_french_text() -> None:
    assert set(DISPLAY_TEXT) == set(Reason)
    assert DISPLAY_TEXT[Reason.OK] == "Bon voyage"
    assert DISPLAY_TEXT[Reason.CARD_BLOCKED] == "Carte bloquée"
    assert DISPLAY_TEXT[Reason.INSUFFICIENT_BALANCE] == "Solde insuffisant"


def test_transfer_carries_the_journey() -> None:
    start = at(2025, 3, 10, 7, 30)
    first = event(start, METRO)
    second = decide(
        wallet(500, events=(first,)), tap(at(2025, 3, 10, 7, 50), BUS_12), TARIFF, NO_DENY
    )
    assert second.event is not None
    assert (second.event.journey_start, second.event.transfers) == (start, 1)
    third = decide(
        wallet(500, events=(first, second.event)),
        tap(at(2025, 3, 10, 8, 10), BUS_ZONE2),
        TARIFF,
        NO_DENY,
    )
    assert third.reason is Reason.TRANSFER
    assert third.event is not None and third.event.transfers == 2


def test_now_defaults_to_the_tap_and_naive_means_paris() -> None:
    naive = datetime(2025, 3, 31, 23, 59, 59)
    assert decide(pass_card(), tap(naive), TARIFF, NO_DENY).reason is Reason.OK
    later = datetime(2025, 4, 1, 0, 0)
    assert decide(pass_card(), tap(naive), TARIFF, NO_DENY, later).reason is Reason.CONTRACT_EXPIRED


def test_utc_instant_is_judged_in_paris_time() -> None:
    # 22:30 UTC on 31 March is 00:30 on 1 April in Paris (CEST): the March pass has expired.
    utc = datetime(2025, 3, 31, 22, 30, tzinfo=UTC)
    assert decide(pass_card(), tap(utc), TARIFF, NO_DENY).reason is Reason.CONTRACT_EXPIRED


def test_event_log_holds_no_holder_attribute() -> None:
    """Privacy: the transit event carries place, time, contract and product code only."""
    allowed = {
        "when",
        "station_id",
        "line_id",
        "network_id",
        "kind",
        "journey_start",
        "contract_slot",
        "product_id",
        "transfers",
    }
    assert {f.name for f in dataclasses.fields(Event)} == allowed
    decision = decide(
        card(mobility_aid=AID_TRIPS, profiles=(JOB_SEEKER,)), tap(MONDAY, BUS_12), TARIFF, NO_DENY
    )
    assert decision.event is not None
    assert decision.event.product_id == "AIDE_MOBILITE_EMPLOI"
    assert decision.event.contract_slot is None
    assert "job_seeker" not in repr(decision.event)
    reduced = decide(wallet(500, profiles=(JOB_SEEKER,)), tap(MONDAY), TARIFF, NO_DENY)
    assert reduced.event is not None and reduced.event.product_id == "TICKET_UNITAIRE"
    assert "job_seeker" not in repr(reduced.event)
