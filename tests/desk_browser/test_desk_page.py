"""The desk page in a real browser: Debian's chromium driven by Playwright, the backend on
uvicorn, the desk station in a thread writing an emulated card through a private pcscd (vpcd).

The agent logs in, creates a holder, asks for a card with two applications and a wallet reload;
the page says « Posez une carte vierge sur le lecteur », the card is put down, the page shows the
progress and « Carte émise »; the receipt is downloaded. A screenshot of the page is kept in
``out/test-artefacts/desk.png``. Chromium missing is a skip, which fails in CI.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from deskkit import DESK_ID, PASSWORD, LiveBackend, blank_card, desk_sam, live_backend

from terminal.desk import DeskBackend, DeskJob, DeskStation

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTEFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artefacts"


class SlowReporting(DeskBackend):
    """Holds each "writing" report a little so a human (and the test) sees the progress."""

    def __init__(self, *args: Any, pause: threading.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pause = pause

    def progress(self, job_id: int, **fields: Any) -> DeskJob:
        job = super().progress(job_id, **fields)
        if fields.get("status") == "writing":
            self._pause.wait(0.6)  # never set: a fixed pause, not a timed assertion
        return job


def test_desk_page_issues_a_card(
    pcsc_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    from firmware_host.readers.pcsc import PCSCReader
    from hardware.bridges.vpcd import VPCDBridge

    card, store = blank_card(tmp_path / "cards")
    stop = threading.Event()
    with (
        live_backend(tmp_path / "backend") as backend,
        VPCDBridge(card, pcsc_stack.card_port, name="card", inserted=False) as card_bridge,
        VPCDBridge(desk_sam(), pcsc_stack.sam_port, name="sam") as sam_bridge,
    ):
        assert sam_bridge.wait_connected(5)  # the card bridge connects when the card is put down
        assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
        reader = PCSCReader(pcsc_stack.card_reader)
        sam_reader = PCSCReader(pcsc_stack.sam_reader)
        station = DeskStation(
            reader,
            sam_reader,
            backend.url,
            DESK_ID,
            backend.credential,
            card_timeout=30,
            poll_interval=0.2,
            backend=SlowReporting(
                backend.url, DESK_ID, backend.credential, pause=threading.Event()
            ),
        )
        thread = threading.Thread(target=station.run_forever, args=(stop,), daemon=True)
        thread.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                try:
                    page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="fr-FR")
                    screenshot = run_page(page, expect, backend, card_bridge, pcsc_stack, tmp_path)
                finally:
                    browser.close()
        finally:
            stop.set()
            thread.join(timeout=15)
            reader.close()
            sam_reader.close()
    with capsys.disabled():  # shown in every run, not only on failure
        print(f"\ncapture d'écran du guichet (test artefact) : {screenshot}")
    assert not thread.is_alive()
    image = store.load()
    assert any(image.applications["plum"].records["environment"][0])
    assert image.applications["wallet"].sv_balance == 1250
    assert not any(image.applications["cursus"].records["student"][0])


def run_page(
    page: Any, expect: Any, backend: LiveBackend, card_bridge: Any, stack: Any, tmp_path: Path
) -> Path:
    page.goto(backend.url + "/desk/")
    expect(page.get_by_role("heading", name="Connexion agent")).to_be_visible()
    page.get_by_label("Identifiant").fill("agent1")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("#who")).to_have_text("Agent : agent1")
    assert page.evaluate("sessionStorage.getItem('regioncard.token')")

    # Search first (audited, with its reason): nobody yet.
    search = page.locator("#search-form")
    search.get_by_label("Nom de famille").fill("Lefebvre")
    search.get_by_label("Motif de la consultation").fill("demande de carte au guichet")
    search.get_by_role("button", name="Rechercher").click()
    expect(page.locator("#results")).to_have_text("Aucun titulaire trouvé")

    created = page.locator("#holder-form")
    created.get_by_label("Nom", exact=True).fill("Lefebvre")
    created.get_by_label("Prénom").fill("Inès")
    created.get_by_role("button", name="Créer le titulaire").click()
    expect(page.locator("#holder-name")).to_have_text("Inès Lefebvre")
    expect(page.locator("#cards")).to_have_text("Aucune carte")

    page.get_by_role("button", name="Émettre une carte").click()
    page.get_by_label("PLUM (transports)").check()
    page.get_by_label("Ma région numérique (porte-monnaie)").check()
    page.get_by_label("Rechargement du porte-monnaie (€)").fill("12.50")
    page.evaluate(
        """() => { window.seen = []; new MutationObserver(() =>
             window.seen.push(document.getElementById('job-message').textContent))
           .observe(document.getElementById('job-message'),
                    {childList: true, characterData: true, subtree: true}); }"""
    )
    page.get_by_role("button", name="Vérifier la demande").click()
    expect(page.locator("#confirm-total")).to_have_text("Total à encaisser : 12,50 €")
    page.get_by_role("button", name="Confirmer et écrire la carte").click()
    message = page.locator("#job-message")
    expect(message).to_have_text("Posez une carte vierge sur le lecteur", timeout=10_000)

    card_bridge.insert()  # the agent puts a blank card on the reader
    assert stack.wait_for_card_state(stack.card_reader, True, 5)
    expect(message).to_have_text("Carte émise", timeout=30_000)
    seen = page.evaluate("window.seen")
    assert any(text.startswith("Écriture en cours : ") for text in seen), seen
    expect(page.locator("#progress")).to_have_attribute("value", "3")
    expect(page.locator("#cards")).to_contain_text("PLUM, Ma région numérique")

    receipt = page.get_by_role("link", name="Imprimer le reçu (PDF)")
    expect(receipt).to_be_visible()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "desk.png"
    page.screenshot(path=str(screenshot), full_page=True)
    with page.expect_download() as download:
        receipt.click()
    pdf = tmp_path / "recu.pdf"
    download.value.save_as(pdf)
    raw = pdf.read_bytes()
    assert raw.startswith(b"%PDF-")
    assert b"Hauts-de-France" in raw and b"Lefebvre" in raw
    return screenshot
