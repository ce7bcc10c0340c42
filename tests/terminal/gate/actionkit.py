"""Signed action lists and gates that write them, for the action-list tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from gatekit import BACKEND_KEY, GateRig, build_gate

from card_schema.records import decode_record
from hardware.card.image import CardImage
from terminal.actions import ACTION_LIST_KIND, ActionLists, ActionOutbox
from terminal.actions.plum import FF_TARIFF
from terminal.actions.writer import ActionWriter
from terminal.fares.signed import SignedEnvelope, sign_envelope
from terminal.fares.store import TableStore

SERIAL_HEX = "0000000012345678"
MONTHLY = {"product_code": 10, "fare_product_id": "MONTHLY", "duration_days": 30, "trips": None}
CARNET = {"product_code": 2, "fare_product_id": "CARNET10", "duration_days": 365, "trips": 10}


def action(action_id: int, params: dict[str, Any], serial: str = SERIAL_HEX) -> dict[str, Any]:
    return {
        "action_id": action_id,
        "card_serial": serial,
        "application": "plum",
        "kind": "load_contract",
        "params": params,
    }


def signed_list(actions: list[dict[str, Any]], version: int, issued_at: datetime) -> SignedEnvelope:
    return sign_envelope(BACKEND_KEY, ACTION_LIST_KIND, version, issued_at, {"actions": actions})


def action_gate(directory: Path, terminal_id: str = "GATE-TEST-1") -> tuple[GateRig, ActionLists]:
    """A gate whose action lists are kept in ``directory/tables`` and writes in an outbox."""
    directory.mkdir(parents=True, exist_ok=True)
    lists = ActionLists(BACKEND_KEY.public_key(), store=TableStore(directory / "tables"))
    rig = build_gate(directory, terminal_id=terminal_id)
    rig.gate.actions = ActionWriter(lists, ActionOutbox(directory / "actions.db"))
    return rig, lists


def outbox(rig: GateRig) -> ActionOutbox:
    assert rig.gate.actions is not None and rig.gate.actions.outbox is not None
    return rig.gate.actions.outbox


def contract_serials(image: CardImage) -> list[int]:
    """ContractSerialNumber of every non-empty contract on the card."""
    serials = []
    for raw in image.applications["plum"].records["contracts"]:
        if any(raw):
            values = decode_record("plum.contract", raw, tariff=FF_TARIFF)
            serials.append(int(values["ContractSerialNumber"]))
    return serials
