"""Pushed tables kept on disk (terminal.fares.store) and reloaded at start by PushedTables.

A "restart" is a new PushedTables on the same directory. Power cuts are injected into the store's
system calls (each of them in turn); a cut is a BaseException, so nothing in the terminal can
catch it, like a process that stops. Every instant is fixed; no test reads the wall clock.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fares_builders import TARIFF, at

import terminal.fares.store as store_module
from terminal.fares.denylist import DenyList
from terminal.fares.errors import RollbackRefused, TableAgeRefused
from terminal.fares.signed import (
    DENY_LIST_DOCUMENT,
    TARIFF_DOCUMENT,
    PushedTables,
    SignedEnvelope,
    sign_envelope,
)
from terminal.fares.store import TableStore

NOW = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
LOGGER = "terminal.fares"


def tariff_envelope(
    version: int, *, issued_at: datetime = NOW, key: Ed25519PrivateKey = KEY, **changes: Any
) -> SignedEnvelope:
    payload = json.loads(TARIFF.model_dump_json())
    payload.update(version=version, **changes)
    return sign_envelope(key, "tariff", version, issued_at, payload)


def full_list(
    version: int, serials: Sequence[str], *, issued_at: datetime = NOW, key: Ed25519PrivateKey = KEY
) -> SignedEnvelope:
    return sign_envelope(key, "deny_list", version, issued_at, {"serials": list(serials)})


def delta(
    version: int, add: Sequence[str] = (), remove: Sequence[str] = (), issued_at: datetime = NOW
) -> SignedEnvelope:
    payload = {"base_version": version - 1, "add": list(add), "remove": list(remove)}
    return sign_envelope(KEY, "deny_list_delta", version, issued_at, payload)


def tables_in(directory: Path, now: datetime = NOW, **kwargs: Any) -> PushedTables:
    """A terminal started (or restarted) on ``directory``."""
    return PushedTables(KEY.public_key(), TARIFF, store=TableStore(directory), now=now, **kwargs)


def held(tables: PushedTables) -> tuple[Any, ...]:
    """Everything a restart must give back."""
    return (tables.tariff, tables.pending_tariff, tables.deny_list, tables.stored_deltas)


def fill(tables: PushedTables) -> None:
    """Tariff 2 in force, 3 pending from April; deny-list 5 (full), then 6 and 7 (deltas)."""
    tables.offer_tariff(tariff_envelope(2), NOW)
    tables.offer_tariff(tariff_envelope(3, valid_from="2025-04-01"), NOW)
    tables.offer_deny_list(full_list(5, ["AA01", "BB02"]), NOW)
    tables.offer_deny_list(delta(6, add=["CC03"], remove=["AA01"]), NOW)
    tables.offer_deny_list(delta(7, add=["DD04"]), NOW)


def document(directory: Path, name: str) -> Any:
    return json.loads((directory / name).read_text(encoding="utf-8"))


def write_document(directory: Path, name: str, value: Any) -> None:
    (directory / name).write_text(json.dumps(value), encoding="utf-8")


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    fill(tables_in(tmp_path))
    return tmp_path


# --- restart -------------------------------------------------------------------------------------


def test_restart_gives_back_every_table(filled: Path) -> None:
    before = PushedTables(KEY.public_key(), TARIFF)
    fill(before)
    after = tables_in(filled)
    assert held(after) == held(before)
    assert after.tariff.version == 2 and after.pending_tariff is not None
    assert after.pending_tariff.version == 3
    assert after.deny_list.version == 7 and after.deny_list.serials == {"BB02", "CC03", "DD04"}
    assert after.stored_deltas == 2
    assert after.tariff_at(at(2025, 4, 1, 0, 0)).version == 3  # the pending table's day


def test_without_a_store_nothing_comes_back(tmp_path: Path) -> None:
    fill(PushedTables(KEY.public_key(), TARIFF))
    assert list(tmp_path.iterdir()) == []
    assert tables_in(tmp_path).deny_list == DenyList()


def test_the_store_holds_the_signed_envelopes(filled: Path) -> None:
    tariff = document(filled, TARIFF_DOCUMENT)
    assert SignedEnvelope.from_obj(tariff["in_force"]).version == 2
    assert SignedEnvelope.from_obj(tariff["pending"]).version == 3
    deny = document(filled, DENY_LIST_DOCUMENT)
    assert (
        SignedEnvelope.from_obj(deny["full"]).signed_bytes()
        == full_list(5, ["AA01", "BB02"]).signed_bytes()
    )
    assert [d["version"] for d in deny["deltas"]] == [6, 7]


def test_a_new_full_list_replaces_the_stored_deltas(filled: Path) -> None:
    tables_in(filled).offer_deny_list(full_list(8, ["EE05"]), NOW)
    deny = document(filled, DENY_LIST_DOCUMENT)
    assert (deny["full"]["version"], deny["deltas"]) == (8, [])
    again = tables_in(filled)
    assert again.deny_list.version == 8 and again.deny_list.serials == {"EE05"}
    assert again.stored_deltas == 0


def test_deltas_on_the_list_given_at_start(tmp_path: Path) -> None:
    base = DenyList(1, NOW, frozenset({"AA01"}))
    tables_in(tmp_path, deny_list=base).offer_deny_list(delta(2, add=["BB02"]), NOW)
    assert document(tmp_path, DENY_LIST_DOCUMENT)["full"] is None
    assert tables_in(tmp_path, deny_list=base).deny_list.serials == {"AA01", "BB02"}


def test_a_promoted_tariff_is_stored_as_in_force_with_the_next_one(tmp_path: Path) -> None:
    april = at(2025, 4, 2)
    tables = tables_in(tmp_path)
    tables.offer_tariff(tariff_envelope(2, valid_from="2025-04-01"), NOW)
    assert tables_in(tmp_path).tariff_at(april).version == 2  # promoted again after a restart
    assert tables.tariff_at(april).version == 2
    tables.offer_tariff(tariff_envelope(3, issued_at=april, valid_from="2025-05-01"), april)
    again = tables_in(tmp_path, now=april)
    assert again.tariff.version == 2 and again.pending_tariff is not None
    assert again.pending_tariff.version == 3


# --- rollback protection across a restart --------------------------------------------------------

# (replay, deny-list version of a terminal that would accept it)
REPLAYS = [
    pytest.param(lambda t, n: t.offer_deny_list(full_list(7, ["AA01"]), n), 0, id="full-same"),
    pytest.param(lambda t, n: t.offer_deny_list(full_list(6, []), n), 0, id="full-older"),
    pytest.param(
        lambda t, n: t.offer_deny_list(delta(7, remove=["DD04"]), n), 6, id="delta-replay"
    ),
    pytest.param(
        lambda t, n: t.offer_tariff(tariff_envelope(3), n), 0, id="tariff-pending-version"
    ),
    pytest.param(lambda t, n: t.offer_tariff(tariff_envelope(2), n), 0, id="tariff-in-force"),
]


@pytest.mark.parametrize(("replay", "taken_from"), REPLAYS)
def test_rollback_refused_after_a_restart(
    filled: Path, replay: Callable[[PushedTables, datetime], Any], taken_from: int
) -> None:
    later = NOW + timedelta(hours=1)  # the replayed envelopes are still young and well signed
    replay(PushedTables(KEY.public_key(), TARIFF, DenyList(taken_from, NOW)), later)
    restarted = tables_in(filled, now=later)
    before = held(restarted)
    with pytest.raises(RollbackRefused):
        replay(restarted, later)
    assert held(restarted) == before
    assert held(tables_in(filled, now=later)) == before


def test_the_next_delta_follows_the_reloaded_version(filled: Path) -> None:
    restarted = tables_in(filled)
    restarted.offer_deny_list(delta(8, add=["EE05"]), NOW)
    assert tables_in(filled).deny_list.serials == {"BB02", "CC03", "DD04", "EE05"}


# --- power cuts and write failures in the store --------------------------------------------------


class PowerCut(BaseException):
    """The power went: nothing runs after it (not an Exception: nothing may catch it)."""


WRITE_STEPS = ["open", "write", "fsync", "close", "replace", "open", "fsync", "close"]


class FaultyOS:
    """The ``os`` of terminal.fares.store, failing at its ``fail_at``-th system call.

    A write fails after writing half of its bytes (a torn temporary file); a close after closing;
    any other call before it runs. ``calls`` records the calls made, ``done`` those that ran
    before the failure; ``observe`` (if set) is called with the name before each call.
    """

    WRAPPED = ("open", "write", "fsync", "close", "replace")

    def __init__(self, fail_at: int | None, error: BaseException) -> None:
        self.fail_at, self.error = fail_at, error
        self.calls: list[str] = []
        self.done: list[str] = []
        self.observe: Callable[[str], None] | None = None

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.WRAPPED:
            return real
        return lambda *args, **kwargs: self._call(name, real, *args, **kwargs)

    def _call(self, name: str, real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.observe is not None:
            self.observe(name)
        index = len(self.calls)
        self.calls.append(name)
        if index != self.fail_at:
            result = real(*args, **kwargs)
            if self.fail_at is None or index < self.fail_at:
                self.done.append(name)
            return result
        if name == "write":
            fd, data = args
            real(fd, bytes(data[: len(data) // 2]))
        elif name == "close":
            real(*args)
        raise self.error


@pytest.fixture
def faulty_os(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FaultyOS]:
    """Install a :class:`FaultyOS` (``fail_at=None``: only counts) as the store's ``os``."""

    def install(fail_at: int | None, error: BaseException | None = None) -> FaultyOS:
        faulty = FaultyOS(fail_at, error or PowerCut())
        monkeypatch.setattr(store_module, "os", faulty)
        return faulty

    return install


def test_verified_then_stored_then_in_force(
    tmp_path: Path, faulty_os: Callable[..., FaultyOS]
) -> None:
    tables = tables_in(tmp_path)
    fill(tables)
    faulty = faulty_os(None)
    seen: list[tuple[int, int]] = []
    faulty.observe = lambda name: seen.append((tables.deny_list.version, tables.tariff.version))
    with pytest.raises(RollbackRefused):
        tables.offer_deny_list(full_list(7, []), NOW)
    assert faulty.calls == []  # refused: nothing written
    tables.offer_deny_list(delta(8, add=["EE05"]), NOW)
    assert seen == [(7, 2)] * len(WRITE_STEPS)  # the old list in force during the whole write
    assert tables.deny_list.version == 8
    seen.clear()
    tables.offer_tariff(tariff_envelope(4), NOW)
    assert seen == [(8, 2)] * len(WRITE_STEPS) and tables.tariff.version == 4


NEW_TABLES = [
    pytest.param(
        lambda t: t.offer_deny_list(delta(8, add=["EE05"]), NOW),
        lambda t: t.deny_list.version == 8 and t.stored_deltas == 3,
        id="delta",
    ),
    pytest.param(
        lambda t: t.offer_deny_list(full_list(8, ["EE05"]), NOW),
        lambda t: t.deny_list.version == 8 and t.stored_deltas == 0,
        id="full-list",
    ),
    pytest.param(
        lambda t: t.offer_tariff(tariff_envelope(4), NOW),
        lambda t: t.tariff.version == 4 and t.pending_tariff is None,
        id="tariff",
    ),
]


@pytest.mark.parametrize(("offer", "is_new"), NEW_TABLES)
def test_power_cut_at_each_step_of_a_write(
    tmp_path: Path,
    faulty_os: Callable[..., FaultyOS],
    offer: Callable[[PushedTables], Any],
    is_new: Callable[[PushedTables], bool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill(tables_in(tmp_path / "model"))
    old = held(tables_in(tmp_path / "model"))
    offer(tables_in(tmp_path / "model"))
    new = held(tables_in(tmp_path / "model"))
    assert old != new
    fill(tables_in(tmp_path / "whole"))
    whole = faulty_os(None)
    offer(tables_in(tmp_path / "whole"))
    assert whole.calls == WRITE_STEPS  # temp file: written, synced, closed; renamed; dir synced
    for step, name in enumerate(WRITE_STEPS):
        directory = tmp_path / f"cut-{step}"
        faulty_os(None)
        fill(tables_in(directory))
        faulty = faulty_os(step)
        with pytest.raises(PowerCut):
            offer(tables_in(directory))
        assert faulty.calls[step] == name and faulty.done == WRITE_STEPS[:step]
        faulty_os(None)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            restarted = tables_in(directory)
        renamed = "replace" in faulty.done
        assert held(restarted) == (new if renamed else old), f"cut at {step} ({name})"
        assert is_new(restarted) is renamed
        assert not caplog.records, f"cut at {step}: a verified state, nothing refused"
        assert sorted(p.name for p in directory.iterdir()) == [DENY_LIST_DOCUMENT, TARIFF_DOCUMENT]


@pytest.mark.parametrize("step", range(len(WRITE_STEPS)))
def test_a_failed_write_keeps_the_table_in_force_and_the_disk_whole(
    tmp_path: Path,
    faulty_os: Callable[..., FaultyOS],
    caplog: pytest.LogCaptureFixture,
    step: int,
) -> None:
    tables = tables_in(tmp_path)
    fill(tables)
    faulty = faulty_os(step, OSError(28, "No space left on device"))
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        tables.offer_deny_list(delta(8, add=["EE05"]), NOW)  # no raise: the list is verified
    assert tables.deny_list.version == 8 and "EE05" in tables.deny_list
    assert "could not be stored" in caplog.text and "No space left" in caplog.text
    renamed = "replace" in faulty.done
    faulty_os(None)
    assert not (tmp_path / f"{DENY_LIST_DOCUMENT}.tmp").exists()
    assert tables_in(tmp_path).deny_list.version == (8 if renamed else 7)
    tables.offer_deny_list(delta(9, add=["FF06"]), NOW)  # the next write stores everything
    assert tables_in(tmp_path).deny_list == tables.deny_list


# --- refused stored documents --------------------------------------------------------------------


def _drop_a_serial(deny: dict[str, Any]) -> None:
    deny["full"]["payload"]["serials"].remove("AA01")


def _drop_a_delta(deny: dict[str, Any]) -> None:
    del deny["deltas"][0]


def _other_key(deny: dict[str, Any]) -> None:
    deny["full"] = full_list(5, ["AA01", "BB02"], key=OTHER_KEY).to_obj()


def _full_list_among_deltas(deny: dict[str, Any]) -> None:
    deny["deltas"].append(full_list(8, []).to_obj())


def _older_issued_at(deny: dict[str, Any]) -> None:
    deny["deltas"][1]["issued_at"] = "2025-03-01T00:00:00+00:00"


def _wrong_format(deny: dict[str, Any]) -> None:
    deny["format"] = "something-else/9"


TAMPERINGS = [
    pytest.param(_drop_a_serial, id="serial-removed"),
    pytest.param(_drop_a_delta, id="delta-removed"),
    pytest.param(_other_key, id="other-key"),
    pytest.param(_full_list_among_deltas, id="full-list-among-deltas"),
    pytest.param(_older_issued_at, id="issued-at-changed"),
    pytest.param(_wrong_format, id="wrong-format"),
]


@pytest.mark.parametrize("tamper", TAMPERINGS)
def test_tampered_deny_list_is_refused_and_kept_aside(
    filled: Path, tamper: Callable[[dict[str, Any]], None], caplog: pytest.LogCaptureFixture
) -> None:
    deny = document(filled, DENY_LIST_DOCUMENT)
    tamper(deny)
    write_document(filled, DENY_LIST_DOCUMENT, deny)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        restarted = tables_in(filled)
    assert restarted.deny_list == DenyList() and restarted.stored_deltas == 0
    assert restarted.tariff.version == 2  # the tariff document is not concerned
    assert "deny_list.json refused and not used" in caplog.text
    assert "deny-list version 0 given at start" in caplog.text
    assert not (filled / DENY_LIST_DOCUMENT).exists()
    assert document(filled, f"{DENY_LIST_DOCUMENT}.refused") == deny  # kept as it was found
    restarted.offer_deny_list(full_list(9, ["EE05"]), NOW)  # the backend fills it again
    assert tables_in(filled).deny_list.version == 9
    assert (filled / f"{DENY_LIST_DOCUMENT}.refused").exists()


@pytest.mark.parametrize(
    "damage",
    [lambda text: text[: len(text) // 2], lambda text: "", lambda text: "\x00" * 40],
    ids=["truncated", "empty", "zeros"],
)
def test_unreadable_document_is_refused_and_kept_aside(
    filled: Path, damage: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    path = filled / TARIFF_DOCUMENT
    path.write_text(damage(path.read_text(encoding="utf-8")), encoding="utf-8")
    (filled / f"{TARIFF_DOCUMENT}.refused").write_text("an earlier one", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        restarted = tables_in(filled)
    assert restarted.tariff is TARIFF and restarted.pending_tariff is None
    assert restarted.deny_list.version == 7
    assert "tariff.json refused and not used" in caplog.text
    assert (filled / f"{TARIFF_DOCUMENT}.refused").read_text(encoding="utf-8") == "an earlier one"
    assert (filled / f"{TARIFF_DOCUMENT}.1.refused").exists() and not path.exists()


def test_tampered_pending_tariff_refuses_the_tariff_document(
    filled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tariff = document(filled, TARIFF_DOCUMENT)
    tariff["pending"]["payload"]["anti_passback_seconds"] = 0
    write_document(filled, TARIFF_DOCUMENT, tariff)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        restarted = tables_in(filled)
    assert restarted.tariff is TARIFF and restarted.pending_tariff is None
    assert "signature does not verify" in caplog.text
    assert (filled / f"{TARIFF_DOCUMENT}.refused").exists()


def test_another_backend_key_refuses_everything_stored(filled: Path) -> None:
    restarted = PushedTables(OTHER_KEY.public_key(), TARIFF, store=TableStore(filled), now=NOW)
    assert restarted.tariff is TARIFF and restarted.deny_list == DenyList()
    assert sorted(p.name for p in filled.iterdir()) == [
        f"{DENY_LIST_DOCUMENT}.refused",
        f"{TARIFF_DOCUMENT}.refused",
    ]


# --- age at restart ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart_at", "warning"),
    [
        pytest.param(NOW + timedelta(days=3), None, id="at-the-max-age"),
        pytest.param(NOW + timedelta(days=3, seconds=1), "STALE", id="older-than-max-age"),
        pytest.param(NOW + timedelta(days=40), "STALE", id="long-offline"),
        pytest.param(NOW - timedelta(days=30), "in the future", id="clock-reset-at-boot"),
    ],
)
def test_reloaded_list_is_kept_whatever_its_age_and_a_stale_one_is_logged(
    filled: Path, restart_at: datetime, warning: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        restarted = tables_in(filled, now=restart_at)
    assert restarted.deny_list.version == 7 and restarted.tariff.version == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0].getMessage()
        assert "deny-list version 7" in warnings[0].getMessage()
    assert not list(filled.glob("*.refused"))


def test_a_stale_list_is_still_refused_when_pushed(filled: Path) -> None:
    """The age check is skipped for the store only: the same list pushed late is refused."""
    late = NOW + timedelta(days=4)
    assert tables_in(filled, now=late).deny_list.version == 7
    fresh = PushedTables(KEY.public_key(), TARIFF)
    with pytest.raises(TableAgeRefused):
        fresh.offer_deny_list(full_list(7, ["AA01"]), late)
