"""The backend for the demo: started in-process (uvicorn in a thread) and spoken to over HTTP.

Everything the demo does to the backend goes through its HTTP API, as the desk page and the
terminals do: :class:`Api` is a small JSON client on :mod:`urllib` (standard library). The one
exception is the first supervisor account, created in the database like ``regioncard backend
create-agent`` does, and the station -> operator table that the validation loop reads
(no API for it yet: an operator's configuration).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from backend.app import create_app
from backend.keys.service import KeyService
from backend.settings import Settings
from card_schema.errors import RegionCardError

log = logging.getLogger(__name__)


class DemoError(RegionCardError):
    """The demo could not go on (a backend call failed, a component is missing)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class BackendServer:
    """The FastAPI backend served by uvicorn in a background thread, on the work directory.

    Attributes:
        app: the application (``app.state`` gives the database and the key service).
        url: base URL, ``http://127.0.0.1:<port>``.
    """

    app: FastAPI
    url: str
    keys: KeyService
    _server: uvicorn.Server
    _thread: threading.Thread

    @classmethod
    def start(cls, work: Path, master_keys: Mapping[str, bytes]) -> BackendServer:
        """Create the database and the token under ``work``, then serve on a free port.

        Args:
            work: the demo's work directory (SQLite database, JWT secret, SoftHSM2 token).
            master_keys: the key ceremony: the emulated SAMs' master keys, imported in the token.

        Raises:
            DemoError: the server did not answer within 20 s.
        """
        token_dir = work / "softhsm"
        token_dir.mkdir(parents=True)
        keys = KeyService.for_tests(token_dir, master_keys=master_keys)
        settings = Settings(var_dir=work / "backend")
        app = create_app(settings, keys=keys)
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="demo-backend", daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if server.started:
                log.info("backend listening on %s", url)
                return cls(app, url, keys, server, thread)
            if not thread.is_alive():
                break
            time.sleep(0.02)
        server.should_exit = True
        keys.close()
        raise DemoError("le backend n'a pas démarré / the backend did not start")

    def stop(self) -> None:
        """Stop uvicorn and close the token. Idempotent."""
        self._server.should_exit = True
        self._thread.join(10)
        self.app.state.engine.dispose()
        try:
            self.keys.close()
        except Exception:
            log.debug("key service already closed", exc_info=True)


@dataclass
class Api:
    """A JSON client of the backend with one set of credentials.

    Attributes:
        base: base URL.
        headers: authentication headers (agent bearer token, or terminal credential + id).
        calls: requests made, by ``METHOD /path template``.
    """

    base: str
    headers: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request and decode the JSON answer.

        Raises:
            DemoError: an HTTP error, with the backend's French message.
        """
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = dict(self.headers)
        data: bytes | None = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        key = f"{method} {path.split('?')[0]}"
        self.calls[key] = self.calls.get(key, 0) + 1
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("message", detail)
            raise DemoError(f"{method} {path} : HTTP {exc.code} — {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DemoError(f"{method} {path} : {exc}") from exc
        return json.loads(raw) if raw else None

    def get(self, path: str, **query: Any) -> Any:
        """GET with query parameters."""
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body."""
        return self.request("POST", path, body if body is not None else {})

    def as_agent(self, username: str, password: str) -> Api:
        """Log in (OAuth2 password flow) and return a client carrying the agent's token."""
        token = self.request(
            "POST", "/api/v1/auth/token", form={"username": username, "password": password}
        )
        return Api(self.base, {"Authorization": f"Bearer {token['access_token']}"}, self.calls)

    def as_terminal(self, terminal_id: str, credential: str) -> Api:
        """A client carrying a terminal's credential and id."""
        headers = {"Authorization": f"Bearer {credential}", "X-Regioncard-Terminal": terminal_id}
        return Api(self.base, headers, self.calls)
