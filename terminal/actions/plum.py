"""A pending PLUM load (season pass or carnet bought online) as card writes, and whether the card
already carries it.

The action number goes on the card as the contract's ``ContractSerialNumber`` (the desk writes its
loads the same way, ``backend/desk/content.py``), in the same record and the same secure session
as the contract itself. A terminal that finds a contract with that serial on the card knows the
action was applied (by itself or by any other terminal, a second ago or a month ago): that is what
makes the write happen once although the same list sits on every gate. A session torn before its
close leaves nothing on the card (Calypso anti-tearing), so the next tap sees no such contract and
writes it again, once.

Card writes of a load, inside the validation's session (opened with the load key, which also
grants the debit operations of the validation): the contract record and the contract list (2
APDUs). A carnet also sets its trip counter: that goes in the one Update Record of the counter
record that replaces the tap's own Decrease when the tap takes a trip (no extra APDU), and is one
extra APDU otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from card_schema.errors import SchemaError
from card_schema.records import decode_record, encode_record
from terminal.actions.lists import PendingAction
from terminal.engine.image import ApplicationImage

log = logging.getLogger(__name__)

NETWORK_ID = 250000  # Hauts-de-France network id in the contracts (docs/card-layout.md)
FF_TARIFF = 0x0FF1  # contract list entry announcing the generic FF contract layout
BIKE_SHELTER_SERVICE = 0x0001  # ContractServices bit 0 (terminal/cardimage.py)
CONTRACT_SLOTS = 4
COUNTER_SLOTS = 9


@dataclass(frozen=True)
class PlumLoad:
    """What one pending PLUM contract load writes.

    Attributes:
        action: the action written.
        slot: contract record (1..4) it goes to; also its trip counter number.
        contract: the contract record.
        contract_list: the new contract list record.
        trips: trips the counter starts with (carnets), else ``None``.
    """

    action: PendingAction
    slot: int
    contract: bytes
    contract_list: bytes
    trips: int | None

    def apply(self, plum: ApplicationImage) -> None:
        """Put the load in the terminal's copy of the card (so the tap decides with it)."""
        plum.records.setdefault("contracts", {})[self.slot] = self.contract
        plum.records.setdefault("contract_list", {})[1] = self.contract_list
        if self.trips is not None:
            plum.records.setdefault("counters", {})[1] = self.counters(plum, {})

    def counters(self, plum: ApplicationImage, debits: dict[int, int]) -> bytes:
        """The counter record with this load's trips set and ``debits`` (slot -> trips) taken."""
        raw = plum.record("counters")
        values: dict[str, Any] = (
            decode_record("plum.counters", raw)
            if raw is not None
            else {f"counter_{n}": 0 for n in range(1, COUNTER_SLOTS + 1)}
        )
        if self.trips is not None:
            values[f"counter_{self.slot}"] = self.trips
        for slot, trips in debits.items():
            values[f"counter_{slot}"] = max(0, int(values.get(f"counter_{slot}", 0)) - trips)
        return encode_record("plum.counters", values)


def applied_on_card(plum: ApplicationImage, action_id: int) -> bool:
    """Whether a contract on the card carries this action number."""
    for raw in plum.records.get("contracts", {}).values():
        if not any(raw):
            continue
        try:
            values = decode_record("plum.contract", raw, tariff=FF_TARIFF)
        except (SchemaError, ValueError):
            continue
        if values.get("ContractSerialNumber") == action_id:
            return True
    return False


def plan_plum_load(
    plum: ApplicationImage, actions: tuple[PendingAction, ...], today: date
) -> PlumLoad | None:
    """The first pending contract load not yet on the card, or ``None``.

    One load per tap (the cost of a tap is bounded); the next ones go at the next taps. A load
    that finds no free contract slot waits (the desk can make room); it is logged.
    """
    for action in actions:
        if action.kind != "load_contract" or applied_on_card(plum, action.action_id):
            continue
        try:
            return _plan(plum, action, today)
        except (SchemaError, ValueError, TypeError) as exc:
            log.warning("action %d not writable here: %s", action.action_id, exc)
    return None


def _pointers(plum: ApplicationImage) -> list[int]:
    raw = plum.record("contract_list")
    if raw is None:
        return []
    entries = decode_record("plum.contract_list", raw).get("BestContracts") or []
    return [int(e["BestContractPointer"]) for e in entries if "BestContractPointer" in e]


def _plan(plum: ApplicationImage, action: PendingAction, today: date) -> PlumLoad | None:
    params = action.params
    code = params.get("product_code")
    if type(code) is not int:
        raise ValueError("product_code is not an integer")
    contracts = plum.records.get("contracts", {})
    used = set(_pointers(plum)) | {n for n, r in contracts.items() if any(r)}
    free = [n for n in range(1, CONTRACT_SLOTS + 1) if n not in used]
    if not free:
        log.info("action %d waits: no free contract slot on the card", action.action_id)
        return None
    slot = free[0]
    days = params.get("duration_days") or 365
    trips = params.get("trips")
    if type(days) is not int or days < 1 or (trips is not None and type(trips) is not int):
        raise ValueError("duration_days / trips are not integers")
    validity: dict[str, Any] = {
        "ContractValidityStartDate": today.isoformat(),
        "ContractValidityEndDate": (today + timedelta(days=days - 1)).isoformat(),
    }
    zones = params.get("zones")
    if zones:
        validity["ContractValidityZones"] = [int(z) for z in zones]
    values: dict[str, Any] = {
        "_layout": "FF",
        "ContractNetworkId": NETWORK_ID,
        "ContractProvider": 1,
        "ContractTariff": code,
        "ContractSerialNumber": action.action_id,
        "ContractValidityInfo": validity,
        "ContractStatus": 1,
    }
    if params.get("bike_shelter"):
        values["ContractServices"] = BIKE_SHELTER_SERVICE
    contract = encode_record("plum.contract", values, tariff=FF_TARIFF)
    raw_list = plum.record("contract_list")
    entries = list(
        (decode_record("plum.contract_list", raw_list).get("BestContracts") or [])
        if raw_list is not None
        else []
    )
    entries.append(
        {
            "BestContractNetworkId": NETWORK_ID,
            "BestContractTariff": FF_TARIFF,
            "BestContractPointer": slot,
        }
    )
    contract_list = encode_record("plum.contract_list", {"BestContracts": entries})
    return PlumLoad(action, slot, contract, contract_list, trips if trips else None)
