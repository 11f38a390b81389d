"""One serving process: the DuckDB file's only writer, the Modbus loop, the scheduler and the web server."""
from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass

from core.clock import iso_utc, utcnow
from core.config import Config
from core.keys import load_master_key, load_secret

log = logging.getLogger("wattline")


PUBLIC_URL_MISSING = (
    "No public address is configured: QR labels, customer cards and the customer page's QR code are refused until "
    "[site] public_url is set to the address customers open (e.g. public_url = \"https://energy.example.edu\").")


class DemoError(RuntimeError):
    """The demo site cannot start; the message says why and what to do."""


@dataclass
class DemoInfo:
    buildings: int = 0
    meters: int = 0
    backfill_rows: int = 0
    backfill_s: float = 0.0


def job_health(s) -> dict:
    """One scheduler job (collectors.schedule.JobStatus) for /healthz: times ISO UTC with Z."""
    return {"name": s.name, "interval_s": s.interval_s, "runs": s.runs, "running": s.running,
            "last_run": iso_utc(s.last_started_at),
            "duration_s": None if s.last_duration_s is None else round(s.last_duration_s, 3),
            "ok": s.last_ok, "last_error": s.last_error, "last_error_at": iso_utc(s.last_error_at),
            "next_run": iso_utc(s.next_run_at)}


class Runtime:
    """Start order: database, (demo: simulator and seed), field I/O, collector, scheduler, web."""

    def __init__(self, cfg: Config, demo: bool = False):
        self.base_cfg = cfg
        self.demo = demo
        self.cfg = cfg.for_demo() if demo else cfg
        self.engine = None
        self.field_thread = None
        self.demo_field = None  # serve.demo_field.DemoField: the simulator page's faults and inputs (the demo only)
        self.field_io = None
        self.collector = None
        self.dash_app = None
        self.server = None
        self.demo_info: DemoInfo | None = None
        self.accounts = None  # operators.service.Accounts: operators, roles, sign-in sessions
        self.billing = None  # billing.context.BillingContext
        self.qr_key: bytes | None = None
        self.dispatcher = None
        self.events = None  # core.events.EventBus: what each poll cycle changed, settled commands
        self.jobs = None  # collectors.schedule.Jobs: the poll and the site-wide jobs
        self.notifications = None  # notify.outbox.Outbox: the SMS outbox and its sender job
        self.alarm_engine = None  # billing.alarm_engine.AlarmEngine: meters' alarms after each cycle
        self.rollups = None  # energy.rollups.EnergyRollups: the energy rollups, kept after each cycle
        self.parameters = None  # serve.parameters.ParameterServices: default parameters, applied without a restart
        self.demo_api_token: str | None = None
        self.demo_operators: list[str] = []
        # QR codes and customer cards lead here; never to a request's Host header (see dashboard.selfservice)
        self.public_url: str | None = self.cfg.public_url
        self._started_at = utcnow()

    # -----------------------------------------------------------------------------------------
    def start(self) -> "Runtime":
        from decimal import Decimal

        from billing.alarm_engine import AlarmEngine
        from collectors.cycle import CollectorService
        from collectors.poller import FieldIO
        from collectors.profiles import ProfileRegistry
        from collectors.schedule import Jobs
        from core.events import COMMAND_SETTLED, EventBus
        from dashboard.app import create_app
        from serve.billing import attach_billing, balance_thresholds, billing_context, demo_api_client, make_dispatcher
        from serve.notifications import attach_notifications
        from serve.parameters import ParameterServices
        from storage.engine import open_engine
        from storage.migrations import migrate

        cfg = self.cfg
        # Everything this process creates (the database, the WAL DuckDB writes later, keys, the demo's
        # field state) is readable by the site's account only.
        os.umask(0o077)
        self.master_key = load_master_key(cfg.master_key_file, cfg.master_key_env)
        self.engine = open_engine(cfg.database_url)
        migrate(self.engine)
        self._start_accounts()
        self.profiles = ProfileRegistry(cfg.profile_dir)
        self.billing = billing_context(self.engine, cfg, self.profiles)
        self.qr_key = load_secret(cfg.qr_key_file, 32)
        if self.demo:
            self.demo_api_token = demo_api_client(self.billing)
            self._start_demo_site()
            from serve.demo_field import DemoField
            self.demo_field = DemoField(self.engine, self.field_thread.field, utcnow)
        self.field_io = FieldIO(self.profiles)
        self.events = EventBus()
        self.jobs = Jobs(clock=utcnow)
        self.collector = CollectorService(self.engine, self.field_io, lost_after=cfg.lost_after, clock=utcnow,
                                          events=self.events,
                                          balance_thresholds=functools.partial(balance_thresholds, self.engine))
        # commands go before each poll cycle and right after each sale; reconciliation and the scheduled tariff
        # push are jobs of their own (both run once now; reconciliation also after each cycle)
        self.dispatcher = make_dispatcher(self.engine, self.field_io, self.master_key.bytes, self.billing,
                                          events=self.events)
        # the full reading and the fast state poll on the intervals in force (the parameters page's, else the
        # configuration's); the page reschedules them through self.parameters; applied limits are read back
        self.parameters = ParameterServices(self.billing, cfg, self.jobs, self.collector, self.dispatcher)
        self.parameters.add_poll_jobs()
        self.events.subscribe(COMMAND_SETTLED, self.collector.on_command_settled)
        attach_billing(self.collector, self.dispatcher, self.billing, self.jobs, self.events,
                       reconcile_interval_s=cfg.reconcile_interval_s, tariff_push_interval_s=cfg.tariff_push_interval_s)
        self.alarm_engine = AlarmEngine(self.engine, clock=utcnow, close_margin=Decimal(cfg.alarms.close_margin),
                                        close_after_polls=cfg.alarms.close_after_polls)
        self.alarm_engine.subscribe(self.events)
        from energy.rollups import attach_rollups
        self.rollups = attach_rollups(self.engine, self.billing.tz, cfg.analytics, self.jobs, self.events)
        from grid.line_loss import attach_line_loss   # transformer areas: frozen midnight registers
        attach_line_loss(self.engine, self.billing.tz, utcnow, self.jobs)
        from grid.power_quality import attach_power_quality   # transformer areas: daily statistics, alarms
        attach_power_quality(self.engine, self.billing.tz, utcnow, self.jobs, max_gap_s=2 * cfg.poll_interval_s)
        from grid.avc import attach_avc   # transformer areas: automatic voltage control after each poll cycle
        attach_avc(self.billing, self.jobs, self.events, enable_new_areas=self.demo)   # on in the demo
        from grid.telesignals import attach_telesignals   # transformer areas: terminals' signals as alarms
        self.telesignals = attach_telesignals(self.engine, self.events, cfg.grid, self.jobs)
        self.notifications = attach_notifications(self.engine, cfg, self.jobs, self.events)
        self.parameters.rules = getattr(self.notifications, "rules", None)   # alarm SMS numbers, changed live
        from serve.workorders import attach_workorders
        self.workorders = attach_workorders(self.engine, cfg, self.qr_key, self.jobs, self.events)
        from serve.field import attach_field
        self.field = attach_field(self.engine, cfg, self.workorders, self.jobs)   # evidence, messages, terminals
        if self.demo:   # the transformer areas' cameras on first start (links to documentation addresses)
            from grid.areas import seed_demo_cameras
            seed_demo_cameras(self.engine, utcnow())
        if self.demo:   # workers, phones and 90 days of orders on first start (workorders.demo)
            from workorders.demo import seed_demo_work_orders
            seed_demo_work_orders(self.engine, self.billing.tz, utcnow(), limits_h={
                p: getattr(cfg.workorders, f"limit_{p}_h") for p in ("urgent", "high", "normal", "low")})
        self.parameters.apply(self.parameters.current())
        self.dispatcher.start()
        self.jobs.start()
        self.dash_app = create_app(self.health, services=self)
        self._install_auth()
        if not self.public_url:
            log.warning(PUBLIC_URL_MISSING)
        return self

    def _start_accounts(self) -> None:
        """Permissions and roles seeded (idempotent); in the demo, one operator per role."""
        from operators.service import Accounts, demo_password
        self.accounts = Accounts(self.engine, clock=utcnow)
        self.accounts.seed()
        if self.demo:
            self.demo_operators = self.accounts.ensure_demo_operators(demo_password())

    def _install_auth(self) -> None:
        """Sign-in on every page; the session key lives next to the master key (mode 0600)."""
        from pathlib import Path

        from dashboard.auth import install_auth
        from dashboard.websecurity import install_request_guards
        limiter = install_request_guards(self.dash_app, self.cfg.limits)
        key_file = Path(self.cfg.master_key_file).with_name("session.key")
        install_auth(self.dash_app, self.accounts, load_secret(key_file), secure_cookies=self.cfg.secure_cookies,
                     limiter=limiter, limits=self.cfg.limits)

    def _start_demo_site(self) -> None:
        from collectors.topology_import import import_topology
        from simulator.field import run_field_in_thread
        from simulator.site import demo_site
        from storage.topology import meter_count

        cfg = self.cfg
        site = demo_site(base_port=cfg.demo.base_port, framing=cfg.demo.framing)
        try:
            self.field_thread = run_field_in_thread(site, state_file=cfg.demo.state_file,
                                                    master_key=self.master_key.bytes)
        except OSError as exc:
            raise DemoError(
                f"the demo simulator cannot listen on ports {cfg.demo.base_port}.. ({exc.strerror}): is another "
                "Wattline demo or simulator running? Stop it, or set [demo] base_port in a --config file") from None
        info = DemoInfo()
        with self.engine.connect() as conn:
            empty = meter_count(conn) == 0
        if empty:
            rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
            import_topology(self.engine, rows, set(self.profiles.names()), utcnow(), source="demo site",
                            operator="demo", origin="demo")
            info.backfill_rows, info.backfill_s = self._backfill(site)
            from serve.demo_field import disturb_first_area   # one area out of the band: the AVC acts at once
            disturb_first_area(self.field_thread.field, site)
        with self.engine.connect() as conn:
            info.meters = meter_count(conn)
        info.buildings = len({r["building"] for r in site.topology_rows()})
        self.demo_info = info

    def _backfill(self, site) -> tuple[int, float]:
        """90 days of half-hourly history on first start, so reports have data at once."""
        import sqlalchemy as sa

        from simulator.history import backfill
        from storage.schema import meter
        from storage.timeseries import append_readings

        t0 = time.perf_counter()
        readings, purchases = backfill(site, days=self.cfg.demo.history_days, end=utcnow(),
                                        field=self.field_thread.field)
        with self.engine.begin() as conn:
            ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
            readings["meter_id"] = readings.pop("meter_address").map(ids)
            readings = readings[readings["meter_id"].notna()]
            n = append_readings(conn, readings)
            from grid.demo import seed_terminal_history   # the area pages' trends: the terminals' device history
            seed_terminal_history(conn, readings)
        from serve.billing import seed_demo
        seed_demo(self.billing, self.field_thread.field, site, purchases, history_start=readings["ts"].min().to_pydatetime())
        from energy.rollups import EnergyRollups
        built = EnergyRollups.from_config(self.engine, self.billing.tz, self.cfg.analytics).rebuild()
        log.info("demo energy rollups: %d meters, %d readings in %.1f s", built["meters"], built["readings"],
                 built["seconds"])
        elapsed = time.perf_counter() - t0
        log.info("demo history: %d readings in %.1f s", n, elapsed)
        return n, elapsed

    # -----------------------------------------------------------------------------------------
    def health(self) -> dict:
        from storage.engine import engine_name
        from storage.health import data_plane_summary

        jobs = self.jobs
        body = {"status": "ok", "time": iso_utc(utcnow()),  # for machines: ISO UTC with Z
                "database": {"engine": engine_name(self.engine) if self.engine else None},
                "demo": self.demo, "scheduler_running": jobs is not None and jobs.running,
                "jobs": [job_health(s) for s in jobs.status()] if jobs is not None else []}
        try:
            with self.engine.connect() as conn:
                summary = data_plane_summary(conn)
        except Exception as exc:  # the database is the one thing healthz must report on
            body.update(status="down", error=f"database: {exc.__class__.__name__}")
            return body
        last = summary.pop("last_poll")
        body.update(summary)
        body["last_poll"] = None if last is None else {
            "started_at": iso_utc(last["started_at"]), "finished_at": iso_utc(last["finished_at"]),
            "duration_s": round(last["duration_s"], 3), "ok": last["ok"], "failed": last["failed"]}
        if not body["scheduler_running"]:
            body["status"] = "degraded"
        return body

    # -----------------------------------------------------------------------------------------
    def make_server(self):
        from waitress import create_server
        proxy = {}
        if self.cfg.trusted_proxy:
            # the proxy's own address is replaced by the client's in request.remote_addr (operation log,
            # login lockout) and its scheme/host make the same-origin check see the browser's https URL
            proxy = dict(trusted_proxy=self.cfg.trusted_proxy, trusted_proxy_count=1,
                         trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"},
                         clear_untrusted_proxy_headers=True)
        # a body above the larger of the two limits is refused by waitress before it is read (or spooled)
        body_limit = max(self.cfg.limits.body_bytes, self.cfg.limits.api_body_bytes)
        self.server = create_server(self.dash_app.server, host=self.cfg.host, port=self.cfg.port,
                                    threads=8, ident="wattline", max_request_body_size=body_limit, **proxy)
        return self.server

    def serve_forever(self) -> None:
        server = self.server or self.make_server()
        url = f"http://{self.cfg.host}:{server.effective_port}"
        if self.demo_info:
            i = self.demo_info
            history = (f"backfilled {i.backfill_rows} readings in {i.backfill_s:.1f} s" if i.backfill_rows
                       else "history kept from the last run")
            print(f"Demo site: {i.buildings} buildings, {i.meters} meters on the simulator "
                  f"(ports from {self.cfg.demo.base_port}); {history}", flush=True)
        if self.demo_operators:
            from operators.service import demo_password
            print(f"Demo operators (one per role): {', '.join(self.demo_operators)}; password: {demo_password()}",
                  flush=True)
        elif self.accounts is not None and not self.accounts.has_operators():
            print("No operator exists yet: run `python app.py user add admin --role admin` first, "
                  "then sign in at /login", flush=True)
        if not self.public_url:
            print(PUBLIC_URL_MISSING, flush=True)
        print(f"Wattline is serving on {url} (health: {url}/healthz)", flush=True)
        server.run()

    def serve_in_thread(self) -> threading.Thread:
        server = self.server or self.make_server()
        th = threading.Thread(target=server.run, name="wattline-web", daemon=True)
        th.start()
        self._web_thread = th
        return th

    def stop(self) -> None:
        from storage.engine import dispose

        if self.server is not None:
            try:
                self.server.close()
                # Waitress's worker threads outlive close(); end them so no request's frames keep
                # database objects alive past the runtime.
                self.server.task_dispatcher.shutdown(timeout=5)
            except Exception:
                pass
        web = getattr(self, "_web_thread", None)
        if web is not None:
            web.join(timeout=10)
        if self.jobs is not None:
            self.jobs.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.field_io is not None:
            self.field_io.close()
        if self.field_thread is not None:
            self.field_thread.stop()
        if self.engine is not None:
            dispose(self.engine)
        # Drop every reference to the database and the app (the services built on them too: billing,
        # accounts, dispatcher ...), so nothing outlives the runtime. Dash keeps the last app in a
        # module global, and that app's config points back here.
        keep = {"base_cfg", "demo", "cfg", "demo_info", "_started_at"}
        for name in list(vars(self)):
            if name not in keep:
                setattr(self, name, None)

