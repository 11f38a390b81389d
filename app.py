"""Wattline's command line: serve (default), simulate, read-meter, send-command, import, init-db, rollup, user."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import errno
import logging
import os
import signal
import sys
from decimal import Decimal

from core.clock import utcnow

log = logging.getLogger("wattline")


# ---------------------------------------------------------------------------------------------
# Argument parsing

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description=__doc__)
    p.add_argument("--config", help="configuration TOML (default: $WATTLINE_CONFIG, else built-in defaults)")
    p.add_argument("--demo", action="store_true",
                   help="serve with the simulated demo site (its own database, simulator, 60 s polls)")
    p.add_argument("--host", help="listen address (default from configuration: 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: $PORT, else 8050)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the web server, scheduler and collector (the default)")
    s.add_argument("--demo", action="store_true", dest="serve_demo", help="as the top-level --demo")

    sub.add_parser("simulate", help="run a simulated field of gateways and meters (see `simulate --help`)",
                   add_help=False)

    r = sub.add_parser("read-meter", help="read one meter and print its values as JSON")
    _endpoint_args(r)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--profile", help="built-in or configured profile name")
    g.add_argument("--profile-file", help="a profile TOML file")

    c = sub.add_parser("send-command", help="send one secure command to a meter's mailbox and print the result")
    _endpoint_args(c)
    c.add_argument("--profile", required=True)
    c.add_argument("--meter-address", required=True, help="12-digit meter number")
    c.add_argument("--key-hex", help="site master key as 48 hex digits (default: the configured key)")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name in ("recharge", "refund"):
        a = csub.add_parser(name, help=f"{name} money (purchase count = the meter's count + 1)")
        a.add_argument("--amount", required=True, help="yuan, at most two decimals, e.g. 50.00")
        a.add_argument("--count", required=True, type=int, help="purchase count carried by the frame")
    rl = csub.add_parser("relay", help="trip, close, keep-power-on, keep-power-off")
    rl.add_argument("--action", required=True, choices=["trip", "close", "keep-power-on", "keep-power-off"],
                    dest="relay_action")
    rl.add_argument("--seq", required=True, type=int, help="command sequence (greater than the meter's)")

    i = sub.add_parser("import", help="import topology (buildings, gateways, meters, rooms) from .xlsx or .csv")
    i.add_argument("file")
    i.add_argument("--operator", default=os.environ.get("USER", "cli"), help="name written to the operation log")
    i.add_argument("--encoding", choices=["utf-8", "gb18030"],
                   help="a CSV's encoding; default: UTF-8 if it starts with a byte-order mark, else detected "
                        "(UTF-8 if the whole file is, else GB18030)")
    i.add_argument("--max-rows", type=_positive_int, help="refuse a file with more data rows (default one million)")
    i.add_argument("--check", action="store_true", help="check every row against the database; nothing is imported")

    sub.add_parser("init-db", help="create or upgrade the database schema")

    ro = sub.add_parser("rollup", help="energy rollups: catch up with the readings, or --rebuild them (the server "
                                       "must be stopped on DuckDB: one writing process per file)")
    ro.add_argument("--rebuild", action="store_true", help="recompute the rollups from the readings")
    ro.add_argument("--from", dest="first_day", type=_day, help="first local day to rebuild (YYYY-MM-DD; "
                                                                 "default: the first reading's)")
    ro.add_argument("--to", dest="last_day", type=_day, help="last local day to rebuild (default: the latest)")

    k = sub.add_parser("api-client", help="API clients: add NAME (prints its token once), revoke NAME, list")
    k.add_argument("client_action", choices=["add", "revoke", "list"])
    k.add_argument("name", nargs="?")
    k.add_argument("--scope", action="append", choices=["payment", "control", "reports", "workorders"],
                   help="what the new client may do (repeat for several; default payment): payment sells, control "
                        "sends batch commands (trip, close, keep power, pushes), reports reads the reports, "
                        "workorders takes in tickets as work orders and reads their state")

    rp = sub.add_parser("report", help="write one report (see docs: sales, energy, settlement, lost-meters, ...) "
                                       "as xlsx, csv or json, to a file or (csv, json) the screen")
    rp.add_argument("name", help="sales, energy, settlement, lost-meters, lost-gateways, alarms, alarm-history, "
                                 "readings, instrument-energy")
    rp.add_argument("--from", dest="first", help="first local day, as 2026-11-01")
    rp.add_argument("--to", dest="last", help="last local day (inclusive)")
    rp.add_argument("--place", help="Building, Building/floor or Building/floor/room")
    rp.add_argument("--building", help="a building (the reports that take no --place)")
    rp.add_argument("--by", help="hour, day, month or year (as the report offers)")
    rp.add_argument("--group", help="energy: site, building, floor, room; sales: operator, building, channel")
    rp.add_argument("--operator", help="one operator (cashier)")
    rp.add_argument("--channel", help="sales: desk, api or demo")
    rp.add_argument("--meter", help="readings, instrument-energy: the 12-digit meter number")
    rp.add_argument("--format", dest="fmt", default="csv", help="xlsx, csv or json (default csv)")
    rp.add_argument("--out", help="the file to write (needed for xlsx; else the screen)")
    rp.add_argument("--lang", choices=["en", "zh"], default="en", help="language of titles, headers and messages")

    u = sub.add_parser("user", help="operators who sign in to the dashboard: add, passwd, list")
    usub = u.add_subparsers(dest="user_action", required=True, metavar="ACTION")
    ua = usub.add_parser("add", help="add an operator (asks for the password twice)")
    ua.add_argument("username")
    ua.add_argument("--role", action="append", required=True, dest="roles",
                    help="admin, manager, cashier, operator, analyst or worker; repeat for several")
    ua.add_argument("--name", help="display name (default: the username)")
    ua.add_argument("--language", choices=["en", "zh"], help="UI language (default: as the browser)")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    up = usub.add_parser("passwd", help="set an operator's password (also clears a login lockout)")
    up.add_argument("username")
    up.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    usub.add_parser("list", help="list operators, their roles and state")
    return p


def _positive_int(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def _day(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text) if text.isascii() and len(text) == 10 else None
    except ValueError:
        day = None
    if day is None or not 2000 <= day.year <= 2200:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD, years 2000-2200)")
    return day


def _endpoint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", required=True, dest="dev_host")
    p.add_argument("--port", required=True, type=int, dest="dev_port")
    p.add_argument("--unit", required=True, type=int)
    p.add_argument("--framer", choices=["socket", "rtu"], default="socket")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per request")


# ---------------------------------------------------------------------------------------------
# Commands

def cmd_init_db(cfg) -> int:
    from storage.engine import dispose, engine_name, open_engine
    from storage.migrations import migrate
    engine = open_engine(cfg.database_url)
    try:
        version = migrate(engine)
        print(json.dumps({"database": cfg.database_url, "engine": engine_name(engine), "schema_version": version}))
    finally:
        dispose(engine)
    return 0


def cmd_rollup(cfg, args) -> int:
    """Energy rollups: one upkeep (catch up), or a rebuild of a range of local days."""
    from core.config import site_zone
    from energy.rollups import EnergyRollups
    from storage.engine import dispose, open_engine
    from storage.migrations import migrate
    if (args.first_day or args.last_day) and not args.rebuild:
        raise ValueError("--from and --to go with --rebuild")
    if args.first_day and args.last_day and args.first_day > args.last_day:
        raise ValueError(f"--from {args.first_day} is after --to {args.last_day}")
    engine = open_engine(cfg.database_url)
    try:
        migrate(engine)
        rollups = EnergyRollups.from_config(engine, site_zone(cfg.timezone), cfg.analytics)
        if args.rebuild:
            result = rollups.rebuild(args.first_day, args.last_day)
        else:
            done = rollups.upkeep()
            result = {"meters": done.meters, "readings": done.readings, "seconds": round(done.seconds, 3),
                      "rebuilt": done.rebuilt}
        print(json.dumps({"database": cfg.database_url, "rebuild" if args.rebuild else "upkeep": result}))
    finally:
        dispose(engine)
    return 0


def cmd_import(cfg, args) -> int:
    from collectors.profiles import ProfileRegistry
    from collectors.topology_import import ROW_LIMIT, import_file
    from storage.engine import dispose, open_engine
    from storage.migrations import migrate
    engine = open_engine(cfg.database_url)
    try:
        migrate(engine)
        result = import_file(engine, args.file, set(ProfileRegistry(cfg.profile_dir).names()), utcnow(),
                             operator=args.operator, encoding=args.encoding, row_limit=args.max_rows or ROW_LIMIT,
                             check_only=args.check)
        print(json.dumps({"checked" if args.check else "imported": args.file, **result}))
    finally:
        dispose(engine)
    return 0


def _read_new_password(from_stdin: bool) -> str:
    import getpass

    from operators.service import OperatorError, check_password_policy
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise OperatorError("passwords_differ")
    check_password_policy(password)
    return password


def cmd_user(cfg, args) -> int:
    from operators.service import Accounts, OperatorError
    from dashboard.i18n import t
    from storage.engine import dispose, open_engine
    from storage.migrations import migrate
    engine = open_engine(cfg.database_url)
    by = f"cli:{os.environ.get('USER', 'unknown')}"
    try:
        migrate(engine)
        accounts = Accounts(engine, clock=utcnow)
        accounts.seed()
        if args.user_action == "list":
            rows = accounts.list_operators()
            print(f"{'username':<20} {'roles':<32} {'active':<7} {'locked':<7} last sign-in (UTC)")
            for r in rows:
                last = r["last_login_at"].strftime("%Y-%m-%d %H:%M") if r["last_login_at"] else "-"
                print(f"{r['username']:<20} {','.join(r['roles']):<32} {'yes' if r['active'] else 'no':<7} "
                      f"{'yes' if r['locked'] else 'no':<7} {last}")
            return 0
        password = _read_new_password(args.password_stdin)
        if args.user_action == "add":
            # Whoever runs this on the server chose the password: no forced change at first sign-in.
            op = accounts.add_operator(args.username, args.name, password, args.roles, language=args.language,
                                       by=by, source="cli", must_change_password=False)
            print(f"operator {op.username} added with roles {', '.join(op.roles)}")
        else:
            accounts.set_password(args.username, password, by=by, source="cli", must_change_password=False)
            print(f"password of {args.username} set")
        return 0
    except OperatorError as exc:
        print(f"error: {t(f'auth.error.{exc.key}', 'en', **exc.params)}", file=sys.stderr)
        return 2
    finally:
        dispose(engine)


def cmd_read_meter(cfg, args) -> int:
    from collectors.oneshot import read_meter
    from collectors.profiles import ProfileRegistry, load_profile_file
    profile = load_profile_file(args.profile_file) if args.profile_file else ProfileRegistry(cfg.profile_dir).get(args.profile)
    values = read_meter(args.dev_host, args.dev_port, args.unit, profile, args.framer, timeout_s=args.timeout)
    print(json.dumps(values, default=_json_default, ensure_ascii=False))
    return 0


def cmd_send_command(cfg, args) -> int:
    from collectors.oneshot import send_command
    from collectors.profiles import ProfileRegistry
    from core.keys import MasterKey, load_master_key
    if args.key_hex:
        try:
            key = MasterKey(bytes.fromhex(args.key_hex), "--key-hex")
        except ValueError as exc:
            raise ValueError(f"--key-hex: {exc}") from None
    else:
        key = load_master_key(cfg.master_key_file, cfg.master_key_env, create=False)
    profile = ProfileRegistry(cfg.profile_dir).get(args.profile)
    if args.action == "relay":
        extra = {"relay_action": args.relay_action, "seq": args.seq}
    else:
        from billing.errors import BillingError
        from billing.money import parse_amount
        try:   # the project's one amount parser, as the desk and the API read amounts
            amount = parse_amount(args.amount)
        except BillingError as exc:
            raise ValueError(f"--amount: {exc}") from None
        extra = {"amount": amount, "count": args.count}
    result = send_command(args.dev_host, args.dev_port, args.unit, profile, args.meter_address, key.bytes,
                          args.action, framer=args.framer, timeout_s=args.timeout, **extra)
    print(json.dumps(result, default=_json_default))
    return 0 if result.get("decided") == "applied" else 1


def cmd_simulate(cfg, argv: list[str]) -> int:
    from core.keys import load_master_key
    from simulator.cli import main as simulate_main
    # The simulated meters share the site's master key, so commands from this site verify.
    if not any(a.startswith("--key-hex") or a.startswith("--master-key-file") for a in argv):
        argv = [*argv, "--key-hex", load_master_key(cfg.master_key_file, cfg.master_key_env).bytes.hex()]
    # Meters keep their registers across restarts, like real ones: persist by default.
    if not any(a.startswith("--state-file") for a in argv) and not any(a in ("-h", "--help") for a in argv):
        site = argv[argv.index("--site") + 1] if "--site" in argv[:-1] else "demo"
        argv = [*argv, "--state-file", f"data/simulated-{site}.json"]
    return simulate_main(argv)


def cmd_serve(cfg, demo: bool) -> int:
    from serve.runtime import Runtime
    rt = Runtime(cfg, demo=demo)
    # SIGTERM (service managers, `kill`) stops cleanly: the simulator saves its meters, the
    # scheduler finishes its cycle, DuckDB closes its file.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        rt.start()
        rt.serve_forever()
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"error: address already in use: {cfg.host}:{cfg.port} (another server is running there; "
              "choose another with --port or $PORT)", file=sys.stderr)
        return 2
    finally:
        rt.stop()
    return 0


# ---------------------------------------------------------------------------------------------

def _json_default(v):
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `simulate` owns its own options; everything after it goes to the simulator's parser.
    if "simulate" in argv:
        idx = argv.index("simulate")
        head, rest = argv[:idx], argv[idx + 1:]
        args = parser.parse_args([*head, "simulate"])
    else:
        args, rest = parser.parse_args(argv), []
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core.config import ConfigError, load_config
    from core.keys import KeyError_
    from storage.engine import StorageError
    from collectors.profiles import ProfileError
    from collectors.topology_import import TopologyImportError
    from collectors.modbus import FieldError
    from serve.runtime import DemoError
    try:
        cfg = load_config(args.config)
        if args.port:
            os.environ["PORT"] = str(args.port)
            cfg = load_config(args.config)
        if args.host:
            from dataclasses import replace
            cfg = replace(cfg, host=args.host)
        cmd = args.command or "serve"
        if cmd == "serve":
            return cmd_serve(cfg, demo=args.demo or getattr(args, "serve_demo", False))
        if cmd == "simulate":
            return cmd_simulate(cfg, rest)
        if cmd == "read-meter":
            return cmd_read_meter(cfg, args)
        if cmd == "send-command":
            return cmd_send_command(cfg, args)
        if cmd == "import":
            return cmd_import(cfg, args)
        if cmd == "init-db":
            return cmd_init_db(cfg)
        if cmd == "rollup":
            return cmd_rollup(cfg.for_demo() if args.demo else cfg, args)
        if cmd == "api-client":
            from serve.billing import api_client_cli
            if args.client_action != "list" and not args.name:
                parser.error("api-client add/revoke needs a NAME")
            return api_client_cli(cfg, args.client_action, args.name, f"cli:{os.environ.get('USER', 'unknown')}",
                                  scopes=args.scope)
        if cmd == "user":
            return cmd_user(cfg, args)
        if cmd == "report":
            from serve.reports import report_cli
            raw = {"from": args.first, "to": args.last, "place": args.place, "building": args.building, "by": args.by,
                   "group": args.group, "operator": args.operator, "channel": args.channel, "meter": args.meter}
            return report_cli(cfg, args.name, raw, args.fmt, args.out, f"cli:{os.environ.get('USER', 'unknown')}",
                              args.lang)
        parser.error(f"unknown command {cmd}")
    except (ConfigError, KeyError_, StorageError, ProfileError, TopologyImportError, FieldError, DemoError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
