"""The one SQLAlchemy MetaData: every table Wattline stores, on DuckDB and PostgreSQL alike."""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Timestamps are naive UTC everywhere (TIMESTAMP WITHOUT TIME ZONE); the UI converts for display.
UtcDateTime = sa.DateTime(timezone=False)
Money = sa.Numeric(14, 2)


def _pk(table: str) -> sa.Column:
    # An explicit sequence: DuckDB has no SERIAL, PostgreSQL accepts both.
    return sa.Column("id", sa.Integer, sa.Sequence(f"{table}_id_seq"), primary_key=True)


# ---------------------------------------------------------------------------------------------
# Canonical measurement keys (specs/device-profile.md). Readings and meter_state carry one column
# per key, so a profile's canonical points land in place; a site's own keys are kept only in
# meter_state.extra (JSON text).
FLOAT_KEYS = (
    "voltage_a", "voltage_b", "voltage_c",
    "current_a", "current_b", "current_c", "current_n",
    "power_a", "power_b", "power_c", "power_total", "reactive_total",
    "pf_a", "pf_b", "pf_c", "pf_total", "frequency",
    "energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley",
    "thd_u_a", "thd_u_b", "thd_u_c", "thd_i_a", "thd_i_b", "thd_i_c",
    "oil_temp", "ambient_temp", "humidity",
)
INT_KEYS = ("purchase_count", "command_seq", "meter_type", "tap_position", "capacitor_steps", "capacity_mode")
BOOL_KEYS = (
    "relay_closed", "keep_power", "prepaid_enabled", "alarm1", "alarm2", "arrears", "overload",
    "fault", "tamper", "forced_trip", "door_open", "smoke", "water",
) + tuple(f"breaker_{i}" for i in range(1, 9))
MONEY_KEYS = ("balance",)
CANONICAL_KEYS = FLOAT_KEYS + INT_KEYS + BOOL_KEYS + MONEY_KEYS


def _measurement_columns() -> list[sa.Column]:
    cols: list[sa.Column] = [sa.Column(k, sa.Double) for k in FLOAT_KEYS]
    cols += [sa.Column(k, sa.Integer) for k in INT_KEYS]
    cols += [sa.Column(k, sa.Boolean) for k in BOOL_KEYS]
    cols += [sa.Column(k, Money) for k in MONEY_KEYS]
    return cols


# ---------------------------------------------------------------------------------------------
# Bookkeeping
schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
)

setting = sa.Table(
    "setting", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# ---------------------------------------------------------------------------------------------
# Topology
# A group of buildings (a campus, an estate's phase): the site setup pages keep them (since 9.5).
building_group = sa.Table(
    "building_group", metadata,
    _pk("building_group"),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    info={"since": 9.5},
)

building = sa.Table(
    "building", metadata,
    _pk("building"),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    # since 9.5: its building_group (NULL: none). No foreign key: an older database gains the column by ALTER,
    # which DuckDB cannot give a constraint; storage.site_setup checks the group exists.
    sa.Column("group_id", sa.Integer),
)

room = sa.Table(
    "room", metadata,
    _pk("room"),
    sa.Column("building_id", sa.Integer, sa.ForeignKey("building.id"), nullable=False),
    sa.Column("floor", sa.Integer),
    sa.Column("name", sa.String(100), nullable=False),
    sa.UniqueConstraint("building_id", "name", name="uq_room_building_name"),
)

transformer_area = sa.Table(
    "transformer_area", metadata,
    _pk("transformer_area"),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("building_id", sa.Integer, sa.ForeignKey("building.id")),
    # since 13.1 (grid/): the transformer's nameplate, its master meter (and the CT ratio its register is
    # multiplied by) and its terminal. No foreign keys: an older database gains them by ALTER, which DuckDB cannot
    # give a constraint; storage.grid reads them joined to meter.
    sa.Column("rating_kva", sa.Double),
    sa.Column("nominal_voltage", sa.Double),          # phase voltage, V (220 or 230)
    sa.Column("connection_group", sa.String(20)),     # Dyn11, Yyn0 ...
    sa.Column("master_meter_id", sa.Integer),
    sa.Column("terminal_meter_id", sa.Integer),
    sa.Column("ct_ratio", sa.Double),                 # NULL: 1 (a direct-connected master meter)
)

# Cameras of a transformer area (televideo 遥视, since 15; grid.areas keeps them): the address of the camera's own
# page or of a snapshot image, opened as a link (no streaming through us). No foreign key to transformer_area:
# storage.grid_areas checks the area exists (DuckDB refuses updates of rows a foreign key points at).
camera = sa.Table(
    "camera", metadata,
    _pk("camera"),
    sa.Column("area_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),   # page | snapshot
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    info={"since": 15},
)

gateway = sa.Table(
    "gateway", metadata,
    _pk("gateway"),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("framing", sa.String(10), nullable=False),  # socket (Modbus TCP) | rtu (RTU over TCP)
    sa.Column("timeout_s", sa.Float, nullable=False, server_default="1.0"),
    sa.Column("retries", sa.Integer, nullable=False, server_default="1"),
)

# One RS485 bus of a gateway, bridged to its own TCP port.
bus = sa.Table(
    "bus", metadata,
    _pk("bus"),
    sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateway.id"), nullable=False),
    sa.Column("bus_no", sa.Integer, nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("baud", sa.Integer, nullable=False, server_default="9600"),
    sa.UniqueConstraint("gateway_id", "bus_no", name="uq_bus_gateway_no"),
)

meter = sa.Table(
    "meter", metadata,
    _pk("meter"),
    sa.Column("address", sa.String(12), nullable=False, unique=True),  # 12-digit nameplate number
    sa.Column("bus_id", sa.Integer, sa.ForeignKey("bus.id"), nullable=False),
    sa.Column("unit", sa.Integer, nullable=False),
    sa.Column("profile", sa.String(100), nullable=False),
    sa.Column("room_id", sa.Integer, sa.ForeignKey("room.id")),
    # The transformer area a meter is fed by is area_meter's (since 16): a database of before keeps a column
    # area_id here (DuckDB cannot drop it) that nothing reads.
    # not_opened | opened | removed (billing moves it); polled unless removed
    sa.Column("status", sa.String(20), nullable=False, server_default="not_opened"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Purchase-count epoch (since 5): a meter replaced in place (same number, counts back to 0) starts a
    # new one; the ledger's counts are compared within the meter's current epoch only.
    sa.Column("count_epoch", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("bus_id", "unit", name="uq_meter_bus_unit"),
)

# The transformer area that feeds a meter (since 16; before, meter.area_id). A table of its own because a meter
# moves between areas after it has accounts, sales and commands: DuckDB runs an UPDATE of an indexed column (a
# foreign key is one) as a delete and an insert, which the foreign keys pointing at meter refuse. Rows here are
# changed freely: nothing points at them.
area_meter = sa.Table(
    "area_meter", metadata,
    sa.Column("meter_id", sa.Integer, sa.ForeignKey("meter.id"), primary_key=True, autoincrement=False),
    sa.Column("area_id", sa.Integer, sa.ForeignKey("transformer_area.id"), nullable=False),
    sa.Index("ix_area_meter_area", "area_id").ddl_if(dialect="postgresql"),
    info={"since": 16},
)

# ---------------------------------------------------------------------------------------------
# Time series. Append-only, no primary key: DuckDB's zone maps serve (meter_id, ts) scans and
# an ART index would slow bulk appends; PostgreSQL gets a btree index (created in migrations).
# readings keeps what the reports and billing need per poll (DESIGN: voltage, current, power,
# power factor, frequency, energy registers, remaining money, relay state, status bits), narrow so
# appends stay cheap; the status flags travel packed in one integer (READING_STATUS_BITS).
# Every other canonical key (per-phase power, THD, temperatures, tap, breakers ...) is kept in
# meter_state as the latest value, and over time in device_readings for the devices that carry them.
READING_FLOAT_KEYS = ("voltage_a", "voltage_b", "voltage_c", "current_a", "current_b", "current_c",
                      "power_total", "pf_total", "frequency",
                      "energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley")
READING_STATUS_BITS = {"alarm1": 0, "alarm2": 1, "arrears": 2, "overload": 3, "fault": 4, "tamper": 5,
                       "forced_trip": 6, "keep_power": 7, "prepaid_enabled": 8}

readings = sa.Table(
    "readings", metadata,
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("meter_id", sa.Integer, nullable=False),
    *[sa.Column(k, sa.Double) for k in READING_FLOAT_KEYS],
    sa.Column("balance", Money),
    sa.Column("purchase_count", sa.Integer),
    sa.Column("relay_closed", sa.Boolean),
    sa.Column("status", sa.Integer),  # bit i set = flag named in READING_STATUS_BITS is on
)
READINGS_COLUMNS = tuple(c.name for c in readings.columns)

# History of master meters and transformer terminals (since 8, issue 9): per poll, the canonical keys readings
# does not keep, as typed columns; the terminal's signals packed in one integer (DEVICE_SIGNAL_BITS, the TTU's
# own status register layout); a site's own profile keys as JSON text. Appended only for readings that carry a
# device key (HISTORY_DEVICE_KEYS), or per-phase values or own keys on a meter without a balance: a prepaid
# meter's per-phase values and its settings read-back cost its cycle nothing more.
DEVICE_FLOAT_KEYS = tuple(k for k in FLOAT_KEYS if k not in READING_FLOAT_KEYS)
DEVICE_INT_KEYS = ("tap_position", "capacitor_steps", "capacity_mode")
DEVICE_SIGNAL_BITS = {"door_open": 0, "smoke": 1, "water": 2, "changeover": 3,
                      **{f"breaker_{i}": 7 + i for i in range(1, 9)}}
PHASE_KEYS = ("power_a", "power_b", "power_c", "pf_a", "pf_b", "pf_c")
HISTORY_DEVICE_KEYS = tuple(k for k in DEVICE_FLOAT_KEYS if k not in PHASE_KEYS) + DEVICE_INT_KEYS + tuple(
    DEVICE_SIGNAL_BITS)

device_readings = sa.Table(
    "device_readings", metadata,
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("meter_id", sa.Integer, nullable=False),
    *[sa.Column(k, sa.Double) for k in DEVICE_FLOAT_KEYS],
    *[sa.Column(k, sa.Integer) for k in DEVICE_INT_KEYS],
    sa.Column("signals", sa.Integer),  # bit i set = signal named in DEVICE_SIGNAL_BITS is on; null: none read
    sa.Column("extra", sa.Text),  # JSON of the reading's non-canonical keys
    # PostgreSQL only, as readings' (meter_id, ts) index: an ART index would slow DuckDB's bulk appends.
    sa.Index("ix_device_readings_meter_ts", "meter_id", "ts").ddl_if(dialect="postgresql"),
    info={"since": 8},
)
DEVICE_READINGS_COLUMNS = tuple(c.name for c in device_readings.columns)

# Frozen midnight registers (日冻结, since 14, grid/line_loss.py): each area meter's total register at the local
# midnight starting `day`, as line loss takes it (the first reading within the tolerance after midnight, else
# interpolated), written by the line_loss job once the readings around that midnight are in, so line loss over a
# year reads stored registers instead of every reading. Append-only like readings (a day is replaced whole).
frozen_register = sa.Table(
    "frozen_register", metadata,
    sa.Column("meter_id", sa.Integer, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("energy_total", sa.Double, nullable=False),
    sa.Column("interpolated", sa.Boolean, nullable=False),
    sa.Column("frozen_at", UtcDateTime, nullable=False),
    sa.Index("ix_frozen_register_day", "day", "meter_id").ddl_if(dialect="postgresql"),
    info={"since": 14},
)

meter_state = sa.Table(
    "meter_state", metadata,
    sa.Column("meter_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", UtcDateTime),  # time of the latest good reading
    *_measurement_columns(),
    sa.Column("extra", sa.Text),  # JSON of non-canonical keys of the latest reading
    sa.Column("comm_state", sa.String(10), nullable=False, server_default="unknown"),  # online|lost|unknown
    sa.Column("miss_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_seen", UtcDateTime),
    sa.Column("lost_since", UtcDateTime),
    sa.Column("last_error", sa.String(300)),
    sa.Column("alarm_level", sa.Integer, nullable=False, server_default="0"),  # 0 none, 1, 2
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
METER_STATE_COLUMNS = tuple(c.name for c in meter_state.columns)

bus_state = sa.Table(
    "bus_state", metadata,
    sa.Column("bus_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("comm_state", sa.String(10), nullable=False),  # online | lost
    sa.Column("lost_since", UtcDateTime),
    sa.Column("last_error", sa.String(300)),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

poll_cycle = sa.Table(
    "poll_cycle", metadata,
    _pk("poll_cycle"),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("meters", sa.Integer, nullable=False),
    sa.Column("ok", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("endpoints_unreachable", sa.Integer, nullable=False),
)

# ---------------------------------------------------------------------------------------------
# Per-meter settings (since 9.4, storage.meter_settings): meter_limit holds what we last asked a meter to keep
# (alarm amounts, overload threshold; SET_LIMITS); a meter without a row follows the site's defaults.
# meter_config holds what the meter itself reported in its configuration block, read back by the full reading
# (one cycle in 60) and right after each limits push; the per-meter settings page shows both side by side.
meter_limit = sa.Table(
    "meter_limit", metadata,
    sa.Column("meter_id", sa.Integer, sa.ForeignKey("meter.id"), primary_key=True, autoincrement=False),
    sa.Column("alarm1", Money, nullable=False),
    sa.Column("alarm2", Money, nullable=False),
    sa.Column("overload_w", sa.Integer, nullable=False),
    sa.Column("overdraft", Money, nullable=False),
    sa.Column("command_id", sa.Integer),            # the latest push of these values
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    info={"since": 9.4},
)

meter_config = sa.Table(
    "meter_config", metadata,
    sa.Column("meter_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("alarm1", Money),
    sa.Column("alarm2", Money),
    sa.Column("overdraft", Money),
    sa.Column("overload_w", sa.Integer),
    sa.Column("tariff_mode", sa.Integer),
    sa.Column("read_at", UtcDateTime, nullable=False),
    info={"since": 9.4},
)

# ---------------------------------------------------------------------------------------------
# Remote commands (outbox). State: queued -> sent -> acked | failed | expired (storage.transitions.COMMAND).
# purpose (storage.purposes.Purpose) routes its settlement (billing.settlement); account_id names the account
# it was queued for (an opening, a closing, money), so nothing is ever read out of batch_id, a label only.
command = sa.Table(
    "command", metadata,
    _pk("command"),
    sa.Column("meter_id", sa.Integer, sa.ForeignKey("meter.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # recharge, refund, tariff, limits, trip, close, keep_power, restore_prepaid, time_sync ...
    sa.Column("payload", sa.Text, nullable=False),  # JSON; amounts in fen
    sa.Column("counter", sa.Integer),  # purchase count (money) or command sequence
    sa.Column("state", sa.String(10), nullable=False, server_default="queued"),
    sa.Column("result", sa.String(20)),  # the meter's result name
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("operator", sa.String(100)),
    sa.Column("batch_id", sa.String(40)),
    sa.Column("ledger_entry_id", sa.Integer),
    sa.Column("purpose", sa.String(20), nullable=False),  # sale, refund, ..., closing, tariff_push, relay (migration 8)
    sa.Column("account_id", sa.Integer),  # the account it was queued for, if any (migration 8)
    sa.Column("error", sa.String(300)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
)

# Automatic voltage control of a transformer area (grid.avc, since 15; storage.grid_control keeps them): one row per
# area, its settings and what the rule engine remembers between runs (how long a phase has been out of its band,
# the load above or below the capacity-mode thresholds, the capacitor steps last seen, a block). No foreign key:
# an area's row is kept as the area is (DuckDB refuses updates of rows a foreign key points at).
grid_automation = sa.Table(
    "grid_automation", metadata,
    sa.Column("area_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("band_low", sa.Double, nullable=False),         # fraction of the nominal phase voltage, e.g. -0.07
    sa.Column("band_high", sa.Double, nullable=False),        # e.g. 0.07
    sa.Column("first_delay_s", sa.Integer, nullable=False),   # out of band this long before the first step
    sa.Column("step_delay_s", sa.Integer, nullable=False),    # between two steps
    sa.Column("daily_limit", sa.Integer, nullable=False),     # automatic tap operations per local day
    sa.Column("undervoltage", sa.Double, nullable=False),     # below this fraction of nominal: supply lost, no step
    sa.Column("capacity_auto", sa.Boolean, nullable=False),
    sa.Column("small_kva", sa.Double),                        # the small capacity's rating (NULL: half the area's)
    sa.Column("capacity_up", sa.Double, nullable=False),      # large above this fraction of the small rating
    sa.Column("capacity_down", sa.Double, nullable=False),    # small below this fraction of the small rating
    sa.Column("capacity_hold_s", sa.Integer, nullable=False), # ... for this long
    sa.Column("out_since", UtcDateTime),                      # a phase out of band since (NULL: all in band)
    sa.Column("out_side", sa.String(4)),                      # high | low
    sa.Column("load_since", UtcDateTime),                     # the load beyond a capacity threshold since
    sa.Column("load_side", sa.String(5)),                     # large | small: the mode that load asks for
    sa.Column("capacitor_steps", sa.Integer),                 # the terminal's capacitor steps last seen
    sa.Column("blocked", sa.String(20)),                      # why automatic steps are held: tap_stuck, ... (NULL: not)
    sa.Column("blocked_at", UtcDateTime),
    sa.Column("blocked_position", sa.Integer),                # the tap that did not move (a move unblocks)
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=False),
    info={"since": 15},
)

# What was done to a transformer area by hand or by the automation (grid.control, grid.avc): each tap step,
# capacity change, breaker command, arrears trip, automation switched on or off, capacitor step seen, block; with
# the state before and after, the reason (a code and its parameters, put into words where shown) and the command
# that carries it (its state is the command's).
grid_action = sa.Table(
    "grid_action", metadata,
    _pk("grid_action"),
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("area_id", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(6), nullable=False),          # auto | manual
    sa.Column("action", sa.String(20), nullable=False),       # tap, capacity_mode, breaker_open, breaker_close ...
    sa.Column("before", sa.String(40)),
    sa.Column("after", sa.String(40)),
    sa.Column("reason_code", sa.String(30), nullable=False),
    sa.Column("params", sa.Text),                             # JSON
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("command_id", sa.Integer),
    sa.Column("batch_id", sa.String(40)),                     # an arrears trip's batch (billing.control)
    info={"since": 15},
)
sa.Index("ix_grid_action_area", grid_action.c.area_id, grid_action.c.ts).ddl_if(dialect="postgresql")

# Batches of remote commands from the control page and the control API (since 9.3, billing.control). Each of
# its commands carries batch_id = its id; a meter's state in the batch is that of its latest command there (a
# retry adds new commands to the same batch).
command_batch = sa.Table(
    "command_batch", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("action", sa.String(20), nullable=False),      # billing.control.ACTIONS
    sa.Column("reason", sa.String(300)),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("source", sa.String(10), nullable=False),      # desk | api
    sa.Column("selection", sa.Text, nullable=False),         # JSON: how the meters were chosen
    sa.Column("meters", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    info={"since": 9.3},
)

# Alarm events (storage.alarms owns them; since 8 in this shape, see migrations._alarm_service). A subject is
# (subject_kind, subject_id): meter, gateway, bus, area, work_order (their ids) or site (0). open_key is
# "<subject_kind>:<subject_id>:<kind>" while the event is open and NULL once closed: its UNIQUE constraint is
# the database's "at most one open event per subject and kind" (NULLs are distinct on both engines; DuckDB has
# no partial indexes).
alarm_event = sa.Table(
    "alarm_event", metadata,
    _pk("alarm_event"),
    sa.Column("kind", sa.String(30), nullable=False),  # storage.alarms.KINDS
    sa.Column("level", sa.Integer, nullable=False),  # storage.alarms.AlarmLevel: 0 info, 1 warning, 2 critical
    sa.Column("subject_kind", sa.String(20), nullable=False),
    sa.Column("subject_id", sa.Integer, nullable=False),
    sa.Column("open_key", sa.String(80)),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime),
    sa.Column("acknowledged_by", sa.String(100)),
    sa.Column("acknowledged_at", UtcDateTime),
    sa.Column("ack_note", sa.String(500)),  # since 9.1: what the acknowledging operator wrote
    sa.Column("message_code", sa.String(40), nullable=False),  # the catalog's alarm.message.<code>
    sa.Column("message_params", sa.Text),  # JSON object of the message's parameters
    sa.UniqueConstraint("open_key", name="uq_alarm_event_open_key"),
)

audit_log = sa.Table(
    "audit_log", metadata,
    _pk("audit_log"),
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("target", sa.String(200)),
    sa.Column("before", sa.Text),  # JSON
    sa.Column("after", sa.Text),  # JSON
    sa.Column("source", sa.String(100)),  # remote address, "cli", "scheduler"
)

# ---------------------------------------------------------------------------------------------
# --- operators and permissions (issue 3)
# Roles and permissions are rows (seeded by operators.service.seed, idempotent) so a site can
# change what a role may do on /admin/roles; the code names permissions, never roles.
operator = sa.Table(
    "operator", metadata,
    _pk("operator"),
    sa.Column("username", sa.String(60), nullable=False, unique=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),  # argon2id, never the password
    sa.Column("language", sa.String(5)),  # en | zh; NULL: follow the browser until the operator picks one
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),  # since the last success
    sa.Column("locked_until", UtcDateTime),
    sa.Column("last_login_at", UtcDateTime),
    info={"since": 2},
)

role = sa.Table(
    "role", metadata,
    sa.Column("name", sa.String(30), primary_key=True),  # admin, manager, cashier, operator, analyst, worker
    info={"since": 2},
)

permission = sa.Table(
    "permission", metadata,
    sa.Column("name", sa.String(40), primary_key=True),  # a named action, e.g. sale.refund
    sa.Column("description", sa.String(200), nullable=False),
    info={"since": 2},
)

role_permission = sa.Table(
    "role_permission", metadata,
    sa.Column("role", sa.String(30), sa.ForeignKey("role.name"), primary_key=True),
    sa.Column("permission", sa.String(40), sa.ForeignKey("permission.name"), primary_key=True),
    info={"since": 2},
)

operator_role = sa.Table(
    "operator_role", metadata,
    sa.Column("operator_id", sa.Integer, sa.ForeignKey("operator.id"), primary_key=True),
    sa.Column("role", sa.String(30), sa.ForeignKey("role.name"), primary_key=True),
    info={"since": 2},
)

# A signed-in browser. The cookie carries a random token; only its SHA-256 is stored, so logout
# (or a password change) ends the session on the server, not just in one browser.
operator_session = sa.Table(
    "operator_session", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("operator_id", sa.Integer, sa.ForeignKey("operator.id"), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("source", sa.String(100)),
    info={"since": 2},
)

# ---------------------------------------------------------------------------------------------
# --- billing (issue 4)
# Money is NUMERIC(14,2) yuan. A ledger amount carries its sign: its effect on the meter's balance
# (+ sale, transfer_in, reversal of a refund; - refund, closing_refund, reversal of a sale). Cash
# taken at the desk is the same sign except for transfer_in (balance moved from an old meter).
account = sa.Table(
    "account", metadata,
    _pk("account"),
    sa.Column("room_id", sa.Integer, sa.ForeignKey("room.id")),
    sa.Column("holder_name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(30)),             # as typed, as shown
    sa.Column("phone_digits", sa.String(30)),      # since version 7: core.phone.phone_digits(phone), searched
    sa.Column("national_id_enc", sa.Text),  # AES-256-GCM, "v1:" + base64(nonce | ciphertext | tag); never in clear
    sa.Column("status", sa.String(10), nullable=False, server_default="open"),  # open | closing | closed
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("closed_by", sa.String(100)),
    sa.Column("language", sa.String(5)),           # since 9.2: the holder's messages ("en" | "zh"; NULL: site's)
    info={"since": 3},
)

# One account, several meters; a meter belongs to at most one account at a time (removed_at null).
# base_purchase_count: the meter's purchase count when it joined the account (read off the meter),
# the floor of the next purchase count when the ledger holds none for it yet.
account_meter = sa.Table(
    "account_meter", metadata,
    _pk("account_meter"),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id"), nullable=False),
    sa.Column("meter_id", sa.Integer, sa.ForeignKey("meter.id"), nullable=False),
    sa.Column("base_purchase_count", sa.Integer, nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Column("removed_at", UtcDateTime),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("count_epoch", sa.Integer, nullable=False, server_default="0"),  # the meter's epoch from added_at
    info={"since": 3},
)

tariff = sa.Table(
    "tariff", metadata,
    _pk("tariff"),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("mode", sa.String(10), nullable=False),  # flat | tou | tiered
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("display_name", sa.String(100)),     # since version 7: the name shown since a rename
    sa.Column("retired_at", UtcDateTime),          # since version 7: kept for the history, offered no more
    sa.Column("retired_by", sa.String(100)),
    info={"since": 3},
)

# Versions are never rewritten: a price change is a new version with its own valid_from.
# Prices in yuan per kWh (4 decimals, the SET_TARIFF resolution); segments JSON [[start_minute, index]]
# (index 0 sharp, 1 peak, 2 flat, 3 valley); tiers JSON [[upper_kwh_per_month | null, "price"]].
tariff_version = sa.Table(
    "tariff_version", metadata,
    _pk("tariff_version"),
    sa.Column("tariff_id", sa.Integer, sa.ForeignKey("tariff.id"), nullable=False),
    sa.Column("version_no", sa.Integer, nullable=False),
    sa.Column("valid_from", UtcDateTime, nullable=False),
    sa.Column("price_sharp", sa.Numeric(10, 4), nullable=False),
    sa.Column("price_peak", sa.Numeric(10, 4), nullable=False),
    sa.Column("price_flat", sa.Numeric(10, 4), nullable=False),
    sa.Column("price_valley", sa.Numeric(10, 4), nullable=False),
    sa.Column("segments", sa.Text),
    sa.Column("tiers", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.UniqueConstraint("tariff_id", "version_no", name="uq_tariff_version_no"),
    info={"since": 3},
)

# Which tariff a meter bills by, from when (history rows, never rewritten).
meter_tariff = sa.Table(
    "meter_tariff", metadata,
    _pk("meter_tariff"),
    sa.Column("meter_id", sa.Integer, sa.ForeignKey("meter.id"), nullable=False),
    sa.Column("tariff_id", sa.Integer, sa.ForeignKey("tariff.id"), nullable=False),
    sa.Column("valid_from", UtcDateTime, nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    info={"since": 3},
)

# Immutable money record. Only the outcome columns (state, confirmed_at, balance_after, failure) change,
# once, pending -> confirmed | failed; purchase_count of a still-pending entry moves down by one when an
# earlier money command of its meter fails (the meter needs consecutive counts).
ledger_entry = sa.Table(
    "ledger_entry", metadata,
    _pk("ledger_entry"),
    sa.Column("receipt_no", sa.String(30), nullable=False, unique=True),
    sa.Column("kind", sa.String(20), nullable=False),  # sale | refund | reversal | transfer_in | closing_refund
    sa.Column("amount", Money, nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id"), nullable=False),
    sa.Column("meter_id", sa.Integer, sa.ForeignKey("meter.id"), nullable=False),
    sa.Column("purchase_count", sa.Integer, nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("reason", sa.String(300)),
    sa.Column("source", sa.String(20), nullable=False),  # desk | api | demo
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("state", sa.String(10), nullable=False, server_default="pending"),  # pending | confirmed | failed
    sa.Column("confirmed_at", UtcDateTime),
    sa.Column("balance_after", Money),  # the meter's balance in its answer to the command
    sa.Column("failure", sa.String(100)),
    sa.Column("reverses_entry_id", sa.Integer, sa.ForeignKey("ledger_entry.id"), unique=True),
    sa.Column("request_id", sa.String(64), unique=True),  # payment API idempotency key
    sa.Column("transfer_from", sa.String(12)),  # transfer_in: the old meter's address
    sa.Column("count_epoch", sa.Integer, nullable=False, server_default="0"),  # the meter's epoch (meter.count_epoch)
    sa.CheckConstraint(
        "(kind IN ('sale', 'transfer_in') AND amount > 0) OR (kind IN ('refund', 'closing_refund') AND amount < 0)"
        " OR (kind = 'reversal' AND amount <> 0)", name="ck_ledger_entry_sign"),
    sa.CheckConstraint("(kind = 'reversal') = (reverses_entry_id IS NOT NULL)", name="ck_ledger_entry_reversal"),
    info={"since": 3},
)

# A balance typed in for an old meter that cannot be read (billing.transfers), above the site's approval
# amount: it waits here for a second operator, who approves (the transfer_in is queued then) or rejects it.
transfer_request = sa.Table(
    "transfer_request", metadata,
    _pk("transfer_request"),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id"), nullable=False),
    sa.Column("old_address", sa.String(12), nullable=False),
    sa.Column("old_count_epoch", sa.Integer, nullable=False),
    sa.Column("old_meter_id", sa.Integer, sa.ForeignKey("meter.id")),   # null: a meter the site never knew
    sa.Column("new_meter_id", sa.Integer, sa.ForeignKey("meter.id"), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # awaiting_approval | approved | rejected
    sa.Column("requested_by", sa.String(100), nullable=False),
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("source", sa.String(64)),
    sa.Column("decided_by", sa.String(100)),
    sa.Column("decided_at", UtcDateTime),
    sa.Column("decision_note", sa.String(300)),
    # no foreign key to ledger_entry or transfer_request here and below: DuckDB refuses to update a row
    # another table's foreign key points at, and both are updated (settled, decided) after they are referenced
    sa.Column("ledger_entry_id", sa.Integer),
    sa.CheckConstraint("amount > 0", name="ck_transfer_request_amount"),
    info={"since": 6},
)

# An old meter whose balance was carried over onto another (or waits for approval to be): one row per
# meter number and purchase-count epoch, so the primary key lets a balance be carried over once, even
# under two requests at the same moment. A meter the site never knew (meter_id null) exists only here:
# it is recorded as retired with the balance entered for it. A transfer the meter refused (its command
# failed or expired) and a rejected request delete their row: that balance may be carried over again.
retired_meter = sa.Table(
    "retired_meter", metadata,
    sa.Column("address", sa.String(12), primary_key=True),
    sa.Column("count_epoch", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("meter_id", sa.Integer, sa.ForeignKey("meter.id")),
    sa.Column("status", sa.String(20), nullable=False),  # awaiting_approval | retired
    sa.Column("balance", Money, nullable=False),
    sa.Column("entered", sa.Boolean, nullable=False),    # typed in (the meter could not be read)
    sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id"), nullable=False),
    sa.Column("new_meter_id", sa.Integer, sa.ForeignKey("meter.id"), nullable=False),
    sa.Column("ledger_entry_id", sa.Integer),
    sa.Column("transfer_request_id", sa.Integer),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    info={"since": 6},
)

# Payment API clients: bearer tokens, only their SHA-256 stored.
api_client = sa.Table(
    "api_client", metadata,
    _pk("api_client"),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # since 9.3: what the client may do, space-separated (billing.api.SCOPES); NULL: "payment", as every client of before
    sa.Column("scopes", sa.String(100)),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    info={"since": 3},
)

# The last reading reconciliation looked at, per meter: a balance rise without a purchase is
# seen against it.
meter_reconcile = sa.Table(
    "meter_reconcile", metadata,
    sa.Column("meter_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("purchase_count", sa.Integer),
    sa.Column("balance", Money),
    info={"since": 3},
)


# ---------------------------------------------------------------------------------------------
# Notifications (notify/, since 9.2): the SMS outbox. state: queued -> sending -> sent | failed (waiting for its
# next attempt) -> dead (no more attempts; resend puts it back to queued). episode: "once per episode" messages
# carry their episode's key ("alarm:<alarm_event id>", "purchase:<ledger entry id>" ...) and the UNIQUE constraint
# keeps a second one out.
notification = sa.Table(
    "notification", metadata,
    _pk("notification"),
    sa.Column("recipient", sa.String(10), nullable=False),      # customer | operator
    sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id")),
    sa.Column("meter_id", sa.Integer),
    sa.Column("phone", sa.String(30), nullable=False),
    sa.Column("language", sa.String(5), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),           # notify.rules.KINDS
    sa.Column("template", sa.String(40), nullable=False),       # the catalog's sms.<template>
    sa.Column("params", sa.Text, nullable=False),               # JSON object of the template's parameters
    sa.Column("text", sa.Text, nullable=False),                 # as rendered when queued, in `language`
    sa.Column("state", sa.String(10), nullable=False, server_default="queued"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()),  # waits for the end of quiet hours
    sa.Column("last_error", sa.String(300)),
    sa.Column("backend", sa.String(20)),
    sa.Column("reference", sa.String(60)),                      # the backend's id for the sent message
    sa.Column("episode", sa.String(120)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime),
    sa.Column("resent_by", sa.String(100)),
    sa.UniqueConstraint("episode", name="uq_notification_episode"),
    info={"since": 9.2},
)
sa.Index("ix_notification_due", notification.c.state, notification.c.next_attempt_at).ddl_if(dialect="postgresql")

# ---------------------------------------------------------------------------------------------
# Energy rollups (issue 11, since 10.1; energy.rollups keeps them). Energy per meter derived from the cumulative
# registers (energy.derive: resets, swaps and spikes are not counted but marked `gap`; a long silence is spread
# over its time and marked `estimated`), summed per 15 minutes (ts: UTC start), per local hour (ts: UTC start of
# the site's hour) and per local day. TOU columns: the registers' own split where the meter has one, else the
# tariff version in force's segments, else all flat. No primary key (DuckDB: ART indexes slow bulk writes);
# PostgreSQL gets a btree per table.
def _energy_columns() -> list[sa.Column]:
    return [*[sa.Column(k, sa.Double, nullable=False) for k in ("energy_kwh", "energy_sharp", "energy_peak",
                                                                  "energy_flat", "energy_valley")],
            sa.Column("estimated", sa.Boolean, nullable=False), sa.Column("gap", sa.Boolean, nullable=False)]


energy_15min = sa.Table(
    "energy_15min", metadata,
    sa.Column("meter_id", sa.Integer, nullable=False),
    sa.Column("ts", UtcDateTime, nullable=False),
    *_energy_columns(),
    sa.Index("ix_energy_15min_meter_ts", "meter_id", "ts").ddl_if(dialect="postgresql"),
    info={"since": 10.1},
)
energy_hour = sa.Table(
    "energy_hour", metadata,
    sa.Column("meter_id", sa.Integer, nullable=False),
    sa.Column("ts", UtcDateTime, nullable=False),
    *_energy_columns(),
    sa.Index("ix_energy_hour_meter_ts", "meter_id", "ts").ddl_if(dialect="postgresql"),
    info={"since": 10.1},
)
energy_day = sa.Table(
    "energy_day", metadata,
    sa.Column("meter_id", sa.Integer, nullable=False),
    sa.Column("day", sa.Date, nullable=False),   # the site's local day
    *_energy_columns(),
    sa.Index("ix_energy_day_day_meter", "day", "meter_id").ddl_if(dialect="postgresql"),
    info={"since": 10.1},
)
ENERGY_ROLLUP_COLUMNS = ("energy_kwh", "energy_sharp", "energy_peak", "energy_flat", "energy_valley",
                         "estimated", "gap")

# Where the incremental upkeep stands per meter: the last reading folded into the rollups (its time, registers
# and power), so the next interval starts there; the site's watermark is the latest of these times.
energy_upkeep = sa.Table(
    "energy_upkeep", metadata,
    sa.Column("meter_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", UtcDateTime, nullable=False),
    *[sa.Column(k, sa.Double) for k in ("energy_total", "energy_sharp", "energy_peak", "energy_flat",
                                        "energy_valley", "power_total")],
    info={"since": 10.1},
)

# ---------------------------------------------------------------------------------------------
# Report centre (issue 11, since 10.2). A cashier's closed day (日结): the day-end figures as they stood when the
# day was closed (JSON: per kind amount and entries, net, cash to hand over, the corrections it took in). Never
# rewritten: an entry of a closed day that changes later (a late-failed sale) shows as a correction on the
# cashier's next open day (billing.day_end).
closed_day = sa.Table(
    "closed_day", metadata,
    sa.Column("operator", sa.String(100), primary_key=True),   # the cashier whose day it is
    sa.Column("day", sa.Date, primary_key=True),               # the site's local day
    sa.Column("figures", sa.Text, nullable=False),
    sa.Column("closed_by", sa.String(100), nullable=False),
    sa.Column("closed_at", UtcDateTime, nullable=False),
    info={"since": 10.2},
)

# ---------------------------------------------------------------------------------------------
# Work orders, the office side (issue 12, since 11.3). The customer follow-up call (回访) after an order is done:
# when, by whom, what came of it and the customer's satisfaction (1-5, when reached and rated). Approval and
# rejection are the order's own transitions (order events with their reason); a call is a fact of its own, and an
# order may take several (no answer, then reached).
work_order_followup = sa.Table(
    "work_order_followup", metadata,
    _pk("work_order_followup"),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("called_at", UtcDateTime, nullable=False),       # when the call was made (the operator says)
    sa.Column("called_by", sa.String(100), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),        # workorders.office.FOLLOWUP_OUTCOMES
    sa.Column("satisfaction", sa.SmallInteger),                 # 1..5; NULL: not reached or not rated
    sa.Column("note", sa.String(500)),
    sa.Column("recorded_by", sa.String(100), nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Index("ix_work_order_followup_order", "order_id"),
    info={"since": 11.3},
)

# ---------------------------------------------------------------------------------------------
# Work orders, the core (issue 12, since 11.1; workorders/ owns the rules, storage/workorders.py the SQL).
# An order type (seeded: repair, new_connection, meter_install, meter_removal, acceptance, fee_collection,
# safety_inspection, contract_inspection, temporary; a site may add its own) has one operating card (标准化作业
# 指导书/卡): its items are steps, hazards (危险点), tools, materials (unit prices) and paid services. An order copies
# its card: steps and hazards into work_order_step, tools, materials and services into work_order_material.
work_order_type = sa.Table(
    "work_order_type", metadata,
    sa.Column("key", sa.String(30), primary_key=True),
    sa.Column("name_en", sa.String(100), nullable=False),
    sa.Column("name_zh", sa.String(100), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("photo_required", sa.Boolean, nullable=False, server_default=sa.false()),  # to complete
    sa.Column("sort", sa.Integer, nullable=False, server_default="0"),
    info={"since": 11.1},
)

# Time limit (hours) per type and priority; a pair without a row takes [workorders] limit_hours of its priority.
work_order_limit = sa.Table(
    "work_order_limit", metadata,
    sa.Column("type", sa.String(30), sa.ForeignKey("work_order_type.key"), primary_key=True),
    sa.Column("priority", sa.String(10), primary_key=True),   # workorders.model.PRIORITIES
    sa.Column("hours", sa.Numeric(8, 2), nullable=False),
    info={"since": 11.1},
)

card_item = sa.Table(
    "card_item", metadata,
    _pk("card_item"),
    sa.Column("type", sa.String(30), sa.ForeignKey("work_order_type.key"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),        # step | hazard | tool | material | service
    sa.Column("text_en", sa.String(300), nullable=False),
    sa.Column("text_zh", sa.String(300), nullable=False),
    sa.Column("needs_value", sa.Boolean, nullable=False, server_default=sa.false()),  # a step that records a value
    sa.Column("item_class", sa.String(40)),                  # a material's or tool's class (statistics)
    sa.Column("unit", sa.String(20)),
    sa.Column("quantity", sa.Numeric(12, 3)),                # tools, materials, services: the usual quantity
    sa.Column("unit_price", Money),                          # materials and paid services
    sa.UniqueConstraint("type", "seq", name="uq_card_item_type_seq"),
    info={"since": 11.1},
)

# state: workorders.model.STATES (storage.transitions.WORK_ORDER). cause_key: what an automatic order is for
# ("arrears:meter:12"); work_order_cause holds it while the order is open. external_id: the ticket feed's id,
# UNIQUE (the intake answers the same order for a repeat). building_id / area_id are the order's district. due_at
# moves on when a hold ends (by the time held); held_since is set while on hold. No UNIQUE column of this table
# is ever updated: DuckDB runs such an update as delete + insert, which the tables referencing it refuse.
work_order = sa.Table(
    "work_order", metadata,
    _pk("work_order"),
    sa.Column("number", sa.String(20), nullable=False, unique=True),
    sa.Column("type", sa.String(30), sa.ForeignKey("work_order_type.key"), nullable=False),
    sa.Column("priority", sa.String(10), nullable=False),
    sa.Column("state", sa.String(12), nullable=False, server_default="created"),
    sa.Column("source", sa.String(10), nullable=False),      # manual | counter | phone | api | alarm | followup
    sa.Column("account_id", sa.Integer),
    sa.Column("meter_id", sa.Integer),
    sa.Column("room_id", sa.Integer),
    sa.Column("building_id", sa.Integer),
    sa.Column("area_id", sa.Integer),
    sa.Column("customer_name", sa.String(100)),              # as it stood at creation (search, the phone)
    sa.Column("customer_phone", sa.String(30)),
    sa.Column("pole_number", sa.String(40)),
    sa.Column("description", sa.String(1000), nullable=False),
    sa.Column("cause_key", sa.String(80)),
    sa.Column("alarm_id", sa.Integer),                       # the alarm event it was raised for, if any
    sa.Column("parent_id", sa.Integer),                      # a follow-up order's origin
    sa.Column("external_id", sa.String(80)),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("held_since", UtcDateTime),
    sa.Column("held_from", sa.String(12)),                   # the state a hold returns to
    sa.Column("held_seconds", sa.Integer, nullable=False, server_default="0"),
    sa.Column("assigned_to", sa.Integer),                    # operator.id of the worker
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("dispatched_at", UtcDateTime),                 # first dispatch (first response time)
    sa.Column("accepted_at", UtcDateTime),
    sa.Column("arrived_at", UtcDateTime),
    sa.Column("completed_at", UtcDateTime),                  # latest completion
    sa.Column("closed_at", UtcDateTime),                     # approved or cancelled
    sa.Column("reason", sa.String(500)),                     # the latest hold / reject / cancel / decline reason
    sa.Column("location", sa.String(300)),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.UniqueConstraint("external_id", name="uq_work_order_external_id"),
    sa.Index("ix_work_order_state_due", "state", "due_at").ddl_if(dialect="postgresql"),
    sa.Index("ix_work_order_assigned", "assigned_to", "state").ddl_if(dialect="postgresql"),
    info={"since": 11.1},
)

# The causes that have an open order: the primary key is the database's "never two open orders for one cause",
# also for two transactions at once (INSERT ... ON CONFLICT DO NOTHING); the row goes when its order is approved,
# archived or cancelled.
work_order_cause = sa.Table(
    "work_order_cause", metadata,
    sa.Column("cause_key", sa.String(80), primary_key=True),
    sa.Column("order_id", sa.Integer, nullable=False),
    info={"since": 11.1},
)

work_order_step = sa.Table(
    "work_order_step", metadata,
    _pk("work_order_step"),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),        # step | hazard
    sa.Column("text_en", sa.String(300), nullable=False),
    sa.Column("text_zh", sa.String(300), nullable=False),
    sa.Column("needs_value", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("passed", sa.Boolean),                         # an inspection item: NULL not judged, false failed
    sa.Column("value", sa.String(200)),
    sa.Column("done_by", sa.String(100)),
    sa.Column("done_at", UtcDateTime),
    sa.UniqueConstraint("order_id", "seq", name="uq_work_order_step_seq"),
    info={"since": 11.1},
)

# Money: quantity x unit_price, each line rounded once (core.money), totals summed from the lines.
work_order_material = sa.Table(
    "work_order_material", metadata,
    _pk("work_order_material"),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),        # tool | material | service
    sa.Column("text_en", sa.String(300), nullable=False),
    sa.Column("text_zh", sa.String(300), nullable=False),
    sa.Column("item_class", sa.String(40)),
    sa.Column("unit", sa.String(20)),
    sa.Column("quantity", sa.Numeric(12, 3), nullable=False),
    sa.Column("unit_price", Money, nullable=False),
    sa.Column("updated_by", sa.String(100)),
    sa.Column("updated_at", UtcDateTime),
    sa.Column("added_by", sa.String(100)),                   # since 12: a line added on the order (not the card's)
    sa.UniqueConstraint("order_id", "seq", name="uq_work_order_material_seq"),
    info={"since": 11.1},
)

# A paid service's fee collected from the customer (cash at the door, or at the desk): not a meter credit, so
# it is its own entry here rather than a ledger sale (billing.credit.move_money credits a meter's balance).
work_order_fee = sa.Table(
    "work_order_fee", metadata,
    _pk("work_order_fee"),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("method", sa.String(10), nullable=False),      # cash | card | transfer
    sa.Column("collected_by", sa.String(100), nullable=False),
    sa.Column("collected_at", UtcDateTime, nullable=False),
    sa.Column("note", sa.String(300)),
    info={"since": 11.1},
)

work_order_event = sa.Table(
    "work_order_event", metadata,
    _pk("work_order_event"),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("work_order.id"), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),      # workorders.model.ACTIONS (create, dispatch, ...)
    sa.Column("from_state", sa.String(12)),
    sa.Column("to_state", sa.String(12), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("ts", UtcDateTime, nullable=False),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.Column("note", sa.String(500)),
    sa.Column("worker_id", sa.Integer),                      # the worker assigned by / after this event
    sa.Index("ix_work_order_event_order", "order_id", "ts").ddl_if(dialect="postgresql"),
    info={"since": 11.1},
)

# A field worker: an operator (role worker) with districts, availability and last known location.
worker = sa.Table(
    "worker", metadata,
    sa.Column("operator_id", sa.Integer, sa.ForeignKey("operator.id"), primary_key=True, autoincrement=False),
    sa.Column("phone", sa.String(30)),
    sa.Column("available", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.Column("located_at", UtcDateTime),
    info={"since": 11.1},
)

# A worker's districts: buildings (district_kind "building") and transformer areas ("area").
worker_district = sa.Table(
    "worker_district", metadata,
    sa.Column("operator_id", sa.Integer, sa.ForeignKey("operator.id"), primary_key=True, autoincrement=False),
    sa.Column("district_kind", sa.String(10), primary_key=True),
    sa.Column("district_id", sa.Integer, primary_key=True, autoincrement=False),
    info={"since": 11.1},
)

# ---------------------------------------------------------------------------------------------
# Work orders, the field side (issue 12, since 11.2; workorders/evidence.py, workorders/field.py). Evidence files
# live on disk by content hash (sha256) under [evidence] dir; a row per use of a file (one file, several rows when
# the same photo is sent for two orders). order_id names work_order.id (no foreign key: the core's table and ours
# are created by separate steps of migration 11, and an order is never deleted).
evidence = sa.Table(
    "evidence", metadata,
    _pk("evidence"),
    sa.Column("order_id", sa.Integer),                      # NULL: a message's attachment only
    sa.Column("step", sa.Integer),                          # the operating card's step, when the worker named one
    sa.Column("kind", sa.String(12), nullable=False),       # photo | audio | video | signature | document
    sa.Column("mime", sa.String(60), nullable=False),       # as sniffed from the content
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200)),                      # the file name the phone gave (shown only)
    sa.Column("uploaded_by", sa.String(100), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),  # the server's receipt time
    sa.Column("lat", sa.Double),                            # where the phone was (browser geolocation), if allowed
    sa.Column("lon", sa.Double),
    sa.Column("taken_at", UtcDateTime),                     # the photo's own EXIF time (naive, as the camera wrote it)
    sa.Column("exif_lat", sa.Double),                       # the photo's own EXIF GPS
    sa.Column("exif_lon", sa.Double),
    sa.Column("upload_id", sa.String(64), nullable=False),  # the chunked upload that brought it: a retry finds it
    sa.UniqueConstraint("upload_id", name="uq_evidence_upload"),
    info={"since": 11.2},
)
sa.Index("ix_evidence_order", evidence.c.order_id).ddl_if(dialect="postgresql")

# An upload in progress (resumable): the bytes so far sit in <dir>/partial/<upload_id>; `received` is the offset the
# next chunk must start at. Finished: evidence_id set, the partial file gone.
evidence_upload = sa.Table(
    "evidence_upload", metadata,
    sa.Column("upload_id", sa.String(64), primary_key=True),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("order_id", sa.Integer),
    sa.Column("step", sa.Integer),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),       # declared total
    sa.Column("sha256", sa.String(64), nullable=False),     # declared hash, checked at the end
    sa.Column("name", sa.String(200)),
    sa.Column("received", sa.BigInteger, nullable=False),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("evidence_id", sa.Integer),
    info={"since": 11.2},
)

# The customer's confirmation on site: arrival and completion, each by the customer's QR code verified on the
# server (billing/qr.py), with the customer's drawn signature (evidence, kind signature) and, at completion, the
# satisfaction rating (1..5).
work_order_confirmation = sa.Table(
    "work_order_confirmation", metadata,
    _pk("work_order_confirmation"),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(12), nullable=False),      # arrival | completion
    sa.Column("account_id", sa.Integer, nullable=False),    # whom the QR code named
    sa.Column("signature_id", sa.Integer),                  # evidence.id
    sa.Column("rating", sa.Integer),
    sa.Column("confirmed_by", sa.String(100), nullable=False),
    sa.Column("confirmed_at", UtcDateTime, nullable=False),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.UniqueConstraint("order_id", "stage", name="uq_work_order_confirmation"),
    info={"since": 11.2},
)

# Messages between the office and workers (the seed's mail module); reminders of deadlines are copied here too.
message = sa.Table(
    "message", metadata,
    _pk("message"),
    sa.Column("sender", sa.String(100), nullable=False),    # an operator's username, or "system" for reminders
    sa.Column("recipient", sa.String(100), nullable=False),
    sa.Column("order_id", sa.Integer),
    sa.Column("kind", sa.String(12), nullable=False),       # message | reminder
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False),
    sa.Column("read_at", UtcDateTime),
    sa.Column("episode", sa.String(120)),                   # a reminder's key: one message per order and deadline
    sa.UniqueConstraint("episode", name="uq_message_episode"),
    info={"since": 11.2},
)
sa.Index("ix_message_recipient", message.c.recipient, message.c.sent_at).ddl_if(dialect="postgresql")

message_attachment = sa.Table(
    "message_attachment", metadata,
    sa.Column("message_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("evidence_id", sa.Integer, primary_key=True, autoincrement=False),
    info={"since": 11.2},
)

# Workers' phones (手机终端管理): a device registered at its first sign-in (a random device key kept in a cookie,
# stored here hashed), its browser and app version, state (active | blocked), last location and last seen.
terminal = sa.Table(
    "terminal", metadata,
    _pk("terminal"),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("device_hash", sa.String(64), nullable=False),
    sa.Column("user_agent", sa.String(300)),
    sa.Column("app_version", sa.String(40)),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("registered_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.Column("located_at", UtcDateTime),
    sa.Column("state_reason", sa.String(300)),               # since 12: why it was blocked (or unblocked)
    sa.Column("state_by", sa.String(100)),
    sa.Column("state_at", UtcDateTime),
    sa.UniqueConstraint("device_hash", name="uq_terminal_device"),
    info={"since": 11.2},
)

# One row per terminal and quarter hour in which it was seen (the online rate counts these slots).
terminal_seen = sa.Table(
    "terminal_seen", metadata,
    sa.Column("terminal_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("slot", UtcDateTime, primary_key=True),
    sa.Column("operator", sa.String(100), nullable=False),
    info={"since": 11.2},
)
