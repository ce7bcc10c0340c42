"""``regioncard demo``: the whole day, from an empty work directory to the report.

Order: work directory and key ceremony -> backend (uvicorn thread) -> agents, catalogue and
terminals through the API -> pcscd with the emulated cards and SAMs -> the desk issues every
card -> the day is played on a simulated clock -> last uploads, validation loop, reconciliation
reports, clearing, ledger check -> summary in the terminal, ``index.html``, PNGs and
``summary.json`` in the output directory.
"""

from __future__ import annotations

import io
import json
import logging
import random
import secrets
import shutil
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from backend.auth.roles import AgentRole
from backend.auth.service import create_agent
from backend.db import transaction
from backend.ledger.models import LedgerEntry
from backend.uploads.router import validation_loop_of
from backend.validation.models import OperatorStation, ProductValue, Tap
from firmware_host.osdp.gate import ConsoleGatePeripheral
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.personalise import new_card
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import TRACE_KEY, TRANSPORT_KEY_LABEL, KeyFileStore, new_key_file
from regioncard.demo.day import DayStats, Event, SimClock, Step, offline, plan_day
from regioncard.demo.desk import WALLET_RELOAD_CODE, DeskIssuance
from regioncard.demo.progress import Progress
from regioncard.demo.rig import ReaderRig
from regioncard.demo.services import Api, BackendServer, DemoError, free_port
from regioncard.demo.world import (
    DAY,
    DESK,
    OFFLINE_FROM,
    OFFLINE_TERMINAL,
    OFFLINE_UNTIL,
    PARIS,
    TERMINALS,
    Holder,
    TerminalRole,
    TerminalSpec,
    at,
    make_holders,
)
from terminal.canteen.menu import MenuBook
from terminal.canteen.screen import RecordingScreen
from terminal.canteen.tariff import load_tariff as load_canteen_tariff
from terminal.canteen.till import CanteenTill
from terminal.desk import DeskStation
from terminal.fares import load_tariff
from terminal.fares.signed import PushedTables, SignedEnvelope
from terminal.gate import GateValidator
from terminal.journal import Journal
from terminal.journal.upload import HTTPUploadTransport, RetryPolicy, UploadQueue

log = logging.getLogger(__name__)

PASSWORD_BYTES = 18
PRODUCTS = (
    # code, fare_product_id, name, application, amount, duration_days, trips, rider category
    (2, "CARNET_10", "Carnet de 10 voyages", "plum", 1620, None, 10, None),
    (10, "PASS_MOIS_1Z", "Pass Pass mensuel 1 zone", "plum", 6500, 30, None, None),
    (12, "PASS_MOIS_4Z", "Pass Pass mensuel toutes zones", "plum", 11000, 30, None, None),
    (20, "PASS_ANNUEL_1Z", "Pass annuel 1 zone (abri vélo inclus)", "plum", 65000, 365, None, None),
    (
        30,
        "PASS_MOIS_ETUDIANT_1Z",
        "Pass mensuel étudiant 1 zone",
        "plum",
        3200,
        30,
        None,
        "student",
    ),
    (31, "PASS_MOIS_SOLIDAIRE", "Pass mensuel solidaire", "plum", 1000, 30, None, "job_seeker"),
    (
        WALLET_RELOAD_CODE,
        "RECHARGE_PM",
        "Rechargement porte-monnaie",
        "wallet",
        0,
        None,
        None,
        None,
    ),
)
PASS_CODES = frozenset({10, 11, 12, 20, 30, 31, 40})
CARNET_TRIP_VALUE = {2: 162}  # eurocents one carnet trip is worth (16,20 € / 10)


@dataclass
class DemoOptions:
    """Command-line options of the demo.

    Attributes:
        out: output directory (``out/demo``).
        holders: number of card holders.
        seed: random seed (the day is deterministic for a seed).
        quick: smaller day for tests: uploads every hour instead of every half hour.
    """

    out: Path = Path("out/demo")
    holders: int = 50
    seed: int = 2026
    quick: bool = False


@dataclass
class Runtime:
    """One terminal at run time."""

    spec: TerminalSpec
    sam: EmulatedSAM
    journal: Journal
    queue: UploadQueue
    api: Api
    online_transport: HTTPUploadTransport
    credential: str
    gate: GateValidator | None = None
    till: CanteenTill | None = None
    tables: PushedTables | None = None
    batches: int = 0
    records: int = 0
    failed_uploads: int = 0


@dataclass
class DemoResult:
    """Everything the report needs."""

    options: DemoOptions
    holders: list[Holder]
    stats: DayStats
    timings: dict[str, float] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)
    apdus: dict[str, int] = field(default_factory=dict)
    purse_balances: list[dict[str, Any]] = field(default_factory=list)
    sales: dict[str, int] = field(default_factory=dict)
    desk_jobs: dict[str, int] = field(default_factory=dict)
    api_calls: dict[str, int] = field(default_factory=dict)
    sample_card: str = ""


class Demo:
    """Runs the demo once; :meth:`run` returns the result for the report."""

    def __init__(self, options: DemoOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.rng = random.Random(options.seed)
        self.work = options.out / "work"
        self.clock = SimClock(at(6, 0))
        self.holders = make_holders(options.holders, self.rng)
        self.cards: dict[str, EmulatedCard] = {}
        self.stores: dict[str, CardImageStore] = {}
        self.runtimes: dict[str, Runtime] = {}
        self.stats = DayStats()
        self.result = DemoResult(options, self.holders, self.stats)
        self.server: BackendServer | None = None
        self.rig: ReaderRig | None = None
        self.dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the network is down

    # -- the whole run -----------------------------------------------------------------------
    def run(self) -> DemoResult:
        """Set up, issue, play the day, reconcile. Stops pcscd and the backend in every case."""
        try:
            self._timed("setup", self._setup)
            self._timed("issuance", self._issue_cards)
            self._timed("day", self._play_day)
            self._timed("backend", self._close_day)
        finally:
            self._shutdown()
        return self.result

    def _timed(self, name: str, step: Any) -> None:
        started = time.monotonic()
        step()
        self.result.timings[name] = round(time.monotonic() - started, 2)

    def _shutdown(self) -> None:
        """Close the journals, stop pcscd and the backend, whatever failed before."""
        try:
            for runtime in self.runtimes.values():
                runtime.journal.close()
        finally:
            try:
                if self.rig is not None:
                    self.rig.stop()
                    self.rig = None
            finally:
                if self.server is not None:
                    self.server.stop()
                    self.server = None

    # -- setup -------------------------------------------------------------------------------
    def _setup(self) -> None:
        self.progress.section("Mise en place : backend, terminaux, pcscd")
        shutil.rmtree(self.work, ignore_errors=True)
        for sub in ("cards", "journals"):
            (self.work / sub).mkdir(parents=True)
        key_file = self.work / "sam-keys.json"
        new_key_file(key_file, transport_key=True)
        ceremony = KeyFileStore.load(key_file).master_keys()  # master keys + transport key
        # The backend's token imports every key; the card factory and the terminals' SAMs get the
        # master keys; the desk SAM gets the transport key (and its signature key), no master key.
        transport = ceremony.pop(TRANSPORT_KEY_LABEL)
        self.keys = KeyFileStore(ceremony)
        self.desk_keys = KeyFileStore(
            {TRANSPORT_KEY_LABEL: transport, TRACE_KEY.label: ceremony[TRACE_KEY.label]}
        )
        self.server = BackendServer.start(self.work, {**ceremony, TRANSPORT_KEY_LABEL: transport})
        app = self.server.app
        public = Api(self.server.url)
        supervisor_password = secrets.token_urlsafe(PASSWORD_BYTES)
        with transaction(app.state.sessionmaker) as session:
            create_agent(session, "superviseur", supervisor_password, AgentRole.SUPERVISOR)
            # Operator configuration read by the validation loop (no API for it yet).
            for spec in TERMINALS:
                if spec.place is not None and spec.operator is not None:
                    session.merge(
                        OperatorStation(
                            station_id=spec.place.station_id,
                            operator_id=spec.operator,
                            network_id=spec.place.network_id,
                        )
                    )
            for code, value in CARNET_TRIP_VALUE.items():
                session.merge(ProductValue(product_code=code, trip_value=value))
        self.supervisor = public.as_agent("superviseur", supervisor_password)
        agent_password = secrets.token_urlsafe(PASSWORD_BYTES)
        self.supervisor.post(
            "/api/v1/auth/agents",
            {"username": "agent.lille", "password": agent_password, "role": "agent"},
        )
        self.agent = public.as_agent("agent.lille", agent_password)
        for code, fare_id, name, application, amount, days, trips, rider in PRODUCTS:
            body: dict[str, Any] = {
                "code": code,
                "fare_product_id": fare_id,
                "name": name,
                "application": application,
                "amount_cents": amount,
            }
            if days:
                body["duration_days"] = days
            if trips:
                body["trips"] = trips
            if rider:
                body["rider_category_id"] = rider
            self.supervisor.post("/api/v1/products", body)
        public_key_hex = public.get("/api/v1/deny-lists/public-key")["public_key"]
        self.table_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        for spec in TERMINALS:
            self.runtimes[spec.terminal_id] = self._register(spec, public)
        for holder in self.holders:
            store = CardImageStore(self.work / "cards" / f"{holder.serial_hex}.json")
            store.commit(new_card(holder.serial, self.keys))  # the card manufacturer's step
            self.stores[holder.serial_hex] = store
            self.cards[holder.serial_hex] = EmulatedCard(store)
        first = self.cards[self.holders[0].serial_hex]
        self.rig = ReaderRig.start(first, self.runtimes[DESK.terminal_id].sam)
        self._build_terminals()
        self.progress.line(
            f"backend {self.server.url}, {len(TERMINALS)} terminaux enregistrés, "
            f"pcscd {self.rig.stack.pid} ({', '.join(self.rig.stack.readers)})"
        )

    def _register(self, spec: TerminalSpec, public: Api) -> Runtime:
        key = Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        body: dict[str, Any] = {
            "terminal_id": spec.terminal_id,
            "kind": spec.backend_kind,
            "label": spec.label,
            "sam_serial": spec.sam_serial.hex().upper(),
            "public_key": raw.hex(),
        }
        if spec.place is not None:
            body["station_id"] = spec.place.station_id
        if spec.school_uai is not None:
            body["school_uai"] = spec.school_uai
        registered = self.supervisor.post("/api/v1/terminals", body)
        credential = registered["credential"]
        assert self.server is not None
        transport = HTTPUploadTransport(
            self.server.url, spec.terminal_id, opener=_opener(credential)
        )
        journal = Journal.open(
            self.work / "journals" / f"{spec.terminal_id}.db", spec.terminal_id, clock=self.clock
        )
        queue = UploadQueue(
            journal,
            transport,
            key,
            retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.01),
            sleep=lambda _: None,  # simulated time: no real wait between attempts
            rng=random.Random(self.rng.random()),
            clock=self.clock,
        )
        keys = self.desk_keys if spec.role is TerminalRole.DESK else self.keys
        sam = EmulatedSAM(keys, spec.sam_serial)
        api = public.as_terminal(spec.terminal_id, credential)
        return Runtime(spec, sam, journal, queue, api, transport, credential)

    def _build_terminals(self) -> None:
        assert self.rig is not None
        tariff = load_tariff()
        prices = load_canteen_tariff()
        menus = MenuBook.load()
        for runtime in self.runtimes.values():
            spec = runtime.spec
            if spec.role in (TerminalRole.GATE, TerminalRole.COACH, TerminalRole.BIKE_SHELTER):
                assert spec.place is not None
                runtime.tables = PushedTables(self.table_key, tariff)
                runtime.gate = GateValidator(
                    self.rig.reader,
                    self.rig.sam_reader,
                    runtime.journal,
                    runtime.tables,
                    ConsoleGatePeripheral(io.StringIO()),
                    spec.place,
                    clock=self.clock,
                    kind=spec.gate_kind,
                    passage_timeout=0.0,
                )
            elif spec.role is TerminalRole.CANTEEN:
                assert spec.school_uai is not None
                runtime.till = CanteenTill(
                    self.rig.reader,
                    self.rig.sam_reader,
                    runtime.journal,
                    spec.school_uai,
                    prices,
                    self.clock,
                    RecordingScreen(),
                    pos_id=int(spec.sam_serial[-1]),
                    menus=menus,
                )

    # -- issuance ----------------------------------------------------------------------------
    def _issue_cards(self) -> None:
        """Every card through a desk job: the agent on the page's API, the desk station writes."""
        assert self.rig is not None and self.server is not None
        desk = self.runtimes[DESK.terminal_id]
        self.rig.present_sam(desk.sam)
        station = DeskStation(
            self.rig.reader,
            self.rig.sam_reader,
            self.server.url,
            DESK.terminal_id,
            desk.credential,
            card_timeout=5.0,
            clock=self.clock,
            journal=desk.journal,  # the desk's loads are journaled like any terminal's sessions
        )
        issuance = DeskIssuance(self.agent, station, DESK.terminal_id)
        issuance.open_page()
        self.progress.section(
            f"Guichet : émission de {len(self.holders)} cartes (demandes de guichet, poste "
            f"{DESK.terminal_id})"
        )
        sales: Counter[str] = Counter()
        bar = self.progress.bar("cartes émises", len(self.holders))
        for holder in self.holders:
            self.clock.advance(seconds=20)
            job_id = issuance.create_job(holder)
            self.rig.cards.present(self.cards[holder.serial_hex])  # a blank card on the reader
            issued = issuance.write(holder, job_id)
            for code, amount in issued.sales.items():
                sales["wallet" if code == WALLET_RELOAD_CODE else _product_group(code)] += amount
            bar.advance()
        bar.done()
        # The desk's records (wallet reloads, aid credits, contracts) go up before the day's
        # taps, with the desk's device key and credential, through the same queue as the others.
        self._upload(desk)
        self.result.sales = dict(sales)
        self.result.desk_jobs = issuance.stats.as_json()

    # -- the day -----------------------------------------------------------------------------
    def _play_day(self) -> None:
        events = plan_day(self.holders, self.rng)
        if self.options.quick:
            events = [e for e in events if e.step is not Step.UPLOAD or e.when.minute == 0]
        self.progress.section("La journée du 27 novembre 2026 (06:00 — 21:00)")
        self._push_deny_lists()
        # The bar counts the day's events (taps, meals, uploads, desk blocks...), not only the
        # validators' passages of the summary: it says so, with the split, when it ends.
        bar = self.progress.bar("événements", len(events))
        for event in events:
            self.clock.set(event.when)
            self._play(event)
            bar.advance(label=event.when.astimezone(PARIS).strftime("%H:%M"))
        bar.done()
        steps = Counter(e.step for e in events)
        self.progress.line(
            f"dont {steps[Step.TAP]} passages aux valideurs et à l'abri vélo, "
            f"{steps[Step.MEAL]} passages en cantine, "
            f"{sum(n for step, n in steps.items() if step not in (Step.TAP, Step.MEAL))} "
            "autres (envois, blocages, listes poussées)"
        )
        self.clock.set(at(21, 0))

    def _play(self, event: Event) -> None:
        if event.step is Step.TAP:
            assert event.holder is not None and event.terminal is not None
            self._tap(event.holder, self.runtimes[event.terminal.terminal_id])
        elif event.step is Step.MEAL:
            assert event.holder is not None and event.terminal is not None
            self._meal(event.holder, self.runtimes[event.terminal.terminal_id])
        elif event.step is Step.BLOCK:
            assert event.holder is not None
            self.agent.post(
                f"/api/v1/cards/{event.holder.serial_hex}/block",
                {"reason": "carte perdue, déclarée au guichet"},
            )
            self.stats.blocked.append(event.holder.serial_hex)
        elif event.step is Step.PUSH:
            self._push_deny_lists()
        elif event.step is Step.UPLOAD:
            for runtime in self.runtimes.values():
                self._upload(runtime)

    def _tap(self, holder: Holder, runtime: Runtime) -> None:
        assert self.rig is not None and runtime.gate is not None
        self.rig.present_sam(runtime.sam)
        self.rig.cards.present(self.cards[holder.serial_hex])
        result = runtime.gate.on_card()
        reason = (
            result.decision.reason.value if result.decision is not None else result.outcome.value
        )
        now = self.clock()
        self.stats.taps.append(
            {
                "at": now.astimezone(PARIS).strftime("%H:%M:%S"),
                "hour": now.astimezone(PARIS).hour,
                "terminal": runtime.spec.terminal_id,
                "kind": holder.kind.value,
                "accepted": result.accepted,
                "reason": reason,
                "display": result.display,
                "outcome": result.outcome.value,
                "offline": runtime.spec is OFFLINE_TERMINAL and offline(now),
            }
        )
        if holder.serial_hex in self.stats.blocked and not result.accepted:
            self.stats.refused_blocked.append(holder.serial_hex)

    def _meal(self, holder: Holder, runtime: Runtime) -> None:
        assert self.rig is not None and runtime.till is not None
        self.rig.present_sam(runtime.sam)
        self.rig.cards.present(self.cards[holder.serial_hex])
        result = runtime.till.serve()
        self.rig.reader.disconnect()
        decision = result.decision
        served = result.served
        self.stats.meals.append(
            {
                "at": self.clock().astimezone(PARIS).strftime("%H:%M:%S"),
                "school": runtime.spec.school_uai,
                "served": served,
                "reason": result.reason.value,
                "display": result.lines[0] if result.lines else "",
                "aid": decision.aid_debit if decision is not None and served else 0,
                "wallet": decision.wallet_debit if decision is not None and served else 0,
            }
        )

    def _push_deny_lists(self) -> None:
        """Every gate fetches the deny-list deltas since its version and installs them."""
        for runtime in self.runtimes.values():
            if runtime.tables is None:
                continue
            version = runtime.tables.deny_list.version
            deltas = runtime.api.get("/api/v1/deny-lists/delta", since=version)
            for envelope in deltas:
                # The backend signs with its real clock: the list's age is checked against it.
                runtime.tables.offer_deny_list(
                    SignedEnvelope.from_json(_json(envelope)), datetime.now(UTC)
                )
            self.stats.deny_list_version = runtime.tables.deny_list.version

    def _upload(self, runtime: Runtime) -> None:
        now = self.clock()
        is_offline = runtime.spec is OFFLINE_TERMINAL and offline(now)
        if is_offline:
            assert self.server is not None
            runtime.queue.transport = HTTPUploadTransport(
                self.dead_url, runtime.spec.terminal_id, timeout_s=1.0
            )
        else:
            runtime.queue.transport = runtime.online_transport
        waiting = runtime.journal.unuploaded_count()
        report = runtime.queue.upload()
        runtime.batches += len(report.acked)
        runtime.records += report.records_acked
        if runtime.spec is OFFLINE_TERMINAL:
            story = self.stats.offline
            if not report.complete:
                runtime.failed_uploads += 1
                story.setdefault("failed_attempts", []).append(
                    {
                        "at": now.astimezone(PARIS).strftime("%H:%M"),
                        "waiting_records": waiting,
                        "error": (report.error or "")[:120],
                    }
                )
            elif story.get("failed_attempts") and "caught_up_at" not in story:
                story["caught_up_at"] = now.astimezone(PARIS).strftime("%H:%M")
                story["caught_up_records"] = report.records_acked
                story["caught_up_batches"] = len(report.acked)

    # -- after the day -----------------------------------------------------------------------
    def _desk_ledger(self) -> dict[str, Any]:
        """What the desk's uploaded records posted: entries, and eurocents by account group.

        Read from the backend's ledger (no API lists accounts yet): ``sales:<desk>`` and
        ``funder:region:<purpose>`` against the card purses (``card:<purse>``, summed over cards).
        """
        assert self.server is not None
        prefix = f"tap:{DESK.terminal_id}:"
        by_account: Counter[str] = Counter()
        entries: set[str] = set()
        with transaction(self.server.app.state.sessionmaker) as session:
            rows = session.execute(
                select(LedgerEntry.entry_ref, LedgerEntry.account, LedgerEntry.amount).where(
                    LedgerEntry.entry_ref.startswith(prefix)
                )
            ).all()
        for entry_ref, account, amount in rows:
            entries.add(entry_ref)
            by_account[_account_group(account)] += int(amount)
        return {"entries": len(entries), "by_account": dict(sorted(by_account.items()))}

    def _transit_sessions(self) -> dict[str, int]:
        """The transit sessions the backend holds (taps attributed to an operator), by kind,
        charged or not: the report explains with them why the validators' passages and the
        operators' billed taps differ (no API lists taps by kind)."""
        assert self.server is not None
        with transaction(self.server.app.state.sessionmaker) as session:
            rows = session.execute(
                select(Tap.kind, Tap.charged, func.count())
                .where(Tap.operator_id.is_not(None))
                .group_by(Tap.kind, Tap.charged)
            ).all()
        return {
            f"{kind}:{'charged' if charged else 'not_charged'}": int(n) for kind, charged, n in rows
        }

    def _close_day(self) -> None:
        assert self.server is not None and self.rig is not None
        self.progress.section("Fin de journée : envois, boucle de validation, rapprochement")
        for runtime in self.runtimes.values():
            self._upload(runtime)
        self.result.apdus = {"card": self.rig.apdus[0], "sam": self.rig.apdus[1]}
        loop = validation_loop_of(self.server.app)
        loop.run_once()  # what the background tasks left, if anything
        pending = loop.pending()
        start = datetime.combine(DAY, datetime.min.time(), tzinfo=PARIS)
        end = start + timedelta(days=1)
        window = {"start": start.isoformat(), "end": end.isoformat()}
        sup = self.supervisor
        backend: dict[str, Any] = {"pending_batches_after_loop": pending}
        backend["terminals"] = {}
        for tid in self.runtimes:
            try:
                backend["terminals"][tid] = sup.get(f"/api/v1/reconciliation/terminals/{tid}")
            except DemoError:  # 404: nothing received (the bike-shelter door writes nothing)
                backend["terminals"][tid] = {"taps_by_status": {}}
        backend["schools"] = sup.get("/api/v1/reconciliation/schools", **window)
        backend["operators"] = sup.get("/api/v1/reconciliation/operators", **window)
        backend["anomalies"] = sup.get("/api/v1/reconciliation/anomalies", limit=1000)
        pass_pool = sum(amount for group, amount in self.result.sales.items() if group == "passes")
        backend["clearing"] = sup.post(
            "/api/v1/reconciliation/clearing",
            {"period_id": DAY.isoformat(), "pass_pool": pass_pool, **window},
        )
        try:
            backend["ledger"] = {"balanced": True, **sup.get("/api/v1/reconciliation/ledger/check")}
        except DemoError as exc:
            backend["ledger"] = {"balanced": False, "error": str(exc)}
        backend["desk_ledger"] = self._desk_ledger()
        backend["transit_sessions"] = self._transit_sessions()
        self.result.backend = backend
        self.result.api_calls = dict(self.supervisor.calls)
        for holder in self.holders:
            image = self.stores[holder.serial_hex].load()
            counters = image.applications.get("cursus")
            aid = 0
            if counters is not None:
                raw = counters.records["aid_counters"][0]
                aid = int.from_bytes(raw[6:9], "big")
            self.result.purse_balances.append(
                {
                    "kind": holder.kind.value,
                    "wallet": image.applications["wallet"].sv_balance,
                    "canteen_aid": aid,
                }
            )
        for runtime in self.runtimes.values():
            self.stats.uploads[runtime.spec.terminal_id] = {
                "batches": runtime.batches,
                "records": runtime.records,
                "not_uploaded": runtime.journal.unuploaded_count(),
            }
        not_uploaded = self.runtimes[OFFLINE_TERMINAL.terminal_id].journal.unuploaded_count()
        in_window = [
            t
            for t in self.stats.taps
            if t["terminal"] == OFFLINE_TERMINAL.terminal_id and t["offline"]
        ]
        self.stats.offline.update(
            {
                "terminal": OFFLINE_TERMINAL.terminal_id,
                "label": OFFLINE_TERMINAL.label,
                "from": OFFLINE_FROM.strftime("%H:%M"),
                "until": OFFLINE_UNTIL.strftime("%H:%M"),
                "taps_while_offline": len(in_window),
                "not_uploaded_at_end": not_uploaded,
                "all_uploaded": not_uploaded == 0,
            }
        )


def _account_group(account: str) -> str:
    """``card:<pseudonym>:<purse>`` -> ``card:<purse>``; ``funder:region:books`` as is."""
    if account.startswith("card:"):
        return "card:" + account.rsplit(":", 1)[1]
    return account


def _product_group(code: int) -> str:
    return "passes" if code in PASS_CODES else "carnets"


def _json(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope)


def _opener(credential: str) -> urllib.request.OpenerDirector:
    """A urllib opener sending the terminal's bearer credential with every upload."""
    opener = urllib.request.build_opener()
    opener.addheaders = [("Authorization", f"Bearer {credential}")]
    return opener
