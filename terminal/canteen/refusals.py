"""The till's log of refused taps, for the canteen manager's daily report.

A refusal changes nothing on the card, so it has no place in the transaction journal (which
records card sessions). The till appends one JSON line per refusal to a small file beside the
journal: local time, school, service and reason code. Nothing identifies the pupil or the card
(CNIL practice: the report needs counts, not names). Losing the last lines in a power cut costs
a statistic, never money, so lines are flushed but not fsynced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from terminal.canteen.model import MealService
from terminal.canteen.reasons import MealReason


@dataclass(frozen=True)
class Refusal:
    """One refused tap.

    Attributes:
        at: local wall-clock time of the tap (naive, Europe/Paris).
        school_uai: the till's school.
        service: the service open then, ``None`` outside service hours.
        reason: why the meal was refused.
    """

    at: datetime
    school_uai: str
    service: MealService | None
    reason: MealReason

    def to_json(self) -> dict[str, str | None]:
        """One line of the file."""
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "school_uai": self.school_uai,
            "service": None if self.service is None else self.service.value,
            "reason": self.reason.value,
        }


class RefusalLog:
    """Append-only JSON-lines file of refused taps (``<journal>.refusals.jsonl`` by default)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def beside(cls, journal_path: Path) -> RefusalLog:
        """The refusal log kept next to a journal file."""
        return cls(journal_path.with_name(journal_path.name + ".refusals.jsonl"))

    def append(self, refusal: Refusal) -> None:
        """Add one line (flushed, not fsynced)."""
        line = json.dumps(refusal.to_json(), ensure_ascii=False, sort_keys=True)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")

    def read(self, day: date | None = None) -> list[Refusal]:
        """The refusals of ``day`` (all if ``None``); unreadable lines (a torn line) are skipped."""
        if not self.path.exists():
            return []
        result: list[Refusal] = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
                refusal = Refusal(
                    at=datetime.fromisoformat(obj["at"]),
                    school_uai=str(obj["school_uai"]),
                    service=None if obj["service"] is None else MealService(obj["service"]),
                    reason=MealReason(obj["reason"]),
                )
            except (ValueError, KeyError, TypeError):
                continue
            if day is None or refusal.at.date() == day:
                result.append(refusal)
        return result
