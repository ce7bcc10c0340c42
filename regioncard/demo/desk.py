"""Issuing the demo's cards at the desk, as the desk page and the desk station do (docs/desk.md).

For each person the agent does what the desk page does (``backend/desk/static/desk.js``), with
the same endpoints and the agent's token: ``POST /api/v1/holders`` (« Nouveau titulaire », or
``{"anonymous": true}`` for « Carte anonyme »), ``GET /api/v1/cards?holder_id=&reason=`` (the
holder's cards, audited), ``POST /api/v1/desk/jobs`` (« Émettre une carte » : applications,
contracts, wallet reload, Cursus aid, the school) and ``GET /api/v1/desk/jobs/{id}`` (the
progress the page polls).

The desk station (:class:`terminal.desk.DeskStation`, the desk terminal's credential) runs on the
desk's card reader and SAM reader behind pcscd: it takes the job (``GET /api/v1/desk/jobs/next``),
a blank factory card is put on its reader, it reports the card and its snapshot, and writes the
plan the backend made, one secure session per step. The card keys arrive wrapped under the desk
transport key and go into the desk SAM with **Load Card Key** (the desk SAM holds no card master
key); each step is reported with the card's transaction counter, which confirms its loads.

The page's form does not offer four things the demo's people need; the job endpoint takes them as
optional parts of the same body: contract options (zones, bike shelter), holder profiles
(reduced fares), free school transport in the Cursus record, and ``valid_from`` (the first day of
the contracts and of the school year: the demo's day is simulated, the backend's clock is not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from regioncard.demo.services import Api, DemoError
from regioncard.demo.world import DAY, SCHOOL_YEAR, Holder, HolderKind
from terminal.desk import DeskStation, IssueOutcome

log = logging.getLogger(__name__)

PROFILE_OF = {  # HolderProfileNumber (terminal/cardimage.py)
    HolderKind.PUPIL: 1,
    HolderKind.STUDENT: 2,
    HolderKind.JOB_SEEKER: 3,
    HolderKind.SENIOR: 4,
}
PROFILE_UNTIL = "2027-08-31"
MONTHLY = frozenset({10, 11, 12, 30, 31})  # valid for the calendar month of the day
ONE_ZONE = frozenset({10, 20, 30})  # valid in the holder's zone (1: Lille)
BIKE_OPTION = frozenset({10, 11, 12, 30, 31, 40})  # passes sold with the bike-shelter option
SCHOOL_YEAR_START = date(int(SCHOOL_YEAR[:4]), 9, 1)
CREATED_REASON = "création au guichet"  # what desk.js sends when it opens a new holder
WALLET_LABEL = "Rechargement porte-monnaie"  # receipt line of a wallet reload


@dataclass
class Issued:
    """One card issued through a desk job.

    Attributes:
        holder: the person.
        job_id: the desk job.
        steps: steps of the job's plan (one secure session each, one wrapped key loaded each).
        interruptions: times the card was pulled during the job.
        sales: eurocents paid at the desk, by product code (the receipt's paid lines).
    """

    holder: Holder
    job_id: int
    steps: int
    interruptions: int
    sales: dict[int, int] = field(default_factory=dict)


@dataclass
class DeskStats:
    """What the desk did during the morning (``summary.json`` ``desk_jobs``)."""

    created: int = 0
    done: int = 0
    failed: int = 0
    steps_written: int = 0
    interruptions: int = 0

    def as_json(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "created": self.created,
            "done": self.done,
            "failed": self.failed,
            "steps_written": self.steps_written,
            "wrapped_keys_loaded": self.steps_written,
            "interruptions": self.interruptions,
        }


def holder_body(holder: Holder) -> dict[str, Any]:
    """The « Nouveau titulaire » / « Carte anonyme » body of ``POST /api/v1/holders``."""
    if holder.kind is HolderKind.ANONYMOUS:
        return {"anonymous": True}
    return {
        "family_name": holder.family_name,
        "given_name": holder.given_name,
        "birth_date": _birth_date(holder).isoformat(),
    }


def _contract(holder: Holder, code: int) -> int | dict[str, Any]:
    """A contract as the job takes it: the bare code (as the page sends it), or with options."""
    options: dict[str, Any] = {}
    if code in ONE_ZONE:
        options["zones"] = [1]
    if holder.bike and code in BIKE_OPTION:
        options["bike_shelter"] = True
    return {"code": code, **options} if options else code


def _student(holder: Holder) -> dict[str, Any]:
    amiens = holder.school_uai == "0801234G"
    return {
        "school_uai": holder.school_uai,
        "level": "premiere" if amiens else "quatrieme",
        "boarding": "half_board",
        "school_transport": True,
        "transport_zones": [4] if amiens else [1],
    }


def job_body(holder: Holder, desk_terminal_id: str) -> dict[str, Any]:
    """The « Émettre une carte » body of ``POST /api/v1/desk/jobs`` for this person's card."""
    assert holder.holder_id is not None
    body: dict[str, Any] = {
        "kind": "issue",
        "desk_terminal_id": desk_terminal_id,
        "holder_id": holder.holder_id,
        "applications": list(holder.applications),
        "contracts": [_contract(holder, code) for code in holder.product_codes],
        "wallet_reload_cents": holder.wallet_load,
    }
    aid = [
        {"purpose": purpose, "amount_cents": amount, "school_year": SCHOOL_YEAR}
        for purpose, amount in (("canteen", holder.canteen_aid), ("books", holder.books_aid))
        if amount
    ]
    if aid:
        body["school_aid"] = aid
    if holder.school_uai is not None:
        body["student"] = _student(holder)
    profile = PROFILE_OF.get(holder.kind)
    if profile is not None:
        body["profiles"] = [{"number": profile, "valid_until": PROFILE_UNTIL}]
    monthly = any(code in MONTHLY for code in holder.product_codes)
    body["valid_from"] = (DAY.replace(day=1) if monthly else SCHOOL_YEAR_START).isoformat()
    return body


class DeskIssuance:
    """The agent at the desk page and the desk station next to the reader.

    Args:
        agent: API client logged in as a desk agent (the page's bearer token).
        station: the desk station on the desk terminal's readers.
        desk_terminal_id: the desk chosen on the page (« Poste de guichet »).
    """

    def __init__(self, agent: Api, station: DeskStation, desk_terminal_id: str) -> None:
        self.agent = agent
        self.station = station
        self.desk_terminal_id = desk_terminal_id
        self.stats = DeskStats()

    def open_page(self) -> None:
        """What the page loads after the login: the agent, the desks, the catalogue.

        Raises:
            DemoError: the desk is not offered to the agent.
        """
        self.agent.get("/api/v1/auth/me")
        desks = self.agent.get("/api/v1/desk/desks")
        if self.desk_terminal_id not in desks:
            raise DemoError(f"poste {self.desk_terminal_id} absent de la liste {desks}")
        self.agent.get("/api/v1/products")

    def create_job(self, holder: Holder) -> int:
        """The agent's part: the holder, their cards, the job. Returns the job id."""
        created = self.agent.post("/api/v1/holders", holder_body(holder))
        holder.holder_id = int(created["id"])
        self.agent.get("/api/v1/cards", holder_id=holder.holder_id, reason=CREATED_REASON)
        job = self.agent.post("/api/v1/desk/jobs", job_body(holder, self.desk_terminal_id))
        self.stats.created += 1
        return int(job["id"])

    def write(self, holder: Holder, job_id: int) -> Issued:
        """The station's part, with the blank card on the reader; then the page's last poll.

        Raises:
            DemoError: the station took another job, or the job did not end ``done``.
        """
        outcome: IssueOutcome | None = self.station.process_next_job()
        if outcome is None or outcome.job.id != job_id:
            raise DemoError(f"le poste n'a pas pris la demande {job_id}")
        self.stats.steps_written += len(outcome.written)
        self.stats.interruptions += outcome.interruptions
        followed = self.agent.get(f"/api/v1/desk/jobs/{job_id}")
        if not outcome.done or followed["status"] != "done":
            self.stats.failed += 1
            raise DemoError(
                f"carte {holder.serial_hex} : demande {job_id} {followed['status']} — "
                f"{followed['message']}"
            )
        self.stats.done += 1
        issued = Issued(holder, job_id, int(followed["steps_total"]), outcome.interruptions)
        paid = [line for line in followed["summary"].get("loads", []) if line.get("paid")]
        contracts = [line for line in paid if not line["label"].startswith(WALLET_LABEL)]
        for code, line in zip(holder.product_codes, contracts, strict=True):
            issued.sales[code] = issued.sales.get(code, 0) + int(line["amount_cents"])
        wallet = sum(int(line["amount_cents"]) for line in paid if line not in contracts)
        if wallet:
            issued.sales[WALLET_RELOAD_CODE] = wallet
        return issued


WALLET_RELOAD_CODE = 900  # catalogue code of "rechargement porte-monnaie"


def _birth_date(holder: Holder) -> date:
    year = {
        HolderKind.PUPIL: 2010,
        HolderKind.STUDENT: 2005,
        HolderKind.JOB_SEEKER: 1990,
        HolderKind.SENIOR: 1955,
        HolderKind.WORKER: 1982,
    }.get(holder.kind, 1990)
    return date(year + holder.index % 5, 1 + holder.index % 12, 1 + holder.index % 28)
