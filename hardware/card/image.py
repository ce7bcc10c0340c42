"""The card image: everything a card's EEPROM holds, and its atomic persistence as a JSON file.

The image is what survives power: serial, transaction counter, ratification flag, and per
application its invalidation flag, its diversified keys with their versions (KVC), the records of
every file the layout declares, and the stored-value balance and SV transaction number.

Persistence is atomic (anti-tearing at the storage level): the new image is written to a temporary
file next to the image, fsynced, renamed over the image with ``os.replace``, then the directory is
fsynced. A fault hook, called before each step, lets tests cut the power anywhere in the commit.
The image file holds card keys, like a real card's memory: it is created with mode 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from card_schema.crypto import KeyRole
from card_schema.errors import RegionCardError
from card_schema.layout import CARD_LAYOUT, CardLayout
from hardware.icc import ChipPowerLost

FORMAT = "regioncard-card-image/1"
TRANSACTION_COUNTER_MAX = 0xFFFFFF  # 3 bytes; Calypso counts down from here, 0 means worn out
SV_BALANCE_MIN = 0  # the purse never goes negative (no overdraft on this card)
SV_BALANCE_MAX = 0x7FFFFF  # 3 bytes signed


class CardImageError(RegionCardError):
    """A card image file is missing, unreadable or does not fit the card layout."""


class PowerCut(ChipPowerLost):
    """The power was cut (fault injection): no response, the command may have reached the card."""


class CommitStep(Enum):
    """Points of an atomic commit where a fault hook may cut the power (before the step runs)."""

    WRITE_TEMP = "write_temp"  # nothing written yet
    PARTIAL_TEMP = "partial_temp"  # half of the temporary file written
    FSYNC_TEMP = "fsync_temp"  # temporary file written, not yet synced
    REPLACE = "replace"  # temporary file synced, not yet renamed over the image
    FSYNC_DIR = "fsync_dir"  # renamed, directory not yet synced
    DONE = "done"  # everything durable


CommitHook = Callable[[CommitStep], None]


@dataclass
class CardKey:
    """One diversified key of an application, with its version (KVC)."""

    kvc: int
    key: bytes


@dataclass
class ApplicationImage:
    """What one application (DF) holds."""

    invalidated: bool = False
    keys: dict[KeyRole, CardKey] = field(default_factory=dict)
    records: dict[str, list[bytes]] = field(default_factory=dict)
    sv_balance: int = 0
    sv_tnum: int = 0


@dataclass
class CardImage:
    """The whole card memory."""

    serial: bytes
    transaction_counter: int = TRANSACTION_COUNTER_MAX
    ratified: bool = True
    applications: dict[str, ApplicationImage] = field(default_factory=dict)

    @classmethod
    def blank(cls, serial: bytes, layout: CardLayout = CARD_LAYOUT) -> CardImage:
        """A card fresh from the factory: every record zero, no key, full transaction counter."""
        if len(serial) != layout.serial_size:
            raise CardImageError(f"a card serial is {layout.serial_size} bytes, got {len(serial)}")
        apps = {
            app.name: ApplicationImage(
                records={f.name: [bytes(f.record_size)] * f.record_count for f in app.files}
            )
            for app in layout.applications
        }
        return cls(serial=serial, applications=apps)

    def copy(self) -> CardImage:
        """A deep copy (bytes are immutable, so the record lists and key entries are what is
        copied); the session's working copy is made at every open, so this stays cheap."""
        return CardImage(
            serial=self.serial,
            transaction_counter=self.transaction_counter,
            ratified=self.ratified,
            applications={
                name: ApplicationImage(
                    invalidated=app.invalidated,
                    keys={role: CardKey(k.kvc, k.key) for role, k in app.keys.items()},
                    records={f: list(records) for f, records in app.records.items()},
                    sv_balance=app.sv_balance,
                    sv_tnum=app.sv_tnum,
                )
                for name, app in self.applications.items()
            },
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON document of the image (keys in hex: the file is as secret as the card)."""
        return {
            "format": FORMAT,
            "serial": self.serial.hex(),
            "transaction_counter": self.transaction_counter,
            "ratified": self.ratified,
            "applications": {
                name: {
                    "invalidated": app.invalidated,
                    "keys": {
                        role.value: {"kvc": k.kvc, "key": k.key.hex()}
                        for role, k in sorted(app.keys.items(), key=lambda item: item[0].value)
                    },
                    "records": {f: [r.hex() for r in recs] for f, recs in app.records.items()},
                    "sv": {"balance": app.sv_balance, "tnum": app.sv_tnum},
                }
                for name, app in self.applications.items()
            },
        }

    @classmethod
    def from_json(cls, doc: Any, layout: CardLayout = CARD_LAYOUT) -> CardImage:
        """Rebuild and validate an image against ``layout``.

        Raises:
            CardImageError: the document is not a valid image for this layout.
        """
        try:
            if doc["format"] != FORMAT:
                raise CardImageError(f"unknown card image format {doc['format']!r}")
            image = cls(
                serial=bytes.fromhex(doc["serial"]),
                transaction_counter=int(doc["transaction_counter"]),
                ratified=bool(doc["ratified"]),
            )
            for app_layout in layout.applications:
                raw = doc["applications"][app_layout.name]
                app = ApplicationImage(
                    invalidated=bool(raw["invalidated"]),
                    keys={
                        KeyRole(role): CardKey(int(k["kvc"]), bytes.fromhex(k["key"]))
                        for role, k in raw["keys"].items()
                    },
                    records={
                        f: [bytes.fromhex(r) for r in recs] for f, recs in raw["records"].items()
                    },
                    sv_balance=int(raw["sv"]["balance"]),
                    sv_tnum=int(raw["sv"]["tnum"]),
                )
                image.applications[app_layout.name] = app
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CardImageError(f"malformed card image: {exc!r}") from exc
        image.validate(layout)
        return image

    def validate(self, layout: CardLayout = CARD_LAYOUT) -> None:
        """Check the image against the layout.

        Raises:
            CardImageError: a file, record, key or value does not fit.
        """
        if len(self.serial) != layout.serial_size:
            raise CardImageError("wrong serial size")
        if not 0 <= self.transaction_counter <= TRANSACTION_COUNTER_MAX:
            raise CardImageError("transaction counter out of range")
        if set(self.applications) != {a.name for a in layout.applications}:
            raise CardImageError("applications do not match the card layout")
        for app_layout in layout.applications:
            app = self.applications[app_layout.name]
            if set(app.records) != {f.name for f in app_layout.files}:
                raise CardImageError(f"{app_layout.name}: files do not match the card layout")
            for f in app_layout.files:
                recs = app.records[f.name]
                if len(recs) != f.record_count or any(len(r) != f.record_size for r in recs):
                    raise CardImageError(f"{app_layout.name}.{f.name}: wrong records")
            for k in app.keys.values():
                if len(k.key) != 16 or not 0 <= k.kvc <= 0xFF:
                    raise CardImageError(f"{app_layout.name}: bad key")
            if not SV_BALANCE_MIN <= app.sv_balance <= SV_BALANCE_MAX:
                raise CardImageError(f"{app_layout.name}: SV balance out of range")
            if not 0 <= app.sv_tnum <= 0xFFFF:
                raise CardImageError(f"{app_layout.name}: SV transaction number out of range")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class CardImageStore:
    """The image file of one card, read at power-on and replaced atomically at every commit.

    Args:
        path: the image file.
        layout: the card layout images are checked against.
        commit_hook: called before each :class:`CommitStep`; raising :class:`PowerCut` from it
            stops the commit there, as a power cut would.
    """

    def __init__(
        self,
        path: Path,
        *,
        layout: CardLayout = CARD_LAYOUT,
        commit_hook: CommitHook | None = None,
    ) -> None:
        self.path = Path(path)
        self.layout = layout
        self.commit_hook = commit_hook

    @property
    def temp_path(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> CardImage:
        """Read the image; a temporary file left by a cut commit is ignored and removed.

        Raises:
            CardImageError: no image, or an invalid one.
        """
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CardImageError(f"no card image at {self.path}") from exc
        except (OSError, ValueError) as exc:
            raise CardImageError(f"cannot read card image {self.path}: {exc}") from exc
        return CardImage.from_json(doc, self.layout)

    def commit(self, image: CardImage) -> None:
        """Replace the image file with ``image``, atomically.

        Raises:
            PowerCut: the commit hook cut the power; the file holds either the old or the new image.
        """
        payload = (json.dumps(image.to_json(), indent=1, sort_keys=True) + "\n").encode()
        self._step(CommitStep.WRITE_TEMP)
        fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            half = len(payload) // 2
            _write_all(fd, payload[:half])
            self._step(CommitStep.PARTIAL_TEMP)
            _write_all(fd, payload[half:])
            self._step(CommitStep.FSYNC_TEMP)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._step(CommitStep.REPLACE)
        os.replace(self.temp_path, self.path)
        self._step(CommitStep.FSYNC_DIR)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._step(CommitStep.DONE)

    def _step(self, step: CommitStep) -> None:
        if self.commit_hook is not None:
            self.commit_hook(step)
