"""The holder's page in a real browser: Debian's chromium driven by Playwright, the backend on
uvicorn (the desk's live-backend kit), and for the OIDC sign-in a real OpenID Connect provider
process (panva's ``oidc-provider`` under node, ``oidckit.py``).

The holder opens their page with the desk's one-time code, sees their balances « au dernier
passage du … », who consulted their data and the school menu; buys a pass and sees it waiting for
the next tap (and the backend's action list for the card holds it); opts in to keeping their
trips and downloads their data; is refused another holder's
card; blocks their lost card after a confirmation (and the deny-list holds it); signs in again
with the password. Screenshots go to ``out/test-artefacts/``. Chromium or node missing is a skip,
which fails in CI.

Not here: the pass « written after a tap at an emulated gate ». Gates do not pull action lists
yet (issue 13, section 1); the page and the backend's action list are checked instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from deskkit import DESK_ID, LiveBackend, live_backend
from holderkit import PASS_CODE, activation_code, add_products, make_person, ok, sign_up
from sqlalchemy import select

from backend.db import transaction
from backend.holderpage.models import HolderAccount
from backend.holderpage.settings import HolderSettings

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
ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "out" / "test-artefacts"
MENU_FILE = ROOT / "terminal" / "canteen" / "data" / "menus.json"
PASSWORD = "un mot de passe solide"


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")


def _browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def _fetch_as_page(page: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """Call the API from the page with the holder's own token, as a curious holder would."""
    return dict(
        page.evaluate(
            """async ([method, path, body]) => {
                 const token = sessionStorage.getItem('regioncard.holder.token');
                 const answer = await fetch(path, {method, headers: {
                   'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'},
                   body: body === null ? undefined : JSON.stringify(body)});
                 return {status: answer.status, text: await answer.text()};
               }""",
            [method, path, body],
        )
    )


def test_holder_page_sign_in_see_buy_refused_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    with live_backend(tmp_path / "backend") as backend, backend.client() as client:
        backend.app.state.holder_settings = HolderSettings(menu_file=MENU_FILE)
        add_products(client, backend.supervisor_headers)
        ines = make_person(
            client,
            backend.app,
            backend.agent_headers,
            given_name="Inès",
            family_name="Lefebvre",
            birth_date="2008-05-14",
            desk_id=DESK_ID,
        )
        marc = make_person(
            client,
            backend.app,
            backend.agent_headers,
            given_name="Marc",
            family_name="Dubois",
            birth_date="1990-02-01",
            seen=False,
        )
        code = activation_code(client, backend.agent_headers, ines.holder_id)
        with sync_playwright() as playwright:
            browser = _browser(playwright)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="fr-FR")
                shots = run_page(page, expect, backend, client, code, ines, marc)
            finally:
                browser.close()
    with capsys.disabled():
        print(f"\ncaptures d'écran de l'espace titulaire (test artefacts) : {shots}")


def run_page(
    page: Any, expect: Any, backend: LiveBackend, client: Any, code: str, ines: Any, marc: Any
) -> list[Path]:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(backend.url + "/holder/")
    expect(page.get_by_role("heading", name="Connexion", exact=True)).to_be_visible()
    expect(page.locator("#oidc")).to_be_hidden()  # no OIDC provider configured here

    # First connection with the desk's one-time code.
    activate = page.locator("#activate-form")
    activate.get_by_label("Code remis au guichet").fill(code)
    activate.get_by_label("Adresse e-mail (votre identifiant)").fill("ines@example.fr")
    activate.get_by_label("Mot de passe (10 caractères au moins)").fill(PASSWORD)
    activate.get_by_role("button", name="Activer mon espace").click()
    expect(page.locator("#who")).to_have_text("Connecté : Inès Lefebvre")

    card = page.locator(f"article[data-serial='{ines.serial}']")
    expect(card).to_contain_text("Porte-monnaie : 12,50 €")
    expect(card).to_contain_text("Aide livres et matériel : 32,00 €")
    # 07:42 UTC on 27 November 2026 is 08:42 in Paris.
    expect(card).to_contain_text("Soldes au dernier passage du 27/11/2026 08:42")
    expect(card).to_contain_text("En attente du prochain passage")
    expect(page.locator("#consultations")).to_contain_text("demande de duplicata au guichet")
    expect(page.locator("#consultations")).to_contain_text(
        "consultation de votre dossier au guichet"
    )
    expect(page.locator("#aid")).to_contain_text("Livres et matériel")
    expect(page.locator("#rights")).to_contain_text("Mission locale")
    expect(page.locator("#menu")).to_contain_text("Lycée de la Somme")
    expect(page.locator("#menu")).to_contain_text("allergènes")
    first = ARTEFACTS / "holder-overview.png"
    page.screenshot(path=str(first), full_page=True)

    # Buy a monthly pass online (sandbox provider): it waits for the next tap.
    buy = page.locator("#buy-form")
    buy.get_by_label("Produit").select_option(str(PASS_CODE))
    buy.get_by_label("Paiement (bac à sable : aucun argent ne circule)").select_option("sandbox-ok")
    buy.get_by_role("button", name="Payer").click()
    expect(page.locator("#buy-message")).to_contain_text("Paiement accepté")
    expect(card).to_contain_text("Titre de transport : Abonnement mensuel PLUM")
    actions = ok(
        client.get(f"/api/v1/action-lists/cards/{ines.serial}", headers=backend.agent_headers)
    )
    pending_pass = [a for a in actions if a["kind"] == "load_contract" and a["status"] == "pending"]
    assert len(pending_pass) == 1, actions
    # A declined test card sells nothing.
    buy.get_by_label("Paiement (bac à sable : aucun argent ne circule)").select_option(
        "sandbox-declined"
    )
    buy.get_by_role("button", name="Payer").click()
    expect(page.locator("#buy-message")).to_contain_text("paiement refusé")
    second = ARTEFACTS / "holder-purchase.png"
    page.screenshot(path=str(second), full_page=True)

    # Keep one's own trips from now on (default: off), and download one's data.
    page.get_by_label("Conserver mon historique de trajets").check()
    expect(page.locator("#message")).to_have_text("Votre historique de trajets sera conservé.")
    expect(page.locator("#trips")).to_contain_text("aucun trajet pour l'instant")
    with page.expect_download() as download:
        page.get_by_role("button", name="Télécharger mes données (JSON)").click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["holder"]["family_name"] == "Lefebvre"
    assert exported["trip_history"]["keep"] is True
    assert marc.serial not in json.dumps(exported)

    # Another holder's card and page: unknown, nothing about them comes back.
    for method, path, body in (
        ("POST", f"/api/v1/holder/cards/{marc.serial}/block", {"confirm": True}),
        ("GET", f"/api/v1/holder/me?holder_id={marc.holder_id}", None),
        (
            "POST",
            "/api/v1/holder/purchases",
            {"card_serial": marc.serial, "product_code": PASS_CODE, "payment_means": "sandbox-ok"},
        ),
    ):
        answer = _fetch_as_page(page, method, path, body)
        assert answer["status"] == 404, answer
        assert "Dubois" not in answer["text"] and "Marc" not in answer["text"]
    marc_card = ok(
        client.get(
            f"/api/v1/cards/{marc.serial}",
            params={"reason": "vérification du test"},
            headers=backend.agent_headers,
        )
    )
    assert marc_card["status"] == "active"

    # Block the lost card, after the confirmation dialog.
    card.get_by_role("button", name="Carte perdue ou volée : bloquer").click()
    dialog = page.locator("#block-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(ines.serial)
    dialog.get_by_role("button", name="Oui, bloquer la carte").click()
    expect(page.locator("#message")).to_contain_text(f"Carte {ines.serial} bloquée")
    expect(card.locator("h3")).to_contain_text("bloquée")
    entries = ok(client.get("/api/v1/deny-lists/entries", headers=backend.agent_headers))
    assert ines.serial in str(entries)
    third = ARTEFACTS / "holder-blocked.png"
    page.screenshot(path=str(third), full_page=True)

    # Sign out, then sign in with the password chosen at activation.
    page.get_by_role("button", name="Se déconnecter").click()
    login = page.locator("#login-form")
    login.get_by_label("Identifiant (adresse e-mail)").fill("ines@example.fr")
    login.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    login.get_by_role("button", name="Se connecter").click()
    expect(page.locator("#message")).to_have_text("identifiant ou mot de passe incorrect")
    login.get_by_label("Mot de passe").fill(PASSWORD)
    login.get_by_role("button", name="Se connecter").click()
    expect(page.locator("#who")).to_have_text("Connecté : Inès Lefebvre")
    return [first, second, third]


def test_oidc_sign_in_against_a_real_provider(tmp_path: Path) -> None:
    _need_chromium()
    from oidckit import ProviderUnavailable, oidc_provider
    from playwright.sync_api import expect, sync_playwright

    with live_backend(tmp_path / "backend") as backend, backend.client() as client:
        ines = make_person(
            client,
            backend.app,
            backend.agent_headers,
            given_name="Inès",
            family_name="Lefebvre",
            birth_date="2008-05-14",
            seen=False,
        )
        accounts = {
            # FranceConnect spells names as the civil registry does: upper case, all given names.
            "ines-fc": {
                "given_name": "Inès Marie",
                "family_name": "LEFEBVRE",
                "birthdate": "2008-05-14",
                "email": "ines@example.fr",
            },
            "inconnu-fc": {
                "given_name": "Paul",
                "family_name": "Inconnu",
                "birthdate": "1970-01-01",
                "email": "paul@example.fr",
            },
        }
        try:
            provider_cm = oidc_provider(backend.url + "/holder/oidc/callback", accounts)
            provider = provider_cm.__enter__()
        except ProviderUnavailable as exc:
            pytest.skip(str(exc))
        try:
            backend.app.state.holder_settings = HolderSettings(
                oidc_issuer=provider.issuer,
                oidc_client_id=provider.client_id,
                oidc_client_secret=provider.client_secret,
                oidc_redirect_uri=backend.url + "/holder/oidc/callback",
            )
            with sync_playwright() as playwright:
                browser = _browser(playwright)
                try:
                    for login, expected in (
                        ("inconnu-fc", None),
                        ("ines-fc", "Connecté : Inès Lefebvre"),
                    ):
                        # A fresh browser each time: no provider session left from the last one.
                        context = browser.new_context(
                            viewport={"width": 1200, "height": 900}, locale="fr-FR"
                        )
                        page = context.new_page()
                        page.goto(backend.url + "/holder/")
                        page.get_by_role("link", name="Se connecter avec FranceConnect").click()
                        # The provider's own login and consent pages (devInteractions).
                        page.locator("input[name=login]").fill(login)
                        page.locator("input[name=password]").fill("n'importe")
                        page.locator("button[type=submit]").click()
                        page.locator("button[type=submit]").click()  # consent: « Continue »
                        page.wait_for_url(backend.url + "/holder/**")
                        if expected is None:
                            expect(page.locator("#message")).to_contain_text(
                                "aucun dossier ne correspond à cette identité"
                            )
                            expect(page.locator("#app")).to_be_hidden()
                        else:
                            expect(page.locator("#who")).to_have_text(expected)
                            expect(
                                page.locator(f"article[data-serial='{ines.serial}']")
                            ).to_be_visible()
                    ARTEFACTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(ARTEFACTS / "holder-oidc.png"), full_page=True)
                finally:
                    browser.close()
        finally:
            provider_cm.__exit__(None, None, None)
        with transaction(backend.app.state.sessionmaker) as session:
            linked = session.scalar(
                select(HolderAccount).where(HolderAccount.holder_id == ines.holder_id)
            )
            assert linked is not None and linked.oidc_sub == "ines-fc"
            assert linked.oidc_issuer == provider.issuer and linked.password_hash is None


def test_a_guardian_switches_to_a_minors_page(tmp_path: Path) -> None:
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    with live_backend(tmp_path / "backend") as backend, backend.client() as client:
        agent = backend.agent_headers
        parent = make_person(
            client,
            backend.app,
            agent,
            given_name="Sophie",
            family_name="Roux",
            birth_date="1980-03-03",
            seen=False,
        )
        child = make_person(
            client,
            backend.app,
            agent,
            given_name="Lucas",
            family_name="Roux",
            birth_date="2014-06-06",
        )
        sign_up(client, agent, parent.holder_id, "sophie@example.fr", PASSWORD)
        ok(
            client.post(
                "/api/v1/holder/guardians",
                json={
                    "guardian_holder_id": parent.holder_id,
                    "ward_holder_id": child.holder_id,
                    "reason": "livret de famille présenté",
                },
                headers=agent,
            ),
            201,
        )
        with sync_playwright() as playwright:
            browser = _browser(playwright)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="fr-FR")
                page.goto(backend.url + "/holder/")
                login = page.locator("#login-form")
                login.get_by_label("Identifiant (adresse e-mail)").fill("sophie@example.fr")
                login.get_by_label("Mot de passe").fill(PASSWORD)
                login.get_by_role("button", name="Se connecter").click()
                expect(page.locator("#who")).to_have_text("Connecté : Sophie Roux")
                expect(page.locator(f"article[data-serial='{parent.serial}']")).to_be_visible()
                page.get_by_label("Espace de").select_option(str(child.holder_id))
                ward_card = page.locator(f"article[data-serial='{child.serial}']")
                expect(ward_card).to_contain_text("Porte-monnaie : 12,50 €")
                expect(page.locator(f"article[data-serial='{parent.serial}']")).to_have_count(0)
                ARTEFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTEFACTS / "holder-guardian.png"), full_page=True)
            finally:
                browser.close()
