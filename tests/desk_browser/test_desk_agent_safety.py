"""The desk page defects of issue 12 §1, each seen in a real browser (Debian chromium, Playwright).

One live backend (uvicorn, SQLite, SoftHSM2) serves every test of the module; each test opens its
own browser context. The card-writing failure and its retry, which need the desk station on
pcscd, are in ``test_desk_failed_job.py``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from deskkit import PASSWORD, LiveBackend, live_backend
from pagekit import chromium, new_page, screenshot
from sqlalchemy import func, select

from backend.audit.models import AuditEntry
from backend.db import transaction
from backend.products.models import Product
from backend.terminals.models import Terminal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    with live_backend(tmp_path_factory.mktemp("backend")) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = new_page(browser)
    yield page
    page.context.close()


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def login(page: Any, backend: LiveBackend, user: str = "agent1") -> None:
    page.goto(backend.url + "/desk/")
    page.locator("#login-form").get_by_label("Identifiant").fill(user)
    page.locator("#login-form").get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect()(page.locator("#who")).to_have_text(f"Agent : {user}")


def create_holder(page: Any, family: str, given: str, birth: str = "") -> None:
    form = page.locator("#holder-form")
    form.get_by_label("Nom", exact=True).fill(family)
    form.get_by_label("Prénom").fill(given)
    if birth:
        form.get_by_label("Date de naissance").fill(birth)
    form.get_by_role("button", name="Créer le titulaire").click()


def audit_rows(backend: LiveBackend, action: str, subject: str) -> list[tuple[str, str]]:
    with transaction(backend.app.state.sessionmaker) as session:
        rows = session.execute(
            select(AuditEntry.agent, AuditEntry.reason).where(
                AuditEntry.action == action, AuditEntry.subject == subject
            )
        )
        return [(a, r) for a, r in rows]


def registered_card(backend: LiveBackend, holder_id: int) -> str:
    serial = "00000000" + secrets.token_hex(4).upper()
    answer = backend.agent(
        "POST",
        "/api/v1/cards",
        json={"holder_id": holder_id, "serial": serial, "applications": ["plum", "wallet"]},
    )
    assert answer.status_code == 201, answer.text
    return serial


# -- logout and idle lock ----------------------------------------------------------------------
def test_logout_clears_the_form_the_holder_and_the_token(page: Any, backend: LiveBackend) -> None:
    login(page, backend)
    create_holder(page, "Carpentier", "Hugo")
    expect()(page.locator("#holder-name")).to_have_text("Hugo Carpentier")

    page.get_by_role("button", name="Se déconnecter").click()
    expect()(page.get_by_role("heading", name="Connexion agent")).to_be_visible()
    assert page.locator("#login-form").get_by_label("Mot de passe").input_value() == ""
    assert page.locator("#login-form").get_by_label("Identifiant").input_value() == ""
    assert page.evaluate("sessionStorage.getItem('regioncard.token')") is None
    assert page.evaluate("state.holder") is None
    assert page.locator("#holder-name").text_content() == ""
    assert page.locator("#cards li").count() == 0
    # A click on « Se connecter » logs nobody in: the fields are empty.
    page.get_by_role("button", name="Se connecter").click()
    expect()(page.locator("#desk-screen")).to_be_hidden()

    login(page, backend, "super1")
    expect()(page.locator("#holder-panel")).to_be_hidden()
    assert page.locator("#holder-name").text_content() == ""


def test_an_idle_session_locks_itself(browser: Any, tmp_path: Path) -> None:
    with live_backend(tmp_path / "idle", desk_idle_lock_seconds=5) as idle:
        page = new_page(browser)
        try:
            login(page, idle)
            create_holder(page, "Vasseur", "Maël")
            expect()(page.locator("#holder-name")).to_have_text("Maël Vasseur")
            expect()(page.get_by_role("heading", name="Connexion agent")).to_be_visible(
                timeout=30_000
            )
            expect()(page.locator("#notice")).to_contain_text("Session verrouillée")
            assert page.evaluate("sessionStorage.getItem('regioncard.token')") is None
            assert page.evaluate("state.holder") is None
            assert page.locator("#holder-name").text_content() == ""
        finally:
            page.context.close()


# -- money -------------------------------------------------------------------------------------
def test_euros_are_typed_the_french_way_and_the_total_shown_before_writing(
    page: Any, backend: LiveBackend
) -> None:
    login(page, backend)
    create_holder(page, "Dumont", "Chloé")
    expect()(page.locator("#holder-name")).to_have_text("Chloé Dumont")
    holder_id = page.evaluate("state.holder.id")
    page.get_by_role("button", name="Émettre une carte").click()
    page.get_by_label("Ma région numérique (porte-monnaie)").check()
    page.get_by_label("Cursus (jeunes)").check()
    wallet = page.get_by_label("Rechargement du porte-monnaie (€)")
    total = page.locator("#confirm-total")
    for typed, shown in (
        ("1,50", "1,50 €"),
        ("1.50", "1,50 €"),
        ("1", "1,00 €"),
        ("8,5", "8,50 €"),
    ):
        wallet.fill(typed)
        page.get_by_role("button", name="Vérifier la demande").click()
        expect()(total).to_have_text(f"Total à encaisser : {shown}")
        page.get_by_role("button", name="Modifier").click()
    for typed in ("1.500", "1,5,0", "1 000", "1e3", "-2"):
        wallet.fill(typed)
        page.get_by_role("button", name="Vérifier la demande").click()
        expect()(page.locator(".field-error")).to_have_text(re.compile("montant ambigu"))
        expect()(page.locator("#confirm-panel")).to_be_hidden()

    wallet.fill("2,00")
    page.get_by_label("Aide Cursus").select_option("canteen")
    page.get_by_label("Montant de l'aide (€)").fill("8,50")
    page.get_by_role("button", name="Vérifier la demande").click()
    expect()(page.locator("#confirm-lines")).to_contain_text("cantine")
    expect()(page.locator("#confirm-lines")).to_contain_text("8,50 €")
    expect()(total).to_have_text("Total à encaisser : 2,00 €")  # the aid is the region's money
    # Nothing written nor queued before « Confirmer ».
    jobs = backend.agent(
        "GET", "/api/v1/desk/jobs", params={"holder_id": holder_id, "reason": "contrôle du test"}
    )
    assert jobs.json() == []
    page.get_by_role("button", name="Confirmer et écrire la carte").click()
    expect()(page.locator("#job-message")).to_have_text("En attente du poste de guichet")
    jobs = backend.agent(
        "GET", "/api/v1/desk/jobs", params={"holder_id": holder_id, "reason": "contrôle du test"}
    )
    (job,) = jobs.json()
    station = backend.agent("GET", f"/api/v1/desk/jobs/{job['id']}")
    assert station.status_code == 200
    with transaction(backend.app.state.sessionmaker) as session:
        from backend.desk.models import DeskJob

        stored = session.get(DeskJob, job["id"])
        assert stored is not None
        request = stored.request
    assert '"wallet_reload_cents":200' in request
    assert '"amount_cents":850' in request
    screenshot(page, "desk-money.png")


# -- lost card ---------------------------------------------------------------------------------
def test_a_lost_card_is_blocked_with_no_blank_card_and_only_a_supervisor_unblocks_it(
    browser: Any, backend: LiveBackend
) -> None:
    holder_id = backend.holder("Lemaire", "Jade")
    serial = registered_card(backend, holder_id)
    page = new_page(browser)
    try:
        login(page, backend)
        search = page.locator("#search-form")
        search.get_by_label("Numéro de carte").fill(serial)
        search.get_by_label("Motif de la consultation").fill("carte perdue déclarée")
        search.get_by_role("button", name="Rechercher").click()
        page.get_by_role("button", name=re.compile("Jade Lemaire")).click()
        cards = page.locator("#cards")
        expect()(cards).to_contain_text(f"Carte n° {serial} — active")
        page.get_by_role("button", name="Carte perdue ou volée : bloquer").click()
        expect()(page.locator("#block-panel")).to_contain_text("mise en opposition tout de suite")
        page.get_by_role("button", name="Confirmer le blocage").click()
        expect()(cards).to_contain_text(f"Carte n° {serial} — bloquée (opposition)")
        expect()(page.get_by_role("button", name="Remplacer par une carte vierge")).to_be_visible()
        expect()(page.get_by_role("button", name="Débloquer")).to_have_count(0)  # an agent
        entries = backend.agent("GET", "/api/v1/deny-lists/entries").json()
        assert serial in {e["card_serial"] for e in entries}
        # The agent cannot unblock through the API either.
        refused = backend.agent(
            "POST", f"/api/v1/cards/{serial}/unblock", json={"reason": "retrouvée"}
        )
        assert refused.status_code == 403
        screenshot(page, "desk-blocked.png")
        page.get_by_role("button", name="Se déconnecter").click()

        login(page, backend, "super1")
        search.get_by_label("Numéro de carte").fill(serial)
        search.get_by_label("Motif de la consultation").fill("carte retrouvée par la titulaire")
        search.get_by_role("button", name="Rechercher").click()
        page.get_by_role("button", name=re.compile("Jade Lemaire")).click()
        page.get_by_role("button", name="Débloquer").click()
        page.locator("#unblock-form").get_by_label("Motif du déblocage").fill(
            "carte retrouvée par la titulaire"
        )
        page.get_by_role("button", name="Confirmer le déblocage").click()
        expect()(cards).to_contain_text(f"Carte n° {serial} — active")
    finally:
        page.context.close()
    entries = backend.agent("GET", "/api/v1/deny-lists/entries").json()
    assert serial not in {e["card_serial"] for e in entries}
    assert audit_rows(backend, "card.block", f"card:{serial}") == [
        ("agent1", "carte perdue ou volée (déclarée au guichet)")
    ]
    assert audit_rows(backend, "card.unblock", f"card:{serial}") == [
        ("super1", "carte retrouvée par la titulaire")
    ]


# -- validation, duplicates, errors in French --------------------------------------------------
def test_holder_validation_duplicates_and_french_errors_beside_the_field(
    page: Any, backend: LiveBackend
) -> None:
    login(page, backend)
    form = page.locator("#holder-form")
    create_holder(page, "   ", "Léo", "2090-01-01")
    expect()(form.locator(".field-error")).to_have_text(
        ["nom obligatoire", "date de naissance dans le futur"]
    )
    create_holder(page, "Roux", "Léo", "1899-12-31")
    expect()(form.locator(".field-error")).to_have_text(["date de naissance antérieure à 1900"])
    expect()(page.locator("#holder-panel")).to_be_hidden()

    create_holder(page, "Roux", "Léo", "2011-03-04")
    expect()(page.locator("#holder-name")).to_have_text("Léo Roux (né·e le 04/03/2011)")
    expect()(page.locator("#duplicate-warning")).to_be_hidden()
    create_holder(page, " roux ", "LÉO", "2011-03-04")
    expect()(page.locator("#duplicate-warning")).to_contain_text("probablement en double")

    # A server refusal (a postcode of four digits) is shown in French beside its field.
    search = page.locator("#search-form")
    search.get_by_label("Code postal").fill("8000")
    search.get_by_label("Motif de la consultation").fill("vérification")
    search.get_by_role("button", name="Rechercher").click()
    expect()(search.locator(".field-error")).to_have_text("format incorrect")
    expect()(page.locator("#error")).to_be_hidden()

    # The school year defaults to the current one, computed from today.
    page.get_by_role("button", name="Émettre une carte").click()
    today = date.today()
    first = today.year if today.month >= 8 else today.year - 1
    assert page.get_by_label("Année scolaire").input_value() == f"{first}-{first + 1}"


def test_api_refusals_are_in_french_and_name_the_field(backend: LiveBackend) -> None:
    future = backend.agent(
        "POST",
        "/api/v1/holders",
        json={"family_name": "Petit", "given_name": "Zoé", "birth_date": "2999-01-01"},
    )
    assert future.status_code == 422
    assert future.json()["fields"] == [
        {"field": "birth_date", "message_fr": "date de naissance dans le futur"}
    ]
    blank = backend.agent("POST", "/api/v1/holders", json={"family_name": " ", "given_name": "Z"})
    assert blank.status_code == 422 and blank.json()["message_fr"] == "nom vide"
    with backend.client() as client:
        price = client.post(
            "/api/v1/products",
            headers=backend.supervisor_headers,
            json={
                "code": 77,
                "fare_product_id": "negatif",
                "name": "Prix négatif",
                "application": "plum",
                "amount_cents": -100,
            },
        )
    assert price.status_code == 422
    body = price.json()
    assert body["message_fr"] == "requête invalide — montant : doit être au moins 0"
    assert body["fields"] == [{"field": "amount_cents", "message_fr": "doit être au moins 0"}]
    bad_types = backend.agent(
        "POST", "/api/v1/desk/jobs", json={"desk_terminal_id": "x", "wallet_reload_cents": "abc"}
    )
    assert bad_types.status_code == 422
    assert "Input should be" not in bad_types.json()["message_fr"]
    assert "rechargement du porte-monnaie : nombre entier attendu" in bad_types.json()["message_fr"]


def test_empty_catalogue_and_station_list_are_explained(browser: Any, tmp_path: Path) -> None:
    with live_backend(tmp_path / "empty") as empty:
        with transaction(empty.app.state.sessionmaker) as session:
            for product in session.scalars(select(Product)):
                product.active = False
            for terminal in session.scalars(select(Terminal)):
                terminal.active = False
        page = new_page(browser)
        try:
            login(page, empty)
            expect()(page.locator("#desk-empty")).to_contain_text(
                "Aucun poste de guichet n'est enregistré"
            )
            create_holder(page, "Henry", "Lina")
            page.get_by_role("button", name="Émettre une carte").click()
            expect()(page.locator("#catalogue-empty")).to_contain_text(
                "Aucun contrat de transport au catalogue"
            )
        finally:
            page.context.close()


# -- search and the holder record --------------------------------------------------------------
def test_search_by_birth_date_serial_and_postcode_and_the_holder_record(
    page: Any, backend: LiveBackend
) -> None:
    made = backend.agent(
        "POST",
        "/api/v1/holders",
        json={
            "family_name": "Moreau",
            "given_name": "Nina",
            "birth_date": "2008-06-15",
            "postal_address": "3 rue des Jacobins, 80000 Amiens",
        },
    )
    holder_id = made.json()["id"]
    serial = registered_card(backend, holder_id)
    login(page, backend)
    search = page.locator("#search-form")
    results = page.locator("#results")
    for label, value in (
        ("Date de naissance", "2008-06-15"),
        ("Numéro de carte", serial.lower()),
        ("Code postal", "80000"),
    ):
        search.locator("input").evaluate_all("els => els.forEach(e => { e.value = ''; })")
        search.get_by_label(label).fill(value)
        search.get_by_label("Motif de la consultation").fill(f"recherche par {label.lower()}")
        search.get_by_role("button", name="Rechercher").click()
        expect()(results).to_contain_text("Nina Moreau (né·e le 15/06/2008)")

    results.get_by_role("button", name=re.compile("Nina Moreau")).click()
    expect()(page.locator("#cards")).to_contain_text(f"Carte n° {serial} — active")
    expect()(page.locator("#cards")).to_contain_text("aucun solde connu")
    expect()(page.locator("#jobs")).to_have_text("Aucune demande")
    # Each lookup under its own reason: the record opened from the postcode search.
    assert audit_rows(backend, "card.list", f"holder:{holder_id}") == [
        ("agent1", "recherche par code postal")
    ]
    assert audit_rows(backend, "desk.jobs", f"holder:{holder_id}") == [
        ("agent1", "recherche par code postal")
    ]

    # Edit the details (audited); the name shown changes.
    page.get_by_text("Modifier les données du titulaire").click()
    edit = page.locator("#edit-form")
    edit.get_by_label("Prénom").fill("Ninon")
    edit.get_by_label("Téléphone").fill("+33 6 12 34 56 78")
    edit.get_by_role("button", name="Enregistrer les modifications").click()
    expect()(page.locator("#holder-name")).to_have_text("Ninon Moreau (né·e le 15/06/2008)")
    holder = backend.agent(
        "GET", f"/api/v1/holders/{holder_id}", params={"reason": "contrôle du test"}
    ).json()
    assert holder["given_name"] == "Ninon" and holder["phone"] == "+33 6 12 34 56 78"
    assert holder["postal_address"] == "3 rue des Jacobins, 80000 Amiens"
    assert len(audit_rows(backend, "holder.update", f"holder:{holder_id}")) == 1

    # A holder created right after a search is audited under the creation, not the search.
    create_holder(page, "Fournier", "Axel")
    expect()(page.locator("#holder-name")).to_have_text("Axel Fournier")
    new_id = page.evaluate("state.holder.id")
    expect()(page.locator("#jobs")).to_have_text("Aucune demande")
    assert audit_rows(backend, "card.list", f"holder:{new_id}") == [
        ("agent1", "création du titulaire au guichet")
    ]
    with transaction(backend.app.state.sessionmaker) as session:
        searches = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "holder.search")
        )
    assert searches and searches >= 3
