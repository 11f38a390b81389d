"""Mailbox packing and read-back parsing (pure functions; the round trip is in test_collectors_field)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from collectors.commands import MAX_MAILBOX_REGISTERS, frame_registers, parse_mailbox
from collectors.modbus import BadReply
from collectors.secureframe import Result


def test_a_frame_is_packed_after_its_length_high_byte_first():
    assert frame_registers(bytes([0x12, 0x34, 0x56, 0x78])) == [4, 0x1234, 0x5678]


def test_an_odd_frame_is_padded_with_a_zero_byte():
    assert frame_registers(bytes([0xAB, 0xCD, 0xEF])) == [3, 0xABCD, 0xEF00]


def test_the_largest_frame_that_fits_120_registers_is_accepted():
    assert len(frame_registers(bytes(2 * (MAX_MAILBOX_REGISTERS - 1)))) == MAX_MAILBOX_REGISTERS


def test_a_frame_over_120_registers_is_refused():
    with pytest.raises(ValueError, match="at most 120"):
        frame_registers(bytes(2 * (MAX_MAILBOX_REGISTERS - 1) + 1))


def test_an_empty_frame_is_refused():
    with pytest.raises(ValueError, match="empty"):
        frame_registers(b"")


def test_read_back_gives_result_counters_and_balance_in_yuan():
    answer = parse_mailbox([1, 8, 3, 0x0001, 0x86A0])
    assert answer.result == Result.APPLIED and answer.purchase_count == 8 and answer.command_seq == 3
    assert answer.balance == Decimal("1000.00")
    assert answer.as_dict() == {"result": "APPLIED", "purchase_count": 8, "command_seq": 3, "balance": "1000.00"}


def test_an_overdrawn_balance_reads_back_negative():
    fen = (1 << 32) - 250
    assert parse_mailbox([1, 8, 3, fen >> 16, fen & 0xFFFF]).balance == Decimal("-2.50")


def test_an_unknown_result_code_is_a_bad_reply():
    with pytest.raises(BadReply, match="42"):
        parse_mailbox([42, 0, 0, 0, 0])
