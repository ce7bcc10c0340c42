"""``regioncard backend ...``: serve the API, run the validation loop, migrate, create agents,
purge card links.

Every command prints the data folder, the database URL (password hidden) and the PKCS#11 token it
uses. Only ``migrate`` and ``serve --init`` may create a database or the auto-created SoftHSM2
token; every other command refuses when they are missing (a mistyped folder must not silently
start an empty database with new keys).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from backend.errors import BackendError, InvalidRequest
from card_schema.argtypes import int_at_least, port_number


class DataDirError(BackendError):
    """A command would create a new database or new keys where it must find existing ones."""

    code = "no_data"


def database_url(text: str) -> str:
    """argparse type: a SQLAlchemy URL of SQLite or PostgreSQL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(text).get_backend_name()
    except ArgumentError:
        backend = ""
    if backend not in ("sqlite", "postgresql"):
        raise argparse.ArgumentTypeError(
            f"adresse de base invalide : {text!r} (sqlite:///chemin ou "
            "postgresql+psycopg://utilisateur@hôte/base) / invalid database URL"
        )
    return text


def _settings(args: argparse.Namespace) -> Any:
    from backend.settings import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "db", None):
        overrides["database_url"] = args.db
    if getattr(args, "data_dir", None):
        overrides["var_dir"] = args.data_dir
    settings = Settings(**overrides)
    print(settings.describe(), file=sys.stderr, flush=True)
    return settings


def _require_existing(settings: Any, command: str, *, keys: bool = True) -> None:
    """Refuse to run ``command`` on a database or token it would have to create.

    ``var/`` used to be relative to the current folder: ``backend purge-links`` run elsewhere
    silently made a new database and new HSM keys. Only ``migrate`` and ``serve --init`` create.
    ``keys``: the command opens the key store (its token must exist too).
    """
    sqlite = settings.sqlite_path
    hint = "créez-la avec « regioncard backend migrate » (ou « backend serve --init »)"
    if sqlite is not None and not sqlite.exists():
        raise DataDirError(
            f"base de données absente : {sqlite} — vérifiez --data-dir / REGIONCARD_HOME, "
            f"ou {hint}",
            f"no database at {sqlite}: check --data-dir / REGIONCARD_HOME, or run migrate",
        )
    token = settings.auto_token_dir
    if keys and token is not None and not (token / "softhsm2.conf").exists():
        raise DataDirError(
            f"jeton PKCS#11 absent : {token} — vérifiez --data-dir / REGIONCARD_HOME, ou {hint}",
            f"no PKCS#11 token at {token}: check --data-dir / REGIONCARD_HOME, or run migrate",
        )


def _check_database(settings: Any) -> None:
    """Connect once; a database that cannot be reached is a French error, not a traceback."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from backend.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        first = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0][:200]
        raise DataDirError(
            f"base de données injoignable : {first}", f"database unreachable: {first}"
        ) from None
    finally:
        engine.dispose()


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
    if args.init:
        _prepare(settings)
    else:
        _require_existing(settings, "serve")
    _check_database(settings)
    app = create_app(settings)
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
    print(f"API : http://{args.host}:{args.port}/docs", file=sys.stderr, flush=True)
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


def _prepare(settings: Any) -> None:
    """Create the data folder, the database (migrated) and the auto-created token if needed."""
    from backend.keys.service import KeyService
    from backend.migrate import upgrade

    settings.var_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sqlite = settings.sqlite_path
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_database(settings)
    upgrade(settings.database_url)
    KeyService.open(settings).close()  # makes the token on first use


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
    from backend.migrate import downgrade

    settings = _settings(args)
    if args.down:
        _require_existing(settings, "migrate", keys=False)
        _check_database(settings)
        downgrade(settings.database_url, args.down)
    else:
        _prepare(settings)
    print("base de données à jour / database migrated")
    return 0


def _create_agent(args: argparse.Namespace) -> int:
    from backend.auth.roles import AgentRole
    from backend.auth.service import create_agent
    from backend.db import make_engine, make_sessionmaker, transaction

    settings = _settings(args)
    _require_existing(settings, "create-agent", keys=False)
    _check_database(settings)
    password = os.environ.get("REGIONCARD_AGENT_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise InvalidRequest(
                "pas de terminal pour saisir le mot de passe : donnez-le dans "
                "REGIONCARD_AGENT_PASSWORD",
                "no terminal to type the password: set REGIONCARD_AGENT_PASSWORD",
            )
        password = getpass.getpass(f"mot de passe pour {args.user} / password for {args.user}: ")
    if not password:
        raise InvalidRequest("mot de passe vide", "empty password")
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
    _require_existing(settings, "loop")
    _check_database(settings)
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
    _require_existing(settings, "purge-links", keys=False)
    _check_database(settings)
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


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=database_url,
        metavar="URL",
        help="adresse de la base (défaut : SQLite dans le dossier de données) / database URL",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DOSSIER",
        help="dossier de données (défaut : $REGIONCARD_HOME ou ~/.local/share/regioncard) / "
        "data folder",
    )


def register(subparsers: Any) -> None:
    """Add ``backend`` and its subcommands to the ``regioncard`` command."""
    parser = subparsers.add_parser(
        "backend",
        help="serveur central : API et administration / backend: API server and administration",
        description="Serveur central de la carte régionale. Chaque commande affiche d'abord le "
        "dossier de données, la base (mot de passe masqué) et le jeton PKCS#11 utilisés ; seules "
        "« migrate » et « serve --init » créent une base ou un jeton.",
    )
    sub = parser.add_subparsers(dest="backend_command", required=True, metavar="SOUS-COMMANDE")

    serve = sub.add_parser(
        "serve", help="lancer l'API (documentation sur /docs) / run the API (OpenAPI at /docs)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="adresse d'écoute / listen address")
    serve.add_argument(
        "--port", type=port_number, default=8000, help="port d'écoute (1-65535) / listen port"
    )
    serve.add_argument(
        "--init",
        action="store_true",
        help="créer la base et le jeton s'ils manquent (premier démarrage) / create if missing",
    )
    _add_store_options(serve)
    serve.add_argument(
        "--loop",
        choices=["process", "inline", "none"],
        default="process",
        help="boucle de validation : son propre processus (défaut), une tâche de l'API (petits "
        "sites) ou aucune (un « backend loop » tourne ailleurs) / validation loop: own process, "
        "inline, or none",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="niveau de journal d'uvicorn / uvicorn log level",
    )
    serve.add_argument(
        "--workers",
        type=int_at_least(1),
        default=1,
        help="processus d'API (workers uvicorn ; défaut 1) / API processes",
    )
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser(
        "migrate",
        help="créer ou mettre à jour la base (et le jeton de démonstration) / apply migrations",
    )
    migrate.add_argument(
        "--down", metavar="REVISION", help="revenir à REVISION / revert down to REVISION"
    )
    _add_store_options(migrate)
    migrate.set_defaults(handler=_migrate)

    agent = sub.add_parser(
        "create-agent",
        help="créer un compte d'agent (mot de passe : REGIONCARD_AGENT_PASSWORD ou saisie) / "
        "create a desk agent",
    )
    agent.add_argument("user", help="identifiant de l'agent / user name")
    agent.add_argument(
        "--role",
        choices=["agent", "supervisor", "auditor"],
        default="agent",
        help="rôle / role",
    )
    _add_store_options(agent)
    agent.set_defaults(handler=_create_agent)

    loop = sub.add_parser(
        "loop",
        help="boucle de validation en processus dédié (Ctrl-C l'arrête) / validation loop worker",
    )
    _add_store_options(loop)
    loop.add_argument(
        "--chunk",
        type=int_at_least(1),
        default=5000,
        help="enregistrements par transaction / records per transaction",
    )
    loop.add_argument(
        "--linger-ms",
        type=int_at_least(0),
        default=500,
        help="attente maximale d'un lot plein / longest wait for a chunk",
    )
    loop.add_argument(
        "--once", action="store_true", help="traiter ce qui attend puis s'arrêter / run once"
    )
    loop.set_defaults(handler=_loop)

    purge = sub.add_parser(
        "purge-links",
        help="effacer les liens carte et lots traités de plus de 48 h (cron) / purge old links",
    )
    _add_store_options(purge)
    purge.set_defaults(handler=_purge_links)
