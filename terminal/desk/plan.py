"""What a desk station writes on one card: wrapped keys and idempotent steps (a :class:`CardPlan`).

The backend builds the plan when the card is on the reader (it holds the holder data, the
catalogue and the issuer keys); the station only executes it. JSON shape (``/api/v1/desk/jobs``,
docs/desk.md)::

    {"card_serial": "00000000DE5C0001",
     "keys": [{"application": "plum", "role": "issuer", "kif": 33, "version": 1,
               "wrapped_key": "<24 bytes hex>"}, ...],
     "steps": [{"id": "perso.plum", "label_fr": "personnalisation PLUM",
                "application": "plum", "role": "issuer",
                "writes": [{"file": "environment", "record": 1, "data": "<29 bytes hex>"}],
                "sv_reload": null, "action_ids": []}, ...]}

Every step is one secure session and is **idempotent**: record writes carry the record's final
content (writing it twice leaves the same card), and an SV reload names the SV transaction number
and balance the card must show *before* it, so a reload already committed (card pulled after the
close) is recognised by the card's own counter and never applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from card_schema.crypto import KeyRole
from card_schema.layout import CARD_LAYOUT


class PlanError(ValueError):
    """A plan (or job) received from the backend is malformed."""


@dataclass(frozen=True)
class WrappedCardKey:
    """One card key wrapped under the desk transport key (RFC 3394), for the SAM's Load Card Key.

    Attributes:
        application: card application name (``plum``, ``wallet``, ``cursus``, ``employment``).
        role: key role.
        version: key version (KVC).
        wrapped_key: 24 bytes.
    """

    application: str
    role: KeyRole
    version: int
    wrapped_key: bytes

    @property
    def kif(self) -> int:
        """Calypso key identifier of this application's role key (a SAM finds keys by KIF)."""
        return CARD_LAYOUT.application(self.application).kif(self.role)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> WrappedCardKey:
        """Parse one entry of ``keys``.

        Raises:
            PlanError: missing or malformed field.
        """
        try:
            return cls(
                str(doc["application"]),
                KeyRole(doc["role"]),
                int(doc["version"]),
                bytes.fromhex(doc["wrapped_key"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise PlanError(f"bad wrapped key entry: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        """Inverse of :meth:`from_json`."""
        return {
            "application": self.application,
            "role": self.role.value,
            "kif": self.kif,
            "version": self.version,
            "wrapped_key": self.wrapped_key.hex(),
        }


@dataclass(frozen=True)
class RecordWrite:
    """Update one record with its final content (idempotent).

    Attributes:
        file: file name in ``card_schema.layout`` (``environment``, ``contracts``...).
        record: record number, from 1.
        data: the whole record (29 bytes).
    """

    file: str
    record: int
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "record": self.record, "data": self.data.hex()}


@dataclass(frozen=True)
class SVReload:
    """A stored-value reload, applied once: the card must show ``tnum_before`` to apply it.

    Attributes:
        amount: eurocents (positive).
        tnum_before: SV transaction number the card had when the plan was made.
        balance_before: SV balance (eurocents) at that moment.
    """

    amount: int
    tnum_before: int
    balance_before: int

    def to_json(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "tnum_before": self.tnum_before,
            "balance_before": self.balance_before,
        }


@dataclass(frozen=True)
class PlanStep:
    """One secure session of a plan.

    Attributes:
        id: stable identifier (``perso.plum``, ``contract.1``, ``sv``...), what progress names.
        label_fr: what the agent sees while it is written (« contrats 2/3 »).
        application: application the session is opened on.
        role: key role of the session (issuer for personalisation, load for loads).
        writes: records written with their final content (at most 6 per step, the card's
            session limit).
        sv_reload: an SV reload (wallet), if any.
        action_ids: backend card actions this step carries out (confirmed with the card's
            transaction counter once written).
    """

    id: str
    label_fr: str
    application: str
    role: KeyRole
    writes: tuple[RecordWrite, ...] = ()
    sv_reload: SVReload | None = None
    action_ids: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PlanStep:
        """Parse one entry of ``steps``.

        Raises:
            PlanError: missing or malformed field.
        """
        try:
            sv = doc.get("sv_reload")
            return cls(
                id=str(doc["id"]),
                label_fr=str(doc.get("label_fr", doc["id"])),
                application=str(doc["application"]),
                role=KeyRole(doc["role"]),
                writes=tuple(
                    RecordWrite(str(w["file"]), int(w["record"]), bytes.fromhex(w["data"]))
                    for w in doc.get("writes", ())
                ),
                sv_reload=None
                if sv is None
                else SVReload(int(sv["amount"]), int(sv["tnum_before"]), int(sv["balance_before"])),
                action_ids=tuple(int(a) for a in doc.get("action_ids", ())),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise PlanError(f"bad plan step: {exc!r}") from exc

    def to_json(self) -> dict[str, Any]:
        """Inverse of :meth:`from_json`."""
        return {
            "id": self.id,
            "label_fr": self.label_fr,
            "application": self.application,
            "role": self.role.value,
            "writes": [w.to_json() for w in self.writes],
            "sv_reload": None if self.sv_reload is None else self.sv_reload.to_json(),
            "action_ids": list(self.action_ids),
        }


@dataclass(frozen=True)
class CardPlan:
    """Everything to write on one card.

    Attributes:
        card_serial: the card (8 bytes).
        keys: wrapped card keys for the roles the steps use.
        steps: secure sessions, in order.
    """

    card_serial: bytes
    keys: tuple[WrappedCardKey, ...]
    steps: tuple[PlanStep, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CardPlan:
        """Parse a plan as the backend sends it.

        Raises:
            PlanError: missing or malformed field.
        """
        try:
            return cls(
                bytes.fromhex(doc["card_serial"]),
                tuple(WrappedCardKey.from_json(k) for k in doc["keys"]),
                tuple(PlanStep.from_json(s) for s in doc["steps"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise PlanError(f"bad card plan: {exc!r}") from exc

    def to_json(self) -> dict[str, Any]:
        """Inverse of :meth:`from_json`."""
        return {
            "card_serial": self.card_serial.hex().upper(),
            "keys": [k.to_json() for k in self.keys],
            "steps": [s.to_json() for s in self.steps],
        }

    def key(self, application: str, role: KeyRole) -> WrappedCardKey:
        """The wrapped key of one application and role.

        Raises:
            PlanError: the plan has no such key.
        """
        for k in self.keys:
            if k.application == application and k.role == role:
                return k
        raise PlanError(f"no {role.value} key for {application} in the plan")


@dataclass(frozen=True)
class DeskJob:
    """A job of the desk queue, as ``GET /api/v1/desk/jobs/next`` returns it.

    Attributes:
        id: job id.
        kind: ``issue`` (a blank card), ``update`` (loads, add/remove an application on a card
            already issued) or ``replace`` (a blank card replacing a blocked one).
        status: ``queued``, ``waiting_card``, ``writing``, ``done``, ``failed``, ``interrupted``.
        card_serial: the card (hex), once known; an ``update`` job names it from the start.
        steps_done: ids of the plan steps already written (a resumed job skips them).
        plan: the plan, once the backend made it (when the card was first put on the reader).
        request: what the agent asked for (informative for the station).
    """

    id: int
    kind: str
    status: str
    card_serial: str | None = None
    steps_done: frozenset[str] = frozenset()
    plan: CardPlan | None = None
    request: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DeskJob:
        """Parse a job answer.

        Raises:
            PlanError: missing or malformed field.
        """
        try:
            plan = doc.get("plan")
            return cls(
                id=int(doc["id"]),
                kind=str(doc["kind"]),
                status=str(doc["status"]),
                card_serial=doc.get("card_serial"),
                steps_done=frozenset(str(s) for s in doc.get("steps_done") or ()),
                plan=None if plan is None else CardPlan.from_json(plan),
                request=dict(doc.get("request") or {}),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise PlanError(f"bad desk job: {exc!r}") from exc


def steps_left(plan: CardPlan, done: Iterable[str]) -> list[PlanStep]:
    """The steps of ``plan`` not in ``done``, in order."""
    finished = set(done)
    return [step for step in plan.steps if step.id not in finished]
