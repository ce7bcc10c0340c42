"""The throwaway PostgreSQL cluster really starts, answers SQL, and leaves nothing behind."""

from __future__ import annotations

import subprocess

from backend.pgcluster import find_bindir, throwaway_cluster


def test_cluster_answers_sql_and_is_removed_afterwards() -> None:
    bindir = find_bindir()
    with throwaway_cluster() as cluster:
        out = subprocess.run(
            [
                str(bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(cluster.port),
                "-U",
                cluster.user,
                "-d",
                cluster.database,
                "-tAc",
                "select 6 * 7",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert out == "42"
        datadir = cluster.datadir
        assert (datadir / "PG_VERSION").exists()
    assert not datadir.exists()
