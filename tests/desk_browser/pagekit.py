"""Helpers of the browser tests: Debian's chromium through Playwright, logging in, screenshots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

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


def require_chromium() -> None:
    """Skip (a failure in CI, see tests/conftest.py) when Debian's chromium is missing."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is not installed (apt-get install chromium)")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium (fr-FR pages are opened with :func:`new_page`)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any) -> Any:
    """A fresh French page (its own context: no storage shared with other pages)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="fr-FR")
    return context.new_page()


def screenshot(page: Any, name: str) -> Path:
    """Keep a screenshot in ``out/test-artefacts/`` (git-ignored)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
