"""nfcpy bridge: an emulated chip answers nfcpy's ``udp`` driver as an ISO 14443-4 type B or A card.

nfcpy simulates the radio with its ``udp`` device (``nfc/clf/udp.py``): a reader opened as
``ContactlessFrontend("udp:HOST:PORT")`` sends each frame as one UDP datagram
``b"<bitrate> <hex>"`` (``106B`` for type B, ``106A`` for type A), and ``b"RFOFF"`` when it
switches its field off. No CRC is carried. This module is the card side of that link: the emulated
chip behind a simulated ISO/IEC 14443 PICC, so that a terminal using nfcpy's own ``Type4Tag`` code
(``clf.connect(rdwr=...)``, ``tag.transceive``, ``tag.send_apdu``) talks to it unchanged.

**Type B is the default.** Calypso cards are mostly ISO 14443-4 type B cards: they answer a
REQB with an ATQB carrying their PUPI, application data and protocol info, and are activated by
ATTRIB. nfcpy's udp driver senses both (``sense_ttb`` sends ``SENSB_REQ`` = REQB ``05 00 10``,
``sense_tta`` sends REQA ``26``) and nfcpy activates both as type 4 tags (``Type4BTag`` sends
ATTRIB, ``Type4ATag`` RATS). ``technology="A"`` turns the bridge into a type A card. A card of
one type stays silent to the other type's polls, as on the air.

Type B frames (ISO/IEC 14443-3 §7, ISO/IEC 14443-4 §5.3 and §7):

==================  ==========================  ==============================================
frame from reader   state                       answer
==================  ==========================  ==============================================
``05 AFI PARAM``    idle (REQB, WUPB), halted   ATQB ``50 ‖ PUPI(4) ‖ application data(4) ‖
REQB / WUPB         (WUPB only: PARAM b4 set)   protocol info(3)``, in the first slot, when
                                                the AFI matches (AFI 00: every card)
``1D PUPI ...``     ready, PUPI matches         ``MBLI|CID`` (``00``); FSD from param 2; the
ATTRIB                                          chip is powered on here
``50 PUPI`` HLTB    ready / protocol            ``00``, chip powered off, halted
ISO-DEP blocks      protocol                    as type A, below
==================  ==========================  ==============================================

Protocol info: byte 1 ``00`` (106 kbit/s both ways), byte 2 FSCI ‖ protocol type ``1``
(ISO 14443-4), byte 3 FWI ‖ ADC ``00`` (application data proprietary) ‖ FO ``00`` (no NAD, no
CID). The application data are 4 bytes given to the bridge (default ``00 00 00 00``): their
content on real Calypso cards is the manufacturer's and issuer's, and no reader of ours reads it.
A PC/SC reader builds a type B card's ATR from the ATQB (PC/SC part 3): ``3B 88 80 01 ‖
application data ‖ protocol info ‖ MBLI<<4 ‖ TCK``, so a type B card's ATR on the nfcpy path is
that, not the chip's own ATR that the vpcd bridge shows.

Type A frames:

Frames the target answers (ISO/IEC 14443-3 §6, ISO/IEC 14443-4 §5 and §7):

==================  ==========================  ==============================================
frame from reader   state                       answer
==================  ==========================  ==============================================
``26`` REQA         idle (or a new reader)      ATQA ``04 00`` (single-size UID, bit frame AC)
``52`` WUPA         idle or halted              ATQA
``93 20`` SDD       ready                       UID CL1 + BCC
``93 70 ...`` SEL   ready, UID matches          SAK ``20`` (complete, ISO 14443-4 compliant)
``50 00`` HLTA      ready / active              silence, halted
``E0 xx`` RATS      active                      ATS (FSCI, FWI, historical bytes of the ATR);
                                                the chip is powered on here
I-block             protocol                    chained parts acked with R(ACK); the APDU goes
                                                to the chip; the answer is sent in I-blocks
                                                chained to fit the reader's FSD
R(ACK)              protocol                    next chained block, or last block again
R(NAK)              protocol                    last block again (same block number) or R(ACK)
                                                (nfcpy's presence check)
S(DESELECT) ``C2``  protocol                    ``C2``, chip powered off, halted
S(WTX) ``F2 xx``    protocol (after our WTX)    keep waiting for the chip
``RFOFF``           any                         chip powered off, idle
==================  ==========================  ==============================================

ISO-DEP blocks are the same for both types. While the chip takes longer than half the frame
waiting time (FWT, from FWI in the ATS or the ATQB), the
target asks for more time with S(WTX), as a real card does. The UDP link has no field-reset
signal other than ``RFOFF``: a REQA or REQB arriving from a *different* reader socket than the
one the card is activated with is taken as a new field (the old reader is gone), so a crashed
reader does not leave the card stuck in the active state.

Card removal: :meth:`NFCUDPBridge.remove` makes the target silent (card out of the field, chip
powered off); :meth:`NFCUDPBridge.insert` makes it answer again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import logging
import socket
import threading
from functools import reduce
from operator import xor

from hardware.bridges.vpcd import BridgeError
from hardware.icc import ChipPowerLost, EmulatedICC, answer

log = logging.getLogger(__name__)

DEFAULT_PORT = 54321  # nfcpy's default for "udp"
DEFAULT_UID = bytes.fromhex("08524301")  # 08 = random single-size UID (ISO 14443-3 §6.5.4)
DEFAULT_PUPI = bytes.fromhex("52434231")  # type B pseudo-unique PICC identifier, 4 bytes
TECHNOLOGIES = ("A", "B")
FSD_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # ISO 14443-4 §5.1, FSDI/FSCI -> bytes

ATQA = bytes.fromhex("0400")
SAK_ISO14443_4 = 0x20
APF = 0x05  # anticollision prefix byte of REQB / WUPB (ISO 14443-3 §7.7.1)
PARAM_WUPB = 0x08  # PARAM b4: WUPB (wakes a halted card) instead of REQB
ATTRIB = 0x1D
HLTB = 0x50  # also the first byte of an ATQB (card to reader)
PROTOCOL_TYPE_ISO14443_4 = 0x01
PCB_DESELECT = 0xC2
PCB_WTX = 0xF2


class _State(enum.Enum):
    IDLE = "idle"
    READY = "ready"  # type B: ready-declared, waiting for ATTRIB
    ACTIVE = "active"  # type A: selected at layer 3, waiting for RATS
    PROTOCOL = "protocol"  # ISO-DEP (layer 4)
    HALT = "halt"


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of an ATR (ISO/IEC 7816-3 §8.2): T0's low nibble counts them."""
    if len(atr) < 2:
        return b""
    count = atr[1] & 0x0F
    index, y = 2, atr[1] >> 4
    while True:
        index += bin(y).count("1")
        if not y & 0x8 or index - 1 >= len(atr):  # no TDi: interface bytes are done
            break
        y = atr[index - 1] >> 4
    return atr[index : index + count]


class NFCUDPBridge:
    """Serves one emulated chip to nfcpy readers on a UDP port, in a background thread.

    Args:
        chip: the emulated card.
        port: UDP port to listen on (0: any free port, read it back from :attr:`port`).
        host: address to bind.
        technology: ``"B"`` (ISO 14443 type B, the default: Calypso cards) or ``"A"``.
        uid: 4-byte NFCID1 (type A).
        pupi: 4-byte PUPI (type B).
        application_data: the ATQB's 4 application data bytes (type B).
        afi: the card's application family identifier (type B; 00: answers only REQB with AFI 00).
        fsci: card frame size index in the ATS or ATQB (8 = 256 bytes).
        fwi: frame waiting time integer in the ATS or ATQB (FWT = 302 µs × 2^FWI; 11 ≈ 0.62 s).
        historical: ATS historical bytes (type A); by default those of the chip's ATR, so a PC/SC
            reader would show the same ATR (PC/SC part 3) as the vpcd bridge does.
        name: label for logs.
    """

    def __init__(
        self,
        chip: EmulatedICC,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        *,
        technology: str = "B",
        uid: bytes = DEFAULT_UID,
        pupi: bytes = DEFAULT_PUPI,
        application_data: bytes = bytes(4),
        afi: int = 0x00,
        fsci: int = 8,
        fwi: int = 11,
        historical: bytes | None = None,
        name: str = "card",
    ) -> None:
        if technology not in TECHNOLOGIES:
            raise BridgeError(f"technology must be one of {TECHNOLOGIES}, not {technology!r}")
        if len(uid) != 4:
            raise BridgeError("only single-size (4-byte) UIDs are implemented")
        if len(pupi) != 4 or len(application_data) != 4 or not 0 <= afi <= 0xFF:
            raise BridgeError("the PUPI and the application data are 4 bytes, the AFI one byte")
        if not 0 <= fsci <= 8 or not 0 <= fwi <= 14:
            raise BridgeError("FSCI must be 0..8 and FWI 0..14")
        self.chip = chip
        self.host = host
        self.technology = technology
        self.brty = b"106" + technology.encode()
        self.uid = uid
        self.pupi = pupi
        self.application_data = application_data
        self.afi = afi
        self.fsci = fsci
        self.fwi = fwi
        self.fwt = 256 * 16 / 13.56e6 * 2**fwi
        self.name = name
        self.apdus = 0
        self._historical = historical
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._in_field = True
        self._executor = concurrent.futures.ThreadPoolExecutor(1, f"nfc-udp-chip-{name}")
        self._reset()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The UDP port the target listens on (after :meth:`start`)."""
        if self._sock is None:
            return self._requested_port
        return int(self._sock.getsockname()[1])

    @property
    def path(self) -> str:
        """nfcpy device path of this target (``udp:127.0.0.1:PORT``)."""
        return f"udp:{self.host}:{self.port}"

    def start(self) -> NFCUDPBridge:
        """Bind the UDP port and start answering."""
        if self._thread is not None:
            raise BridgeError(f"{self.name}: bridge already started")
        if self._historical is None:
            atr = self.chip.power_on()
            self.chip.power_off()
            self._historical = historical_bytes(atr)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise BridgeError(
                f"{self.name}: cannot bind UDP {self.host}:{self._requested_port}: {exc}"
            ) from exc
        sock.settimeout(0.1)  # bounds how long stop() waits for the thread
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"nfc-udp-{self.name}", daemon=True)
        self._thread.start()
        log.info("%s: ISO 14443-4%s target on %s", self.name, self.technology, self.path)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop answering, power the chip off and release the port."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise BridgeError(f"{self.name}: bridge thread did not stop in {timeout} s")
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._executor.shutdown(wait=True)
        self._power_off()

    def __enter__(self) -> NFCUDPBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def remove(self) -> None:
        """Take the card out of the field: it stops answering and loses power."""
        self._in_field = False

    def insert(self) -> None:
        """Put the card back in the field (idle until a reader polls it)."""
        self._in_field = True

    # -- state -------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._state = _State.IDLE
        self._peer: tuple[str, int] | None = None
        self._block_number = 1
        self._fsd = 256
        self._command = bytearray()
        self._pending: list[bytes] = []
        self._last_block = b""
        self._powered = False

    def _power_off(self) -> None:
        if self._powered:
            self.chip.power_off()
            self._powered = False

    def _run(self) -> None:
        assert self._sock is not None
        sock = self._sock
        while not self._stopping.is_set():
            try:
                datagram, addr = sock.recvfrom(4096)
            except TimeoutError:
                if not self._in_field and self._state is not _State.IDLE:
                    self._power_off()
                    self._reset()
                continue
            except OSError:
                return
            if not self._in_field:
                if self._state is not _State.IDLE:
                    self._power_off()
                    self._reset()
                continue
            try:
                self._datagram(sock, datagram, addr)
            except Exception:
                log.exception("%s: error handling %r", self.name, datagram[:80])

    def _send(self, sock: socket.socket, frame: bytes, addr: tuple[str, int]) -> None:
        sock.sendto(self.brty + b" " + frame.hex().encode(), addr)

    def _datagram(self, sock: socket.socket, datagram: bytes, addr: tuple[str, int]) -> None:
        if datagram.startswith(b"RFOFF"):
            log.debug("%s: reader field off", self.name)
            self._power_off()
            self._reset()
            return
        try:
            brty, hexdata = datagram.split()
            frame = bytes.fromhex(hexdata.decode("ascii"))
        except ValueError:
            return
        if brty != self.brty or not frame:
            return  # polls of another type (or bit rate): the card stays silent
        if self.technology == "B":
            answer = self._frame_b(sock, frame, addr)
        else:
            answer = self._frame_a(sock, frame, addr)
        if answer is not None:
            self._send(sock, answer, addr)

    def _frame_a(self, sock: socket.socket, frame: bytes, addr: tuple[str, int]) -> bytes | None:
        state = self._state
        if frame == b"\x26" or frame == b"\x52":
            new_reader = self._peer is not None and addr != self._peer
            if (
                state in (_State.IDLE, _State.READY)
                or new_reader
                or (frame == b"\x52" and state is _State.HALT)
            ):
                if new_reader:
                    self._power_off()
                    self._reset()
                self._state, self._peer = _State.READY, addr
                return ATQA
            return None
        if addr != self._peer:
            return None
        uid_bcc = self.uid + bytes([reduce(xor, self.uid)])
        if state is _State.READY and frame == b"\x93\x20":
            return uid_bcc
        if state is _State.READY and frame == b"\x93\x70" + uid_bcc:
            self._state = _State.ACTIVE
            return bytes([SAK_ISO14443_4])
        if state in (_State.READY, _State.ACTIVE) and frame == b"\x50\x00":
            self._state = _State.HALT
            return None
        if state is _State.ACTIVE and frame[0] == 0xE0 and len(frame) == 2:
            return self._rats(frame)
        if state is _State.PROTOCOL:
            return self._block(sock, frame, addr)
        return None

    def _rats(self, frame: bytes) -> bytes:
        self._fsd = FSD_TABLE[min(frame[1] >> 4, 8)]
        self._power_off()
        self.chip.power_on()
        self._powered = True
        self._state = _State.PROTOCOL
        self._block_number = 1  # ISO 14443-4 §7.5.3.2 rule C: PICC block number starts at 1
        historical = self._historical or b""
        # T0: TA, TB, TC present + FSCI; TA 80: 106 kbit/s only; TB: FWI, SFGI 0; TC: no NAD/CID
        body = bytes([0x70 | self.fsci, 0x80, self.fwi << 4, 0x00]) + historical
        log.debug("%s: RATS %s, FSD %d", self.name, frame.hex(), self._fsd)
        return bytes([len(body) + 1]) + body

    # -- type B (ISO 14443-3 §7) -----------------------------------------------------------------
    def _frame_b(self, sock: socket.socket, frame: bytes, addr: tuple[str, int]) -> bytes | None:
        state = self._state
        if frame[0] == APF and len(frame) == 3:
            afi, param = frame[1], frame[2]
            wakeup = bool(param & PARAM_WUPB)
            new_reader = self._peer is not None and addr != self._peer
            if not _afi_matches(afi, self.afi):
                return None
            if (
                state in (_State.IDLE, _State.READY)
                or new_reader
                or (wakeup and state is _State.HALT)
            ):
                if new_reader:
                    self._power_off()
                    self._reset()
                # N slots (PARAM b3-b1): the card may take any; it takes the first, answered now
                self._state, self._peer = _State.READY, addr
                return self._atqb()
            return None
        if addr != self._peer:
            return None
        if frame[0] == HLTB and len(frame) == 5 and frame[1:5] == self.pupi:
            if state in (_State.READY, _State.PROTOCOL):
                self._power_off()
                self._state = _State.HALT
                return b"\x00"
            return None
        if state is _State.READY and frame[0] == ATTRIB and len(frame) >= 9:
            return self._attrib(frame) if frame[1:5] == self.pupi else None
        if state is _State.PROTOCOL:
            return self._block(sock, frame, addr)
        return None

    def _atqb(self) -> bytes:
        protocol_info = bytes(
            [
                0x00,  # bit rates: 106 kbit/s only, same both ways
                self.fsci << 4 | PROTOCOL_TYPE_ISO14443_4,
                self.fwi << 4,  # ADC 00: proprietary application data; FO 00: no NAD, no CID
            ]
        )
        return bytes([HLTB]) + self.pupi + self.application_data + protocol_info

    def _attrib(self, frame: bytes) -> bytes:
        # param 1 (TR0/TR1, EOF/SOF), param 2 (bit rates | FSDI), param 3 (protocol type),
        # param 4 (CID); any higher-layer INF after them is ignored (no higher-layer answer)
        self._fsd = FSD_TABLE[min(frame[6] & 0x0F, 8)]
        cid = frame[8] & 0x0F
        self._power_off()
        self.chip.power_on()
        self._powered = True
        self._state = _State.PROTOCOL
        self._block_number = 1  # ISO 14443-4 §7.5.3.2 rule C: PICC block number starts at 1
        log.debug("%s: ATTRIB %s, FSD %d", self.name, frame.hex(), self._fsd)
        return bytes([cid])  # MBLI 0: no information on the card's buffer

    # -- ISO-DEP (ISO 14443-4 §7) --------------------------------------------------------------
    def _block(self, sock: socket.socket, frame: bytes, addr: tuple[str, int]) -> bytes | None:
        pcb = frame[0]
        if pcb & 0xE2 == 0x02:  # I-block
            self._block_number = pcb & 0x01
            self._command += frame[1:]
            if pcb & 0x10:  # chaining: acknowledge, wait for the rest
                return self._remember(bytes([0xA2 | self._block_number]))
            apdu, self._command = bytes(self._command), bytearray()
            try:
                response = self._process(sock, apdu, addr)
            except ChipPowerLost:
                # No answer: the card has left the field mid-command; the reader times out.
                log.info("%s: power lost during a command; card out of the field", self.name)
                self.remove()
                return None
            size = self._fsd - 3  # PCB + CRC_A, as nfcpy counts them
            self._pending = [response[i : i + size] for i in range(0, len(response), size)] or [b""]
            return self._next_chained()
        if pcb & 0xE6 == 0xA2:  # R-block
            number = pcb & 0x01
            nak = bool(pcb & 0x10)
            if number == self._block_number:
                return self._last_block  # rule 11: retransmit
            if nak:
                return bytes([0xA2 | self._block_number])  # rule 12 (nfcpy presence check)
            self._block_number = number
            if self._pending:
                return self._next_chained()  # rule 13: continue the chain
            return self._last_block
        if pcb & 0xF7 == PCB_DESELECT:
            log.debug("%s: DESELECT", self.name)
            self._power_off()
            self._state = _State.HALT
            return bytes([PCB_DESELECT])
        return None

    def _next_chained(self) -> bytes:
        part = self._pending.pop(0)
        more = 0x10 if self._pending else 0x00
        return self._remember(bytes([0x02 | more | self._block_number]) + part)

    def _remember(self, block: bytes) -> bytes:
        self._last_block = block
        return block

    def _process(self, sock: socket.socket, apdu: bytes, addr: tuple[str, int]) -> bytes:
        """Run the APDU on the chip, asking the reader for more time (S(WTX)) while it works."""
        self.apdus += 1
        future = self._executor.submit(self._transmit, apdu)
        while True:
            try:
                return future.result(self.fwt / 2)
            except concurrent.futures.TimeoutError:
                pass
            wtx = bytes([PCB_WTX, 0x01])  # WTXM 1: one more FWT
            self._send(sock, wtx, addr)
            with contextlib.suppress(TimeoutError):
                sock.recvfrom(4096)  # the reader's S(WTX) response

    def _transmit(self, apdu: bytes) -> bytes:
        return answer(self.chip, apdu, self.name)


def _afi_matches(requested: int, own: int) -> bool:
    """Whether a card of AFI ``own`` answers a REQB for AFI ``requested`` (ISO 14443-3 §7.7.2).

    ``00`` asks every card; ``X0`` every card of family X; ``0Y`` the cards of sub-family Y of
    the proprietary family; ``XY`` the cards of exactly that AFI.
    """
    if requested == 0x00:
        return True
    family, sub_family = requested >> 4, requested & 0x0F
    if sub_family == 0:
        return own >> 4 == family
    if family == 0:
        return own & 0x0F == sub_family
    return own == requested
