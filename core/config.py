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
    demo: DemoConfig = field(default_factory=DemoConfig)
    source: str = "defaults"

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
            if section not in _SECTIONS or not isinstance(content, dict):
                raise ConfigError(f"{p}: unknown section [{section}] "
                                  f"(known: {', '.join(sorted(_SECTIONS) + ['alarms', 'demo', 'limits', 'sms'])})")
            for k, v in content.items():
                if k not in _SECTIONS[section]:
                    raise ConfigError(f"{p}: unknown key {section}.{k} (known: {', '.join(sorted(_SECTIONS[section]))})")
                values[_SECTIONS[section][k]] = v
    if env.get("WATTLINE_DATABASE_URL"):
        values["database_url"] = env["WATTLINE_DATABASE_URL"]
    if env.get("PORT"):
        values["port"] = env["PORT"]
    cfg = Config(**_coerce(values, source), demo=DemoConfig(**_coerce_demo(demo_values, source)),
                 limits=LimitsConfig(**limit_values), sms=SmsConfig(**sms_values), alarms=AlarmsConfig(**alarm_values), source=source)
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
