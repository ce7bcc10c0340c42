"""Signed, versioned tables pushed by the backend: the tariff table and the deny-list.

Envelope (JSON)::

    {"kind": "tariff" | "deny_list" | "deny_list_delta",
     "version": 42,
     "issued_at": "2025-03-01T04:00:00+00:00",
     "payload": {...},
     "signature": "<base64 Ed25519 signature>"}

The signature covers the canonical JSON of ``{kind, version, issued_at, payload}`` (keys sorted,
no spaces, UTF-8, ``issued_at`` in UTC ISO 8601): :func:`canonical_bytes`, defined once in
:mod:`card_schema.signed_tables` for both sides. The backend signs with
an Ed25519 key held in its HSM (PKCS#11); terminals get the public key at installation, and it is
always passed in, never read from a global.

A terminal refuses, by raising a :class:`~terminal.fares.errors.PushedTableError`:

1. a signature that does not verify (:class:`~terminal.fares.errors.SignatureRefused`);
2. another kind than expected (:class:`~terminal.fares.errors.WrongKindRefused`);
3. an envelope issued longer ago than the configured maximum age, or in the future beyond the
   allowed clock skew (:class:`~terminal.fares.errors.TableAgeRefused`);
4. a version not newer than the one in force: no replay, no rollback
   (:class:`~terminal.fares.errors.RollbackRefused`);
5. a deny-list delta whose base is not the version in force (N-1 -> N,
   :class:`~terminal.fares.errors.DeltaChainRefused`);
6. a payload that is not a valid table (:class:`~terminal.fares.errors.MalformedTableRefused`).

On any refusal the previous table stays in force: :func:`accept_tariff` and
:func:`accept_deny_list` return a new table or raise, and :class:`PushedTables` swaps its table
only after a successful return. A bad table can never open every gate (London Oyster, 2008).

Persistence (a terminal losing power loses nothing): given a
:class:`~terminal.fares.store.TableStore`, :class:`PushedTables` keeps the signed envelopes it
accepted, never a derived state: ``tariff.json`` holds the tariff in force and the pending one,
``deny_list.json`` the last full deny-list and the deltas accepted since (reset by the next full
list). The order is **verify, then write (durably), then put in force**. Verifying first means
nothing unverified is ever written. Writing before putting in force means that whatever a card
was decided on is already on the disk: a power cut at any moment restarts the terminal with the
table that was in force or with the verified one being written, never with an older one than a
decision used, and never with a mix (each write is atomic, :mod:`terminal.fares.store`). The
other order would let a gate refuse a card on a list that a power cut then takes away, with its
version forgotten by the rollback check. If the write fails (disk full, I/O error) the verified
table is put in force anyway and the failure logged as an error: a newer deny-list in memory is
better than the older one alone, the disk still holds the older verified state, and the next
table accepted writes the whole state again. The promotion of a pending tariff on its day is not
written: the pair (in force, pending) is stored and the promotion happens again after a restart.

At start the stored envelopes go through the same checks as a push (signature, kind, version
chain, content), on top of the tables given to the constructor, but **not the age**: a list
accepted three days ago and held since is what the terminal has, and a clock reset at boot must
not throw it away. A reloaded deny-list older than the maximum age (or dated in the future) is
logged as a warning: supervision sees a stale terminal. A stored document that fails is refused:
logged as an error, renamed ``<name>.refused`` (kept for inspection) and not used; the terminal
starts with what it would have without storage. The reloaded versions keep the rollback
protection across restarts.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from card_schema.signed_tables import canonical_bytes
from terminal.fares.denylist import DenyList
from terminal.fares.errors import (
    DeltaChainRefused,
    MalformedTableRefused,
    PushedTableError,
    RollbackRefused,
    SignatureRefused,
    TableAgeRefused,
    TariffError,
    WrongKindRefused,
)
from terminal.fares.local_time import local_date, to_utc
from terminal.fares.store import TableStore, TableStoreError
from terminal.fares.tariff import Tariff, parse_tariff

log = logging.getLogger(__name__)

_State = TypeVar("_State")

TARIFF_MAX_AGE = timedelta(days=90)  # a tariff table is re-signed at least every quarter
DENY_LIST_MAX_AGE = timedelta(days=3)  # pushed at least daily; three days allows a long weekend
MAX_CLOCK_SKEW = timedelta(minutes=5)  # how far in the future issued_at may be

STORE_FORMAT = "regioncard-pushed-tables/1"
TARIFF_DOCUMENT = "tariff.json"  # {"format", "in_force": envelope | null, "pending": ...}
DENY_LIST_DOCUMENT = "deny_list.json"  # {"format", "full": envelope | null, "deltas": [...]}

_SERIAL = re.compile(r"^[0-9A-Fa-f]{2,32}$")


class EnvelopeKind(StrEnum):
    """What a signed envelope carries."""

    TARIFF = "tariff"
    DENY_LIST = "deny_list"  # the whole list
    DENY_LIST_DELTA = "deny_list_delta"  # serials to add and remove, from version N-1 to N


def _unreadable(exc: Exception) -> MalformedTableRefused:
    return MalformedTableRefused(
        "enveloppe illisible, table précédente conservée",
        f"unreadable envelope, previous table kept ({exc})",
    )


@dataclass(frozen=True)
class SignedEnvelope:
    """A table as pushed by the backend, before verification.

    Attributes:
        kind: :class:`EnvelopeKind` value (kept as a string: an unknown kind must be refusable).
        version: version of the table it carries.
        issued_at: when the backend signed it.
        payload: the table itself (decoded JSON).
        signature: Ed25519 signature of :func:`canonical_bytes` (64 bytes).
    """

    kind: str
    version: int
    issued_at: datetime
    payload: Mapping[str, Any]
    signature: bytes

    def signed_bytes(self) -> bytes:
        """What the signature covers."""
        return canonical_bytes(self.kind, self.version, self.issued_at, self.payload)

    def to_obj(self) -> dict[str, Any]:
        """The envelope as a JSON object (what :meth:`from_obj` reads)."""
        return {
            "kind": self.kind,
            "version": self.version,
            "issued_at": to_utc(self.issued_at).isoformat(),
            "payload": self.payload,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    def to_json(self) -> str:
        """The envelope as sent over the wire."""
        return json.dumps(self.to_obj(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> SignedEnvelope:
        """Parse an envelope received from the backend (nothing is trusted yet).

        Raises:
            MalformedTableRefused: not an envelope.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _unreadable(exc) from exc
        return cls.from_obj(data)

    @classmethod
    def from_obj(cls, data: Any) -> SignedEnvelope:
        """Parse an envelope already decoded from JSON (nothing is trusted yet).

        Raises:
            MalformedTableRefused: not an envelope.
        """
        try:
            envelope = cls(
                kind=str(data["kind"]),
                version=int(data["version"]),
                issued_at=datetime.fromisoformat(data["issued_at"]),
                payload=data["payload"],
                signature=base64.b64decode(data["signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise _unreadable(exc) from exc
        if envelope.issued_at.tzinfo is None or not isinstance(envelope.payload, dict):
            raise MalformedTableRefused(
                "enveloppe incomplète, table précédente conservée",
                "envelope needs an aware issued_at and an object payload, previous table kept",
            )
        return envelope


def sign_envelope(
    private_key: Ed25519PrivateKey,
    kind: str,
    version: int,
    issued_at: datetime,
    payload: Mapping[str, Any],
) -> SignedEnvelope:
    """Sign a table (what the backend does with its HSM key; used here by tests and tools)."""
    signature = private_key.sign(canonical_bytes(kind, version, issued_at, payload))
    return SignedEnvelope(kind, version, issued_at, payload, signature)


def verify_envelope(
    envelope: SignedEnvelope,
    public_key: Ed25519PublicKey,
    *,
    kinds: Collection[str],
    now: datetime,
    max_age: timedelta,
    max_clock_skew: timedelta = MAX_CLOCK_SKEW,
    check_age: bool = True,
) -> None:
    """Check signature, kind and age, in that order (nothing is read before the signature holds).

    ``check_age=False`` skips the age, and only for an envelope the terminal accepted before and
    reads back from its own store (:class:`PushedTables`): its age was checked when it came.

    Raises:
        SignatureRefused: the signature does not verify.
        WrongKindRefused: ``envelope.kind`` is not one of ``kinds``.
        TableAgeRefused: issued more than ``max_age`` ago, or more than ``max_clock_skew`` ahead.
    """
    kind, version = envelope.kind, envelope.version
    try:
        public_key.verify(envelope.signature, envelope.signed_bytes())
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise SignatureRefused(
            "signature invalide, table précédente conservée",
            "signature does not verify, previous table kept",
            kind=kind,
            version=version,
        ) from exc
    if kind not in kinds:
        raise WrongKindRefused(
            f"type de table inattendu ({kind}), table précédente conservée",
            f"unexpected table kind {kind!r} (wanted {sorted(kinds)}), previous table kept",
            kind=kind,
            version=version,
        )
    if not check_age:
        return
    age = to_utc(now) - to_utc(envelope.issued_at)
    if age > max_age:
        raise TableAgeRefused(
            "table trop ancienne, table précédente conservée",
            f"table issued {age} ago, more than {max_age}, previous table kept",
            kind=kind,
            version=version,
        )
    if -age > max_clock_skew:
        raise TableAgeRefused(
            "table datée du futur, table précédente conservée",
            f"table issued {-age} in the future, check the clocks; previous table kept",
            kind=kind,
            version=version,
        )


def _refuse_rollback(envelope: SignedEnvelope, current_version: int) -> None:
    if envelope.version <= current_version:
        raise RollbackRefused(
            f"version {envelope.version} non plus récente que {current_version}, "
            "table précédente conservée",
            f"version {envelope.version} is not newer than {current_version} (replay or "
            "rollback), previous table kept",
            kind=envelope.kind,
            version=envelope.version,
        )


def accept_tariff(
    current_version: int,
    envelope: SignedEnvelope,
    public_key: Ed25519PublicKey,
    *,
    now: datetime,
    max_age: timedelta = TARIFF_MAX_AGE,
    max_clock_skew: timedelta = MAX_CLOCK_SKEW,
    check_age: bool = True,
) -> Tariff:
    """Verify a pushed tariff table and return it; raise if it must be refused.

    Args:
        current_version: version in force (or already pending), 0 when none.
        envelope: what the backend sent.
        public_key: the backend's table-signing key.
        now: terminal clock.
        max_age: oldest ``issued_at`` accepted.
        max_clock_skew: how far in the future ``issued_at`` may be.
        check_age: ``False`` only for a table read back from the terminal's store.

    Raises:
        PushedTableError: any refusal (see the module docstring); keep the previous table.
    """
    verify_envelope(
        envelope,
        public_key,
        kinds={EnvelopeKind.TARIFF},
        now=now,
        max_age=max_age,
        max_clock_skew=max_clock_skew,
        check_age=check_age,
    )
    _refuse_rollback(envelope, current_version)
    try:
        tariff = parse_tariff(envelope.payload)
    except TariffError as exc:
        raise MalformedTableRefused(
            "table tarifaire invalide, table précédente conservée",
            f"tariff payload does not validate, previous table kept: {exc}",
            kind=envelope.kind,
            version=envelope.version,
        ) from exc
    if tariff.version != envelope.version:
        raise MalformedTableRefused(
            "version de la table différente de celle de l'enveloppe, table précédente conservée",
            f"payload version {tariff.version} differs from envelope version "
            f"{envelope.version}, previous table kept",
            kind=envelope.kind,
            version=envelope.version,
        )
    return tariff


def _serials(payload: Mapping[str, Any], key: str, envelope: SignedEnvelope) -> list[str]:
    values = payload.get(key, [])
    if not isinstance(values, list) or not all(
        isinstance(v, str) and _SERIAL.match(v) for v in values
    ):
        raise MalformedTableRefused(
            f"liste « {key} » invalide, liste précédente conservée",
            f"{key!r} must be a list of hex card serials, previous list kept",
            kind=envelope.kind,
            version=envelope.version,
        )
    return values


def accept_deny_list(
    current: DenyList,
    envelope: SignedEnvelope,
    public_key: Ed25519PublicKey,
    *,
    now: datetime,
    max_age: timedelta = DENY_LIST_MAX_AGE,
    max_clock_skew: timedelta = MAX_CLOCK_SKEW,
    check_age: bool = True,
) -> DenyList:
    """Verify a pushed deny-list (full or delta) and return the new list; raise to refuse it.

    A full list (``kind = "deny_list"``, payload ``{"serials": [...]}``) replaces any older
    version. A delta (``kind = "deny_list_delta"``, payload ``{"base_version": N-1, "add": [...],
    "remove": [...]}``) applies only to version N-1 and makes version N. ``check_age=False`` only
    for a list read back from the terminal's store.

    Raises:
        PushedTableError: any refusal (see the module docstring); keep ``current``.
    """
    verify_envelope(
        envelope,
        public_key,
        kinds={EnvelopeKind.DENY_LIST, EnvelopeKind.DENY_LIST_DELTA},
        now=now,
        max_age=max_age,
        max_clock_skew=max_clock_skew,
        check_age=check_age,
    )
    _refuse_rollback(envelope, current.version)
    payload = envelope.payload
    if envelope.kind == EnvelopeKind.DENY_LIST:
        serials = _serials(payload, "serials", envelope)
        return DenyList(envelope.version, envelope.issued_at, frozenset(serials))
    base = payload.get("base_version")
    if base != current.version or envelope.version != current.version + 1:
        raise DeltaChainRefused(
            f"delta {base} -> {envelope.version} ne s'applique pas à la version "
            f"{current.version}, liste précédente conservée",
            f"delta {base} -> {envelope.version} does not apply to version {current.version}; "
            "a full list is needed, previous list kept",
            kind=envelope.kind,
            version=envelope.version,
        )
    return current.with_delta(
        version=envelope.version,
        issued_at=envelope.issued_at,
        add=_serials(payload, "add", envelope),
        remove=_serials(payload, "remove", envelope),
    )


def _stored_refusal(message_en: str) -> MalformedTableRefused:
    return MalformedTableRefused("table enregistrée illisible, non utilisée", message_en)


def _stored_fields(document: Any, keys: Sequence[str]) -> Mapping[str, Any]:
    """The fields of a stored document, once its shape is right (nothing verified yet).

    Raises:
        MalformedTableRefused: not a document of this format with these keys.
    """
    if not isinstance(document, dict) or document.get("format") != STORE_FORMAT:
        raise _stored_refusal(f"stored document is not a {STORE_FORMAT} document, not used")
    missing = [key for key in keys if key not in document]
    if missing:
        raise _stored_refusal(f"stored document lacks {missing}, not used")
    return document


def _optional_envelope(value: Any) -> SignedEnvelope | None:
    return None if value is None else SignedEnvelope.from_obj(value)


@dataclass(frozen=True)
class _TariffState:
    """The tariff in force and the pending one, each with the envelope it came in.

    An envelope is ``None`` for the table given to :class:`PushedTables` (the packaged one).
    """

    tariff: Tariff
    envelope: SignedEnvelope | None = None
    pending: Tariff | None = None
    pending_envelope: SignedEnvelope | None = None

    def at(self, day: date) -> _TariffState:
        """This state on local date ``day``: the pending table in force once its day has come."""
        if self.pending is None or self.pending.valid_from > day:
            return self
        return _TariffState(self.pending, self.pending_envelope)

    def document(self) -> dict[str, Any]:
        """What the store keeps: the envelopes, never the parsed tables."""
        return {
            "format": STORE_FORMAT,
            "in_force": self.envelope.to_obj() if self.envelope else None,
            "pending": self.pending_envelope.to_obj() if self.pending_envelope else None,
        }


@dataclass(frozen=True)
class _DenyListState:
    """The deny-list in force with the envelopes that made it: a full list, then deltas.

    ``full`` is ``None`` when the deltas apply to the list given to :class:`PushedTables`.
    """

    deny_list: DenyList
    full: SignedEnvelope | None = None
    deltas: tuple[SignedEnvelope, ...] = ()

    def document(self) -> dict[str, Any]:
        """What the store keeps: the envelopes, never the list they make."""
        return {
            "format": STORE_FORMAT,
            "full": self.full.to_obj() if self.full else None,
            "deltas": [delta.to_obj() for delta in self.deltas],
        }


class PushedTables:
    """The tables in force on one terminal; the only stateful piece of the fare layer.

    A new table replaces the current one only after it has been fully verified; on any refusal the
    exception propagates and the previous table stays. A tariff table whose ``valid_from`` is still
    ahead is kept pending and takes over at :meth:`tariff_at` from that day.

    With a ``store``, every accepted envelope is written to it before the table is put in force,
    and the constructor reloads what it holds (see the module docstring). Offers are serialised
    by a lock; readers (the gate) never take it, and :meth:`tariff_at` never waits for it.
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        tariff: Tariff,
        deny_list: DenyList | None = None,
        *,
        tariff_max_age: timedelta = TARIFF_MAX_AGE,
        deny_list_max_age: timedelta = DENY_LIST_MAX_AGE,
        max_clock_skew: timedelta = MAX_CLOCK_SKEW,
        store: TableStore | None = None,
        now: datetime | None = None,
    ) -> None:
        """Set the tables to start with, then reload the stored ones on top of them.

        Args:
            public_key: the backend's table-signing key.
            tariff: the table in force without any push (the packaged one).
            deny_list: the list in force without any push (empty by default).
            tariff_max_age: oldest ``issued_at`` of a pushed tariff.
            deny_list_max_age: oldest ``issued_at`` of a pushed deny-list.
            max_clock_skew: how far in the future ``issued_at`` may be.
            store: where accepted envelopes are kept and reloaded from; in memory only if
                ``None``.
            now: terminal clock at start, only to warn about a stale reloaded deny-list (default:
                the system clock).

        A stored document that fails verification is logged, set aside and not used; the
        constructor never raises for it.
        """
        self._public_key = public_key
        self._tariff_max_age = tariff_max_age
        self._deny_list_max_age = deny_list_max_age
        self._skew = max_clock_skew
        self._store = store
        self._lock = threading.Lock()
        self._tariff_state = _TariffState(tariff)
        self._deny_state = _DenyListState(deny_list if deny_list is not None else DenyList())
        if store is not None:
            self._restore(store, now if now is not None else datetime.now(UTC))

    @property
    def store(self) -> TableStore | None:
        """Where accepted tables are kept, if anywhere."""
        return self._store

    @property
    def tariff(self) -> Tariff:
        """Tariff table in force (ignoring a pending one)."""
        return self._tariff_state.tariff

    @property
    def pending_tariff(self) -> Tariff | None:
        """Accepted table waiting for its ``valid_from`` day, if any."""
        return self._tariff_state.pending

    @property
    def held_tariff_version(self) -> int:
        """Newest tariff version held, in force or pending: a pushed table must be newer."""
        state = self._tariff_state
        return max(state.tariff.version, state.pending.version if state.pending else 0)

    @property
    def deny_list(self) -> DenyList:
        """Deny-list in force."""
        return self._deny_state.deny_list

    @property
    def stored_deltas(self) -> int:
        """Deny-list deltas accepted since the last full list (what the store replays at start)."""
        return len(self._deny_state.deltas)

    def tariff_at(self, now: datetime) -> Tariff:
        """Tariff table in force at ``now``, promoting the pending table once its day has come.

        The promotion is not written: the store keeps the pending table as pending and the same
        promotion happens after a restart. Never waits for an offer being written.
        """
        day = local_date(now)
        state = self._tariff_state
        if state.pending is None or state.pending.valid_from > day:
            return state.tariff
        if not self._lock.acquire(blocking=False):
            return state.pending  # an offer is being written: promote at a later call
        try:
            self._tariff_state = self._tariff_state.at(day)
            return self._tariff_state.tariff
        finally:
            self._lock.release()

    def offer_tariff(self, envelope: SignedEnvelope, now: datetime) -> Tariff:
        """Verify, store and install a pushed tariff table.

        Raises:
            PushedTableError: refused; the table in force (and any pending one) is unchanged.
        """
        with self._lock:
            state = self._tariff_state
            tariff = accept_tariff(
                self.held_tariff_version,
                envelope,
                self._public_key,
                now=now,
                max_age=self._tariff_max_age,
                max_clock_skew=self._skew,
            )
            if tariff.valid_from > local_date(now):
                new = _TariffState(state.tariff, state.envelope, tariff, envelope)
            else:
                new = _TariffState(tariff, envelope)
            self._save(TARIFF_DOCUMENT, new.document())
            self._tariff_state = new
        return tariff

    def offer_deny_list(self, envelope: SignedEnvelope, now: datetime) -> DenyList:
        """Verify, store and install a pushed deny-list (full or delta).

        Raises:
            PushedTableError: refused; the list in force is unchanged.
        """
        with self._lock:
            state = self._deny_state
            deny_list = accept_deny_list(
                state.deny_list,
                envelope,
                self._public_key,
                now=now,
                max_age=self._deny_list_max_age,
                max_clock_skew=self._skew,
            )
            if envelope.kind == EnvelopeKind.DENY_LIST:
                new = _DenyListState(deny_list, envelope)
            else:
                new = _DenyListState(deny_list, state.full, (*state.deltas, envelope))
            self._save(DENY_LIST_DOCUMENT, new.document())
            self._deny_state = new
        return deny_list

    # -- storage ------------------------------------------------------------------------------

    def _save(self, name: str, document: Mapping[str, Any]) -> None:
        """Write ``document`` to the store; a failure is logged, never raised (table kept)."""
        if self._store is None:
            return
        try:
            self._store.write(name, document)
        except OSError as exc:
            log.error(
                "%s could not be stored (%s): the verified table is in force all the same, but "
                "a power cut would bring back the previous stored one; stored again with the "
                "next table accepted",
                self._store.path(name),
                exc,
            )

    def _restore(self, store: TableStore, now: datetime) -> None:
        """Reload the stored tables on top of the ones given to the constructor."""
        fallback = f"tariff version {self.tariff.version} given at start"
        tariff_state = self._reload(store, TARIFF_DOCUMENT, fallback, self._stored_tariff, now)
        if tariff_state is not None:
            self._tariff_state = tariff_state
        fallback = f"deny-list version {self.deny_list.version} given at start"
        deny_state = self._reload(store, DENY_LIST_DOCUMENT, fallback, self._stored_deny_list, now)
        if deny_state is not None:
            self._deny_state = deny_state
        if tariff_state is None and deny_state is None:
            return
        pending = self.pending_tariff
        log.info(
            "tables reloaded from %s: tariff version %d%s, deny-list version %d (%d deltas "
            "since the full list)",
            store.directory,
            self.tariff.version,
            f" (version {pending.version} pending from {pending.valid_from})" if pending else "",
            self.deny_list.version,
            self.stored_deltas,
        )
        if deny_state is not None:
            self._warn_if_stale(store, now)

    @staticmethod
    def _reload(
        store: TableStore,
        name: str,
        fallback: str,
        verify: Callable[[Any, datetime], _State],
        now: datetime,
    ) -> _State | None:
        """Read and verify one stored document; ``None`` when there is none or it is refused."""
        try:
            document = store.read(name)
            return None if document is None else verify(document, now)
        except (TableStoreError, PushedTableError) as exc:
            PushedTables._refuse_stored(store, name, fallback, exc)
            return None

    @staticmethod
    def _refuse_stored(store: TableStore, name: str, fallback: str, error: Exception) -> None:
        """Log a refused stored document and set it aside (never deleted)."""
        try:
            aside = store.set_aside(name)
        except OSError as exc:
            kept = f"left in place, could not be set aside ({exc})"
        else:
            kept = f"set aside as {aside}"
        log.error(
            "stored table %s refused and not used (%s); %s; the terminal goes on with the %s "
            "until the backend sends a newer one",
            store.path(name),
            error,
            kept,
            fallback,
        )

    def _stored_tariff(self, document: Any, now: datetime) -> _TariffState:
        """The tariff state a stored document makes, verified like a push but for the age.

        Raises:
            PushedTableError: the document or one of its envelopes is refused.
        """
        fields = _stored_fields(document, ("in_force", "pending"))
        in_force = _optional_envelope(fields["in_force"])
        pending = _optional_envelope(fields["pending"])
        state = self._tariff_state
        if in_force is not None:
            tariff = self._accept_stored_tariff(state.tariff.version, in_force, now)
            state = _TariffState(tariff, in_force)
        if pending is not None:
            tariff = self._accept_stored_tariff(state.tariff.version, pending, now)
            state = _TariffState(state.tariff, state.envelope, tariff, pending)
        return state

    def _accept_stored_tariff(
        self, current_version: int, envelope: SignedEnvelope, now: datetime
    ) -> Tariff:
        return accept_tariff(current_version, envelope, self._public_key, now=now, check_age=False)

    def _stored_deny_list(self, document: Any, now: datetime) -> _DenyListState:
        """The deny-list state a stored document makes: its full list, then each delta in order.

        Raises:
            PushedTableError: the document or one of its envelopes is refused.
        """
        fields = _stored_fields(document, ("full", "deltas"))
        if not isinstance(fields["deltas"], list):
            raise _stored_refusal("stored deltas are not a list, not used")
        full = _optional_envelope(fields["full"])
        deltas = [SignedEnvelope.from_obj(delta) for delta in fields["deltas"]]
        state = self._deny_state
        if full is not None:
            deny_list = self._accept_stored_deny_list(state.deny_list, full, now)
            state = _DenyListState(deny_list, full)
        for delta in deltas:
            deny_list = self._accept_stored_deny_list(state.deny_list, delta, now, delta=True)
            state = _DenyListState(deny_list, state.full, (*state.deltas, delta))
        return state

    def _accept_stored_deny_list(
        self, current: DenyList, envelope: SignedEnvelope, now: datetime, *, delta: bool = False
    ) -> DenyList:
        """:func:`accept_deny_list` without the age, for a stored full list (or a ``delta``).

        Raises:
            PushedTableError: refused (a full list among the deltas is a :class:`WrongKindRefused`).
        """
        deny_list = accept_deny_list(current, envelope, self._public_key, now=now, check_age=False)
        kind = EnvelopeKind.DENY_LIST_DELTA if delta else EnvelopeKind.DENY_LIST
        if envelope.kind != kind:
            raise WrongKindRefused(
                "type de table inattendu dans la liste enregistrée, non utilisée",
                f"stored {envelope.kind!r} where a {kind.value!r} belongs, not used",
                kind=envelope.kind,
                version=envelope.version,
            )
        return deny_list

    def _warn_if_stale(self, store: TableStore, now: datetime) -> None:
        """Log a reloaded deny-list older than the maximum age (or from the future)."""
        deny_list = self.deny_list
        age = deny_list.age(now)
        if age > self._deny_list_max_age:
            log.warning(
                "deny-list version %d reloaded from %s was issued %s ago, more than the maximum "
                "age of %s: this terminal is STALE; the list stays in force until the backend "
                "sends a newer one",
                deny_list.version,
                store.directory,
                age,
                self._deny_list_max_age,
            )
        elif -age > self._skew:
            log.warning(
                "deny-list version %d reloaded from %s was issued %s in the future: check the "
                "terminal clock; the list stays in force",
                deny_list.version,
                store.directory,
                -age,
            )
