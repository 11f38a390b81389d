"""Simulated site topology: gateways, RS485 buses and meters with their initial state; the demo and scale sites.

Demo site layout (`demo_site(base_port=P)`):
- 4 dormitory buildings "Building 1".."Building 4", each with one gateway "GW-B<n>" of 4 buses
  on ports P + 4(n-1) .. P + 4(n-1) + 3 (P..P+15). 120 single-phase acrel-ddsy1352 room meters
  per building (floors 1-6, 20 rooms per floor, rooms "B<n>-<floor><room:02>", e.g. "B1-101"),
  30 per bus in floor/room order, units 1..30; addresses 202611210001..202611210480.
- One shared area gateway "GW-AREA" with 4 buses on ports P+16..P+19; bus n carries the
  transformer area "Area B<n>" of building n: unit 1 an eastron-sdm630 master meter
  (address 20261121800<n>), unit 2 a wattline-ttu terminal (address 20261121900<n>).
- Room meters carry their building's area name too, so line loss can be grouped by area.
- Tariffs: buildings 1-2 flat 0.60 yuan/kWh, building 3 time-of-use, building 4 monthly tiered.
- About 10 % of rooms are not opened (prepaid disabled, balance 0, nearly no load); the rest
  spread over normal, alarm1 (<= 20 yuan), alarm2 (<= 5 yuan) and arrears balances.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field

from simulator.tariff import FLAT_060, TIERED_DEMO, TOU_DEMO, Tariff

PROFILES = ("acrel-ddsy1352", "acrel-dtsy1352", "eastron-sdm630", "wattline-ttu")
PREPAID_PROFILES = ("acrel-ddsy1352", "acrel-dtsy1352")
TOPOLOGY_KEYS = ("building", "floor", "room", "area", "gateway", "host", "framing", "bus", "port",
                 "unit", "profile", "meter_address",
                 "area_role", "ct_ratio", "rating_kva", "nominal_voltage", "connection_group")
# The areas' master meters read the primary side directly (ratio 1: the simulated register is the area's energy);
# every area is a 630 kVA Dyn11 transformer at 220 V per phase, given on its master meter's row.
AREA_ROLE_OF = {"eastron-sdm630": "master", "wattline-ttu": "terminal"}
DEMO_NAMEPLATE = {"ct_ratio": 1.0, "rating_kva": 630.0, "nominal_voltage": 220.0, "connection_group": "Dyn11"}


@dataclass
class MeterSpec:
    address: str                      # 12 digits, nameplate number
    unit: int                         # Modbus unit address on its bus
    profile: str
    building: str
    floor: int | None = None
    room: str | None = None
    area: str | None = None           # transformer area
    # initial state (prepaid meters)
    balance_fen: int = 0
    prepaid_enabled: bool = True
    purchase_count: int = 0
    command_seq: int = 0
    tariff: Tariff = FLAT_060
    alarm1_fen: int = 2000
    alarm2_fen: int = 500
    overdraft_fen: int = 0
    overload_w: int = 6000
    keep_power: bool = False
    forced_trip: bool = False
    energy_kwh: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # sharp, peak, flat, valley
    # load model
    character: float = 1.0            # multiplier of the room's demand (heavy users > 1, empty rooms ~0)
    pf: float = 0.95
    # how the occupant buys (history backfill): recharge `recharge_fen` when the balance falls to `recharge_at_fen`
    recharge_fen: int = 10000
    recharge_at_fen: int = 1000
    # master meter / terminal
    line_loss: float = 0.04           # fraction of the rooms' energy lost in the building's lines
    tap_count: int = 5
    tap_position: int = 3
    # terminal: the transformer's nameplate (large capacity mode; small mode is half) and its capacitor bank
    nominal_voltage: float = 220.0    # V per phase
    rating_kva: float = 630.0
    capacitor_count: int = 4          # steps in the bank
    capacitor_kvar: float = 15.0      # kvar per step
    capacitor_delay_s: float = 30.0   # the controller switches at most one step per this time (discharge time)

    def __post_init__(self):
        if len(self.address) != 12 or not self.address.isdigit():
            raise ValueError(f"meter address must be 12 digits: {self.address!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}")
        if not 1 <= self.unit <= 247:
            raise ValueError(f"unit address out of range: {self.unit}")

    @property
    def energy_total_kwh(self) -> float:
        return sum(self.energy_kwh)


@dataclass
class BusSpec:
    bus_no: int                       # 1-based
    port: int
    baud: int = 9600
    meters: list[MeterSpec] = field(default_factory=list)


@dataclass
class GatewaySpec:
    name: str
    host: str = "127.0.0.1"
    framing: str = "socket"           # "socket" (Modbus TCP) | "rtu" (RTU over TCP)
    buses: list[BusSpec] = field(default_factory=list)


@dataclass
class SiteSpec:
    name: str
    gateways: list[GatewaySpec] = field(default_factory=list)

    def iter_meters(self):
        """(gateway, bus, meter) for every meter, in topology order."""
        for gateway in self.gateways:
            for bus in gateway.buses:
                for meter in bus.meters:
                    yield gateway, bus, meter

    def meters(self) -> list[MeterSpec]:
        return [m for _, _, m in self.iter_meters()]

    def ports(self) -> list[int]:
        return [bus.port for gateway in self.gateways for bus in gateway.buses]

    def topology_rows(self) -> list[dict]:
        return [{"building": m.building, "floor": m.floor, "room": m.room, "area": m.area,
                 "gateway": g.name, "host": g.host, "framing": g.framing, "bus": b.bus_no,
                 "port": b.port, "unit": m.unit, "profile": m.profile, "meter_address": m.address,
                 **self._area_columns(m)}
                for g, b, m in self.iter_meters()]

    @staticmethod
    def _area_columns(m: MeterSpec) -> dict:
        role = AREA_ROLE_OF.get(m.profile) if m.area else None
        return {"area_role": role, **(DEMO_NAMEPLATE if role == "master" else dict.fromkeys(DEMO_NAMEPLATE))}

    def validate(self) -> None:
        addresses, endpoints = set(), set()
        for g, b, m in self.iter_meters():
            if m.address in addresses:
                raise ValueError(f"duplicate meter address {m.address}")
            addresses.add(m.address)
        for g in self.gateways:
            if g.framing not in ("socket", "rtu"):
                raise ValueError(f"gateway {g.name}: unknown framing {g.framing!r}")
            for b in g.buses:
                if (g.host, b.port) in endpoints:
                    raise ValueError(f"port {b.port} on {g.host} used twice")
                endpoints.add((g.host, b.port))
                units = [m.unit for m in b.meters]
                if len(units) != len(set(units)):
                    raise ValueError(f"gateway {g.name} bus {b.bus_no}: duplicate unit addresses")


def _room_state(rng: random.Random, tariff: Tariff) -> dict:
    """Initial account state and load character of one dormitory room."""
    roll = rng.random()
    character = min(3.0, rng.lognormvariate(0.0, 0.35))
    if rng.random() < 0.10:
        character *= 2.0                      # heavy users: gaming PCs, heaters, hot pots
    elif rng.random() < 0.06:
        character *= 0.08                     # nearly empty room
    years = rng.uniform(1.5, 4.0)
    total = 3600.0 * years * character * rng.uniform(0.8, 1.2) + 900.0
    split = (0.12, 0.33, 0.30, 0.25)          # sharp, peak, flat, valley share of a dormitory's use
    energy = tuple(round(total * s, 2) for s in split)
    state = dict(character=character, energy_kwh=energy, tariff=tariff, pf=round(rng.uniform(0.85, 0.99), 3),
                 recharge_fen=rng.choice((3000, 5000, 5000, 10000, 10000, 20000)),
                 recharge_at_fen=rng.choice((0, 500, 1000, 1500, 2000, 3000)),
                 command_seq=rng.randint(0, 12))
    if roll < 0.10:                           # not opened: no account, no prepaid control
        state.update(prepaid_enabled=False, balance_fen=0, purchase_count=0, character=character * 0.03,
                     energy_kwh=tuple(round(e * 0.1, 2) for e in energy))
    elif roll < 0.17:                         # arrears, tripped
        state.update(balance_fen=0, purchase_count=rng.randint(3, 40))
    elif roll < 0.26:                         # alarm2
        state.update(balance_fen=rng.randint(1, 500), purchase_count=rng.randint(3, 40))
    elif roll < 0.40:                         # alarm1
        state.update(balance_fen=rng.randint(501, 2000), purchase_count=rng.randint(3, 40))
    else:
        state.update(balance_fen=rng.randint(2001, 30000), purchase_count=rng.randint(1, 40))
    return state


def demo_site(base_port: int = 15020, framing: str = "socket", seed: int = 2026) -> SiteSpec:
    rng = random.Random(seed)
    tariffs = {1: FLAT_060, 2: FLAT_060, 3: TOU_DEMO, 4: TIERED_DEMO}
    gateways: list[GatewaySpec] = []
    area_buses: list[BusSpec] = []
    serial = 0
    for b in range(1, 5):
        building, area = f"Building {b}", f"Area B{b}"
        buses = [BusSpec(bus_no=i + 1, port=base_port + 4 * (b - 1) + i) for i in range(4)]
        index = 0
        for floor in range(1, 7):
            for room in range(1, 21):
                serial += 1
                bus = buses[index // 30]
                bus.meters.append(MeterSpec(
                    address=f"20261121{serial:04d}", unit=index % 30 + 1, profile="acrel-ddsy1352",
                    building=building, floor=floor, room=f"B{b}-{floor}{room:02d}", area=area,
                    **_room_state(rng, tariffs[b])))
                index += 1
        gateways.append(GatewaySpec(name=f"GW-B{b}", framing=framing, buses=buses))
        area_buses.append(BusSpec(bus_no=b, port=base_port + 16 + (b - 1), meters=[
            MeterSpec(address=f"20261121800{b}", unit=1, profile="eastron-sdm630", building=building, area=area,
                      line_loss=round(rng.uniform(0.02, 0.06), 4), prepaid_enabled=False),
            MeterSpec(address=f"20261121900{b}", unit=2, profile="wattline-ttu", building=building, area=area,
                      line_loss=0.01, prepaid_enabled=False, tap_count=5, tap_position=3),
        ]))
    gateways.append(GatewaySpec(name="GW-AREA", framing=framing, buses=area_buses))
    site = SiteSpec(name="demo", gateways=gateways)
    _set_area_energy(site)
    site.validate()
    return site


def _set_area_energy(site: SiteSpec) -> None:
    """Master meters and terminals start with the rooms' energy plus line loss, plus what older tenants used."""
    rooms: dict[str, float] = {}
    for m in site.meters():
        if m.profile in PREPAID_PROFILES:
            rooms[m.building] = rooms.get(m.building, 0.0) + m.energy_total_kwh
    for m in site.meters():
        if m.profile == "eastron-sdm630":
            m.energy_kwh = (0.0, 0.0, round(rooms.get(m.building, 0.0) * (1 + m.line_loss) + 52000.0, 2), 0.0)
    masters = {m.building: m for m in site.meters() if m.profile == "eastron-sdm630"}
    for m in site.meters():
        if m.profile == "wattline-ttu":
            master = masters.get(m.building)
            base = master.energy_total_kwh if master else rooms.get(m.building, 0.0)
            m.energy_kwh = (0.0, 0.0, round(base * (1 + m.line_loss) + 800.0, 2), 0.0)


def scale_site(gateways: int = 21, buses: int = 16, meters_per_bus: int = 30, base_port: int = 20000,
               framing: str = "socket") -> SiteSpec:
    """A large uniform site for benchmarks: all acrel-ddsy1352, one building per gateway, one floor per bus."""
    site = SiteSpec(name="scale")
    for g in range(1, gateways + 1):
        spec = GatewaySpec(name=f"GW-S{g:02d}", framing=framing)
        for b in range(1, buses + 1):
            bus = BusSpec(bus_no=b, port=base_port + (g - 1) * buses + (b - 1))
            for u in range(1, meters_per_bus + 1):
                bus.meters.append(MeterSpec(
                    address=f"30{g:04d}{b:03d}{u:03d}", unit=u, profile="acrel-ddsy1352",
                    building=f"Block {g:02d}", floor=b, room=f"S{g:02d}-{b:02d}{u:02d}", area=f"Area S{g:02d}",
                    balance_fen=5000 + 37 * ((g * 131 + b * 17 + u) % 500), purchase_count=1 + (u % 7),
                    character=0.5 + ((g * 7 + b * 3 + u) % 11) / 10.0,
                    energy_kwh=(100.0 + u, 300.0 + b, 400.0 + g, 200.0)))
            spec.buses.append(bus)
        site.gateways.append(spec)
    site.validate()
    return site


def get_site(name: str, base_port: int | None = None, framing: str = "socket") -> SiteSpec:
    if name == "demo":
        return demo_site(base_port=15020 if base_port is None else base_port, framing=framing)
    if name == "scale":
        return scale_site(base_port=20000 if base_port is None else base_port, framing=framing)
    raise ValueError(f"unknown site {name!r} (demo | scale)")


def find_free_base_port(count: int, host: str = "127.0.0.1", low: int = 21000, high: int = 60000,
                        attempts: int = 200, rng: random.Random | None = None) -> int:
    """A base port such that `count` consecutive ports are free right now (for tests; racy by nature)."""
    rng = rng or random.Random()
    for _ in range(attempts):
        base = rng.randrange(low, high - count)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found on {host}")
