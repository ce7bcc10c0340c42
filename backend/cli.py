"""``regioncard backend ...``: serve the API, run the validation loop, migrate, create agents,
purge card links."""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Any

from backend.errors import InvalidRequest


def _settings(args: argparse.Namespace) -> Any:
    from backend.settings import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "db", None):
        overrides["database_url"] = args.db
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    """The API, and (by default) the validation loop in a second process.

    Acks leave after the durable insert; posting is the loop's work. Run in its own process
    (``regioncard backend loop``), it takes the second core and full chunks, and an upload
    never waits for it (``--loop inline`` keeps the small-site background task instead,
    ``--loop none`` leaves the loop to a worker started elsewhere).
    """
    import signal
    import subprocess
    import sys

    import uvicorn

    from backend.app import create_app

    settings = _settings(args)
    app = create_app(settings)  # migrates an SQLite database first: the loop starts after
    app.state.validation_auto = args.loop == "inline"
    worker: subprocess.Popen[bytes] | None = None
    if args.loop == "process":
        worker = subprocess.Popen(
            [sys.executable, "-m", "regioncard", "backend", "loop", "--db", settings.database_url],
            env={**os.environ, "REGIONCARD_VAR_DIR": str(settings.var_dir)},
            preexec_fn=_die_with_parent,  # before any thread of ours is started
        )

    def stopped(*_: object) -> None:
        raise SystemExit(0)

    # uvicorn shuts down on SIGTERM, then raises the signal again with the handler it found:
    # this one, so the loop process is stopped below instead of being left running.
    signal.signal(signal.SIGTERM, stopped)
    try:
        if args.workers > 1:
            # Several API processes (uvicorn workers), each its own app from the environment.
            os.environ["REGIONCARD_DATABASE_URL"] = settings.database_url
            os.environ["REGIONCARD_VAR_DIR"] = str(settings.var_dir)
            os.environ[_INLINE_LOOP] = "1" if args.loop == "inline" else ""
            uvicorn.run(
                "backend.cli:served_app",
                factory=True,
                workers=args.workers,
                host=args.host,
                port=args.port,
                log_level=args.log_level,
            )
        else:
            uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)  # it drains what is pending, then stops
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    return 0


_INLINE_LOOP = "REGIONCARD_SERVE_INLINE_LOOP"


def served_app() -> Any:
    """The app of one ``serve --workers N`` process (settings from the environment)."""
    from backend.app import create_app

    app = create_app()
    app.state.validation_auto = bool(os.environ.get(_INLINE_LOOP))
    return app


def _die_with_parent() -> None:
    """In a child process (Linux): receive SIGTERM when the parent dies, even by SIGKILL."""
    import contextlib
    import ctypes
    import signal

    # Not Linux: no prctl; the loop process is still stopped when serve stops normally.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _migrate(args: argparse.Namespace) -> int:
    from backend.migrate import downgrade, upgrade

    settings = _settings(args)
    if settings.database_url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    if args.down:
        downgrade(settings.database_url, args.down)
    else:
        upgrade(settings.database_url)
    return 0


def _create_agent(args: argparse.Namespace) -> int:
    from backend.auth.roles import AgentRole
    from backend.auth.service import create_agent
    from backend.db import make_engine, make_sessionmaker, transaction
    from backend.migrate import upgrade

    settings = _settings(args)
    password = os.environ.get("REGIONCARD_AGENT_PASSWORD") or getpass.getpass(
        f"mot de passe pour {args.user} / password for {args.user}: "
    )
    if not password:
        raise InvalidRequest("mot de passe vide", "empty password")
    if settings.database_url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            create_agent(session, args.user, password, AgentRole(args.role))
    finally:
        engine.dispose()
    print(f"agent {args.user} ({args.role}) créé / created")
    return 0


def _loop(args: argparse.Namespace) -> int:
    import signal
    import threading

    from backend.db import make_engine, make_sessionmaker
    from backend.keys.service import KeyService
    from backend.validation.loop import LoopReport, ValidationLoop

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    keys = KeyService.open(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def progress(chunk: LoopReport) -> None:
        print(
            f"{chunk.records} enregistrement(s), {chunk.posted} comptabilisé(s), "
            f"{chunk.anomalies} anomalie(s) / records, posted, anomalies",
            flush=True,
        )

    try:
        loop = ValidationLoop(make_sessionmaker(engine), keys, keys, chunk_records=args.chunk)
        if args.once:
            stop.set()
        total = loop.serve(stop, linger_s=args.linger_ms / 1000, on_chunk=progress)
    finally:
        keys.close()
        engine.dispose()
    print(f"arrêt : {total.records} enregistrement(s) traité(s) / stopped: {total.records} records")
    return 0


def _purge_links(args: argparse.Namespace) -> int:
    from backend.columns import utcnow
    from backend.db import make_engine, make_sessionmaker, transaction
    from backend.privacy.service import purge_batch_bodies, purge_card_links

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            now = utcnow()
            deleted = purge_card_links(session, now, settings.card_link_retention)
            bodies = purge_batch_bodies(session, now, settings.card_link_retention)
    finally:
        engine.dispose()
    print(f"{deleted} lien(s) carte supprimé(s) / card link(s) deleted")
    print(f"{bodies} lot(s) traité(s) effacé(s) / processed batch bodies deleted")
    return 0


def register(subparsers: Any) -> None:
    """Add ``backend`` and its subcommands to the ``regioncard`` command."""
    parser = subparsers.add_parser("backend", help="backend: API server and administration")
    sub = parser.add_subparsers(dest="backend_command", required=True, metavar="SUBCOMMAND")

    serve = sub.add_parser("serve", help="run the API (OpenAPI at /docs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--db", help="database URL (default: SQLite under ./var/)")
    serve.add_argument(
        "--loop",
        choices=["process", "inline", "none"],
        default="process",
        help="validation loop: its own process (default), a background task of the API "
        "(small sites), or none (a `backend loop` worker runs elsewhere)",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level")
    serve.add_argument(
        "--workers", type=int, default=1, help="API processes (uvicorn workers; default 1)"
    )
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--db", help="database URL")
    migrate.add_argument("--down", metavar="REVISION", help="revert down to REVISION instead")
    migrate.set_defaults(handler=_migrate)

    agent = sub.add_parser(
        "create-agent",
        help="create a desk agent (password from REGIONCARD_AGENT_PASSWORD or prompt)",
    )
    agent.add_argument("user")
    agent.add_argument("--role", choices=["agent", "supervisor", "auditor"], default="agent")
    agent.add_argument("--db", help="database URL")
    agent.set_defaults(handler=_create_agent)

    loop = sub.add_parser(
        "loop",
        help="run the validation loop as a dedicated worker (full chunks; Ctrl-C stops)",
    )
    loop.add_argument("--db", help="database URL")
    loop.add_argument("--chunk", type=int, default=5000, help="records per transaction")
    loop.add_argument("--linger-ms", type=int, default=500, help="longest wait for a chunk to fill")
    loop.add_argument("--once", action="store_true", help="process what is pending, then stop")
    loop.set_defaults(handler=_loop)

    purge = sub.add_parser(
        "purge-links",
        help="delete card links and processed batch bytes older than 48 hours (cron)",
    )
    purge.add_argument("--db", help="database URL")
    purge.set_defaults(handler=_purge_links)
