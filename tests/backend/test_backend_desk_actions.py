"""The desk does not write again a load that a gate or a canteen till already wrote at a tap.

A load sold online is in the action list of every gate, and also pending for the desk. If a tap
wrote it and its confirmation has not reached the backend yet, the card is the only witness: the
contract's ``ContractSerialNumber`` (PLUM) or ``last_action`` of the aid counters (Cursus).
"""

from __future__ import annotations

from datetime import date

from backend.desk import content
from card_schema.records import decode_record, encode_record

TODAY = date(2025, 9, 15)


def _aid(values: dict[str, int]) -> str:
    full = {n: 0 for n in ("books_equipment", "sport_leisure", "canteen")}
    full |= {f"counter_{i}": 0 for i in range(4, 9)} | {"last_action": 0} | values
    return encode_record("cursus.aid_counters", full).hex()


def _snapshot(aid: str, contracts: list[bytes]) -> dict[str, object]:
    padded = contracts + [bytes(29)] * (4 - len(contracts))
    return {"records": {"cursus.aid_counters": [aid], "plum.contracts": [c.hex() for c in padded]}}


def test_aid_credits_already_on_the_card_are_not_written_again() -> None:
    work = content.CardWork(
        aid=[content.AidCredit(41, "canteen", 5_000), content.AidCredit(43, "books", 2_000)]
    )
    steps = content.plan_steps(
        work, _snapshot(_aid({"canteen": 4_620, "last_action": 41}), []), TODAY
    )
    (step,) = steps
    assert step["action_ids"] == [43]
    written = decode_record("cursus.aid_counters", bytes.fromhex(step["writes"][0]["data"]))
    assert (written["canteen"], written["books_equipment"]) == (4_620, 2_000)
    assert written["last_action"] == 43  # a till that reads it skips 41 and 43
    none_left = content.plan_steps(work, _snapshot(_aid({"last_action": 43}), []), TODAY)
    assert none_left == []


def test_contract_already_written_at_a_gate_is_not_written_again() -> None:
    on_card = content._contract_record(content.ContractLoad(7, 10, "Pass mois", 30, None), TODAY)
    work = content.CardWork(
        contracts=[
            content.ContractLoad(7, 10, "Pass mois", 30, None),
            content.ContractLoad(8, 2, "Carnet 10", None, 10),
        ]
    )
    snapshot = _snapshot(_aid({}), [on_card])
    snapshot["records"]["plum.counters"] = [bytes(29).hex()]  # type: ignore[index]
    steps = content.plan_steps(work, snapshot, TODAY)
    assert [s["action_ids"] for s in steps] == [[8]]
    assert steps[0]["writes"][0]["record"] == 2  # slot 1 holds action 7's contract
