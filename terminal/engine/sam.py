"""The SAM as a resource of the transaction engine: one method per SAM command (legacy Calypso SAM).

The terminal never computes any cryptography itself: it forwards bytes between card and SAM
(docs/secure-session.md). Every method sends exactly one SAM APDU (class from the ATR: ``80``
for SAM C1) and checks its status word against :data:`terminal.engine.status.SAM_STATUS`.

Frames (builders are the methods of :class:`SAMResource`, in this order in a session):

- :meth:`~SAMResource.get_challenge`: ``80 84 00 00 04|08`` (regular | extended).
- :meth:`~SAMResource.select_diversifier`: ``80 14 00 00 08`` || card serial (keeps the
  challenge).
- :meth:`~SAMResource.digest_init`: ``80 8A 00|02 FF`` Lc KIF || KVC || Open Secure Session
  answer (P1 ``02``: extended).
- :meth:`~SAMResource.digest_update`: ``80 8C 00 00`` Lc element;
  :meth:`~SAMResource.digest_update_multiple`: ``80 8C 80 00`` Lc (length || element)+.
- :meth:`~SAMResource.digest_close`: ``80 8E 00 00 04|08``.
- :meth:`~SAMResource.digest_authenticate`: ``80 82 00 00 04|08`` card signature.
- :meth:`~SAMResource.sv_prepare`: ``80 56|54|5C 01 FF`` Lc SV Get header || SV Get answer ||
  partial SV command; :meth:`~SAMResource.sv_check`: ``80 58 00 00`` Lc SV signature (3|6).
- :meth:`~SAMResource.compute_signature`: PSO Compute Signature ``80 2A 9E 9A`` Lc ``FF`` ||
  KIF || KVC || ``68`` || offset (2) || record || 8 bytes the SAM's trace data takes;
  :func:`parse_pso_signature` splits the answer; :meth:`~SAMResource.verify_signature`: PSO
  Verify Signature ``80 2A 00 A8``.
- :meth:`~SAMResource.get_data`, :meth:`~SAMResource.load_card_key`.

The SAM's product (and so the session mode it can run and its digest buffer) comes from its ATR:
:attr:`SAMResource.info` (:func:`card_schema.calypso.parse_sam_atr`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from card_schema.calypso import SAMInfo, SessionMode, parse_sam_atr
from card_schema.errors import SchemaError
from firmware_host.readers.base import Reader, ReaderError
from terminal.engine.channel import APDUChannel
from terminal.engine.errors import CommunicationError, EngineError
from terminal.engine.stats import APDUCounter
from terminal.engine.status import SAMCommand, check_sam

log = logging.getLogger(__name__)

CLA_SAM = 0x80
SIGNATURE_SIZE = 8
APDU_DATA_MAX = 255
P1_DIGEST_UPDATE_MULTIPLE = 0x80
P1_DIGEST_INIT_EXTENDED = 0x02
P2_DIGEST_INIT = 0xFF


@dataclass(frozen=True)
class TraceableSignature:
    """A SAM traceable signature (PSO Compute Signature) over a transaction record.

    Attributes:
        sam_serial: SAM serial (4 bytes).
        counter: SAM signature counter used (strictly increasing, never reused).
        signature: 8-byte signature.
    """

    sam_serial: bytes
    counter: int
    signature: bytes

    def to_bytes(self) -> bytes:
        """``serial (4) || counter (3) || signature (8)``, as the SAM answers it (15 bytes)."""
        return self.sam_serial + self.counter.to_bytes(3, "big") + self.signature

    @classmethod
    def from_bytes(cls, raw: bytes) -> TraceableSignature:
        """Inverse of :meth:`to_bytes`.

        Raises:
            ValueError: not 15 bytes.
        """
        if len(raw) != 15:
            raise ValueError("a traceable signature is 15 bytes")
        return cls(raw[:4], int.from_bytes(raw[4:7], "big"), raw[7:])


TRACE_KIF, TRACE_KVC = 0x2E, 0x01  # the SAM's traceable-signature key
PSO_MODE_TRACEABILITY_FULL = 0x68  # high nibble 6: full SAM serial inserted; low: 8-byte signature
PSO_TRACE_SIZE = 8
"""Bytes the SAM's trace data takes in the message in full-serial mode ``6x`` (the reference's
bound: offset at most length·8 − 64 bits; the truncated-serial mode ``4x`` takes 7). The SAM
serial (4) and counter (3) are its first 7 bytes."""
PSO_RECORD_MAX = 206 - PSO_TRACE_SIZE  # the reference's 206-byte message in traceability mode


def parse_pso_signature(raw: bytes, record: bytes) -> TraceableSignature:
    """Split a PSO Compute Signature answer (``record || trace data (8) || signature``, the
    trace data starting with the SAM serial (4) and counter (3)).

    Raises:
        EngineError: wrong length, or the SAM did not sign ``record``.
    """
    if len(raw) != len(record) + PSO_TRACE_SIZE + SIGNATURE_SIZE or raw[: len(record)] != record:
        raise EngineError("PSO Compute Signature answer does not match the record")
    trace = raw[len(record) : len(record) + PSO_TRACE_SIZE]
    return TraceableSignature(
        trace[:4], int.from_bytes(trace[4:7], "big"), raw[len(record) + PSO_TRACE_SIZE :]
    )


PSO_MESSAGE_MAX = 206  # the reference's message limit in SAM traceability mode


def pso_compute_signature_apdu(
    kif: int, kvc: int, offset_bits: int, message: bytes, mode: int = PSO_MODE_TRACEABILITY_FULL
) -> bytes:
    """PSO Compute Signature in SAM traceability mode: ``80 2A 9E 9A`` Lc ``FF`` || KIF || KVC ||
    ``mode`` || trace offset in bits (2) || ``message``.

    ``mode`` ``68`` (full serial, 8-byte signature; ``E8`` busy) keeps 8 bytes of the message
    for the SAM's trace data, ``48`` (truncated serial) 7: the offset is at most
    ``len(message)·8 − 64`` (or ``− 56``), as the reference checks.

    Raises:
        ValueError: message empty or over 206 bytes, offset out of range, not a traceability
            mode.
    """
    if mode >> 4 & 0x07 not in (0x04, 0x06) or not 1 <= mode & 0x0F <= 8:
        raise ValueError("not a SAM traceability operating mode")
    trace = PSO_TRACE_SIZE if mode >> 4 & 0x07 == 0x06 else PSO_TRACE_SIZE - 1
    if not 1 <= len(message) <= PSO_MESSAGE_MAX:
        raise ValueError(f"a PSO message is 1 to {PSO_MESSAGE_MAX} bytes")
    if not 0 <= offset_bits <= len(message) * 8 - trace * 8:
        raise ValueError(f"trace offset out of 0..{len(message) * 8 - trace * 8} bits")
    data = bytes([0xFF, kif, kvc, mode]) + offset_bits.to_bytes(2, "big") + message
    return _apdu(0x2A, data, p1=0x9E, p2=0x9A)


def pso_verify_signature_apdu(
    kif: int,
    kvc: int,
    message: bytes,
    signature: bytes,
    offset_bits: int | None = None,
    mode: int | None = None,
) -> bytes:
    """PSO Verify Signature: ``80 2A 00 A8`` Lc ``FF`` || KIF || KVC || mode || [trace offset (2)]
    || ``message`` || ``signature``.

    Without ``offset_bits`` the mode is ``88`` (normal, busy) and no offset is sent; with it,
    ``68`` (full serial) by default and the offset bound is the same as for
    :func:`pso_compute_signature_apdu`. The mode's low nibble is the signature size.

    Raises:
        ValueError: signature not 1 to 8 bytes, message empty, offset out of range.
    """
    if not 1 <= len(signature) <= 8 or not message:
        raise ValueError("a signature is 1 to 8 bytes over a non-empty message")
    if offset_bits is None:
        op = (0x80 if mode is None else mode & 0xF0) | len(signature)
        data = bytes([0xFF, kif, kvc, op]) + message + signature
    else:
        op = (0x60 if mode is None else mode & 0xF0) | len(signature)
        trace = PSO_TRACE_SIZE if op >> 4 & 0x07 == 0x06 else PSO_TRACE_SIZE - 1
        if not 0 <= offset_bits <= len(message) * 8 - trace * 8:
            raise ValueError(f"trace offset out of 0..{len(message) * 8 - trace * 8} bits")
        data = bytes([0xFF, kif, kvc, op]) + offset_bits.to_bytes(2, "big") + message + signature
    if len(data) > APDU_DATA_MAX:
        raise ValueError("PSO Verify Signature data is 255 bytes at most")
    return _apdu(0x2A, data, p1=0x00, p2=0xA8)


def _apdu(ins: int, data: bytes = b"", le: int | None = None, p1: int = 0, p2: int = 0) -> bytes:
    apdu = bytes([CLA_SAM, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        apdu += bytes([le])
    return apdu


class SAMResource:
    """The terminal's SAM, behind its own reader.

    Args:
        reader: the SAM reader, connected (or connected here at first use).
        counter: APDU counter shared with the card side of the transaction.
    """

    def __init__(self, reader: Reader, counter: APDUCounter | None = None) -> None:
        self.reader = reader
        self.counter = counter if counter is not None else APDUCounter()
        self._channel = APDUChannel(reader, "sam", self.counter)
        self._info: SAMInfo | None = None
        self._info_atr: bytes | None = None  # the ATR ``_info`` was read from

    def _send(self, command: SAMCommand, apdu: bytes) -> bytes:
        if not self.reader.connected:
            try:
                self.reader.connect()
            except ReaderError as exc:
                raise CommunicationError(
                    command, "sam", f"SAM reader: {exc}", may_have_reached_card=False
                ) from exc
        data, sw = self._channel.transmit(command, apdu)
        check_sam(command, sw)
        return data

    @property
    def info(self) -> SAMInfo | None:
        """What the SAM's ATR says (product, serial), or ``None`` for an ATR that is not a
        Calypso SAM's (then regular sessions only). Connects the reader if needed; read again
        whenever the ATR changes (another SAM put in the reader).

        Raises:
            CommunicationError: the SAM reader cannot be connected.
        """
        if not self.reader.connected:
            try:
                self.reader.connect()
            except ReaderError as exc:
                raise CommunicationError(
                    SAMCommand.GET_CHALLENGE,
                    "sam",
                    f"SAM reader: {exc}",
                    may_have_reached_card=False,
                ) from exc
        atr = self.reader.atr
        if atr != self._info_atr:
            self._info_atr = atr
            try:
                self._info = parse_sam_atr(atr)
            except SchemaError:
                log.warning("SAM ATR %s is not a Calypso SAM's", atr.hex())
                self._info = None
        return self._info

    def session_mode(self, card_rev32: bool) -> SessionMode:
        """The mode of a session with a card: extended when the card's startup information and
        this SAM (SAM C1 family) both run Rev 3.2, regular otherwise (as the reference does)."""
        info = self.info
        if card_rev32 and info is not None and info.extended_mode:
            return SessionMode.EXTENDED
        return SessionMode.REGULAR

    def use_counter(self, counter: APDUCounter) -> None:
        """Count this SAM's APDUs in ``counter`` from now on."""
        self.counter = counter
        self._channel.counter = counter

    # -- secure session ---------------------------------------------------------------------
    def select_diversifier(self, card_serial: bytes) -> None:
        """Select Diversifier: the card serial (4 or 8 bytes) the SAM diversifies card keys with.

        The challenge of a Get Challenge sent before stays valid.
        """
        self._send(SAMCommand.SELECT_DIVERSIFIER, _apdu(0x14, card_serial))

    def get_challenge(self, mode: SessionMode = SessionMode.REGULAR) -> bytes:
        """A fresh SAM challenge for Open Secure Session: 4 bytes (regular) or 8 (extended).

        Raises:
            EngineError: the SAM answered a challenge of another length.
        """
        challenge = self._send(SAMCommand.GET_CHALLENGE, _apdu(0x84, le=mode.challenge_size))
        if len(challenge) != mode.challenge_size:
            raise EngineError(f"SAM challenge of {len(challenge)} bytes, not {mode.challenge_size}")
        return challenge

    def digest_init(
        self, kif: int, kvc: int, open_response: bytes, mode: SessionMode = SessionMode.REGULAR
    ) -> None:
        """Digest Init: the session key's KIF and KVC, then the Open Secure Session answer data.

        P1 ``00`` (regular) or ``02`` (extended), P2 ``FF``.
        """
        p1 = P1_DIGEST_INIT_EXTENDED if mode is SessionMode.EXTENDED else 0x00
        self._send(
            SAMCommand.DIGEST_INIT,
            _apdu(0x8A, bytes([kif, kvc]) + open_response, p1=p1, p2=P2_DIGEST_INIT),
        )

    def digest_update(self, element: bytes) -> None:
        """Digest one card command APDU or one card response (data + SW), 1..255 bytes."""
        self._send(SAMCommand.DIGEST_UPDATE, _apdu(0x8C, element))

    def digest_update_multiple(self, elements: Sequence[bytes]) -> None:
        """Digest several elements in one APDU: ``length (1) || element`` each, 255 bytes in all.

        Raises:
            ValueError: no element, an empty element or one of more than 254 bytes, or more
                than 255 bytes in all (see :meth:`digest_elements`, which splits).
        """
        data = b"".join(bytes([len(e)]) + e for e in elements)
        if not elements or not all(1 <= len(e) < APDU_DATA_MAX for e in elements):
            raise ValueError("Digest Update Multiple takes elements of 1 to 254 bytes")
        if len(data) > APDU_DATA_MAX:
            raise ValueError("Digest Update Multiple data is 255 bytes at most")
        self._send(
            SAMCommand.DIGEST_UPDATE_MULTIPLE, _apdu(0x8C, data, p1=P1_DIGEST_UPDATE_MULTIPLE)
        )

    def digest_elements(self, elements: Sequence[bytes]) -> None:
        """Digest ``elements`` in order, in as few SAM APDUs as the SAM's digest buffer allows.

        As the reference does: a SAM C1 or S1E1 (by its ATR) takes consecutive elements packed
        into Digest Update Multiple APDUs of up to its digest buffer (255 or 240 bytes); an
        element alone in its APDU, or too long for the buffer, goes in a plain Digest Update.
        Other SAMs (S1Dx) take one Digest Update per element.
        """
        info = self.info
        if info is not None and info.application_subtype not in (0xC1, 0xE1):
            for element in elements:
                self.digest_update(element)
            return
        limit = APDU_DATA_MAX if info is None else min(info.digest_buffer, APDU_DATA_MAX)
        batch: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if len(batch) == 1:
                self.digest_update(batch[0])
            elif batch:
                self.digest_update_multiple(batch)
            batch.clear()
            size = 0

        for element in elements:
            if len(element) >= limit:
                flush()
                self.digest_update(element)
                continue
            if size + 1 + len(element) > limit:
                flush()
            batch.append(element)
            size += 1 + len(element)
        flush()

    def digest_close(self, mode: SessionMode = SessionMode.REGULAR) -> bytes:
        """The terminal signature for Close Secure Session: 4 bytes (regular) or 8 (extended)."""
        return self._send(SAMCommand.DIGEST_CLOSE, _apdu(0x8E, le=mode.signature_size))

    def digest_authenticate(self, card_signature: bytes) -> None:
        """Check the card's close signature.

        Raises:
            SAMError: ``6988``, the card is not genuine (one try per session).
        """
        self._send(SAMCommand.DIGEST_AUTHENTICATE, _apdu(0x82, card_signature))

    # -- stored value -------------------------------------------------------------------------
    def sv_prepare(self, sv_get_header: bytes, sv_get_response: bytes, partial: bytes) -> bytes:
        """SV Prepare Load ``80 56 01 FF`` / Debit ``80 54`` / Undebit ``80 5C`` (by
        ``partial[0]``: ``B8``, ``BA``, ``BC``): SV Get header (4) || the whole SV Get answer
        (data and SW) || the SV command without its SAM fields. Returns the SAM challenge (3) ||
        SAM transaction number (3) || MAC (5|10)."""
        ins, command = {
            0xBA: (0x54, SAMCommand.SV_PREPARE_DEBIT),
            0xB8: (0x56, SAMCommand.SV_PREPARE_LOAD),
            0xBC: (0x5C, SAMCommand.SV_PREPARE_UNDEBIT),
        }[partial[0]]
        data = sv_get_header + sv_get_response + partial
        return self._send(command, _apdu(ins, data, p1=0x01, p2=0xFF))

    def sv_check(self, card_sv_signature: bytes) -> None:
        """SV Check ``80 58 00 00`` with the card's SV signature (3|6 bytes, postponed data of
        the Close Secure Session answer).

        Raises:
            SAMError: ``6988``.
        """
        self._send(SAMCommand.SV_CHECK, _apdu(0x58, card_sv_signature))

    # -- desk ----------------------------------------------------------------------------------
    def load_card_key(self, kif: int, kvc: int, wrapped: bytes) -> None:
        """Load Card Key (``80 D8 00 00``): one card key wrapped under the SAM's transport key,
        for the card and application named by the last Select Diversifier (the desk SAM).

        Raises:
            SAMError: the SAM refused the key.
            CommunicationError: the SAM's reader failed.
        """
        self._send(SAMCommand.LOAD_CARD_KEY, _apdu(0xD8, bytes([kif, kvc]) + wrapped))

    # -- traceability ---------------------------------------------------------------------------
    def compute_signature(self, record: bytes) -> TraceableSignature:
        """Traceable signature over ``record``: PSO Compute Signature in SAM traceability mode.

        Frame: ``80 2A 9E 9A`` Lc ``FF`` || KIF || KVC || mode ``68`` (full SAM serial
        inserted, 8-byte signature) || offset in bits (2) || ``record`` || 8 bytes for the SAM's
        trace data (full-serial mode: the reference keeps the offset at most length·8 − 64),
        which start with its serial (4) and signature counter (3). Answer: the completed
        message || signature (8).

        Raises:
            ValueError: ``record`` is empty or longer than :data:`PSO_RECORD_MAX` bytes.
            EngineError: the answer does not echo the record.
        """
        if not 1 <= len(record) <= PSO_RECORD_MAX:
            raise ValueError(f"a signed record is 1 to {PSO_RECORD_MAX} bytes")
        apdu = pso_compute_signature_apdu(
            TRACE_KIF, TRACE_KVC, len(record) * 8, record + bytes(PSO_TRACE_SIZE)
        )
        raw = self._send(SAMCommand.PSO_COMPUTE_SIGNATURE, apdu)
        return parse_pso_signature(raw, record)

    def verify_signature(
        self,
        message: bytes,
        signature: bytes,
        offset_bits: int | None = None,
        kif: int = TRACE_KIF,
        kvc: int = TRACE_KVC,
    ) -> None:
        """PSO Verify Signature (:func:`pso_verify_signature_apdu`): a traceable signature when
        ``offset_bits`` is given (the trace data inside ``message``), else a plain one.

        Raises:
            ValueError: see :func:`pso_verify_signature_apdu`.
            SAMError: the SAM answered ``6988`` (incorrect signature) or another refusal.
        """
        self._send(
            SAMCommand.PSO_VERIFY_SIGNATURE,
            pso_verify_signature_apdu(kif, kvc, message, signature, offset_bits),
        )

    def get_data(self) -> tuple[bytes, int]:
        """SAM serial (4) and the next signature counter value."""
        raw = self._send(SAMCommand.GET_DATA, _apdu(0xCA, le=0, p2=0xC0))
        return raw[:4], int.from_bytes(raw[4:7], "big")
