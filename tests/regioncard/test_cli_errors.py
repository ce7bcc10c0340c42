"""Every ``regioncard`` command fails cleanly: a French message, a non-zero exit, no traceback,
and nothing left behind (no stray database, journal, lock or data folder).

The first tests walk the whole argparse tree, so a new subcommand is covered without being
listed; the last ones run, as real processes with no terminal on stdin, each command that
printed a traceback before.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from regioncard.cli import build_parser, main

REGIONCARD = str(Path(sys.executable).parent / "regioncard")
ROOT = Path(__file__).resolve().parents[2]


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(argv prefix, parser) of every runnable subcommand."""
    found = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    for name, child in subs[0].choices.items():
        found.extend(_leaves(child, (*path, name)))
    return found


LEAVES = _leaves(build_parser())


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    for expected in (
        "card new",
        "gate",
        "canteen",
        "desk",
        "backend serve",
        "backend create-agent",
        "backend purge-links",
        "demo",
    ):
        assert expected in names
    assert len(names) >= 20


def _run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_refuses_an_unknown_option_in_french(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_in_process([*path, "--no-such-option", "x"], capsys)
    assert code == 2
    assert "Traceback" not in out + err
    assert "erreur : " in err


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_refuses_bad_values_of_typed_options(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each option with a type or choices, given a value no type accepts."""
    parser = dict(LEAVES)[path]
    checked = 0
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0:
            continue
        if action.type in (None, str, Path) and action.choices is None:
            continue
        code, out, err = _run_in_process(
            [*path, action.option_strings[-1], "%%pas-une-valeur%%"], capsys
        )
        assert code == 2, (action.option_strings, out, err)
        assert "Traceback" not in out + err
        assert "erreur : " in err
        checked += 1
    assert checked >= 0


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_help_is_french_first_without_docstring_markup(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run_in_process([*path, "--help"], capsys)
    assert code == 0
    assert out.startswith("usage : ")
    for markup in ("``", ":func:", ":class:", ":mod:", ":meth:"):
        assert markup not in out, markup
    assert "afficher cette aide" in out


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REGIONCARD_")}
    environment.update(
        {
            "REGIONCARD_HOME": str(cwd / "home"),
            "REGIONCARD_AGENT_PASSWORD": "",
            "PYTHONPATH": str(ROOT),
            **env,
        }
    )
    return subprocess.run(
        [REGIONCARD, *args],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


BAD_COMMANDS = {
    "card new in a missing folder": ["card", "new", "/nonexistent/dir/card.json"],
    "desk with a bad backend URL": [
        "desk",
        "--backend",
        "not-a-url",
        "--terminal-id",
        "DESK-1",
        "--credential-file",
        "cred",
        "--reader",
        "r",
        "--sam",
        "s",
    ],
    "canteen report of a missing journal": [
        "canteen",
        "--school",
        "0801234G",
        "--report",
        "2026-11-27",
        "--journal",
        "/nonexistent/j.db",
    ],
    "canteen with a mistyped school": ["canteen", "--school", "080123G", "--reader", "r"],
    "backend serve on a garbage URL": ["backend", "serve", "--db", "garbage://x"],
    "backend migrate on a garbage URL": ["backend", "migrate", "--db", "garbage://x"],
    "backend create-agent on a garbage URL": [
        "backend",
        "create-agent",
        "marie",
        "--db",
        "garbage://x",
    ],
    "backend create-agent with PostgreSQL unreachable": [
        "backend",
        "create-agent",
        "marie",
        "--db",
        "postgresql+psycopg://regioncard@127.0.0.1:1/regioncard",
    ],
    "backend serve on port 99999": ["backend", "serve", "--port", "99999"],
    "backend purge-links with no database": ["backend", "purge-links"],
    "backend loop with no database": ["backend", "loop", "--once"],
    "backend serve with no database": ["backend", "serve"],
    "demo with 3 holders": ["demo", "--holders", "3"],
    "demo writing into /proc": ["demo", "--out", "/proc/forbidden"],
}


@pytest.mark.parametrize("args", BAD_COMMANDS.values(), ids=BAD_COMMANDS.keys())
def test_bad_commands_fail_in_french_and_leave_nothing(args: list[str], tmp_path: Path) -> None:
    before = set(tmp_path.rglob("*"))
    result = _run(args, tmp_path)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert "erreur : " in result.stderr, result.stderr
    after = set(tmp_path.rglob("*"))
    assert after == before, sorted(str(p) for p in after - before)


def test_a_desk_station_with_no_reader_leaves_no_journal(tmp_path: Path) -> None:
    credential = tmp_path / "desk.credential"
    credential.write_text("rct_example\n")
    before = set(tmp_path.rglob("*"))
    args = ["desk", "--backend", "http://127.0.0.1:1", "--terminal-id", "DESK-9"]
    args += ["--credential-file", str(credential), "--reader", "nope", "--sam", "nope"]
    result = _run(args, tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "erreur : " in result.stderr
    assert set(tmp_path.rglob("*")) == before  # no desk-DESK-9.db, no lock file


def test_create_agent_with_no_terminal_asks_for_the_environment_variable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    migrated = _run(["backend", "migrate", "--data-dir", str(home)], tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert f"dossier de données : {home}" in migrated.stderr
    assert "base de données : sqlite:///" in migrated.stderr
    assert "jeton PKCS#11 : regioncard-backend" in migrated.stderr
    result = _run(["backend", "create-agent", "marie", "--data-dir", str(home)], tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "REGIONCARD_AGENT_PASSWORD" in result.stderr
    # serve refuses to start on a database it cannot reach (here an unreachable PostgreSQL).
    down = "postgresql+psycopg://regioncard@127.0.0.1:1/regioncard?connect_timeout=3"
    refused = _run(["backend", "serve", "--data-dir", str(home), "--db", down], tmp_path)
    assert refused.returncode != 0
    assert "base de données injoignable" in refused.stderr
    assert "Traceback" not in refused.stderr
    created = _run(
        ["backend", "create-agent", "marie", "--data-dir", str(home)],
        tmp_path,
        REGIONCARD_AGENT_PASSWORD="correct horse battery",
    )
    assert created.returncode == 0, created.stderr


def test_the_database_password_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql+psycopg://regioncard:s3cret-Pa55@127.0.0.1:1/regioncard"
    result = _run(["backend", "purge-links", "--db", url], tmp_path)
    assert result.returncode != 0
    assert "s3cret-Pa55" not in result.stderr + result.stdout
    assert "regioncard:***@127.0.0.1:1" in result.stderr
