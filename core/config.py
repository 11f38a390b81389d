"""Configuration: one TOML file (by --config or WATTLINE_CONFIG) over defaults that need no file."""
from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """The configuration file or an environment override is wrong; the message says where."""


@dataclass(frozen=True)
class DemoConfig:
    database_url: str = "duckdb:///data/demo.duckdb"
    poll_interval_s: float = 60.0
    state_poll_interval_s: float = 20.0
    base_port: int = 15020             # simulator: first bus port of the demo site
    framing: str = "socket"
    state_file: str = "data/demo-field.json"
    history_days: int = 90


@dataclass(frozen=True)
class LimitsConfig:
    """[limits]: how much one client may ask of the web server (rates as "30/minute", "5/second;100/hour")."""
    login_per_address: str = "30/minute"   # sign-in attempts from one client address
    login_per_user: str = "10/minute"      # sign-in attempts for one user name, from anywhere
    api_per_address: str = "300/minute"    # /api/v1 requests from one client address
    api_per_client: str = "300/minute"     # /api/v1 requests with one bearer token
    body_bytes: int = 4 * 1024 * 1024      # a request body for the pages and their callbacks
    api_body_bytes: int = 64 * 1024        # a request body under /api/v1


@dataclass(frozen=True)
class SmsConfig:
    """[sms]: how messages leave (notify/backends.py) and who gets the operators' alarms."""
    backend: str = "log"               # log | gsm-modem | http
    device: str = "/dev/ttyUSB0"       # gsm-modem: serial device, baud, optional SIM pin
    baud: int = 115200
    pin: str = ""
    url: str = ""                      # http: endpoint and bearer token
    token: str = ""
    quiet_hours: str = "22:00-07:00"   # customer messages held until the end (arrears excepted); "" for none
    alarm_numbers: tuple[str, ...] = ()   # operators' phones
    purchase_confirmation: bool = True    # a message to the holder for every confirmed sale
    operator_language: str = "zh"         # the operators' alarm messages: "zh" or "en"

    def quiet_window(self) -> tuple[dt.time, dt.time] | None:
        """(start, end) in the site's clock, or None without quiet hours."""
        return parse_quiet_hours(self.quiet_hours)


@dataclass(frozen=True)
class AlarmsConfig:
    """[alarms]: the alarm engine's hysteresis (billing/alarm_engine.py)."""
    close_margin: str = "1.00"         # yuan: a low-balance event closes only above its amount plus this
    close_after_polls: int = 1         # an event closes after its condition was clear this many cycles in a row


@dataclass(frozen=True)
class AnalyticsConfig:
    """[analytics]: energy derivation and anomalies (energy/derive.py, energy/analysis.py)."""
    z_limit: float = 3.5               # a room is "high use" above this robust z-score over its floor's rooms
    ceiling_kw: float = 60.0           # no meter delivers more: an interval's energy above this (or the meter's
    spike_margin: float = 1.5          # highest power seen, if more) x hours x margin is a spike, not counted
    estimate_after_minutes: float = 65.0   # an interval longer than this (a silence) is spread and marked estimated
    fine_days: int = 62                # 15-minute rollups are kept this many days (hourly and daily for ever)
    rollup_interval_s: float = 300.0   # the rollup job's interval (it is also woken after every poll cycle)
    line_loss_limit: float = 0.10      # a transformer area's daily or monthly loss rate above this is high (grid/)


@dataclass(frozen=True)
class EvidenceConfig:
    """[evidence]: work orders' evidence files (workorders/evidence.py): where they are kept, how large each kind
    may be, the largest chunk of an upload, and above what size the phone offers to send a file later."""
    dir: str = ""                      # "": evidence/ beside the master key file (data/evidence by default)
    photo_bytes: int = 15 * 1024 * 1024
    audio_bytes: int = 20 * 1024 * 1024
    video_bytes: int = 200 * 1024 * 1024
    chunk_bytes: int = 512 * 1024
    defer_bytes: int = 2 * 1024 * 1024


_EVIDENCE_SIZES = ("photo_bytes", "audio_bytes", "video_bytes", "chunk_bytes", "defer_bytes")


@dataclass(frozen=True)
class WorkOrdersConfig:
    """[workorders]: automatic orders, time limits, reminders (workorders/)."""
    arrears_after_h: float = 24.0          # an arrears alarm open this long raises a fee-collection order
    lost_contact_after_h: float = 4.0      # a meter lost this long raises a repair order
    relay_failed_orders: bool = True       # a failed relay command raises a repair order
    limit_urgent_h: float = 4.0            # time limits by priority, where no type's own (work_order_limit) is set
    limit_high_h: float = 24.0
    limit_normal_h: float = 72.0
    limit_low_h: float = 168.0
    due_soon_h: float = 2.0                # "due soon" this long before the deadline; the first reminder then
    working_hours: str = ""                # "08:00-18:00": the clock runs only then (and on working_days); "" always
    working_days: str = "1-7"              # ISO weekdays the clock runs on when working_hours is set: "1-5", "1,2,3"
    manager_phone: str = ""                # the deadline reminders' second recipient
    deadline_interval_s: float = 300.0     # the deadline and automatic-order job's interval


_WORKORDER_LIMITS = {"arrears_after_h": (0.0, 8760.0), "lost_contact_after_h": (0.0, 8760.0),
                     "limit_urgent_h": (0.1, 8760.0), "limit_high_h": (0.1, 8760.0), "limit_normal_h": (0.1, 8760.0),
                     "limit_low_h": (0.1, 8760.0), "due_soon_h": (0.0, 8760.0),
                     "deadline_interval_s": (1.0, 86400.0)}


_ANALYTICS_LIMITS = {"z_limit": (0.5, 100.0), "ceiling_kw": (0.1, 1e6), "spike_margin": (1.0, 100.0),
                     "estimate_after_minutes": (1.0, 1440.0), "fine_days": (1, 3660),
                     "rollup_interval_s": (1.0, 86400.0), "line_loss_limit": (0.001, 1.0)}


@dataclass(frozen=True)
class GridConfig:
    """[grid]: the transformer areas' environment limits (grid/telesignals.py): an event opens above a limit and
    closes once the value is back below it by the margin (so a value hovering at the limit opens one event)."""
    oil_temp_max: float = 85.0         # degrees C, the transformer's top oil
    ambient_temp_max: float = 40.0     # degrees C, in the substation / box
    humidity_max: float = 90.0         # % relative humidity
    environment_margin: float = 2.0    # degrees C or % RH below the limit before an event closes


_GRID_LIMITS = {"oil_temp_max": (20.0, 150.0), "ambient_temp_max": (0.0, 80.0), "humidity_max": (10.0, 100.0),
                "environment_margin": (0.0, 20.0)}


_RATE_KEYS = ("login_per_address", "login_per_user", "api_per_address", "api_per_client")
_BODY_KEYS = ("body_bytes", "api_body_bytes")
MAX_BODY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    database_url: str = "duckdb:///data/energy.duckdb"
    host: str = "127.0.0.1"
    port: int = 8050
    secure_cookies: bool = False       # behind HTTPS: session cookies only over HTTPS
    trusted_proxy: str | None = None   # a reverse proxy's IP: its X-Forwarded-For/-Proto/-Host are believed
    poll_interval_s: float = 1800.0    # 30 minutes, the seed system's default: the full collective reading
    state_poll_interval_s: float = 120.0  # the fast state poll (balance, relay, status bits) between full readings
    lost_after: int = 3                # consecutive missed polls before a meter is lost
    # [jobs]: site-wide scheduler jobs besides the poll, each on its own interval (seconds)
    reconcile_interval_s: float = 300.0      # ledger against meters (also woken after every poll cycle)
    tariff_push_interval_s: float = 60.0     # scheduled tariff versions that took effect go to their meters
    notify_interval_s: float = 15.0          # the SMS outbox looks for due messages (also woken when one is queued)
    profile_dir: str | None = None     # extra device profiles (TOML) for this site
    master_key_file: str = "data/master.key"
    master_key_env: str = "WATTLINE_MASTER_KEY"
    qr_key_file: str = "data/qr.key"
    timezone: str = "+08:00"           # the site's clock for "today": "+08:00" or an IANA name (Asia/Shanghai)
    public_url: str | None = None      # the site's address for customers (QR codes, cards): never a request's Host
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    workorders: WorkOrdersConfig = field(default_factory=WorkOrdersConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    source: str = "defaults"

    def evidence_dir(self) -> Path:
        """Where work orders' evidence files are kept ([evidence] dir, else evidence/ beside the master key)."""
        return Path(self.evidence.dir) if self.evidence.dir else Path(self.master_key_file).parent / "evidence"

    def for_demo(self) -> "Config":
        """The demo site runs on its own database with a fast poll; its QR codes lead to this machine."""
        return replace(self, database_url=self.demo.database_url, poll_interval_s=self.demo.poll_interval_s,
                       state_poll_interval_s=self.demo.state_poll_interval_s,
                       public_url=self.public_url or f"http://127.0.0.1:{self.port}")


_SECTIONS = {
    "database": {"url": "database_url"},
    "server": {"host": "host", "port": "port", "secure_cookies": "secure_cookies", "trusted_proxy": "trusted_proxy"},
    "collector": {"poll_interval_s": "poll_interval_s", "state_poll_interval_s": "state_poll_interval_s",
                  "lost_after": "lost_after", "profile_dir": "profile_dir"},
    "keys": {"master_key_file": "master_key_file", "master_key_env": "master_key_env", "qr_key_file": "qr_key_file"},
    "site": {"timezone": "timezone", "public_url": "public_url"},
    "jobs": {"reconcile_interval_s": "reconcile_interval_s", "tariff_push_interval_s": "tariff_push_interval_s",
             "notify_interval_s": "notify_interval_s"},
}
JOB_INTERVALS = ("poll_interval_s", "state_poll_interval_s", "reconcile_interval_s", "tariff_push_interval_s",
                 "notify_interval_s")
MAX_INTERVAL_S = 31 * 86400
_TYPES = {f.name: f.type for f in fields(Config)}


def load_config(path: str | os.PathLike | None = None, env: dict | None = None) -> Config:
    env = os.environ if env is None else env
    path = path or env.get("WATTLINE_CONFIG")
    values: dict = {}
    demo_values: dict = {}
    limit_values: dict = {}
    sms_values: dict = {}
    alarm_values: dict = {}
    analytics_values: dict = {}
    grid_values: dict = {}
    evidence_values: dict = {}
    workorder_values: dict = {}
    source = "defaults"
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        source = str(p)
        for section, content in data.items():
            if section == "demo":
                if not isinstance(content, dict):
                    raise ConfigError(f"{p}: [demo] must be a table")
                known = {f.name for f in fields(DemoConfig)}
                for k, v in content.items():
                    if k not in known:
                        raise ConfigError(f"{p}: unknown key demo.{k} (known: {', '.join(sorted(known))})")
                    demo_values[k] = v
                continue
            if section == "limits":
                limit_values = _limits_section(content, p)
                continue
            if section == "sms":
                sms_values = _sms_section(content, p)
                continue
            if section == "alarms":
                alarm_values = _alarms_section(content, p)
                continue
            if section == "analytics":
                analytics_values = _analytics_section(content, p)
                continue
            if section == "grid":
                grid_values = _grid_section(content, p)
                continue
            if section == "workorders":
                workorder_values = _workorders_section(content, p)
                continue
            if section == "evidence":
                evidence_values = _evidence_section(content, p)
                continue
            if section not in _SECTIONS or not isinstance(content, dict):
                known = sorted([*_SECTIONS, "alarms", "analytics", "demo", "evidence", "grid", "limits", "sms",
                                "workorders"])
                raise ConfigError(f"{p}: unknown section [{section}] (known: {', '.join(known)})")
            for k, v in content.items():
                if k not in _SECTIONS[section]:
                    raise ConfigError(f"{p}: unknown key {section}.{k} (known: {', '.join(sorted(_SECTIONS[section]))})")
                values[_SECTIONS[section][k]] = v
    if env.get("WATTLINE_DATABASE_URL"):
        values["database_url"] = env["WATTLINE_DATABASE_URL"]
    if env.get("PORT"):
        values["port"] = env["PORT"]
    cfg = Config(**_coerce(values, source), demo=DemoConfig(**_coerce_demo(demo_values, source)),
                 limits=LimitsConfig(**limit_values), sms=SmsConfig(**sms_values),
                 alarms=AlarmsConfig(**alarm_values), analytics=AnalyticsConfig(**analytics_values),
                 grid=GridConfig(**grid_values),
                 evidence=EvidenceConfig(**evidence_values), workorders=WorkOrdersConfig(**workorder_values),
                 source=source)
    _validate(cfg)
    return cfg


def _coerce(values: dict, source: str) -> dict:
    out = {}
    for k, v in values.items():
        try:
            if k in ("port", "lost_after"):
                out[k] = int(v)
            elif k == "secure_cookies":
                if not isinstance(v, bool):
                    raise ValueError
                out[k] = v
            elif k in JOB_INTERVALS:
                if isinstance(v, bool):
                    raise ValueError
                out[k] = float(v)
            else:
                out[k] = None if v == "" else str(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {k} = {v!r} is not a valid value") from None
    return out


def _coerce_demo(values: dict, source: str) -> dict:
    out = {}
    for k, v in values.items():
        try:
            out[k] = {"poll_interval_s": float, "state_poll_interval_s": float, "base_port": int,
                      "history_days": int}.get(k, str)(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: demo.{k} = {v!r} is not a valid value") from None
    return out


def _limits_section(content, path: Path) -> dict:
    """[limits], each value checked here: a rate the limiter understands, a body size in bytes."""
    from limits import parse_many
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [limits] must be a table")
    out = {}
    for k, v in content.items():
        if k in _RATE_KEYS:
            try:
                if not isinstance(v, str) or not parse_many(v):
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{path}: limits.{k} = {v!r} is not a rate such as \"30/minute\" "
                                  "or \"5/second;100/hour\"") from None
        elif k in _BODY_KEYS:
            if isinstance(v, bool) or not isinstance(v, int) or not (1024 <= v <= MAX_BODY_BYTES):
                raise ConfigError(f"{path}: limits.{k} = {v!r} must be a whole number of bytes from 1024 to "
                                  f"{MAX_BODY_BYTES}")
        else:
            known = ", ".join(sorted(_RATE_KEYS + _BODY_KEYS))
            raise ConfigError(f"{path}: unknown key limits.{k} (known: {known})")
        out[k] = v
    return out


def _alarms_section(content, path: Path) -> dict:
    """[alarms]: close_margin as yuan in quotes ("1.00", 0 to 1000), close_after_polls a whole number 1 to 100."""
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [alarms] must be a table")
    out = {}
    for k, v in content.items():
        if k == "close_margin":
            if not isinstance(v, str) or not re.fullmatch(r"\d{1,4}(\.\d{1,2})?", v.strip()) or float(v) > 1000:
                raise ConfigError(f"{path}: alarms.close_margin = {v!r} must be yuan in quotes from \"0\" to "
                                  "\"1000.00\", e.g. \"1.00\"")
            out[k] = v.strip()
        elif k == "close_after_polls":
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100:
                raise ConfigError(f"{path}: alarms.close_after_polls = {v!r} must be a whole number from 1 to 100")
            out[k] = v
        else:
            raise ConfigError(f"{path}: unknown key alarms.{k} (known: close_after_polls, close_margin)")
    return out


def _analytics_section(content, path: Path) -> dict:
    """[analytics]: numbers within _ANALYTICS_LIMITS (fine_days a whole number)."""
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [analytics] must be a table")
    out = {}
    for k, v in content.items():
        if k not in _ANALYTICS_LIMITS:
            raise ConfigError(f"{path}: unknown key analytics.{k} (known: {', '.join(sorted(_ANALYTICS_LIMITS))})")
        lo, hi = _ANALYTICS_LIMITS[k]
        whole = k == "fine_days"
        if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)) or not lo <= v <= hi:
            kind = "a whole number" if whole else "a number"
            raise ConfigError(f"{path}: analytics.{k} = {v!r} must be {kind} from {lo:g} to {hi:g}")
        out[k] = v if whole else float(v)
    return out


def _grid_section(content, path: Path) -> dict:
    """[grid]: numbers within _GRID_LIMITS."""
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [grid] must be a table")
    out = {}
    for k, v in content.items():
        if k not in _GRID_LIMITS:
            raise ConfigError(f"{path}: unknown key grid.{k} (known: {', '.join(sorted(_GRID_LIMITS))})")
        lo, hi = _GRID_LIMITS[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ConfigError(f"{path}: grid.{k} = {v!r} must be a number from {lo:g} to {hi:g}")
        out[k] = float(v)
    return out


def _evidence_section(content, path: Path) -> dict:
    """[evidence]: dir a path; the sizes whole numbers of bytes from 1 KiB to MAX_EVIDENCE_BYTES."""
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [evidence] must be a table")
    out = {}
    for k, v in content.items():
        if k == "dir":
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{path}: evidence.dir = {v!r} must be a directory path")
            out[k] = v.strip()
        elif k in _EVIDENCE_SIZES:
            if isinstance(v, bool) or not isinstance(v, int) or not 1024 <= v <= MAX_EVIDENCE_BYTES:
                raise ConfigError(f"{path}: evidence.{k} = {v!r} must be a whole number of bytes from 1024 to "
                                  f"{MAX_EVIDENCE_BYTES}")
            out[k] = v
        else:
            raise ConfigError(f"{path}: unknown key evidence.{k} (known: {', '.join(('dir',) + _EVIDENCE_SIZES)})")
    return out


MAX_EVIDENCE_BYTES = 4 * 1024 * 1024 * 1024


def _workorders_section(content, path: Path) -> dict:
    """[workorders]: hours and intervals within _WORKORDER_LIMITS, the working-hours calendar, a phone, a flag."""
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [workorders] must be a table")
    known = {f.name for f in fields(WorkOrdersConfig)}
    out: dict = {}
    for k, v in content.items():
        if k not in known:
            raise ConfigError(f"{path}: unknown key workorders.{k} (known: {', '.join(sorted(known))})")
        if k in _WORKORDER_LIMITS:
            lo, hi = _WORKORDER_LIMITS[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ConfigError(f"{path}: workorders.{k} = {v!r} must be a number from {lo:g} to {hi:g}")
            out[k] = float(v)
        elif k == "relay_failed_orders":
            if not isinstance(v, bool):
                raise ConfigError(f"{path}: workorders.{k} = {v!r} must be true or false")
            out[k] = v
        elif k == "working_hours":
            try:
                if not isinstance(v, str) or (v.strip() and parse_quiet_hours(v) is None):
                    raise ValueError
                if v.strip() and parse_quiet_hours(v)[0] > parse_quiet_hours(v)[1]:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{path}: workorders.working_hours = {v!r} must be \"HH:MM-HH:MM\" within one "
                                  "day, e.g. \"08:00-18:00\", or \"\" for around the clock") from None
            out[k] = v.strip()
        elif k == "working_days":
            if not isinstance(v, str) or parse_weekdays(v) is None:
                raise ConfigError(f"{path}: workorders.working_days = {v!r} must name ISO weekdays 1 (Monday) to 7, "
                                  "e.g. \"1-5\" or \"1,2,3,4,5,6\"")
            out[k] = v.strip()
        else:
            if not isinstance(v, str) or len(v) > 30:
                raise ConfigError(f"{path}: workorders.{k} = {v!r} must be a phone number in quotes")
            out[k] = v.strip()
    return out


def parse_weekdays(spec: str) -> frozenset[int] | None:
    """ISO weekdays from "1-5" or "1,2,3" (1 Monday .. 7 Sunday); None when the text is not that."""
    days: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        m = re.fullmatch(r"([1-7])(?:-([1-7]))?", part)
        if not m:
            return None
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo > hi:
            return None
        days.update(range(lo, hi + 1))
    return frozenset(days) or None


def _sms_section(content, path: Path) -> dict:
    """[sms], each key checked here with a message that names it."""
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: [sms] must be a table")
    known = {f.name for f in fields(SmsConfig)}
    out: dict = {}
    for k, v in content.items():
        if k not in known:
            raise ConfigError(f"{path}: unknown key sms.{k} (known: {', '.join(sorted(known))})")
        if k == "backend":
            if v not in ("log", "gsm-modem", "http"):
                raise ConfigError(f"{path}: sms.backend = {v!r} must be \"log\", \"gsm-modem\" or \"http\"")
        elif k == "baud":
            if isinstance(v, bool) or not isinstance(v, int) or v not in _BAUDS:
                raise ConfigError(f"{path}: sms.baud = {v!r} must be one of {', '.join(map(str, _BAUDS))}")
        elif k == "operator_language":
            if v not in ("zh", "en"):
                raise ConfigError(f"{path}: sms.operator_language = {v!r} must be \"zh\" or \"en\"")
        elif k == "purchase_confirmation":
            if not isinstance(v, bool):
                raise ConfigError(f"{path}: sms.purchase_confirmation = {v!r} must be true or false")
        elif k == "alarm_numbers":
            if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
                raise ConfigError(f"{path}: sms.alarm_numbers must be a list of phone numbers in quotes, "
                                  "e.g. [\"13800138000\"]")
            for n in v:
                if not re.fullmatch(r"\+?[0-9][0-9 -]{2,19}", n.strip()):
                    raise ConfigError(f"{path}: sms.alarm_numbers: {n!r} is not a phone number")
            v = tuple(n.strip() for n in v)
        elif not isinstance(v, str):
            raise ConfigError(f"{path}: sms.{k} = {v!r} must be text in quotes")
        elif k == "quiet_hours":
            try:
                parse_quiet_hours(v)
            except ValueError as exc:
                raise ConfigError(f"{path}: sms.quiet_hours: {exc}") from None
        elif k == "pin" and v and not re.fullmatch(r"[0-9]{4,8}", v):
            raise ConfigError(f"{path}: sms.pin must be the SIM's 4 to 8 digits, or \"\" for none")
        elif k == "url" and v:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{path}: sms.url = {v!r} is not an http(s) address")
        out[k] = v
    backend = out.get("backend", "log")
    if backend == "http" and not out.get("url"):
        raise ConfigError(f"{path}: sms.backend = \"http\" needs sms.url (the gateway's address)")
    if backend == "gsm-modem" and not out.get("device", SmsConfig.device):
        raise ConfigError(f"{path}: sms.backend = \"gsm-modem\" needs sms.device (e.g. \"/dev/ttyUSB0\")")
    return out


_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def parse_quiet_hours(spec: str) -> tuple[dt.time, dt.time] | None:
    """"22:00-07:00" -> (22:00, 07:00) (a window may pass midnight); "" -> None."""
    if not spec.strip():
        return None
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", spec)
    if not m:
        raise ValueError(f"{spec!r} is not a window such as \"22:00-07:00\" (or \"\" for none)")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"{spec!r} holds a time that does not exist (hours 00-23, minutes 00-59)")
    start, end = dt.time(h1, m1), dt.time(h2, m2)
    if start == end:
        raise ValueError(f"{spec!r} starts and ends at the same time; write \"\" for no quiet hours")
    return start, end


def _validate(cfg: Config) -> None:
    if not (1 <= cfg.port <= 65535):
        raise ConfigError(f"{cfg.source}: port {cfg.port} is outside 1..65535")
    for name in JOB_INTERVALS:
        if not 1 <= getattr(cfg, name) <= MAX_INTERVAL_S:   # NaN and infinity too
            raise ConfigError(f"{cfg.source}: {name} must be from 1 second to {MAX_INTERVAL_S} (31 days)")
    if cfg.lost_after < 1:
        raise ConfigError(f"{cfg.source}: lost_after must be at least 1 poll")
    if not (cfg.database_url.startswith("duckdb:") or cfg.database_url.startswith("postgresql")):
        raise ConfigError(f"{cfg.source}: database url must start with duckdb: or postgresql")
    if cfg.trusted_proxy is not None:
        import ipaddress
        try:
            ipaddress.ip_address(cfg.trusted_proxy)
        except ValueError:
            raise ConfigError(f"{cfg.source}: server.trusted_proxy = {cfg.trusted_proxy!r} is not an IP address "
                              "(the address the reverse proxy connects from, e.g. \"127.0.0.1\")") from None
    if cfg.demo.framing not in ("socket", "rtu"):
        raise ConfigError(f"{cfg.source}: demo.framing must be socket or rtu")
    try:
        site_zone(cfg.timezone)
    except ValueError as exc:
        raise ConfigError(f"{cfg.source}: site.timezone: {exc}") from None
    if cfg.public_url is not None:
        parts = urlsplit(cfg.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"{cfg.source}: site.public_url = {cfg.public_url!r} is not the site's address "
                              "(e.g. \"https://energy.example.edu\" or \"http://192.168.1.20:8050\")")


def site_zone(spec: str) -> dt.tzinfo:
    """The site's time zone from "+08:00" / "-05:30" (fixed offset) or an IANA name such as "Asia/Shanghai"."""
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", spec.strip())
    if m:
        sign = 1 if m.group(1) == "+" else -1
        hours, minutes = int(m.group(2)), int(m.group(3))
        if hours > 14 or minutes > 59:
            raise ValueError(f"{spec!r} is not a UTC offset between -14:00 and +14:00")
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(spec.strip())
    except Exception:
        raise ValueError(f"{spec!r} is neither a UTC offset like +08:00 nor a known time zone name") from None
