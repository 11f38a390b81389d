"""The simulated field over real loopback sockets, checked with pymodbus as an independent client."""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from simulator import secure
from simulator.field import Field, run_field_in_thread
from simulator.modbus import crc16
from simulator.secure import Command, RelayAction, Result
from simulator.site import (TOPOLOGY_KEYS, BusSpec, GatewaySpec, MeterSpec, SiteSpec, demo_site,
                            find_free_base_port, scale_site)
from simulator.tariff import DEFAULT_TOU_SEGMENTS, Tariff
from simulator.timing import rtu_frame_seconds, transaction_seconds

REPO = Path(__file__).resolve().parents[1]
FRAMERS = {"socket": FramerType.SOCKET, "rtu": FramerType.RTU}
# Wednesday 2026-11-18 20:00 China time: a weekday evening, the dormitories' peak (and the sharp TOU segment).
EVENING = calendar.timegm((2026, 11, 18, 12, 0, 0))

ROOM, LOW, EMPTY, THREE_PHASE = "202600000001", "202600000002", "202600000003", "202600000004"
MASTER, TTU = "202600000101", "202600000102"


class FakeClock:
    def __init__(self, t: float = EVENING):
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def small_site(base_port: int, framing: str = "socket") -> SiteSpec:
    """Two buses on one gateway: four rooms, then the building's master meter and area terminal."""
    room = dict(building="Test Hall", area="Area T", character=1.0, pf=0.95)
    rooms = BusSpec(bus_no=1, port=base_port, meters=[
        MeterSpec(ROOM, 1, "acrel-ddsy1352", floor=1, room="T-101", balance_fen=10000, purchase_count=4,
                  command_seq=2, **room),
        MeterSpec(LOW, 2, "acrel-ddsy1352", floor=1, room="T-102", balance_fen=5, purchase_count=1, **room),
        MeterSpec(EMPTY, 3, "acrel-ddsy1352", floor=1, room="T-103", prepaid_enabled=False, **room),
        MeterSpec(THREE_PHASE, 4, "acrel-dtsy1352", floor=1, room="T-104", balance_fen=50000, purchase_count=9,
                  energy_kwh=(10.0, 20.0, 30.0, 40.0), **room),
    ])
    area = BusSpec(bus_no=2, port=base_port + 1, meters=[
        MeterSpec(MASTER, 1, "eastron-sdm630", building="Test Hall", area="Area T", line_loss=0.04,
                  energy_kwh=(0.0, 0.0, 5000.0, 0.0)),
        MeterSpec(TTU, 2, "wattline-ttu", building="Test Hall", area="Area T", line_loss=0.01,
                  energy_kwh=(0.0, 0.0, 6000.0, 0.0)),
    ])
    return SiteSpec("test", [GatewaySpec("GW-T", framing=framing, buses=[rooms, area])])


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def start_field(tmp_path, clock):
    """start_field(framing=..., **Field kwargs) -> FieldThread on free loopback ports; stopped at teardown."""
    running = []

    def start(framing: str = "socket", **kwargs):
        kwargs.setdefault("clock", clock)
        site = small_site(find_free_base_port(2), framing)
        thread = run_field_in_thread(site, **kwargs)
        running.append(thread)
        thread.port = site.gateways[0].buses[0].port
        thread.framer = FRAMERS[framing]
        return thread

    yield start
    for thread in running:
        thread.stop()


def client(port: int, framer=FramerType.SOCKET, timeout: float = 1.0) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient("127.0.0.1", port=port, framer=framer, timeout=timeout, retries=0)


async def read(port, address, count, unit, framer=FramerType.SOCKET, table="holding"):
    c = client(port, framer)
    assert await c.connect()
    try:
        call = c.read_holding_registers if table == "holding" else c.read_input_registers
        return await call(address, count=count, device_id=unit)
    finally:
        c.close()


def read_sync(ft, address, count, unit, bus_offset=0, table="holding"):
    response = asyncio.run(read(ft.port + bus_offset, address, count, unit, ft.framer, table))
    assert not response.isError(), response
    return response.registers


def u32(registers, offset):
    return (registers[offset] << 16) | registers[offset + 1]


def floats(registers):
    return list(struct.unpack(f">{len(registers) // 2}f", struct.pack(f">{len(registers)}H", *registers)))


def realtime(ft, unit=1):
    r = read_sync(ft, 0x0200, 48, unit)
    return {"voltage_a": r[1] / 10, "current_a": r[4] / 100, "power_total": r[10] / 1000,
            "pf_total": r[18] / 1000, "energy_total": u32(r, 0x15) / 100,
            "energies": [u32(r, o) / 100 for o in (0x17, 0x19, 0x1B, 0x1D)],
            "balance_fen": struct.unpack(">i", struct.pack(">I", u32(r, 0x1F)))[0],
            "purchase_count": r[0x21], "relay_closed": bool(r[0x24] >> 13 & 1), "overload": bool(r[0x24] >> 4 & 1),
            "arrears": bool(r[0x24] >> 5 & 1), "alarm1": bool(r[0x24] >> 6 & 1), "alarm2": bool(r[0x24] >> 7 & 1),
            "keep_power": bool(r[0x25] & 1), "prepaid_enabled": bool(r[0x25] >> 1 & 1),
            "forced_trip": bool(r[0x25] >> 2 & 1), "command_seq": r[0x26], "frequency": r[0x2E] / 100, "raw": r}


def seal(ft, address, command, counter, payload, issued_at=None, key=secure.TEST_MASTER_KEY):
    issued_at = int(ft.field.clock()) if issued_at is None else issued_at
    return secure.seal_frame(key, address, command, counter, issued_at, payload)


async def send_frame(port, unit, frame, framer=FramerType.SOCKET):
    """Write a frame into the mailbox and wait for its result: (result, purchase_count, command_seq, balance)."""
    c = client(port, framer)
    assert await c.connect()
    try:
        written = await c.write_registers(0x0300, secure.frame_to_registers(frame), device_id=unit)
        assert not written.isError(), written
        for _ in range(100):
            r = (await c.read_holding_registers(0x0340, count=5, device_id=unit)).registers
            if r[0] != Result.BUSY:
                balance = struct.unpack(">i", struct.pack(">I", u32(r, 3)))[0]
                return Result(r[0]), r[1], r[2], balance
            await asyncio.sleep(0.01)
        raise AssertionError("the meter stayed BUSY")
    finally:
        c.close()


def command(ft, address, unit, frame, bus_offset=0):
    return asyncio.run(send_frame(ft.port + bus_offset, unit, frame, ft.framer))


def raw_exchange(port, request: bytes, timeout=0.5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        try:
            return s.recv(1024)
        except socket.timeout:
            return b""


def mbap(transaction, unit, pdu):
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


# ---------------------------------------------------------------- site layouts

def test_demo_site_has_480_room_meters_in_4_buildings_on_16_buses():
    site = demo_site()
    rows = [r for r in site.topology_rows() if r["profile"] == "acrel-ddsy1352"]
    assert len(rows) == 480
    assert {r["building"] for r in rows} == {f"Building {n}" for n in range(1, 5)}
    assert len({(r["gateway"], r["bus"]) for r in rows}) == 16
    assert {r["unit"] for r in rows} == set(range(1, 31))
    assert {r["floor"] for r in rows} == set(range(1, 7))


def test_demo_site_has_a_master_meter_and_a_terminal_per_area_on_the_area_gateway():
    rows = [r for r in demo_site().topology_rows() if r["profile"] in ("eastron-sdm630", "wattline-ttu")]
    assert len(rows) == 8
    assert {r["gateway"] for r in rows} == {"GW-AREA"}
    assert {r["area"] for r in rows} == {f"Area B{n}" for n in range(1, 5)}


def test_demo_site_addresses_rooms_and_ports_are_unique():
    site = demo_site(base_port=15020)
    rows = site.topology_rows()
    assert len({r["meter_address"] for r in rows}) == len(rows) == 488
    rooms = [r["room"] for r in rows if r["room"]]
    assert len(set(rooms)) == len(rooms)
    assert sorted(site.ports()) == list(range(15020, 15040))
    assert all(len(r["meter_address"]) == 12 and r["meter_address"].isdigit() for r in rows)


def test_demo_site_initial_balances_cover_normal_alarm_and_arrears_states_and_unopened_rooms():
    meters = [m for m in demo_site().meters() if m.profile == "acrel-ddsy1352"]
    opened = [m for m in meters if m.prepaid_enabled]
    assert 0.05 < 1 - len(opened) / len(meters) < 0.15
    assert any(m.balance_fen <= 0 for m in opened)
    assert any(0 < m.balance_fen <= m.alarm2_fen for m in opened)
    assert any(m.alarm2_fen < m.balance_fen <= m.alarm1_fen for m in opened)
    assert any(m.balance_fen > m.alarm1_fen for m in opened)
    assert all(m.balance_fen == 0 for m in meters if not m.prepaid_enabled)


def test_topology_rows_have_exactly_the_contract_keys():
    for row in demo_site().topology_rows():
        assert tuple(row) == TOPOLOGY_KEYS


def test_scale_site_has_10080_meters_on_336_ports():
    site = scale_site()
    assert len(site.meters()) == 10080
    assert len(set(site.ports())) == 336


def test_frame_time_counts_11_bits_per_character_plus_3_5_characters_of_silence():
    assert rtu_frame_seconds(8, 9600) == pytest.approx((8 + 3.5) * 11 / 9600)
    # FC03 x48: request unit+5+CRC = 8 bytes, reply unit+2+96+CRC = 101 bytes
    assert transaction_seconds(5, 98, 9600) == pytest.approx((8 + 101 + 7) * 11 / 9600)


# ---------------------------------------------------------------- register maps over both framings

@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_prepaid_meter_realtime_block_reads_plausible_values_at_the_spec_addresses(start_field, framing):
    ft = start_field(framing)
    r = realtime(ft, unit=1)
    assert r["raw"][0] == 7
    assert 200 < r["voltage_a"] < 240
    assert 0 < r["power_total"] < 5
    assert r["current_a"] == pytest.approx(r["power_total"] * 1000 / (r["voltage_a"] * r["pf_total"]), rel=0.05)
    assert 0.85 <= r["pf_total"] <= 0.99
    assert 49.9 <= r["frequency"] <= 50.1
    assert r["balance_fen"] == 10000 and r["purchase_count"] == 4 and r["command_seq"] == 2
    assert r["relay_closed"] and r["prepaid_enabled"] and not r["arrears"]


@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_prepaid_meter_configuration_block_reads_limits_prices_and_mode(start_field, framing):
    ft = start_field(framing)
    c = read_sync(ft, 0x0046, 29, 1)
    assert (u32(c, 0), u32(c, 2), u32(c, 4)) == (2000, 500, 0)
    assert [u32(c, 0x59 - 0x46 + 2 * i) for i in range(4)] == [0, 0, 6000, 0]
    assert c[0x61 - 0x46] == 6000 and c[0x62 - 0x46] == 0


def test_single_phase_meter_reports_zero_on_phases_b_and_c(start_field):
    r = realtime(start_field(), unit=1)["raw"]
    assert r[2] == r[3] == r[5] == r[6] == r[8] == r[9] == r[0x10] == r[0x11] == 0


def test_three_phase_meter_reports_type_5_and_fills_every_phase(start_field):
    r = realtime(start_field(), unit=4)["raw"]
    assert r[0] == 5
    assert all(r[i] > 2000 for i in (1, 2, 3)) and all(r[i] > 0 for i in (4, 5, 6, 7, 8, 9))
    assert r[10] == pytest.approx(r[7] + r[8] + r[9], abs=3)


@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_master_meter_input_registers_are_float32_at_the_spec_addresses(start_field, framing):
    ft = start_field(framing)
    main = floats(read_sync(ft, 0x0000, 76, 1, bus_offset=1, table="input"))
    thd = floats(read_sync(ft, 0x00EA, 6, 1, bus_offset=1, table="input"))
    assert all(200 < v < 250 for v in main[0:3])                 # voltage 0x0000/02/04
    assert all(a > 0 for a in main[3:6])                          # current 0x0006/08/0A
    assert main[0x34 // 2] == pytest.approx(sum(main[6:9]), rel=1e-3)  # power_total 0x0034 in W
    assert 0.8 < main[0x3E // 2] <= 1.0                          # pf_total
    assert 49.9 < main[0x46 // 2] < 50.1                         # frequency
    assert main[0x48 // 2] == pytest.approx(5000.0, abs=1)       # energy import kWh
    assert all(1 < v < 6 for v in thd)


def test_master_meter_power_is_its_rooms_plus_the_line_loss(start_field):
    ft = start_field()
    main = floats(read_sync(ft, 0x0000, 76, 1, bus_offset=1, table="input"))
    rooms_w = sum(ft.field.meter(a).power_kw for a in (ROOM, LOW, EMPTY, THREE_PHASE)) * 1000
    assert main[0x34 // 2] == pytest.approx(rooms_w * 1.04, rel=0.02)


@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_terminal_float_and_status_blocks_read_at_the_spec_addresses(start_field, framing):
    ft = start_field(framing)
    f = floats(read_sync(ft, 0x0000, 42, 2, bus_offset=1))
    status = read_sync(ft, 0x0040, 5, 2, bus_offset=1)
    voltage, power, pf, frequency, energy, humidity = f[0], f[7], f[9], f[10], f[17], f[20]
    assert 200 < voltage < 250 and power > 0 and 0.8 < pf <= 1.0 and 49.9 < frequency < 50.1
    assert energy == pytest.approx(6000.0, abs=1) and 0 < humidity < 100
    assert status[:2] == [3, 5]                     # tap_position, tap_count
    assert status[3] == 1                           # capacity_mode large
    assert status[4] >> 8 == 0b00111111             # outlets 1-6 closed


def test_a_read_reaching_outside_the_map_answers_illegal_data_address(start_field):
    ft = start_field()
    for address, count in ((0x0200, 49), (0x0300, 1), (0x0062, 2), (0x1000, 1)):
        response = asyncio.run(read(ft.port, address, count, 1))
        assert response.isError() and response.exception_code == 2, (hex(address), count)


def test_input_registers_of_a_prepaid_meter_answer_illegal_data_address(start_field):
    response = asyncio.run(read(start_field().port, 0x0200, 2, 1, table="input"))
    assert response.isError() and response.exception_code == 2


@pytest.mark.parametrize("count", [0, 126])
def test_a_read_of_zero_or_more_than_125_registers_answers_illegal_value(start_field, count):
    ft = start_field()
    reply = raw_exchange(ft.port, mbap(7, 1, struct.pack(">BHH", 3, 0x0200, count)))
    assert reply == mbap(7, 1, bytes((0x83, 0x03)))


def test_an_unsupported_function_answers_illegal_function(start_field):
    ft = start_field()
    reply = raw_exchange(ft.port, mbap(9, 1, struct.pack(">BHH", 1, 0, 8)))
    assert reply == mbap(9, 1, bytes((0x81, 0x01)))


def test_writing_a_single_register_is_refused_because_settings_go_through_the_mailbox(start_field):
    ft = start_field()
    reply = raw_exchange(ft.port, mbap(3, 1, struct.pack(">BHH", 6, 0x0046, 1)))
    assert reply == mbap(3, 1, bytes((0x86, 0x02)))


def test_rtu_request_with_a_bad_crc_gets_no_reply_and_the_next_good_one_does(start_field):
    ft = start_field("rtu")
    request = bytes((1,)) + struct.pack(">BHH", 3, 0x0200, 1)
    with socket.create_connection(("127.0.0.1", ft.port), timeout=0.5) as s:
        s.sendall(request + bytes((crc16(request)[0] ^ 0xFF, crc16(request)[1])))
        with pytest.raises(socket.timeout):
            s.recv(64)
        s.sendall(request + crc16(request))
        reply = s.recv(64)
    assert reply[:3] == bytes((1, 3, 2)) and reply[3:5] == b"\x00\x07" and reply[5:] == crc16(reply[:5])


def test_an_absent_unit_stays_silent(start_field):
    ft = start_field()
    assert raw_exchange(ft.port, mbap(1, 17, struct.pack(">BHH", 3, 0x0200, 1))) == b""


def test_a_malformed_mbap_header_drops_only_that_connection(start_field):
    ft = start_field()
    assert raw_exchange(ft.port, struct.pack(">HHHB", 1, 0, 999, 1) + b"\x03") == b""
    assert realtime(ft)["raw"][0] == 7


def test_disconnected_clients_leave_no_connection_tasks_behind(start_field):
    ft = start_field()
    for _ in range(5):
        realtime(ft)
        with socket.create_connection(("127.0.0.1", ft.port), timeout=1) as s:
            s.sendall(b"\x00\x01")  # half a header, then gone
    bus = ft.field.bus("GW-T", 1)
    for _ in range(50):
        if not bus._tasks:
            break
        time.sleep(0.02)
    assert not bus._tasks and not bus._writers


def test_clients_on_one_bus_are_served_one_transaction_at_a_time_without_mixing_replies(start_field):
    ft = start_field()
    ft.field.set_bus_slow("GW-T", 1, 115200)

    async def poll(unit):
        c = client(ft.port)
        assert await c.connect()
        try:
            return [(await c.read_holding_registers(0x0200, count=1, device_id=unit)).registers[0] for _ in range(5)]
        finally:
            c.close()

    async def main():
        return await asyncio.gather(poll(1), poll(4), poll(2))

    assert asyncio.run(main()) == [[7] * 5, [5] * 5, [7] * 5]
    assert ft.field.bus("GW-T", 1).transactions == 15


# ---------------------------------------------------------------- mailbox and secure frames

@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_recharge_with_the_next_purchase_count_is_applied_and_read_back(start_field, framing):
    ft = start_field(framing)
    result = command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000)))
    assert result == (Result.APPLIED, 5, 2, 15000)
    assert realtime(ft)["balance_fen"] == 15000


def test_a_resent_recharge_answers_already_applied_and_credits_once(start_field):
    ft = start_field()
    frame = seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000))
    command(ft, ROOM, 1, frame)
    assert command(ft, ROOM, 1, frame)[0] == Result.ALREADY_APPLIED
    assert ft.field.meter(ROOM).balance_fen == 15000 and ft.field.meter(ROOM).purchase_count == 5


def test_a_recharge_with_the_current_count_but_another_amount_is_a_count_mismatch(start_field):
    ft = start_field()
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000)))
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(6000)))[0] == \
        Result.COUNT_MISMATCH


@pytest.mark.parametrize("counter", [3, 4, 6])
def test_a_recharge_with_a_wrong_purchase_count_answers_count_mismatch(start_field, counter):
    ft = start_field()
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, counter, secure.recharge_payload(5000)))[0] == \
        Result.COUNT_MISMATCH
    assert ft.field.meter(ROOM).balance_fen == 10000


def test_a_frame_with_a_bad_mac_answers_bad_frame_and_changes_nothing(start_field):
    ft = start_field()
    frame = bytearray(seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000)))
    frame[-1] ^= 0x80
    assert command(ft, ROOM, 1, bytes(frame)) == (Result.BAD_FRAME, 4, 2, 10000)


def test_a_frame_sealed_with_another_master_key_answers_bad_frame(start_field):
    ft = start_field()
    frame = seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000), key=bytes(range(24)))
    assert command(ft, ROOM, 1, frame)[0] == Result.BAD_FRAME


def test_a_frame_for_another_meter_answers_bad_frame(start_field):
    ft = start_field()
    assert command(ft, ROOM, 1, seal(ft, LOW, Command.RECHARGE, 5, secure.recharge_payload(5000)))[0] == \
        Result.BAD_FRAME


def test_a_refund_larger_than_the_balance_answers_insufficient(start_field):
    ft = start_field()
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.REFUND, 5, secure.recharge_payload(10001))) == \
        (Result.INSUFFICIENT, 4, 2, 10000)


def test_a_command_with_a_used_sequence_answers_replayed(start_field):
    ft = start_field()
    trip = secure.relay_payload(RelayAction.TRIP)
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 3, trip))[0] == Result.APPLIED
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 3, trip))[0] == Result.REPLAYED
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 2, secure.relay_payload(RelayAction.CLOSE)))[0] == \
        Result.REPLAYED


def test_a_frame_issued_more_than_a_day_from_the_meter_clock_answers_expired(start_field):
    ft = start_field()
    stale = int(ft.field.clock()) - 24 * 3600 - 60
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000), stale))[0] == \
        Result.EXPIRED


@pytest.mark.parametrize("cmd, payload", [(Command.RECHARGE, b"\x00\x01"), (Command.RELAY, b"\x07"),
                                          (Command.SET_LIMITS, b"\x00" * 15), (Command.TAP_SET, b"\x00\x01")])
def test_a_malformed_or_foreign_payload_answers_invalid_payload(start_field, cmd, payload):
    ft = start_field()
    counter = 5 if cmd == Command.RECHARGE else 3
    assert command(ft, ROOM, 1, seal(ft, ROOM, cmd, counter, payload))[0] == Result.INVALID_PAYLOAD


def test_a_frame_written_while_the_previous_is_processing_answers_busy(start_field):
    ft = start_field()
    first = seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(100))
    second = seal(ft, ROOM, Command.RECHARGE, 6, secure.recharge_payload(100))

    async def main():
        c = client(ft.port)
        await c.connect()
        try:
            await c.write_registers(0x0300, secure.frame_to_registers(first), device_id=1)
            await c.write_registers(0x0300, secure.frame_to_registers(second), device_id=1)
            busy = (await c.read_holding_registers(0x0340, count=5, device_id=1)).registers[0]
            await asyncio.sleep(0.3)
            done = (await c.read_holding_registers(0x0340, count=5, device_id=1)).registers
            return busy, done
        finally:
            c.close()

    busy, done = asyncio.run(main())
    assert busy == Result.BUSY
    assert done[:2] == [Result.APPLIED, 5]  # the second frame was discarded
    assert ft.field.meter(ROOM).balance_fen == 10100


def readback(ft, unit=1, bus_offset=0):
    """The 8 read-back registers as (result, purchase_count, command_seq, balance_fen, command, counter)."""
    r = read_sync(ft, 0x0340, 8, unit, bus_offset)
    return Result(r[0]), r[1], r[2], struct.unpack(">i", struct.pack(">I", u32(r, 3)))[0], r[5], u32(r, 6)


def test_the_read_back_names_the_command_code_and_counter_of_the_frame_it_answers(start_field):
    ft = start_field()
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000)))
    assert readback(ft) == (Result.APPLIED, 5, 2, 15000, Command.RECHARGE, 5)


def test_a_refused_frame_is_named_too_because_it_was_authentic(start_field):
    ft = start_field()
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 70000, secure.relay_payload(RelayAction.TRIP)))
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 2, secure.relay_payload(RelayAction.CLOSE)))
    assert readback(ft) == (Result.REPLAYED, 4, 70000 & 0xFFFF, 10000, Command.RELAY, 2)


def test_a_frame_that_fails_its_mac_names_no_command_and_no_counter(start_field):
    ft = start_field()
    frame = bytearray(seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000)))
    frame[-1] ^= 0x80
    command(ft, ROOM, 1, bytes(frame))
    assert readback(ft) == (Result.BAD_FRAME, 4, 2, 10000, 0, 0)


def test_junk_written_after_an_applied_recharge_replaces_the_answer_but_not_the_counts(start_field):
    ft = start_field()
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(700)))
    command(ft, ROOM, 1, os.urandom(40))          # a second master writes junk into the mailbox
    assert readback(ft) == (Result.BAD_FRAME, 5, 2, 10700, 0, 0)


def test_the_area_terminal_names_the_frame_its_result_answers(start_field):
    ft = start_field()
    command(ft, TTU, 2, seal(ft, TTU, Command.TAP_SET, 1, secure.tap_payload(4)), bus_offset=1)
    assert readback(ft, 2, bus_offset=1)[0::4] == (Result.APPLIED, Command.TAP_SET)
    assert readback(ft, 2, bus_offset=1)[5] == 1


def test_a_mailbox_version_1_meter_reads_zero_where_the_answered_frame_would_be(start_field):
    ft = start_field()
    ft.field.set_mailbox_version(ROOM, 1)
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000))) == \
        (Result.APPLIED, 5, 2, 15000)
    assert readback(ft) == (Result.APPLIED, 5, 2, 15000, 0, 0)


def test_a_meter_without_a_mailbox_cannot_be_made_version_1(start_field):
    ft = start_field()
    with pytest.raises(ValueError, match="no command mailbox"):
        ft.field.set_mailbox_version(MASTER, 1)


def test_a_recharge_opens_prepaid_control_on_an_unopened_meter(start_field):
    ft = start_field()
    assert command(ft, EMPTY, 3, seal(ft, EMPTY, Command.RECHARGE, 1, secure.recharge_payload(2000)))[0] == \
        Result.APPLIED
    r = realtime(ft, 3)
    assert r["prepaid_enabled"] and r["balance_fen"] == 2000


def test_set_limits_is_applied_to_the_configuration_block(start_field):
    ft = start_field()
    payload = secure.limits_payload(3000, 800, 2500, 1000)
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.SET_LIMITS, 3, payload))[0] == Result.APPLIED
    c = read_sync(ft, 0x0046, 29, 1)
    assert (u32(c, 0), u32(c, 2), u32(c, 4), c[0x61 - 0x46]) == (3000, 800, 1000, 2500)


def test_set_tariff_time_of_use_is_applied_and_charges_the_sharp_price_in_the_evening(start_field, clock):
    ft = start_field()
    tariff = Tariff(1, (20000, 8000, 6000, 3500), DEFAULT_TOU_SEGMENTS)
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.SET_TARIFF, 3, secure.tariff_payload(tariff)))[0] == \
        Result.APPLIED
    meter = ft.field.meter(ROOM)
    before_fen, before_kwh = meter.balance_fen - meter.fen_fraction, meter.energy_sharp
    clock.advance(600)
    realtime(ft)
    charged = before_fen - (meter.balance_fen - meter.fen_fraction)
    assert charged == pytest.approx((meter.energy_sharp - before_kwh) * 200, rel=1e-6)
    assert read_sync(ft, 0x0046, 29, 1)[0x62 - 0x46] == 1


def test_a_tiered_tariff_charges_the_higher_price_once_the_month_passes_the_first_bracket(start_field, clock):
    ft = start_field()
    tariff = Tariff(2, (0, 0, 5000, 0), (), ((1, 5000), (0xFFFFFFFF, 20000)))
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.SET_TARIFF, 3, secure.tariff_payload(tariff)))[0] == \
        Result.APPLIED
    meter = ft.field.meter(ROOM)
    start_fen, start_kwh = meter.balance_fen - meter.fen_fraction, meter.energy_total
    clock.advance(2 * 3600)
    realtime(ft)
    used = meter.energy_total - start_kwh
    charged = start_fen - (meter.balance_fen - meter.fen_fraction)
    assert used > 1.5
    assert charged == pytest.approx(50 * 1 + 200 * (used - 1), abs=15)


def test_the_monthly_tier_counter_restarts_at_the_start_of_a_month(start_field, clock):
    ft = start_field()
    meter = ft.field.meter(THREE_PHASE)
    clock.advance(12 * 86400 + 12 * 3600)  # 2026-12-01 08:00 China time
    realtime(ft, 4)
    assert meter.energy_total - 100.0 > 100
    assert 0 < meter.monthly_kwh < 30


# ---------------------------------------------------------------- relay and fee control

def test_a_refund_of_the_whole_balance_trips_the_relay_and_a_recharge_closes_it(start_field):
    ft = start_field()
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.REFUND, 5, secure.recharge_payload(10000)))[0] == \
        Result.APPLIED
    tripped = realtime(ft)
    assert not tripped["relay_closed"] and tripped["arrears"] and tripped["power_total"] == 0
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 6, secure.recharge_payload(3000)))[0] == \
        Result.APPLIED
    assert realtime(ft)["relay_closed"]


def test_consumption_down_to_zero_trips_the_relay_in_arrears(start_field, clock):
    ft = start_field()
    assert realtime(ft, 2)["relay_closed"]
    clock.advance(3600)
    r = realtime(ft, 2)
    assert r["balance_fen"] == 0 and r["arrears"] and r["alarm2"] and not r["relay_closed"]


def test_energy_stops_accruing_while_the_relay_is_tripped(start_field, clock):
    ft = start_field()
    clock.advance(3600)
    tripped = realtime(ft, 2)["energy_total"]
    clock.advance(3600)
    assert realtime(ft, 2)["energy_total"] == tripped


def test_keep_power_holds_the_relay_closed_in_arrears_and_the_balance_goes_negative(start_field, clock):
    ft = start_field()
    assert command(ft, LOW, 2, seal(ft, LOW, Command.RELAY, 1, secure.relay_payload(RelayAction.KEEP_POWER_ON)))[0] \
        == Result.APPLIED
    clock.advance(3 * 3600)
    r = realtime(ft, 2)
    assert r["keep_power"] and r["relay_closed"] and r["arrears"] and r["balance_fen"] < 0


def test_keep_power_off_lets_a_meter_in_arrears_trip(start_field, clock):
    ft = start_field()
    command(ft, LOW, 2, seal(ft, LOW, Command.RELAY, 1, secure.relay_payload(RelayAction.KEEP_POWER_ON)))
    clock.advance(3600)
    command(ft, LOW, 2, seal(ft, LOW, Command.RELAY, 2, secure.relay_payload(RelayAction.KEEP_POWER_OFF)))
    r = realtime(ft, 2)
    assert not r["keep_power"] and not r["relay_closed"]


def test_a_remote_trip_opens_the_relay_until_a_remote_close(start_field):
    ft = start_field()
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 3, secure.relay_payload(RelayAction.TRIP)))
    r = realtime(ft)
    assert not r["relay_closed"] and r["forced_trip"] and r["command_seq"] == 3
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 4, secure.relay_payload(RelayAction.CLOSE)))
    assert realtime(ft)["relay_closed"]


def test_power_above_the_overload_limit_trips_with_the_overload_bit(start_field, clock):
    ft = start_field()
    command(ft, ROOM, 1, seal(ft, ROOM, Command.SET_LIMITS, 3, secure.limits_payload(2000, 500, 100, 0)))
    clock.advance(60)
    r = realtime(ft)
    assert r["overload"] and not r["relay_closed"]


def test_an_overdraft_lets_the_balance_go_negative_down_to_the_limit_before_tripping(start_field, clock):
    ft = start_field()
    command(ft, LOW, 2, seal(ft, LOW, Command.SET_LIMITS, 1, secure.limits_payload(2000, 500, 6000, 300)))
    clock.advance(24 * 3600)
    r = realtime(ft, 2)
    assert r["balance_fen"] == -300 and not r["relay_closed"]


def test_an_unopened_meter_does_no_fee_control(start_field, clock):
    ft = start_field()
    before = realtime(ft, 3)
    clock.advance(6 * 3600)
    after = realtime(ft, 3)
    assert after["energy_total"] > before["energy_total"]
    assert after["balance_fen"] == 0 and after["relay_closed"] and not after["arrears"]


def test_energy_registers_only_increase_over_a_day(start_field, clock):
    ft = start_field()
    seen = [realtime(ft, 4)["energies"]]
    for _ in range(24):
        clock.advance(3600)
        seen.append(realtime(ft, 4)["energies"])
    for earlier, later in zip(seen, seen[1:]):
        assert all(b >= a for a, b in zip(earlier, later))
    assert all(b > a for a, b in zip(seen[0], seen[-1]))  # a whole day touches every TOU segment


def test_energy_total_is_the_sum_of_the_tou_registers(start_field, clock):
    ft = start_field()
    clock.advance(5 * 3600)
    r = realtime(ft, 4)
    assert r["energy_total"] == pytest.approx(sum(r["energies"]), abs=0.05)


def test_time_sync_sets_the_meter_clock(start_field):
    ft = start_field()
    target = int(ft.field.clock()) + 3600
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.TIME_SYNC, 3, secure.time_sync_payload(target)))[0] == \
        Result.APPLIED
    assert ft.field.meter(ROOM).meter_time() == pytest.approx(target, abs=1)


# ---------------------------------------------------------------- transformer-area terminal

def test_terminal_tap_set_moves_the_tap_and_the_area_voltage(start_field):
    ft = start_field()
    before = floats(read_sync(ft, 0x0000, 2, 2, bus_offset=1))[0]
    result = command(ft, TTU, 2, seal(ft, TTU, Command.TAP_SET, 1, secure.tap_payload(5)), bus_offset=1)
    assert result[0] == Result.APPLIED and result[2] == 1
    assert read_sync(ft, 0x0040, 1, 2, bus_offset=1) == [5]
    assert floats(read_sync(ft, 0x0000, 2, 2, bus_offset=1))[0] > before + 5


def test_terminal_refuses_a_tap_position_it_does_not_have(start_field):
    ft = start_field()
    assert command(ft, TTU, 2, seal(ft, TTU, Command.TAP_SET, 1, secure.tap_payload(6)), bus_offset=1)[0] == \
        Result.INVALID_PAYLOAD


def test_terminal_breaker_command_opens_an_outlet_and_capacity_mode_switches(start_field):
    ft = start_field()
    command(ft, TTU, 2, seal(ft, TTU, Command.BREAKER, 1, secure.breaker_payload(2, 0)), bus_offset=1)
    command(ft, TTU, 2, seal(ft, TTU, Command.CAPACITY_MODE, 2, secure.capacity_mode_payload(0)), bus_offset=1)
    status = read_sync(ft, 0x0040, 5, 2, bus_offset=1)
    assert status[3] == 0 and status[4] >> 8 == 0b00111101


def test_terminal_refuses_money_commands(start_field):
    ft = start_field()
    assert command(ft, TTU, 2, seal(ft, TTU, Command.RECHARGE, 1, secure.recharge_payload(100)), bus_offset=1)[0] \
        == Result.INVALID_PAYLOAD


# ---------------------------------------------------------------- faults

def test_an_offline_meter_is_silent_and_answers_again_when_back(start_field):
    ft = start_field()
    ft.field.set_meter_offline(ROOM)
    with pytest.raises(ModbusException):
        asyncio.run(read(ft.port, 0x0200, 1, 1))
    assert realtime(ft, 2)["raw"][0] == 7  # the rest of the bus still answers
    ft.field.set_meter_offline(ROOM, False)
    assert realtime(ft)["raw"][0] == 7


def test_a_gateway_down_refuses_connections_and_recovers(start_field):
    ft = start_field()

    async def connects():
        c = client(ft.port, timeout=0.5)
        try:
            return await c.connect()
        finally:
            c.close()

    ft.field.set_gateway_down("GW-T")
    assert asyncio.run(connects()) is False
    ft.field.set_gateway_down("GW-T", False)
    assert realtime(ft)["raw"][0] == 7


def test_a_gateway_going_down_drops_open_connections(start_field):
    ft = start_field()
    with socket.create_connection(("127.0.0.1", ft.port), timeout=1) as s:
        s.sendall(mbap(1, 1, struct.pack(">BHH", 3, 0x0200, 1)))
        assert s.recv(64)
        ft.field.set_gateway_down("GW-T")
        assert s.recv(64) == b""


@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_injected_garbage_replies_fail_then_the_meter_answers_normally(start_field, framing):
    ft = start_field(framing)
    ft.field.inject_bad_replies(ROOM, "garbage", 2)

    async def main():
        outcomes = []
        for _ in range(3):
            c = client(ft.port, ft.framer, timeout=0.3)
            await c.connect()
            try:
                r = await c.read_holding_registers(0x0200, count=48, device_id=1)
                outcomes.append(not r.isError() and len(r.registers) == 48 and r.registers[0] == 7)
            except ModbusException:
                outcomes.append(False)
            finally:
                c.close()
        return outcomes

    assert asyncio.run(main()) == [False, False, True]


def test_an_injected_truncated_reply_is_cut_short(start_field):
    ft = start_field()
    ft.field.inject_bad_replies(ROOM, "truncated", 1)
    full_length = 9 + 2 * 48
    with socket.create_connection(("127.0.0.1", ft.port), timeout=0.3) as s:
        s.sendall(mbap(1, 1, struct.pack(">BHH", 3, 0x0200, 48)))
        received = b""
        try:
            while chunk := s.recv(512):
                received += chunk
        except socket.timeout:
            pass
    assert 0 < len(received) < full_length
    assert realtime(ft)["raw"][0] == 7


def test_a_meter_swap_resets_purchase_count_sequence_and_balance(start_field):
    ft = start_field()
    ft.field.reset_meter_counter(ROOM)
    r = realtime(ft)
    assert (r["purchase_count"], r["command_seq"], r["balance_fen"]) == (0, 0, 0)
    assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 1, secure.recharge_payload(500)))[0] == Result.APPLIED


# ---------------------------------------------------------------- persistence

def test_state_survives_stop_and_start_through_the_state_file(start_field, tmp_path, clock):
    state = tmp_path / "field.json"
    ft = start_field(state_file=state)
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000)))
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RELAY, 3, secure.relay_payload(RelayAction.KEEP_POWER_ON)))
    clock.advance(3600)
    energy = realtime(ft)["energy_total"]
    balance = ft.field.meter(ROOM).balance_fen
    ft.stop()
    saved = json.loads(state.read_text())
    assert saved["meters"][ROOM]["purchase_count"] == 5

    again = start_field(state_file=state)
    r = realtime(again)
    assert (r["purchase_count"], r["command_seq"], r["keep_power"]) == (5, 3, True)
    assert r["balance_fen"] == balance and r["energy_total"] == pytest.approx(energy, abs=0.01)
    frame = seal(again, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000))
    assert command(again, ROOM, 1, frame)[0] == Result.ALREADY_APPLIED


def test_an_applied_frame_survives_a_crash_before_the_next_snapshot(tmp_path, clock):
    state = tmp_path / "field.json"
    site = small_site(find_free_base_port(2))
    ft = run_field_in_thread(site, state_file=state, clock=clock, save_interval=3600)
    ft.port, ft.framer = site.gateways[0].buses[0].port, FramerType.SOCKET
    try:
        ft.field.save_state()
        assert command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(700)))[0] == \
            Result.APPLIED
        # no stop(): the process "dies" here; a new field reads the snapshot plus the journal
        revived = Field(small_site(1), state_file=state, clock=clock)
        assert revived.meter(ROOM).purchase_count == 5 and revived.meter(ROOM).balance_fen == 10700
        assert revived.meter(ROOM).mailbox_result == Result.APPLIED
        assert revived.meter(ROOM).mailbox_answers == (Command.RECHARGE, 5)
    finally:
        ft.stop()


def test_the_state_file_is_saved_periodically_while_running(start_field, tmp_path):
    state = tmp_path / "field.json"
    ft = start_field(state_file=state, save_interval=0.1)
    command(ft, ROOM, 1, seal(ft, ROOM, Command.RECHARGE, 5, secure.recharge_payload(5000)))
    for _ in range(50):
        if state.exists() and json.loads(state.read_text())["meters"][ROOM]["purchase_count"] == 5:
            break
        time.sleep(0.05)
    assert json.loads(state.read_text())["meters"][ROOM]["balance_fen"] == 15000


def test_meters_missing_from_the_state_file_start_from_their_spec(tmp_path, clock):
    state = tmp_path / "field.json"
    state.write_text(json.dumps({"version": 1, "journal_seq": 0, "meters": {}}))
    field = Field(small_site(1), state_file=state, clock=clock)
    assert field.meter(ROOM).balance_fen == 10000


# ---------------------------------------------------------------- command line

def test_cli_listens_on_the_demo_ports_and_stops_cleanly_on_sigterm(tmp_path):
    base = find_free_base_port(20)
    state = tmp_path / "demo.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from simulator.cli import main; sys.exit(main(sys.argv[1:]))",
         "--site", "demo", "--base-port", str(base), "--state-file", str(state), "--gateway-down", "GW-B4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        assert lines[0].startswith("GW-B1 (socket): bus 1 127.0.0.1:" + str(base))
        assert lines[3].startswith("GW-B4 (socket): DOWN")
        assert "simulating 488 meters on 16 ports" in lines[5]
        assert asyncio.run(read(base, 0x0200, 1, 1)).registers == [7]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0
    assert len(json.loads(state.read_text())["meters"]) == 488
