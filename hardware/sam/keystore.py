"""Master keys of the emulated SAM, by :class:`~card_schema.crypto.KeyRef` label.

Two stores with one interface, :class:`MasterKeyStore`:

- :class:`KeyFileStore`: a JSON key file ``{"format": ..., "keys": {"plum.debit.v1": "<hex>"}}``,
  mode 0600 (demo and tests).
- :class:`PKCS11KeyStore`: AES keys (``CKK_AES``, sensitive, not extractable) on a PKCS#11 token
  (SoftHSM2 in tests). The master key never leaves the token: AN10922 diversification is computed
  with the token's ``CKM_AES_ECB`` (CMAC subkey ``L = AES(K, 0)``) and ``CKM_AES_CBC`` (the two
  diversification blocks), which is exactly the AN10922 computation of
  :func:`card_schema.crypto.diversify_an10922`.

Both return the same diversified keys for the same master keys; tests check it. No key value is
ever logged.

A desk SAM also holds the **desk transport key** ``desk.transport.v1`` (the backend's, see
docs/backend.md): both stores unwrap card keys with it (RFC 3394 AES key wrap,
:meth:`KeyFileStore.unwrap_card_key`, :meth:`PKCS11KeyStore.unwrap_card_key`) for the SAM's Load
Card Key command; the transport key itself never leaves the store.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from card_schema.crypto import (
    BLOCK,
    KeyRef,
    KeyRole,
    an10922_blocks,
    check_an10922_input,
    diversify_an10922,
)
from card_schema.errors import RegionCardError, SchemaError
from card_schema.layout import CARD_LAYOUT, CardLayout

KEY_FILE_FORMAT = "regioncard-master-keys/1"
TRACE_KEY = KeyRef("trace", KeyRole.DEBIT, 1)
"""Master key of traceable signatures; each SAM signs with AN10922(master, ``SAM`` || serial)."""
TRANSPORT_KEY_LABEL = "desk.transport.v1"
"""Desk transport key: card keys arrive wrapped under it (RFC 3394) for Load Card Key."""
WRAPPED_KEY_SIZE = BLOCK + 8


class KeyStoreError(RegionCardError):
    """A master key is missing, or the key file / token cannot be used."""


class NoTransportKey(KeyStoreError):
    """The store holds no desk transport key (not a desk SAM)."""


class MasterKeyStore(Protocol):
    """Where the SAM's master keys live; only derived keys ever come out."""

    def labels(self) -> list[str]:
        """Labels of the master keys held."""
        ...

    def diversify(self, ref: KeyRef, diversification_input: bytes) -> bytes:
        """AN10922 AES-128 diversification of master key ``ref`` (1 to 31 bytes of input).

        Raises:
            KeyStoreError: no such master key.
        """
        ...


def demo_key_refs(layout: CardLayout = CARD_LAYOUT, version: int = 1) -> list[KeyRef]:
    """Every master key a demo needs: each application x each role, and the traceability key."""
    refs = [KeyRef(app.name, role, version) for app in layout.applications for role in KeyRole]
    return [*refs, TRACE_KEY]


def new_key_file(
    path: Path, refs: list[KeyRef] | None = None, *, transport_key: bool = False
) -> None:
    """Write random demo master keys to a new key file (mode 0600; refuses to overwrite).

    Args:
        path: the new file.
        refs: master keys to create (default: :func:`demo_key_refs`).
        transport_key: also create a random desk transport key (``desk.transport.v1``), for a
            desk SAM and the backend token of the same key ceremony.

    Raises:
        KeyStoreError: the file exists already.
    """
    keys = {ref.label: secrets.token_bytes(BLOCK).hex() for ref in (refs or demo_key_refs())}
    if transport_key:
        keys[TRANSPORT_KEY_LABEL] = secrets.token_bytes(BLOCK).hex()
    doc = json.dumps({"format": KEY_FILE_FORMAT, "keys": keys}, indent=1, sort_keys=True) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyStoreError(f"{path} exists already; not overwriting master keys") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(doc)


class KeyFileStore:
    """Master keys read from a JSON key file."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        for label, key in keys.items():
            if label != TRANSPORT_KEY_LABEL:
                KeyRef.from_label(label)
            if len(key) != BLOCK:
                raise KeyStoreError(f"master key {label} is not 16 bytes")
        self._keys = dict(keys)

    @classmethod
    def load(cls, path: Path) -> KeyFileStore:
        """Read a key file.

        Raises:
            KeyStoreError: unreadable or malformed file.
        """
        try:
            doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
            if doc["format"] != KEY_FILE_FORMAT:
                raise KeyStoreError(f"{path}: unknown key file format")
            return cls({label: bytes.fromhex(value) for label, value in doc["keys"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SchemaError) as exc:
            raise KeyStoreError(f"cannot read key file {path}: {exc}") from exc

    def master_keys(self) -> dict[str, bytes]:
        """The key values, for importing them into a token (the demo's key ceremony)."""
        return dict(self._keys)

    def labels(self) -> list[str]:
        return sorted(self._keys)

    def diversify(self, ref: KeyRef, diversification_input: bytes) -> bytes:
        try:
            master = self._keys[ref.label]
        except KeyError:
            raise KeyStoreError(f"no master key {ref.label}") from None
        return diversify_an10922(master, diversification_input)

    def unwrap_card_key(self, wrapped: bytes) -> bytes:
        """Unwrap a card key wrapped under the desk transport key (RFC 3394).

        Raises:
            KeyStoreError: no transport key, or the wrapped key does not unwrap (integrity check).
        """
        from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

        try:
            transport = self._keys[TRANSPORT_KEY_LABEL]
        except KeyError:
            raise NoTransportKey(f"no transport key {TRANSPORT_KEY_LABEL}") from None
        if len(wrapped) != WRAPPED_KEY_SIZE:
            raise KeyStoreError("a wrapped AES-128 key is 24 bytes")
        try:
            return aes_key_unwrap(transport, wrapped)
        except InvalidUnwrap:
            raise KeyStoreError("wrapped key refused (integrity check)") from None


class PKCS11KeyStore:
    """Master keys held on a PKCS#11 token, used without ever leaving it.

    Args:
        library: path of the PKCS#11 module (``/usr/lib/softhsm/libsofthsm2.so``).
        token_label: label of the token.
        user_pin: the token's user PIN.
    """

    def __init__(self, library: str, token_label: str, user_pin: str) -> None:
        import pkcs11  # IO edge: only this store needs the PKCS#11 binding

        try:
            self._token = pkcs11.lib(library).get_token(token_label=token_label)
            self._session = self._token.open(user_pin=user_pin)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyStoreError(f"cannot open PKCS#11 token {token_label!r}: {exc!r}") from exc
        self._pkcs11 = pkcs11

    def close(self) -> None:
        """Close the token session."""
        self._session.close()

    def labels(self) -> list[str]:
        objs = self._session.get_objects(
            {self._pkcs11.Attribute.CLASS: self._pkcs11.ObjectClass.SECRET_KEY}
        )
        return sorted(str(o[self._pkcs11.Attribute.LABEL]) for o in objs)

    def _key(self, ref: KeyRef) -> Any:
        p = self._pkcs11
        try:
            return self._session.get_key(
                object_class=p.ObjectClass.SECRET_KEY, key_type=p.KeyType.AES, label=ref.label
            )
        except (p.NoSuchKey, p.MultipleObjectsReturned) as exc:
            raise KeyStoreError(f"no single master key {ref.label} on the token") from exc

    def diversify(self, ref: KeyRef, diversification_input: bytes) -> bytes:
        check_an10922_input(diversification_input)
        key = self._key(ref)
        mech = self._pkcs11.Mechanism
        # AN10922 2.2.1 with the key inside the token: the token gives L = AES(K, 0^128) and
        # runs the CBC; card_schema builds the message blocks from L.
        l_block = bytes(key.encrypt(bytes(BLOCK), mechanism=mech.AES_ECB))
        first, second = an10922_blocks(l_block, diversification_input)
        out = bytes(
            key.encrypt(first + second, mechanism=mech.AES_CBC, mechanism_param=bytes(BLOCK))
        )
        return out[-BLOCK:]

    def unwrap_card_key(self, wrapped: bytes) -> bytes:
        """Unwrap a card key under the token's transport key (``CKM_AES_KEY_WRAP``, RFC 3394).

        The card key is unwrapped as a session object and read back (the emulated SAM computes
        session keys in software); the transport key never leaves the token.

        Raises:
            KeyStoreError: no transport key on the token, or the wrapped key does not unwrap.
        """
        p = self._pkcs11
        if len(wrapped) != WRAPPED_KEY_SIZE:
            raise KeyStoreError("a wrapped AES-128 key is 24 bytes")
        try:
            transport: Any = self._session.get_key(
                object_class=p.ObjectClass.SECRET_KEY,
                key_type=p.KeyType.AES,
                label=TRANSPORT_KEY_LABEL,
            )
        except (p.NoSuchKey, p.MultipleObjectsReturned) as exc:
            raise NoTransportKey(f"no single transport key {TRANSPORT_KEY_LABEL}") from exc
        try:
            card_key = transport.unwrap_key(
                p.ObjectClass.SECRET_KEY,
                p.KeyType.AES,
                wrapped,
                mechanism=p.Mechanism.AES_KEY_WRAP,
                store=False,
                template={p.Attribute.SENSITIVE: False, p.Attribute.EXTRACTABLE: True},
            )
        except p.PKCS11Error as exc:
            raise KeyStoreError(f"wrapped key refused by the token: {exc!r}") from exc
        try:
            return bytes(card_key[p.Attribute.VALUE])
        finally:
            card_key.destroy()


def import_into_token(
    library: str, token_label: str, user_pin: str, master_keys: dict[str, bytes]
) -> None:
    """Import master keys into a token as sensitive, non-extractable AES keys (key ceremony).

    Raises:
        KeyStoreError: the token cannot be opened or refuses the keys.
    """
    import pkcs11

    attr = pkcs11.Attribute
    try:
        token = pkcs11.lib(library).get_token(token_label=token_label)
        with token.open(user_pin=user_pin, rw=True) as session:
            for label, value in sorted(master_keys.items()):
                transport = label == TRANSPORT_KEY_LABEL  # unwrap only, never encrypt
                session.create_object(
                    {
                        attr.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                        attr.KEY_TYPE: pkcs11.KeyType.AES,
                        attr.VALUE: value,
                        attr.LABEL: label,
                        attr.TOKEN: True,
                        attr.PRIVATE: True,
                        attr.ENCRYPT: not transport,
                        attr.DECRYPT: False,
                        attr.SIGN: not transport,
                        attr.UNWRAP: transport,
                        attr.SENSITIVE: True,
                        attr.EXTRACTABLE: False,
                    }
                )
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise KeyStoreError(f"cannot import keys into token {token_label!r}: {exc!r}") from exc
