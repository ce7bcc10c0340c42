"""The back office in a real browser (Debian chromium, Playwright), per role.

A live backend (uvicorn, SQLite, SoftHSM2) holds a small day of validated data written straight
into its tables (taps, ledger entries, anomalies, an upload, a terminal gap: what the validation
loop leaves behind, tested in tests/backend). A supervisor registers, rotates and revokes a
terminal, runs the catalogue, pushes the deny-list, resolves an anomaly, reads the
reconciliation, closes a period and downloads its statement, and looks at the plots; an auditor
reads everything and the audit log but changes nothing; an agent is shown the door. Screenshots
go to ``out/test-artefacts/`` (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deskkit import PASSWORD, LiveBackend, live_backend
from pagekit import chromium, new_page, screenshot

from backend.auth.roles import AgentRole
from backend.auth.service import create_agent
from backend.db import transaction
from backend.ledger.models import LedgerEntry
from backend.uploads.models import UploadBatch
from backend.validation.models import Anomaly, Gap, Tap

pytestmark = pytest.mark.integration

DAY = datetime(2026, 11, 27, tzinfo=UTC)
PSEUDONYM = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def seed(backend: LiveBackend) -> None:
    """A validated day: 3 Ilévia taps at 8 h and 1 Tadao tap at 17 h (Paris), their revenue, a
    canteen meal paid by the region's aid, two anomalies (one resolved), an upload, a gap."""
    with transaction(backend.app.state.sessionmaker) as session:
        create_agent(session, "audit1", PASSWORD, AgentRole.AUDITOR)
        for n, (operator, hour) in enumerate(
            [("ilevia", 7), ("ilevia", 7), ("ilevia", 7), ("tadao", 16)]
        ):
            session.add(
                Tap(
                    terminal_id="GATE-1",
                    terminal_seq=n + 1,
                    card_pseudonym=PSEUDONYM,
                    card_tx_counter=1000 - n,
                    charged=True,
                    status="posted",
                    kind="sv_debit",
                    application="wallet",
                    outcome="accepted",
                    resolution="committed",
                    occurred_at=DAY + timedelta(hours=hour, minutes=n),
                    operator_id=operator,
                    movements="[]",
                    sam_verified=True,
                )
            )
            for line, (account, amount) in enumerate(
                [(f"card:{PSEUDONYM}:wallet.sv", -170), (f"operator:{operator}:revenue", 170)]
            ):
                session.add(
                    LedgerEntry(
                        entry_ref=f"tap-{n}",
                        line=line,
                        account=account,
                        amount=amount,
                        occurred_at=DAY + timedelta(hours=hour, minutes=n),
                        kind="sv_debit",
                    )
                )
        for line, (account, amount) in enumerate(
            [(f"card:{PSEUDONYM}:cursus.canteen_aid", -350), ("school:0801234G:aid.canteen", 350)]
        ):
            session.add(
                LedgerEntry(
                    entry_ref="meal-1",
                    line=line,
                    account=account,
                    amount=amount,
                    occurred_at=DAY + timedelta(hours=11),
                    kind="meal",
                )
            )
        session.add(
            Anomaly(
                kind="card_counter_gap",
                terminal_id="GATE-1",
                card_pseudonym=PSEUDONYM,
                card_tx_counter=995,
                detail="counter 995 missing",
                detected_at=DAY + timedelta(hours=9),
            )
        )
        session.add(
            Anomaly(
                kind="replay",
                terminal_id="GATE-2",
                card_pseudonym=PSEUDONYM,
                card_tx_counter=999,
                detail="counter 999 charged twice",
                detected_at=DAY + timedelta(hours=10),
                resolved_at=DAY + timedelta(hours=12),
                resolution="filled by a later upload",
            )
        )
        session.add(
            UploadBatch(
                batch_id="GUICHET-AMIENS-1:1-4",
                terminal_id="GUICHET-AMIENS-1",
                body_sha256="0" * 64,
                record_count=4,
                received_at=DAY + timedelta(hours=18),
            )
        )
        session.add(Gap(scope="terminal", subject="GUICHET-AMIENS-1", number=3, state="missing"))


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    with live_backend(tmp_path_factory.mktemp("backoffice")) as live:
        seed(live)
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def login(page: Any, backend: LiveBackend, user: str) -> None:
    page.goto(backend.url + "/back-office/")
    page.locator("#login-form").get_by_label("Identifiant").fill(user)
    page.locator("#login-form").get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect()(page.locator("#who")).to_contain_text(user)


def tab(page: Any, name: str) -> None:
    page.locator("#tabs").get_by_role("button", name=name).click()


def test_a_supervisor_runs_the_back_office(
    browser: Any, backend: LiveBackend, tmp_path: Path
) -> None:
    page = new_page(browser)
    answers: list[str] = []
    page.on("dialog", lambda dialog: dialog.accept(answers.pop(0) if answers else None))
    try:
        login(page, backend, "super1")
        expect()(page.locator("#tabs").get_by_role("button", name="Journal d'audit")).to_be_hidden()

        # Terminals: the desk's last upload and its open gap; register, rotate, revoke.
        terminals = page.locator("#terminals")
        desk_row = terminals.locator("tr", has_text="GUICHET-AMIENS-1")
        expect()(desk_row).to_contain_text("guichet")
        expect()(desk_row).to_contain_text("27/11/2026")
        expect()(desk_row.locator("td").nth(5)).to_have_text("1")
        form = page.locator("#terminal-form")
        form.get_by_label("Identifiant", exact=True).fill("VALIDEUR-LENS-1")
        form.get_by_label("Type").select_option("gate")
        form.get_by_label("Gare (numéro)").fill("1001")
        form.get_by_role("button", name="Enregistrer").click()
        expect()(page.locator("#credential")).to_contain_text("VALIDEUR-LENS-1")
        first = page.locator("#credential").text_content()
        gate_row = terminals.locator("tr", has_text="VALIDEUR-LENS-1")
        gate_row.get_by_role("button", name="Nouvel identifiant").click()
        expect()(page.locator("#credential")).not_to_have_text(first or "")
        gate_row.get_by_role("button", name="Révoquer").click()
        expect()(gate_row).to_contain_text("révoqué")
        screenshot(page, "back-office-terminals.png")

        # Catalogue: create (euros typed the French way), change the price, history, withdraw.
        tab(page, "Catalogue")
        product = page.locator("#product-form")
        product.get_by_label("Code").fill("31")
        product.get_by_label("Identifiant tarifaire").fill("pass_semaine")
        product.get_by_label("Nom").fill("Pass semaine")
        product.get_by_label("Prix (€)").fill("12,50")
        product.get_by_label("Durée (jours)").fill("7")
        product.get_by_role("button", name="Créer").click()
        week = page.locator("#products tr", has_text="Pass semaine")
        expect()(week).to_contain_text("12,50 €")
        answers.append("13,00")
        week.get_by_role("button", name="Changer le prix").click()
        expect()(week).to_contain_text("13,00 €")
        week.get_by_role("button", name="Historique des prix").click()
        expect()(page.locator("#history-lines li")).to_have_count(2)
        expect()(page.locator("#history-lines")).to_contain_text("12,50 € -> 13,00 €")
        week.get_by_role("button", name="Retirer de la vente").click()
        expect()(week).to_contain_text("retiré")

        # Deny-list: a card blocked at the desk is listed; push a new version.
        holder = backend.holder("Blanc", "Eva")
        serial = "00000000DEADBEEF"
        backend.agent(
            "POST",
            "/api/v1/cards",
            json={"holder_id": holder, "serial": serial, "applications": ["plum"]},
        )
        blocked = backend.agent("POST", f"/api/v1/cards/{serial}/block", json={"reason": "volée"})
        assert blocked.status_code == 200, blocked.text
        tab(page, "Liste d'opposition")
        expect()(page.locator("#deny-entries")).to_contain_text(serial)
        version = page.locator("#deny-version")
        expect()(version).to_contain_text("Version en vigueur : 1")
        page.get_by_role("button", name=re.compile("Publier une nouvelle version")).click()
        expect()(version).to_contain_text("Version en vigueur : 2")

        # Anomalies: French names, resolved ones look resolved; filter; resolve with a reason.
        tab(page, "Anomalies")
        rows = page.locator("#anomalies tbody tr")
        expect()(rows).to_have_count(2)
        gap = rows.filter(has_text="Transaction de carte manquante")
        expect()(gap.locator("small.code")).to_have_text("card_counter_gap")
        expect()(gap).to_contain_text("ouverte")
        expect()(rows.filter(has_text="Transaction rejouée")).to_contain_text("résolue")
        filters = page.locator("#anomaly-filter")
        filters.get_by_label("État").select_option("open")
        filters.get_by_role("button", name="Filtrer").click()
        expect()(rows).to_have_count(1)
        filters.get_by_label("État").select_option("")
        filters.get_by_label("Terminal", exact=True).fill("GATE-2")
        filters.get_by_role("button", name="Filtrer").click()
        expect()(rows).to_have_count(1)
        expect()(rows).to_contain_text("Transaction rejouée")
        filters.get_by_label("Terminal", exact=True).fill("")
        filters.locator("#anomaly-kind").select_option("card_counter_gap")
        filters.get_by_role("button", name="Filtrer").click()
        expect()(rows).to_have_count(1)
        page.get_by_label(re.compile("Motif de résolution")).fill("session retrouvée au guichet")
        rows.get_by_role("button", name="Résoudre").click()
        expect()(rows).to_contain_text("résolue")
        expect()(rows).to_contain_text("session retrouvée au guichet (super1)")
        screenshot(page, "back-office-anomalies.png")

        # Reconciliation per operator, school, funder, merchant.
        tab(page, "Rapprochement")
        period = page.locator("#period-form")
        period.get_by_label("Du").fill("2026-11-27")
        period.get_by_label("Au (inclus)").fill("2026-11-27")
        period.get_by_role("button", name="Afficher").click()
        ilevia = page.locator("#rec-operators tr", has_text="Ilévia (Lille)")
        expect()(ilevia).to_contain_text("5,10 €")
        expect()(ilevia.locator("td").nth(1)).to_have_text("3")
        expect()(page.locator("#rec-funders")).to_contain_text("Financeur région — cantine")
        expect()(page.locator("#rec-funders")).to_contain_text("3,50 €")
        expect()(page.locator("#rec-schools")).to_contain_text("0801234G")
        expect()(page.locator("#rec-merchants")).to_contain_text("Aucune aide dépensée")

        # Clearing: close the day, see the settlements, download CSV and PDF.
        tab(page, "Compensation")
        clearing = page.locator("#clearing-form")
        clearing.get_by_label("Nom de la période").fill("2026-11-27")
        clearing.get_by_label("Du").fill("2026-11-27")
        clearing.get_by_label("Au (inclus)").fill("2026-11-27")
        clearing.get_by_role("button", name="Clôturer la période").click()
        closed = page.locator("#periods tr", has_text="2026-11-27")
        expect()(closed).to_be_visible()
        closed.get_by_role("button", name="Voir").click()
        expect()(page.locator("#settlement-lines")).to_contain_text("Ilévia (Lille) — recettes")
        with page.expect_download() as download:
            closed.get_by_role("button", name="Relevé CSV").click()
        csv_path = tmp_path / "releve.csv"
        download.value.save_as(csv_path)
        text = csv_path.read_text(encoding="utf-8-sig")
        assert text.startswith("période;payeur;bénéficiaire;compte;libellé;montant (€)")
        assert "operator:ilevia:revenue;Ilévia (Lille) — recettes;5,10" in text
        with page.expect_download() as download:
            closed.get_by_role("button", name="Relevé PDF").click()
        pdf_path = tmp_path / "releve.pdf"
        download.value.save_as(pdf_path)
        raw = pdf_path.read_bytes()
        assert raw.startswith(b"%PDF-") and b"2026-11-27" in raw
        screenshot(page, "back-office-clearing.png")

        # Plots: three images drawn.
        tab(page, "Graphiques")
        for image in ("#plot-taps", "#plot-revenue", "#plot-anomalies"):
            expect()(page.locator(image)).to_have_attribute("src", re.compile("^blob:"))
            page.wait_for_function(
                f"document.querySelector('{image}').naturalWidth > 0", timeout=15_000
            )
        screenshot(page, "back-office-plots.png")
    finally:
        page.context.close()
    # The supervisor reads no audit log.
    assert backend.agent("GET", "/api/v1/audit").status_code == 403
    with backend.client() as client:
        assert client.get("/api/v1/audit", headers=backend.supervisor_headers).status_code == 403


def test_an_auditor_reads_everything_and_changes_nothing(
    browser: Any, backend: LiveBackend
) -> None:
    page = new_page(browser)
    try:
        login(page, backend, "audit1")
        expect()(page.locator("#who")).to_have_text("auditeur : audit1")
        expect()(page.locator("#terminals")).to_contain_text("GUICHET-AMIENS-1")
        expect()(page.locator("#terminal-form")).to_be_hidden()
        expect()(page.get_by_role("button", name="Révoquer")).to_have_count(0)
        tab(page, "Anomalies")
        expect()(page.locator("#anomalies tbody tr").first).to_be_visible()
        expect()(page.get_by_role("button", name="Résoudre")).to_have_count(0)
        tab(page, "Liste d'opposition")
        expect()(page.get_by_role("button", name=re.compile("Publier"))).to_be_hidden()
        tab(page, "Journal d'audit")
        audit = page.locator("#audit")
        expect()(audit).to_contain_text("anomaly.resolve")
        filters = page.locator("#audit-filter")
        filters.get_by_label("Agent").fill("agent1")
        filters.get_by_role("button", name="Filtrer").click()
        expect()(audit).to_contain_text("card.block")
        expect()(audit).not_to_contain_text("anomaly.resolve")
        screenshot(page, "back-office-audit.png")
        token = page.evaluate("sessionStorage.getItem('regioncard.backoffice.token')")
    finally:
        page.context.close()
    headers = {"Authorization": f"Bearer {token}"}
    with backend.client() as client:
        for method, path, body in (
            ("POST", "/api/v1/terminals/GUICHET-AMIENS-1/deactivate", None),
            ("POST", "/api/v1/deny-lists/publish", None),
            ("POST", "/api/v1/products/10/deactivate", None),
            ("POST", "/api/v1/reconciliation/anomalies/2/resolve", {"reason": "non"}),
            ("POST", "/api/v1/cards/00000000DEADBEEF/unblock", {"reason": "non"}),
        ):
            answer = client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 403, (path, answer.text)
        assert client.get("/api/v1/audit", headers=headers).status_code == 200


def test_an_agent_is_refused_the_back_office(browser: Any, backend: LiveBackend) -> None:
    page = new_page(browser)
    try:
        login(page, backend, "agent1")
        expect()(page.locator("#denied")).to_contain_text("réservé aux superviseurs")
        expect()(page.locator("#tabs")).to_be_hidden()
    finally:
        page.context.close()
    for path in (
        "/api/v1/back-office/terminals",
        "/api/v1/back-office/deny-list",
        "/api/v1/back-office/plots/taps-per-hour.png",
        "/api/v1/reconciliation/anomalies",
        "/api/v1/products/all",
        "/api/v1/audit",
    ):
        assert backend.agent("GET", path).status_code == 403, path


def test_the_terminal_list_shows_every_page(browser: Any, backend: LiveBackend) -> None:
    """More terminals than the API's default page of 100: the page reads them all (limit,
    offset, X-Total-Count), the last one by id included."""
    from backend.auth.roles import TerminalKind
    from backend.terminals.service import register_terminal

    with transaction(backend.app.state.sessionmaker) as session:
        for n in range(120):
            register_terminal(session, terminal_id=f"ZZ-VALIDEUR-{n:03d}", kind=TerminalKind.GATE)
    with backend.client() as client:
        first = client.get("/api/v1/back-office/terminals", headers=backend.supervisor_headers)
    total = int(first.headers["X-Total-Count"])
    assert len(first.json()) == 100 < total
    page = new_page(browser)
    try:
        login(page, backend, "super1")
        expect()(page.locator("#terminals")).to_contain_text("ZZ-VALIDEUR-119")
        expect()(page.locator("#terminals tbody tr")).to_have_count(total)
    finally:
        page.context.close()
