"""The emulated SAM: the terminal's secure element, holding master keys, Calypso-SAM-like APDUs.

:class:`EmulatedSAM` implements :class:`hardware.icc.EmulatedICC`. Class byte ``80`` (``94`` also
accepted). Command set (docs/secure-session.md gives the whole sequence):

======  ==========================  ===========================================================
INS     command                     data -> response
======  ==========================  ===========================================================
``14``  Select Diversifier          card serial (8) || DF name -> -
``84``  Get Challenge               Le=08 -> SAM challenge (8)
``8A``  Digest Init                 Open Secure Session response data -> -
``8C``  Digest Update               P1P2=0000, one card command or response -> -
``8C``  Digest Update Multiple      P1P2=8000, (length (1) || element)+ (several elements) -> -
``8E``  Digest Close                Le=08 -> terminal signature (8)
``82``  Digest Authenticate         card signature (8) -> - (``6988`` if wrong)
``56``  SV Prepare Load             SV Get tnum||balance (5) || reload body (11) -> SV MAC (8)
``54``  SV Prepare Debit            same, for SV Debit -> SV MAC (8)
``5C``  SV Prepare Undebit          same, for SV Undebit -> SV MAC (8)
``58``  SV Check                    card SV signature (8) -> - (``6988`` if wrong)
``2A``  PSO Compute Signature       P1P2=9E9A, FF KIF KVC 68 offset message -> message||sig(8)
``2A``  PSO Verify Signature        P1P2=00A8, FF KIF KVC 68 offset message sig(8) -> 9000/6988
``CA``  Get Data                    P1P2=00C0 -> SAM serial (4) || signature counter (3)
``D8``  Load Card Key               KIF (1) || KVC (1) || card key wrapped (24) -> -
======  ==========================  ===========================================================

Card keys are diversified here (AN10922 over card serial || application AID) from the master key
``<application>.<role>.v<KVC>`` named by the KIF and KVC the card answered at Open Secure Session.

A desk SAM holds no master key: Load Card Key gives it one card key, wrapped (RFC 3394) under the
desk transport key of its key store, for the card and application of the last Select
Diversifier; Digest Init then uses that key instead of diversifying. Loaded keys are kept while
Select Diversifier names the same card (the transaction engine sends one at every session
opening) and dropped at power off or when another card is selected.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from card_schema.apdu_trace import trace
from card_schema.calypso import SAM_SUBTYPE_C1, SAMInfo, sam_atr
from card_schema.crypto import KeyRef, KeyRole
from card_schema.errors import SchemaError, VerificationError
from card_schema.layout import CARD_LAYOUT, ApplicationLayout, CardLayout
from card_schema.traceability import traceable_signature
from hardware.card.apdu import SW, CommandAPDU, CommandRefused, handler_for, parse_apdu
from hardware.card.scheme import (
    SIGNATURE_SIZE,
    SessionDigest,
    session_key,
    sv_card_signature,
    sv_key_outside_session,
    sv_terminal_mac,
)
from hardware.sam.keystore import (
    TRACE_KEY,
    WRAPPED_KEY_SIZE,
    KeyStoreError,
    MasterKeyStore,
    NoTransportKey,
)

log = logging.getLogger(__name__)

CLASSES = frozenset({0x80, 0x94})
SAM_SERIAL_SIZE = 4
SAM_COUNTER_MAX = 0xFFFFFF

INS_SELECT_DIVERSIFIER = 0x14
INS_GET_CHALLENGE = 0x84
INS_DIGEST_INIT = 0x8A
INS_DIGEST_UPDATE = 0x8C
P1_DIGEST_UPDATE_MULTIPLE = 0x80
INS_DIGEST_CLOSE = 0x8E
INS_DIGEST_AUTHENTICATE = 0x82
INS_SV_PREPARE_LOAD = 0x56
INS_SV_PREPARE_DEBIT = 0x54
INS_SV_PREPARE_UNDEBIT = 0x5C
INS_SV_CHECK = 0x58
INS_PSO_SIGNATURE = 0x2A
TRACE_KIF = 0x2E  # KIF of the traceable-signature key (its KVC is the key's version)
PSO_TRACE_SIZE = 8  # trace data in full-serial mode; serial (4) || counter (3) are written
PSO_TRACE_WRITTEN = 7  # the serial and counter; the 8th byte is left as the terminal sent it
SV_GET_EXTENDED_SIZE = 61  # SV Get answer in Rev 3.2 mode (its KVC at byte 8)
PSO_MESSAGE_MAX = 206  # the reference's limit of a message in SAM traceability mode
INS_GET_DATA = 0xCA
INS_LOAD_CARD_KEY = 0xD8

# The card INS each SV Prepare signs for (SV Reload B8, SV Debit BA, SV Undebit BC).
_SV_CARD_INS = {INS_SV_PREPARE_LOAD: 0xB8, INS_SV_PREPARE_DEBIT: 0xBA, INS_SV_PREPARE_UNDEBIT: 0xBC}
P1_DIGEST_INIT_EXTENDED = 0x02  # Digest Init P1 bit: Rev 3.2 extended session
P2_DIGEST_INIT = 0xFF
CHALLENGE_SIZES = (4, 8)  # Get Challenge Le: 04 regular, 08 extended

# Emulated SAM identity in its ATR (after 80 5A): platform, application type, subtype C1,
# software issuer (not 08, which names an HSM), version, revision.
SAM_PLATFORM, SAM_APPLICATION_TYPE = 0x00, 0x80
SAM_SOFTWARE_ISSUER, SAM_SOFTWARE_VERSION, SAM_SOFTWARE_REVISION = 0x20, 0x01, 0x00


def trace_diversification_input(sam_serial: bytes) -> bytes:
    """AN10922 input of a SAM's traceable-signature key: ``"SAM"`` || SAM serial."""
    return b"SAM" + sam_serial


def split_elements(data: bytes) -> list[bytes]:
    """The elements of a Digest Update Multiple data field (``length (1) || element``, repeated).

    Raises:
        CommandRefused: ``6A80``, a zero length or a length running past the end of the field.
    """
    elements: list[bytes] = []
    i = 0
    while i < len(data):
        length = data[i]
        element = data[i + 1 : i + 1 + length]
        if length == 0 or len(element) != length:
            raise CommandRefused(SW.WRONG_DATA, "malformed Digest Update Multiple")
        elements.append(element)
        i += 1 + length
    return elements


class EmulatedSAM:
    """An emulated SAM.

    Args:
        keys: where the master keys are (key file or PKCS#11 token).
        serial: SAM serial number, 4 bytes (in traceable signatures and the ATR).
        layout: card layout (to find an application, hence its AID, from a DF name).
        counter_file: where the traceable-signature counter survives restarts (JSON, written
            atomically); ``None`` keeps it in memory, starting at 0.
        random: source of SAM challenges.
        subtype: ATR application subtype; ``C1`` (SAM C1, the default) runs Rev 3.2 extended
            sessions, another value (``D0``: S1D) regular sessions only.
    """

    def __init__(
        self,
        keys: MasterKeyStore,
        serial: bytes,
        *,
        layout: CardLayout = CARD_LAYOUT,
        counter_file: Path | None = None,
        random: Callable[[int], bytes] = os.urandom,
        subtype: int = SAM_SUBTYPE_C1,
    ) -> None:
        self.subtype = subtype
        if len(serial) != SAM_SERIAL_SIZE:
            raise SchemaError("a SAM serial is 4 bytes", field="sam_serial")
        self._keys = keys
        self.serial = serial
        self._layout = layout
        self._counter_file = counter_file
        self._random = random
        self._counter, self._sv_counter = self._load_counter()
        self._handlers: dict[int, Callable[[CommandAPDU], bytes]] = {
            INS_SELECT_DIVERSIFIER: self._select_diversifier,
            INS_GET_CHALLENGE: self._get_challenge,
            INS_DIGEST_INIT: self._digest_init,
            INS_DIGEST_UPDATE: self._digest_update,
            INS_DIGEST_CLOSE: self._digest_close,
            INS_DIGEST_AUTHENTICATE: self._digest_authenticate,
            INS_SV_PREPARE_LOAD: self._sv_prepare,
            INS_SV_PREPARE_DEBIT: self._sv_prepare,
            INS_SV_PREPARE_UNDEBIT: self._sv_prepare,
            INS_SV_CHECK: self._sv_check,
            INS_PSO_SIGNATURE: self._pso_signature,
            INS_GET_DATA: self._get_data,
            INS_LOAD_CARD_KEY: self._load_card_key,
        }
        self._card_keys: dict[tuple[bytes, str, KeyRole, int], bytes] = {}
        # Keys given by Load Card Key (desk SAM), same index; only the current card's.
        self._loaded_keys: dict[tuple[bytes, str, KeyRole, int], bytes] = {}
        self._reset()

    @property
    def atr(self) -> bytes:
        """Legacy Calypso SAM ATR: ``3B 3F 96 00 80 5A`` ‖ identity (6) ‖ serial ‖ ``82 90 00``."""
        return sam_atr(self.info)

    @property
    def info(self) -> SAMInfo:
        return SAMInfo(
            SAM_PLATFORM,
            SAM_APPLICATION_TYPE,
            self.subtype,
            SAM_SOFTWARE_ISSUER,
            SAM_SOFTWARE_VERSION,
            SAM_SOFTWARE_REVISION,
            self.serial,
        )

    @property
    def counter(self) -> int:
        """Number of traceable signatures made so far (the next one carries this value)."""
        return self._counter

    # -- EmulatedICC ------------------------------------------------------------------------------

    def power_on(self) -> bytes:
        self._reset()
        self._loaded_keys.clear()
        return self.atr

    def power_off(self) -> None:
        self._reset()
        self._loaded_keys.clear()

    def transmit(self, apdu: bytes) -> bytes:
        """Process one SAM command; never raises."""
        apdu = bytes(apdu)
        trace(log, "sam <-", apdu)
        try:
            cmd = parse_apdu(apdu)
            handler = handler_for(cmd, CLASSES, self._handlers)
            data = handler(cmd)
            response = data + SW.OK.to_bytes_sw()
        except CommandRefused as refused:
            log.debug("SAM refused %s: %s", apdu.hex(), refused)
            response = refused.sw_bytes
        except Exception:  # the chip answers, whatever happens inside the emulator
            log.exception("SAM emulator defect on APDU %s", apdu.hex())
            response = SW.NO_PRECISE_DIAGNOSIS.to_bytes_sw()
        trace(log, "sam ->", response)
        return response

    # -- state ------------------------------------------------------------------------------------

    def _reset(self) -> None:
        self._card_serial: bytes | None = None
        self._challenge: bytes | None = None
        self._reset_digest()

    def _reset_digest(self) -> None:
        self._application: ApplicationLayout | None = None
        self._digest: SessionDigest | None = None
        self._extended = False
        self._closed = False
        self._sv_expected: list[bytes] = []  # card SV signatures to check, in order

    def _load_counter(self) -> tuple[int, int]:
        """The traceable-signature counter and the SV transaction counter saved last."""
        if self._counter_file is None or not self._counter_file.exists():
            return 0, 0
        try:
            saved = json.loads(self._counter_file.read_text(encoding="utf-8"))
            return int(saved["counter"]), int(saved.get("sv_counter", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyStoreError(f"unreadable SAM counter file {self._counter_file}") from exc

    def _save_counter(self) -> None:
        if self._counter_file is None:
            return
        temp = self._counter_file.with_name(self._counter_file.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            saved = {"counter": self._counter, "sv_counter": self._sv_counter}
            os.write(fd, json.dumps(saved).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self._counter_file)

    def card_key(self, card_serial: bytes, application: ApplicationLayout, ref: KeyRef) -> bytes:
        """Diversified key of one card application (AN10922 over serial || AID), cached per card.

        Raises:
            KeyStoreError: no such master key.
        """
        cache_key = (card_serial, application.name, ref.role, ref.version)
        if cache_key in self._loaded_keys:  # given by Load Card Key (desk SAM)
            return self._loaded_keys[cache_key]
        if cache_key not in self._card_keys:
            self._card_keys.clear()  # one card at a time: keep only the current card's keys
            self._card_keys[cache_key] = self._keys.diversify(
                ref, (card_serial + application.aid)[:31]
            )
        return self._card_keys[cache_key]

    def _require_digest(self) -> SessionDigest:
        if self._digest is None:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "no digest in progress")
        return self._digest

    @staticmethod
    def _no_parameters(cmd: CommandAPDU) -> None:
        if cmd.p1 or cmd.p2:
            raise CommandRefused(SW.WRONG_P1P2)

    # -- commands ---------------------------------------------------------------------------------

    def _select_diversifier(self, cmd: CommandAPDU) -> bytes:
        """Select Diversifier ``80 14 00 00 04|08``: the card serial alone; keeps the challenge."""
        self._no_parameters(cmd)
        serial = cmd.require_data(4, 8)
        if len(serial) not in (4, 8):
            raise CommandRefused(SW.WRONG_LENGTH, "a diversifier is 4 or 8 bytes")
        self._reset_digest()
        if any(loaded[0] != serial for loaded in self._loaded_keys):
            self._loaded_keys.clear()  # another card: its predecessor's keys go
        self._card_serial = serial
        return b""

    def _get_challenge(self, cmd: CommandAPDU) -> bytes:
        """Get Challenge ``80 84 00 00 04|08``: 4 bytes (regular) or 8 (extended)."""
        self._no_parameters(cmd)
        cmd.require_no_data()
        if cmd.le not in CHALLENGE_SIZES:
            raise CommandRefused(SW.WRONG_LENGTH, "Le is 04 or 08")
        self._challenge = self._random(cmd.le)
        return self._challenge

    def _digest_init(self, cmd: CommandAPDU) -> bytes:
        """Digest Init ``80 8A 00|02 FF``: KIF || KVC || Open Secure Session answer.

        P1 ``02`` is a Rev 3.2 extended session (8-byte challenge, 5 random bytes in the card
        answer, 8-byte signatures); ``00`` a regular one. The work key is the card key of the
        application and role the KIF names, version KVC, diversified with the selected serial.
        """
        if cmd.p1 not in (0x00, P1_DIGEST_INIT_EXTENDED) or cmd.p2 != P2_DIGEST_INIT:
            raise CommandRefused(SW.WRONG_P1P2)
        extended = cmd.p1 == P1_DIGEST_INIT_EXTENDED
        random_size = 5 if extended else 1
        header = 3 + random_size + 4  # counter, random, ratification, KIF, KVC, length
        data = cmd.require_data(2 + header, 255)
        kif, kvc, response = data[0], data[1], data[2:]
        if self._card_serial is None or self._challenge is None:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "select diversifier, get challenge")
        if len(self._challenge) != (8 if extended else 4):
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "challenge of the other mode")
        if len(response) != header + response[header - 1]:
            raise CommandRefused(SW.WRONG_DATA, "not an Open Secure Session answer")
        if (response[header - 3], response[header - 2]) != (kif, kvc):
            raise CommandRefused(SW.WRONG_DATA, "KIF/KVC differ from the card's answer")
        card_challenge = response[: 3 + random_size]
        try:
            app, role = self._layout.key_by_kif(kif)
            key = self.card_key(self._card_serial, app, KeyRef(app.name, role, kvc))
        except (SchemaError, KeyStoreError):
            raise CommandRefused(SW.RECORD_NOT_FOUND, "no such work key") from None
        sk = session_key(key, self._challenge, card_challenge)
        self._challenge = None  # a challenge serves one session only
        self._reset_digest()
        self._application = app
        self._digest = SessionDigest(sk, response)
        self._extended = extended
        return b""

    def _digest_update(self, cmd: CommandAPDU) -> bytes:
        """Digest Update (P1 ``00``: one element) or Digest Update Multiple (P1 ``80``).

        Digest Update Multiple carries several elements, each as ``length (1) || element``
        (length 1..254), filling the data field exactly. A malformed field is refused with
        ``6A80`` before any element is digested: the digest never takes half a command.
        """
        if cmd.p2 or cmd.p1 not in (0x00, P1_DIGEST_UPDATE_MULTIPLE):
            raise CommandRefused(SW.WRONG_P1P2)
        data = cmd.require_data(1, 255)
        elements = [data] if cmd.p1 == 0x00 else split_elements(data)
        digest = self._require_digest()
        if self._closed:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "digest already closed")
        for element in elements:
            digest.update(element)
        return b""

    def _digest_close(self, cmd: CommandAPDU) -> bytes:
        self._no_parameters(cmd)
        cmd.require_no_data()
        digest = self._require_digest()
        size = 8 if self._extended else 4
        if cmd.le != size:
            raise CommandRefused(SW.WRONG_LENGTH, "Le is 04 (regular) or 08 (extended)")
        self._closed = True
        return digest.terminal_signature(size)

    def _digest_authenticate(self, cmd: CommandAPDU) -> bytes:
        self._no_parameters(cmd)
        signature = cmd.require_data(4, 8)
        digest = self._require_digest()
        if len(signature) != (8 if self._extended else 4):
            raise CommandRefused(SW.WRONG_LENGTH, "a card signature is 4 or 8 bytes by mode")
        if not self._closed:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "digest not closed")
        self._digest = None  # one attempt per session
        try:
            digest.verify_card_signature(signature)
        except VerificationError:
            raise CommandRefused(SW.INCORRECT_SIGNATURE, "card signature") from None
        return b""

    def _sv_prepare(self, cmd: CommandAPDU) -> bytes:
        """SV Prepare Load ``80 56 01 FF`` / Debit ``80 54 01 FF`` / Undebit ``80 5C 01 FF``.

        Data: the SV Get header (INS P1 P2 Le) || the whole SV Get answer (data and SW) || the
        SV command without its SAM fields (INS, P1 P2 ``00``, Lc, then its data up to the KVC:
        11 bytes for a reload, 8 for a debit). Answer: SAM challenge (3: the SV command's P1,
        P2 and first data byte) || SAM transaction number (3) || MAC (5 regular, 10 extended).
        In a secure session the MAC key is the session's; outside one (after Select
        Diversifier), :func:`~hardware.card.scheme.sv_key_outside_session` of the card's load
        or debit key, version the SV Get's KVC, and the mode is the SV Get's (P1 ``01``:
        extended).
        """
        if (cmd.p1, cmd.p2) != (0x01, 0xFF):
            raise CommandRefused(SW.WRONG_P1P2)
        data = cmd.require_data(4 + 2 + 12, 255)
        digest = self._digest
        card_ins = _SV_CARD_INS[cmd.ins]
        header = data[:4]
        if header[0] != 0x7C or header[1] not in (0, 1) or header[2] not in (0x07, 0x09):
            raise CommandRefused(SW.WRONG_DATA, "not an SV Get header")
        response = data[4 : 4 + header[3] + 2]
        partial = data[4 + header[3] + 2 :]
        partial_size = 15 if card_ins == 0xB8 else 12
        if len(partial) != partial_size or partial[0] != card_ins or response[-2:] != b"\x90\x00":
            raise CommandRefused(SW.WRONG_DATA, "SV Get answer or SV command malformed")
        sv_get = response[:-2]
        # Regular: KVC || tnum (2) || previous signature (5) || balance (3)...; Rev 3.2: 8 bytes
        # || KVC || tnum (2) || previous signature (6) || balance (3)...
        tnum_at, balance_at = (9, 17) if header[1] == 0x01 else (1, 8)
        if len(sv_get) < balance_at + 3:
            raise CommandRefused(SW.WRONG_DATA, "SV Get answer too short")
        tnum = int.from_bytes(sv_get[tnum_at : tnum_at + 2], "big")
        balance = int.from_bytes(sv_get[balance_at : balance_at + 3], "big", signed=True)
        if card_ins == 0xB8:
            amount = int.from_bytes(partial[10:13], "big", signed=True)
        else:
            amount = int.from_bytes(partial[5:7], "big", signed=True)
        after = balance + amount
        if not -(1 << 23) <= after < 1 << 23 or tnum >= 0xFFFF:
            raise CommandRefused(SW.WRONG_DATA, "balance out of range")
        extended = self._extended if digest is not None else header[1] == 0x01
        mac_size, sig_size = (10, 6) if extended else (5, 3)
        if partial[3] != partial_size + 7 - 4 + mac_size:
            raise CommandRefused(SW.WRONG_DATA, "SV command Lc does not fit the session mode")
        challenge = self._random(3)
        if digest is not None:
            key = digest.key
        else:
            key = sv_key_outside_session(self._sv_card_key(card_ins, sv_get), challenge, sv_get)
        sam_tnum = self._sv_counter.to_bytes(3, "big")
        self._sv_counter += 1
        self._save_counter()
        body = bytes([challenge[2]]) + partial[5:] + self.serial + sam_tnum
        signed = bytes([card_ins, challenge[0], challenge[1], partial[3]]) + body
        self._sv_expected.append(sv_card_signature(key, card_ins, tnum + 1, after, sig_size))
        return challenge + sam_tnum + sv_terminal_mac(key, header, response, signed, mac_size)

    def _sv_card_key(self, card_ins: int, sv_get: bytes) -> bytes:
        """Outside a session: the card's SV key of the operation (load for a reload, debit
        otherwise), version the KVC the SV Get answered, for the card of Select Diversifier."""
        if self._card_serial is None:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "select diversifier first")
        kvc = sv_get[8] if len(sv_get) == SV_GET_EXTENDED_SIZE else sv_get[0]
        role = KeyRole.LOAD if card_ins == 0xB8 else KeyRole.DEBIT
        try:
            app = next(a for a in self._layout.applications if a.stored_value)
            return self.card_key(self._card_serial, app, KeyRef(app.name, role, kvc))
        except (StopIteration, SchemaError, KeyStoreError):
            raise CommandRefused(SW.RECORD_NOT_FOUND, "no such SV key") from None

    def _sv_check(self, cmd: CommandAPDU) -> bytes:
        """SV Check ``80 58 00 00`` with the card's SV signature (3 regular, 6 extended), taken
        from the Close Secure Session answer; one per SV operation, in order."""
        self._no_parameters(cmd)
        signature = cmd.require_data(3, 6)
        if not self._sv_expected:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "no SV operation prepared")
        expected = self._sv_expected.pop(0)
        if not hmac.compare_digest(expected, signature):
            raise CommandRefused(SW.INCORRECT_SIGNATURE, "card SV signature")
        return b""

    def _pso_signature(self, cmd: CommandAPDU) -> bytes:
        """PSO Compute Signature ``80 2A 9E 9A`` in SAM traceability mode.

        Data: ``FF`` || KIF || KVC of the signing key || operating mode || traceability offset
        (2, in bits) || message (the reference's frame). The operating mode's high nibble is
        ``6`` (full SAM serial inserted; ``E`` in busy mode), the low one the signature size
        (8). In full-serial mode the trace data takes 8 bytes of the message at the offset
        (the reference's bound: offset at most length·8 − 64 bits); the SAM writes its serial
        (4) and signature counter (3) into the first 7 and answers the message so completed ||
        the signature. The signature itself is ours
        (:func:`card_schema.traceability.traceable_signature` over the message without those
        8 bytes), so the backend verifies it with serial and counter as before.
        """
        if (cmd.p1, cmd.p2) == (0x00, 0xA8):
            return self._pso_verify(cmd)
        if (cmd.p1, cmd.p2) != (0x9E, 0x9A):
            raise CommandRefused(SW.WRONG_P1P2)
        data = cmd.require_data(6 + PSO_TRACE_SIZE, 255)
        if data[0] != 0xFF:
            raise CommandRefused(SW.WRONG_DATA, "PSO Compute Signature data starts with FF")
        if (data[1], data[2]) != (TRACE_KIF, TRACE_KEY.version):
            raise CommandRefused(SW.RECORD_NOT_FOUND, "no such signing key")
        mode, size = data[3] >> 4, data[3] & 0x0F
        offset_bits = int.from_bytes(data[4:6], "big")
        message = data[6:]
        if (
            mode & 0x07 != 0x06  # full-serial traceability mode only
            or size != SIGNATURE_SIZE
            or offset_bits % 8
            or offset_bits // 8 + PSO_TRACE_SIZE > len(message)
            or len(message) > PSO_MESSAGE_MAX
        ):
            raise CommandRefused(SW.WRONG_DATA, "operating mode, size or offset not supported")
        offset = offset_bits // 8
        record = message[:offset] + message[offset + PSO_TRACE_SIZE :]
        if self._counter > SAM_COUNTER_MAX:
            raise CommandRefused(SW.TRANSACTION_COUNTER_EXHAUSTED, "signature counter exhausted")
        try:
            key = self._keys.diversify(TRACE_KEY, trace_diversification_input(self.serial))
        except KeyStoreError:
            raise CommandRefused(SW.RECORD_NOT_FOUND, "no traceability key") from None
        counter = self._counter
        self._counter += 1
        self._save_counter()  # before answering: a signature is never issued twice with one number
        trace = self.serial + counter.to_bytes(3, "big")
        signed = message[:offset] + trace + message[offset + PSO_TRACE_WRITTEN :]
        return signed + traceable_signature(key, self.serial, counter, record)

    def _pso_verify(self, cmd: CommandAPDU) -> bytes:
        """PSO Verify Signature ``80 2A 00 A8`` of a traceable signature (any SAM's).

        Data: ``FF`` || KIF || KVC || mode ``6x`` (full serial; ``Ex`` busy, ``x`` = signature
        size 8) || trace offset (2, bits) || message with the signing SAM's trace data (its
        serial and counter in the first 7 of 8 bytes at the offset) || signature. ``6988``
        when the signature is wrong; other modes (plain signatures, truncated serial) are not
        supported here (``6A80``).
        """
        data = cmd.require_data(6 + PSO_TRACE_SIZE + SIGNATURE_SIZE, 255)
        if data[0] != 0xFF:
            raise CommandRefused(SW.WRONG_DATA, "PSO Verify Signature data starts with FF")
        if (data[1], data[2]) != (TRACE_KIF, TRACE_KEY.version):
            raise CommandRefused(SW.RECORD_NOT_FOUND, "no such signing key")
        mode, size = data[3] >> 4, data[3] & 0x0F
        offset_bits = int.from_bytes(data[4:6], "big")
        message, signature = data[6:-SIGNATURE_SIZE], data[-SIGNATURE_SIZE:]
        if (
            mode & 0x07 != 0x06
            or size != SIGNATURE_SIZE
            or offset_bits % 8
            or offset_bits // 8 + PSO_TRACE_SIZE > len(message)
        ):
            raise CommandRefused(SW.WRONG_DATA, "operating mode, size or offset not supported")
        offset = offset_bits // 8
        serial = message[offset : offset + 4]
        counter = int.from_bytes(message[offset + 4 : offset + PSO_TRACE_WRITTEN], "big")
        record = message[:offset] + message[offset + PSO_TRACE_SIZE :]
        try:
            key = self._keys.diversify(TRACE_KEY, trace_diversification_input(serial))
        except KeyStoreError:
            raise CommandRefused(SW.RECORD_NOT_FOUND, "no traceability key") from None
        expected = traceable_signature(key, serial, counter, record)
        if not hmac.compare_digest(expected, signature):
            raise CommandRefused(SW.INCORRECT_SIGNATURE, "traceable signature")
        return b""

    def _get_data(self, cmd: CommandAPDU) -> bytes:
        cmd.require_no_data()
        if (cmd.p1, cmd.p2) != (0x00, 0xC0):
            raise CommandRefused(SW.REFERENCED_DATA_NOT_FOUND)
        return self.serial + min(self._counter, SAM_COUNTER_MAX).to_bytes(3, "big")

    def _load_card_key(self, cmd: CommandAPDU) -> bytes:
        """Load Card Key: a card key wrapped under the desk transport key, for the selected card.

        Data: KIF (1) || KVC (1) || wrapped key (24, RFC 3394). The key is unwrapped by the key
        store (the transport key never leaves it) and used by the next Digest Init of a session
        opened with that KIF and KVC on the card and application of the last Select Diversifier.
        ``6985`` without a Select Diversifier, ``6A80`` for a bad KIF or a key that does not
        unwrap, ``6A88`` when the store holds no transport key.
        """
        self._no_parameters(cmd)
        data = cmd.require_data(2 + WRAPPED_KEY_SIZE, 2 + WRAPPED_KEY_SIZE)
        if self._card_serial is None:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "select diversifier first")
        try:
            application, role = self._layout.key_by_kif(data[0])
        except SchemaError:
            raise CommandRefused(SW.WRONG_DATA, "unknown KIF") from None
        unwrap = getattr(self._keys, "unwrap_card_key", None)
        if unwrap is None:
            raise CommandRefused(SW.REFERENCED_DATA_NOT_FOUND, "no transport key")
        try:
            key = unwrap(data[2:])
        except NoTransportKey:
            raise CommandRefused(SW.REFERENCED_DATA_NOT_FOUND, "no transport key") from None
        except KeyStoreError:
            raise CommandRefused(SW.WRONG_DATA, "wrapped key refused") from None
        self._loaded_keys[(self._card_serial, application.name, role, data[1])] = bytes(key)
        return b""
