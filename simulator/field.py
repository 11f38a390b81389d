"""The running simulated field: builds devices from a SiteSpec, serves every bus port, injects faults, persists state.

Persistence: a JSON snapshot of every device (atomic: temporary file + os.replace) every
`save_interval` seconds and on stop, plus a journal (`<state_file>.journal`, one JSON line per
applied command frame or meter swap, flushed before the result becomes readable), so a crash
never loses a command the field has acknowledged. On start the snapshot is loaded and the
journal entries newer than it are replayed; devices missing from the file start from their spec.
Consumption while the field was stopped is not simulated (the model resumes at the restart time).

Thread use: the field runs on one asyncio loop. Its fault methods may be called from any
thread; from outside the loop they wait until the loop has applied them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from simulator.meters import Area, AreaTerminal, MasterMeter, PrepaidMeter, SimMeter
from simulator.modbus import SimBus
from simulator.secure import TEST_MASTER_KEY
from simulator.site import PREPAID_PROFILES, SiteSpec

log = logging.getLogger(__name__)

STATE_VERSION = 1
BAD_REPLY_MODES = ("garbage", "truncated")


class Field:
    def __init__(self, site: SiteSpec, state_file: str | Path | None = None, seed: int = 1,
                 emulate_baud: bool = False, clock: Callable[[], float] = time.time,
                 master_key: bytes = TEST_MASTER_KEY, save_interval: float = 10.0):
        site.validate()
        if len(master_key) != 24:
            raise ValueError("master_key must be 24 bytes")
        self.site = site
        self.clock = clock
        self.master_key = master_key
        self.state_file = Path(state_file) if state_file is not None else None
        self.save_interval = save_interval
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._save_task: asyncio.Task | None = None
        self._writing: asyncio.Future | None = None
        self._file_lock = threading.Lock()
        self._generation = 0          # snapshots in the order they were taken
        self._written_generation = 0  # newest snapshot on disk: an older one never replaces it
        self._pending_frames: dict[str, tuple[asyncio.TimerHandle, Callable[[], None]]] = {}
        self._journal = None
        self._journal_seq = 0
        self._down: set[str] = set()
        self._areas: dict[str | None, Area] = {}
        self.meters: dict[str, SimMeter] = {}
        self.buses: dict[tuple[str, int], SimBus] = {}
        self._build(emulate_baud)
        self._load_state()

    # ------------------------------------------------------------ hooks used by devices
    def random(self) -> float:
        return self._rng.random()

    def gauss(self, sigma: float) -> float:
        return self._rng.gauss(0.0, sigma)

    def schedule_frame(self, device: SimMeter, delay: float, apply: Callable[[], None]) -> None:
        def run():
            self._pending_frames.pop(device.address, None)
            apply()
        handle = asyncio.get_running_loop().call_later(delay, run)
        self._pending_frames[device.address] = (handle, run)

    def frame_applied(self, device: SimMeter) -> None:
        self._journal_device(device)

    # ------------------------------------------------------------ construction
    def _area(self, name: str | None) -> Area:
        if name not in self._areas:
            self._areas[name] = Area(name)
        return self._areas[name]

    def _build(self, emulate_baud: bool) -> None:
        specs = list(self.site.iter_meters())
        rooms_by_building: dict[str, list[PrepaidMeter]] = {}
        rooms_by_area: dict[str | None, list[PrepaidMeter]] = {}
        for _, _, spec in specs:
            if spec.profile in PREPAID_PROFILES:
                meter = PrepaidMeter(spec, self, self._area(spec.area))
                rooms_by_building.setdefault(spec.building, []).append(meter)
                area_rooms = rooms_by_area.setdefault(spec.area, [])
                if not meter.three_phase:
                    meter.phase = len(area_rooms) % 3   # single-phase rooms spread over the phases in turn
                area_rooms.append(meter)
                self.meters[spec.address] = meter
        masters: dict[str, MasterMeter] = {}
        for _, _, spec in specs:
            if spec.profile == "eastron-sdm630":
                meter = MasterMeter(spec, self, self._area(spec.area), rooms_by_building.get(spec.building, []))
                masters[spec.building] = meter
                self.meters[spec.address] = meter
        for _, _, spec in specs:
            if spec.profile == "wattline-ttu":
                self.meters[spec.address] = AreaTerminal(spec, self, self._area(spec.area),
                                                         rooms_by_area.get(spec.area, []), masters.get(spec.building))
        for gateway in self.site.gateways:
            for bus_spec in gateway.buses:
                devices = {m.unit: self.meters[m.address] for m in bus_spec.meters}
                bus = SimBus(gateway.name, bus_spec.bus_no, gateway.host, bus_spec.port, gateway.framing,
                             bus_spec.baud, devices, self.clock)
                bus.emulated_baud = bus_spec.baud if emulate_baud else None
                self.buses[(gateway.name, bus_spec.bus_no)] = bus

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        now = self.clock()
        for meter in self.meters.values():
            meter.resume(now)
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self._journal = open(self._journal_path(), "a", encoding="utf-8")
        try:
            for (gateway, _), bus in self.buses.items():
                if gateway not in self._down:
                    await bus.open()
        except OSError:
            await self._close_buses()
            raise
        if self.state_file is not None and self.save_interval:
            self._save_task = asyncio.create_task(self._save_periodically())

    async def stop(self) -> None:
        if self._save_task is not None:
            self._save_task.cancel()
            await asyncio.gather(self._save_task, return_exceptions=True)
            self._save_task = None
        if self._writing is not None:
            # a background snapshot still being written must land before the final one, never after it
            await asyncio.wait([self._writing])
            self._writing = None
        for handle, run in list(self._pending_frames.values()):
            handle.cancel()
            run()  # a frame the meter accepted is processed before it powers down
        await self._close_buses()
        self.save_state()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._loop = None

    async def _close_buses(self) -> None:
        await asyncio.gather(*(bus.close() for bus in self.buses.values()))

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval)
            try:
                await self._save_in_background()
            except OSError:
                log.exception("could not save the simulator state to %s", self.state_file)

    async def _save_in_background(self) -> None:
        """Periodic snapshot without stalling the buses: meters as of their last update, written by a worker thread."""
        snapshot = self.snapshot(advance=False)
        self._generation += 1
        data = json.dumps(snapshot, separators=(",", ":"))
        self._writing = asyncio.get_running_loop().run_in_executor(None, self._write_file, data, self._generation)
        await self._writing
        if self._journal is not None and self._journal_seq == snapshot["journal_seq"]:
            self._journal.seek(0)
            self._journal.truncate()

    # ------------------------------------------------------------ access
    def meter(self, address: str) -> SimMeter:
        try:
            return self.meters[address]
        except KeyError:
            raise KeyError(f"no simulated meter {address}") from None

    def bus(self, gateway: str, bus_no: int) -> SimBus:
        try:
            return self.buses[(gateway, bus_no)]
        except KeyError:
            raise KeyError(f"no bus {bus_no} on gateway {gateway}") from None

    def listening(self) -> list[tuple[str, int, str, int]]:
        """(gateway, bus_no, host, port) of every open bus port."""
        return [(b.gateway, b.bus_no, b.host, b.port) for b in self.buses.values() if b.is_open]

    # ------------------------------------------------------------ faults
    def _call_in_loop(self, fn: Callable, *args):
        """Run fn on the field loop (waiting for it) when called from another thread."""
        loop = self._loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return fn(*args)
        future: concurrent.futures.Future = concurrent.futures.Future()

        def call():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed back to the calling thread
                future.set_exception(exc)
        loop.call_soon_threadsafe(call)
        return future.result(timeout=30)

    def set_meter_offline(self, address: str, offline: bool = True) -> None:
        meter = self.meter(address)
        self._call_in_loop(setattr, meter, "offline", offline)

    def inject_bad_replies(self, address: str, mode: str, count: int) -> None:
        if mode not in BAD_REPLY_MODES:
            raise ValueError(f"mode must be one of {BAD_REPLY_MODES}")
        meter = self.meter(address)
        self._call_in_loop(setattr, meter, "bad_replies", [mode, count])

    def set_mailbox_version(self, address: str, version: int) -> None:
        """Version 1: the mailbox read-back names no frame (registers 5-7 read 0), like older firmware."""
        if version not in (1, 2):
            raise ValueError("mailbox version must be 1 or 2")
        meter = self.meter(address)
        if not meter.has_mailbox:
            raise ValueError(f"meter {address} has no command mailbox")

        def apply():
            meter.mailbox_version = version
            meter.mark_dirty()
        self._call_in_loop(apply)

    def set_mailbox_delay(self, address: str, seconds: float | None) -> None:
        """How long the meter takes to process a frame (the spec allows up to 200 ms); None: 20-50 ms at random."""
        if seconds is not None and not 0 < seconds <= 0.2:
            raise ValueError("a meter processes a frame within 200 ms")
        meter = self.meter(address)
        self._call_in_loop(setattr, meter, "mailbox_delay_s", seconds)

    def set_relay_ignored(self, address: str, ignored: bool = True) -> None:
        """A fault: the meter acknowledges RELAY frames (APPLIED, its command sequence moves on) but its relay
        and state bits stay as they were, as a meter with a stuck relay driver does."""
        meter = self.meter(address)
        if not hasattr(meter, "ignores_relay"):
            raise ValueError(f"meter {address} has no relay")
        self._call_in_loop(setattr, meter, "ignores_relay", ignored)

    # ------------------------------------------------------------ transformer-area terminals
    def _terminal(self, address: str) -> AreaTerminal:
        meter = self.meter(address)
        if not isinstance(meter, AreaTerminal):
            raise ValueError(f"meter {address} is not a transformer-area terminal")
        return meter

    def _change_terminal(self, terminal: AreaTerminal, change: Callable[[], None]) -> None:
        def apply():
            change()
            self._journal_device(terminal)
        self._call_in_loop(apply)

    def set_terminal_fault(self, address: str, fault: str, on: bool = True) -> None:
        """A fault of the terminal's transformer or drives, until turned off (not kept across a restart):
        "phase_sag" phase A about -15 % (the area's meters on phase A too), "harmonics" THDu ~7-8 % and THDi ~30 %
        (more neutral current), "stuck_tap" TAP_SET answers APPLIED but the tap never moves, "breaker_stuck" BREAKER
        open answers APPLIED but the breaker stays closed."""
        if fault not in AreaTerminal.FAULTS:
            raise ValueError(f"fault must be one of {AreaTerminal.FAULTS}")
        terminal = self._terminal(address)
        self._call_in_loop(terminal.set_fault, fault, bool(on))

    def set_terminal_input(self, address: str, name: str, value: bool) -> None:
        """A digital input of the terminal: "door_open", "smoke" or "water" (status bits 0-2)."""
        if name not in AreaTerminal.INPUTS:
            raise ValueError(f"input must be one of {AreaTerminal.INPUTS}")
        terminal = self._terminal(address)
        self._change_terminal(terminal, lambda: terminal.set_input(name, bool(value)))

    def set_terminal_breaker(self, address: str, outlet: int, closed: bool) -> bool:
        """Operate outlet breaker `outlet` (1..8) of the terminal by hand at the switchgear: an open outlet in
        service takes its share of the area's load off the transformer (AreaTerminal); with the fault
        "breaker_stuck" it does not open. Whether the breaker is closed afterwards."""
        if isinstance(outlet, bool) or not isinstance(outlet, int) or not 1 <= outlet <= AreaTerminal.OUTLETS:
            raise ValueError(f"outlet must be 1..{AreaTerminal.OUTLETS}")
        terminal = self._terminal(address)
        done = []
        self._change_terminal(terminal, lambda: done.append(terminal.set_breaker(outlet, bool(closed))))
        return done[0]

    def trigger_changeover(self, address: str, on: bool = True) -> None:
        """Dual-supply changeover (备自投) to the standby MV supply (status bit 3), or back to the main one."""
        terminal = self._terminal(address)
        self._change_terminal(terminal, lambda: terminal.set_standby(bool(on)))

    def set_supply_offset(self, address: str, percent: float) -> None:
        """The MV supply deviates by `percent` of nominal: the area's voltages move by that much, until the tap
        corrects them (each tap step is 2.5 % of nominal)."""
        percent = float(percent)
        if not -20.0 <= percent <= 20.0:   # also refuses NaN
            raise ValueError("the supply offset must be within -20..20 %")
        terminal = self._terminal(address)
        self._change_terminal(terminal, lambda: terminal.set_supply_offset(percent))

    def terminal_state(self, address: str) -> dict:
        """What is put on a terminal now (read on the field's loop): its faults, inputs, changeover, supply offset,
        tap position and count, and its secondary phase voltages (no measuring noise)."""
        terminal = self._terminal(address)

        def read() -> dict:
            volts = terminal.phase_volts(self.clock())
            return {"faults": sorted(terminal.faults), "changeover": terminal.on_standby,
                    **{name: bool(getattr(terminal, name)) for name in AreaTerminal.INPUTS},
                    "supply_offset_pct": terminal.supply_offset_pct, "tap_position": terminal.tap_position,
                    "tap_count": terminal.tap_count, "volts": [round(v, 1) for v in volts]}
        return self._call_in_loop(read)

    @contextmanager
    def hold_bus(self, gateway: str, bus_no: int) -> Iterator[SimBus]:
        """Hold a bus's line, as another master's long transaction would: requests wait, then go in arrival order.

        Call from a thread other than the field's loop; `bus.waiting` counts the requests held up.
        """
        bus = self.bus(gateway, bus_no)
        loop = self._loop
        if loop is None or _running_loop() is loop:
            raise RuntimeError("hold_bus needs a running field and a thread other than its loop")
        asyncio.run_coroutine_threadsafe(bus.lock.acquire(), loop).result(timeout=30)
        try:
            yield bus
        finally:
            loop.call_soon_threadsafe(bus.lock.release)

    def reset_meter_counter(self, address: str) -> None:
        """Meter swap: purchase count and command sequence back to 0, balance 0."""
        meter = self.meter(address)

        def reset():
            meter.advance(self.clock())
            meter.reset_counters()
            self._journal_device(meter)
        self._call_in_loop(reset)

    def set_bus_slow(self, gateway: str, bus_no: int, baud: int | None) -> None:
        bus = self.bus(gateway, bus_no)
        self._call_in_loop(setattr, bus, "emulated_baud", baud)

    def set_emulate_baud(self, enabled: bool) -> None:
        """Turn frame-time emulation on (each bus at its own baud) or off for every bus."""
        def apply():
            for bus in self.buses.values():
                bus.emulated_baud = bus.baud if enabled else None
        self._call_in_loop(apply)

    def set_gateway_down(self, name: str, down: bool = True):
        """Close the gateway's listening sockets and connections (connections refused), or reopen them.

        From another thread this waits until done; on the loop thread it returns the task doing it.
        """
        if name not in {g.name for g in self.site.gateways}:
            raise KeyError(f"no gateway {name}")
        if down:
            self._down.add(name)
        else:
            self._down.discard(name)
        loop = self._loop
        if loop is None:
            return None
        coro = self._apply_gateway_state(name, down)
        if _running_loop() is loop:
            return loop.create_task(coro)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    async def _apply_gateway_state(self, name: str, down: bool) -> None:
        buses = [bus for (gateway, _), bus in self.buses.items() if gateway == name]
        for bus in buses:
            if down:
                await bus.close()
            else:
                await bus.open()

    # ------------------------------------------------------------ persistence
    def _journal_path(self) -> Path:
        return self.state_file.with_name(self.state_file.name + ".journal")

    def _journal_device(self, device: SimMeter) -> None:
        if self._journal is None:
            return
        self._journal_seq += 1
        line = json.dumps({"seq": self._journal_seq, "address": device.address, "state": device.to_state()})
        self._journal.write(line + "\n")
        self._journal.flush()

    def snapshot(self, advance: bool = True) -> dict:
        now = self.clock()
        if advance:
            for meter in self.meters.values():
                meter.advance(now)
        return {"version": STATE_VERSION, "site": self.site.name, "saved_at": now,
                "journal_seq": self._journal_seq,
                "meters": {address: meter.to_state() for address, meter in self.meters.items()}}

    def save_state(self) -> None:
        if self.state_file is None:
            return
        self._call_in_loop(self._write_snapshot)

    def _write_snapshot(self) -> None:
        self._generation += 1
        self._write_file(json.dumps(self.snapshot(), separators=(",", ":")), self._generation)
        if self._journal is not None:
            self._journal.seek(0)
            self._journal.truncate()

    def _write_file(self, data: str, generation: int) -> None:
        with self._file_lock:
            if generation <= self._written_generation:
                return
            temporary = self.state_file.with_name(self.state_file.name + ".tmp")
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.state_file)
            self._written_generation = generation

    def _load_state(self) -> None:
        if self.state_file is None:
            return
        states: dict[str, dict] = {}
        snapshot_seq = 0
        if self.state_file.exists():
            with open(self.state_file, encoding="utf-8") as handle:
                try:
                    data = json.load(handle)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"simulator state file {self.state_file} is not valid JSON: {exc}") from None
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"simulator state file {self.state_file} has unknown version {data.get('version')}")
            states.update(data.get("meters", {}))
            snapshot_seq = int(data.get("journal_seq", 0))
        self._journal_seq = snapshot_seq
        journal = self._journal_path()
        if journal.exists():
            with open(journal, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line torn by a crash mid-write: the frame's result was never shown
                    if entry["seq"] > snapshot_seq:
                        states[entry["address"]] = entry["state"]
                        self._journal_seq = max(self._journal_seq, entry["seq"])
        for address, state in states.items():
            meter = self.meters.get(address)
            if meter is not None:
                meter.load_state(state)
        for meter in self.meters.values():
            meter.rebase()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class FieldThread:
    """A Field running on its own asyncio loop in a daemon thread; a context manager."""

    def __init__(self, site: SiteSpec, **kwargs):
        self.field = Field(site, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"sim-field-{site.name}", daemon=True)
        self._started = False

    def start(self) -> "FieldThread":
        if self._started:
            return self
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.field.start(), self.loop).result(timeout=60)
        except BaseException:
            self._shutdown_loop()
            raise
        self._started = True
        return self

    def run(self, coro, timeout: float = 60):
        """Run a coroutine on the field loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self.run(self.field.stop())
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self.loop.close()

    def __enter__(self) -> "FieldThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_field_in_thread(site: SiteSpec, **kwargs) -> FieldThread:
    """Start a field in a background thread; use as a context manager or call .stop()."""
    return FieldThread(site, **kwargs).start()
