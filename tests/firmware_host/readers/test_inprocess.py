"""In-process reader: the base class behaviour (case handling, tracing, errors) without a stack."""

from __future__ import annotations

import logging
import threading

import pytest

from card_schema.apdu_trace import TRACE, hexstr
from firmware_host.readers.base import (
    CardEvent,
    CardRemovedError,
    NoCardError,
    ReaderProtocolError,
)
from firmware_host.readers.inprocess import InProcessReader
from hardware.bridges.testchip import TestChip

SELECT_PLUM = bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"
READ_ENV = bytes.fromhex("00B2013C1D")  # record 1, SFI 07, Le 29


def test_connect_returns_the_chip_atr_and_transmit_reaches_it() -> None:
    chip = TestChip()
    with InProcessReader(chip) as reader:
        assert reader.atr == chip.atr
        assert reader.protocol == "T=CL"
        response = reader.transmit(SELECT_PLUM)
        assert response.endswith(b"\x90\x00")
        assert b"1TIC.ICA" in response
        assert reader.transmit(READ_ENV)[:2] == b"\x07\x01"
    assert not chip.powered


def test_61xx_is_resolved_with_get_response() -> None:
    reader = InProcessReader(TestChip(t0_style=True))
    reader.connect()
    response = reader.transmit(SELECT_PLUM)
    assert response[:2] == b"\x6f\x0d" and response[-2:] == b"\x90\x00"
    reader.handle_transport_status = False
    assert reader.transmit(SELECT_PLUM) == b"\x61\x0f"


def test_6cxx_reissues_the_command_with_the_exact_le() -> None:
    chip = TestChip(t0_style=True)
    reader = InProcessReader(chip)
    reader.connect()
    reader.transmit(SELECT_PLUM)
    response = reader.transmit(bytes.fromhex("00B2013C10"))  # Le 16, record is 29 bytes
    assert len(response) == 31 and response[-2:] == b"\x90\x00"


def test_no_card_means_the_command_never_reached_a_card() -> None:
    reader = InProcessReader(None)
    with pytest.raises(NoCardError) as info:
        reader.connect()
    assert info.value.may_have_reached_card is False


def test_short_apdu_is_refused_before_sending() -> None:
    chip = TestChip()
    reader = InProcessReader(chip)
    reader.connect()
    with pytest.raises(ReaderProtocolError) as info:
        reader.transmit(b"\x00\xa4")
    assert info.value.may_have_reached_card is False
    assert chip.commands == 0


@pytest.mark.parametrize("reached", [True, False])
def test_tearing_tells_whether_the_card_executed_the_command(reached: bool) -> None:
    chip = TestChip()
    reader = InProcessReader(chip)
    reader.connect()
    reader.tear_after(1, reached=reached)
    with pytest.raises(CardRemovedError, match="removed") as info:
        reader.transmit(SELECT_PLUM)
    assert info.value.may_have_reached_card is reached
    assert chip.commands == (1 if reached else 0)
    assert not reader.card_present()
    with pytest.raises(NoCardError):
        reader.transmit(SELECT_PLUM)


def test_presence_events_follow_insert_and_remove() -> None:
    chip = TestChip()
    reader = InProcessReader(None)
    assert reader.wait_for_card(0.01) is False
    threading.Timer(0.05, reader.insert, args=(chip,)).start()
    assert reader.wait_for_event(2.0) is CardEvent.INSERTED
    reader.connect()
    threading.Timer(0.05, reader.remove).start()
    assert reader.wait_for_event(2.0) is CardEvent.REMOVED
    assert not chip.powered
    with pytest.raises(CardRemovedError) as info:
        reader.transmit(SELECT_PLUM)
    assert info.value.may_have_reached_card is False


def test_apdus_are_traced_at_level_5_in_one_hex_format(caplog: pytest.LogCaptureFixture) -> None:
    reader = InProcessReader(TestChip(), name="test-reader")
    reader.connect()
    reader.transmit(SELECT_PLUM)
    with caplog.at_level(TRACE, logger="firmware_host.readers.inprocess"):
        reader.transmit(READ_ENV)
    lines = [r.getMessage() for r in caplog.records if r.levelno == TRACE]
    assert lines[0] == "test-reader >> 00 B2 01 3C 1D"
    assert lines[1].startswith("test-reader << 07 01 00 01") and lines[1].endswith("90 00")
    assert logging.getLevelName(TRACE) == "TRACE"
    assert hexstr(b"\x0a\xff") == "0A FF"
