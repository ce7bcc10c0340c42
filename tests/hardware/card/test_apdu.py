"""APDU parsing (ISO 7816-4 cases 1-4), the status-word table and the trace format."""

from __future__ import annotations

import logging

import pytest

from card_schema.apdu_trace import TRACE, trace
from card_schema.apdu_trace import hexstr as hexs
from hardware.card.apdu import SW, SW_MEANINGS, CommandRefused, parse_apdu


def test_case_1_to_4() -> None:
    c1 = parse_apdu(bytes.fromhex("00A40400"))
    assert (c1.cla, c1.ins, c1.p1, c1.p2, c1.data, c1.le) == (0, 0xA4, 4, 0, b"", None)
    c2 = parse_apdu(bytes.fromhex("00B2014C1D"))
    assert (c2.data, c2.le, c2.ne) == (b"", 0x1D, 29)
    assert parse_apdu(bytes.fromhex("00B2014C00")).ne == 256
    c3 = parse_apdu(bytes.fromhex("00DC014C03AABBCC"))
    assert (c3.data, c3.le) == (bytes.fromhex("AABBCC"), None)
    c4 = parse_apdu(bytes.fromhex("00A4040002200000"))
    assert (c4.data, c4.le) == (bytes.fromhex("2000"), 0)
    assert c4.raw == bytes.fromhex("00A4040002200000")


@pytest.mark.parametrize(
    "raw",
    ["", "00", "00A404", "00A4040003AABB", "00A4040002AABBCCDD", "00A40400000002AABB"],
    ids=["empty", "one", "three", "short-data", "long-data", "extended"],
)
def test_malformed_lengths_are_6700(raw: str) -> None:
    with pytest.raises(CommandRefused) as refused:
        parse_apdu(bytes.fromhex(raw))
    assert refused.value.sw is SW.WRONG_LENGTH
    assert refused.value.sw_bytes == b"\x67\x00"


def test_every_status_word_has_a_meaning() -> None:
    assert set(SW_MEANINGS) == set(SW)
    assert SW.SECURITY_NOT_SATISFIED.meaning.startswith("security status")
    assert SW.WRONG_LE.to_bytes_sw(0x1D) == b"\x6c\x1d"


def test_trace_uses_one_hex_format(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.trace")
    with caplog.at_level(TRACE, logger="test.trace"):
        trace(logger, "card <-", b"\x00\xa4\x04\x00")
    assert hexs(b"\x0a\xff") == "0A FF"
    assert caplog.records[0].levelno == TRACE
    assert caplog.records[0].getMessage() == "card <- 00 A4 04 00"
