"""The issuing desk station: writes the cards the desk page asks for (issue 6, docs/desk.md).

Public API (stable; ``make demo`` builds on it):

- :class:`DeskStation` ``(card_reader, sam_reader, backend_url, terminal_id, credential,
  *, card_timeout=60.0, poll_interval=1.0, journal=None, upload_key=None,
  upload_interval=60.0, uploads=None)``: with a terminal ``Journal`` every load step (contract,
  aid, SV reload) is journaled write-ahead; with the device key the journal is uploaded
  (``upload()``, after each job and periodically in ``run_forever``; docs/desk.md):

  - ``run_forever(stop=None)``: poll ``GET /api/v1/desk/jobs/next`` and write each job;
  - ``process_next_job() -> IssueOutcome | None``: claim and write one job (``None``: queue
    empty);
  - ``issue(job: DeskJob) -> IssueOutcome``: write one job on the card on the reader, reporting
    progress after every step, resuming after a pulled card (the card put back within
    ``card_timeout``), returning when the job is ``done`` / ``failed`` or when no card came
    (the job stays ``waiting_card`` / ``interrupted`` and the next call resumes it).

- :class:`IssueOutcome`: ``job`` (last :class:`DeskJob` from the backend; ``.status``),
  ``written`` (:class:`StepResult` per step written now), ``interruptions``, ``done``.
- :class:`CardWriter` ``(card_reader, sam_reader, *, clock=..., journal=None)``:
  ``write(plan, done=(), on_step=None, on_start=None) -> list[StepResult]`` — the library
  level, no backend: writes a :class:`CardPlan` (wrapped keys + idempotent steps), raises
  :class:`CardPulled` when the card leaves, :class:`SAMUnavailable` when the SAM's reader
  fails (call ``write`` again with the steps done so far to resume).
- :class:`DeskBackend` ``(base_url, terminal_id, credential)``: the HTTP client (urllib):
  ``next_job``, ``get_job``, ``attach_card``, ``progress``.
- Plan model (:mod:`terminal.desk.plan`): :class:`DeskJob`, :class:`CardPlan`,
  :class:`PlanStep`, :class:`RecordWrite`, :class:`SVReload`, :class:`WrappedCardKey`.
- :func:`card_snapshot` (what the card holds, sent to the backend to build the plan),
  :func:`load_card_key` (SAM Load Card Key), :class:`Messages` (the French texts).

Job statuses: ``queued`` -> ``waiting_card`` -> ``writing`` -> ``done``; ``interrupted`` (card
pulled or SAM unreachable, resumable) goes back to ``writing``; ``failed`` is final.

Typical use (a demo issuing many cards)::

    station = DeskStation(card_reader, sam_reader, "http://127.0.0.1:8000", "desk-01", cred,
                          card_timeout=5)
    # an agent created a job: POST /api/v1/desk/jobs (docs/desk.md)
    reader.insert(blank_card)
    outcome = station.process_next_job()
    assert outcome is not None and outcome.done
"""

from terminal.desk.client import BackendError, DeskBackend
from terminal.desk.plan import (
    CardPlan,
    DeskJob,
    PlanError,
    PlanStep,
    RecordWrite,
    SVReload,
    WrappedCardKey,
)
from terminal.desk.station import DeskStation, IssueOutcome, Messages, card_snapshot
from terminal.desk.writer import (
    CardPulled,
    CardStateError,
    CardWriter,
    DeskWriteError,
    SAMKeyError,
    SAMUnavailable,
    StepResult,
    WrongCard,
    load_card_key,
    read_card_serial,
)

__all__ = [
    "BackendError",
    "CardPlan",
    "CardPulled",
    "CardStateError",
    "CardWriter",
    "DeskBackend",
    "DeskJob",
    "DeskStation",
    "DeskWriteError",
    "IssueOutcome",
    "Messages",
    "PlanError",
    "PlanStep",
    "RecordWrite",
    "SAMKeyError",
    "SAMUnavailable",
    "SVReload",
    "StepResult",
    "WrappedCardKey",
    "WrongCard",
    "card_snapshot",
    "load_card_key",
    "read_card_serial",
]
