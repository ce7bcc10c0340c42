"""Project-wide test configuration.

In CI (``CI`` set), a test that skips because a real component is missing is a defect: the skip is
turned into a failure, so a green run always means every integration test really ran.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = Path(__file__).resolve().parent / "data"
IN_CI = bool(os.environ.get("CI"))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--slow``: the long variants (more model-based examples of the validation loop)."""
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="run the long variants (e.g. thousands of model-based loop examples)",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which counts as a failure: {reason}"


@pytest.fixture(scope="session")
def shared_vectors() -> dict[str, Any]:
    """The public vectors of ../shared/vectors (NIST SP 800-38B, NXP AN10922)."""
    path = SHARED / "vectors" / "aes-cmac-and-diversification.json"
    if not path.exists():
        path = DATA / "vectors" / "aes-cmac-and-diversification.json"
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def pcsc_stack() -> Generator[Any, None, None]:
    """A private pcscd with the vpcd driver (two readers: card slot, SAM slot), for the session.

    Started through :class:`hardware.pcsc_stack.PCSCStack` on its own socket and reader config (a
    system pcscd is left alone), stopped at the end of the session. Skips (a failure in CI) when
    the Debian packages pcscd / vsmartcard-vpcd are missing.
    """
    from hardware.pcsc_stack import PCSCStack, PCSCStackError

    stack = PCSCStack()
    try:
        stack.start()
    except PCSCStackError as exc:
        pytest.skip(f"no pcscd + vpcd: {exc}")
    try:
        yield stack
    finally:
        stack.stop()
