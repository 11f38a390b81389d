"""Live models of the simulated devices: prepaid meters, master meters and transformer-area terminals, with their register images.

Register maps are hard-coded here from specs/device-profile.md (independently of collectors/):

- acrel-ddsy1352 / acrel-dtsy1352 (holding, FC03): realtime 0x0200 x48, configuration
  0x0046 x29, mailbox read-back 0x0340 x8; mailbox write FC16 at 0x0300 (at most 120 registers).
- eastron-sdm630 (input, FC04, float32 high word first): 0x0000 x76 and 0x00E0 x16 (neutral current at
  0x00E0, voltage THD at 0x00EA-0x00EE).
- wattline-ttu (holding, FC03): float32 block 0x0000 x42 (0x0000-0x0029: the spec's list has 21
  values, voltage_a .. humidity, humidity at 0x0028; the first 20 values sit where a 40-register
  reading expects them), u16 block 0x0040 x5 (0x0040 tap_position, 0x0041 tap_count,
  0x0042 capacitor_steps, 0x0043 capacity_mode, 0x0044 status bits), mailbox read-back 0x0340 x8.

Any read not wholly inside one block answers Modbus exception 2 (illegal data address).

Mailbox: a frame write is acknowledged at once; the read-back result reads BUSY (9) while the
meter processes it (20-50 ms, or a fixed time Field.set_mailbox_delay sets), then the outcome. A
frame written while another is being processed is discarded (the result stays BUSY, then shows
the first frame's outcome): clients confirm by the purchase_count / command_seq read back with
the result.
Read-back (8 registers): result, purchase_count, command_seq, balance u32, then the frame the
result answers: its command code and its counter (u32). Only an authentic frame can be named:
BAD_FRAME (and BUSY, IDLE) name command 0, counter 0. A meter with mailbox_version 1 answers the
first 5 registers only; its registers 5-7 read 0.
Frame checks run in this order: BAD_FRAME, INVALID_PAYLOAD (also unknown or foreign command
codes), ALREADY_APPLIED / COUNT_MISMATCH / REPLAYED, EXPIRED, INSUFFICIENT, then APPLIED.

Prepaid rules (the meter's own fee control):
- balance in fen; energy is charged by the tariff as it accrues; without keep-power the balance
  never goes below -overdraft. Negative balances are written to the u32 registers as 32-bit two's
  complement (read them as s32).
- the relay trips for arrears when balance <= -overdraft (overdraft 0: balance <= 0) and closes
  again only once a recharge lifts the balance above 0; keep-power holds the relay closed against
  arrears and remote trips; an overload (power above the limit, limit 0 = none) trips it whatever
  keep-power says, and it retries after 5 minutes.
- a RECHARGE to a meter whose prepaid control is disabled (room not opened) enables it, as does
  RELAY 3 (keep-power off, restore prepaid control).
"""

from __future__ import annotations

import cmath
import math
import struct
import time
from typing import Callable, Protocol

from simulator import secure
from simulator.load import ROOM_PEAK_KW, SITE_UTC_OFFSET_S, demand_fraction
from simulator.secure import Command, InvalidPayload, Result
from simulator.site import MeterSpec
from simulator.tariff import Tariff, price_for, segment_table

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 0x01, 0x02, 0x03

MAILBOX = 0x0300
MAILBOX_MAX_REGISTERS = 120
MAILBOX_READBACK = MAILBOX + 0x40
READBACK_REGISTERS = 8
EXPIRY_S = 24 * 3600
REFRESH_S = 1.0          # registers are recomputed from the model at most once per second
STEP_S = 300.0           # long clock jumps are integrated in 5-minute steps
OVERLOAD_RETRY_S = 300.0


class FieldHooks(Protocol):
    """What a device needs from the running field."""
    clock: Callable[[], float]
    master_key: bytes

    def random(self) -> float: ...
    def gauss(self, sigma: float) -> float: ...
    def schedule_frame(self, device: "SimMeter", delay: float, apply: Callable[[], None]) -> None: ...
    def frame_applied(self, device: "SimMeter") -> None: ...


# Where a meter sits on the area's low-voltage network: its voltage is the transformer's secondary (what the
# terminal measures) less the drop of the lines up to it: a building's incoming supply, a room at the end of it.
MASTER_METER_POSITION = 0.993
ROOM_METER_POSITION = 0.983


class Area:
    """Shared state of a transformer area: the terminal's transformer sets every voltage in it.

    With a terminal, `phase_volts` are the transformer's secondary phase voltages (tap, supply, load, faults);
    each meter reads them at its position (MASTER_METER_POSITION, ROOM_METER_POSITION) plus its own noise.
    Without one (the scale site) the meters keep a daily shape times `voltage_factor` (1.0).
    """

    def __init__(self, name: str | None):
        self.name = name
        self.voltage_factor = 1.0   # no-load voltage against the middle tap at nominal supply (history backfill)
        self.terminal: AreaTerminal | None = None
        self.devices: list[SimMeter] = []

    def phase_volts(self, now: float) -> tuple[float, float, float] | None:
        return None if self.terminal is None else self.terminal.phase_volts(now)

    def changed(self) -> None:
        """Something that moves every voltage in the area changed: each device rebuilds its registers."""
        for device in self.devices:
            device.mark_dirty()


def _u32_words(value: int) -> tuple[int, int]:
    value &= 0xFFFFFFFF
    return value >> 16, value & 0xFFFF


def _s16(value: int) -> int:
    return max(-32768, min(32767, value)) & 0xFFFF


def _u16(value: int) -> int:
    return max(0, min(0xFFFF, value))


class SimMeter:
    """Base: Modbus register access, faults and the secure-frame mailbox shared by all device models."""

    profile: str
    holding_blocks: tuple[tuple[int, int, str], ...] = ()   # (start, count, image name)
    input_blocks: tuple[tuple[int, int, str], ...] = ()
    has_mailbox = False
    commands: dict[int, str] = {}                          # command code -> method name

    def __init__(self, spec: MeterSpec, hooks: FieldHooks, area: Area):
        self.spec = spec
        self.address = spec.address
        self.unit = spec.unit
        self.profile = spec.profile
        self.hooks = hooks
        self.area = area
        self.offline = False
        self.bad_replies: list = [None, 0]     # [mode, remaining]
        self.command_seq = spec.command_seq
        self.purchase_count = 0
        self.last_money: tuple | None = None   # (command, counter, payload) of the last applied money frame
        self.clock_offset = 0.0
        self.mailbox_result = Result.IDLE
        self.mailbox_answers: tuple[int, int] = (0, 0)  # (command code, counter) of the frame the result answers
        self.mailbox_version = 2                         # 1: the read-back names no frame (registers 5-7 read 0)
        self.mailbox_delay_s: float | None = None        # time to process a frame; None: 20-50 ms at random
        self.processing = False
        self._keys: secure.MeterKeys | None = None
        self._images: dict[str, bytes] = {}
        self._image_t = -math.inf
        self._dirty = True
        self._t = hooks.clock()
        area.devices.append(self)

    # ------------------------------------------------------------ time and model
    def meter_time(self) -> float:
        return self.hooks.clock() + self.clock_offset

    def advance(self, now: float) -> None:
        """Bring the physical model to `now` (energy, money, relay)."""
        self._t = max(self._t, now)

    def resume(self, now: float) -> None:
        """Continue the model from `now`: time the field was not running is not simulated."""
        self._t = now
        self._dirty = True

    def rebase(self) -> None:
        """Re-read upstream counters after saved state was restored (aggregating devices only)."""

    def refresh(self, now: float) -> None:
        if self._dirty or now - self._image_t >= REFRESH_S:
            self.advance(now)
            self._build_images()
            self._image_t = now
            self._dirty = False

    def _build_images(self) -> None:
        raise NotImplementedError

    def mark_dirty(self) -> None:
        self._dirty = True

    # ------------------------------------------------------------ Modbus access
    def read_registers(self, function: int, address: int, count: int, now: float) -> bytes | int:
        """Packed register bytes, or a Modbus exception code."""
        blocks = self.holding_blocks if function == 3 else self.input_blocks
        for start, size, image in blocks:
            if start <= address and address + count <= start + size:
                self.refresh(now)
                offset = 2 * (address - start)
                return self._images[image][offset:offset + 2 * count]
        return ILLEGAL_ADDRESS

    def write_register(self, address: int, value: int, now: float) -> int | None:
        return ILLEGAL_ADDRESS  # nothing is writable one register at a time: settings go through the mailbox

    def write_registers(self, address: int, values: list[int], now: float) -> int | None:
        if not self.has_mailbox or address != MAILBOX or len(values) > MAILBOX_MAX_REGISTERS:
            return ILLEGAL_ADDRESS
        if self.processing:
            self.mailbox_result = Result.BUSY
            self.mailbox_answers = (0, 0)
            self.mark_dirty()
            return None
        try:
            frame = secure.registers_to_frame(values)
        except secure.BadFrame:
            frame = None
        self.processing = True
        self.mailbox_result = Result.BUSY
        self.mailbox_answers = (0, 0)
        self.mark_dirty()
        delay = self.mailbox_delay_s if self.mailbox_delay_s is not None else 0.02 + 0.03 * self.hooks.random()
        self.hooks.schedule_frame(self, delay, lambda: self._finish_frame(frame))
        return None

    def take_bad_reply(self) -> str | None:
        mode, remaining = self.bad_replies
        if remaining <= 0:
            return None
        self.bad_replies[1] = remaining - 1
        return mode

    # ------------------------------------------------------------ secure frames
    @property
    def keys(self) -> secure.MeterKeys:
        if self._keys is None:
            self._keys = secure.meter_keys(self.hooks.master_key, self.address)
        return self._keys

    def _finish_frame(self, frame: bytes | None) -> None:
        self.processing = False
        now = self.hooks.clock()
        self.advance(now)
        result, command, counter = (Result.BAD_FRAME, 0, 0) if frame is None else self.process_frame(frame)
        self.mailbox_result = result
        self.mailbox_answers = (int(command), counter)
        self.mark_dirty()
        self.hooks.frame_applied(self)

    def process_frame(self, frame: bytes) -> tuple[Result, int, int]:
        """Check and apply one secure frame (nothing changes unless APPLIED).

        Returns (result, command code, counter): the frame the result answers. A frame that fails
        its checks names nothing (0, 0): its command and counter cannot be trusted.
        """
        try:
            plain = secure.open_frame(self.keys, self.address, frame)
        except secure.BadFrame:
            return Result.BAD_FRAME, 0, 0
        return self._check_and_apply(plain), plain.command, plain.counter

    def _check_and_apply(self, plain: secure.Plaintext) -> Result:
        """The rules of secure-frame.md for an authentic frame, in the order of the module docstring."""
        method = self.commands.get(plain.command)
        if method is None:
            return Result.INVALID_PAYLOAD
        try:
            apply = getattr(self, method)(plain.payload)
        except InvalidPayload:
            return Result.INVALID_PAYLOAD
        if plain.command in secure.MONEY_COMMANDS:
            fingerprint = (plain.command, plain.counter, plain.payload)
            if plain.counter == self.purchase_count and fingerprint == self.last_money:
                return Result.ALREADY_APPLIED
            if plain.counter != self.purchase_count + 1:
                return Result.COUNT_MISMATCH
        elif plain.counter <= self.command_seq:
            return Result.REPLAYED
        if abs(plain.issued_at - self.meter_time()) > EXPIRY_S:
            return Result.EXPIRED
        result = apply()
        if result is not Result.APPLIED:
            return result
        if plain.command in secure.MONEY_COMMANDS:
            self.purchase_count = plain.counter
            self.last_money = (plain.command, plain.counter, plain.payload)
        else:
            self.command_seq = plain.counter
        return Result.APPLIED

    def _cmd_time_sync(self, payload: bytes):
        if len(payload) != 4:
            raise InvalidPayload("TIME_SYNC takes 4 bytes")
        (unix_seconds,) = struct.unpack(">I", payload)

        def apply():
            self.clock_offset = unix_seconds - self.hooks.clock()
            return Result.APPLIED
        return apply

    def _readback_image(self, balance_fen: int = 0) -> bytes:
        hi, lo = _u32_words(balance_fen)
        command, counter = self.mailbox_answers if self.mailbox_version >= 2 else (0, 0)
        counter_hi, counter_lo = _u32_words(counter)
        return struct.pack(">8H", int(self.mailbox_result), self.purchase_count & 0xFFFF,
                           self.command_seq & 0xFFFF, hi, lo, command, counter_hi, counter_lo)

    # ------------------------------------------------------------ persistence
    def to_state(self) -> dict:
        return {"command_seq": self.command_seq, "clock_offset": self.clock_offset,
                "mailbox_result": int(self.mailbox_result), "mailbox_answers": list(self.mailbox_answers)}

    def load_state(self, state: dict) -> None:
        self.command_seq = int(state.get("command_seq", self.command_seq))
        self.clock_offset = float(state.get("clock_offset", 0.0))
        self.mailbox_result = Result(int(state.get("mailbox_result", 0)))
        command, counter = state.get("mailbox_answers", (0, 0))
        self.mailbox_answers = (int(command), int(counter))
        self.mark_dirty()

    def reset_counters(self) -> None:
        self.purchase_count = 0
        self.command_seq = 0
        self.mailbox_result = Result.IDLE
        self.mailbox_answers = (0, 0)
        self.mark_dirty()


class PrepaidMeter(SimMeter):
    """Acrel DDSY1352 (single-phase, meter_type 7) / DTSY1352 (three-phase, meter_type 5) with local fee control."""

    holding_blocks = ((0x0200, 48, "realtime"), (0x0046, 29, "config"), (MAILBOX_READBACK, READBACK_REGISTERS, "readback"))
    has_mailbox = True
    commands = {Command.RECHARGE: "_cmd_recharge", Command.REFUND: "_cmd_refund",
                Command.SET_TARIFF: "_cmd_set_tariff", Command.SET_LIMITS: "_cmd_set_limits",
                Command.RELAY: "_cmd_relay", Command.TIME_SYNC: "_cmd_time_sync"}

    def __init__(self, spec: MeterSpec, hooks: FieldHooks, area: Area):
        super().__init__(spec, hooks, area)
        self.three_phase = spec.profile == "acrel-dtsy1352"
        self.meter_type = 5 if self.three_phase else 7
        self.balance_fen = spec.balance_fen
        self.fen_fraction = 0.0                 # charged but not yet whole fen
        self.purchase_count = spec.purchase_count
        self.prepaid_enabled = spec.prepaid_enabled
        self.keep_power = spec.keep_power
        self.forced_trip = spec.forced_trip
        self.overload_tripped = False
        self.overload_since = 0.0
        self.tamper = False
        self.fault = False
        self.ignores_relay = False   # a fault: answers APPLIED to a RELAY frame but leaves its relay as it was
        self.alarm1_fen = spec.alarm1_fen
        self.alarm2_fen = spec.alarm2_fen
        self.overdraft_fen = spec.overdraft_fen
        self.overload_w = spec.overload_w
        self.tariff: Tariff = spec.tariff
        self.segments = spec.tariff.segments or ()
        self._segment_table = segment_table(self.segments)
        self.energy_kwh = list(spec.energy_kwh)  # sharp, peak, flat, valley
        self.monthly_kwh = 0.0
        self.month_key = self._month_key(self._t)
        self.character = spec.character
        self.pf_base = spec.pf
        self.arrears_tripped = self.prepaid_enabled and self.balance_fen <= -self.overdraft_fen
        self.noise = 0.0
        self.power_kw = 0.0
        self.voltage = 220.0
        self.pf = spec.pf
        self.frequency = 50.0
        self.phase = 0          # 0, 1, 2: the phase a single-phase meter hangs on (the field spreads rooms)

    # ------------------------------------------------------------ state seen by tests and the demo
    @property
    def relay_closed(self) -> bool:
        if self.overload_tripped:
            return False
        if self.keep_power:
            return True
        if self.forced_trip:
            return False
        return not (self.prepaid_enabled and self.arrears_tripped)

    @property
    def arrears(self) -> bool:
        return self.prepaid_enabled and self.balance_fen <= 0

    @property
    def alarm1(self) -> bool:
        return self.prepaid_enabled and self.balance_fen <= self.alarm1_fen

    @property
    def alarm2(self) -> bool:
        return self.prepaid_enabled and self.balance_fen <= self.alarm2_fen

    @property
    def energy_total(self) -> float:
        return sum(self.energy_kwh)

    energy_sharp = property(lambda self: self.energy_kwh[0])
    energy_peak = property(lambda self: self.energy_kwh[1])
    energy_flat = property(lambda self: self.energy_kwh[2])
    energy_valley = property(lambda self: self.energy_kwh[3])

    # ------------------------------------------------------------ physics and money
    @staticmethod
    def _month_key(unix_seconds: float) -> int:
        t = time.gmtime(unix_seconds + SITE_UTC_OFFSET_S)
        return t.tm_year * 12 + t.tm_mon - 1

    def demand_kw(self, at: float) -> float:
        return ROOM_PEAK_KW * self.character * demand_fraction(at) * (3.0 if self.three_phase else 1.0)

    def advance(self, now: float) -> None:
        dt = now - self._t
        if dt > 0:
            if dt <= STEP_S:
                decay = math.exp(-dt / 300.0)
                self.noise = self.noise * decay + math.sqrt(1.0 - decay * decay) * self.hooks.gauss(1.0)
                self._step(now - dt / 2, dt, math.exp(0.25 * self.noise - 0.03))
            else:
                steps = math.ceil(dt / STEP_S)
                h = dt / steps
                for i in range(steps):
                    self._step(self._t + (i + 0.5) * h, h, 1.0)
            self._t = now
            if self.overload_tripped and now - self.overload_since >= OVERLOAD_RETRY_S:
                self.overload_tripped = False
        # what the meter measures right now
        self.power_kw = self.demand_kw(now) * math.exp(0.25 * self.noise - 0.03) if self.relay_closed else 0.0

    def _step(self, at: float, seconds: float, noise_factor: float) -> None:
        power = self.demand_kw(at) * noise_factor if self.relay_closed else 0.0
        if power and self.overload_w and power * 1000.0 > self.overload_w:
            self.overload_tripped = True
            self.overload_since = at
            power = 0.0
        if power <= 0.0:
            return
        kwh = power * seconds / 3600.0
        local = at + SITE_UTC_OFFSET_S
        segment = self._segment_table[int(local % 86400) // 60]
        self.energy_kwh[segment] += kwh
        month = self._month_key(at)
        if month != self.month_key:
            self.month_key, self.monthly_kwh = month, 0.0
        price = price_for(self.tariff, segment, self.monthly_kwh)
        self.monthly_kwh += kwh
        if self.prepaid_enabled:
            self._charge(kwh * price / 100.0)

    def _charge(self, cost_fen: float) -> None:
        self.fen_fraction += cost_fen
        whole = int(self.fen_fraction)
        if whole:
            self.fen_fraction -= whole
            self.balance_fen -= whole
            if not self.keep_power and self.balance_fen < -self.overdraft_fen:
                self.balance_fen = -self.overdraft_fen
        self._update_arrears()

    def _update_arrears(self) -> None:
        if not self.prepaid_enabled:
            self.arrears_tripped = False
        elif self.balance_fen <= -self.overdraft_fen:
            self.arrears_tripped = True
        elif self.balance_fen > 0:
            self.arrears_tripped = False

    # ------------------------------------------------------------ commands
    def _amount(self, payload: bytes) -> int:
        if len(payload) != 4:
            raise InvalidPayload("amount takes 4 bytes")
        (amount,) = struct.unpack(">I", payload)
        if amount == 0:
            raise InvalidPayload("amount 0")
        return amount

    def _cmd_recharge(self, payload: bytes):
        amount = self._amount(payload)

        def apply():
            self.prepaid_enabled = True
            self.balance_fen += amount
            self._update_arrears()
            return Result.APPLIED
        return apply

    def _cmd_refund(self, payload: bytes):
        amount = self._amount(payload)

        def apply():
            if amount > self.balance_fen:
                return Result.INSUFFICIENT
            self.balance_fen -= amount
            self._update_arrears()
            return Result.APPLIED
        return apply

    def _cmd_set_tariff(self, payload: bytes):
        tariff = secure.parse_tariff_payload(payload)

        def apply():
            self.tariff = tariff
            if tariff.segments:
                self.segments = tariff.segments
                self._segment_table = segment_table(tariff.segments)
            return Result.APPLIED
        return apply

    def _cmd_set_limits(self, payload: bytes):
        if len(payload) != 16:
            raise InvalidPayload("SET_LIMITS takes 16 bytes")
        alarm1, alarm2, overload, overdraft = struct.unpack(">IIII", payload)
        if overdraft > 0x7FFFFFFF:
            raise InvalidPayload("overdraft out of range")

        def apply():
            self.alarm1_fen, self.alarm2_fen, self.overload_w, self.overdraft_fen = alarm1, alarm2, overload, overdraft
            self._update_arrears()
            return Result.APPLIED
        return apply

    def _cmd_relay(self, payload: bytes):
        if len(payload) != 1 or payload[0] > 3:
            raise InvalidPayload("RELAY takes one action byte 0..3")
        action = payload[0]

        def apply():
            if self.ignores_relay:
                return Result.APPLIED   # the sequence moves on (base class), the relay and its bits do not
            if action == secure.RelayAction.TRIP:
                self.forced_trip = True
            elif action == secure.RelayAction.CLOSE:
                self.forced_trip = False
                self.overload_tripped = False
            elif action == secure.RelayAction.KEEP_POWER_ON:
                self.keep_power = True
            else:
                self.keep_power = False
                self.prepaid_enabled = True
                self._update_arrears()
            return Result.APPLIED
        return apply

    # ------------------------------------------------------------ registers
    def _build_images(self) -> None:
        now = self._t
        closed = self.relay_closed
        g = self.hooks.gauss
        supply = self.area.phase_volts(now)
        if supply is None:
            fraction = demand_fraction(now)
            supply = ((226.0 - 8.0 * fraction) * self.area.voltage_factor,) * 3
        else:
            supply = tuple(v * ROOM_METER_POSITION for v in supply)
        self.voltage = supply[self.phase] + g(0.6)
        self.pf = min(0.999, max(0.5, self.pf_base + g(0.005)))
        self.frequency = 50.0 + g(0.015)
        watts = self.power_kw * 1000.0 if closed else 0.0
        r = [0] * 48
        r[0] = self.meter_type
        if self.three_phase:
            shares = (0.40, 0.33, 0.27)
            volts = (self.voltage, supply[1] + g(0.6), supply[2] + g(0.6))
        else:
            shares = (1.0, 0.0, 0.0)
            volts = (self.voltage, 0.0, 0.0)
        for i in range(3):
            if self.three_phase or i == 0:
                r[1 + i] = _u16(round(volts[i] * 10))
                phase_w = watts * shares[i]
                r[4 + i] = _u16(round(phase_w / (volts[i] * self.pf) * 100))
                r[7 + i] = _s16(round(phase_w))
                r[15 + i] = _s16(round(self.pf * 1000))
        r[10] = _s16(round(watts))
        r[18] = _s16(round(self.pf * 1000))
        e = self.energy_kwh
        r[21], r[22] = _u32_words(int(sum(e) * 100))
        r[23], r[24] = _u32_words(int(e[0] * 100))
        r[25], r[26] = _u32_words(int(e[1] * 100))
        r[27], r[28] = _u32_words(int(e[2] * 100))
        r[29], r[30] = _u32_words(int(e[3] * 100))
        r[31], r[32] = _u32_words(self.balance_fen)
        r[33] = self.purchase_count & 0xFFFF
        r[36] = ((self.overload_tripped << 4) | (self.arrears << 5) | (self.alarm1 << 6) | (self.alarm2 << 7)
                 | (self.fault << 8) | (closed << 13))
        r[37] = self.keep_power | (self.prepaid_enabled << 1) | (self.forced_trip << 2) | (self.tamper << 3)
        r[38] = self.command_seq & 0xFFFF
        r[46] = _u16(round(self.frequency * 100))
        self._images["realtime"] = struct.pack(">48H", *r)
        c = [0] * 29
        c[0], c[1] = _u32_words(self.alarm1_fen)
        c[2], c[3] = _u32_words(self.alarm2_fen)
        c[4], c[5] = _u32_words(self.overdraft_fen)
        for i, price in enumerate(self.tariff.prices):
            c[19 + 2 * i], c[20 + 2 * i] = _u32_words(price)
        c[27] = _u16(self.overload_w)
        c[28] = self.tariff.mode
        self._images["config"] = struct.pack(">29H", *c)
        self._images["readback"] = self._readback_image(self.balance_fen)

    # ------------------------------------------------------------ persistence
    def to_state(self) -> dict:
        state = super().to_state()
        state.update(
            balance_fen=self.balance_fen, fen_fraction=self.fen_fraction, purchase_count=self.purchase_count,
            last_money=None if self.last_money is None else
            [int(self.last_money[0]), self.last_money[1], self.last_money[2].hex()],
            energy_kwh=self.energy_kwh, monthly_kwh=self.monthly_kwh, month_key=self.month_key,
            prepaid_enabled=self.prepaid_enabled, keep_power=self.keep_power, forced_trip=self.forced_trip,
            arrears_tripped=self.arrears_tripped, overload_tripped=self.overload_tripped,
            tamper=self.tamper, fault=self.fault, alarm1_fen=self.alarm1_fen, alarm2_fen=self.alarm2_fen,
            overdraft_fen=self.overdraft_fen, overload_w=self.overload_w, tariff=self.tariff.to_json(),
            segments=[list(s) for s in self.segments])
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.balance_fen = int(state["balance_fen"])
        self.fen_fraction = float(state.get("fen_fraction", 0.0))
        self.purchase_count = int(state["purchase_count"])
        money = state.get("last_money")
        self.last_money = None if money is None else (int(money[0]), int(money[1]), bytes.fromhex(money[2]))
        self.energy_kwh = [float(x) for x in state["energy_kwh"]]
        self.monthly_kwh = float(state.get("monthly_kwh", 0.0))
        self.month_key = int(state.get("month_key", self.month_key))
        for flag in ("prepaid_enabled", "keep_power", "forced_trip", "arrears_tripped", "overload_tripped",
                     "tamper", "fault"):
            setattr(self, flag, bool(state.get(flag, getattr(self, flag))))
        for limit in ("alarm1_fen", "alarm2_fen", "overdraft_fen", "overload_w"):
            setattr(self, limit, int(state.get(limit, getattr(self, limit))))
        self.tariff = Tariff.from_json(state["tariff"])
        self.segments = tuple((int(a), int(b)) for a, b in state.get("segments", ()))
        self._segment_table = segment_table(self.segments)
        self.overload_since = self.hooks.clock()

    def reset_counters(self) -> None:
        super().reset_counters()
        self.balance_fen = 0
        self.fen_fraction = 0.0
        self.last_money = None
        self._update_arrears()


class MasterMeter(SimMeter):
    """Eastron SDM630 at a building's incoming supply: the building's rooms plus line loss."""

    input_blocks = ((0x0000, 76, "main"), (0x00E0, 16, "thd"))

    def __init__(self, spec: MeterSpec, hooks: FieldHooks, area: Area, rooms: list[PrepaidMeter]):
        super().__init__(spec, hooks, area)
        self.rooms = rooms
        self.line_loss = spec.line_loss
        self.energy_import = spec.energy_total_kwh
        self._rooms_seen = sum(r.energy_total for r in rooms)
        self.phase_kw = [0.0, 0.0, 0.0]
        self.power_kw = 0.0

    @property
    def energy_total(self) -> float:
        return self.energy_import

    def rebase(self) -> None:
        """Take the rooms' current energy as already counted (after the field restores saved state)."""
        self._rooms_seen = sum(r.energy_total for r in self.rooms)

    def rooms_energy(self, now: float) -> float:
        total = 0.0
        phase = [0.0, 0.0, 0.0]
        for i, room in enumerate(self.rooms):
            room.advance(now)
            total += room.energy_total
            phase[i % 3] += room.power_kw
        self.phase_kw = [p * (1 + self.line_loss) for p in phase]
        self.power_kw = sum(self.phase_kw)
        return total

    def advance(self, now: float) -> None:
        seen = self.rooms_energy(now)
        self._t = max(self._t, now)
        self.energy_import += max(0.0, seen - self._rooms_seen) * (1 + self.line_loss)
        self._rooms_seen = seen

    def _build_images(self) -> None:
        g = self.hooks.gauss
        fraction = demand_fraction(self._t)
        supply = self.area.phase_volts(self._t)
        if supply is None:
            supply = ((228.0 - 6.0 * fraction) * self.area.voltage_factor,) * 3
        position = 1.0 if self.area.terminal is None else MASTER_METER_POSITION
        volts = [v * position + g(0.5) for v in supply]
        pf = [min(0.999, 0.93 + g(0.01)) for _ in range(3)]
        watts = [p * 1000.0 * (1 + g(0.004)) for p in self.phase_kw]
        amps = [w / (v * f) for w, v, f in zip(watts, volts, pf)]
        va = [w / f for w, f in zip(watts, pf)]
        var = [math.sqrt(max(0.0, s * s - w * w)) for s, w in zip(va, watts)]
        f = [0.0] * 38
        f[0:3] = volts
        f[3:6] = amps
        f[6:9] = watts
        f[9:12] = va
        f[12:15] = var
        f[15:18] = pf
        f[24] = sum(amps) / 3
        f[26] = sum(watts)
        f[28] = sum(va)
        f[30] = sum(var)
        f[31] = sum(watts) / sum(va) if sum(va) else 1.0
        f[35] = 50.0 + g(0.015)
        f[36] = self.energy_import
        self._images["main"] = struct.pack(">38f", *f)
        # neutral current: the phasor sum of the three phase currents (120 degrees apart)
        neutral = abs(sum(a * cmath.exp(-2j * math.pi * i / 3) for i, a in enumerate(amps)))
        thd = [2.5 + 1.0 * fraction + g(0.1) for _ in range(3)]
        self._images["thd"] = struct.pack(">8f", neutral, 0.0, 0.0, 0.0, 0.0, *thd)

    def to_state(self) -> dict:
        state = super().to_state()
        state["energy_import"] = self.energy_import
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.energy_import = float(state.get("energy_import", self.energy_import))


class AreaTerminal(SimMeter):
    """Wattline TTU at the transformer: telemetry, signals, tap, capacity mode, capacitor bank and outlet breakers.

    Physics (per phase, the secondary at the terminal; per-unit on the rating of the capacity mode in use):
    - no-load voltage  V0 = Vn * (NO_LOAD_RATIO + TAP_STEP * (tap - middle) + supply deviation), the supply
      deviation being the MV offset (set_supply_offset), STANDBY_OFFSET_PCT while on the standby supply after a
      changeover, and the MV network's own evening sag (MV_EVENING_SAG * the day's demand fraction): one tap step
      is `volts_per_step` = 2.5 % of nominal whatever the load;
    - voltage drop     dV = Vn * (R_PU * p + X_PU * q), p and q the phase's active and net reactive load in per
      unit of a third of the mode's rating: load lowers the voltage, small mode doubles the drop, capacitors
      lift it; fault phase_sag takes phase A down to PHASE_SAG of that;
    - reactive power   Q_load = the rooms' own (P * tan(acos pf)) + magnetizing (NO_LOAD_Q_PU * rating) +
      leakage (X_PU * S^2 / rating); Q_net = Q_load - steps * kvar_step; PF = P / sqrt(P^2 + Q_net^2);
    - capacitor bank   the terminal's own controller: one step in when Q_net >= CAP_SWITCH_IN steps' kvar, one
      out when Q_net <= CAP_SWITCH_OUT (leading), at most one switching per capacitor_delay_s: the band is wider
      than a step, so a switching never undoes itself (no chatter); the server only reads the bit mask;
    - outlets          the area's load is fed through the outlets in service (the first SERVICE_OUTLETS, closed
      when the terminal is built; the others are spares that carry nothing), each an EQUAL share of it (the model
      does not know which meters sit behind which outlet): an open outlet takes its share of P, of the rooms' Q,
      of the currents and of the energy counted off the transformer, and the voltage drop follows; a breaker with
      the fault breaker_stuck does not open and keeps its share. The rooms' own meters are not cut off;
    - top oil          first order towards ambient + OIL_RISE_RATED * ((1 + R K^2) / (1 + R))^x (IEC 60076-7,
      ONAN: R = LOSS_RATIO, x = OIL_EXPONENT), K = S / rating of the mode, time constant OIL_TAU_S.
    """

    holding_blocks = ((0x0000, 42, "floats"), (0x0040, 5, "status"),
                      (MAILBOX_READBACK, READBACK_REGISTERS, "readback"))
    has_mailbox = True
    commands = {Command.TAP_SET: "_cmd_tap_set", Command.CAPACITY_MODE: "_cmd_capacity_mode",
                Command.BREAKER: "_cmd_breaker", Command.TIME_SYNC: "_cmd_time_sync"}
    FAULTS = ("phase_sag", "harmonics", "stuck_tap", "breaker_stuck")
    INPUTS = ("door_open", "smoke", "water")
    NO_LOAD_RATIO = 1.05         # 231 V on a 220 V network at the middle tap (a 10/0.4 kV transformer)
    TAP_STEP = 0.025             # of nominal per tap position
    MV_EVENING_SAG = 0.02        # the MV supply sags 2 % of nominal at the day's peak demand
    STANDBY_OFFSET_PCT = -1.5    # the standby MV supply runs this much lower than the main one
    R_PU, X_PU = 0.010, 0.040    # short-circuit impedance 4.1 % (a 315/630 kVA distribution transformer)
    NO_LOAD_Q_PU = 0.003         # magnetizing reactive power, of the mode's rating (I0 0.3 %, an S13 630 kVA)
    CAP_SWITCH_IN, CAP_SWITCH_OUT = 1.1, -0.3   # thresholds of Q_net in steps' kvar
    PHASE_SAG = 0.85             # fault phase_sag: phase A at 85 %
    OUTLETS, SERVICE_OUTLETS = 8, 6   # outlet breakers 1-8; 1-6 feed the area's load, 7-8 are spares
    OIL_RISE_RATED, LOSS_RATIO, OIL_EXPONENT, OIL_TAU_S = 55.0, 6.0, 0.8, 180 * 60.0
    volts_per_step = TAP_STEP * 220.0   # per terminal: TAP_STEP of its nominal phase voltage

    def __init__(self, spec: MeterSpec, hooks: FieldHooks, area: Area, rooms: list[PrepaidMeter],
                 master: MasterMeter | None):
        super().__init__(spec, hooks, area)
        area.terminal = self
        self.rooms = rooms
        self.master = master
        self.line_loss = spec.line_loss
        self.nominal_v = spec.nominal_voltage
        self.volts_per_step = self.TAP_STEP * self.nominal_v
        self.rated_kva = (spec.rating_kva / 2, spec.rating_kva)  # small, large capacity mode
        self.tap_count = spec.tap_count
        self.tap_position = spec.tap_position
        self.capacity_mode = 1
        self.breakers = [True] * self.SERVICE_OUTLETS + [False] * (self.OUTLETS - self.SERVICE_OUTLETS)
        self.door_open = self.smoke = self.water = False
        self.supply_offset_pct = 0.0
        self.on_standby = False      # changeover (备自投) to the standby supply
        self.faults: set[str] = set()
        self.capacitor_count = spec.capacitor_count
        self.capacitor_kvar = spec.capacitor_kvar
        self.capacitor_delay_s = spec.capacitor_delay_s
        self.capacitor_mask = 0
        self._capacitor_switched_at = -math.inf
        self.oil_temp: float | None = None
        self.energy_total = spec.energy_total_kwh
        self._upstream_seen = self._upstream_energy(self._t)
        self.power_kw = 0.0
        self._volts: tuple[float, float, float] | None = None
        self._volts_t = -math.inf
        self._apply_tap()

    # ------------------------------------------------------------ state changed by commands and the field
    def _apply_tap(self) -> None:
        """The tap, supply or a fault changed: every voltage of the area follows from now on."""
        self.area.voltage_factor = self._no_load_pu() / self.NO_LOAD_RATIO
        self._volts = None
        self.area.changed()

    def set_fault(self, fault: str, on: bool) -> None:
        self.advance(self.hooks.clock())
        if on:
            self.faults.add(fault)
        else:
            self.faults.discard(fault)
        self._apply_tap()

    def set_input(self, name: str, value: bool) -> None:
        setattr(self, name, bool(value))
        self.mark_dirty()

    def set_supply_offset(self, percent: float) -> None:
        self.advance(self.hooks.clock())
        self.supply_offset_pct = float(percent)
        self._apply_tap()

    def set_standby(self, on: bool) -> None:
        self.advance(self.hooks.clock())
        self.on_standby = bool(on)
        self._apply_tap()

    def set_breaker(self, outlet: int, closed: bool) -> bool:
        """Outlet breaker `outlet` (1..8) opened or closed (by a command or by hand at the switchgear); a breaker
        with the fault breaker_stuck does not open. Whether it is closed now."""
        self.advance(self.hooks.clock())   # the energy so far at the old share
        if closed or "breaker_stuck" not in self.faults:
            self.breakers[outlet - 1] = bool(closed)
            self._volts = None
            self.area.changed()
        self.mark_dirty()
        return self.breakers[outlet - 1]

    def fed_fraction(self) -> float:
        """The share of the area's load its closed outlets in service carry (equal shares, spares none)."""
        return sum(1 for b in self.breakers[:self.SERVICE_OUTLETS] if b) / self.SERVICE_OUTLETS

    @property
    def capacitor_steps(self) -> int:
        """Bit mask of the switched-in steps (register 0x0042)."""
        return self.capacitor_mask

    @property
    def steps_in(self) -> int:
        return bin(self.capacitor_mask).count("1")

    # ------------------------------------------------------------ energy and load
    def rebase(self) -> None:
        """Take the upstream energy as already counted (after the field restores saved state)."""
        if self.master is not None:
            self._upstream_seen = self.master.energy_import
        else:
            self._upstream_seen = sum(r.energy_total for r in self.rooms)

    def resume(self, now: float) -> None:
        super().resume(now)
        self._volts = None

    def _upstream_energy(self, now: float) -> float:
        if self.master is not None:
            self.master.advance(now)
            self.power_kw = self.master.power_kw
            return self.master.energy_import
        total, power = 0.0, 0.0
        for room in self.rooms:
            room.advance(now)
            total += room.energy_total
            power += room.power_kw
        self.power_kw = power
        return total

    def advance(self, now: float) -> None:
        dt = now - self._t
        self._t = max(self._t, now)
        seen = self._upstream_energy(now)
        self.energy_total += max(0.0, seen - self._upstream_seen) * (1 + self.line_loss) * self.fed_fraction()
        self._upstream_seen = seen
        self.power_kw *= 1 + self.line_loss
        self._switch_capacitors(now)
        self._warm_oil(now, dt)

    def _no_load_pu(self) -> float:
        """No-load secondary voltage in per unit of nominal, before the MV network's daily sag."""
        middle = (self.tap_count + 1) / 2
        supply = self.supply_offset_pct + (self.STANDBY_OFFSET_PCT if self.on_standby else 0.0)
        return self.NO_LOAD_RATIO + self.TAP_STEP * (self.tap_position - middle) + supply / 100.0

    def _flows(self, steps: int) -> tuple[list[float], list[float]]:
        """Active and net reactive power per phase (kW, kvar) through the transformer with `steps` capacitors in."""
        p_rooms, q_rooms = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        for room in self.rooms:
            q = room.power_kw * math.tan(math.acos(min(0.999, max(0.5, room.pf_base))))
            for phase, share in (((0, 1 / 3), (1, 1 / 3), (2, 1 / 3)) if room.three_phase else ((room.phase, 1.0),)):
                p_rooms[phase] += room.power_kw * share
                q_rooms[phase] += q * share
        seen, fed = sum(p_rooms), self.fed_fraction()
        scale = self.power_kw * fed / seen if seen > 0 else 0.0
        p = [x * scale for x in p_rooms] if seen > 0 else [self.power_kw * fed / 3] * 3
        rating = self.rated_kva[self.capacity_mode] / 3
        q_compensated = [x * scale + self.NO_LOAD_Q_PU * rating - steps * self.capacitor_kvar / 3 for x in q_rooms]
        q = [qc + self.X_PU * (pp * pp + qc * qc) / rating for pp, qc in zip(p, q_compensated)]
        return p, q

    def _switch_capacitors(self, now: float) -> None:
        if now - self._capacitor_switched_at < self.capacitor_delay_s:
            return
        q_net = sum(self._flows(self.steps_in)[1])
        free = [i for i in range(self.capacitor_count) if not self.capacitor_mask >> i & 1]
        if q_net >= self.CAP_SWITCH_IN * self.capacitor_kvar and free:
            self.capacitor_mask |= 1 << free[0]
        elif q_net <= self.CAP_SWITCH_OUT * self.capacitor_kvar and self.capacitor_mask:
            self.capacitor_mask &= ~(1 << (self.capacitor_mask.bit_length() - 1))
        else:
            return
        self._capacitor_switched_at = now
        self._volts = None
        self.area.changed()

    def _ambient(self, t: float) -> float:
        local_hour = ((t + SITE_UTC_OFFSET_S) % 86400) / 3600.0
        return 14.0 + 6.0 * math.sin((local_hour - 9.0) / 24.0 * 2 * math.pi)

    def load_ratio(self) -> float:
        p, q = self._flows(self.steps_in)
        return math.hypot(sum(p), sum(q)) / self.rated_kva[self.capacity_mode]

    def _warm_oil(self, now: float, dt: float) -> None:
        k = self.load_ratio()
        rise = self.OIL_RISE_RATED * ((1 + self.LOSS_RATIO * k * k) / (1 + self.LOSS_RATIO)) ** self.OIL_EXPONENT
        target = self._ambient(now) + rise
        if self.oil_temp is None:
            self.oil_temp = target
        elif dt > 0:
            self.oil_temp += (target - self.oil_temp) * (1 - math.exp(-dt / self.OIL_TAU_S))

    # ------------------------------------------------------------ voltages
    def _secondary_volts(self, p: list[float], q: list[float]) -> tuple[float, float, float]:
        sag = self.MV_EVENING_SAG * demand_fraction(self._t)
        v0 = self.nominal_v * (self._no_load_pu() - sag)
        base = self.rated_kva[self.capacity_mode] / 3
        volts = [v0 - self.nominal_v * (self.R_PU * pp + self.X_PU * qq) / base for pp, qq in zip(p, q)]
        if "phase_sag" in self.faults:
            volts[0] *= self.PHASE_SAG
        return volts[0], volts[1], volts[2]

    def phase_volts(self, now: float) -> tuple[float, float, float]:
        """The secondary phase voltages now (no measuring noise), recomputed at most once a second."""
        if self._volts is None or now - self._volts_t >= REFRESH_S:
            self.advance(now)
            self._volts = self._secondary_volts(*self._flows(self.steps_in))
            self._volts_t = now
        return self._volts

    # ------------------------------------------------------------ registers
    def _build_images(self) -> None:
        g = self.hooks.gauss
        fraction = demand_fraction(self._t)
        p_ph, q_ph = self._flows(self.steps_in)
        self._volts = self._secondary_volts(p_ph, q_ph)
        self._volts_t = self._t
        volts = [v + g(0.2) for v in self._volts]
        p, q = sum(p_ph), sum(q_ph)
        pf = p / math.hypot(p, q) if p or q else 1.0
        amps = [math.hypot(pp, qq) * 1000.0 / v for pp, qq, v in zip(p_ph, q_ph, volts)]
        if "harmonics" in self.faults:
            thd_u = [7.3 + g(0.15), 7.6 + g(0.15), 7.9 + g(0.15)]
            thd_i = [30.0 + g(0.5), 31.0 + g(0.5), 29.0 + g(0.5)]
        else:
            thd_u = [2.0 + fraction + g(0.1), 2.1 + fraction + g(0.1), 1.9 + fraction + g(0.1)]
            thd_i = [6.0 + 4 * fraction + g(0.3), 6.5 + 4 * fraction + g(0.3), 5.5 + 4 * fraction + g(0.3)]
        # neutral: the phasor sum of the fundamentals plus the triplen harmonics (in phase on all three; the
        # third carries about 80 % of a dormitory load's current distortion), combined as RMS
        fundamental = abs(sum(a * cmath.exp(-1j * (2 * math.pi * i / 3 + math.atan2(qq, pp)))
                              for i, (a, pp, qq) in enumerate(zip(amps, p_ph, q_ph))))
        triplen = sum(a * 0.8 * h / 100.0 for a, h in zip(amps, thd_i))
        neutral = math.hypot(fundamental, triplen)
        ambient = self._ambient(self._t) + g(0.1)
        oil = (self.oil_temp if self.oil_temp is not None else ambient) + g(0.1)
        local_hour = ((self._t + SITE_UTC_OFFSET_S) % 86400) / 3600.0
        humidity = 60.0 - 10.0 * math.sin((local_hour - 9.0) / 24.0 * 2 * math.pi) + g(0.5)
        if self.water:
            humidity = max(humidity, 95.0 + g(0.5))   # a flooded cable pit
        values = volts + amps + [neutral, p, q, pf, 50.0 + g(0.015), *thd_u, *thd_i, self.energy_total,
                                 oil, ambient, min(100.0, humidity)]
        self._images["floats"] = struct.pack(">21f", *values)
        status = self.door_open | (self.smoke << 1) | (self.water << 2) | (self.on_standby << 3)
        for i, closed in enumerate(self.breakers):
            status |= closed << (8 + i)
        self._images["status"] = struct.pack(">5H", self.tap_position, self.tap_count, self.capacitor_mask,
                                             self.capacity_mode, status)
        self._images["readback"] = self._readback_image()

    # ------------------------------------------------------------ commands
    def _cmd_tap_set(self, payload: bytes):
        if len(payload) != 2:
            raise InvalidPayload("TAP_SET takes 2 bytes")
        (target,) = struct.unpack(">H", payload)
        if not 1 <= target <= self.tap_count:
            raise InvalidPayload(f"tap position {target} outside 1..{self.tap_count}")

        def apply():
            if "stuck_tap" not in self.faults:   # a stuck drive acknowledges and does not move
                self.tap_position = target
                self._apply_tap()
            return Result.APPLIED
        return apply

    def _cmd_capacity_mode(self, payload: bytes):
        if len(payload) != 1 or payload[0] > 1:
            raise InvalidPayload("CAPACITY_MODE takes one byte 0..1")
        mode = payload[0]

        def apply():
            self.capacity_mode = mode
            self._apply_tap()
            return Result.APPLIED
        return apply

    def _cmd_breaker(self, payload: bytes):
        if len(payload) != 2 or not 1 <= payload[0] <= 8 or payload[1] > 1:
            raise InvalidPayload("BREAKER takes outlet 1..8 and action 0..1")
        outlet, action = payload

        def apply():
            self.set_breaker(outlet, bool(action))   # a stuck breaker acknowledges, stays closed
            return Result.APPLIED
        return apply

    # ------------------------------------------------------------ persistence (faults are not kept)
    def to_state(self) -> dict:
        state = super().to_state()
        state.update(energy_total=self.energy_total, tap_position=self.tap_position,
                     capacity_mode=self.capacity_mode, breakers=self.breakers,
                     door_open=self.door_open, smoke=self.smoke, water=self.water,
                     supply_offset_pct=self.supply_offset_pct, on_standby=self.on_standby,
                     capacitor_mask=self.capacitor_mask, oil_temp=self.oil_temp)
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.energy_total = float(state.get("energy_total", self.energy_total))
        self.tap_position = int(state.get("tap_position", self.tap_position))
        self.capacity_mode = int(state.get("capacity_mode", self.capacity_mode))
        self.breakers = [bool(b) for b in state.get("breakers", self.breakers)]
        for flag in ("door_open", "smoke", "water", "on_standby"):
            setattr(self, flag, bool(state.get(flag, False)))
        self.supply_offset_pct = float(state.get("supply_offset_pct", 0.0))
        self.capacitor_mask = int(state.get("capacitor_mask", 0)) & ((1 << self.capacitor_count) - 1)
        oil = state.get("oil_temp")
        self.oil_temp = None if oil is None else float(oil)
        self._capacitor_switched_at = self.hooks.clock()   # a controller powering up waits its delay first
        self._apply_tap()
