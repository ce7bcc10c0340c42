"""A SoftHSM2 token for the backend: tests, the demo, and a fresh machine's first start.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the PKCS#11 module is initialised (once per process, until
:func:`unload`). :func:`create_token` writes a configuration whose token folder is inside
``directory``, points ``SOFTHSM2_CONF`` at it and initialises a token with ``softhsm2-util``; the
caller then puts the backend's keys in it (:func:`backend.keys.service.provision_token`).

With ``isolated=True`` (tests), the module is used through a private copy of
``libsofthsm2.so`` in ``directory``: the dynamic loader treats it as another library, with its own
initialisation reading the new ``SOFTHSM2_CONF``, so the token is visible even when another part
of the process (the SAM emulator's tests) already initialised SoftHSM2 with its own folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backend.errors import KeyStoreError

SOFTHSM_LIBRARY_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class SoftHSMToken:
    """Where a token is and how to open it."""

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


def random_pin() -> str:
    """A random PIN (128 bits, URL-safe text) for a token made here."""
    return secrets.token_urlsafe(16)


def save_pins(path: Path, user_pin: str, so_pin: str) -> None:
    """Write the PINs of an auto-created token to ``path``, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        json.dump({"user_pin": user_pin, "so_pin": so_pin}, handle)
        handle.write("\n")


def load_user_pin(path: Path) -> str:
    """The user PIN saved by :func:`save_pins`.

    Raises:
        KeyStoreError: the file is missing or unreadable.
    """
    try:
        return str(json.loads(path.read_text(encoding="ascii"))["user_pin"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(
            f"PIN du jeton SoftHSM2 illisible ({path}) : donnez REGIONCARD_PKCS11_USER_PIN",
            f"cannot read the SoftHSM2 token PIN ({path}): set REGIONCARD_PKCS11_USER_PIN",
        ) from exc


def write_config(directory: Path) -> Path:
    """Write ``directory/softhsm2.conf`` (tokens in ``directory/tokens``) and return its path."""
    tokens = Path(directory) / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = Path(directory) / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    return config


def create_token(
    directory: Path,
    *,
    label: str = "regioncard-backend",
    user_pin: str | None = None,
    so_pin: str | None = None,
    isolated: bool = False,
) -> SoftHSMToken:
    """Initialise an empty SoftHSM2 token under ``directory``; sets ``SOFTHSM2_CONF``.

    Args:
        directory: folder for the configuration and the token.
        label: token label.
        user_pin: user PIN; random (:func:`random_pin`) when not given, never a fixed value.
        so_pin: security officer PIN; random when not given.
        isolated: load SoftHSM2 through a private copy of its module (see the module docstring).

    Raises:
        KeyStoreError: SoftHSM2 is not installed or the token cannot be created.
    """
    user_pin = user_pin or random_pin()
    so_pin = so_pin or random_pin()
    library = find_library()
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        raise KeyStoreError(
            "SoftHSM2 absent (paquet Debian softhsm2)",
            "SoftHSM2 is not installed (Debian package softhsm2)",
        )
    config = write_config(directory)
    os.environ["SOFTHSM2_CONF"] = str(config)
    result = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", user_pin],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOFTHSM2_CONF": str(config)},
    )
    if result.returncode != 0:
        raise KeyStoreError(
            "création du jeton SoftHSM2 impossible",
            f"softhsm2-util failed: {result.stderr.strip()}",
        )
    if isolated:
        private = Path(directory) / "libsofthsm2-private.so"
        shutil.copyfile(library, private)
        library = str(private)
    return SoftHSMToken(library=library, label=label, user_pin=user_pin, config=config)


def unload(library: str) -> None:
    """Finalise and unload a PKCS#11 module so the next use re-reads ``SOFTHSM2_CONF``.

    Tests call it when they are done with their token, so later tests of the same process (the
    SAM emulator's) can point SoftHSM2 at their own token folder.
    """
    import pkcs11

    with contextlib.suppress(KeyError, pkcs11.PKCS11Error, RuntimeError):
        pkcs11.unload(library)
