"""The AES-128 secure-session scheme shared by the emulated card and the emulated SAM.

This scheme is ours (docs/secure-session.md describes it byte by byte). A real deployment swaps the
emulated card and SAM for certified Calypso products; terminals drive both through the same APDUs
and never compute any of this themselves, so terminal code does not change.

Every MAC is AES-128 CMAC (NIST SP 800-38B, :func:`card_schema.crypto.aes_cmac`), with a one-byte
domain label first so that no value computed for one purpose is valid for another.
"""

from __future__ import annotations

from card_schema.crypto import aes_cmac, verify_cmac
from card_schema.errors import VerificationError

CHALLENGE_SIZE = 8  # the largest SAM challenge (Rev 3.2 extended mode); regular mode uses 4
SIGNATURE_SIZE = 8  # SV MACs and traceable signatures are truncated CMACs
SESSION_SIGNATURE_SIZES = (4, 8)  # Close Secure Session: 4 bytes regular, 8 extended

_SESSION_KEY = b"\x10"
_DIGEST_INIT = b"\x20"
_DIGEST_STEP = b"\x21"
_TERMINAL_SIGNATURE = b"\x30"
_CARD_SIGNATURE = b"\x31"
_SV_TERMINAL = b"\x40"
_SV_CARD = b"\x41"
_SV_OUTSIDE = b"\x42"


def session_key(card_key: bytes, sam_challenge: bytes, card_challenge: bytes) -> bytes:
    """Session key: ``CMAC(card key, 10 || SAM challenge || card challenge)``."""
    return aes_cmac(card_key, _SESSION_KEY + sam_challenge + card_challenge)


class SessionDigest:
    """Running digest of a secure session, kept identically by the card and the SAM.

    ``D0 = CMAC(SK, 20 || open secure session response data)``; then for every command APDU and
    every response (data and SW) exchanged while the session is open, in order,
    ``Di = CMAC(SK, 21 || D(i-1) || element)``.
    """

    def __init__(self, key: bytes, open_response: bytes) -> None:
        self._key = key
        self._value = aes_cmac(key, _DIGEST_INIT + open_response)

    @property
    def key(self) -> bytes:
        return self._key

    def update(self, element: bytes) -> None:
        """Chain one command or response into the digest."""
        self._value = aes_cmac(self._key, _DIGEST_STEP + self._value + element)

    def terminal_signature(self, size: int = SIGNATURE_SIZE) -> bytes:
        """What the SAM sends in Close Secure Session: ``CMAC(SK, 30 || D)[:size]`` (4 or 8)."""
        return aes_cmac(self._key, _TERMINAL_SIGNATURE + self._value)[:size]

    def card_signature(self, size: int = SIGNATURE_SIZE) -> bytes:
        """What the card answers to a correct Close Secure Session: ``CMAC(SK, 31 || D)[:size]``."""
        return aes_cmac(self._key, _CARD_SIGNATURE + self._value)[:size]

    def verify_terminal_signature(self, signature: bytes) -> None:
        """Raises VerificationError unless ``signature`` is the terminal signature."""
        self._verify(_TERMINAL_SIGNATURE, signature)

    def verify_card_signature(self, signature: bytes) -> None:
        """Raises VerificationError unless ``signature`` is the card signature."""
        self._verify(_CARD_SIGNATURE, signature)

    def _verify(self, label: bytes, signature: bytes) -> None:
        if len(signature) not in SESSION_SIGNATURE_SIZES:
            raise VerificationError("a session signature is 4 or 8 bytes")
        verify_cmac(self._key, label + self._value, signature)


def sv_key_outside_session(card_key: bytes, sam_challenge: bytes, sv_get_answer: bytes) -> bytes:
    """Key of an SV operation run outside a secure session (no session key to use):
    ``CMAC(card key, 42 || SAM SV challenge (3) || SV Get answer data)``. The card key is the
    SV key of the operation (load or debit) whose KVC the SV Get answered; the SV Get answer
    carries the SV transaction number, so the key serves one state of the purse only."""
    return aes_cmac(card_key, _SV_OUTSIDE + sam_challenge + sv_get_answer)


def sv_terminal_mac(
    key: bytes, sv_get_header: bytes, sv_get_response: bytes, command: bytes, size: int
) -> bytes:
    """MAC the SAM puts on an SV Reload / Debit / Undebit (5 bytes regular, 10 extended).

    ``CMAC(SK, 40 || SV Get header (4) || SV Get answer (data and SW) || SV command)[:size]``,
    where the SV command is ``INS P1 P2 Lc`` and its data without the MAC (the SAM challenge,
    the SAM id and the SAM transaction number in it): the MAC is valid for one state of the
    purse and one operation only.
    """
    return aes_cmac(key, _SV_TERMINAL + sv_get_header + sv_get_response + command)[:size]


def sv_card_signature(
    key: bytes, ins: int, tnum_after: int, balance_after: int, size: int
) -> bytes:
    """Card's SV signature (3 bytes regular, 6 extended), postponed to the Close Secure Session
    answer: ``CMAC(SK, 41 || INS || SV tnum (2) || balance (3))[:size]`` after the operation."""
    state = tnum_after.to_bytes(2, "big") + balance_after.to_bytes(3, "big", signed=True)
    return aes_cmac(key, _SV_CARD + bytes([ins]) + state)[:size]
