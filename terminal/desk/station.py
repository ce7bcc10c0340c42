"""The desk station: takes the desk's jobs from the backend and writes them on the card.

:class:`DeskStation` is what ``regioncard desk`` runs. The backend holds the issuer keys; the
station's SAM holds only the transport key, and receives each card's keys wrapped (remote key
custody without a remote SAM: docs/backend.md, docs/desk.md).

One job, seen from the station (:meth:`DeskStation.issue`):

1. status ``waiting_card`` « Posez une carte vierge sur le lecteur » until a card is on the reader;
2. the card's serial and a snapshot of its content go to the backend, which registers the card
   (an issue) and answers the plan, once (a resumed job keeps its plan);
3. each step is written in its own secure session and reported at once (``writing``,
   « Écriture en cours : contrats 2/3 »);
4. the last step reported, the backend marks the job ``done`` (« Carte émise »).

A card pulled away is reported as ``interrupted`` (« Carte retirée pendant l'écriture —
reposez-la pour reprendre »); when it comes back the station goes on from the first step not
reported (every step is idempotent, see :mod:`terminal.desk.writer`). A job left interrupted by a
station that stopped is handed back to the same desk by ``/jobs/next``. The desk SAM's reader
failing leaves the job ``interrupted`` too, with its own message (« Module de sécurité du guichet
injoignable ... »): the card may stay on the reader, and the next call resumes the job.

With a journal (``journal=``), the station is a terminal like the gate and the till: every load
step (contracts, Cursus aid, SV reload) is journaled write-ahead by its :class:`CardWriter`, and
with an upload key (``upload_key=``, the device key registered for the desk terminal) the decided
records go to ``/api/v1/uploads`` in signed batches (:class:`~terminal.journal.upload.UploadQueue`
over :class:`~terminal.journal.upload.HTTPUploadTransport`, the station's credential, built by
:func:`terminal.uploader.upload_queue` like the gate's and the till's), after
every job and at least every ``upload_interval`` seconds while :meth:`DeskStation.run_forever`
waits (docs/desk.md, "Journal and uploads").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.layout import CARD_LAYOUT, FileType
from firmware_host.readers.base import Reader, ReaderError
from terminal.desk.client import BackendError, DeskBackend
from terminal.desk.plan import DeskJob, PlanStep
from terminal.desk.writer import (
    CardPulled,
    CardStateError,
    CardWriter,
    DeskWriteError,
    SAMUnavailable,
    StepResult,
    WrongCard,
    read_card_serial,
)
from terminal.engine import (
    CardError,
    CardSelection,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMError,
    select_card,
)
from terminal.journal.store import Journal
from terminal.journal.upload import UploadQueue, UploadReport
from terminal.uploader import upload_queue

log = logging.getLogger(__name__)


class Messages:
    """What the agent reads on the desk page (French), set by the station."""

    PLACE_BLANK = "Posez une carte vierge sur le lecteur"
    PLACE_CARD = "Posez la carte {serial} sur le lecteur"
    WRITING = "Écriture en cours : {label} {number}/{total}"
    PULLED = "Carte retirée pendant l'écriture — reposez-la pour reprendre"
    WRONG_CARD = "Ce n'est pas la carte en cours d'écriture ({found}) : reposez la carte {expected}"
    NOT_A_CARD = "Carte illisible ou non régionale : posez une carte de la région"
    CHANGED = "La carte a changé ailleurs : émission arrêtée ({detail})"
    SAM = "Le module de sécurité du guichet a refusé les clés de la carte"
    SAM_UNAVAILABLE = (
        "Module de sécurité du guichet injoignable — vérifiez son lecteur ; "
        "la carte peut rester posée, l'écriture reprendra"
    )
    SAM_REFUSED = (
        "Le module de sécurité du guichet a refusé « {command} » ({sw:04X} : {cause}) — "
        "faites-le vérifier, puis relancez la demande"
    )
    CARD_REFUSED = "La carte a refusé « {command} » ({sw:04X}) : {cause}"
    BACKEND = "Refusé par le serveur : {detail}"
    DONE = "Carte émise"


# Why a SAM refuses a command, in the agent's words (status word -> French cause).
SAM_CAUSES_FR = {
    0x6A88: "clé absente du module",
    0x6A83: "clé absente du module",
    0x6982: "condition de sécurité non remplie",
    0x6985: "commande refusée dans cet état",
    0x6988: "signature de la carte incorrecte",
    0x6D00: "commande inconnue du module",
}
CARD_CAUSES_FR = {
    0x6982: "condition de sécurité non remplie",
    0x6985: "application invalidée ou non sélectionnée",
    0x6A82: "fichier absent de la carte",
    0x6A83: "enregistrement absent de la carte",
    0x6A88: "clé absente de la carte",
    0x6400: "écriture impossible (mémoire)",
}


def refusal_message(exc: EngineError) -> str:
    """The French message for a card or SAM refusal that stops a job (it names the real cause:
    not « carte illisible » when it is the desk's SAM that lacks a key)."""
    if isinstance(exc, SAMError):
        return Messages.SAM_REFUSED.format(
            command=exc.command.value,
            sw=exc.sw,
            cause=SAM_CAUSES_FR.get(exc.sw, "refus du module"),
        )
    if isinstance(exc, CardError):
        return Messages.CARD_REFUSED.format(
            command=exc.command.value,
            sw=exc.sw,
            cause=CARD_CAUSES_FR.get(exc.sw, "refus de la carte"),
        )
    return Messages.NOT_A_CARD


@dataclass(frozen=True)
class IssueOutcome:
    """How :meth:`DeskStation.issue` left a job.

    Attributes:
        job: the job as the backend last answered it (its ``status``: ``done``, ``failed``,
            ``interrupted`` or ``waiting_card``).
        written: steps written during this call.
        interruptions: how many times the card was pulled during this call.
    """

    job: DeskJob
    written: tuple[StepResult, ...]
    interruptions: int

    @property
    def done(self) -> bool:
        """Whether the job is finished and the card holds everything."""
        return self.job.status == "done"


def card_snapshot(card_reader: Reader) -> dict[str, Any]:
    """What the card holds now: every record of every application (free reading) and the SV state.

    JSON-ready: ``{"records": {"plum.contracts": ["<hex>", ...], ...}, "sv": {"tnum", "balance"}}``.
    The backend computes the final content of relative loads (aid credits, trip counters) from it.

    Raises:
        CardPulled: the card left.
    """
    records: dict[str, list[str]] = {}
    sv: dict[str, int] | None = None
    try:
        card = select_card(card_reader, CardSelection("plum"))
        tm = CardTransactionManager(card_reader, card)
        for layout in CARD_LAYOUT.applications:
            files = [f.name for f in layout.files if f.type is not FileType.SV_LOG]
            app = tm.process_select_application(layout.name, reads=files)
            if app is None:
                continue
            for name in files:
                records[f"{layout.name}.{name}"] = [r.hex() for r in app.file_records(name)]
            if layout.stored_value:
                tm.prepare_sv_get(debit=False)
                tm.process_commands()
                if app.sv is not None:
                    sv = {"tnum": app.sv.tnum, "balance": app.sv.balance}
    except (ReaderError, CommunicationError) as exc:
        raise CardPulled(None, exc) from exc
    return {"records": records, "sv": sv}


class DeskStation:
    """A desk station: one card reader, one SAM reader, the backend.

    Args:
        card_reader: the desk's contactless reader.
        sam_reader: the reader holding the desk SAM (it holds the transport key only).
        backend_url: backend root URL.
        terminal_id: this desk's terminal id (registered, kind ``desk``).
        credential: its ``rct_...`` credential.
        card_timeout: seconds to wait for a card (first put down, or put back after a pull)
            before leaving the job as it is (``waiting_card`` / ``interrupted``) and returning.
        poll_interval: seconds between two ``/jobs/next`` when the queue is empty.
        backend: the HTTP client (built from the three arguments above if omitted).
        clock: current time (SV log dates, journal records).
        journal: the desk terminal's journal, opened as owner (same thread); ``None``: load
            steps are not journaled.
        upload_key: the desk terminal's Ed25519 device key; with ``journal``, the station
            uploads its records itself (:meth:`upload`).
        upload_interval: seconds between two uploads while :meth:`run_forever` waits.
        uploads: an upload queue to use instead of the one built from ``upload_key`` (tests,
            the demo's simulated transport).
    """

    def __init__(
        self,
        card_reader: Reader,
        sam_reader: Reader,
        backend_url: str,
        terminal_id: str,
        credential: str,
        *,
        card_timeout: float = 60.0,
        poll_interval: float = 1.0,
        backend: DeskBackend | None = None,
        clock: Callable[[], datetime] = datetime.now,
        journal: Journal | None = None,
        upload_key: Ed25519PrivateKey | None = None,
        upload_interval: float = 60.0,
        uploads: UploadQueue | None = None,
    ) -> None:
        if journal is not None and journal.terminal_id != terminal_id:
            raise ValueError(f"journal of {journal.terminal_id}, station {terminal_id}")
        self.card_reader = card_reader
        self.backend = backend or DeskBackend(backend_url, terminal_id, credential)
        self.journal = journal
        self.writer = CardWriter(card_reader, sam_reader, clock=clock, journal=journal)
        self.card_timeout = card_timeout
        self.poll_interval = poll_interval
        self.upload_interval = upload_interval
        self.uploads = uploads
        if uploads is None and journal is not None and upload_key is not None:
            self.uploads = upload_queue(journal, backend_url, credential, upload_key)
        self._last_upload = float("-inf")

    # -- loop -------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Take and write jobs until ``stop`` is set (or forever), uploading the journal."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                outcome = self.process_next_job()
            except BackendError as exc:
                log.warning("backend: %s", exc)
                outcome = None
            due = time.monotonic() - self._last_upload >= self.upload_interval
            if outcome is not None or due:
                self.upload()
            if outcome is None or not outcome.done:
                stop.wait(self.poll_interval)
        self.upload()

    def upload(self) -> UploadReport | None:
        """Send the journal's decided records to the backend (``None``: no upload queue).

        Failures are reported, not raised: the batches stay in the journal's outbox and the
        next call sends them again, byte for byte.
        """
        if self.uploads is None:
            return None
        self._last_upload = time.monotonic()
        report = self.uploads.upload()
        if report.error:
            log.warning("upload: %s", report.error)
        return report

    def process_next_job(self) -> IssueOutcome | None:
        """Claim the desk's next job and write it; ``None`` when the queue is empty.

        Raises:
            BackendError: the backend could not be reached.
        """
        job = self.backend.next_job()
        if job is None:
            return None
        return self.issue(job)

    # -- one job ----------------------------------------------------------------------------
    def _report(self, job: DeskJob, **fields: Any) -> DeskJob:
        return self.backend.progress(job.id, **fields)

    def _wait_for_card(self, job: DeskJob) -> DeskJob | None:
        """Wait for a card on the reader; ``None`` (job left as is) after ``card_timeout``."""
        if self.card_reader.card_present():
            return job
        if job.status != "interrupted":
            if job.card_serial and (job.kind == "update" or job.plan is not None):
                message = Messages.PLACE_CARD.format(serial=job.card_serial)
            else:
                message = Messages.PLACE_BLANK
            job = self._report(job, status="waiting_card", message=message)
        if not self.card_reader.wait_for_card(self.card_timeout):
            return None
        return job

    def _lifted(self) -> bool:
        """Whether the reader is empty (at once, or within ``card_timeout``)."""
        with contextlib.suppress(ReaderError):
            self.card_reader.disconnect()
        if not self.card_reader.card_present():
            return True
        return self.card_reader.wait_for_removal(self.card_timeout)

    def issue(self, job: DeskJob) -> IssueOutcome:
        """Write one job on the card on the reader, resuming where it stopped.

        Returns after the job is ``done`` or ``failed``, or when no card came within
        ``card_timeout`` (the job stays ``waiting_card`` or ``interrupted``; the next
        :meth:`process_next_job` resumes it).

        Raises:
            BackendError: the backend could not be reached (the job stays as it was; every
                step the card holds is found again at the next attempt).
        """
        written: list[StepResult] = []
        interruptions = 0
        while job.status not in ("done", "failed"):
            waited = self._wait_for_card(job)
            if waited is None:
                return IssueOutcome(job, tuple(written), interruptions)
            job = waited
            try:
                job = self._attach_and_write(job, written)
            except CardPulled as exc:
                interruptions += 1
                log.info("job %s: %s", job.id, exc)
                job = self._report(job, status="interrupted", message=Messages.PULLED)
                # The link may have failed with the card still there: wait for it to be lifted
                # so that the agent puts it down again deliberately.
                if not self._lifted():
                    return IssueOutcome(job, tuple(written), interruptions)
            except WrongCard as exc:
                message = Messages.WRONG_CARD.format(
                    found=exc.found.hex().upper(), expected=exc.expected.hex().upper()
                )
                job = self._report(job, status="interrupted", message=message)
                if not self._lifted():
                    return IssueOutcome(job, tuple(written), interruptions)
            except SAMUnavailable as exc:
                # Not the card: lifting it would not help. The job waits, resumable, for the
                # next call (run_forever retries after its poll interval).
                log.error("job %s: %s", job.id, exc)
                job = self._report(job, status="interrupted", message=Messages.SAM_UNAVAILABLE)
                return IssueOutcome(job, tuple(written), interruptions)
            except CardStateError as exc:
                job = self._report(
                    job, status="failed", message=Messages.CHANGED.format(detail=exc)
                )
            except DeskWriteError as exc:
                log.warning("job %s: %s", job.id, exc)
                job = self._report(job, status="failed", message=Messages.SAM)
            except EngineError as exc:
                log.warning("job %s: refused: %s", job.id, exc)
                job = self._report(job, status="failed", message=refusal_message(exc)[:300])
            except BackendError as exc:
                if exc.status in (0, 401, 503):
                    raise
                job = self._report(
                    job, status="failed", message=Messages.BACKEND.format(detail=exc.message_fr)
                )
        return IssueOutcome(job, tuple(written), interruptions)

    def _attach_and_write(self, job: DeskJob, written: list[StepResult]) -> DeskJob:
        if job.plan is None:
            serial = read_card_serial(self.card_reader)
            job = self.backend.attach_card(job.id, serial, card_snapshot(self.card_reader))
        plan = job.plan
        if plan is None:
            raise BackendError(500, "no plan", "le serveur n'a pas préparé la carte")
        state = {"job": job}

        def started(step: PlanStep, number: int, total: int) -> None:
            message = Messages.WRITING.format(label=step.label_fr, number=number, total=total)
            state["job"] = self._report(
                state["job"], status="writing", message=message, current=step.id
            )

        def finished(result: StepResult) -> None:
            written.append(result)
            state["job"] = self._report(
                state["job"], step_id=result.step.id, card_tx_counter=result.card_tx_counter
            )

        self.writer.write(plan, done=job.steps_done, on_start=started, on_step=finished)
        job = state["job"]
        if job.status != "done":  # every step was on the card already: report the last one
            job = self.backend.get_job(job.id)
        return job
