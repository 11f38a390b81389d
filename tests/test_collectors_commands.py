"""Mailbox packing, read-back parsing and whose answer a read-back is (pure functions; the round trip is in
test_collectors_field, the dispatcher against the simulator in test_dispatch_mailbox)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from collectors.commands import MAX_MAILBOX_REGISTERS, frame_registers, judge_answer, parse_mailbox
from collectors.modbus import BadReply
from collectors.secureframe import Command, Result


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
    assert answer.as_dict() == {"result": "APPLIED", "purchase_count": 8, "command_seq": 3, "balance": "1000.00",
                                "answered_command": None, "answered_counter": None}


def test_an_overdrawn_balance_reads_back_negative():
    fen = (1 << 32) - 250
    assert parse_mailbox([1, 8, 3, fen >> 16, fen & 0xFFFF]).balance == Decimal("-2.50")


def test_an_unknown_result_code_is_a_bad_reply():
    with pytest.raises(BadReply, match="42"):
        parse_mailbox([42, 0, 0, 0, 0])


def test_the_read_back_names_the_frame_its_result_answers():
    answer = parse_mailbox([1, 25, 3, 0, 700, Command.RECHARGE, 0x0001, 0x0002])
    assert answer.answers(Command.RECHARGE, 0x10002) and not answer.answers(Command.RECHARGE, 2)
    assert answer.as_dict()["answered_command"] == "RECHARGE" and answer.as_dict()["answered_counter"] == 0x10002


def test_a_read_back_of_another_length_is_a_bad_reply():
    with pytest.raises(BadReply, match="7 registers"):
        parse_mailbox([1, 0, 0, 0, 0, 0, 0])


def readback(result, purchase_count=24, command_seq=3, command=0, counter=0):
    return parse_mailbox([result, purchase_count, command_seq, 0, 1000, command, counter >> 16, counter & 0xFFFF])


def test_a_result_naming_this_frame_decides():
    verdict = judge_answer(readback(Result.APPLIED, 25, command=Command.RECHARGE, counter=25), Command.RECHARGE, 25)
    assert (verdict.outcome, verdict.result, verdict.own, verdict.by_counts, verdict.conflict) == \
        ("applied", "APPLIED", True, False, None)


def test_a_refusal_naming_this_frame_fails_it():
    verdict = judge_answer(readback(Result.INSUFFICIENT, 24, command=Command.REFUND, counter=25), Command.REFUND, 25)
    assert (verdict.outcome, verdict.result) == ("refused", "INSUFFICIENT")


def test_junk_after_an_applied_recharge_is_decided_applied_by_the_purchase_count_with_a_conflict():
    verdict = judge_answer(readback(Result.BAD_FRAME, 25), Command.RECHARGE, 25)
    assert (verdict.outcome, verdict.result, verdict.by_counts) == ("applied", "APPLIED_BY_COUNT", True)
    assert "BAD_FRAME" in verdict.conflict and "purchase count 25" in verdict.conflict


def test_a_purchase_count_one_less_means_not_applied_whatever_the_result_says():
    verdict = judge_answer(readback(Result.APPLIED, 24, command=Command.RELAY, counter=4), Command.RECHARGE, 25)
    assert verdict.outcome == "not_applied" and "another frame (RELAY counter 4: APPLIED)" in verdict.conflict


def test_a_version_1_answer_that_agrees_with_its_counts_is_no_conflict():
    assert judge_answer(readback(Result.APPLIED, 25), Command.RECHARGE, 25).conflict is None
    assert judge_answer(readback(Result.INSUFFICIENT, 24), Command.REFUND, 25).conflict is None


def test_a_refusal_for_this_frame_while_its_count_says_applied_is_never_a_failure():
    verdict = judge_answer(readback(Result.COUNT_MISMATCH, 25, command=Command.RECHARGE, counter=25),
                           Command.RECHARGE, 25)
    assert verdict.outcome == "undecided" and verdict.conflict


def test_a_purchase_count_past_the_frame_cannot_decide_a_money_frame():
    assert judge_answer(readback(Result.BAD_FRAME, 27), Command.RECHARGE, 25).outcome == "undecided"


def test_a_purchase_count_far_behind_the_frame_refuses_it_as_a_count_mismatch():
    verdict = judge_answer(readback(Result.COUNT_MISMATCH, 0), Command.RECHARGE, 25)
    assert (verdict.outcome, verdict.result) == ("refused", "COUNT_MISMATCH")


@pytest.mark.parametrize("seq, outcome", [(12, "applied"), (11, "not_applied"), (9, "not_applied"),
                                          (13, "superseded")])
def test_a_relay_frame_not_named_is_decided_by_the_command_sequence(seq, outcome):
    assert judge_answer(readback(Result.BAD_FRAME, command_seq=seq), Command.RELAY, 12).outcome == outcome


def test_counts_are_compared_modulo_the_16_bit_register():
    assert judge_answer(readback(Result.BAD_FRAME, 0xFFFF), Command.RECHARGE, 0x10000).outcome == "not_applied"
    assert judge_answer(readback(Result.BAD_FRAME, 0), Command.RECHARGE, 0x10000).outcome == "applied"


def test_busy_is_no_answer_yet():
    assert judge_answer(readback(Result.BUSY, 25), Command.RECHARGE, 25).outcome == "pending"
