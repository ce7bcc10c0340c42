"""On-disk storage of the pushed tables a terminal accepted: atomic, durable JSON documents.

:class:`TableStore` is a directory holding one JSON document per table (``tariff.json``,
``deny_list.json``). It knows nothing of signatures: :class:`terminal.fares.signed.PushedTables`
puts in it only the signed envelopes it has verified, and verifies them again when it reads them
back at start. What it stores is never trusted because it was stored.

A write is atomic and durable (a power cut leaves the old document or the new one, never a mix):

1. the document is written to ``<name>.tmp`` in the same directory, every byte;
2. ``fsync`` of that temporary file, so its bytes are on the disk;
3. ``os.replace`` of the temporary file over ``<name>`` (atomic on POSIX);
4. ``fsync`` of the directory, so the rename itself survives.

A torn temporary file is never renamed: it is truncated by the next write and removed when the
store opens. A document found bad is set aside as ``<name>.refused`` (then ``<name>.1.refused``,
...), never deleted: supervision can look at it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from terminal.fares.errors import FareError

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
REFUSED_SUFFIX = ".refused"


class TableStoreError(FareError):
    """A stored document cannot be read (I/O error, not JSON)."""


class TableStore:
    """A directory of JSON documents written atomically and durably.

    Attributes:
        directory: where the documents live (created, with its parent synced, when missing).
    """

    def __init__(self, directory: Path | str) -> None:
        """Open (or create) the store and remove the temporary files a power cut left behind.

        Raises:
            OSError: the directory cannot be created.
        """
        self.directory = Path(directory)
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True)
            _fsync_directory(self.directory.parent)
        for torn in self.directory.glob(f"*{TEMP_SUFFIX}"):
            log.info("removing %s, a write that a power cut interrupted (never used)", torn)
            with contextlib.suppress(OSError):
                torn.unlink()

    def __repr__(self) -> str:
        return f"TableStore({str(self.directory)!r})"

    def path(self, name: str) -> Path:
        """Where the document ``name`` lives."""
        return self.directory / name

    def read(self, name: str) -> Any | None:
        """The document ``name`` decoded from JSON, or ``None`` when there is none.

        Raises:
            TableStoreError: the file exists but cannot be read or is not JSON.
        """
        path = self.path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise TableStoreError(f"cannot read {path}: {exc}") from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise TableStoreError(f"{path} is not JSON: {exc}") from exc

    def write(self, name: str, document: Any) -> None:
        """Replace the document ``name``, atomically and durably (see the module docstring).

        Raises:
            OSError: the write failed (disk full, read-only, I/O error); the previous document
                is still there, whole, and the temporary file is removed.
        """
        data = (json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()
        path = self.path(name)
        temp = path.with_name(path.name + TEMP_SUFFIX)
        try:
            _write_synced(temp, data)
            os.replace(temp, path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_directory(self.directory)

    def set_aside(self, name: str) -> Path:
        """Rename the document ``name`` to the first free ``<name>[.N].refused`` and return it.

        Raises:
            OSError: the rename failed.
        """
        path = self.path(name)
        aside = path.with_name(path.name + REFUSED_SUFFIX)
        number = 0
        while aside.exists():
            number += 1
            aside = path.with_name(f"{path.name}.{number}{REFUSED_SUFFIX}")
        os.replace(path, aside)
        _fsync_directory(self.directory)
        return aside


def _write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (created or truncated) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make the names in ``directory`` (a rename, a new file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
