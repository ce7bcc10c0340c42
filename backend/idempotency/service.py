"""Run a selling request at most once per ``Idempotency-Key`` (no FastAPI here).

A desk page or a till that lost the answer to a sale sends it again with the same key: the first
answer is given again (same status and body), nothing is sold twice. The key is claimed in the
request's transaction before the sale runs: two copies at once cannot both sell
(the second is a 409 « en cours »); a sale that fails rolls its claim back with it, so the key can
be used again. The same key with another request body is a 409.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.columns import canonical_json
from backend.errors import Conflict, InvalidRequest
from backend.idempotency.models import IdempotencyKey

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,100}$")


def check_key(key: str | None) -> str | None:
    """The header's value, checked: 1 to 100 printable ASCII characters.

    Raises:
        InvalidRequest: anything else.
    """
    if key is None:
        return None
    if not _KEY.match(key):
        raise InvalidRequest(
            f"en-tête {HEADER} invalide (1 à 100 caractères ASCII visibles)",
            f"invalid {HEADER} header (1 to 100 visible ASCII characters)",
        )
    return key


def run_once(
    session: Session,
    *,
    caller: str,
    key: str | None,
    endpoint: str,
    request: Any,
    run: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any], bool]:
    """``run()`` once for ``(caller, key)``; returns ``(status, body, replayed)``.

    Without a key, ``run()`` runs every time (``replayed`` False).

    Raises:
        Conflict: the key was used with another request, or the same request is in progress.
    """
    if key is None:
        status, body = run()
        return status, body, False
    digest = hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()
    stored = session.get(IdempotencyKey, (caller, key))
    if stored is not None:
        if stored.endpoint != endpoint or stored.request_sha256 != digest:
            raise Conflict(
                f"clé {HEADER} déjà utilisée pour une autre requête",
                f"{HEADER} already used for another request",
            )
        if stored.status_code == 0:
            raise _in_progress()
        return stored.status_code, json.loads(stored.response), True
    row = IdempotencyKey(
        caller=caller,
        key=key,
        endpoint=endpoint,
        request_sha256=digest,
        status_code=0,  # claimed, not answered yet
        response="{}",
    )
    session.add(row)
    try:
        # No savepoint: pysqlite's SAVEPOINT outside BEGIN commits on release. A concurrent
        # claim fails this flush; the Conflict then rolls the whole request back.
        session.flush()
    except IntegrityError:
        raise _in_progress() from None
    status, body = run()
    row.status_code = status
    row.response = json.dumps(body, ensure_ascii=False, sort_keys=True, default=str)
    session.flush()
    return status, body, False


def _in_progress() -> Conflict:
    return Conflict(
        f"une requête avec cette clé {HEADER} est en cours : réessayez dans un instant",
        f"a request with this {HEADER} is in progress: try again shortly",
    )
