"""The desk station's side of the backend API (``/api/v1/desk/jobs``), over HTTP with urllib.

The station authenticates as a terminal: ``Authorization: Bearer rct_...`` and
``X-Regioncard-Terminal: <terminal id>`` (docs/backend.md). No third-party HTTP client: the
standard library is enough for a handful of JSON requests per card.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from card_schema.errors import RegionCardError
from terminal.desk.plan import DeskJob

TERMINAL_HEADER = "X-Regioncard-Terminal"
JOBS = "/api/v1/desk/jobs"


class BackendError(RegionCardError):
    """The backend refused a request or could not be reached.

    Attributes:
        status: HTTP status (0 when the backend could not be reached).
        message_fr: the backend's French message, when it sent one.
    """

    def __init__(self, status: int, message: str, message_fr: str = "") -> None:
        self.status = status
        self.message_fr = message_fr or message
        super().__init__(f"backend {status}: {message}")


class DeskBackend:
    """HTTP client of the desk job API for one desk terminal.

    Args:
        base_url: backend root, e.g. ``http://127.0.0.1:8000``.
        terminal_id: the desk's terminal id.
        credential: its ``rct_...`` credential.
        timeout: seconds per request.
    """

    def __init__(
        self, base_url: str, terminal_id: str, credential: str, *, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.terminal_id = terminal_id
        self._credential = credential
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._credential}")
        request.add_header(TERMINAL_HEADER, self.terminal_id)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                raw = answer.read()
                if answer.status == 204 or not raw:
                    return None
                return json.loads(raw)
        except urllib.error.HTTPError as exc:
            try:
                doc = json.loads(exc.read())
                message, message_fr = str(doc.get("message", exc)), str(doc.get("message_fr", ""))
            except (ValueError, AttributeError):
                message, message_fr = str(exc), ""
            raise BackendError(exc.code, message, message_fr) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BackendError(0, f"backend unreachable: {exc}", "serveur injoignable") from exc

    def next_job(self) -> DeskJob | None:
        """Claim the next job of this desk (its own unfinished job first), or ``None``."""
        doc = self._request("GET", f"{JOBS}/next")
        return None if doc is None else DeskJob.from_json(doc)

    def get_job(self, job_id: int) -> DeskJob:
        """The job as the backend knows it now."""
        return DeskJob.from_json(self._request("GET", f"{JOBS}/{job_id}/station"))

    def attach_card(self, job_id: int, card_serial: bytes, snapshot: dict[str, Any]) -> DeskJob:
        """Tell the backend which card is on the reader; get the job back with its plan.

        Args:
            job_id: the job.
            card_serial: the card's serial.
            snapshot: what the card holds now (:func:`terminal.desk.station.card_snapshot`);
                the backend computes final record contents from it once, when it makes the plan.

        Raises:
            BackendError: e.g. 409 when the card is not the job's card or not blank.
        """
        body = {"card_serial": card_serial.hex().upper(), "snapshot": snapshot}
        return DeskJob.from_json(self._request("POST", f"{JOBS}/{job_id}/card", body))

    def progress(
        self,
        job_id: int,
        *,
        step_id: str | None = None,
        card_tx_counter: int | None = None,
        status: str | None = None,
        message: str | None = None,
        current: str | None = None,
    ) -> DeskJob:
        """Report progress: a step written, a status change (``waiting_card``, ``interrupted``,
        ``failed``) with its French message, or the step being written (``current``)."""
        body: dict[str, Any] = {}
        for name, value in (
            ("step_id", step_id),
            ("card_tx_counter", card_tx_counter),
            ("status", status),
            ("message", message),
            ("current", current),
        ):
            if value is not None:
                body[name] = value
        return DeskJob.from_json(self._request("POST", f"{JOBS}/{job_id}/progress", body))
