"""``/docs`` renders in Debian's Chromium with no network: Swagger UI comes from an installed
package, not a CDN (the page was blank on a machine without Internet access).

The browser resolves no host but 127.0.0.1 and every request to another host is recorded and
refused, so a page that still needed a CDN would stay blank and the test would name the URL.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI

from backend.app import create_app
from backend.settings import Settings
from tests.backend.validation_fixtures import FakeKeys

CHROMIUM = "/usr/bin/chromium"
ARTEFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artefacts"


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-docs", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.integration
def test_docs_render_offline_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    # The pages depend on the routes only: an app on a fresh SQLite database is enough.
    settings = Settings(
        var_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'docs.db'}", jwt_secret="x" * 40
    )
    app = create_app(settings, keys=FakeKeys())

    outside: list[str] = []

    def only_local(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    with _served(app) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        try:
            page = browser.new_page(locale="fr-FR")
            page.route("**/*", only_local)
            page.goto(f"{base}/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                "Carte régionale Hauts-de-France", timeout=20_000
            )
            operation = page.locator(
                ".opblock-summary-path", has_text="/api/v1/holders/{holder_id}"
            )
            expect(operation.first).to_be_visible()
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTEFACTS / "docs-offline.png"))
        finally:
            browser.close()
    assert outside == []
