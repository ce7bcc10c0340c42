"""What a desk job writes on a card: the plan of idempotent steps (no FastAPI, no database).

Given what the card holds (the station's snapshot) and the card actions to carry out, this module
computes the **final content** of every record once, when the plan is made: a resumed job writes
the same bytes again and a load is never applied twice (docs/desk.md). Records are encoded by
:mod:`card_schema.records`; the plan's JSON is what :class:`terminal.desk.plan.CardPlan` parses.

Steps, in order (one secure session each, at most 6 record writes, the card's session limit):

- ``perso.<app>`` (issuer key): the application's first record (PLUM environment, wallet
  services, Cursus student record, employment situation). No name, birth date or address goes on
  the chip: the holder's name is printed on the card body;
- ``remove.<app>`` (issuer key): the application's first record cleared;
- ``contract.<action>`` (load key): a PLUM contract in the first free slot (with its zones and
  bike-shelter option when sold with them), the contract list and the trip counters;
- ``aid`` (load key): the Cursus aid counters with every credit added;
- ``sv`` (load key): one SV reload of the wallet for every reload and moved balance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from backend.errors import Conflict, InvalidRequest
from card_schema.errors import SchemaError
from card_schema.layout import CARD_LAYOUT, FileType
from card_schema.records import decode_record, encode_record

NETWORK_ID = 250000  # Hauts-de-France (docs/card-layout.md)
FF_TARIFF = 0x0FF1  # contract list entry announcing the generic FF contract layout
BIKE_SHELTER_SERVICE = 0x0001  # ContractServices bit 0 (terminal/cardimage.py)
RECORD_SIZE = 29
APPLICATION_NAMES_FR = {
    "plum": "PLUM",
    "wallet": "Ma région numérique",
    "cursus": "Cursus",
    "employment": "Mes droits pour l'emploi",
}
FIRST_RECORD = {
    "plum": "environment",
    "wallet": "services",
    "cursus": "student",
    "employment": "situation",
}
AID_COUNTERS = {"books": "books_equipment", "sport": "sport_leisure", "canteen": "canteen"}
AID_NAMES_FR = {"books": "livres et équipement", "sport": "sport et loisirs", "canteen": "cantine"}


@dataclass(frozen=True)
class ContractLoad:
    """A transit contract to write (from a ``load_contract`` card action)."""

    action_id: int
    product_code: int
    name: str
    duration_days: int | None
    trips: int | None
    zones: tuple[int, ...] = ()  # empty: valid in every zone
    bike_shelter: bool = False


@dataclass(frozen=True)
class AidCredit:
    """A Cursus aid credit (``aid_credit`` or a moved aid balance)."""

    action_id: int
    purpose: str  # books / sport / canteen
    amount: int


@dataclass(frozen=True)
class WalletReload:
    """Money added to the wallet (``sv_reload`` or a moved SV balance)."""

    action_id: int
    amount: int


@dataclass
class CardWork:
    """Everything one job writes, before it becomes steps.

    Attributes:
        personalise: applications whose first record is written.
        remove: applications whose first record is cleared.
        contracts, aid, wallet: the loads.
        student: Cursus student record values chosen at the desk (school, level, free school
            transport and its zones...).
        profiles: reduced-fare holder profiles (``number``, ``valid_until``) for the PLUM
            environment.
    """

    personalise: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    contracts: list[ContractLoad] = field(default_factory=list)
    aid: list[AidCredit] = field(default_factory=list)
    wallet: list[WalletReload] = field(default_factory=list)
    student: Mapping[str, Any] = field(default_factory=dict)
    profiles: list[Mapping[str, Any]] = field(default_factory=list)


def _records(snapshot: Mapping[str, Any], app: str, file: str) -> list[bytes]:
    layout = CARD_LAYOUT.application(app).file(file)
    raw = snapshot.get("records", {}).get(f"{app}.{file}")
    if raw is None:
        return [bytes(layout.record_size)] * layout.record_count
    try:
        records = [bytes.fromhex(r) for r in raw]
    except (TypeError, ValueError) as exc:
        raise InvalidRequest("instantané de carte illisible", f"bad card snapshot: {exc}") from exc
    if len(records) != layout.record_count or any(len(r) != layout.record_size for r in records):
        raise InvalidRequest("instantané de carte illisible", f"bad card snapshot for {app}.{file}")
    return records


def is_blank(snapshot: Mapping[str, Any]) -> bool:
    """Whether the card holds nothing: every record zero and no money in the wallet."""
    for app in CARD_LAYOUT.applications:
        for file in app.files:
            if file.type is FileType.SV_LOG:
                continue
            if any(any(r) for r in _records(snapshot, app.name, file.name)):
                return False
    sv = snapshot.get("sv") or {}
    return not sv.get("balance")


def personalised_applications(snapshot: Mapping[str, Any]) -> list[str]:
    """Applications whose first record is written on the card."""
    return [app for app, file in FIRST_RECORD.items() if any(_records(snapshot, app, file)[0])]


def _first_record(app: str, today: date, work: CardWork) -> bytes:
    student = work.student
    if app == "plum":
        values: dict[str, Any] = {
            "EnvApplicationVersionNumber": 1,
            "EnvNetworkId": NETWORK_ID,
            "EnvApplicationIssuerId": 1,
            "EnvApplicationValidityEndDate": (today + timedelta(days=5 * 365)).isoformat(),
        }
        if work.profiles:
            values["HolderProfiles"] = [
                {
                    "HolderProfileNetworkId": NETWORK_ID,
                    "HolderProfileNumber": int(p["number"]),
                    "HolderProfileDate": str(p["valid_until"]),
                }
                for p in work.profiles
            ]
        return encode_record("plum.environment", values)
    if app == "wallet":
        return encode_record(
            "wallet.services", {"version": 1, "enabled": [], "updated": today.isoformat()}
        )
    if app == "cursus":
        year_start = today.year if today.month >= 7 else today.year - 1
        values = {
            "version": 1,
            "school_uai": student.get("school_uai") or "0000000A",
            "level": student.get("level") or "unknown",
            "boarding": student.get("boarding") or "day_pupil",
            "valid_from": f"{year_start}-09-01",
            "valid_until": f"{year_start + 1}-07-04",
            "school_transport": "free" if student.get("school_transport") else "none",
            "transport_network_id": NETWORK_ID,
            "transport_zones": list(student.get("transport_zones") or []),
        }
        return encode_record("cursus.student", values)
    values = {
        "version": 1,
        "age_band": "unknown",
        "status": "unknown",
        "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=365)).isoformat(),
        "referent": "none",
    }
    return encode_record("employment.situation", values)


def _contract_record(load: ContractLoad, today: date) -> bytes:
    days = load.duration_days or 365
    values: dict[str, Any] = {
        "_layout": "FF",
        "ContractNetworkId": NETWORK_ID,
        "ContractProvider": 1,
        "ContractTariff": load.product_code,
        "ContractSerialNumber": load.action_id,
        "ContractValidityInfo": {
            "ContractValidityStartDate": today.isoformat(),
            "ContractValidityEndDate": (today + timedelta(days=days - 1)).isoformat(),
        },
        "ContractStatus": 1,
    }
    if load.zones:
        values["ContractValidityInfo"]["ContractValidityZones"] = list(load.zones)
    if load.bike_shelter:
        values["ContractServices"] = BIKE_SHELTER_SERVICE
    return encode_record("plum.contract", values, tariff=FF_TARIFF)


def _contract_actions(contracts: Sequence[bytes]) -> set[int]:
    """Action numbers (``ContractSerialNumber``) of the contracts on the card."""
    numbers = set()
    for raw in contracts:
        if any(raw):
            try:
                number = decode_record("plum.contract", raw, tariff=FF_TARIFF).get(
                    "ContractSerialNumber"
                )
            except SchemaError:
                continue
            if isinstance(number, int):
                numbers.add(number)
    return numbers


def _contract_list(pointers: Sequence[int]) -> bytes:
    return encode_record(
        "plum.contract_list",
        {
            "BestContracts": [
                {
                    "BestContractNetworkId": NETWORK_ID,
                    "BestContractTariff": FF_TARIFF,
                    "BestContractPointer": p,
                }
                for p in pointers
            ]
        },
    )


def _step(
    step_id: str, label: str, app: str, role: str, writes: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "id": step_id,
        "label_fr": label,
        "application": app,
        "role": role,
        "writes": writes,
        "sv_reload": extra.get("sv_reload"),
        "action_ids": extra.get("action_ids", []),
    }


def decode_aid_counters(data_hex: str) -> dict[str, Any]:
    """The Cursus aid counters of a step's write (hex), by field (``AID_COUNTERS`` values)."""
    return dict(decode_record("cursus.aid_counters", bytes.fromhex(data_hex)))


def _write(file: str, record: int, data: bytes) -> dict[str, Any]:
    return {"file": file, "record": record, "data": data.hex()}


def plan_steps(work: CardWork, snapshot: Mapping[str, Any], today: date) -> list[dict[str, Any]]:
    """The steps of a plan (JSON-ready), final contents computed from ``snapshot``.

    Raises:
        Conflict: no free contract slot, or the wallet would go over its limit.
        InvalidRequest: a record the card schema refuses (a bad school UAI...).
    """
    steps: list[dict[str, Any]] = []
    try:
        for app in work.personalise:
            data = _first_record(app, today, work)
            label = f"personnalisation {APPLICATION_NAMES_FR[app]}"
            steps.append(
                _step(f"perso.{app}", label, app, "issuer", [_write(FIRST_RECORD[app], 1, data)])
            )
        for app in work.remove:
            label = f"retrait {APPLICATION_NAMES_FR[app]}"
            clear = _write(FIRST_RECORD[app], 1, bytes(RECORD_SIZE))
            steps.append(_step(f"remove.{app}", label, app, "issuer", [clear]))
        # A load a gate or a till already wrote at a tap (télédistribution, not yet confirmed):
        # the card carries its action number, so the desk does not write it a second time.
        on_card = _contract_actions(_records(snapshot, "plum", "contracts"))
        loads = [load for load in work.contracts if load.action_id not in on_card]
        if loads:
            contracts = _records(snapshot, "plum", "contracts")
            counters = decode_record("plum.counters", _records(snapshot, "plum", "counters")[0])
            used = [n + 1 for n, r in enumerate(contracts) if any(r)]
            for load in loads:
                free = [n for n in range(1, len(contracts) + 1) if n not in used]
                if not free:
                    raise Conflict(
                        "plus de place pour un contrat sur la carte (4 au plus)",
                        "no free contract slot on the card",
                    )
                slot = free[0]
                used.append(slot)
                if load.trips:
                    counters[f"counter_{slot}"] = load.trips
                steps.append(
                    _step(
                        f"contract.{load.action_id}",
                        f"contrat « {load.name} »",
                        "plum",
                        "load",
                        [
                            _write("contracts", slot, _contract_record(load, today)),
                            _write("contract_list", 1, _contract_list(sorted(used))),
                            _write("counters", 1, encode_record("plum.counters", counters)),
                        ],
                        action_ids=[load.action_id],
                    )
                )
        raw = _records(snapshot, "cursus", "aid_counters")[0]
        values = decode_record("cursus.aid_counters", raw)
        done = int(values["last_action"])  # credits written at a canteen tap (action lists)
        credits = [c for c in work.aid if c.action_id > done]
        if credits:
            for credit in credits:
                values[AID_COUNTERS[credit.purpose]] += credit.amount
            values["last_action"] = max(done, *(c.action_id for c in credits))
            steps.append(
                _step(
                    "aid",
                    "aides Cursus",
                    "cursus",
                    "load",
                    [_write("aid_counters", 1, encode_record("cursus.aid_counters", values))],
                    action_ids=[c.action_id for c in credits],
                )
            )
        if work.wallet:
            sv = snapshot.get("sv") or {"tnum": 0, "balance": 0}
            amount = sum(r.amount for r in work.wallet)
            if int(sv["balance"]) + amount > 15000:
                raise Conflict(
                    "le porte-monnaie dépasserait 150,00 €", "wallet balance would exceed 150 EUR"
                )
            steps.append(
                _step(
                    "sv",
                    "porte-monnaie Ma région numérique",
                    "wallet",
                    "load",
                    [],
                    sv_reload={
                        "amount": amount,
                        "tnum_before": int(sv["tnum"]),
                        "balance_before": int(sv["balance"]),
                    },
                    action_ids=[r.action_id for r in work.wallet],
                )
            )
    except SchemaError as exc:
        raise InvalidRequest(
            f"contenu de carte refusé : {exc}", f"card content refused: {exc}"
        ) from exc
    return steps


def key_roles(steps: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(application, role) pairs whose card keys the steps need."""
    return {(str(s["application"]), str(s["role"])) for s in steps}
