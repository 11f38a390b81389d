"""The simulated RS485 bus behind a gateway port: a small Modbus server on asyncio streams, one transaction at a time.

Framings: "socket" = Modbus TCP (MBAP header, transaction id echoed, unit id = meter unit);
"rtu" = RTU over TCP (unit, PDU, CRC16 low byte first; requests with a bad CRC are dropped).
Functions FC03, FC04, FC06, FC16; exceptions 1 (illegal function), 2 (illegal data address),
3 (illegal data value: count 0 or > 125 for reads, > 123 for FC16, or a malformed PDU).
Unknown, broadcast (unit 0) or offline units get no reply at all, like a silent RS485 device.
A per-bus asyncio.Lock serialises transactions across all TCP clients connected to the port, in
the order the requests arrived; with baud emulation the lock is held for the wire time of request
and reply.

Injected bad replies: "garbage" replaces the meter's reply (the bytes that would cross the
RS485 bus: the PDU for socket framing under a correct MBAP header, the whole RTU frame for rtu)
by random bytes of the same length; "truncated" sends only the first half of the framed reply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from typing import Callable

from simulator.meters import ILLEGAL_FUNCTION, ILLEGAL_VALUE, SimMeter
from simulator.timing import RTU_OVERHEAD_BYTES, rtu_frame_seconds

log = logging.getLogger(__name__)

MAX_READ = 125
MAX_WRITE = 123
RTU_PARTIAL_FRAME_TIMEOUT_S = 0.5


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> bytes:
    """Modbus RTU CRC16 (poly 0xA001, init 0xFFFF), as the two bytes sent on the wire (low byte first)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return bytes((crc & 0xFF, crc >> 8))


def exception_pdu(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))


def handle_pdu(device: SimMeter, pdu: bytes, now: float) -> bytes:
    """Answer one request PDU for one device (the device is present and online)."""
    function = pdu[0]
    if function in (3, 4):
        if len(pdu) != 5:
            return exception_pdu(function, ILLEGAL_VALUE)
        address, count = struct.unpack_from(">HH", pdu, 1)
        if not 1 <= count <= MAX_READ:
            return exception_pdu(function, ILLEGAL_VALUE)
        data = device.read_registers(function, address, count, now)
        if isinstance(data, int):
            return exception_pdu(function, data)
        return bytes((function, len(data))) + data
    if function == 6:
        if len(pdu) != 5:
            return exception_pdu(function, ILLEGAL_VALUE)
        address, value = struct.unpack_from(">HH", pdu, 1)
        error = device.write_register(address, value, now)
        return exception_pdu(function, error) if error else pdu
    if function == 16:
        if len(pdu) < 6:
            return exception_pdu(function, ILLEGAL_VALUE)
        address, count, byte_count = struct.unpack_from(">HHB", pdu, 1)
        if not 1 <= count <= MAX_WRITE or byte_count != 2 * count or len(pdu) != 6 + byte_count:
            return exception_pdu(function, ILLEGAL_VALUE)
        values = list(struct.unpack_from(f">{count}H", pdu, 6))
        error = device.write_registers(address, values, now)
        return exception_pdu(function, error) if error else pdu[:5]
    return exception_pdu(function, ILLEGAL_FUNCTION)


def rtu_request_length(buffer: bytes | bytearray) -> int | None:
    """Length of the RTU request at the start of `buffer`, or None when more bytes are needed.

    Unknown function codes cannot be delimited without line silence; whatever has arrived is
    taken as the frame (clients write one request per TCP segment).
    """
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in (3, 4, 6):
        return 8 if len(buffer) >= 8 else None
    if function == 16:
        if len(buffer) < 7:
            return None
        length = 9 + buffer[6]
        return length if len(buffer) >= length else None
    return len(buffer) if len(buffer) >= 4 else None


class SimBus:
    """One RS485 bus behind one gateway port."""

    def __init__(self, gateway: str, bus_no: int, host: str, port: int, framing: str, baud: int,
                 devices: dict[int, SimMeter], clock: Callable[[], float]):
        self.gateway = gateway
        self.bus_no = bus_no
        self.host = host
        self.port = port
        self.framing = framing
        self.baud = baud
        self.devices = devices
        self.clock = clock
        self.emulated_baud: int | None = None
        self.lock = asyncio.Lock()
        self.transactions = 0
        self.wire_s = 0.0         # physical bus time of every transaction so far at the bus's baud (emulated or not)
        self.waiting = 0          # requests waiting for the line; asyncio.Lock serves them first come, first served
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def is_open(self) -> bool:
        return self._server is not None

    async def open(self) -> None:
        if self._server is None:
            if not self._tasks:
                self.lock = asyncio.Lock()  # bound to the loop serving now (a field may be restarted on a new loop)
            handler = self._serve_socket if self.framing == "socket" else self._serve_rtu
            self._server = await asyncio.start_server(handler, self.host, self.port, reuse_address=True)

    async def close(self) -> None:
        """Stop listening and drop every client connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                log.warning("bus %s/%d: server did not close in time", self.gateway, self.bus_no)

    # ------------------------------------------------------------ one transaction
    async def _transact(self, unit: int, pdu: bytes) -> tuple[bytes | None, SimMeter | None]:
        """Hold the bus for one request and its reply; None when the unit stays silent."""
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1
        try:
            self.transactions += 1
            device = self.devices.get(unit) if unit else None
            reply = None
            if device is not None and not device.offline:
                try:
                    reply = handle_pdu(device, pdu, self.clock())
                except Exception:  # a model bug must not take the bus down; the meter just stays silent
                    log.exception("meter %s failed to answer %s", device.address, pdu.hex())
                    reply = None
            baud = self.emulated_baud or self.baud
            seconds = rtu_frame_seconds(len(pdu) + RTU_OVERHEAD_BYTES, baud)
            if reply is not None:
                seconds += rtu_frame_seconds(len(reply) + RTU_OVERHEAD_BYTES, baud)
            self.wire_s += seconds
            if self.emulated_baud:
                await asyncio.sleep(seconds)
            return reply, (device if reply is not None else None)
        finally:
            self.lock.release()

    def _track(self, writer: asyncio.StreamWriter) -> asyncio.Task:
        task = asyncio.current_task()
        self._writers.add(writer)
        self._tasks.add(task)
        return task

    def _untrack(self, writer: asyncio.StreamWriter, task: asyncio.Task) -> None:
        self._writers.discard(writer)
        self._tasks.discard(task)
        writer.close()

    # ------------------------------------------------------------ Modbus TCP
    async def _serve_socket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._track(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                transaction, protocol, length, unit = struct.unpack(">HHHB", header)
                if not 2 <= length <= 254:
                    break  # not Modbus TCP: drop the connection rather than guess where the next frame starts
                pdu = await reader.readexactly(length - 1)
                if protocol != 0:
                    continue
                reply, device = await self._transact(unit, pdu)
                if reply is None:
                    continue
                bad = device.take_bad_reply()
                if bad == "garbage":
                    reply = os.urandom(len(reply))
                adu = struct.pack(">HHHB", transaction, 0, len(reply) + 1, unit) + reply
                if bad == "truncated":
                    adu = adu[:max(1, len(adu) // 2)]
                writer.write(adu)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._untrack(writer, task)

    # ------------------------------------------------------------ RTU over TCP
    async def _serve_rtu(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._track(writer)
        buffer = bytearray()
        try:
            while True:
                if buffer:
                    try:
                        chunk = await asyncio.wait_for(reader.read(512), RTU_PARTIAL_FRAME_TIMEOUT_S)
                    except asyncio.TimeoutError:
                        buffer.clear()  # line silence ends a partial frame: discard it
                        continue
                else:
                    chunk = await reader.read(512)
                if not chunk:
                    break
                buffer += chunk
                while buffer:
                    length = rtu_request_length(buffer)
                    if length is None:
                        break
                    frame = bytes(buffer[:length])
                    del buffer[:length]
                    if crc16(frame[:-2]) != frame[-2:]:
                        buffer.clear()  # resynchronise on the next request
                        break
                    reply, device = await self._transact(frame[0], frame[1:-2])
                    if reply is None:
                        continue
                    adu = bytes((frame[0],)) + reply
                    adu += crc16(adu)
                    bad = device.take_bad_reply()
                    if bad == "garbage":
                        adu = os.urandom(len(adu))
                    elif bad == "truncated":
                        adu = adu[:max(1, len(adu) // 2)]
                    writer.write(adu)
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._untrack(writer, task)
