"""The desk station against a live backend (uvicorn) and an emulated card and desk SAM.

In-process readers first (the card pulled at every step in turn, then put back), then the same
issue through a private pcscd (vpcd). The desk SAM holds the transport key only: every session is
opened with a card key the backend wrapped for this card.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskkit import DESK_ID, LiveBackend, blank_card, desk_sam, live_backend

from card_schema.records import decode_record
from card_schema.uploads.records import Resolution, TransactionKind, TransactionState
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.image import CardImage, CardImageStore
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import KeyFileStore
from terminal.desk import DeskStation, Messages
from terminal.desk.client import BackendError, DeskBackend
from terminal.journal import Journal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    with live_backend(tmp_path_factory.mktemp("desk-backend")) as live:
        yield live


def station(
    backend: LiveBackend,
    reader: InProcessReader,
    sam_reader: InProcessReader,
    journal: Journal | None = None,
) -> DeskStation:
    return DeskStation(
        reader,
        sam_reader,
        backend.url,
        DESK_ID,
        backend.credential,
        card_timeout=0.2,
        journal=journal,
    )


FULL_REQUEST: dict[str, Any] = {
    "applications": ["plum", "wallet", "cursus"],
    "contracts": [10, 2],
    "wallet_reload_cents": 2000,
    "school_aid": [
        {"purpose": "books", "amount_cents": 5500, "funder": "region", "school_year": "2025-2026"}
    ],
    "student": {"school_uai": "0801234G", "level": "premiere"},
}


def check_card(image: CardImage) -> None:
    """The card holds exactly FULL_REQUEST."""
    plum = image.applications["plum"].records
    env = decode_record("plum.environment", plum["environment"][0])
    assert env["EnvNetworkId"] == 250000
    contracts = [decode_record("plum.contract", r, tariff=0x0FF1) for r in plum["contracts"][:2]]
    assert [c["ContractTariff"] for c in contracts] == [10, 2]
    assert not any(plum["contracts"][2]) and not any(plum["contracts"][3])
    counters = decode_record("plum.counters", plum["counters"][0])
    assert counters["counter_1"] == 0 and counters["counter_2"] == 10
    cursus = image.applications["cursus"].records
    student = decode_record("cursus.student", cursus["student"][0])
    assert student["school_uai"] == "0801234G" and student["level"] == "premiere"
    aid = decode_record("cursus.aid_counters", cursus["aid_counters"][0])
    assert (aid["books_equipment"], aid["sport_leisure"], aid["canteen"]) == (5500, 0, 0)
    assert image.applications["wallet"].sv_balance == 2000  # reloaded once, never twice
    assert any(image.applications["wallet"].records["services"][0])
    assert not any(image.applications["employment"].records["situation"][0])


def confirmed_once(backend: LiveBackend, serial: str) -> None:
    actions = backend.actions(serial)
    assert actions, "the loads are card actions"
    assert all(a["status"] == "confirmed" for a in actions), actions
    assert len({a["confirmed_card_tx_counter"] for a in actions}) >= 2


def test_issue_a_card_in_process(backend: LiveBackend, tmp_path: Path) -> None:
    holder = backend.holder()
    job = backend.job(holder_id=holder, **FULL_REQUEST)
    assert job["status"] == "queued"
    card, store = blank_card(tmp_path)
    reader, sam_reader = InProcessReader(card, "desk"), InProcessReader(desk_sam(), "sam")
    outcome = station(backend, reader, sam_reader).process_next_job()
    assert outcome is not None and outcome.done, outcome
    state = backend.job_state(job["id"])
    assert state["status"] == "done" and state["message"] == Messages.DONE == "Carte émise"
    assert state["steps_done"] == state["steps_total"] == 7
    check_card(store.load())
    confirmed_once(backend, state["card_serial"])
    assert station(backend, reader, sam_reader).process_next_job() is None  # queue empty


class PullingReader(InProcessReader):
    """Pulls the card at the ``close``-th Close Secure Session (or, with ``close=0``, at the
    ``5``-th APDU: during the snapshot, before any session), once."""

    def __init__(self, chip: Any, close: int, *, reached: bool) -> None:
        super().__init__(chip, "desk")
        self.close, self.reached, self.closes, self.sent = close, reached, 0, 0

    def _transmit_raw(self, apdu: bytes) -> bytes:
        self.sent += 1
        if apdu[1] == 0x8E and len(apdu) > 5:  # Close Secure Session with a signature
            self.closes += 1
            if self.closes == self.close:
                self.tear_after(1, reached=self.reached)
        elif self.close == 0 and self.sent == 5:
            self.tear_after(1, reached=self.reached)
        return super()._transmit_raw(apdu)


STEPS = 7  # perso plum, wallet, cursus; two contracts; aid; SV reload


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "command-lost"])
@pytest.mark.parametrize("close", range(STEPS + 1), ids=lambda n: f"step{n}")
def test_card_pulled_then_resumed(
    backend: LiveBackend, tmp_path: Path, close: int, reached: bool
) -> None:
    """The card is pulled at each step in turn, at its close: with the close answer lost (the
    card committed, the station does not know) or the close never received (nothing committed);
    step 0 is the snapshot, before any session. Put back, the job resumes to the same card, and
    the desk's journal holds each load session the card made exactly once."""
    holder = backend.holder("Retrait", f"Essai{close}")
    job = backend.job(holder_id=holder, **FULL_REQUEST)
    card, store = blank_card(tmp_path)
    reader = PullingReader(card, close, reached=reached)
    journal = Journal.open(tmp_path / "desk.db", DESK_ID)
    sam = InProcessReader(desk_sam(journaling=True), "sam")
    desk = station(backend, reader, sam, journal)
    first = desk.process_next_job()
    assert first is not None and not first.done and first.interruptions == 1
    state = backend.job_state(job["id"])
    assert state["status"] == "interrupted", state
    assert state["message"] == "Carte retirée pendant l'écriture — reposez-la pour reprendre"
    assert state["steps_done"] == max(close - 1, 0)
    reader.insert(card)  # the agent puts it back
    at_load = close > STEPS - LOAD_STEPS
    resumed_to_done(
        backend,
        desk,
        job["id"],
        store,
        journal,
        aborted=int(at_load and not reached),
        recovered=int(at_load and reached),
    )
    journal.close()


def resumed_to_done(
    backend: LiveBackend,
    desk: DeskStation,
    job_id: int,
    store: CardImageStore,
    journal: Journal,
    *,
    aborted: int,
    recovered: int,
) -> None:
    """The interrupted job resumes to the same card and ends done: the card holds exactly the
    request, each load is confirmed once and journaled once (``aborted`` / ``recovered``: how
    many load records the interruption left ABORTED, or UNCERTAIN then recovered from the card)."""
    resumed = desk.process_next_job()
    assert resumed is not None and resumed.job.id == job_id
    assert resumed.done, resumed
    done_once(backend, job_id, store, journal, aborted=aborted, recovered=recovered)


def done_once(
    backend: LiveBackend,
    job_id: int,
    store: CardImageStore,
    journal: Journal,
    *,
    aborted: int,
    recovered: int,
) -> None:
    """The job is done and the card holds exactly the request, each load confirmed once and
    journaled once (see :func:`resumed_to_done`)."""
    state = backend.job_state(job_id)
    assert state["status"] == "done" and state["steps_done"] == STEPS
    check_card(store.load())
    confirmed_once(backend, state["card_serial"])
    journaled_once(journal, store.load(), aborted=aborted, recovered=recovered)


LOAD_STEPS = 4  # two contracts, the aid, the SV reload: the journaled steps (load key)


class RecordingReader(InProcessReader):
    """Keeps the instruction byte of every exchange it is asked to carry (the desk SAM's)."""

    def __init__(self, chip: Any, name: str) -> None:
        super().__init__(chip, name)
        self.sent: list[int] = []

    def _transmit_raw(self, apdu: bytes) -> bytes:
        self.sent.append(apdu[1])
        return super()._transmit_raw(apdu)


INS_PSO_SIGNATURE = 0x2A  # the journal record's signature: after the journal's begin
INS_DIGEST_AUTHENTICATE = 0x82  # the card's close signature: after the card committed
INS_SV_CHECK = 0x58  # the card's SV signature (postponed to its close answer): after it too


# The full job is 63 desk SAM APDUs today (checked below); the failure test covers every index,
# and the count test fails if it changes, so that the list stays complete.
SAM_APDUS = 63


def test_a_sam_that_refuses_the_wrapped_key_fails_the_job(
    backend: LiveBackend, tmp_path: Path
) -> None:
    """A SAM that answers (here: it has no transport key) is not unreachable: the job fails
    with the SAM's message, and no session was opened on the card."""
    job = backend.job(holder_id=backend.holder("Refus", "Sam"), **FULL_REQUEST)
    card, store = blank_card(tmp_path)
    before = store.load()
    no_transport = EmulatedSAM(KeyFileStore({}), bytes.fromhex("5AD0FFFF"))
    outcome = station(
        backend, InProcessReader(card, "desk"), InProcessReader(no_transport, "sam")
    ).process_next_job()
    assert outcome is not None and outcome.job.status == "failed" and not outcome.written
    state = backend.job_state(job["id"])
    assert state["status"] == "failed"
    assert (
        state["message"]
        == Messages.SAM
        == ("Le module de sécurité du guichet a refusé les clés de la carte")
    )
    assert store.load().applications == before.applications


def test_the_full_job_sam_apdu_count_is_what_the_failure_test_covers(
    backend: LiveBackend, tmp_path: Path
) -> None:
    backend.job(holder_id=backend.holder("Compte", "Sam"), **FULL_REQUEST)
    card, _store = blank_card(tmp_path)
    journal = Journal.open(tmp_path / "desk.db", DESK_ID)
    sam = RecordingReader(desk_sam(journaling=True), "sam")
    outcome = station(backend, InProcessReader(card, "desk"), sam, journal).process_next_job()
    journal.close()
    assert outcome is not None and outcome.done, outcome
    assert len(sam.sent) == SAM_APDUS


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "command-lost"])
@pytest.mark.parametrize("index", range(1, SAM_APDUS + 1))
def test_sam_fails_then_job_resumed(
    backend: LiveBackend, tmp_path: Path, index: int, reached: bool
) -> None:
    """The desk SAM leaves its reader at each of its APDUs in turn (executed with the answer
    lost, or never received). The job stays interrupted with the SAM's message, the card on the
    reader; with the SAM back, the job resumes to the same card, every load confirmed once and
    journaled once: a load whose journal signature failed is ABORTED, one whose close the SAM
    could not check is UNCERTAIN, then recovered from the card."""
    holder = backend.holder("Module", f"Essai{index}")
    job = backend.job(holder_id=holder, **FULL_REQUEST)
    card, store = blank_card(tmp_path)
    reader = InProcessReader(card, "desk")
    journal = Journal.open(tmp_path / "desk.db", DESK_ID)
    chip = desk_sam(journaling=True)
    sam = RecordingReader(chip, "sam")
    sam.tear_after(index, reached=reached)
    desk = station(backend, reader, sam, journal)
    first = desk.process_next_job()
    assert first is not None and not first.done and first.interruptions == 0, first
    state = backend.job_state(job["id"])
    assert state["status"] == "interrupted", state
    assert state["message"] == Messages.SAM_UNAVAILABLE
    assert state["message"].startswith("Module de sécurité du guichet injoignable")
    assert reader.card_present(), "the card stays on the reader"
    assert len(sam.sent) == index
    at_load = state["steps_done"] >= STEPS - LOAD_STEPS
    failed = sam.sent[-1]
    sam.insert(chip)  # the agent reseats the SAM
    resumed_to_done(
        backend,
        desk,
        job["id"],
        store,
        journal,
        aborted=int(at_load and failed == INS_PSO_SIGNATURE),
        recovered=int(at_load and failed in (INS_DIGEST_AUTHENTICATE, INS_SV_CHECK)),
    )
    journal.close()


def journaled_once(journal: Journal, image: CardImage, *, aborted: int, recovered: int) -> None:
    """The journal's COMMITTED records are the card's load sessions, each once, with the right
    movements; nothing is left undecided: a load close whose answer was lost (or whose signature
    the SAM could not check) is recovered from the card when it comes back, one never sent or
    received is aborted (and written again)."""
    records = journal.records()
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    assert not journal.undecided()
    assert len([r for r in records if r.state is TransactionState.ABORTED]) == aborted, records
    assert (
        len([r for r in committed if r.resolution is Resolution.RECOVERED_FROM_CARD]) == recovered
    ), records
    # Load steps come last: they are the card's last LOAD_STEPS sessions (counters count down).
    last = image.transaction_counter
    assert sorted(r.intent.card_tx_counter for r in committed) == [
        last + n for n in range(1, LOAD_STEPS + 1)
    ]
    kinds = [r.intent.kind for r in committed]
    assert kinds.count(TransactionKind.SV_RELOAD) == 1
    assert kinds.count(TransactionKind.LOAD) == LOAD_STEPS - 1
    moved: dict[str, int] = {}
    for record in committed:
        assert record.sam_signature or record.resolution is Resolution.RECOVERED_FROM_CARD
        for m in record.intent.movements:
            moved[m.purse] = moved.get(m.purse, 0) + m.amount
    assert moved == {"plum.counter.2": 10, "cursus.books_aid": 5500, "wallet.sv": 2000}
    codes = sorted(r.intent.product_code for r in committed if r.intent.product_code is not None)
    assert codes == [2, 10]


class FlakyBackend(DeskBackend):
    """The desk's HTTP client, with the backend going away at its ``fail_at``-th call: before the
    request reaches it (``delivered=False``) or after it handled it, the answer lost."""

    def __init__(self, live: LiveBackend, fail_at: int, *, delivered: bool) -> None:
        super().__init__(live.url, DESK_ID, live.credential)
        self.fail_at, self.delivered, self.calls = fail_at, delivered, 0

    def _request(self, method: str, path: str, body: Any | None = None) -> Any:
        self.calls += 1
        if self.calls != self.fail_at:
            return super()._request(method, path, body)
        if self.delivered:
            super()._request(method, path, body)
        raise BackendError(0, "backend unreachable: restarting", "serveur injoignable")


# A full job is 16 backend calls today (checked below): next job, the card and its plan, then
# "writing" and "written" for each of the 7 steps (the card is already on the reader: no
# "waiting card"). The outage test covers each.
BACKEND_CALLS = 16


def test_the_full_job_backend_call_count_is_what_the_outage_test_covers(
    backend: LiveBackend, tmp_path: Path
) -> None:
    backend.job(holder_id=backend.holder("Compte", "Appels"), **FULL_REQUEST)
    card, _store = blank_card(tmp_path)
    client = FlakyBackend(backend, 0, delivered=False)
    desk = DeskStation(
        InProcessReader(card, "desk"),
        InProcessReader(desk_sam(), "sam"),
        backend.url,
        DESK_ID,
        backend.credential,
        card_timeout=0.2,
        backend=client,
    )
    outcome = desk.process_next_job()
    assert outcome is not None and outcome.done, outcome
    assert client.calls == BACKEND_CALLS


@pytest.mark.parametrize("delivered", [True, False], ids=["answer-lost", "request-lost"])
@pytest.mark.parametrize("call", range(1, BACKEND_CALLS + 1))
def test_backend_gone_at_each_call_then_job_resumed(
    backend: LiveBackend, tmp_path: Path, call: int, delivered: bool
) -> None:
    """The backend restarts during each of the job's calls in turn (the request lost, or
    handled and its answer lost). The station says so and stops; the card is never written
    twice; once the backend is back, the same desk resumes the job to done, every load
    confirmed once and journaled once."""
    job = backend.job(holder_id=backend.holder("Serveur", f"Essai{call}"), **FULL_REQUEST)
    card, store = blank_card(tmp_path)
    reader = InProcessReader(card, "desk")
    journal = Journal.open(tmp_path / "desk.db", DESK_ID)
    sam = InProcessReader(desk_sam(journaling=True), "sam")
    client = FlakyBackend(backend, call, delivered=delivered)
    desk = DeskStation(
        reader,
        sam,
        backend.url,
        DESK_ID,
        backend.credential,
        card_timeout=0.2,
        journal=journal,
        backend=client,
    )
    with pytest.raises(BackendError) as raised:
        desk.process_next_job()
    assert raised.value.status == 0 and raised.value.message_fr == "serveur injoignable"
    status = backend.job_state(job["id"])["status"]
    if call == BACKEND_CALLS and delivered:
        # The last step's report reached the backend: the job is done there, only the station
        # missed the answer; the queue is empty for it now.
        assert status == "done"
        assert desk.process_next_job() is None
        done_once(backend, job["id"], store, journal, aborted=0, recovered=0)
    else:
        assert status not in ("done", "failed"), status
        resumed_to_done(backend, desk, job["id"], store, journal, aborted=0, recovered=0)
    journal.close()


def test_desk_uploads_its_loads_to_the_ledger(backend: LiveBackend, tmp_path: Path) -> None:
    """A desk with a journal and a device key uploads its load records with its credential;
    the validation loop posts the reload against ``sales:<desk>`` and the aid against its
    funder, the card purses mirroring them."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from sqlalchemy import select

    from backend.db import transaction
    from backend.ledger.models import LedgerEntry
    from backend.uploads.router import validation_loop_of

    desk_id, sam_serial = "GUICHET-AMIENS-2", bytes.fromhex("5AD00002")
    device_key = Ed25519PrivateKey.generate()
    public = device_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    credential = backend.register_terminal(
        terminal_id=desk_id, kind="desk", sam_serial=sam_serial.hex(), public_key=public.hex()
    )
    holder = backend.holder("Envoi", "Guichet")
    answer = backend.agent(
        "POST",
        "/api/v1/desk/jobs",
        json={"desk_terminal_id": desk_id, "holder_id": holder, **FULL_REQUEST},
    )
    assert answer.status_code == 201, answer.text
    card, _ = blank_card(tmp_path)
    reader = InProcessReader(card, "desk")
    sam = InProcessReader(desk_sam(journaling=True, serial=sam_serial), "sam")
    with Journal.open(tmp_path / "desk2.db", desk_id) as journal:
        desk = DeskStation(
            reader,
            sam,
            backend.url,
            desk_id,
            credential,
            card_timeout=0.2,
            journal=journal,
            upload_key=device_key,
        )
        outcome = desk.process_next_job()
        assert outcome is not None and outcome.done, outcome
        report = desk.upload()
        assert report is not None and report.complete and report.records_acked == LOAD_STEPS
        assert journal.unuploaded_count() == 0
    validation_loop_of(backend.app).run_once()
    with transaction(backend.app.state.sessionmaker) as session:
        rows = session.execute(
            select(LedgerEntry.account, LedgerEntry.amount).where(
                LedgerEntry.entry_ref.startswith(f"tap:{desk_id}:")
            )
        ).all()
    by_account: dict[str, int] = {}
    for account, amount in rows:
        key = "card:" + account.rsplit(":", 1)[1] if account.startswith("card:") else account
        by_account[key] = by_account.get(key, 0) + amount
    assert by_account == {
        f"sales:{desk_id}": -2000,
        "card:wallet.sv": 2000,
        "funder:region:books": -5500,
        "card:cursus.books_aid": 5500,
    }


def test_wrong_card_put_back_is_refused(backend: LiveBackend, tmp_path: Path) -> None:
    holder = backend.holder("Autre", "Carte")
    job = backend.job(holder_id=holder, applications=["plum"], contracts=[10])
    card, store = blank_card(tmp_path / "a")
    other, other_store = blank_card(tmp_path / "b")
    reader = PullingReader(card, 2, reached=False)
    desk = station(backend, reader, InProcessReader(desk_sam(), "sam"))
    assert not desk.process_next_job().done  # type: ignore[union-attr]
    reader.insert(other)
    outcome = desk.process_next_job()
    assert outcome is not None and not outcome.done
    state = backend.job_state(job["id"])
    assert state["status"] == "interrupted" and "Ce n'est pas la carte" in state["message"]
    assert not any(other_store.load().applications["plum"].records["environment"][0])
    reader.remove()
    reader.insert(card)
    outcome = desk.process_next_job()
    assert outcome is not None and outcome.done
    assert any(store.load().applications["plum"].records["contracts"][0])


def test_a_personalised_card_is_not_taken_for_an_issue(
    backend: LiveBackend, tmp_path: Path
) -> None:
    holder = backend.holder("Pas", "Vierge")
    card, _ = blank_card(tmp_path)
    reader, sam_reader = InProcessReader(card, "desk"), InProcessReader(desk_sam(), "sam")
    desk = station(backend, reader, sam_reader)
    backend.job(holder_id=holder, applications=["plum"])
    assert desk.process_next_job().done  # type: ignore[union-attr]
    second = backend.job(holder_id=holder, applications=["plum"])
    outcome = desk.process_next_job()
    assert outcome is not None and outcome.job.status == "failed"
    assert "pas vierge" in backend.job_state(second["id"])["message"]


def test_update_and_replace(backend: LiveBackend, tmp_path: Path) -> None:
    holder = backend.holder("Durand", "Paul")
    card, store = blank_card(tmp_path / "old")
    reader, sam_reader = InProcessReader(card, "desk"), InProcessReader(desk_sam(), "sam")
    desk = station(backend, reader, sam_reader)
    backend.job(holder_id=holder, applications=["plum", "wallet"], contracts=[10])
    first = desk.process_next_job()
    assert first is not None and first.done
    serial = first.job.card_serial
    assert serial is not None
    # update: add Cursus with aid, remove nothing, reload the wallet
    backend.job(
        kind="update",
        card_serial=serial,
        add_applications=["cursus"],
        wallet_reload_cents=1500,
        school_aid=[
            {
                "purpose": "sport",
                "amount_cents": 3000,
                "funder": "region",
                "school_year": "2025-2026",
            }
        ],
    )
    updated = desk.process_next_job()
    assert updated is not None and updated.done, updated
    image = store.load()
    assert image.applications["wallet"].sv_balance == 1500
    aid = decode_record(
        "cursus.aid_counters", image.applications["cursus"].records["aid_counters"][0]
    )
    assert aid["sport_leisure"] == 3000
    # remove an application
    backend.job(kind="update", card_serial=serial, remove_applications=["cursus"])
    removed = desk.process_next_job()
    assert removed is not None and removed.done
    assert not any(store.load().applications["cursus"].records["student"][0])
    # the card is lost: block and replace, its wallet balance and contract move
    with backend.client() as client:
        known = client.post(
            f"/api/v1/cards/{serial}/block",
            json={"reason": "carte perdue"},
            headers=backend.agent_headers,
        )
        assert known.status_code == 200, known.text
    _set_known_balance(backend, serial, "wallet.sv", 1500)
    backend.job(kind="replace", card_serial=serial, reason="carte perdue")
    new_card, new_store = blank_card(tmp_path / "new")
    reader.remove()
    reader.insert(new_card)
    replaced = desk.process_next_job()
    assert replaced is not None and replaced.done, replaced
    new_image = new_store.load()
    assert new_image.applications["wallet"].sv_balance == 1500
    contract = decode_record(
        "plum.contract", new_image.applications["plum"].records["contracts"][0], tariff=0x0FF1
    )
    assert contract["ContractTariff"] == 10
    with backend.client() as client:
        old = client.get(
            f"/api/v1/cards/{serial}",
            params={"reason": "contrôle test"},
            headers=backend.agent_headers,
        )
    assert old.json()["status"] == "replaced"


def _set_known_balance(backend: LiveBackend, serial: str, purse: str, value: int) -> None:
    from backend.cards.service import update_known_balance
    from backend.db import transaction

    with transaction(backend.app.state.sessionmaker) as session:
        update_known_balance(session, serial, purse, value, 0xFFFF00)


def test_issue_through_pcscd(pcsc_stack: Any, backend: LiveBackend, tmp_path: Path) -> None:
    from firmware_host.readers.pcsc import PCSCReader
    from hardware.bridges.vpcd import VPCDBridge

    holder = backend.holder("Pcsc", "Carte")
    job = backend.job(
        holder_id=holder, applications=["plum", "wallet"], contracts=[2], wallet_reload_cents=1000
    )
    card, store = blank_card(tmp_path)
    with (
        VPCDBridge(card, pcsc_stack.card_port, name="card") as card_bridge,
        VPCDBridge(desk_sam(), pcsc_stack.sam_port, name="sam") as sam_bridge,
    ):
        assert card_bridge.wait_connected(5) and sam_bridge.wait_connected(5)
        # pcscd sees each bridge at its own next poll: wait for both, or the first SAM command
        # can find the SAM reader still empty.
        assert pcsc_stack.wait_for_card_state(pcsc_stack.card_reader, True, 5)
        assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
        reader = PCSCReader(pcsc_stack.card_reader)
        sam_reader = PCSCReader(pcsc_stack.sam_reader)
        try:
            desk = DeskStation(
                reader, sam_reader, backend.url, DESK_ID, backend.credential, card_timeout=5
            )
            outcome = desk.process_next_job()
        finally:
            reader.close()
            sam_reader.close()
    assert outcome is not None and outcome.done, outcome
    assert backend.job_state(job["id"])["message"] == "Carte émise"
    image = store.load()
    assert image.applications["wallet"].sv_balance == 1000
