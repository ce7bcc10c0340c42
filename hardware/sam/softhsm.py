"""A throw-away SoftHSM2 token for tests and the demo: the real PKCS#11 path, no hardware HSM.

SoftHSM2 reads its configuration from ``SOFTHSM2_CONF`` when the PKCS#11 module is initialised, so
:func:`create_token` writes a configuration whose token directory is inside ``directory``, points
``SOFTHSM2_CONF`` at it, and initialises a token with ``softhsm2-util``. The module is initialised
once per process: create every token of a process in the same directory (tests use one
session-wide token).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hardware.sam.keystore import KeyStoreError, import_into_token

SOFTHSM_LIBRARY_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class SoftHSMToken:
    """Where a created token is and how to open it."""

    library: str
    label: str
    user_pin: str
    config: Path


def find_library() -> str | None:
    """Path of the SoftHSM2 PKCS#11 module, or ``None`` when SoftHSM2 is not installed."""
    for candidate in SOFTHSM_LIBRARY_PATHS:
        if Path(candidate).exists():
            return candidate
    return None


def create_token(
    directory: Path,
    *,
    label: str = "regioncard-sam",
    user_pin: str = "1234",
    so_pin: str = "12345678",
    master_keys: dict[str, bytes] | None = None,
) -> SoftHSMToken:
    """Initialise a SoftHSM2 token under ``directory`` and import ``master_keys`` into it.

    Sets ``SOFTHSM2_CONF`` in this process's environment.

    Raises:
        KeyStoreError: SoftHSM2 is not installed or the token cannot be created.
    """
    library = find_library()
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        raise KeyStoreError("SoftHSM2 is not installed (Debian package softhsm2)")
    tokens = Path(directory) / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    config = Path(directory) / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(config)
    result = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", user_pin],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOFTHSM2_CONF": str(config)},
    )
    if result.returncode != 0:
        raise KeyStoreError(f"softhsm2-util failed: {result.stderr.strip()}")
    if master_keys:
        import_into_token(library, label, user_pin, master_keys)
    return SoftHSMToken(library=library, label=label, user_pin=user_pin, config=config)
