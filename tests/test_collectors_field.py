"""Collectors against the simulated field on loopback: profiles over both framings, lost meters and
gateways, bad replies, and secure commands through the mailbox."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from decimal import Decimal

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient

from collectors import secureframe as sf
from collectors.commstate import next_comm_state
from collectors.modbus import read_profile
from collectors.oneshot import read_meter, send_command
from collectors.poller import FieldIO, PollTarget
from collectors.profiles import ProfileRegistry
from simulator.field import run_field_in_thread
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from tests.conftest import free_port

KM = bytes.fromhex("0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978")
TIMEOUT_S = 0.3
ALL_PROFILES = ("acrel-ddsy1352", "acrel-dtsy1352", "eastron-sdm630", "wattline-ttu")


def make_site(framing: str = "socket", gateways: int = 1, buses: int = 1, meters: int = 3,
              profiles: tuple[str, ...] = ("acrel-ddsy1352",), load: float = 0.0) -> SiteSpec:
    """A small site: every bus on its own free loopback port, addresses 20261121ggbm.

    load 0 keeps the rooms idle so balances stay exactly where the test put them.
    """
    specs = []
    for g in range(1, gateways + 1):
        bus_specs = []
        for b in range(1, buses + 1):
            bus_specs.append(BusSpec(bus_no=b, port=free_port(), meters=[
                MeterSpec(address=f"20261121{g:02d}{b}{m}", unit=m,
                          profile=profiles[(m - 1) % len(profiles)], building=f"B{g}", room=f"R{g}{b}{m}",
                          balance_fen=10000, purchase_count=5, command_seq=2, character=load)
                for m in range(1, meters + 1)]))
        specs.append(GatewaySpec(name=f"GW{g}", framing=framing, buses=bus_specs))
    return SiteSpec(name="test", gateways=specs)


def targets_of(site: SiteSpec, timeout_s: float = TIMEOUT_S, retries: int = 1) -> list[PollTarget]:
    return [PollTarget(meter_id=i, meter_address=r["meter_address"], gateway=r["gateway"], host=r["host"],
                       port=r["port"], framing=r["framing"], bus_no=r["bus"], unit=r["unit"],
                       profile=r["profile"], timeout_s=timeout_s, retries=retries)
            for i, r in enumerate(site.topology_rows(), start=1)]


@pytest.fixture
def field_io():
    fio = FieldIO(ProfileRegistry())
    yield fio
    fio.close()


def statuses(result) -> dict[int, str]:
    return {meter_id: outcome.status for meter_id, outcome in result.outcomes.items()}


# ---------------------------------------------------------------- profiles over both framings

@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_every_built_in_profile_reads_plausible_values(framing, field_io):
    site = make_site(framing, meters=4, profiles=ALL_PROFILES, load=1.0)
    targets = targets_of(site)
    with run_field_in_thread(site) as ft:
        result = field_io.poll_cycle(targets, all_blocks=True)
        truth = {t.meter_id: ft.field.meter(t.meter_address) for t in targets}
    assert set(statuses(result).values()) == {"ok"}
    by_profile = {t.profile: r for t in targets for r in result.readings if r["meter_id"] == t.meter_id}

    single = by_profile["acrel-ddsy1352"]
    assert single["meter_type"] == 7 and 200 <= single["voltage_a"] <= 245 and single["voltage_b"] == 0
    assert 49.5 <= single["frequency"] <= 50.5
    assert isinstance(single["balance"], Decimal)
    assert abs(single["balance"] - Decimal(truth[1].balance_fen) / 100) <= Decimal("0.01")  # it may tick a fen
    assert single["purchase_count"] == 5 and single["command_seq"] == 2
    assert single["relay_closed"] is True and single["prepaid_enabled"] is True
    assert single["alarm1_limit"] == Decimal("20.00") and single["price_flat"] == Decimal("0.6000")

    three = by_profile["acrel-dtsy1352"]
    assert three["meter_type"] == 5 and all(200 <= three[f"voltage_{p}"] <= 245 for p in "abc")

    master = by_profile["eastron-sdm630"]
    assert all(200 <= master[f"voltage_{p}"] <= 245 for p in "abc")
    assert 0 <= master["pf_total"] <= 1 and 49.5 <= master["frequency"] <= 50.5
    assert master["energy_total"] > 0 and 0 <= master["thd_u_a"] < 20

    ttu = by_profile["wattline-ttu"]
    assert 1 <= ttu["tap_position"] <= ttu["tap_count"] and ttu["capacity_mode"] in (0, 1)
    assert -30 < ttu["ambient_temp"] < 60 and 0 <= ttu["humidity"] <= 100
    assert isinstance(ttu["breaker_1"], bool) and isinstance(ttu["door_open"], bool)


def test_the_configuration_block_is_read_only_on_its_cycle(field_io):
    site = make_site(meters=1)
    targets = targets_of(site)
    with run_field_in_thread(site):
        keys_per_cycle = [set(field_io.poll_cycle(targets).readings[0]) for _ in range(3)]
    assert sum("alarm1_limit" in keys for keys in keys_per_cycle) <= 1
    assert all("balance" in keys for keys in keys_per_cycle)


def test_a_block_the_meter_does_not_have_is_an_exception_outcome(tmp_path, field_io):
    (tmp_path / "odd.toml").write_text(
        '[profile]\nname = "odd"\nmodel = "X"\nkind = "meter-3p"\nword_order = "big"\n\n'
        '[[block]]\ntable = "holding"\nstart = 0x1000\ncount = 2\n\n'
        '[[point]]\nkey = "x"\naddress = 0x1000\ntype = "u16"\n', encoding="utf-8")
    site = make_site(meters=2)
    targets = targets_of(site)
    targets[0].profile = "odd"
    fio = FieldIO(ProfileRegistry(tmp_path))
    try:
        with run_field_in_thread(site):
            result = fio.poll_cycle(targets)
    finally:
        fio.close()
    assert result.outcomes[1].status == "exception" and "code 2" in result.outcomes[1].message
    assert result.outcomes[2].status == "ok"


def test_read_profile_accepts_a_plain_pymodbus_client():
    site = make_site("rtu", meters=1)
    t = targets_of(site)[0]

    async def read():
        client = AsyncModbusTcpClient(t.host, port=t.port, framer=FramerType.RTU, timeout=TIMEOUT_S)
        await client.connect()
        try:
            return await read_profile(client, t.unit, ProfileRegistry().get(t.profile), timeout_s=TIMEOUT_S)
        finally:
            client.close()
    with run_field_in_thread(site):
        values = asyncio.run(read())
    assert values["meter_type"] == 7 and values["purchase_count"] == 5


def test_field_io_serves_callers_on_several_threads_at_once(field_io):
    site = make_site(buses=2, meters=3)
    targets = targets_of(site)
    results, errors = [], []

    def caller():
        try:
            results.append(field_io.poll_cycle(targets))
        except Exception as exc:  # reported below
            errors.append(exc)
    with run_field_in_thread(site):
        threads = [threading.Thread(target=caller) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors and len(results) == 4
    assert all(set(statuses(r).values()) == {"ok"} for r in results)


# ---------------------------------------------------------------- lost meters

def test_a_meter_missing_three_polls_is_lost_while_the_others_are_read(field_io):
    site = make_site(buses=2, meters=3)
    targets = targets_of(site)
    silent = targets[1]
    states: dict[int, dict | None] = {t.meter_id: None for t in targets}
    with run_field_in_thread(site) as ft:
        ft.field.set_meter_offline(silent.meter_address, True)
        for cycle in range(3):
            result = field_io.poll_cycle(targets)
            for t in targets:
                states[t.meter_id] = next_comm_state(states[t.meter_id], result.outcomes[t.meter_id],
                                                     result.finished_at)
            assert result.outcomes[silent.meter_id].status == "timeout"
            assert {s for m, s in statuses(result).items() if m != silent.meter_id} == {"ok"}
            assert len(result.readings) == len(targets) - 1
    assert states[silent.meter_id]["comm_state"] == "lost"
    assert all(states[t.meter_id]["comm_state"] == "online" for t in targets if t is not silent)


def test_a_lost_meter_recovers_with_one_good_poll(field_io):
    site = make_site(meters=2)
    targets = targets_of(site)
    silent = targets[0]
    state = None
    with run_field_in_thread(site) as ft:
        ft.field.set_meter_offline(silent.meter_address, True)
        for _ in range(3):
            state = next_comm_state(state, field_io.poll_cycle(targets).outcomes[1], time.time())
        assert state["comm_state"] == "lost"
        ft.field.set_meter_offline(silent.meter_address, False)
        result = field_io.poll_cycle(targets)
    state = next_comm_state(state, result.outcomes[1], time.time())
    assert state["comm_state"] == "online" and state["miss_count"] == 0
    assert any(r["meter_id"] == 1 for r in result.readings)


def test_a_silent_meter_does_not_hold_up_meters_on_other_buses(field_io):
    site = make_site(buses=2, meters=3)
    targets = targets_of(site)
    bus1 = [t for t in targets if t.bus_no == 1]
    bus2 = [t for t in targets if t.bus_no == 2]
    with run_field_in_thread(site) as ft:
        ft.field.set_meter_offline(bus1[0].meter_address, True)
        result = field_io.poll_cycle(targets)
    ts = {r["meter_id"]: r["ts"] for r in result.readings}
    # bus 1 reads its second meter only after two timeouts; bus 2 is done long before that
    assert max(ts[t.meter_id] for t in bus2) < ts[bus1[1].meter_id]


# ---------------------------------------------------------------- lost gateways

def test_a_gateway_refusing_connections_costs_one_connect_attempt_per_cycle(field_io):
    site = make_site(gateways=2, buses=2, meters=3)
    targets = targets_of(site)
    down = [t for t in targets if t.gateway == "GW1"]
    with run_field_in_thread(site) as ft:
        field_io.poll_cycle(targets)
        ft.field.set_gateway_down("GW1", True)
        attempts_before = {t.endpoint: field_io.pool.get(t.host, t.port, t.framing).connect_attempts for t in down}
        for _ in range(3):
            result = field_io.poll_cycle(targets)
            assert {result.outcomes[t.meter_id].status for t in down} == {"gateway_unreachable"}
            assert {s for m, s in statuses(result).items() if m not in {t.meter_id for t in down}} == {"ok"}
            assert result.unreachable_gateways == {"GW1"} and len(result.unreachable_endpoints) == 2
    for t in down:
        endpoint = field_io.pool.get(t.host, t.port, t.framing)
        # the first cycle after the drop notices the closed connection and tries once; then one per cycle
        assert endpoint.connect_attempts - attempts_before[t.endpoint] == 3


def test_meters_behind_an_unreachable_gateway_are_lost_at_once():
    site = make_site(meters=2)
    targets = targets_of(site)
    with FieldIO() as fio, run_field_in_thread(site) as ft:
        ft.field.set_gateway_down("GW1", True)
        result = fio.poll_cycle(targets)
    state = next_comm_state(None, result.outcomes[1], time.time())
    assert state["comm_state"] == "lost" and state["lost_reason"] == "gateway"


def test_a_gateway_back_up_is_read_on_the_next_cycle(field_io):
    site = make_site(meters=3)
    targets = targets_of(site)
    with run_field_in_thread(site) as ft:
        ft.field.set_gateway_down("GW1", True)
        assert set(statuses(field_io.poll_cycle(targets)).values()) == {"gateway_unreachable"}
        ft.field.set_gateway_down("GW1", False)
        result = field_io.poll_cycle(targets)
    assert set(statuses(result).values()) == {"ok"} and not result.unreachable_endpoints


def test_a_gateway_that_never_existed_is_unreachable_without_a_request_per_meter(field_io):
    port = free_port()
    targets = [PollTarget(i, f"2026112100{i:02d}", "GW-X", "127.0.0.1", port, "socket", 1, i, "acrel-ddsy1352",
                          timeout_s=TIMEOUT_S) for i in range(1, 31)]
    result = field_io.poll_cycle(targets)
    assert set(statuses(result).values()) == {"gateway_unreachable"}
    assert field_io.pool.get("127.0.0.1", port, "socket").connect_attempts == 1


def test_a_gateway_that_never_completes_the_connect_costs_one_attempt_per_cycle(field_io):
    # a listener whose accept queue is full: the kernel drops further SYNs, so connect hangs
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        time.sleep(0.05)
        targets = [PollTarget(i, f"2026112100{i:02d}", "GW-X", "127.0.0.1", port, "socket", 1, i,
                              "acrel-ddsy1352", timeout_s=0.2) for i in range(1, 31)]
        for cycle in (1, 2):
            result = field_io.poll_cycle(targets)
            assert set(statuses(result).values()) == {"gateway_unreachable"}
            assert field_io.pool.get("127.0.0.1", port, "socket").connect_attempts == cycle
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_a_meter_with_an_unknown_framing_or_profile_is_skipped_and_the_cycle_goes_on(field_io):
    site = make_site(buses=2, meters=2)
    targets = targets_of(site)
    targets[0].profile = "no-such-profile"
    for t in targets:
        if t.bus_no == 2:
            t.framing = "ascii"
    with run_field_in_thread(site):
        result = field_io.poll_cycle(targets)
    assert result.outcomes[1].status == "config_error" and "no-such-profile" in result.outcomes[1].message
    assert result.outcomes[2].status == "ok"
    assert {result.outcomes[t.meter_id].status for t in targets if t.bus_no == 2} == {"config_error"}


# ---------------------------------------------------------------- bad replies

def test_200_garbage_and_truncated_replies_neither_crash_nor_desynchronise_the_next_meters(field_io):
    site = make_site(gateways=2, buses=4, meters=3)
    site.gateways[1].framing = "rtu"
    targets = targets_of(site, timeout_s=0.15)
    victims = [t for t in targets if t.unit == 1]          # the first meter of each of the 8 buses
    with run_field_in_thread(site) as ft:
        for i, t in enumerate(victims):
            ft.field.inject_bad_replies(t.meter_address, "garbage" if i % 2 else "truncated", 25)
        bad_cycles, failed_polls = 0, 0
        while any(ft.field.meter(t.meter_address).bad_replies[1] for t in victims):
            result = field_io.poll_cycle(targets)
            bad_cycles += 1
            assert bad_cycles < 40
            failed_polls += sum(result.outcomes[t.meter_id].status != "ok" for t in victims)
            for t in targets:
                if t.unit != 1:
                    assert result.outcomes[t.meter_id].status == "ok", result.outcomes[t.meter_id]
            by_id = {r["meter_id"]: r for r in result.readings}
            for t in targets:
                if t.meter_id in by_id:
                    truth = ft.field.meter(t.meter_address)
                    assert by_id[t.meter_id]["purchase_count"] == truth.purchase_count
                    assert by_id[t.meter_id]["meter_type"] == 7
        result = field_io.poll_cycle(targets)
    assert set(statuses(result).values()) == {"ok"}
    # 25 bad replies each: 12 polls fail on both tries, the 13th poll's retry reads the meter
    assert failed_polls == len(victims) * 12


def test_a_bad_reply_is_reported_as_bad_reply_not_as_a_timeout(field_io):
    site = make_site(meters=2)
    targets = targets_of(site, retries=0)
    with run_field_in_thread(site) as ft:
        ft.field.inject_bad_replies(targets[0].meter_address, "truncated", 1)
        result = field_io.poll_cycle(targets)
    assert result.outcomes[1].status == "bad_reply" and result.outcomes[2].status == "ok"


# ---------------------------------------------------------------- secure commands

def prepaid_target(framing: str = "socket"):
    site = make_site(framing, meters=2)
    return site, targets_of(site)


@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_a_recharge_is_applied_and_credits_the_balance(framing, field_io):
    site, targets = prepaid_target(framing)
    t = targets[0]
    frame = sf.encrypt_frame(KM, t.meter_address, sf.Command.RECHARGE, 6, int(time.time()),
                             sf.recharge_payload(sf.fen_from_yuan("50.00")))
    with run_field_in_thread(site) as ft:
        before = ft.field.meter(t.meter_address).balance_fen
        answer = field_io.send_frame(t, frame)
        after = ft.field.meter(t.meter_address).balance_fen
    assert answer.result == sf.Result.APPLIED and answer.purchase_count == 6
    assert after - before == 5000 and answer.balance == Decimal(after) / 100


def test_resending_an_applied_recharge_answers_already_applied_and_credits_nothing(field_io):
    site, targets = prepaid_target()
    t = targets[0]
    frame = sf.encrypt_frame(KM, t.meter_address, sf.Command.RECHARGE, 6, int(time.time()),
                             sf.recharge_payload(2000))
    with run_field_in_thread(site) as ft:
        assert field_io.send_frame(t, frame).result == sf.Result.APPLIED
        balance = ft.field.meter(t.meter_address).balance_fen
        again = field_io.send_frame(t, frame)
        assert ft.field.meter(t.meter_address).balance_fen == balance
    assert again.result == sf.Result.ALREADY_APPLIED and again.purchase_count == 6


def test_a_recharge_skipping_a_purchase_count_is_refused(field_io):
    site, targets = prepaid_target()
    t = targets[0]
    frame = sf.encrypt_frame(KM, t.meter_address, sf.Command.RECHARGE, 8, int(time.time()),
                             sf.recharge_payload(2000))
    with run_field_in_thread(site):
        assert field_io.send_frame(t, frame).result == sf.Result.COUNT_MISMATCH


def test_a_relay_trip_opens_the_meters_relay(field_io):
    site, targets = prepaid_target()
    t = targets[0]
    frame = sf.encrypt_frame(KM, t.meter_address, sf.Command.RELAY, 3, int(time.time()), sf.relay_payload("trip"))
    with run_field_in_thread(site) as ft:
        assert ft.field.meter(t.meter_address).relay_closed is True
        answer = field_io.send_frame(t, frame)
        reading = field_io.read_meter(t)
        assert ft.field.meter(t.meter_address).relay_closed is False
    assert answer.result == sf.Result.APPLIED and answer.command_seq == 3
    assert reading["relay_closed"] is False and reading["forced_trip"] is True


def test_a_frame_under_the_wrong_key_is_refused_by_the_meter(field_io):
    site, targets = prepaid_target()
    t = targets[0]
    frame = sf.encrypt_frame(bytes(reversed(KM)), t.meter_address, sf.Command.RELAY, 3, int(time.time()),
                             sf.relay_payload("trip"))
    with run_field_in_thread(site) as ft:
        assert field_io.send_frame(t, frame).result == sf.Result.BAD_FRAME
        assert ft.field.meter(t.meter_address).relay_closed is True


def test_commands_and_polls_share_the_bus_connection(field_io):
    site, targets = prepaid_target()
    with run_field_in_thread(site):
        field_io.poll_cycle(targets)
        frame = sf.encrypt_frame(KM, targets[0].meter_address, sf.Command.RELAY, 3, int(time.time()),
                                 sf.relay_payload("keep-power-on"))
        assert field_io.send_frame(targets[0], frame).result == sf.Result.APPLIED
        assert set(statuses(field_io.poll_cycle(targets)).values()) == {"ok"}
    assert len(field_io.pool) == 1


# ---------------------------------------------------------------- one-shot helpers for the CLI

def test_read_meter_returns_json_ready_values():
    site, targets = prepaid_target("rtu")
    t = targets[0]
    with run_field_in_thread(site):
        values = read_meter(t.host, t.port, t.unit, "acrel-ddsy1352", "rtu", timeout_s=TIMEOUT_S)
    assert values["balance"] == "100.00" and values["meter_type"] == 7 and values["alarm1_limit"] == "20.00"


def test_send_command_recharges_and_reports_the_result_by_name():
    site, targets = prepaid_target()
    t = targets[0]
    with run_field_in_thread(site):
        answer = send_command(t.host, t.port, t.unit, "acrel-ddsy1352", t.meter_address, KM, "recharge",
                              amount="12.34", count=6)
    assert answer == {"command": "recharge", "meter_address": t.meter_address, "counter": 6,
                      "result": "APPLIED", "purchase_count": 6, "command_seq": 2, "balance": "112.34",
                      "answered_command": "RECHARGE", "answered_counter": 6,
                      "decided": "applied", "decided_by": "result", "conflict": None}


def test_send_command_to_a_mailbox_version_1_meter_is_decided_by_its_purchase_count():
    site, targets = prepaid_target()
    t = targets[0]
    with run_field_in_thread(site) as ft:
        ft.field.set_mailbox_version(t.meter_address, 1)
        answer = send_command(t.host, t.port, t.unit, "acrel-ddsy1352", t.meter_address, KM, "recharge",
                              amount="1.00", count=6)
    assert (answer["answered_command"], answer["answered_counter"]) == (None, None)
    assert (answer["result"], answer["decided"], answer["decided_by"]) == ("APPLIED", "applied", "counts")


def test_send_command_relay_takes_the_clis_relay_action_name():
    site, targets = prepaid_target()
    t = targets[0]
    with run_field_in_thread(site):
        answer = send_command(t.host, t.port, t.unit, "acrel-ddsy1352", t.meter_address, KM, "relay",
                              relay_action="trip", seq=9)
    assert answer["result"] == "APPLIED" and answer["command_seq"] == 9


def test_send_command_refuses_an_amount_with_three_decimals_before_sending():
    with pytest.raises(ValueError, match="2 decimals"):
        send_command("127.0.0.1", free_port(), 1, "acrel-ddsy1352", "202611210001", KM, "recharge",
                     amount="1.005", count=1)
