"""The backend's key service: every secret-key operation happens inside a PKCS#11 token.

Keys on the token (labels):

- ``tables.sign.v1``: Ed25519 key pair (``CKK_EC_EDWARDS``, ``CKM_EDDSA``) signing deny-lists,
  action lists and tariff tables; terminals hold its public key (terminal/fares/signed.py).
- ``<application>.<role>.v<n>`` (:class:`card_schema.crypto.KeyRef` labels, ``plum.issuer.v1``):
  AES-128 master keys for desk personalisation and loads. Per-card keys are AN10922
  diversifications computed by the token; they leave it only wrapped (RFC 3394 AES key wrap)
  under ``desk.transport.v1``, the transport key shared with the desk stations' SAMs.
- ``trace.debit.v1``: master key of SAM traceable signatures (card_schema/traceability.py);
  :meth:`KeyService.sam_trace_key` derives one SAM's verification key in the token.
- ``pseudonym.p<period>``: HMAC-SHA-256 keys (``CKK_GENERIC_SECRET``) turning a card serial into
  the pseudonym taps are stored under; a new key per rotation period, old ones destroyed by
  :meth:`KeyService.retire_pseudonym_keys` so old pseudonyms can no longer be recomputed.

Every secret key is ``CKA_SENSITIVE`` and (except transient per-card keys, extractable only under
wrap) ``CKA_EXTRACTABLE = false``: no key value ever reaches the database or a log.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from backend.errors import KeyStoreError
from backend.keys import softhsm
from backend.settings import Settings
from card_schema.crypto import BLOCK, KeyRef, KeyRole, an10922_blocks
from card_schema.layout import CARD_LAYOUT

_log = logging.getLogger(__name__)

TABLE_SIGNING_LABEL = "tables.sign.v1"
TRACE_MASTER = KeyRef("trace", KeyRole.DEBIT, 1)
TRANSPORT_LABEL = "desk.transport.v1"
PSEUDONYM_PREFIX = "pseudonym.p"
PSEUDONYM_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
ED25519_OID = "1.3.101.112"


def issuance_key_refs(version: int = 1) -> list[KeyRef]:
    """Master keys the backend holds: every application x role (personalisation writes all three
    card keys), plus the trace master key. Same labels as the emulated SAM's key file."""
    refs = [KeyRef(app.name, role, version) for app in CARD_LAYOUT.applications for role in KeyRole]
    return [*refs, TRACE_MASTER]


def _ed25519_from_ec_point(ec_point: bytes) -> Ed25519PublicKey:
    # CKA_EC_POINT is a DER OCTET STRING (04 20 || 32 bytes) in SoftHSM2; accept raw too.
    raw = ec_point[2:] if len(ec_point) == 34 and ec_point[:2] == b"\x04\x20" else ec_point
    return Ed25519PublicKey.from_public_bytes(raw)


class KeyService:
    """Operations on the backend's PKCS#11 token; one session, serialised by a lock.

    Args:
        library: PKCS#11 module path.
        token_label: label of the token.
        user_pin: user PIN.
        pseudonym_rotation: how long one pseudonym key is used.

    Raises:
        KeyStoreError: the token cannot be opened.
    """

    def __init__(
        self,
        library: str,
        token_label: str,
        user_pin: str,
        *,
        pseudonym_rotation: timedelta = timedelta(days=7),
    ) -> None:
        import pkcs11  # IO edge: only the key service needs the PKCS#11 binding

        self._p = pkcs11
        self.library = library
        self.token_label = token_label
        self.pseudonym_rotation = pseudonym_rotation
        self._lock = threading.RLock()
        try:
            token = pkcs11.lib(library).get_token(token_label=token_label)
            self._session = token.open(user_pin=user_pin, rw=True)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyStoreError(
                f"jeton PKCS#11 {token_label!r} inaccessible",
                f"cannot open PKCS#11 token {token_label!r}: {exc!r}",
            ) from exc
        self._cache: dict[str, Any] = {}

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings) -> KeyService:
        """The key service the settings describe.

        With the default SoftHSM2 module and no ``softhsm2_conf``, a token with fresh random keys
        is created under ``<var_dir>/softhsm`` on first start (a fresh machine just works) and
        reused afterwards.
        """
        rotation = settings.pseudonym_rotation
        configured = settings.pkcs11_user_pin
        pin = configured.get_secret_value() if configured is not None else None
        if settings.softhsm2_conf is not None:
            os.environ["SOFTHSM2_CONF"] = str(settings.softhsm2_conf)
        elif Path(settings.pkcs11_module).name == "libsofthsm2.so":
            folder = (settings.var_dir / "softhsm").resolve()
            config = folder / "softhsm2.conf"
            pins = folder / "pins.json"
            if not config.exists():
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                pin = pin or softhsm.random_pin()
                token = softhsm.create_token(
                    folder, label=settings.pkcs11_token_label, user_pin=pin
                )
                if configured is None:
                    softhsm.save_pins(pins, pin, softhsm.random_pin())
                _log.warning(
                    "jeton SoftHSM2 créé automatiquement dans %s, PIN aléatoire dans %s : "
                    "pour les tests et démonstrations seulement, jamais en production / "
                    "SoftHSM2 token auto-created (random PINs): for tests and demos only",
                    folder,
                    pins,
                )
                provision_token(token.library, token.label, token.user_pin)
            elif pin is None:
                pin = softhsm.load_user_pin(pins)
            os.environ["SOFTHSM2_CONF"] = str(config)
        if pin is None:
            raise KeyStoreError(
                "PIN du jeton PKCS#11 manquant : donnez REGIONCARD_PKCS11_USER_PIN",
                "no PKCS#11 user PIN: set REGIONCARD_PKCS11_USER_PIN",
            )
        return cls(
            settings.pkcs11_module, settings.pkcs11_token_label, pin, pseudonym_rotation=rotation
        )

    @classmethod
    def for_tests(
        cls,
        directory: Path,
        *,
        master_keys: Mapping[str, bytes] | None = None,
        pseudonym_rotation: timedelta = timedelta(days=7),
    ) -> KeyService:
        """A SoftHSM2 token in ``directory`` with the backend's keys, opened.

        Args:
            directory: empty folder for the token.
            master_keys: AES master keys to import by label (the demo's key ceremony, so the
                backend and the emulated SAMs share them); missing ones are generated randomly
                inside the token.
            pseudonym_rotation: rotation period of the pseudonym keys.

        Raises:
            KeyStoreError: SoftHSM2 missing or the token cannot be created.
        """
        token = softhsm.create_token(directory, isolated=True)
        provision_token(token.library, token.label, token.user_pin, master_keys)
        return cls(
            token.library, token.label, token.user_pin, pseudonym_rotation=pseudonym_rotation
        )

    def close(self) -> None:
        """Close the token session."""
        with self._lock:
            self._session.close()

    # -- lookups ------------------------------------------------------------------------------

    def _find(self, label: str, object_class: Any, key_type: Any | None = None) -> Any:
        p = self._p
        cache_key = f"{label}/{object_class}"
        if cache_key in self._cache:
            return self._cache[cache_key]
        try:
            if object_class == p.ObjectClass.SECRET_KEY:
                obj = self._session.get_key(
                    object_class=object_class, key_type=key_type, label=label
                )
            else:
                obj = self._session.get_key(object_class=object_class, label=label)
        except (p.NoSuchKey, p.MultipleObjectsReturned) as exc:
            raise KeyStoreError(
                f"clé {label} absente du jeton", f"no single key {label} on the token"
            ) from exc
        self._cache[cache_key] = obj
        return obj

    def _aes(self, label: str) -> Any:
        return self._find(label, self._p.ObjectClass.SECRET_KEY, self._p.KeyType.AES)

    def labels(self) -> list[str]:
        """Labels of the keys on the token (never their values)."""
        with self._lock:
            return sorted({str(o[self._p.Attribute.LABEL]) for o in self._session.get_objects({})})

    def key_attributes(self, label: str) -> dict[str, bool]:
        """``sensitive``/``extractable`` flags of a secret or private key (for audits and tests)."""
        p = self._p
        with self._lock:
            objects = list(self._session.get_objects({p.Attribute.LABEL: label}))
            for obj in objects:
                if obj[p.Attribute.CLASS] in (p.ObjectClass.SECRET_KEY, p.ObjectClass.PRIVATE_KEY):
                    return {
                        "sensitive": bool(obj[p.Attribute.SENSITIVE]),
                        "extractable": bool(obj[p.Attribute.EXTRACTABLE]),
                    }
        raise KeyStoreError(f"clé {label} absente du jeton", f"no key {label} on the token")

    def key_value(self, label: str) -> bytes:
        """Try to read a key value; the token refuses for every key the backend holds.

        Raises:
            KeyStoreError: always, for sensitive keys (which all of ours are).
        """
        p = self._p
        with self._lock:
            for obj in self._session.get_objects({p.Attribute.LABEL: label}):
                try:
                    return bytes(obj[p.Attribute.VALUE])
                except (p.AttributeSensitive, p.PKCS11Error) as exc:
                    raise KeyStoreError(
                        f"la clé {label} ne sort pas du jeton",
                        f"key {label} is sensitive: the token refuses to reveal it",
                    ) from exc
        raise KeyStoreError(f"clé {label} absente du jeton", f"no key {label} on the token")

    # -- table signing ------------------------------------------------------------------------

    def table_signing_public_key(self) -> Ed25519PublicKey:
        """The public half of the table-signing key (what terminals are installed with)."""
        p = self._p
        with self._lock:
            public = self._find(TABLE_SIGNING_LABEL, p.ObjectClass.PUBLIC_KEY)
            return _ed25519_from_ec_point(bytes(public[p.Attribute.EC_POINT]))

    def sign_table(self, data: bytes) -> bytes:
        """Ed25519 signature (RFC 8032, ``CKM_EDDSA``) of ``data`` by the table-signing key."""
        p = self._p
        with self._lock:
            private = self._find(TABLE_SIGNING_LABEL, p.ObjectClass.PRIVATE_KEY)
            return bytes(private.sign(data, mechanism=p.Mechanism.EDDSA))

    # -- AN10922 in the token -----------------------------------------------------------------

    def _blocks(self, key: Any, diversification_input: bytes) -> tuple[bytes, bytes]:
        mech = self._p.Mechanism
        l_block = bytes(key.encrypt(bytes(BLOCK), mechanism=mech.AES_ECB))
        return an10922_blocks(l_block, diversification_input)

    def diversify(self, ref: KeyRef, diversification_input: bytes) -> bytes:
        """AN10922 AES-128 diversification of master key ``ref``, computed by the token.

        The result is a derived key in clear: only for keys the backend itself must use in
        software (SAM traceable-signature keys). Card keys go through :meth:`wrapped_card_key`.
        """
        with self._lock:
            key = self._aes(ref.label)
            first, second = self._blocks(key, diversification_input)
            out = bytes(
                key.encrypt(
                    first + second,
                    mechanism=self._p.Mechanism.AES_CBC,
                    mechanism_param=bytes(BLOCK),
                )
            )
            return out[-BLOCK:]

    def sam_trace_key(self, sam_serial: bytes) -> bytes:
        """Traceable-signature key of one SAM: AN10922(``trace.debit.v1``, ``SAM`` || serial).

        Same value as :func:`card_schema.traceability.sam_trace_key` with the master key, which
        never leaves the token. Callers may cache it in memory (never in the database or logs).
        """
        return self.diversify(TRACE_MASTER, b"SAM" + sam_serial)

    def wrapped_card_key(
        self, ref: KeyRef, diversification_input: bytes, transport_label: str = TRANSPORT_LABEL
    ) -> bytes:
        """A per-card key, AN10922-diversified and AES-key-wrapped (RFC 3394) inside the token.

        The first CBC block is computed with ``CKM_AES_ECB``; the second is a key derivation
        (``CKM_AES_ECB_ENCRYPT_DATA``) so the card key is born as a token object, sensitive, then
        wrapped under the transport key and destroyed. It never exists in clear outside the token.

        Returns:
            24 bytes: the wrapped key (unwrap with the transport key, RFC 3394).
        """
        p = self._p
        with self._lock:
            master = self._aes(ref.label)
            first, second = self._blocks(master, diversification_input)
            c1 = bytes(master.encrypt(first, mechanism=p.Mechanism.AES_ECB))
            data = bytes(a ^ b for a, b in zip(c1, second, strict=True))
            card_key = master.derive_key(
                p.KeyType.AES,
                128,
                mechanism=p.Mechanism.AES_ECB_ENCRYPT_DATA,
                mechanism_param=data,
                store=False,
                template={p.Attribute.SENSITIVE: True, p.Attribute.EXTRACTABLE: True},
            )
            try:
                transport = self._aes(transport_label)
                return bytes(transport.wrap_key(card_key, mechanism=p.Mechanism.AES_KEY_WRAP))
            finally:
                card_key.destroy()

    # -- pseudonyms ---------------------------------------------------------------------------

    def pseudonym_period(self, at: datetime) -> int:
        """Index of the rotation period ``at`` falls in."""
        if at.tzinfo is None:
            raise ValueError("naive datetime")
        return int((at - PSEUDONYM_EPOCH) // self.pseudonym_rotation)

    def _pseudonym_key(self, period: int) -> Any:
        p = self._p
        label = f"{PSEUDONYM_PREFIX}{period}"
        try:
            return self._find(label, p.ObjectClass.SECRET_KEY, p.KeyType.GENERIC_SECRET)
        except KeyStoreError:
            key = self._session.generate_key(
                p.KeyType.GENERIC_SECRET,
                256,
                label=label,
                store=True,
                template={
                    p.Attribute.SIGN: True,
                    p.Attribute.VERIFY: True,
                    p.Attribute.SENSITIVE: True,
                    p.Attribute.EXTRACTABLE: False,
                    p.Attribute.PRIVATE: True,
                },
            )
            self._cache[f"{label}/{p.ObjectClass.SECRET_KEY}"] = key
            return key

    def pseudonym(self, card_serial: bytes, at: datetime) -> str:
        """The keyed pseudonym of a card for the rotation period containing ``at``.

        ``P<period>-<32 hex>``: HMAC-SHA-256 (truncated to 128 bits) of the serial under that
        period's key. Without the key (destroyed at retirement) nobody can link it to the card.
        """
        period = self.pseudonym_period(at)
        with self._lock:
            key = self._pseudonym_key(period)
            mac = bytes(key.sign(b"card:" + card_serial, mechanism=self._p.Mechanism.SHA256_HMAC))
        return f"P{period}-{mac[:16].hex()}"

    def retire_pseudonym_keys(self, before: datetime) -> int:
        """Destroy the pseudonym keys of periods that ended before ``before``; return how many."""
        p = self._p
        limit = self.pseudonym_period(before)
        destroyed = 0
        with self._lock:
            for obj in list(
                self._session.get_objects({p.Attribute.CLASS: p.ObjectClass.SECRET_KEY})
            ):
                label = str(obj[p.Attribute.LABEL])
                if label.startswith(PSEUDONYM_PREFIX):
                    period = int(label.removeprefix(PSEUDONYM_PREFIX))
                    if period < limit:
                        obj.destroy()
                        self._cache.pop(f"{label}/{p.ObjectClass.SECRET_KEY}", None)
                        destroyed += 1
        return destroyed


def provision_token(
    library: str,
    token_label: str,
    user_pin: str,
    master_keys: Mapping[str, bytes] | None = None,
) -> None:
    """Put the backend's keys on an empty token (the key ceremony, scripted for tests and demo).

    AES master keys listed in ``master_keys`` are imported (sensitive, never extractable);
    the others, the transport key and the Ed25519 table-signing pair are generated in the token.

    Raises:
        KeyStoreError: the token refuses.
    """
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters

    a = pkcs11.Attribute
    given = dict(master_keys or {})
    secret_template = {
        a.TOKEN: True,
        a.PRIVATE: True,
        a.SENSITIVE: True,
        a.EXTRACTABLE: False,
        a.ENCRYPT: True,
        a.DECRYPT: False,
        a.DERIVE: True,
    }
    try:
        token = pkcs11.lib(library).get_token(token_label=token_label)
        with token.open(user_pin=user_pin, rw=True) as session:
            for ref in issuance_key_refs():
                if ref.label in given:
                    session.create_object(
                        {
                            **secret_template,
                            a.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                            a.KEY_TYPE: pkcs11.KeyType.AES,
                            a.VALUE: given.pop(ref.label),
                            a.LABEL: ref.label,
                        }
                    )
                else:
                    session.generate_key(
                        pkcs11.KeyType.AES,
                        128,
                        label=ref.label,
                        store=True,
                        template=secret_template,
                    )
            transport_value = given.pop(TRANSPORT_LABEL, None)
            transport_template = {
                a.TOKEN: True,
                a.PRIVATE: True,
                a.SENSITIVE: True,
                a.EXTRACTABLE: False,
                a.WRAP: True,
                a.UNWRAP: False,
                a.ENCRYPT: False,
            }
            if transport_value is not None:
                session.create_object(
                    {
                        **transport_template,
                        a.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                        a.KEY_TYPE: pkcs11.KeyType.AES,
                        a.VALUE: transport_value,
                        a.LABEL: TRANSPORT_LABEL,
                    }
                )
            else:
                session.generate_key(
                    pkcs11.KeyType.AES,
                    128,
                    label=TRANSPORT_LABEL,
                    store=True,
                    template=transport_template,
                )
            for label, value in sorted(given.items()):  # any other master key (older versions)
                session.create_object(
                    {
                        **secret_template,
                        a.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                        a.KEY_TYPE: pkcs11.KeyType.AES,
                        a.VALUE: value,
                        a.LABEL: label,
                    }
                )
            params = session.create_domain_parameters(
                pkcs11.KeyType.EC_EDWARDS,
                {a.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)},
                local=True,
            )
            params.generate_keypair(
                store=True,
                label=TABLE_SIGNING_LABEL,
                mechanism=pkcs11.Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                public_template={a.TOKEN: True, a.VERIFY: True},
                private_template={
                    a.TOKEN: True,
                    a.PRIVATE: True,
                    a.SENSITIVE: True,
                    a.EXTRACTABLE: False,
                    a.SIGN: True,
                },
            )
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise KeyStoreError(
            "le jeton PKCS#11 refuse les clés",
            f"cannot provision token {token_label!r}: {exc!r}",
        ) from exc
