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
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from card_schema.signed_tables import canonical_bytes
from terminal.fares.denylist import DenyList
from terminal.fares.errors import (
    DeltaChainRefused,
    MalformedTableRefused,
    RollbackRefused,
    SignatureRefused,
    TableAgeRefused,
    TariffError,
    WrongKindRefused,
)
from terminal.fares.local_time import local_date, to_utc
from terminal.fares.tariff import Tariff, parse_tariff

TARIFF_MAX_AGE = timedelta(days=90)  # a tariff table is re-signed at least every quarter
DENY_LIST_MAX_AGE = timedelta(days=3)  # pushed at least daily; three days allows a long weekend
MAX_CLOCK_SKEW = timedelta(minutes=5)  # how far in the future issued_at may be

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

    def to_json(self) -> str:
        """The envelope as sent over the wire."""
        return json.dumps(
            {
                "kind": self.kind,
                "version": self.version,
                "issued_at": to_utc(self.issued_at).isoformat(),
                "payload": self.payload,
                "signature": base64.b64encode(self.signature).decode("ascii"),
            },
            ensure_ascii=False,
        )

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
) -> None:
    """Check signature, kind and age, in that order (nothing is read before the signature holds).

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
) -> Tariff:
    """Verify a pushed tariff table and return it; raise if it must be refused.

    Args:
        current_version: version in force (or already pending), 0 when none.
        envelope: what the backend sent.
        public_key: the backend's table-signing key.
        now: terminal clock.
        max_age: oldest ``issued_at`` accepted.
        max_clock_skew: how far in the future ``issued_at`` may be.

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
) -> DenyList:
    """Verify a pushed deny-list (full or delta) and return the new list; raise to refuse it.

    A full list (``kind = "deny_list"``, payload ``{"serials": [...]}``) replaces any older
    version. A delta (``kind = "deny_list_delta"``, payload ``{"base_version": N-1, "add": [...],
    "remove": [...]}``) applies only to version N-1 and makes version N.

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


class PushedTables:
    """The tables in force on one terminal; the only stateful piece of the fare layer.

    A new table replaces the current one only after it has been fully verified; on any refusal the
    exception propagates and the previous table stays. A tariff table whose ``valid_from`` is still
    ahead is kept pending and takes over at :meth:`tariff_at` from that day.
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
    ) -> None:
        self._public_key = public_key
        self._tariff = tariff
        self._pending: Tariff | None = None
        self._deny_list = deny_list if deny_list is not None else DenyList()
        self._tariff_max_age = tariff_max_age
        self._deny_list_max_age = deny_list_max_age
        self._skew = max_clock_skew

    @property
    def tariff(self) -> Tariff:
        """Tariff table in force (ignoring a pending one)."""
        return self._tariff

    @property
    def pending_tariff(self) -> Tariff | None:
        """Accepted table waiting for its ``valid_from`` day, if any."""
        return self._pending

    @property
    def held_tariff_version(self) -> int:
        """Newest tariff version held, in force or pending: a pushed table must be newer."""
        return max(self._tariff.version, self._pending.version if self._pending else 0)

    @property
    def deny_list(self) -> DenyList:
        """Deny-list in force."""
        return self._deny_list

    def tariff_at(self, now: datetime) -> Tariff:
        """Tariff table in force at ``now``, promoting the pending table once its day has come."""
        if self._pending is not None and self._pending.valid_from <= local_date(now):
            self._tariff, self._pending = self._pending, None
        return self._tariff

    def offer_tariff(self, envelope: SignedEnvelope, now: datetime) -> Tariff:
        """Verify and install a pushed tariff table.

        Raises:
            PushedTableError: refused; the table in force (and any pending one) is unchanged.
        """
        tariff = accept_tariff(
            self.held_tariff_version,
            envelope,
            self._public_key,
            now=now,
            max_age=self._tariff_max_age,
            max_clock_skew=self._skew,
        )
        if tariff.valid_from > local_date(now):
            self._pending = tariff
        else:
            self._tariff, self._pending = tariff, None
        return tariff

    def offer_deny_list(self, envelope: SignedEnvelope, now: datetime) -> DenyList:
        """Verify and install a pushed deny-list (full or delta).

        Raises:
            PushedTableError: refused; the list in force is unchanged.
        """
        self._deny_list = accept_deny_list(
            self._deny_list,
            envelope,
            self._public_key,
            now=now,
            max_age=self._deny_list_max_age,
            max_clock_skew=self._skew,
        )
        return self._deny_list
