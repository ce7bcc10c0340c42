"""Terminal registry operations (no FastAPI here): register, authenticate, manage upload keys.

The upload domain calls :func:`terminal_public_key` to find the key a batch names; the auth
dependencies call :func:`authenticate_terminal`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth.roles import TerminalKind
from backend.auth.security import (
    credential_matches,
    hash_terminal_credential,
    new_terminal_credential,
)
from backend.columns import utcnow
from backend.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    UnknownTerminalKey,
)
from backend.terminals.models import Terminal, TerminalKey
from card_schema.uploads.batch import key_id as batch_key_id
from card_schema.uploads.records import TERMINAL_ID_PATTERN


@dataclass(frozen=True)
class RegisteredTerminal:
    """A newly registered terminal and its credential (the only time it is shown in clear)."""

    terminal: Terminal
    credential: str


def _load_public_key(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise InvalidRequest(
            "une clé publique Ed25519 fait 32 octets",
            f"an Ed25519 public key is 32 raw bytes, got {len(raw)}",
        )
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidRequest("clé publique Ed25519 invalide", "invalid Ed25519 public key") from exc


def get_terminal(session: Session, terminal_id: str) -> Terminal:
    """The terminal named ``terminal_id``.

    Raises:
        NotFound: no such terminal.
    """
    terminal = session.get(Terminal, terminal_id)
    if terminal is None:
        raise NotFound(f"terminal {terminal_id} inconnu", f"unknown terminal {terminal_id}")
    return terminal


def list_terminals(session: Session) -> list[Terminal]:
    """Every registered terminal, by id."""
    return list(session.scalars(select(Terminal).order_by(Terminal.terminal_id)))


def register_terminal(
    session: Session,
    *,
    terminal_id: str,
    kind: TerminalKind,
    label: str = "",
    station_id: int | None = None,
    school_uai: str | None = None,
    sam_serial: bytes | None = None,
    public_key: bytes | None = None,
) -> RegisteredTerminal:
    """Register a device and issue its bearer credential.

    Args:
        session: database session.
        terminal_id: its name in batches (1-64 of ``A-Z a-z 0-9 . _ -``).
        kind: what kind of device it is.
        label: free text for people.
        station_id: station, stop or door.
        school_uai: school UAI (canteen tills).
        sam_serial: serial of its SAM.
        public_key: raw 32-byte Ed25519 public key it signs batches with (may be added later).

    Raises:
        InvalidRequest: bad id or key.
        Conflict: the id or the SAM serial is already registered.
    """
    if not TERMINAL_ID_PATTERN.fullmatch(terminal_id):
        raise InvalidRequest(
            "identifiant de terminal invalide (1 à 64 caractères A-Z a-z 0-9 . _ -)",
            "invalid terminal id (1-64 of A-Z a-z 0-9 . _ -)",
        )
    if session.get(Terminal, terminal_id) is not None:
        raise Conflict(f"terminal {terminal_id} déjà enregistré", f"{terminal_id} already exists")
    sam_hex = sam_serial.hex().upper() if sam_serial is not None else None
    if sam_hex is not None and session.scalar(
        select(Terminal).where(Terminal.sam_serial == sam_hex)
    ):
        raise Conflict(f"SAM {sam_hex} déjà affecté", f"SAM {sam_hex} is already in a terminal")
    credential = new_terminal_credential()
    terminal = Terminal(
        terminal_id=terminal_id,
        kind=kind,
        label=label,
        station_id=station_id,
        school_uai=school_uai,
        sam_serial=sam_hex,
        credential_hash=hash_terminal_credential(credential),
        active=True,
    )
    session.add(terminal)
    session.flush()
    if public_key is not None:
        add_terminal_key(session, terminal_id, public_key)
    return RegisteredTerminal(terminal, credential)


def rotate_credential(session: Session, terminal_id: str) -> str:
    """Issue a new bearer credential for a terminal; the old one stops working at once."""
    terminal = get_terminal(session, terminal_id)
    credential = new_terminal_credential()
    terminal.credential_hash = hash_terminal_credential(credential)
    return credential


def deactivate_terminal(session: Session, terminal_id: str) -> Terminal:
    """Decommission a terminal: its credential and keys are refused from now on."""
    terminal = get_terminal(session, terminal_id)
    terminal.active = False
    return terminal


def add_terminal_key(session: Session, terminal_id: str, public_key: bytes) -> TerminalKey:
    """Register one more Ed25519 public key for a terminal (key rotation keeps the old one).

    Raises:
        NotFound: unknown terminal.
        InvalidRequest: not a valid Ed25519 public key.
        Conflict: that key is already registered.
    """
    get_terminal(session, terminal_id)
    kid = batch_key_id(_load_public_key(public_key))
    existing = session.scalar(
        select(TerminalKey).where(TerminalKey.terminal_id == terminal_id, TerminalKey.key_id == kid)
    )
    if existing is not None:
        raise Conflict(f"clé {kid} déjà enregistrée", f"key {kid} already registered")
    key = TerminalKey(terminal_id=terminal_id, key_id=kid, public_key=public_key)
    session.add(key)
    session.flush()
    return key


def revoke_terminal_key(session: Session, terminal_id: str, key_id: str) -> TerminalKey:
    """Revoke one key of a terminal: batches signed with it are refused from now on."""
    key = session.scalar(
        select(TerminalKey).where(
            TerminalKey.terminal_id == terminal_id, TerminalKey.key_id == key_id.upper()
        )
    )
    if key is None:
        raise NotFound(f"clé {key_id} inconnue", f"unknown key {key_id} for {terminal_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def terminal_public_key(session: Session, terminal_id: str, key_id: str) -> Ed25519PublicKey:
    """The active Ed25519 public key ``key_id`` of terminal ``terminal_id``.

    Args:
        session: database session.
        terminal_id: the terminal (as in the batch header).
        key_id: 16 hex digits (first 8 bytes of SHA-256 of the raw key), any case.

    Raises:
        UnknownTerminalKey: unknown or inactive terminal, unknown or revoked key.
    """
    row = session.execute(
        select(TerminalKey, Terminal.active)
        .join(Terminal)
        .where(TerminalKey.terminal_id == terminal_id, TerminalKey.key_id == key_id.upper())
    ).first()
    if row is None or not row[1] or row[0].revoked_at is not None:
        raise UnknownTerminalKey(
            f"clé {key_id} inconnue ou révoquée pour le terminal {terminal_id}",
            f"key {key_id} is unknown or revoked for terminal {terminal_id}",
        )
    return Ed25519PublicKey.from_public_bytes(row[0].public_key)


def authenticate_terminal(session: Session, terminal_id: str, credential: str) -> Terminal:
    """The active terminal ``terminal_id`` if ``credential`` is its bearer credential.

    Raises:
        AuthenticationFailed: unknown, inactive, or wrong credential (one message for all three,
            so a caller cannot probe which terminal ids exist).
    """
    terminal = session.get(Terminal, terminal_id)
    stored = terminal.credential_hash if terminal is not None else "0" * 64
    ok = credential_matches(credential, stored)
    if terminal is None or not terminal.active or not ok:
        raise AuthenticationFailed(
            "terminal non reconnu ou identifiant de connexion incorrect",
            "unknown terminal or wrong credential for this terminal id",
        )
    return terminal
