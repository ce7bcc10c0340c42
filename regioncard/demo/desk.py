"""Issuing the demo's cards at the desk: the backend API of the desk page, then the card.

For each person, as an agent at the desk would: create the holder, register the card, grant the
school aid, sell the contracts and the wallet reload (``/api/v1`` calls with the agent's token),
ask the backend for the personalisation data (``POST /personalisation`` with the desk
terminal's credential: the initial records encoded by the backend), then write the card through
the transaction engine, one secure session per application, behind pcscd. Each session is
journaled by the desk terminal like any other terminal's (kind ``load`` or ``sv_reload``),
uploaded, and the actions it wrote are confirmed with the card's transaction counter.

The cards come from the "factory" with their diversified keys already in them
(:func:`hardware.personalise.new_card`, the card manufacturer's step). The wrapped keys in the
personalisation answer are not loaded here: that needs the desk SAM's "Load Card Key" command,
which the desk station library brings (``terminal/desk``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from card_schema.crypto import KeyRole
from card_schema.uploads.records import PurseMovement, PurseUnit, TransactionIntent, TransactionKind
from firmware_host.readers.base import Reader
from regioncard.demo.services import Api, DemoError
from regioncard.demo.world import DAY, SCHOOL_YEAR, Holder, HolderKind
from terminal.engine import APDUCounter, CalypsoCard, CardTransactionManager, SAMResource
from terminal.engine.journaled import SessionOutcome, run_journaled_session
from terminal.journal import Journal

log = logging.getLogger(__name__)

FF_TARIFF = 0x0FF1  # contract list: FF contract layout
PROFILE_OF = {
    HolderKind.PUPIL: 1,
    HolderKind.STUDENT: 2,
    HolderKind.JOB_SEEKER: 3,
    HolderKind.SENIOR: 4,
}
WIRE_APPLICATION = {"employment": "emploi"}
AID_COUNTERS = {"books": 1, "sport": 2, "canteen": 3}
MONTHLY = {10, 11, 12, 30, 31}
BIKE_OPTION = {10, 11, 12, 30, 31, 40}


@dataclass
class Issued:
    """What the desk did for one card.

    Attributes:
        holder: the person.
        sessions: committed secure sessions.
        actions_confirmed: backend actions confirmed with the card's counter.
        sales: eurocents sold (contracts and reloads), by product code.
    """

    holder: Holder
    sessions: int = 0
    actions_confirmed: int = 0
    sales: dict[int, int] = field(default_factory=dict)


def _environment(holder: Holder) -> dict[str, Any]:
    values: dict[str, Any] = {
        "EnvApplicationVersionNumber": 1,
        "EnvNetworkId": 250000,
        "EnvApplicationIssuerId": 1,
        "EnvApplicationValidityEndDate": "2031-08-31",
    }
    profile = PROFILE_OF.get(holder.kind)
    if profile is not None:
        values["HolderProfiles"] = [
            {
                "HolderProfileNetworkId": 250000,
                "HolderProfileNumber": profile,
                "HolderProfileDate": "2027-08-31",
            }
        ]
    return values


def _contract(holder: Holder, code: int, number: int) -> dict[str, Any]:
    if code in MONTHLY:
        validity: dict[str, Any] = {
            "ContractValidityStartDate": DAY.replace(day=1).isoformat(),
            "ContractValidityEndDate": "2026-11-30",
        }
    elif code == 20:  # annual pass: the end follows from the start
        validity = {"ContractValidityStartDate": "2026-09-01"}
    else:
        validity = {
            "ContractValidityStartDate": "2026-09-01",
            "ContractValidityEndDate": "2027-08-31",
        }
    if code in (10, 20, 30):
        validity["ContractValidityZones"] = [1]
    values: dict[str, Any] = {
        "_layout": "FF",
        "ContractNetworkId": 250000,
        "ContractProvider": 1,
        "ContractTariff": code,
        "ContractSerialNumber": 100000 + holder.index * 10 + number,
        "ContractValidityInfo": validity,
        "ContractStatus": 1,
    }
    if holder.bike and code in BIKE_OPTION:
        values["ContractServices"] = 1  # bike-shelter option (terminal/cardimage.py)
    return values


def _student(holder: Holder) -> dict[str, Any]:
    amiens = holder.school_uai == "0801234G"
    return {
        "version": 1,
        "school_uai": holder.school_uai,
        "level": "premiere" if amiens else "quatrieme",
        "boarding": "half_board",
        "valid_from": "2026-09-01",
        "valid_until": "2027-07-04",
        "school_transport": "free",
        "transport_network_id": 250000,
        "transport_zones": [4] if amiens else [1],
    }


def initial_records(holder: Holder) -> list[dict[str, Any]]:
    """The records the desk asks the backend to encode for this person's card."""
    records: list[dict[str, Any]] = [
        {"record_type": "plum.environment", "values": _environment(holder)}
    ]
    for number, code in enumerate(holder.product_codes, start=1):
        records.append({"record_type": "plum.contract", "values": _contract(holder, code, number)})
    if holder.product_codes:
        pointers = [
            {
                "BestContractNetworkId": 250000,
                "BestContractTariff": FF_TARIFF,
                "BestContractPointer": i,
            }
            for i in range(1, len(holder.product_codes) + 1)
        ]
        records.append({"record_type": "plum.contract_list", "values": {"BestContracts": pointers}})
    records.append(
        {
            "record_type": "wallet.services",
            "values": {
                "version": 1,
                "enabled": ["my_menu_my_school", "realtime_transit"],
                "updated": DAY.isoformat(),
            },
        }
    )
    if "cursus" in holder.applications:
        records.append({"record_type": "cursus.student", "values": _student(holder)})
    if "employment" in holder.applications:
        records.append(
            {
                "record_type": "employment.situation",
                "values": {
                    "version": 1,
                    "age_band": "26-44",
                    "status": "job_seeker",
                    "valid_from": "2026-09-01",
                    "valid_until": "2027-08-31",
                    "referent": "france_travail",
                },
            }
        )
    return records


class DeskIssuer:
    """The desk: backend calls of the desk page, then the card written through the engine.

    Args:
        agent: API client logged in as a desk agent.
        desk: API client with the desk terminal's credential.
        reader: the card reader (PC/SC).
        sam: the desk SAM.
        journal: the desk terminal's journal.
        clock: the desk's clock (aware).
    """

    def __init__(
        self,
        agent: Api,
        desk: Api,
        reader: Reader,
        sam: SAMResource,
        journal: Journal,
        clock: Callable[[], datetime],
    ) -> None:
        self.agent = agent
        self.desk = desk
        self.reader = reader
        self.sam = sam
        self.journal = journal
        self.clock = clock

    # -- backend side ----------------------------------------------------------------------
    def register(self, holder: Holder) -> tuple[list[dict[str, Any]], Issued]:
        """Holder, card, aid and sales at the backend; returns the pending actions."""
        issued = Issued(holder)
        if holder.kind is HolderKind.ANONYMOUS:
            body: dict[str, Any] = {"anonymous": True}
        else:
            body = {
                "family_name": holder.family_name,
                "given_name": holder.given_name,
                "birth_date": _birth_date(holder).isoformat(),
            }
        holder.holder_id = int(self.agent.post("/api/v1/holders", body)["id"])
        self.agent.post(
            "/api/v1/cards",
            {
                "holder_id": holder.holder_id,
                "serial": holder.serial_hex,
                "applications": holder.applications,
            },
        )
        actions: list[dict[str, Any]] = []
        for purpose, amount in (("canteen", holder.canteen_aid), ("books", holder.books_aid)):
            if amount:
                grant = self.agent.post(
                    "/api/v1/entitlements/school-aid",
                    {
                        "holder_id": holder.holder_id,
                        "school_year": SCHOOL_YEAR,
                        "purpose": purpose,
                        "funder": "region",
                        "amount_cents": amount,
                    },
                )
                actions.extend(grant["actions"])
        for code in holder.product_codes:
            sale = self.agent.post(
                "/api/v1/products/loads", {"card_serial": holder.serial_hex, "product_code": code}
            )
            issued.sales[code] = issued.sales.get(code, 0) + int(sale["amount_cents"])
            actions.append(sale["action"])
        if holder.wallet_load:
            sale = self.agent.post(
                "/api/v1/products/loads",
                {
                    "card_serial": holder.serial_hex,
                    "product_code": WALLET_RELOAD_CODE,
                    "amount_cents": holder.wallet_load,
                },
            )
            issued.sales[WALLET_RELOAD_CODE] = holder.wallet_load
            actions.append(sale["action"])
        return actions, issued

    # -- card side -------------------------------------------------------------------------
    def issue(self, holder: Holder) -> Issued:
        """Register everything at the backend, then write the card now in the field.

        Raises:
            DemoError: a backend call or a card session failed.
        """
        actions, issued = self.register(holder)
        perso = self.desk.post(
            "/api/v1/personalisation",
            {
                "card_serial": holder.serial_hex,
                "applications": holder.applications,
                "records": initial_records(holder),
            },
        )
        encoded: dict[str, list[bytes]] = {}
        for record in perso["records"]:
            encoded.setdefault(record["record_type"], []).append(bytes.fromhex(record["data"]))
        counter = APDUCounter()
        self.sam.use_counter(counter)
        card = CalypsoCard(atr=self.reader.connect())
        tm = CardTransactionManager(self.reader, card, self.sam, counter=counter)
        try:
            written: dict[str, int] = {}
            for application in holder.applications:
                written[application] = self._application(
                    tm, card, holder, application, encoded, actions
                )
                issued.sessions += 1
            tm.process_ratification()
        finally:
            self.reader.disconnect()
        for action in actions:
            tx = written.get(action["application"])
            if tx is None:
                continue
            self.desk.post(
                f"/api/v1/action-lists/{action['id']}/confirm",
                {"card_serial": holder.serial_hex, "card_tx_counter": tx},
            )
            issued.actions_confirmed += 1
        return issued

    def _application(
        self,
        tm: CardTransactionManager,
        card: CalypsoCard,
        holder: Holder,
        application: str,
        encoded: dict[str, list[bytes]],
        actions: list[dict[str, Any]],
    ) -> int:
        """One issuer session writing one application; returns its transaction counter."""
        tm.process_select_application(application)
        movements: list[PurseMovement] = []
        kind = TransactionKind.LOAD
        now = self.clock()

        def prepare(_: Any) -> None:
            if application == "plum":
                tm.prepare_update_record("environment", 1, encoded["plum.environment"][0])
                for number, data in enumerate(encoded.get("plum.contract", []), start=1):
                    tm.prepare_update_record("contracts", number, data)
                if "plum.contract_list" in encoded:
                    tm.prepare_update_record("contract_list", 1, encoded["plum.contract_list"][0])
                for number, code in enumerate(holder.product_codes, start=1):
                    trips = TRIPS.get(code)
                    if trips:
                        tm.prepare_increase("counters", number, trips)
                        movements.append(
                            PurseMovement(
                                f"plum.counter.{number}", PurseUnit.COUNT, trips, 0, trips
                            )
                        )
            elif application == "wallet":
                tm.prepare_update_record("services", 1, encoded["wallet.services"][0])
                if holder.wallet_load:
                    tm.prepare_sv_reload(holder.wallet_load, now, DESK_LOCATION)
            elif application == "cursus":
                tm.prepare_update_record("student", 1, encoded["cursus.student"][0])
                for action in actions:
                    if action["kind"] == "aid_credit":
                        purse = str(action["params"]["purse"])
                        amount = int(action["params"]["amount"])
                        slot = AID_COUNTERS[purse.split(".")[1].removesuffix("_aid")]
                        tm.prepare_increase("aid_counters", slot, amount)
                        movements.append(
                            PurseMovement(purse, PurseUnit.EUROCENT, amount, 0, amount)
                        )
            elif application == "employment":
                tm.prepare_update_record("situation", 1, encoded["employment.situation"][0])

        def intent_of(opening: Any) -> TransactionIntent:
            nonlocal kind
            moves = list(movements)
            if application == "wallet" and holder.wallet_load:
                sv = card.application("wallet").sv
                assert sv is not None
                moves = [
                    PurseMovement(
                        "wallet.sv",
                        PurseUnit.EUROCENT,
                        holder.wallet_load,
                        sv.balance,
                        sv.balance + holder.wallet_load,
                    )
                ]
                kind = TransactionKind.SV_RELOAD
            return TransactionIntent(
                kind=kind,
                application=WIRE_APPLICATION.get(application, application),
                card_serial=card.serial,
                card_tx_counter=opening.transaction_counter,
                occurred_at=now.astimezone(UTC),
                movements=tuple(moves),
                product_code=None,
                station_id=None,
                last_events=(),
                written_event=None,
            )

        counter_now: list[int] = []

        def remember(_: int, intent: TransactionIntent) -> None:
            counter_now.append(intent.card_tx_counter)

        outcome = run_journaled_session(
            tm,
            self.sam,
            self.journal,
            prepare,
            intent_of,
            role=KeyRole.ISSUER,
            after_begin=remember,
        )
        if outcome.status != SessionOutcome.COMMITTED:
            raise DemoError(f"carte {holder.serial_hex} : session {application} {outcome}")
        return counter_now[0]


WALLET_RELOAD_CODE = 900  # catalogue code of "rechargement porte-monnaie"
DESK_LOCATION = 1
TRIPS = {2: 10}  # CARNET_10


def _birth_date(holder: Holder) -> date:
    year = {
        HolderKind.PUPIL: 2010,
        HolderKind.STUDENT: 2005,
        HolderKind.JOB_SEEKER: 1990,
        HolderKind.SENIOR: 1955,
        HolderKind.WORKER: 1982,
    }.get(holder.kind, 1990)
    return date(year + holder.index % 5, 1 + holder.index % 12, 1 + holder.index % 28)
