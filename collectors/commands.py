"""Command mailbox I/O: write one secure frame to a meter, wait for its result, and judge whose result it is.

Mailbox (specs/device-profile.md): one FC16 write at ``mailbox`` (register 0 = frame length in
bytes, then the frame two bytes per register, high byte first, last byte padded 0x00; at
most 120 registers), then FC03 at ``mailbox + 0x40`` x8 (result, purchase_count,
command_seq, balance in fen, read as s32 since an overdrawn balance is negative, then the
command code and the u32 counter of the frame the result answers) until the result is
neither IDLE nor BUSY.

Before writing, a meter still BUSY with an earlier frame is waited for. Even so the result
read back may not be this frame's: another master (or noise) can write the mailbox between
our write and our read, and a mailbox version 1 meter names no frame at all (registers 5-7
read 0). ``judge_answer`` applies the spec's rule: the result counts only when it names this
frame's command and counter; otherwise the purchase_count (money) or command_seq (other
commands) read back with it decides. A resend after a lost answer must reuse the identical
frame: the meter then answers ALREADY_APPLIED instead of crediting twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal

from .modbus import BadReply, Endpoint, EndpointPool, FieldTimeout, GatewayUnreachable
from .profiles import Profile, ProfileRegistry
from .secureframe import MONEY_COMMANDS, Command, Result

MAX_MAILBOX_REGISTERS = 120
RESULT_OFFSET = 0x40
READBACK_REGISTERS = 8
V1_READBACK_REGISTERS = 5
POLL_INTERVAL_S = 0.05
SAYS_APPLIED = frozenset({Result.APPLIED, Result.ALREADY_APPLIED})
SAYS_NOT_APPLIED = frozenset({Result.BAD_FRAME, Result.COUNT_MISMATCH, Result.INSUFFICIENT,
                              Result.INVALID_PAYLOAD, Result.EXPIRED})


def command_name(code: int) -> str:
    try:
        return Command(code).name
    except ValueError:
        return f"0x{code:02X}"


@dataclass(frozen=True)
class MailboxResult:
    result: Result
    purchase_count: int
    command_seq: int
    balance: Decimal  # yuan, 0.01
    answered_command: int = 0  # the frame this result answers: its command code and counter
    answered_counter: int = 0  # (0 and 0: none named, a version 1 meter or a frame that failed its checks)

    @property
    def names_a_frame(self) -> bool:
        return bool(self.answered_command or self.answered_counter)

    def answers(self, command: int, counter: int) -> bool:
        """True when this result belongs to the frame with this command code and counter."""
        return self.names_a_frame and (self.answered_command, self.answered_counter) == (int(command), int(counter))

    def as_dict(self) -> dict:
        return {"result": self.result.name, "purchase_count": self.purchase_count,
                "command_seq": self.command_seq, "balance": str(self.balance),
                "answered_command": command_name(self.answered_command) if self.names_a_frame else None,
                "answered_counter": self.answered_counter if self.names_a_frame else None}


def frame_registers(frame: bytes) -> list[int]:
    """[length in bytes, frame packed high byte first, last byte padded 0x00]."""
    if not frame:
        raise ValueError("empty frame")
    padded = frame + b"\x00" * (len(frame) % 2)
    regs = [len(frame)] + [(padded[i] << 8) | padded[i + 1] for i in range(0, len(padded), 2)]
    if len(regs) > MAX_MAILBOX_REGISTERS:
        raise ValueError(f"frame of {len(frame)} bytes needs {len(regs)} registers; "
                         f"the mailbox takes at most {MAX_MAILBOX_REGISTERS}")
    return regs


def parse_mailbox(regs: list[int]) -> MailboxResult:
    """The read-back registers: 8, or the first 5 only (then no frame is named)."""
    if len(regs) not in (V1_READBACK_REGISTERS, READBACK_REGISTERS):
        raise BadReply(f"mailbox read-back has {len(regs)} registers, expected {READBACK_REGISTERS}")
    try:
        result = Result(regs[0])
    except ValueError:
        raise BadReply(f"mailbox result code {regs[0]} is not a known result") from None
    fen = (regs[3] << 16) | regs[4]
    if fen & 0x80000000:  # an overdrawn balance is two's complement
        fen -= 1 << 32
    balance = (Decimal(fen) / 100).quantize(Decimal("0.01"))
    answered = (regs[5], (regs[6] << 16) | regs[7]) if len(regs) == READBACK_REGISTERS else (0, 0)
    return MailboxResult(result, regs[1], regs[2], balance, *answered)


async def read_mailbox(client: Endpoint, unit: int, profile: Profile, timeout_s: float) -> MailboxResult:
    if profile.mailbox is None:
        raise ValueError(f"profile {profile.name} has no command mailbox")
    regs = await client.read_registers(unit, "holding", profile.mailbox + RESULT_OFFSET, READBACK_REGISTERS,
                                       timeout_s)
    return parse_mailbox(regs)


# ---------------------------------------------------------------------------------------------
# Whose answer is it? (specs/device-profile.md, "Command mailbox")

APPLIED, NOT_APPLIED, REFUSED, SUPERSEDED, UNDECIDED, PENDING = (
    "applied", "not_applied", "refused", "superseded", "undecided", "pending")


@dataclass(frozen=True)
class Verdict:
    """What a read-back means for one frame.

    outcome: applied | not_applied (a resend is safe) | refused (the meter will not take this frame:
    settle it with ``result``) | superseded (not money: the meter's sequence passed this frame's
    without proof it was applied; renumber) | undecided (money: the counts cannot tell; keep it and
    look) | pending (BUSY / IDLE: no answer yet).
    """
    outcome: str
    result: str                 # the name to record: the meter's result, or APPLIED_BY_COUNT
    own: bool                   # the result names this frame
    by_counts: bool             # decided from purchase_count / command_seq, not from the result
    conflict: str | None = None  # why the read-back disagrees with itself or names another frame


def judge_answer(answer: MailboxResult, command: int, counter: int) -> Verdict:
    """Decide what the read-back says about the frame (command code, counter) we wrote."""
    money = command in MONEY_COMMANDS
    what = "purchase count" if money else "command sequence"
    count = answer.purchase_count if money else answer.command_seq
    # The count registers are 16 bits wide; counters are compared modulo 2^16.
    ahead_of_meter = (counter - count) & 0xFFFF       # 0: applied; 1: the next one
    if ahead_of_meter == 0:
        by_count = APPLIED
    elif ahead_of_meter == 1 or (not money and ahead_of_meter < 0x8000):
        by_count = NOT_APPLIED
    elif ahead_of_meter < 0x8000:
        by_count = REFUSED             # the meter's purchase count is more than one behind: it cannot fit
    else:
        by_count = SUPERSEDED if not money else UNDECIDED   # the meter's count is past this frame's
    r = answer.result
    own = answer.answers(command, counter)
    counts = f"{what} {count} for counter {counter}"

    if r in (Result.BUSY, Result.IDLE):
        return Verdict(PENDING, r.name, own, False)
    if own:
        if r in SAYS_APPLIED:
            conflict = None if by_count == APPLIED else f"{r.name} for this frame, but the {counts}"
            return Verdict(APPLIED, r.name, True, False, conflict)
        if r == Result.REPLAYED and not money:
            # our earlier send (or someone's frame with our sequence) got there first: the sequence decides
            return Verdict(APPLIED if by_count == APPLIED else SUPERSEDED, r.name, True, True)
        if by_count == APPLIED:
            # the meter refuses this frame yet its count says it took it: never fail money on that
            return Verdict(UNDECIDED, r.name, True, True, f"{r.name} for this frame, but the {counts}")
        return Verdict(REFUSED, r.name, True, False)

    if answer.names_a_frame:
        conflict = (f"the read-back answers another frame ({command_name(answer.answered_command)} "
                    f"counter {answer.answered_counter}: {r.name}); {counts}")
    elif (r in SAYS_NOT_APPLIED and by_count == APPLIED) or (r in SAYS_APPLIED and by_count != APPLIED):
        conflict = f"the read-back says {r.name} naming no frame, but the {counts}"
    else:
        conflict = None                # a version 1 meter whose result agrees with its counts
    if by_count == APPLIED:
        return Verdict(APPLIED, r.name if r in SAYS_APPLIED else "APPLIED_BY_COUNT", False, True, conflict)
    if by_count == REFUSED:
        return Verdict(REFUSED, Result.COUNT_MISMATCH.name, False, True, conflict)
    return Verdict(by_count, r.name, False, True, conflict)


async def send_frame(client: Endpoint, unit: int, profile: Profile, frame: bytes,
                     timeout_s: float = 2.0) -> MailboxResult:
    """Write the frame, then poll its result about every 50 ms until done or timeout_s passes."""
    if profile.mailbox is None:
        raise ValueError(f"profile {profile.name} has no command mailbox (read-only device)")
    regs = frame_registers(frame)
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(0.05, deadline - time.monotonic())

    status = await read_mailbox(client, unit, profile, left())
    while status.result == Result.BUSY:
        if time.monotonic() >= deadline:
            raise FieldTimeout(f"unit {unit}: meter stayed BUSY with an earlier frame for {timeout_s:g} s")
        await asyncio.sleep(POLL_INTERVAL_S)
        status = await read_mailbox(client, unit, profile, left())
    await client.write_registers(unit, profile.mailbox, regs, left())
    while True:
        status = await read_mailbox(client, unit, profile, left())
        if status.result not in (Result.IDLE, Result.BUSY):
            return status
        if time.monotonic() >= deadline:
            raise FieldTimeout(f"unit {unit}: no command result within {timeout_s:g} s "
                               f"(last {status.result.name})")
        await asyncio.sleep(POLL_INTERVAL_S)


async def send_frame_to_target(pool: EndpointPool, profiles: ProfileRegistry, target, frame: bytes,
                               timeout_s: float = 2.0) -> MailboxResult:
    """send_frame through the pool's persistent endpoint of a PollTarget (reconnecting if needed)."""
    profile = profiles.get(target.profile)
    endpoint = pool.get(target.host, target.port, target.framing, target.timeout_s)
    if not endpoint.connected and not await endpoint.connect(target.timeout_s):
        raise GatewayUnreachable(f"{endpoint.key}: connection refused or timed out")
    try:
        return await send_frame(endpoint, target.unit, profile, frame, timeout_s)
    except BadReply:
        endpoint.close()  # the next user reconnects; no stale bytes survive
        raise
