"""Status words, as tables per command (card and SAM), and the one function that reads them.

Each command has its own table because one status word means different things for different
commands (``6985`` is "no session to close" for Close Secure Session but "invalidated
application" for Append Record). The meanings follow docs/emulated-card.md (card status words) and
docs/secure-session.md, which follow Calypso rev 3 and ISO/IEC 7816-4 §5.1.3.

An :class:`Outcome` says what the terminal does with the answer:

==============  ==============================================================================
outcome         meaning
==============  ==============================================================================
``SUCCESS``     done
``WARNING``     done, with something to know (``6283``: the application is invalidated)
``REFUSED``     not done; the card state is unchanged by this command; do not retry as is
``SECURITY``    a key, MAC or signature problem: not done, and a session in progress is lost
``RETRY``       not done; the same intent may succeed in a new session (``6400`` buffer full)
==============  ==============================================================================
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from terminal.engine.errors import CardError, SAMError


class Outcome(enum.Enum):
    """What a status word means for the terminal (see the module table)."""

    SUCCESS = "success"
    WARNING = "warning"
    REFUSED = "refused"
    SECURITY = "security"
    RETRY = "retry"

    @property
    def done(self) -> bool:
        """The command was executed (success or warning)."""
        return self in (Outcome.SUCCESS, Outcome.WARNING)


@dataclass(frozen=True)
class StatusInfo:
    """One row of a status-word table.

    Attributes:
        meaning: what the status word says for this command, in English.
        outcome: what the terminal does with it.
    """

    meaning: str
    outcome: Outcome


class CardCommand(enum.Enum):
    """Card commands the engine sends (value: the Calypso name, used in messages)."""

    SELECT_APPLICATION = "Select Application"
    GET_DATA = "Get Data"
    READ_RECORDS = "Read Records"
    READ_RECORD_MULTIPLE = "Read Record Multiple"
    GET_CHALLENGE = "Get Challenge"
    UPDATE_RECORD = "Update Record"
    APPEND_RECORD = "Append Record"
    INCREASE = "Increase"
    DECREASE = "Decrease"
    OPEN_SECURE_SESSION = "Open Secure Session"
    CLOSE_SECURE_SESSION = "Close Secure Session"
    RATIFICATION = "Ratification"
    SV_GET = "SV Get"
    SV_DEBIT = "SV Debit"
    SV_RELOAD = "SV Reload"
    SV_UNDEBIT = "SV Undebit"
    INVALIDATE = "Invalidate"
    REHABILITATE = "Rehabilitate"

    @property
    def modifies(self) -> bool:
        """Whether the command changes the card (needs a secure session)."""
        return self in _MODIFYING


class SAMCommand(enum.Enum):
    """SAM commands the engine sends."""

    SELECT_DIVERSIFIER = "Select Diversifier"
    GET_CHALLENGE = "Get Challenge"
    DIGEST_INIT = "Digest Init"
    DIGEST_UPDATE = "Digest Update"
    DIGEST_UPDATE_MULTIPLE = "Digest Update Multiple"
    DIGEST_CLOSE = "Digest Close"
    DIGEST_AUTHENTICATE = "Digest Authenticate"
    SV_PREPARE_LOAD = "SV Prepare Load"
    SV_PREPARE_DEBIT = "SV Prepare Debit"
    SV_PREPARE_UNDEBIT = "SV Prepare Undebit"
    SV_CHECK = "SV Check"
    PSO_COMPUTE_SIGNATURE = "PSO Compute Signature"
    PSO_VERIFY_SIGNATURE = "PSO Verify Signature"
    GET_DATA = "Get Data"
    LOAD_CARD_KEY = "Load Card Key"  # the desk SAM only


_MODIFYING = frozenset(
    {
        CardCommand.UPDATE_RECORD,
        CardCommand.APPEND_RECORD,
        CardCommand.INCREASE,
        CardCommand.DECREASE,
        CardCommand.SV_DEBIT,
        CardCommand.SV_RELOAD,
        CardCommand.SV_UNDEBIT,
        CardCommand.INVALIDATE,
        CardCommand.REHABILITATE,
    }
)

S, W, R, X, T = (
    Outcome.SUCCESS,
    Outcome.WARNING,
    Outcome.REFUSED,
    Outcome.SECURITY,
    Outcome.RETRY,
)

# Rows every card command shares; each table below adds or overrides its own.
_CARD_COMMON: dict[int, StatusInfo] = {
    0x9000: StatusInfo("done", S),
    0x6700: StatusInfo("wrong length", R),
    0x6B00: StatusInfo("wrong P1/P2", R),
    0x6D00: StatusInfo("instruction not supported", R),
    0x6E00: StatusInfo("class not supported", R),
    0x6F00: StatusInfo("internal error of the card", R),
}

_WRITE: dict[int, StatusInfo] = {
    0x6400: StatusInfo("too many modifications in the session (count or buffer)", T),
    0x6981: StatusInfo("command incompatible with the file structure", R),
    0x6982: StatusInfo("no secure session open, or its key role is too low", X),
    0x6985: StatusInfo("never allowed on this file, or the application is invalidated", R),
    0x6A82: StatusInfo("file not found", R),
    0x6A83: StatusInfo("record not found", R),
}


def _table(*parts: Mapping[int, StatusInfo]) -> Mapping[int, StatusInfo]:
    merged: dict[int, StatusInfo] = dict(_CARD_COMMON)
    for part in parts:
        merged.update(part)
    return MappingProxyType(merged)


CARD_STATUS: Mapping[CardCommand, Mapping[int, StatusInfo]] = MappingProxyType(
    {
        CardCommand.SELECT_APPLICATION: _table(
            {
                0x6283: StatusInfo("application selected but invalidated", W),
                0x6A82: StatusInfo("application not found", R),
            }
        ),
        CardCommand.GET_DATA: _table(
            {
                0x6A88: StatusInfo("data object not found", R),
                0x6985: StatusInfo("no application selected", R),
            }
        ),
        CardCommand.READ_RECORDS: _table(
            {
                0x6981: StatusInfo("not a record file", R),
                0x6986: StatusInfo("no current file", R),
                0x6A82: StatusInfo("file not found", R),
                0x6A83: StatusInfo("record not found", R),
            }
        ),
        CardCommand.READ_RECORD_MULTIPLE: _table(
            {
                0x6200: StatusInfo("partial answer: read on from the next record", S),
                0x6981: StatusInfo("not a record file", R),
                0x6982: StatusInfo("security conditions not fulfilled", R),
                0x6985: StatusInfo("access forbidden", R),
                0x6986: StatusInfo("no current file", R),
                0x6A80: StatusInfo("offset and length beyond the record", R),
                0x6A82: StatusInfo("file not found", R),
                0x6A83: StatusInfo("record not found", R),
            }
        ),
        CardCommand.GET_CHALLENGE: _table(),
        CardCommand.UPDATE_RECORD: _table(_WRITE),
        CardCommand.APPEND_RECORD: _table(_WRITE),
        CardCommand.INCREASE: _table(_WRITE, {0x6A80: StatusInfo("counter would overflow", R)}),
        CardCommand.DECREASE: _table(
            _WRITE, {0x6A80: StatusInfo("counter would go below zero", R)}
        ),
        CardCommand.OPEN_SECURE_SESSION: _table(
            {
                0x6985: StatusInfo("no application selected, or session already open", R),
                0x6900: StatusInfo("transaction counter is 0: card at end of life", R),
                0x6B00: StatusInfo("key index or session mode not supported", R),
                0x6A82: StatusInfo("file to read not found", R),
                0x6A83: StatusInfo("record to read not found", R),
                0x6A88: StatusInfo("key (KIF) unknown or absent from the card", X),
            }
        ),
        CardCommand.CLOSE_SECURE_SESSION: _table(
            {
                0x6985: StatusInfo("no secure session open", R),
                0x6988: StatusInfo("terminal signature wrong: session cancelled", X),
            }
        ),
        CardCommand.RATIFICATION: _table({0x6A83: StatusInfo("ratified (no record 0)", S)}),
        CardCommand.SV_GET: _table(
            {
                0x6D00: StatusInfo("no stored value in this application", R),
                0x6985: StatusInfo("SV operation already done in this session", R),
                0x6A81: StatusInfo("SV Get P1 or P2 not supported", R),
                0x6A86: StatusInfo("Le inconsistent with P2", R),
            }
        ),
        CardCommand.SV_DEBIT: _table(
            _WRITE,
            {
                0x6985: StatusInfo("no SV Get first, no purse, or application invalidated", R),
                0x6988: StatusInfo("SV MAC wrong", X),
                0x6A80: StatusInfo("amount beyond the balance", R),
            },
        ),
        CardCommand.SV_RELOAD: _table(
            _WRITE,
            {
                0x6985: StatusInfo("no SV Get first, no purse, or application invalidated", R),
                0x6988: StatusInfo("SV MAC wrong", X),
                0x6A80: StatusInfo("balance would go out of range", R),
            },
        ),
        CardCommand.SV_UNDEBIT: _table(
            _WRITE,
            {
                0x6985: StatusInfo("no SV Get first, no purse, or application invalidated", R),
                0x6988: StatusInfo("SV MAC wrong", X),
                0x6A80: StatusInfo("balance would go out of range", R),
            },
        ),
        CardCommand.INVALIDATE: _table(
            _WRITE, {0x6985: StatusInfo("already invalidated or no session", R)}
        ),
        CardCommand.REHABILITATE: _table(
            _WRITE, {0x6985: StatusInfo("not invalidated or no session", R)}
        ),
    }
)

_SAM_COMMON: dict[int, StatusInfo] = {
    0x9000: StatusInfo("done", S),
    0x6700: StatusInfo("wrong length", R),
    0x6B00: StatusInfo("wrong P1/P2", R),
    0x6D00: StatusInfo("instruction not supported", R),
    0x6E00: StatusInfo("class not supported", R),
    0x6F00: StatusInfo("internal error of the SAM", R),
    0x6985: StatusInfo("command out of sequence", R),
}


def _sam(extra: Mapping[int, StatusInfo] | None = None) -> Mapping[int, StatusInfo]:
    merged = dict(_SAM_COMMON)
    merged.update(extra or {})
    return MappingProxyType(merged)


_SV_PREPARE = _sam({0x6A80: StatusInfo("impossible balance", R)})
SAM_STATUS: Mapping[SAMCommand, Mapping[int, StatusInfo]] = MappingProxyType(
    {
        SAMCommand.SELECT_DIVERSIFIER: _sam({0x6A88: StatusInfo("unknown application", R)}),
        SAMCommand.GET_CHALLENGE: _sam(),
        SAMCommand.DIGEST_INIT: _sam(
            {
                0x6A83: StatusInfo("no such work key (KIF/KVC)", X),
                0x6A80: StatusInfo("not an Open Secure Session answer", R),
            }
        ),
        SAMCommand.DIGEST_UPDATE: _sam(),
        SAMCommand.DIGEST_UPDATE_MULTIPLE: _sam({0x6A80: StatusInfo("malformed elements", R)}),
        SAMCommand.DIGEST_CLOSE: _sam(),
        SAMCommand.DIGEST_AUTHENTICATE: _sam(
            {0x6988: StatusInfo("card signature wrong: card not genuine", X)}
        ),
        SAMCommand.SV_PREPARE_LOAD: _SV_PREPARE,
        SAMCommand.SV_PREPARE_DEBIT: _SV_PREPARE,
        SAMCommand.SV_PREPARE_UNDEBIT: _SV_PREPARE,
        SAMCommand.SV_CHECK: _sam({0x6988: StatusInfo("card SV signature wrong", X)}),
        SAMCommand.PSO_COMPUTE_SIGNATURE: _sam(
            {
                0x6A88: StatusInfo("no traceability key", R),
                0x6985: StatusInfo("signature counter exhausted", R),
            }
        ),
        SAMCommand.PSO_VERIFY_SIGNATURE: _sam(
            {
                0x6988: StatusInfo("incorrect signature", X),
                0x6A83: StatusInfo("signing key not found", R),
                0x6A80: StatusInfo("incorrect parameters in incoming data", R),
            }
        ),
        SAMCommand.GET_DATA: _sam({0x6A88: StatusInfo("data object not found", R)}),
        SAMCommand.LOAD_CARD_KEY: _sam(
            {
                0x6A80: StatusInfo("wrapped key refused (unknown KIF, or unwrapping failed)", R),
                0x6A88: StatusInfo("no transport key in this SAM", R),
                0x6985: StatusInfo("no card selected by Select Diversifier", R),
            }
        ),
    }
)

_UNKNOWN = StatusInfo("status word not expected for this command", Outcome.REFUSED)


def card_status(command: CardCommand, sw: int) -> StatusInfo:
    """The table row of ``sw`` for a card ``command`` (an unlisted word is a refusal)."""
    return CARD_STATUS[command].get(sw, _UNKNOWN)


def sam_status(command: SAMCommand, sw: int) -> StatusInfo:
    """The table row of ``sw`` for a SAM ``command`` (an unlisted word is a refusal)."""
    return SAM_STATUS[command].get(sw, _UNKNOWN)


def check_card(command: CardCommand, sw: int) -> StatusInfo:
    """The row of ``sw``; raises unless the command was done.

    Raises:
        CardError: the outcome is not a success or a warning.
    """
    status = card_status(command, sw)
    if not status.outcome.done:
        raise CardError(command, sw, status)
    return status


def check_sam(command: SAMCommand, sw: int) -> StatusInfo:
    """The row of ``sw``; raises unless the command was done.

    Raises:
        SAMError: the outcome is not a success.
    """
    status = sam_status(command, sw)
    if not status.outcome.done:
        raise SAMError(command, sw, status)
    return status
