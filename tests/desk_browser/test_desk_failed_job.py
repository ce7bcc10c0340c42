"""A desk job that stops midway corrupts nothing, says why, and is retried from the page.

The desk station journals its load steps, but its SAM lacks the traceability key that signs the
journal records: the wallet step is refused by the SAM. The page must name that cause (not
« Carte illisible ou non régionale »), the card must not be active, no sale may be recorded, and
« Relancer la demande » must finish the job once the SAM is replaced by one holding the key —
on the same card, without writing twice, the sale recorded once.

Debian chromium (Playwright), uvicorn, the station in a thread on a private pcscd (vpcd).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from deskkit import DESK_ID, PASSWORD, blank_card, desk_sam, live_backend
from pagekit import chromium, new_page, screenshot
from sqlalchemy import select

from backend.cards.models import Card
from backend.db import transaction
from backend.products.models import Sale
from terminal.desk import DeskStation
from terminal.journal import Journal

pytestmark = pytest.mark.integration


def run_station(
    stack: Any, backend: Any, journal_path: Path | None, stop: threading.Event
) -> threading.Thread:
    """The desk station in its own thread (it opens its readers and its journal there)."""
    from firmware_host.readers.pcsc import PCSCReader

    def main() -> None:
        reader = PCSCReader(stack.card_reader)
        sam_reader = PCSCReader(stack.sam_reader)
        journal = Journal.open(journal_path, DESK_ID) if journal_path else None
        try:
            DeskStation(
                reader,
                sam_reader,
                backend.url,
                DESK_ID,
                backend.credential,
                card_timeout=30,
                poll_interval=0.2,
                journal=journal,
            ).run_forever(stop)
        finally:
            reader.close()
            sam_reader.close()
            if journal is not None:
                journal.close()

    thread = threading.Thread(target=main, name="desk-station", daemon=True)
    thread.start()
    return thread


def stopped(thread: threading.Thread, stop: threading.Event) -> None:
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()


def test_a_job_the_sam_refuses_is_not_active_not_charged_and_retried(
    pcsc_stack: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from hardware.bridges.vpcd import VPCDBridge

    card, store = blank_card(tmp_path / "cards")
    journal_path = tmp_path / "desk-journal.db"
    with (
        live_backend(tmp_path / "backend") as backend,
        VPCDBridge(card, pcsc_stack.card_port, name="card", inserted=False) as card_bridge,
        chromium() as browser,
    ):
        page = new_page(browser)
        page.goto(backend.url + "/desk/")
        page.get_by_label("Identifiant").fill("agent1")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        created = page.locator("#holder-form")
        created.get_by_label("Nom", exact=True).fill("Lambert")
        created.get_by_label("Prénom").fill("Sacha")
        created.get_by_role("button", name="Créer le titulaire").click()
        expect(page.locator("#holder-name")).to_have_text("Sacha Lambert")
        page.get_by_role("button", name="Émettre une carte").click()
        page.get_by_label("PLUM (transports)").check()
        page.get_by_label("Ma région numérique (porte-monnaie)").check()
        page.get_by_label("Rechargement du porte-monnaie (€)").fill("5,00")
        page.get_by_role("button", name="Vérifier la demande").click()
        expect(page.locator("#confirm-total")).to_have_text("Total à encaisser : 5,00 €")
        page.get_by_role("button", name="Confirmer et écrire la carte").click()
        message = page.locator("#job-message")

        # 1. A desk SAM without the traceability key: the wallet step is refused.
        stop = threading.Event()
        with VPCDBridge(desk_sam(journaling=False), pcsc_stack.sam_port, name="sam") as sam:
            assert sam.wait_connected(5)
            assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
            station = run_station(pcsc_stack, backend, journal_path, stop)
            expect(message).to_have_text("Posez une carte vierge sur le lecteur", timeout=15_000)
            card_bridge.insert()
            expect(message).to_contain_text(
                "Le module de sécurité du guichet a refusé", timeout=30_000
            )
            stopped(station, stop)
        text = message.text_content() or ""
        assert "clé absente du module" in text and "relancez la demande" in text, text
        assert "illisible" not in text
        expect(page.get_by_role("button", name="Relancer la demande")).to_be_visible()
        expect(page.locator("#cards")).to_contain_text("en cours d'émission")
        expect(page.locator("#jobs")).to_contain_text("échouée")
        with transaction(backend.app.state.sessionmaker) as session:
            (row,) = session.scalars(select(Card))
            assert row.status.value == "issuing"
            assert list(session.scalars(select(Sale))) == []
        job = page.evaluate("state.job")
        summary = backend.agent("GET", f"/api/v1/desk/jobs/{job}").json()["summary"]
        assert [(line["to_collect"], line["paid"]) for line in summary["loads"]] == [(True, False)]
        screenshot(page, "desk-failed-job.png")

        # 2. The SAM replaced by one that holds the key; the agent retries, the card still there.
        stop = threading.Event()
        with VPCDBridge(desk_sam(journaling=True), pcsc_stack.sam_port, name="sam2") as sam:
            assert sam.wait_connected(5)
            assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
            station = run_station(pcsc_stack, backend, journal_path, stop)
            page.get_by_role("button", name="Relancer la demande").click()
            expect(message).to_have_text("Carte émise", timeout=30_000)
            expect(page.get_by_role("link", name="Imprimer le reçu (PDF)")).to_be_visible()
            stopped(station, stop)
        expect(page.locator("#cards")).to_contain_text("— active —")
        expect(page.locator("#cards")).to_contain_text("porte-monnaie 5,00 €")
        # The holder's record lists the job; its receipt is printed again from there.
        expect(page.locator("#jobs")).to_contain_text("terminée")
        with page.expect_download() as download:
            page.locator("#jobs").get_by_role("button", name="Réimprimer le reçu").click()
        again = tmp_path / "recu-bis.pdf"
        download.value.save_as(again)
        assert again.read_bytes().startswith(b"%PDF-") and b"Lambert" in again.read_bytes()
        assert b"5,00" in again.read_bytes()
        page.context.close()
        with transaction(backend.app.state.sessionmaker) as session:
            (row,) = session.scalars(select(Card))
            assert row.status.value == "active"
            assert [s.amount_cents for s in session.scalars(select(Sale))] == [500]
    image = store.load()
    assert image.applications["wallet"].sv_balance == 500  # written once
    assert any(image.applications["plum"].records["environment"][0])
