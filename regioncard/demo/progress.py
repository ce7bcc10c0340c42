"""A tiny progress display for the demo: a bar redrawn with ``\\r`` on a terminal, plain lines
otherwise (logs, CI, tests). No dependency."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

WIDTH = 30


def warning_fr(record: logging.LogRecord) -> str:
    """A warning of the terminals' code told in French to the person running the demo."""
    if record.name == "terminal.journal.upload" and record.msg.startswith("batch %s not delivered"):
        batch = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        return (
            f"lot {batch} non remis (serveur injoignable) : "
            "il reste dans le journal du terminal et repart au prochain envoi"
        )
    if record.name.startswith("terminal.gate"):
        return f"valideur : passage non terminé ({record.getMessage()[:120]})"
    return f"avertissement ({record.name}) : {record.getMessage()[:160]}"


class HeldWarnings(logging.Handler):
    """Warnings logged while a bar is drawn: held, then told in French under the bar (they never
    cut a progress line)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.held: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.held.append(warning_fr(record))


class Bar:
    """One progress bar; :meth:`advance` per item, :meth:`done` at the end.

    While it is drawn, warnings logged by the terminals are held (:class:`HeldWarnings`) and
    written in French after it.
    """

    def __init__(self, progress: Progress, label: str, total: int) -> None:
        self.progress = progress
        self._warnings = HeldWarnings()
        root = logging.getLogger()
        self._others = list(root.handlers)  # restored at done(): nothing prints over the bar
        for handler in self._others:
            root.removeHandler(handler)
        root.addHandler(self._warnings)
        self.label = label
        self.total = max(total, 1)
        self.count = 0
        self.started = time.monotonic()
        self._last_line = -1
        self._note = ""

    def advance(self, step: int = 1, *, label: str = "") -> None:
        """Count ``step`` more items; ``label`` is shown beside the bar (e.g. the clock)."""
        self.count += step
        self._note = label
        if self.progress.tty:
            self._draw()
        else:
            decile = self.count * 4 // self.total  # plain mode: a line at each quarter
            if decile != self._last_line and self.count < self.total:
                self._last_line = decile
                if decile:
                    self.progress.write(f"  {self.label} : {self.count}/{self.total} {label}\n")

    def _draw(self) -> None:
        filled = WIDTH * self.count // self.total
        bar = "█" * filled + "·" * (WIDTH - filled)
        self.progress.write(
            f"\r  {self.label:<14} [{bar}] {self.count}/{self.total} {self._note:<8}"
        )

    def done(self) -> None:
        """Finish the bar with its duration."""
        seconds = time.monotonic() - self.started
        if self.progress.tty:
            self.count = self.total
            self._draw()
            self.progress.write(f" {seconds:.1f} s\n")
        else:
            self.progress.write(f"  {self.label} : {self.count}/{self.total} en {seconds:.1f} s\n")
        root = logging.getLogger()
        root.removeHandler(self._warnings)
        for handler in self._others:
            root.addHandler(handler)
        for text in dict.fromkeys(self._warnings.held):  # each distinct warning once
            self.progress.write(f"  ⚠ {text}\n")


class Progress:
    """Where the demo tells what it is doing.

    Args:
        stream: output (standard output by default).
        tty: draw bars with ``\\r``; default: whether ``stream`` is a terminal.
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty()) if tty is None else tty

    def write(self, text: str) -> None:
        """Write and flush."""
        self.stream.write(text)
        self.stream.flush()

    def section(self, title: str) -> None:
        """A step title."""
        self.write(f"\n▶ {title}\n")

    def line(self, text: str) -> None:
        """One line of detail."""
        self.write(f"  {text}\n")

    def bar(self, label: str, total: int) -> Bar:
        """A new progress bar."""
        return Bar(self, label, total)
