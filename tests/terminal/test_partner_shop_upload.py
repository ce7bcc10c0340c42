"""A partner reader's consultation and a shop till's sale and refund reach a live backend.

The reader and the till run on the emulated card and SAMs (in-process readers); their journals go
through :class:`terminal.uploader.JournalUploader` to uvicorn on 127.0.0.1 (the desk tests'
backend, whose token holds the same demo master keys), the validation loop runs, and the backend
shows the consultation, the till's daily report and the clearing owed to the shop.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = Path(__file__).resolve().parent
for kit in ("desk", "partner", "shop"):
    if str(HERE / kit) not in sys.path:
        sys.path.insert(0, str(HERE / kit))

from deskkit import LiveBackend, live_backend  # noqa: E402
from partner_kit import PARTNER_SAM_SERIAL, Clock, holder_image, partner_keys  # noqa: E402
from shop_kit import SHOP_SAM_SERIAL, ShopRig, customer_image  # noqa: E402
from shop_kit import new_card_file as new_shop_card  # noqa: E402

from firmware_host.readers.inprocess import InProcessReader  # noqa: E402
from hardware.card.emulator import EmulatedCard  # noqa: E402
from hardware.card.image import CardImageStore  # noqa: E402
from hardware.sam.emulator import EmulatedSAM  # noqa: E402
from terminal.canteen.screen import RecordingScreen  # noqa: E402
from terminal.journal import Journal  # noqa: E402
from terminal.partner.reader import PartnerReader  # noqa: E402
from terminal.shop.till import ShopReason  # noqa: E402
from terminal.uploader import JournalUploader  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    with live_backend(tmp_path_factory.mktemp("partner-backend")) as backend:
        yield backend


def _register(
    live: LiveBackend, path: str, body: dict[str, object]
) -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    body["public_key"] = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with live.client() as client:
        answer = client.post(path, json=body, headers=live.supervisor_headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["credential"]), key


def _upload(
    live: LiveBackend, journal: Path, terminal_id: str, credential: str, key: Ed25519PrivateKey
) -> None:
    uploader = JournalUploader(journal, terminal_id, live.url, credential, key, interval=60.0)
    report = uploader.upload_now()
    assert report is not None and report.complete, report
    from backend.uploads.router import validation_loop_of

    validation_loop_of(live.app).run_once()


def test_partner_consultation_is_recorded_by_the_backend(live: LiveBackend, tmp_path: Path) -> None:
    terminal_id = "PARTNER-ML-8021-3"
    credential, key = _register(
        live,
        "/api/v1/partners/terminals",
        {
            "terminal_id": terminal_id,
            "partner": "mission_locale",
            "site": 8021,
            "sam_serial": PARTNER_SAM_SERIAL.hex(),
        },
    )
    card = tmp_path / "card.json"
    CardImageStore(card).commit(holder_image())
    sam = EmulatedSAM(partner_keys(), PARTNER_SAM_SERIAL, counter_file=tmp_path / "sam.json")
    journal_path = tmp_path / "partner.journal"
    with Journal.open(journal_path, terminal_id) as journal:
        reader = PartnerReader(
            InProcessReader(EmulatedCard(CardImageStore(card)), name="card"),
            InProcessReader(sam, name="sam"),
            journal,
            partner="mission_locale",
            site=8021,
            terminal_number=3,
            clock=Clock(),
            screen=RecordingScreen(),
        )
        assert reader.consult(holder_agrees=True).shown
    _upload(live, journal_path, terminal_id, credential, key)

    from sqlalchemy import select

    from backend.db import transaction
    from backend.partners.service import consultations
    from backend.validation.models import Tap

    with transaction(live.app.state.sessionmaker) as session:
        taps = session.execute(
            select(Tap.status, Tap.sam_verified, Tap.card_pseudonym).where(
                Tap.terminal_id == terminal_id
            )
        ).all()
        assert [(status, verified) for status, verified, _ in taps] == [("posted", True)]
        seen = consultations(session, [taps[0][2]])
    assert [(c["partner"], c["partner_site"], c["consulted_at"]) for c in seen] == [
        ("mission_locale", 8021, "2026-12-01T10:20")
    ]


def test_shop_sale_and_refund_reach_the_report_and_the_clearing(
    live: LiveBackend, tmp_path: Path
) -> None:
    terminal_id = "SHOP-LIBRAIRIE-AMIENS-1"
    credential, key = _register(
        live,
        "/api/v1/shops/terminals",
        {
            "terminal_id": terminal_id,
            "shop_name": "Librairie du Beffroi",
            "purposes": ["books"],
            "sam_serial": SHOP_SAM_SERIAL.hex(),
        },
    )
    rig = ShopRig(tmp_path, new_shop_card(tmp_path / "card.json", customer_image()))
    rig.insert()
    assert rig.till.sale("books", 2_350).reason == ShopReason.PAID
    rig.insert()
    assert rig.till.refund("books", 1_000).reason == ShopReason.REFUNDED
    rig.close()
    _upload(live, tmp_path / "shop.journal", terminal_id, credential, key)
    with live.client() as client:
        report = client.get(
            f"/api/v1/shops/{terminal_id}/report",
            params={"day": "2026-12-05"},
            headers=live.supervisor_headers,
        )
        clearing = client.get("/api/v1/shops/clearing", headers=live.supervisor_headers)
    assert report.status_code == 200, report.text
    assert report.json()["purposes"]["books"] == {
        "sales": 1,
        "sales_amount": 2_350,
        "refunds": 1,
        "refunds_amount": 1_000,
        "wallet_amount": 0,
        "net": 1_350,
    }
    owed = [line for line in clearing.json() if line["terminal_id"] == terminal_id]
    assert owed == [
        {"terminal_id": terminal_id, "purpose": "books", "funder": "region", "owed": 1_350}
    ]
