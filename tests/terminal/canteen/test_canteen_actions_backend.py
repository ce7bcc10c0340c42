"""Aid granted on the live backend, pulled by ``regioncard canteen --backend-key``'s sync, written
at the pupil's meal and confirmed with the counter of the meal's session."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from canteen_kit import SCHOOL, TERMINAL_ID, TillRig, card_state, new_card_file, pupil_image
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from card_schema.errors import RegionCardError
from terminal.canteen import cli
from terminal.canteen.reasons import MealReason
from terminal.sync import Outcome

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "desk"))
from deskkit import live_backend

pytestmark = pytest.mark.integration

SERIAL_HEX = "0000000012345678"


def test_aid_granted_online_written_at_the_meal_and_confirmed(tmp_path: Path) -> None:
    with live_backend(tmp_path / "backend") as live:
        credential = live.register_terminal(
            terminal_id=TERMINAL_ID, kind="canteen", school_uai=SCHOOL
        )
        with live.client() as client:
            raw = client.get("/api/v1/deny-lists/public-key").json()["public_key"]
        pem = tmp_path / "backend.pem"
        pem.write_bytes(
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw)).public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
            )
        )
        (tmp_path / "credential").write_text(credential + "\n", encoding="ascii")
        holder = live.holder()
        made = live.agent(
            "POST",
            "/api/v1/cards",
            json={"holder_id": holder, "serial": SERIAL_HEX, "applications": ["cursus"]},
        )
        assert made.status_code == 201, made.text
        grant = live.agent(
            "POST",
            "/api/v1/entitlements/school-aid",
            json={
                "holder_id": holder,
                "school_year": "2025-2026",
                "purpose": "canteen",
                "funder": "region",
                "amount_cents": 5_000,
            },
        )
        assert grant.status_code == 201, grant.text
        (action,) = grant.json()["actions"]
        args = argparse.Namespace(
            backend=live.url,
            backend_key=pem,
            credential_file=tmp_path / "credential",
            sync_minutes=5.0,
            journal=tmp_path / "till.journal",
            terminal_id=TERMINAL_ID,
            school=SCHOOL,
            pos=1,
        )
        pulled = cli.action_sync(args)
        assert pulled is not None
        writer, sync = pulled
        try:
            assert [a.action_id for a in writer.lists.pending_for(SERIAL_HEX, "cursus")] == [
                action["id"]
            ]
            card = new_card_file(tmp_path / "card.json", pupil_image(canteen_aid=0, wallet=0))
            rig = TillRig(tmp_path, card)
            rig.till.actions = writer
            rig.insert()
            served = rig.till.serve()
            assert served.reason is MealReason.SERVED, served
            assert card_state(card).canteen_aid == 5_000 - 380
            rig.close()
            # The till's confirmation reaches the backend before the meal's session was
            # uploaded and validated: refused as not proven yet (write_not_proven), and kept in
            # the outbox to be sent again, never closed (the end-to-end confirmation after the
            # upload is tested at the gate: test_gate_actions_pcsc.py).
            assert sync.pull_action_list() is not Outcome.UNREACHABLE
            assert writer.outbox is not None
            assert writer.outbox.states() == {action["id"]: "committed"}
            (pending,) = live.agent("GET", f"/api/v1/action-lists/cards/{SERIAL_HEX}").json()
            assert pending["status"] == "pending"
        finally:
            sync.stop()
            assert writer.outbox is not None
            writer.outbox.close()
        with pytest.raises(RegionCardError, match="--backend"):
            cli.action_sync(argparse.Namespace(**{**vars(args), "backend": None}))
