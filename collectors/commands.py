"""Command mailbox I/O: write one secure frame to a meter and wait for its result.

Mailbox (specs/device-profile.md): one FC16 write at ``mailbox`` (register 0 = frame length in
bytes, then the frame two bytes per register, high byte first, last byte padded 0x00; at
most 120 registers), then FC03 at ``mailbox + 0x40`` x5 (result, purchase_count,
command_seq, balance in fen, read as s32 since an overdrawn balance is negative) until the
result is neither IDLE nor BUSY.

Before writing, a meter still BUSY with an earlier frame is waited for, so the result read
afterwards belongs to this frame. A resend after a lost answer must reuse the identical
frame: the meter then answers ALREADY_APPLIED instead of crediting twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal

from .modbus import BadReply, Endpoint, EndpointPool, FieldTimeout, GatewayUnreachable
from .profiles import Profile, ProfileRegistry
from .secureframe import Result

MAX_MAILBOX_REGISTERS = 120
RESULT_OFFSET = 0x40
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class MailboxResult:
    result: Result
    purchase_count: int
    command_seq: int
    balance: Decimal  # yuan, 0.01

    def as_dict(self) -> dict:
        return {"result": self.result.name, "purchase_count": self.purchase_count,
                "command_seq": self.command_seq, "balance": str(self.balance)}


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
    try:
        result = Result(regs[0])
    except ValueError:
        raise BadReply(f"mailbox result code {regs[0]} is not a known result") from None
    fen = (regs[3] << 16) | regs[4]
    if fen & 0x80000000:  # an overdrawn balance is two's complement
        fen -= 1 << 32
    balance = (Decimal(fen) / 100).quantize(Decimal("0.01"))
    return MailboxResult(result, regs[1], regs[2], balance)


async def read_mailbox(client: Endpoint, unit: int, profile: Profile, timeout_s: float) -> MailboxResult:
    if profile.mailbox is None:
        raise ValueError(f"profile {profile.name} has no command mailbox")
    regs = await client.read_registers(unit, "holding", profile.mailbox + RESULT_OFFSET, 5, timeout_s)
    return parse_mailbox(regs)


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
