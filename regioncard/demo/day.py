"""The day in the region: a timetable of taps, meals, blocked cards and uploads, played in order.

:func:`plan_day` draws each person's day from the seeded random generator (morning rush with
transfers, school coaches, lunches, bike shelter, evening rush; three cards lost at midday and
tried again in the evening; one gate offline from 10:00 to 11:00; uploads every half hour).
:class:`DayRunner` plays it on a simulated clock that every terminal reads.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from regioncard.demo.world import (
    CANTEEN_AMIENS,
    CANTEEN_LILLE,
    COACH_AMIENS,
    COACH_LILLE,
    FLANDRES,
    LENS,
    LIEVIN,
    OFFLINE_FROM,
    OFFLINE_UNTIL,
    PORTE_POSTES,
    REPUBLIQUE,
    SHELTER,
    Holder,
    HolderKind,
    TerminalSpec,
    at,
)

log = logging.getLogger(__name__)


class SimClock:
    """The demo's clock: a settable aware instant that every terminal reads."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        """Move to ``moment`` (never backwards)."""
        if moment > self.now:
            self.now = moment

    def advance(self, **delta: float) -> datetime:
        """Move forward by a :class:`~datetime.timedelta` and return the new instant."""
        self.now = self.now + timedelta(**delta)
        return self.now


class Step(enum.Enum):
    """What happens at one instant of the timetable."""

    TAP = "tap"  # a card at a gate, coach validator or shelter door
    MEAL = "meal"  # a card at a canteen till
    BLOCK = "block"  # the holder reports the card lost at the desk
    PUSH = "push"  # terminals fetch the signed deny-list
    UPLOAD = "upload"  # every terminal uploads its journal


@dataclass(order=True)
class Event:
    """One line of the timetable."""

    when: datetime
    order: int
    step: Step = field(compare=False)
    holder: Holder | None = field(default=None, compare=False)
    terminal: TerminalSpec | None = field(default=None, compare=False)


def _jitter(rng: random.Random, base: datetime, minutes: int) -> datetime:
    return base + timedelta(seconds=rng.randrange(0, minutes * 60))


def _trip(
    events: list[Event], first: datetime, *legs: tuple[TerminalSpec, int], holder: Holder
) -> None:
    """A journey: a tap at each terminal, ``minutes`` after the previous one."""
    when = first
    for terminal, minutes in legs:
        when = when + timedelta(minutes=minutes)
        events.append(Event(when, 0, Step.TAP, holder, terminal))


def plan_day(holders: list[Holder], rng: random.Random) -> list[Event]:
    """Everyone's day, in time order."""
    events: list[Event] = []
    for h in holders:
        kind = h.kind
        if kind is HolderKind.PUPIL and h.school_uai == "0801234G":
            _trip(events, _jitter(rng, at(7, 0), 25), (COACH_AMIENS, 0), holder=h)
            meal = _jitter(rng, at(11, 45), 75)
            events.append(Event(meal, 0, Step.MEAL, h, CANTEEN_AMIENS))
            _trip(events, _jitter(rng, at(17, 5), 30), (COACH_AMIENS, 0), holder=h)
        elif kind is HolderKind.PUPIL:
            _trip(events, _jitter(rng, at(7, 10), 20), (COACH_LILLE, 0), (FLANDRES, 25), holder=h)
            meal = _jitter(rng, at(11, 40), 80)
            events.append(Event(meal, 0, Step.MEAL, h, CANTEEN_LILLE))
            if h.index % 3 == 0:  # comes back to the till: « Repas déjà pris »
                events.append(Event(meal + timedelta(minutes=9), 0, Step.MEAL, h, CANTEEN_LILLE))
            _trip(events, _jitter(rng, at(16, 40), 25), (FLANDRES, 0), (COACH_LILLE, 22), holder=h)
        elif kind is HolderKind.STUDENT:
            if h.bike:
                _trip(events, _jitter(rng, at(7, 30), 40), (SHELTER, 0), (FLANDRES, 4), holder=h)
                _trip(events, _jitter(rng, at(17, 40), 50), (FLANDRES, 0), (SHELTER, 18), holder=h)
            else:
                _trip(
                    events,
                    _jitter(rng, at(7, 35), 50),
                    (REPUBLIQUE, 0),
                    (PORTE_POSTES, 14),
                    holder=h,
                )
                _trip(
                    events,
                    _jitter(rng, at(17, 20), 60),
                    (PORTE_POSTES, 0),
                    (REPUBLIQUE, 16),
                    holder=h,
                )
        elif kind is HolderKind.JOB_SEEKER:
            _trip(events, _jitter(rng, at(8, 5), 40), (LENS, 0), (LIEVIN, 20), holder=h)
            _trip(events, _jitter(rng, at(14, 10), 60), (LIEVIN, 0), (LENS, 18), holder=h)
        elif kind is HolderKind.SENIOR:
            # Mid-morning outing through the gate that is offline from 10:00 to 11:00.
            _trip(
                events, _jitter(rng, at(10, 2), 35), (REPUBLIQUE, 0), (PORTE_POSTES, 12), holder=h
            )
            _trip(
                events, _jitter(rng, at(15, 0), 60), (PORTE_POSTES, 0), (REPUBLIQUE, 15), holder=h
            )
        elif kind is HolderKind.WORKER:
            if h.bike:
                _trip(events, _jitter(rng, at(7, 45), 30), (SHELTER, 0), (FLANDRES, 3), holder=h)
                _trip(events, _jitter(rng, at(18, 0), 40), (FLANDRES, 0), (SHELTER, 20), holder=h)
            else:
                _trip(events, _jitter(rng, at(7, 15), 30), (LENS, 0), (FLANDRES, 45), holder=h)
                _trip(events, _jitter(rng, at(17, 30), 40), (FLANDRES, 0), (LENS, 45), holder=h)
        else:
            _trip(events, _jitter(rng, at(8, 20), 40), (FLANDRES, 0), (PORTE_POSTES, 20), holder=h)
            _trip(events, _jitter(rng, at(10, 15), 30), (PORTE_POSTES, 0), holder=h)
            _trip(events, _jitter(rng, at(17, 45), 45), (PORTE_POSTES, 0), (FLANDRES, 15), holder=h)
        if h.lost:
            events.append(Event(_jitter(rng, at(12, 15), 30), 0, Step.BLOCK, h))
    events.append(Event(at(13, 0), 0, Step.PUSH))
    moment = at(6, 30)
    while moment <= at(21, 0):
        events.append(Event(moment, 1, Step.UPLOAD))  # after the taps of the same instant
        moment += timedelta(minutes=30)
    events.sort()
    return events


def offline(moment: datetime) -> bool:
    """Whether the offline terminal's network is down at ``moment``."""
    return OFFLINE_FROM <= moment < OFFLINE_UNTIL


@dataclass
class DayStats:
    """What happened during the day (for the summary and the report).

    Attributes:
        taps: every tap: time, terminal, holder kind, accepted, display, outcome.
        meals: every canteen tap: time, school, served, reason, aid and wallet parts.
        blocked: serials blocked at the desk.
        refused_blocked: blocked cards refused at a gate after the push.
        deny_list_version: the version the terminals hold after the push.
        uploads: per terminal, batches and records acknowledged.
        offline: the offline terminal's story.
    """

    taps: list[dict[str, Any]] = field(default_factory=list)
    meals: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    refused_blocked: list[str] = field(default_factory=list)
    deny_list_version: int = 0
    uploads: dict[str, dict[str, int]] = field(default_factory=dict)
    offline: dict[str, Any] = field(default_factory=dict)

    def tap_counts(self) -> Counter[str]:
        """Accepted taps, and refused ones by reason."""
        counts: Counter[str] = Counter()
        for tap in self.taps:
            counts["accepted" if tap["accepted"] else f"refused:{tap['reason']}"] += 1
        return counts
