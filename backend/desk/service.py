"""Desk jobs (no FastAPI here): created by agents, taken and reported by desk stations.

Life cycle (docs/desk.md)::

    queued --next--> waiting_card --card--> writing --last step--> done
                          ^                    |
                          +--- interrupted <---+  (card pulled; the same card resumes)
    any unfinished status --> failed (the station says why)

The plan is made once, when the station first reports the card (:func:`attach_card`): the card is
registered (issue, replace), the sales, aid grants and moves become card actions, and the final
record contents are computed from the card's snapshot. Each step reported carries the card's
transaction counter, which confirms the step's card actions (``actions.confirm_action``): a load
is confirmed once, by the session that wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.actions import service as actions
from backend.actions.models import ActionKind, ActionStatus, CardAction
from backend.auth.roles import Application, TerminalKind
from backend.cards import service as cards
from backend.cards.models import CardStatus
from backend.columns import canonical_json, utcnow
from backend.desk import content
from backend.desk.models import FINAL_STATUSES, DeskJob, JobKind, JobStatus
from backend.entitlements import service as entitlements
from backend.entitlements.models import AidPurpose
from backend.errors import Conflict, InvalidRequest, NotFound
from backend.holders.service import create_holder, get_holder
from backend.keys.service import KeyService
from backend.personalisation.service import card_keys
from backend.products import service as products
from backend.terminals.models import Terminal

PARIS = ZoneInfo("Europe/Paris")
MESSAGE_QUEUED = "En attente du poste de guichet"
MESSAGE_DONE = "Carte émise"
MESSAGE_DONE_UPDATE = "Carte mise à jour"
WALLET_MAX_CENTS = 15000


@dataclass(frozen=True)
class JobRequest:
    """What an agent asks for (validated by the router's schema).

    Attributes mirror :class:`backend.desk.schemas.JobIn`; ``contracts`` are the product codes and
    ``contract_options`` their options, in the same order (``{}`` for none).
    """

    kind: JobKind
    desk_terminal_id: str
    holder_id: int | None
    anonymous: bool
    card_serial: str | None
    applications: list[Application]
    add_applications: list[Application]
    remove_applications: list[Application]
    contracts: list[int]
    wallet_reload_cents: int
    school_aid: list[dict[str, Any]]
    student: dict[str, Any]
    reason: str | None
    contract_options: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    valid_from: date | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind.value,
            "applications": [a.value for a in self.applications],
            "add_applications": [a.value for a in self.add_applications],
            "remove_applications": [a.value for a in self.remove_applications],
            "contracts": list(self.contracts),
            "wallet_reload_cents": self.wallet_reload_cents,
            "school_aid": list(self.school_aid),
            "student": dict(self.student),
            "anonymous": self.anonymous,
            "reason": self.reason,
        }
        # Optional parts (the page sends none of them): stored only when given.
        if any(self.contract_options):
            doc["contract_options"] = list(self.contract_options)
        if self.profiles:
            doc["profiles"] = list(self.profiles)
        if self.valid_from is not None:
            doc["valid_from"] = self.valid_from.isoformat()
        return doc


def _today() -> date:
    return datetime.now(PARIS).date()


def _desk(session: Session, terminal_id: str) -> Terminal:
    terminal = session.scalar(select(Terminal).where(Terminal.terminal_id == terminal_id))
    if terminal is None or terminal.kind != TerminalKind.DESK or not terminal.active:
        raise NotFound(
            f"poste de guichet {terminal_id} inconnu", f"unknown desk terminal {terminal_id}"
        )
    return terminal


def get_job(session: Session, job_id: int) -> DeskJob:
    """The job ``job_id``.

    Raises:
        NotFound: no such job.
    """
    job = session.get(DeskJob, job_id)
    if job is None:
        raise NotFound(f"demande {job_id} inconnue", f"unknown desk job {job_id}")
    return job


def jobs_of_holder(session: Session, holder_id: int) -> list[DeskJob]:
    """A holder's jobs, newest first."""
    query = select(DeskJob).where(DeskJob.holder_id == holder_id).order_by(DeskJob.id.desc())
    return list(session.scalars(query))


def create_job(session: Session, request: JobRequest, *, by: str) -> DeskJob:
    """Queue a job for a desk station.

    Raises:
        NotFound: unknown desk, holder, card or product.
        Conflict: the card is not active, or a load needs an application the card will not carry.
        InvalidRequest: an inconsistent request (no application, a card missing for an update...).
    """
    _desk(session, request.desk_terminal_id)
    final_apps: set[Application]
    replaces = None
    if request.kind == JobKind.ISSUE:
        if request.holder_id is None:
            if not request.anonymous:
                raise InvalidRequest(
                    "titulaire obligatoire (ou carte anonyme)", "holder_id required (or anonymous)"
                )
            holder_id = create_holder(session, anonymous=True).id
        else:
            holder_id = get_holder(session, request.holder_id).id
        if not request.applications:
            raise InvalidRequest(
                "choisissez au moins une application", "choose at least one application"
            )
        final_apps = set(request.applications)
        card_serial = None
    else:
        if request.card_serial is None:
            raise InvalidRequest("numéro de carte obligatoire", "card_serial required")
        card = cards.get_card(session, request.card_serial)
        holder_id = card.holder_id
        if request.kind == JobKind.UPDATE:
            if card.status != CardStatus.ACTIVE:
                raise Conflict(
                    f"carte {card.serial} {card.status.value}", f"card is {card.status.value}"
                )
            final_apps = (set(cards.applications_of(card)) | set(request.add_applications)) - set(
                request.remove_applications
            )
            card_serial = card.serial
        else:
            if card.status == CardStatus.REPLACED:
                raise Conflict(
                    f"carte {card.serial} déjà remplacée", f"card {card.serial} already replaced"
                )
            final_apps = set(cards.applications_of(card))
            card_serial, replaces = None, card.serial
    summary_apps = sorted(final_apps)
    for code in request.contracts:
        product = products.get_product(session, code)
        if product.application not in final_apps:
            raise Conflict(
                f"« {product.name} » demande l'application {product.application.value}",
                f"product {code} needs application {product.application.value}",
            )
    if request.wallet_reload_cents and Application.WALLET not in final_apps:
        raise Conflict(
            "le rechargement demande l'application Ma région numérique",
            "a wallet reload needs the wallet application",
        )
    if request.school_aid and Application.CURSUS not in final_apps:
        raise Conflict("les aides demandent l'application Cursus", "aid needs the cursus app")
    if request.profiles and Application.PLUM not in final_apps:
        raise Conflict("les profils demandent l'application PLUM", "profiles need the plum app")
    now = utcnow()
    job = DeskJob(
        desk_terminal_id=request.desk_terminal_id,
        kind=request.kind,
        holder_id=holder_id,
        card_serial=card_serial,
        replaces_serial=replaces,
        request=canonical_json(request.to_json()),
        status=JobStatus.QUEUED,
        steps_done="[]",
        message=MESSAGE_QUEUED,
        summary=canonical_json({"applications": [a.value for a in summary_apps]}),
        created_by=by,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def next_job(session: Session, terminal_id: str) -> DeskJob | None:
    """The desk's next job: its own unfinished one first (a resumed station), else the oldest
    queued one, which becomes ``waiting_card``."""
    unfinished = session.scalar(
        select(DeskJob)
        .where(
            DeskJob.desk_terminal_id == terminal_id,
            DeskJob.status.in_([JobStatus.WAITING_CARD, JobStatus.WRITING, JobStatus.INTERRUPTED]),
        )
        .order_by(DeskJob.id)
        .limit(1)
    )
    if unfinished is not None:
        return unfinished
    job = session.scalar(
        select(DeskJob)
        .where(DeskJob.desk_terminal_id == terminal_id, DeskJob.status == JobStatus.QUEUED)
        .order_by(DeskJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if job is None:
        return None
    job.status = JobStatus.WAITING_CARD
    if job.plan is not None or job.kind == JobKind.UPDATE:  # a retried job: the same card
        job.message = f"Posez la carte {job.card_serial} sur le lecteur"
    else:
        job.message = "Posez une carte vierge sur le lecteur"
    job.updated_at = utcnow()
    session.flush()
    return job


def _own(job: DeskJob, terminal_id: str) -> None:
    if job.desk_terminal_id != terminal_id:
        raise NotFound(f"demande {job.id} inconnue", f"job {job.id} is another desk's")


def _require_open(job: DeskJob) -> None:
    if job.status in FINAL_STATUSES:
        raise Conflict(
            f"demande {job.id} terminée ({job.status.value})", f"job {job.id} is {job.status.value}"
        )


def _new_actions(session: Session, serial: str, before: set[int]) -> list[CardAction]:
    return [
        a
        for a in actions.actions_of_card(session, serial)
        if a.status == ActionStatus.PENDING and a.id not in before
    ]


def _move_confirmed_contracts(session: Session, old: str, new: str, by: str) -> None:
    for action in actions.actions_of_card(session, old):
        if action.kind == ActionKind.LOAD_CONTRACT and action.status == ActionStatus.CONFIRMED:
            actions.create_action(
                session,
                card_serial=new,
                application=action.application,
                kind=action.kind,
                params={**json.loads(action.params), "from_card": old},
                created_by=by,
            )


def _work(
    session: Session,
    job: DeskJob,
    request: Mapping[str, Any],
    todo: list[CardAction],
    contract_options: Mapping[int, Mapping[str, Any]],
) -> tuple[content.CardWork, list[dict[str, Any]]]:
    """The card work and the receipt's load lines for the actions to carry out now.

    ``contract_options`` gives the options (zones, bike shelter) of a contract action by its id.
    """
    work = content.CardWork(
        student=request.get("student") or {}, profiles=list(request.get("profiles") or [])
    )
    lines: list[dict[str, Any]] = []
    for action in todo:
        params = json.loads(action.params)
        if action.kind == ActionKind.LOAD_CONTRACT:
            product = products.get_product(session, int(params["product_code"]))
            option = contract_options.get(action.id, {})
            work.contracts.append(
                content.ContractLoad(
                    action.id,
                    product.code,
                    product.name,
                    params.get("duration_days"),
                    params.get("trips"),
                    zones=tuple(int(z) for z in option.get("zones", ())),
                    bike_shelter=bool(option.get("bike_shelter")),
                )
            )
            moved = "from_card" in params
            lines.append(
                {
                    "label": f"{product.name}" + (" (repris de l'ancienne carte)" if moved else ""),
                    "amount_cents": 0 if moved else product.amount_cents,
                    "to_collect": not moved,
                    "paid": False,
                    "action_id": action.id,
                }
            )
        elif action.kind == ActionKind.SV_RELOAD:
            work.wallet.append(content.WalletReload(action.id, int(params["amount"])))
            lines.append(
                {
                    "label": "Rechargement porte-monnaie Ma région numérique",
                    "amount_cents": params["amount"],
                    "to_collect": True,
                    "paid": False,
                    "action_id": action.id,
                }
            )
        elif action.kind == ActionKind.AID_CREDIT:
            purpose = str(params["purse"]).removeprefix("cursus.").removesuffix("_aid")
            work.aid.append(content.AidCredit(action.id, purpose, int(params["amount"])))
            lines.append(
                {
                    "label": f"Aide Cursus {content.AID_NAMES_FR.get(purpose, purpose)} "
                    f"({params.get('funder', '')})",
                    "amount_cents": params["amount"],
                    "to_collect": False,
                    "paid": False,
                    "action_id": action.id,
                }
            )
        elif action.kind == ActionKind.MOVE_BALANCE:
            purse, amount = str(params["purse"]), int(params["amount"])
            if purse == "wallet.sv":
                work.wallet.append(content.WalletReload(action.id, amount))
                label = "Solde du porte-monnaie repris"
            elif purse.startswith("cursus.") and purse.endswith("_aid"):
                purpose = purse.removeprefix("cursus.").removesuffix("_aid")
                work.aid.append(content.AidCredit(action.id, purpose, amount))
                label = f"Aide Cursus {content.AID_NAMES_FR.get(purpose, purpose)} reprise"
            else:
                continue  # other purses are written by the terminals at the first tap
            lines.append(
                {
                    "label": label,
                    "amount_cents": amount,
                    "to_collect": False,
                    "paid": False,
                    "action_id": action.id,
                }
            )
    return work, lines


def attach_card(
    session: Session,
    keys: KeyService,
    job: DeskJob,
    *,
    terminal_id: str,
    card_serial: str,
    snapshot: Mapping[str, Any],
) -> DeskJob:
    """The station reports the card on the reader: register it, make the plan (once).

    A job that already has its plan only checks that the card is the same.

    Raises:
        Conflict: not the job's card, a card already personalised for an issue, a serial already
            registered, no free contract slot.
    """
    _own(job, terminal_id)
    _require_open(job)
    serial = card_serial.upper()
    if job.plan is not None:
        if serial != job.card_serial:
            raise Conflict(
                f"ce n'est pas la carte en cours d'écriture ({job.card_serial})",
                f"not the job's card ({job.card_serial})",
            )
        return job
    request = json.loads(job.request)
    by = job.created_by
    apps_now: list[str] = []
    if job.kind == JobKind.UPDATE:
        if serial != job.card_serial:
            raise Conflict(f"posez la carte {job.card_serial}", f"expected card {job.card_serial}")
        apps_now = content.personalised_applications(snapshot)
    elif not content.is_blank(snapshot):
        raise Conflict(
            "cette carte n'est pas vierge : posez une carte vierge",
            "the card is not blank",
        )
    before = {a.id for a in actions.actions_of_card(session, serial)}
    if job.kind == JobKind.ISSUE:
        cards.issue_card(
            session,
            holder_id=job.holder_id,
            serial=serial,
            applications=[Application(a) for a in request["applications"]],
            status=CardStatus.ISSUING,
        )
    elif job.kind == JobKind.REPLACE:
        assert job.replaces_serial is not None
        cards.replace_card(
            session,
            keys,
            job.replaces_serial,
            serial,
            request.get("reason") or "carte perdue",
            by=by,
            new_status=CardStatus.ISSUING,
        )
        _move_confirmed_contracts(session, job.replaces_serial, serial, by)
    else:
        for app in request["add_applications"]:
            cards.add_application(session, serial, Application(app))
        for app in request["remove_applications"]:
            cards.remove_application(session, serial, Application(app))
    options = request.get("contract_options") or []
    contract_options: dict[int, Mapping[str, Any]] = {}
    for index, code in enumerate(request["contracts"]):
        load = products.load_product(
            session,
            card_serial=serial,
            product_code=int(code),
            channel="desk",
            sold_by=by,
            record_sale=False,
        )
        if index < len(options) and options[index]:
            contract_options[load.action.id] = options[index]
    if request["wallet_reload_cents"]:
        wallet = [p for p in products.list_products(session) if p.application == Application.WALLET]
        if not wallet:
            raise Conflict(
                "aucun produit de rechargement au catalogue", "no wallet product in the catalogue"
            )
        products.load_product(
            session,
            card_serial=serial,
            product_code=wallet[0].code,
            channel="desk",
            sold_by=by,
            amount_cents=int(request["wallet_reload_cents"]),
            record_sale=False,
        )
    for aid in request["school_aid"]:
        entitlements.grant_school_aid(
            session,
            holder_id=job.holder_id,
            school_year=str(aid["school_year"]),
            purpose=AidPurpose(aid["purpose"]),
            funder=str(aid["funder"]),
            amount_cents=int(aid["amount_cents"]),
            by=by,
        )
    card = cards.get_card(session, serial)
    final_apps = [a.value for a in cards.applications_of(card)]
    todo = _new_actions(session, serial, before)
    work, lines = _work(session, job, request, todo, contract_options)
    if job.kind == JobKind.UPDATE:
        work.personalise = [a for a in request["add_applications"] if a not in apps_now]
        work.remove = [a for a in request["remove_applications"] if a in apps_now]
    else:
        work.personalise = final_apps
    valid_from = request.get("valid_from")
    steps = content.plan_steps(
        work, snapshot, date.fromisoformat(valid_from) if valid_from else _today()
    )
    needed = content.key_roles(steps)
    wrapped = [
        k.to_json()
        for k in card_keys(
            keys, bytes.fromhex(serial), [Application(a) for a in sorted({a for a, _ in needed})]
        )
        if (k.application, k.role) in needed
    ]
    job.card_serial = serial
    job.plan = canonical_json({"card_serial": serial, "keys": wrapped, "steps": steps})
    job.summary = canonical_json(
        {
            "applications": final_apps,
            "removed": request.get("remove_applications", []),
            "loads": lines,
            "replaces": job.replaces_serial,
        }
    )
    job.status = JobStatus.WRITING
    job.message = "Écriture en cours"
    job.updated_at = utcnow()
    if not steps:
        _finish(session, job)
    session.flush()
    return job


def _finish(session: Session, job: DeskJob) -> None:
    """Every step is on the card: the card becomes usable (an issue or a replacement)."""
    if job.card_serial is not None:
        cards.activate_card(session, job.card_serial)
    job.status = JobStatus.DONE
    job.current_step = None
    job.message = MESSAGE_DONE if job.kind != JobKind.UPDATE else MESSAGE_DONE_UPDATE
    job.finished_at = utcnow()


def plan_of(job: DeskJob) -> dict[str, Any] | None:
    """The job's plan (JSON), if made."""
    return None if job.plan is None else dict(json.loads(job.plan))


def report_progress(
    session: Session,
    job: DeskJob,
    *,
    terminal_id: str,
    step_id: str | None = None,
    card_tx_counter: int | None = None,
    status: JobStatus | None = None,
    message: str | None = None,
    current: str | None = None,
) -> DeskJob:
    """Record what the station reports: a step on the card, a status, the step being written.

    A step reported twice is a no-op. Its card actions are confirmed with the card counter of the
    session that wrote it (or the card's current counter when the station found the step already
    on the card).

    Raises:
        Conflict: the job is finished, or a status the station may not set.
        InvalidRequest: an unknown step.
    """
    _own(job, terminal_id)
    _require_open(job)
    plan = plan_of(job)
    done: list[str] = json.loads(job.steps_done)
    if step_id is not None:
        if plan is None:
            raise InvalidRequest("pas encore de plan", "no plan yet: attach the card first")
        step = next((s for s in plan["steps"] if s["id"] == step_id), None)
        if step is None:
            raise InvalidRequest(f"étape {step_id} inconnue", f"unknown step {step_id}")
        if step_id not in done:
            done.append(step_id)
            job.steps_done = canonical_json(done)
            if card_tx_counter is not None and job.card_serial is not None:
                for action_id in step["action_ids"]:
                    action = session.get(CardAction, int(action_id))
                    if action is not None and action.status == ActionStatus.PENDING:
                        actions.confirm_action(
                            session, job.card_serial, int(action_id), card_tx_counter
                        )
                    if action is not None:
                        # The load is on the card: now (and only now) the money is collected.
                        products.record_sale(
                            session, action, channel="desk", sold_by=job.created_by
                        )
                _mark_paid(job, {int(a) for a in step["action_ids"]})
                _remember_balances(session, job.card_serial, step, card_tx_counter)
        job.current_step = None
    if status is not None:
        if status not in (
            JobStatus.WAITING_CARD,
            JobStatus.WRITING,
            JobStatus.INTERRUPTED,
            JobStatus.FAILED,
        ):
            raise Conflict(
                f"statut {status.value} réservé au serveur",
                f"status {status.value} is not set by the station",
            )
        job.status = status
        if status == JobStatus.FAILED:
            job.finished_at = utcnow()
            queued = _queue_for_next_tap(session, job)
            if queued and message is not None:
                message = (
                    f"{message[:200]} — {queued} chargement(s) encaissé(s), écrit(s) au prochain "
                    "passage de la carte"
                )
    if message is not None:
        job.message = message[:300]
    if current is not None:
        job.current_step = current[:64]
    if plan is not None and step_id is not None and len(done) >= len(plan["steps"]):
        _finish(session, job)
    job.updated_at = utcnow()
    session.flush()
    return job


def _queue_for_next_tap(session: Session, job: DeskJob) -> int:
    """A failed job on an active card (an update): its loads not written yet stay in the card's
    action list, written at its next tap; their money is collected now (sales recorded, lines
    ``paid`` and ``queued``). A card still being issued keeps them for the desk (retry).

    Returns:
        How many loads were queued.
    """
    plan = plan_of(job)
    if plan is None or job.card_serial is None:
        return 0
    card = cards.get_card(session, job.card_serial)
    if card.status != CardStatus.ACTIVE:
        return 0
    done = set(json.loads(job.steps_done))
    queued: set[int] = set()
    for step in plan["steps"]:
        if step["id"] in done:
            continue
        for action_id in step["action_ids"]:
            action = session.get(CardAction, int(action_id))
            if action is None or action.status != ActionStatus.PENDING:
                continue
            if products.record_sale(session, action, channel="desk", sold_by=job.created_by):
                queued.add(action.id)
    if queued:
        summary = json.loads(job.summary)
        for line in summary.get("loads", []):
            if line.get("action_id") in queued:
                line["paid"] = bool(line.get("to_collect"))
                line["queued"] = True
        job.summary = canonical_json(summary)
    return len(queued)


def _mark_paid(job: DeskJob, action_ids: set[int]) -> None:
    """The summary's load lines of these actions are now on the card (collected if to pay)."""
    summary = json.loads(job.summary)
    for line in summary.get("loads", []):
        if line.get("action_id") in action_ids:
            line["paid"] = bool(line.get("to_collect"))
            line["written"] = True
    job.summary = canonical_json(summary)


def _remember_balances(
    session: Session, serial: str, step: Mapping[str, Any], card_tx_counter: int
) -> None:
    """The purse balances the step left on the card (the card list shows them at once; the
    uploads of later sessions update them)."""
    sv = step.get("sv_reload")
    if sv:
        balance = int(sv["balance_before"]) + int(sv["amount"])
        cards.update_known_balance(session, serial, "wallet.sv", balance, card_tx_counter)
    if step.get("id") == "aid":
        for write in step.get("writes", []):
            values = content.decode_aid_counters(str(write["data"]))
            for purpose, field_name in content.AID_COUNTERS.items():
                cards.update_known_balance(
                    session,
                    serial,
                    f"cursus.{purpose}_aid",
                    int(values[field_name]),
                    card_tx_counter,
                )


def retry_job(session: Session, job: DeskJob, *, by: str) -> DeskJob:
    """Put a failed job back in the desk's queue (the cause fixed: a SAM's keys, a blank card).

    The plan and the steps already on the card are kept: the station resumes where it stopped,
    on the same card (or, when no card was planned yet, on the next blank card).

    Raises:
        Conflict: the job has not failed.
    """
    if job.status != JobStatus.FAILED:
        raise Conflict(
            f"seule une demande échouée peut être relancée (demande {job.id} : {job.status.value})",
            f"only a failed job can be retried (job {job.id} is {job.status.value})",
        )
    job.status = JobStatus.QUEUED
    job.finished_at = None
    job.current_step = None
    job.message = f"Relancée par {by} — " + MESSAGE_QUEUED.lower()
    job.updated_at = utcnow()
    session.flush()
    return job


def progress_of(job: DeskJob) -> tuple[int, int]:
    """Steps done and steps in all (0 of 0 before the plan)."""
    plan = plan_of(job)
    total = 0 if plan is None else len(plan["steps"])
    return len(json.loads(job.steps_done)), total
