"""A throwaway PostgreSQL cluster in a temporary folder, started from Debian's binaries.

Used by the tests, the benchmarks and anyone who wants a real PostgreSQL without touching the
machine's own clusters: ``initdb`` into a fresh folder, ``postgres`` listening on 127.0.0.1 at a
free port with trust authentication, stopped and removed on exit.

PostgreSQL refuses to run as root; when we are root (CI, containers) the server runs as the
``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from card_schema.errors import RegionCardError


class PostgresUnavailable(RegionCardError):
    """PostgreSQL could not be found or started."""


def find_bindir() -> Path:
    """The newest Debian PostgreSQL binaries folder (``/usr/lib/postgresql/<major>/bin``)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not candidates:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found: install the Debian package 'postgresql'"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PostgresCluster:
    """A running throwaway cluster."""

    port: int
    datadir: Path
    database: str = "regioncard"
    user: str = "regioncard"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"


def _demote_to(user: pwd.struct_passwd | None) -> None:
    """In the child, before exec: drop root for the PostgreSQL user (no-op when not root)."""
    if user is not None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)


def _run_as(user: pwd.struct_passwd | None, args: list[str], **kwargs: object) -> None:
    subprocess.run(args, check=True, preexec_fn=lambda: _demote_to(user), **kwargs)  # type: ignore[call-overload]


@contextlib.contextmanager
def throwaway_cluster(timeout_s: float = 30.0) -> Iterator[PostgresCluster]:
    """Start a cluster, yield it, then stop it and delete its folder.

    Raises:
        PostgresUnavailable: binaries missing, or the server did not accept connections in time.
    """
    bindir = find_bindir()
    run_user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="regioncard-pg-"))
    datadir = root / "data"
    datadir.mkdir()
    if run_user is not None:
        for path in (root, datadir):
            os.chown(path, run_user.pw_uid, run_user.pw_gid)
    port = _free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    try:
        _run_as(
            run_user,
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "regioncard",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            **quiet,
        )
        server = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(datadir),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={root}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=60",
            ],
            preexec_fn=lambda: _demote_to(run_user),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"could not initialise PostgreSQL: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise PostgresUnavailable(f"postgres exited with status {server.returncode}")
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise PostgresUnavailable("PostgreSQL did not accept connections in time")
            time.sleep(0.1)
        subprocess.run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "regioncard",
                "regioncard",
            ],
            check=True,
        )
        yield PostgresCluster(port=port, datadir=datadir)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)
