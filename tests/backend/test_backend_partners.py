"""Partner readers and shop tills in the backend: registration, uploads through the validation
loop, kind checks (``kind_violation``), consultations, a till's daily report and the clearing."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from backend.errors import InvalidRequest
from backend.partners.fit import SHOP_PURPOSES
from backend.partners.service import (
    consultations,
    register_partner_terminal,
    register_shop_terminal,
    shop_clearing,
    shop_daily_report,
)
from card_schema.records import encode_record
from card_schema.uploads.records import JournalRecord, TransactionKind
from terminal.fares.local_time import PARIS
from terminal.shop.till import PURPOSES
from tests.backend.conftest import Auth
from tests.backend.validation_fixtures import (
    T0,
    CardSim,
    KeyRing,
    TerminalSim,
    VLDatabase,
    movement,
    pseudonym_of,
    vl_db,
)

__all__ = ["vl_db"]

CARD = bytes.fromhex("0000000055500001")


def _raw(terminal: TerminalSim) -> bytes:
    return terminal.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _consultation(partner: str) -> bytes:
    return encode_record(
        "employment.consultation",
        {
            "consulted_at": "2025-09-01T09:40",
            "partner": partner,
            "partner_site": 8021,
            "read": ["situation", "right_1"],
            "terminal_id": 3,
        },
    )


def test_the_backend_and_the_till_agree_on_purposes() -> None:
    assert {n: (p.purse, p.product_code) for n, p in PURPOSES.items()} == SHOP_PURPOSES


def test_registration_refuses_unknown_partners_and_purposes(vl_db: VLDatabase) -> None:
    with vl_db.factory() as session:
        for bad in ({"partner": "nobody", "site": 1}, {"partner": "apec", "site": 70_000}):
            try:
                register_partner_terminal(session, terminal_id="P-X", **bad)  # type: ignore[arg-type]
            except InvalidRequest:
                continue
            raise AssertionError(f"{bad} accepted")
        for purposes in (frozenset(), frozenset({"canteen"})):
            try:
                register_shop_terminal(session, terminal_id="S-X", shop_name="X", purposes=purposes)
            except InvalidRequest:
                continue
            raise AssertionError(f"{purposes} accepted")


def test_partner_consultations_recorded_and_kind_checked(vl_db: VLDatabase) -> None:
    reader = TerminalSim("PARTNER-ML-1", station_id=8021)
    with vl_db.factory() as session, session.begin():
        register_partner_terminal(
            session,
            terminal_id=reader.terminal_id,
            partner="mission_locale",
            site=8021,
            sam_serial=reader.sam_serial,
            public_key=_raw(reader),
        )
    card = CardSim(CARD)
    good = reader.record(
        CARD,
        card.session(),
        kind=TransactionKind.CONSULTATION,
        application="employment",
        written_event=_consultation("mission_locale"),
        product_code=None,
    )
    impostor = reader.record(
        CARD,
        card.session(),
        kind=TransactionKind.CONSULTATION,
        application="employment",
        written_event=_consultation("france_travail"),
        product_code=None,
    )
    spending = reader.record(
        CARD,
        card.session(),
        kind=TransactionKind.AID_DEBIT,
        application="cursus",
        movements=[movement("cursus.books_aid", -500, 5_000)],
        product_code=0x4B01,
    )
    assert vl_db.upload(KeyRing(reader), reader, reader.batch([good, impostor, spending])).ack
    vl_db.loop().run_once()
    with vl_db.factory() as session:
        seen = consultations(session, [pseudonym_of(CARD)])
    assert [(c["partner"], c["partner_site"], c["read"]) for c in seen] == [
        ("mission_locale", 8021, ["situation", "right_1"])
    ]
    statuses = vl_db.rows("SELECT terminal_seq, status FROM taps ORDER BY terminal_seq")
    assert [s for _, s in statuses] == ["posted", "kind_violation", "kind_violation"]
    assert vl_db.scalar("SELECT count(*) FROM anomalies WHERE kind = 'kind_violation'") == 2
    assert vl_db.scalar("SELECT count(*) FROM ledger_entries") == 0


def test_shop_sales_refunds_report_clearing_and_ring_fence(vl_db: VLDatabase) -> None:
    bookshop = TerminalSim("SHOP-BOOKS-1", sam_serial=bytes.fromhex("5A00B001"), station_id=12)
    club = TerminalSim("SHOP-CLUB-1", sam_serial=bytes.fromhex("5A00B002"), station_id=13)
    with vl_db.factory() as session, session.begin():
        register_shop_terminal(
            session,
            terminal_id=bookshop.terminal_id,
            shop_name="Librairie du Beffroi",
            purposes=frozenset({"books"}),
            sam_serial=bookshop.sam_serial,
            public_key=_raw(bookshop),
        )
        register_shop_terminal(
            session,
            terminal_id=club.terminal_id,
            shop_name="Club de judo",
            purposes=frozenset({"sport", "leisure"}),
            sam_serial=club.sam_serial,
            public_key=_raw(club),
        )
    card = CardSim(CARD)
    at = T0 + timedelta(hours=6)  # 15:30 in Paris, 1 September 2025

    def shop_record(
        t: TerminalSim, kind: TransactionKind, purse: str, amount: int, before: int, code: int
    ) -> JournalRecord:
        return t.record(
            CARD,
            card.session(),
            kind=kind,
            application="cursus",
            movements=[movement(purse, amount, before)],
            product_code=code,
            at=at,
        )

    books_sale = shop_record(
        bookshop, TransactionKind.AID_DEBIT, "cursus.books_aid", -2_350, 5_000, 0x4B01
    )
    refund = shop_record(
        bookshop, TransactionKind.AID_REFUND, "cursus.books_aid", 1_000, 2_650, 0x4B01
    )
    sport_at_bookshop = shop_record(
        bookshop, TransactionKind.AID_DEBIT, "cursus.sport_aid", -500, 3_000, 0x4B02
    )
    canteen_aid_at_shop = shop_record(
        bookshop, TransactionKind.AID_DEBIT, "cursus.canteen_aid", -500, 9_000, 0x4B01
    )
    meal_at_shop = shop_record(
        bookshop, TransactionKind.CANTEEN_MEAL, "cursus.books_aid", -100, 3_650, 0x4B01
    )
    wallet_rest = bookshop.record(
        CARD,
        card.session(),
        kind=TransactionKind.SV_DEBIT,
        application="wallet",
        movements=[movement("wallet.sv", -400, 2_000)],
        product_code=0x4B01,
        at=at,
    )
    wallet_for_sport = bookshop.record(
        CARD,
        card.session(),
        kind=TransactionKind.SV_DEBIT,
        application="wallet",
        movements=[movement("wallet.sv", -400, 1_600)],
        product_code=0x4B02,
        at=at,
    )
    sport_sale = shop_record(
        club, TransactionKind.AID_DEBIT, "cursus.sport_aid", -3_000, 3_000, 0x4B02
    )
    keys = KeyRing(bookshop, club)
    assert vl_db.upload(
        keys,
        bookshop,
        bookshop.batch(
            [
                books_sale,
                refund,
                sport_at_bookshop,
                canteen_aid_at_shop,
                meal_at_shop,
                wallet_rest,
                wallet_for_sport,
            ]
        ),
    ).ack
    assert vl_db.upload(keys, club, club.batch([sport_sale])).ack
    vl_db.loop().run_once()
    statuses = dict(
        vl_db.rows(
            "SELECT terminal_seq, status FROM taps WHERE terminal_id = :t", t=bookshop.terminal_id
        )
    )
    assert [statuses[r.seq] for r in (books_sale, refund, wallet_rest)] == ["posted"] * 3
    assert all(
        statuses[r.seq] == "kind_violation"
        for r in (sport_at_bookshop, canteen_aid_at_shop, meal_at_shop, wallet_for_sport)
    )
    day = at.astimezone(PARIS).date()
    with vl_db.factory() as session:
        report = shop_daily_report(session, bookshop.terminal_id, day)
        clearing = shop_clearing(session)
        next_day = shop_daily_report(session, bookshop.terminal_id, day + timedelta(days=1))
    assert report["purposes"]["books"] == {
        "sales": 1,
        "sales_amount": 2_350,
        "refunds": 1,
        "refunds_amount": 1_000,
        "wallet_amount": 400,
        "net": 1_350,
    }
    assert (report["net"], report["refused_records"]) == (1_350, 4)
    assert next_day["net"] == 0
    assert clearing == [
        {"terminal_id": "SHOP-BOOKS-1", "purpose": "books", "funder": "region", "owed": 1_350},
        {"terminal_id": "SHOP-CLUB-1", "purpose": "sport", "funder": "region", "owed": 3_000},
    ]


def test_back_office_registers_and_reports(client: TestClient, auth: Auth) -> None:
    supervisor, agent = auth("supervisor"), auth("agent")
    body = {"terminal_id": "SHOP-API-1", "shop_name": "Librairie", "purposes": ["books"]}
    assert client.post("/api/v1/shops/terminals", json=body, headers=agent).status_code == 403
    answer = client.post("/api/v1/shops/terminals", json=body, headers=supervisor)
    assert answer.status_code == 201, answer.text
    assert answer.json()["credential"]
    bad = dict(body, terminal_id="SHOP-API-2", purposes=["canteen"])
    assert client.post("/api/v1/shops/terminals", json=bad, headers=supervisor).status_code == 422
    partner = {"terminal_id": "PARTNER-API-1", "partner": "nobody", "site": 3}
    refused = client.post("/api/v1/partners/terminals", json=partner, headers=supervisor)
    assert refused.status_code == 422 and "partenaire inconnu" in refused.json()["message_fr"]
    partner["partner"] = "pension_fund"
    assert (
        client.post("/api/v1/partners/terminals", json=partner, headers=supervisor).status_code
        == 201
    )
    report = client.get(
        "/api/v1/shops/SHOP-API-1/report", params={"day": "2026-12-05"}, headers=auth("auditor")
    )
    assert report.status_code == 200
    assert report.json()["purposes"] == {
        "books": {
            "sales": 0,
            "sales_amount": 0,
            "refunds": 0,
            "refunds_amount": 0,
            "wallet_amount": 0,
            "net": 0,
        }
    }
    missing = client.get(
        "/api/v1/shops/NOPE/report", params={"day": "2026-12-05"}, headers=supervisor
    )
    assert missing.status_code == 404
    assert client.get("/api/v1/shops/clearing", headers=supervisor).status_code == 200
