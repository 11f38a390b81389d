"""One-off meter reads and commands for the command line (app.py read-meter / send-command).

Each call opens its own connection and event loop, so it must not run on the FieldIO loop
thread. Results are JSON-ready: Decimal -> string, datetime -> ISO 8601, Result -> its name.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import secureframe as sf
from .commands import judge_answer, send_frame
from .modbus import Endpoint, GatewayUnreachable, quiet_pymodbus_logging, read_profile
from .profiles import Profile, ProfileRegistry

COMMANDS = ("recharge", "refund", "relay")


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _profile(profile: str | Profile, profiles_dir: str | Path | None) -> Profile:
    if isinstance(profile, Profile):
        return profile
    return ProfileRegistry(profiles_dir).get(profile)


async def _with_endpoint(host: str, port: int, framer: str, timeout_s: float, work):
    quiet_pymodbus_logging()
    endpoint = Endpoint(host, port, framer, timeout_s)
    if not await endpoint.connect(timeout_s):
        raise GatewayUnreachable(f"{endpoint.key}: connection refused or timed out")
    try:
        return await work(endpoint)
    finally:
        endpoint.close()


def read_meter(host: str, port: int, unit: int, profile: str | Profile, framer: str = "socket", *,
               timeout_s: float = 1.0, profiles_dir: str | Path | None = None) -> dict:
    """Read every block of one meter; FieldError (timeout, bad reply, ...) if it cannot."""
    prof = _profile(profile, profiles_dir)

    async def work(endpoint: Endpoint):
        return await read_profile(endpoint, unit, prof, timeout_s=timeout_s)
    values = asyncio.run(_with_endpoint(host, port, framer, timeout_s, work))
    return jsonable(values)


def build_command_frame(meter_address: str, key: bytes, command: str, *, issued_at: int | None = None,
                        iv: bytes | None = None, **args: Any) -> tuple[bytes, int]:
    """(frame, counter) for a CLI command: recharge/refund (amount yuan, count) or relay (action, seq)."""
    frame, _code, counter = _command_frame(meter_address, key, command, issued_at=issued_at, iv=iv, **args)
    return frame, counter


def _command_frame(meter_address: str, key: bytes, command: str, *, issued_at: int | None = None,
                   iv: bytes | None = None, **args: Any) -> tuple[bytes, int, int]:
    issued_at = int(time.time()) if issued_at is None else issued_at
    name = command.strip().lower()
    if "relay_action" in args and "action" not in args:
        args["action"] = args.pop("relay_action")  # the CLI's option name

    def need(*names: str) -> list:
        missing = [n for n in names if args.get(n) is None]
        if missing:
            raise ValueError(f"{name} needs {', '.join(missing)}")
        extra = sorted(set(args) - set(names))
        if extra:
            raise ValueError(f"{name} does not take {', '.join(extra)}")
        return [args[n] for n in names]

    if name in ("recharge", "refund"):
        amount, count = need("amount", "count")
        fen = sf.fen_from_yuan(amount)
        payload = sf.recharge_payload(fen) if name == "recharge" else sf.refund_payload(fen)
        code = sf.Command.RECHARGE if name == "recharge" else sf.Command.REFUND
        counter = int(count)
    elif name == "relay":
        action, seq = need("action", "seq")
        payload, code, counter = sf.relay_payload(action), sf.Command.RELAY, int(seq)
    else:
        raise ValueError(f"unknown command {command!r} (expected {', '.join(COMMANDS)})")
    return sf.encrypt_frame(key, meter_address, code, counter, issued_at, payload, iv=iv), code, counter


def send_command(host: str, port: int, unit: int, profile: str | Profile, meter_address: str, key: bytes,
                 command: str, *, framer: str = "socket", timeout_s: float = 2.0,
                 profiles_dir: str | Path | None = None, **args: Any) -> dict:
    """Build, send and await one secure command; returns the meter's answer as a JSON-ready dict.

    recharge / refund: amount= yuan (Decimal or str, 2 decimals), count= the purchase count
    this frame carries (stored + 1). relay: action= trip | close | keep-power-on |
    keep-power-off (or relay_action=), seq= command sequence (greater than the meter's).
    Besides the read-back (with the frame it answers), ``decided`` says what it means for this
    frame (applied, not_applied, refused, ...), ``decided_by`` whether the meter's result or its
    counts said so, and ``conflict`` why the read-back disagrees (another frame named, ...), or None.
    """
    prof = _profile(profile, profiles_dir)
    frame, code, counter = _command_frame(meter_address, key, command, **args)

    async def work(endpoint: Endpoint):
        return await send_frame(endpoint, unit, prof, frame, timeout_s)
    answer = asyncio.run(_with_endpoint(host, port, framer, min(timeout_s, 2.0), work))
    verdict = judge_answer(answer, code, counter)
    return {"command": command.strip().lower(), "meter_address": meter_address, "counter": counter,
            **answer.as_dict(), "decided": verdict.outcome, "decided_by": "counts" if verdict.by_counts else "result",
            "conflict": verdict.conflict}
