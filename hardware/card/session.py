"""Secure session state on the card side: the working copy, the digest and the modification budget.

Anti-tearing lives here: every modification made in a session goes to a working copy of the card
image; only a correct Close Secure Session hands that copy to the store for one atomic commit.
A power-off, a wrong signature, a new Open Secure Session or a selection of another application
simply drops the object, and the card image is exactly what it was before the session opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from card_schema.calypso import MODIFICATION_OVERHEAD, SessionMode
from card_schema.crypto import KeyRole
from card_schema.layout import ApplicationLayout
from hardware.card.apdu import SW, CommandRefused
from hardware.card.image import CardImage
from hardware.card.scheme import SessionDigest

# Calypso access levels are nested: a session opened with the issuer key may do what the load and
# debit keys may, and a load session what a debit session may.
_GRANTS: dict[KeyRole, frozenset[KeyRole]] = {
    KeyRole.ISSUER: frozenset(KeyRole),
    KeyRole.LOAD: frozenset({KeyRole.LOAD, KeyRole.DEBIT}),
    KeyRole.DEBIT: frozenset({KeyRole.DEBIT}),
}


@dataclass
class SecureSession:
    """One open secure session.

    Attributes:
        application: the application the session was opened on.
        role: key role of the session key.
        digest: running digest (holds the session key).
        working: the card image as the session has modified it so far.
        modifications: modifying commands accepted so far.
        buffer_used: bytes of session buffer used so far.
        sv_get: the SV Get of this session, if any: its header (INS P1 P2 Le), its answer (data
            and SW: what the SV MAC covers) and whether it was the Rev 3.2 layout.
        postponed: data the Close Secure Session answer carries before the signature (the SV
            signatures, in order).
        mode: regular or Rev 3.2 extended (sizes of the close signatures and SV MACs).
        buffer_bytes: the session buffer budget the startup information declares.
    """

    application: ApplicationLayout
    role: KeyRole
    digest: SessionDigest
    working: CardImage
    modifications: int = 0
    buffer_used: int = 0
    sv_get: tuple[bytes, bytes, bool] | None = field(default=None)
    postponed: list[bytes] = field(default_factory=list)
    mode: SessionMode = SessionMode.REGULAR
    buffer_bytes: int = 215

    def require_role(self, needed: KeyRole) -> None:
        """Refuse with ``6982`` unless the session key role grants ``needed``."""
        if needed not in _GRANTS[self.role]:
            raise CommandRefused(
                SW.SECURITY_NOT_SATISFIED,
                f"{needed.value} key needed, session is {self.role.value}",
            )

    def reserve(self, data_length: int) -> None:
        """Count one modification of ``data_length`` bytes (``Lc + 6`` bytes of session
        buffer), refusing ``6400`` beyond the byte budget of the startup information."""
        cost = data_length + MODIFICATION_OVERHEAD
        if self.buffer_used + cost > self.buffer_bytes:
            raise CommandRefused(SW.SESSION_BUFFER_FULL)
        self.modifications += 1
        self.buffer_used += cost
