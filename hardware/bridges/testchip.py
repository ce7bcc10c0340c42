"""A tiny ISO 7816-4 chip answering SELECT and READ RECORD from a dictionary.

It implements :class:`hardware.icc.EmulatedICC` and is what the bridge self-tests and the APDU
round-trip benchmark run against: it costs almost nothing per APDU, so what is measured is the
transport (vpcd + pcscd, nfcpy UDP), not the card. It is not the regional card: that is
``hardware.card.EmulatedCard``.

Commands (class ``00`` or Calypso ``94``):

==============  ===========  ================================================================
command         INS          behaviour
==============  ===========  ================================================================
SELECT          A4           P1=04: by DF name; P1=00/01/08/09 with a 2-byte LID: DF by LID.
                             Answers the application's FCI.
READ RECORD     B2           P1=record number (1-based), P2=(SFI << 3) | 4, or P2=04 for the
                             file selected last by SFI. Le=00 or absent means "the whole record".
GET RESPONSE    C0           returns what a previous 61xx announced (``t0_style`` chips)
==============  ===========  ================================================================

Status words:

====  ==================================================
SW    meaning
====  ==================================================
9000  success
61xx  ``t0_style``: xx response bytes wait for GET RESPONSE
6700  wrong length (bad Lc)
6985  no application selected
6A82  application or file not found
6A83  record not found
6Cxx  ``t0_style``: wrong Le, the record is xx bytes long
6D00  instruction not supported
6E00  class not supported
====  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hardware.icc import with_tck

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_NO_CURRENT_APP = b"\x69\x85"
SW_NOT_FOUND = b"\x6a\x82"
SW_RECORD_NOT_FOUND = b"\x6a\x83"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"

#: ATR of a contactless card as a PC/SC reader builds it (PC/SC part 3 §3.1.3.2.3.1): 3B 8n 80 01,
#: the ATS historical bytes, TCK. Historical bytes here: "RGNCARD".
DEFAULT_HISTORICAL = b"RGNCARD"


def contactless_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader shows for an ISO 14443-4 card with these ATS historical bytes."""
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes")
    return with_tck(bytes([0x3B, 0x80 | len(historical), 0x80, 0x01]) + historical)


@dataclass
class TestApplication:
    """One application of the test chip.

    Attributes:
        df_name: DF name for SELECT by name.
        lid: file identifier for SELECT by LID.
        files: records per SFI.
        fci: answer to SELECT (before 9000).
    """

    __test__ = False  # not a pytest test class

    df_name: bytes
    lid: int
    files: dict[int, list[bytes]] = field(default_factory=dict)
    fci: bytes = b""


class TestChip:
    """A dictionary-backed chip for transport tests and benchmarks.

    Args:
        applications: what the chip holds.
        historical: ATS historical bytes; the ATR is :func:`contactless_atr` of them.
        t0_style: answer like a T=0 card: SELECT says 61xx (data via GET RESPONSE) and READ RECORD
            with a wrong non-zero Le says 6Cxx, so a reader's case handling can be checked.
    """

    __test__ = False

    def __init__(
        self,
        applications: list[TestApplication] | None = None,
        *,
        historical: bytes = DEFAULT_HISTORICAL,
        t0_style: bool = False,
    ) -> None:
        self.applications = applications if applications is not None else sample_applications()
        self.atr = contactless_atr(historical)
        self.t0_style = t0_style
        self.powered = False
        self.power_cycles = 0
        self.commands = 0
        self._current: TestApplication | None = None
        self._current_sfi: int | None = None
        self._pending: bytes = b""

    # EmulatedICC ---------------------------------------------------------------------------
    def power_on(self) -> bytes:
        self.powered = True
        self.power_cycles += 1
        self._current = None
        self._current_sfi = None
        self._pending = b""
        return self.atr

    def power_off(self) -> None:
        self.powered = False
        self._current = None
        self._pending = b""

    def transmit(self, apdu: bytes) -> bytes:
        self.commands += 1
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        if cla not in (0x00, 0x94):
            return SW_CLA_NOT_SUPPORTED
        body = apdu[4:]
        if ins == 0xA4:
            return self._select(p1, body)
        if ins == 0xB2:
            return self._read_record(p1, p2, body)
        if ins == 0xC0:
            data, self._pending = self._pending, b""
            return data + SW_OK
        return SW_INS_NOT_SUPPORTED

    # commands --------------------------------------------------------------------------------
    def _select(self, p1: int, body: bytes) -> bytes:
        if not body or len(body) < 1 + body[0]:
            return SW_WRONG_LENGTH
        value = body[1 : 1 + body[0]]
        found: TestApplication | None = None
        for app in self.applications:
            by_name = p1 == 0x04 and app.df_name == value
            by_lid = p1 in (0x00, 0x01, 0x08, 0x09) and value == app.lid.to_bytes(2, "big")
            if by_name or by_lid:
                found = app
        if found is None:
            return SW_NOT_FOUND
        self._current, self._current_sfi = found, None
        if self.t0_style and found.fci:
            self._pending = found.fci
            return bytes([0x61, len(found.fci) & 0xFF])
        return found.fci + SW_OK

    def _read_record(self, p1: int, p2: int, body: bytes) -> bytes:
        if self._current is None:
            return SW_NO_CURRENT_APP
        if p2 & 0x07 != 0x04:
            return SW_RECORD_NOT_FOUND
        sfi = p2 >> 3 or self._current_sfi
        if sfi is None or sfi not in self._current.files:
            return SW_NOT_FOUND
        self._current_sfi = sfi
        records = self._current.files[sfi]
        if not 1 <= p1 <= len(records):
            return SW_RECORD_NOT_FOUND
        record = records[p1 - 1]
        le = body[0] if len(body) == 1 else 0
        if self.t0_style and le and le != len(record):
            return bytes([0x6C, len(record) & 0xFF])
        return record + SW_OK


def sample_applications() -> list[TestApplication]:
    """A PLUM-like application (DF name ``1TIC.ICA``, SFI 07/08/09) with recognisable records."""
    plum = TestApplication(
        df_name=b"1TIC.ICA",
        lid=0x2000,
        fci=bytes.fromhex("6F 0D 84 08") + b"1TIC.ICA" + bytes.fromhex("A5 01 00"),
        files={
            0x07: [bytes([0x07, 0x01]) + bytes(range(27))],
            0x08: [bytes([0x08, n]) + bytes([n] * 27) for n in (1, 2, 3)],
            0x09: [bytes([0x09, n]) + bytes([0xC0 | n] * 27) for n in (1, 2, 3, 4)],
            # a long record, so that ISO-DEP chaining is exercised on the nfcpy path
            0x1A: [bytes(i & 0xFF for i in range(254))],
        },
    )
    wallet = TestApplication(df_name=b"HDF.WALLET", lid=0x3000, files={0x01: [b"\x01" + bytes(28)]})
    return [plum, wallet]
