"""Reader profiles: which reader, how each stack names it, and what the host needs for it.

One JSON file per reader model in this folder (``acr122u.json``, ``omnikey5022.json``,
``pn532_uart.json``), plus the udev rules (``99-regioncard-readers.rules``) and the validator's
systemd unit (``regioncard-validator.service``) that deployments copy to the host.

Profile fields:

==================  ============================================================================
field               meaning
==================  ============================================================================
``id``              file stem, used on the command line
``name``            model name
``usb``             ``{"vendor", "product"}`` as lsusb shows them, or ``null`` (UART reader)
``pcsc``            ``{"reader_pattern", "driver"}`` when pcscd can drive it (pattern for
                    ``firmware_host.readers.pcsc.PCSCReader``), else ``null``
``nfcpy``           ``{"path"}`` for ``firmware_host.readers.nfc.NFCReader``, else ``null``
``udev_rules``      rules file in this folder that gives the ``regioncard`` group access
``notes``           what an installer must know (kernel modules, groups)
==================  ============================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from card_schema.errors import RegionCardError

PROFILE_DIR = Path(__file__).resolve().parent


class ProfileError(RegionCardError):
    """A reader profile is missing or malformed."""


@dataclass(frozen=True)
class ReaderProfile:
    """One reader model (see the module table for the fields)."""

    id: str
    name: str
    kind: str
    usb: dict[str, str] | None
    pcsc: dict[str, str] | None
    nfcpy: dict[str, Any] | None
    udev_rules: str
    notes: tuple[str, ...] = ()
    serial: dict[str, Any] | None = field(default=None)

    @property
    def reader_specs(self) -> list[str]:
        """Specs for ``firmware_host.readers.open_reader``, preferred first."""
        specs = []
        if self.pcsc:
            specs.append(f"pcsc:{self.pcsc['reader_pattern']}")
        if self.nfcpy:
            specs.append(f"nfc:{self.nfcpy['path']}")
        return specs

    @property
    def udev_rules_path(self) -> Path:
        return PROFILE_DIR / self.udev_rules


def load_profile(profile_id: str) -> ReaderProfile:
    """Read ``<profile_id>.json``.

    Raises:
        ProfileError: no such profile, or a field is missing or wrong.
    """
    path = PROFILE_DIR / f"{profile_id}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        profile = ReaderProfile(
            id=doc["id"],
            name=doc["name"],
            kind=doc["kind"],
            usb=doc.get("usb"),
            pcsc=doc.get("pcsc"),
            nfcpy=doc.get("nfcpy"),
            udev_rules=doc["udev_rules"],
            notes=tuple(doc.get("notes", ())),
            serial=doc.get("serial"),
        )
    except FileNotFoundError:
        raise ProfileError(f"no reader profile {profile_id!r} in {PROFILE_DIR}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ProfileError(f"reader profile {path.name}: {exc}") from exc
    if profile.id != profile_id:
        raise ProfileError(f"reader profile {path.name} says id {profile.id!r}")
    if not profile.udev_rules_path.exists():
        raise ProfileError(f"reader profile {profile_id}: no rules file {profile.udev_rules}")
    if not profile.reader_specs:
        raise ProfileError(f"reader profile {profile_id}: neither PC/SC nor nfcpy can drive it")
    return profile


def all_profiles() -> list[ReaderProfile]:
    """Every profile of this folder, by id."""
    return [load_profile(path.stem) for path in sorted(PROFILE_DIR.glob("*.json"))]
