"""Modbus transport: one persistent pymodbus client per gateway bus endpoint, and profile reads.

An endpoint is a (host, port, framing) triple: one TCP port of a communication manager,
bridging one RS485 bus. Framing "socket" is Modbus TCP (MBAP), "rtu" is RTU-over-TCP.

pymodbus 3.16.1 is driven with retries=0, reconnect_delay=0 (no background reconnect task)
and its "close the connection after retries+3 silent requests" rule switched off: on a bus one
silent meter must not cost the others their connection. Retries and reconnects are ours.

Two small hooks on the client's transaction manager (pinned pymodbus internals) let a garbage
reply fail its request at once instead of waiting out the timeout, and a dropped connection
fail the request in flight:
- socket framing: a reply whose protocol id is not 0 or whose MBAP length is impossible;
- rtu framing: a reply that fails its CRC;
- either: a frame whose PDU does not decode.
A request that times out with bytes still unparsed in the buffer is a bad (truncated) reply,
not a timeout. After any bad reply the caller reconnects the endpoint so no stale byte can
desynchronise the next meter's reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from .profiles import Block, Profile

FRAMINGS = {"socket": FramerType.SOCKET, "rtu": FramerType.RTU}
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
# Modbus exception codes a gateway answers when the meter behind it is silent.
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_TARGET_NO_RESPONSE = 0x0B
EXCEPTION_CODES = frozenset({1, 2, 3, 4, 5, 6, 8, 0x0A, 0x0B})


def quiet_pymodbus_logging() -> None:
    """Silence pymodbus's own error log (with its frame dumps) unless the app set its level.

    Every failed request is reported once, as an Outcome, by the poller; pymodbus would
    otherwise log each timeout at ERROR with the last 20 frames attached.
    """
    logger = logging.getLogger("pymodbus.logging")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


class FieldError(Exception):
    """A field request that did not produce a good answer; ``outcome`` names the kind."""

    outcome = "bad_reply"


class FieldTimeout(FieldError):
    outcome = "timeout"


class BadReply(FieldError):
    outcome = "bad_reply"


class ExceptionReply(FieldError):
    outcome = "exception"

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class GatewayUnreachable(FieldError):
    outcome = "gateway_unreachable"


class ConnectionDropped(FieldError):
    """The endpoint's TCP connection closed under a request (the caller reconnects once)."""

    outcome = "gateway_unreachable"


class EndpointKey(NamedTuple):
    host: str
    port: int
    framing: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.framing}"


class Endpoint:
    """One persistent pymodbus client for one gateway bus port. Create it inside the I/O loop."""

    def __init__(self, host: str, port: int, framing: str = "socket", timeout_s: float = 1.0,
                 client: AsyncModbusTcpClient | None = None):
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r} (expected socket or rtu)")
        self.key = EndpointKey(host, int(port), framing)
        self.client = client or AsyncModbusTcpClient(
            host, port=int(port), framer=FRAMINGS[framing], timeout=timeout_s, retries=0,
            reconnect_delay=0, name=f"{host}:{port}")
        self.client.set_max_no_responses(1 << 30)
        self.connect_attempts = 0
        self._unparsed = 0  # bytes buffered but not yet a frame, for the request in flight
        self._install_hooks()

    # -- hooks into pymodbus's transaction manager
    def _install_hooks(self) -> None:
        ctx = self.client.ctx
        original_data = ctx.callback_data
        original_disconnected = ctx.callback_disconnected
        socket_framing = self.key.framing == "socket"

        def callback_data(data: bytes, addr=None) -> int:
            if socket_framing and len(data) >= 6:
                length = (data[4] << 8) | data[5]
                # an exception PDU is exactly 2 bytes: a longer one starting >= 0x80 is noise
                if (data[2] or data[3] or length < 2 or length > 254
                        or (len(data) >= 8 and data[7] & 0x80 and length != 3)):
                    self._fail_pending(BadReply(f"reply is not a Modbus TCP frame: {data[:8].hex()}"))
                    self._unparsed = 0
                    return len(data)
            try:
                used = original_data(data, addr)
            except (ModbusException, ValueError, IndexError) as exc:
                self._fail_pending(BadReply(f"reply does not decode: {exc}"))
                self._unparsed = 0
                return len(data)
            self._unparsed = len(data) - used
            return used

        def callback_disconnected(exc: Exception | None) -> None:
            self._fail_pending(ConnectionDropped(f"{self.key}: connection closed by the gateway"))
            original_disconnected(exc)

        ctx.callback_data = callback_data
        ctx.callback_disconnected = callback_disconnected
        if not socket_framing:
            framer = ctx.framer
            original_decode = framer.decode

            def decode(data: bytes):
                used, dev_id, tid, frame = original_decode(data)
                if used and not frame:  # FramerRTU consumes the buffer only on a CRC failure
                    self._fail_pending(BadReply("reply failed its CRC check"))
                return used, dev_id, tid, frame

            framer.decode = decode

    def _fail_pending(self, exc: FieldError) -> None:
        future = getattr(self.client.ctx, "response_future", None)
        if future is not None and not future.done():
            future.set_exception(exc)

    # -- connection
    @property
    def connected(self) -> bool:
        return self.client.connected

    async def connect(self, timeout_s: float) -> bool:
        """One connection attempt bounded by timeout_s; False if refused or too slow."""
        self.connect_attempts += 1
        self.client.ctx.comm_params.timeout_connect = timeout_s
        try:
            return bool(await self.client.connect())
        except (OSError, ConnectionException, asyncio.TimeoutError):
            return False

    async def reconnect(self, timeout_s: float) -> bool:
        self.client.close()
        return await self.connect(timeout_s)

    def close(self) -> None:
        self.client.close()

    # -- requests (one attempt each; retries belong to the caller)
    async def _execute(self, call, function_code: int, timeout_s: float, what: str):
        if not self.client.connected:
            raise ConnectionDropped(f"{self.key}: not connected")
        self.client.ctx.comm_params.timeout_connect = timeout_s
        self._unparsed = 0
        try:
            response = await call()
        except FieldError:
            raise
        except ConnectionException as exc:
            raise ConnectionDropped(f"{self.key}: {exc}") from None
        except ModbusIOException as exc:
            if "No response" not in str(exc):
                raise BadReply(f"{what}: {exc}") from None
            if self._unparsed:
                raise BadReply(f"{what}: incomplete reply ({self._unparsed} bytes) within {timeout_s:g} s") from None
            raise FieldTimeout(f"{what}: no reply within {timeout_s:g} s") from None
        except ModbusException as exc:
            raise BadReply(f"{what}: {exc}") from None
        if response.isError():
            code = getattr(response, "exception_code", 0)
            if response.function_code != function_code | 0x80 or code not in EXCEPTION_CODES:
                raise BadReply(f"{what}: reply is neither an answer nor a valid exception "
                               f"(FC 0x{response.function_code:02X}, code {code})")
            if code in (GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_NO_RESPONSE):
                raise FieldTimeout(f"{what}: gateway reports no answer from the meter (exception {code})")
            raise ExceptionReply(f"{what}: exception reply code {code}", code)
        return response

    async def read_registers(self, unit: int, table: str, start: int, count: int,
                             timeout_s: float) -> list[int]:
        if table == "holding":
            fc, call = 3, self.client.read_holding_registers
        elif table == "input":
            fc, call = 4, self.client.read_input_registers
        else:
            raise ValueError(f"unknown register table {table!r}")
        what = f"unit {unit} FC{fc:02d} 0x{start:04X}+{count}"
        response = await self._execute(lambda: call(start, count=count, device_id=unit), fc, timeout_s, what)
        registers = getattr(response, "registers", None)
        if response.function_code != fc or registers is None or len(registers) != count:
            got = len(registers) if registers is not None else "no"
            raise BadReply(f"{what}: reply has FC{response.function_code:02d} with {got} registers")
        return registers

    async def write_registers(self, unit: int, address: int, values: list[int], timeout_s: float) -> None:
        if not 1 <= len(values) <= MAX_WRITE_REGISTERS:
            raise ValueError(f"a write carries 1 to {MAX_WRITE_REGISTERS} registers (got {len(values)})")
        what = f"unit {unit} FC16 0x{address:04X}+{len(values)}"
        response = await self._execute(
            lambda: self.client.write_registers(address, values, device_id=unit), 16, timeout_s, what)
        if response.function_code != 16:
            raise BadReply(f"{what}: reply has FC{response.function_code:02d}")


class EndpointPool:
    """The persistent endpoints of one I/O loop, by (host, port, framing)."""

    def __init__(self) -> None:
        self._endpoints: dict[EndpointKey, Endpoint] = {}

    def get(self, host: str, port: int, framing: str, timeout_s: float = 1.0) -> Endpoint:
        key = EndpointKey(host, int(port), framing)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = Endpoint(host, port, framing, timeout_s)
        return endpoint

    def __len__(self) -> int:
        return len(self._endpoints)

    def __iter__(self):
        return iter(list(self._endpoints.values()))

    def close_all(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._endpoints.clear()


def due_blocks(profile: Profile, cycle_no: int, stagger: int, all_blocks: bool = False) -> list[Block]:
    """Blocks to read this cycle: every-cycle blocks, and ``every = N`` blocks one cycle in N.

    ``stagger`` (the meter id) spreads the slow blocks of many meters over the N cycles.
    """
    if all_blocks:
        return list(profile.blocks)
    return [b for b in profile.blocks if b.every == 1 or (cycle_no + stagger) % b.every == 0]


async def read_raw_blocks(endpoint: Endpoint, unit: int, blocks: list[Block], timeout_s: float,
                          into: dict[tuple[str, int], list[int]] | None = None) -> dict[tuple[str, int], list[int]]:
    """One request per block; blocks already in ``into`` (from an earlier attempt) are skipped."""
    raw = {} if into is None else into
    for block in blocks:
        key = (block.table, block.start)
        if key not in raw:
            raw[key] = await endpoint.read_registers(unit, block.table, block.start, block.count, timeout_s)
    return raw


async def read_profile(client: Endpoint | AsyncModbusTcpClient, unit: int, profile: Profile, *,
                       timeout_s: float = 1.0, blocks: list[Block] | None = None) -> dict:
    """Read every block of the profile (one request each) and decode; FieldError on failure.

    ``client`` is an Endpoint, or a connected pymodbus AsyncModbusTcpClient (wrapped in place).
    """
    endpoint = client if isinstance(client, Endpoint) else _wrap(client)
    raw = await read_raw_blocks(endpoint, unit, blocks or profile.blocks, timeout_s)
    try:
        return profile.decode(raw)
    except ValueError as exc:
        raise BadReply(str(exc)) from None


def _wrap(client: AsyncModbusTcpClient) -> Endpoint:
    endpoint = getattr(client, "_wattline_endpoint", None)
    if endpoint is None:
        params = client.ctx.comm_params
        framing = "rtu" if type(client.ctx.framer).__name__ == "FramerRTU" else "socket"
        endpoint = Endpoint(params.host, params.port, framing, client=client)
        client._wattline_endpoint = endpoint
    return endpoint
