"""The till's screen: what the cashier and the pupil read, in French.

A screen is anything with ``show(lines)``. :class:`StreamScreen` prints to a text stream (the
CLI, a serial console); a kiosk UI or a customer display implements the same one method.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Protocol, TextIO


class Screen(Protocol):
    """Where the till shows its lines (decision, receipt, menu)."""

    def show(self, lines: Sequence[str]) -> None:
        """Replace what the screen shows with ``lines``."""
        ...


class StreamScreen:
    """A screen printed on a text stream, one block per update, separated by a rule."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 72) -> None:
        self.stream = stream or sys.stdout
        self.width = width

    def show(self, lines: Sequence[str]) -> None:
        """Print ``lines`` under a horizontal rule and flush."""
        self.stream.write("─" * self.width + "\n")
        for line in lines:
            self.stream.write(line + "\n")
        self.stream.flush()


class RecordingScreen:
    """A screen that keeps every update (tests, demos)."""

    def __init__(self) -> None:
        self.shown: list[list[str]] = []

    def show(self, lines: Sequence[str]) -> None:
        """Keep ``lines``."""
        self.shown.append(list(lines))

    @property
    def last(self) -> list[str]:
        """The lines shown last (empty before the first update)."""
        return self.shown[-1] if self.shown else []
