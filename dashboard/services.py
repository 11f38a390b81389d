"""What pages reach on the server: the running process's services and the signed-in operator's name."""
from __future__ import annotations

from flask import current_app


def runtime():
    """The serving process (serve.runtime.Runtime) the app was created for."""
    return current_app.config["WATTLINE_SERVICES"]


def billing():
    """The billing context (billing.context.BillingContext) of the serving process."""
    return runtime().billing


def site_zone():
    """The site's time zone ([site] timezone): every time a page or an export shows is in it (core.clock)."""
    from core.config import Config, site_zone as parse_zone
    services = current_app.config.get("WATTLINE_SERVICES")
    cfg = getattr(services, "cfg", None)
    if cfg is not None:
        return parse_zone(cfg.timezone)
    ctx = getattr(services, "billing", None)
    return ctx.tz if ctx is not None else parse_zone(Config.timezone)


def report_env():
    """What a report run needs (reports.registry.ReportEnv): the billing context and the poll interval."""
    from reports.registry import ReportEnv
    cfg = getattr(runtime(), "cfg", None)
    if cfg is None:
        return ReportEnv(billing())
    return ReportEnv(billing(), cfg.poll_interval_s, cfg.analytics.line_loss_limit)


def operator_name() -> str:
    """The signed-in operator's username, as the ledger and the operation log record it."""
    from dashboard.auth import signed_in
    op = signed_in()
    return op.username if op is not None else "-"


def actor():
    """Who acts, as the billing services check it (billing.credit.Actor): the signed-in operator's name, what
    they may do (nothing until a reset password is changed) and the browser's address."""
    from billing.credit import Actor
    from dashboard.auth import signed_in, source_address
    op = signed_in()
    if op is None or not op.active or op.must_change_password:
        return Actor(op.username if op is not None else "-", frozenset(), address=source_address())
    return Actor(op.username, frozenset(op.permissions), address=source_address())


def site_setup():
    """The site setup service (collectors.site_setup.SiteSetup) over the serving process's database and profiles."""
    from collectors.site_setup import SiteSetup
    from core.clock import utcnow
    services = runtime()
    return SiteSetup(services.engine, services.profiles, utcnow)


def profiles():
    """The serving process's device profiles (collectors.profiles.ProfileRegistry)."""
    return runtime().profiles


def workorders():
    """The work-order service (workorders.service.WorkOrderService) of the serving process."""
    return runtime().workorders


def field():
    """The work orders' field side (workorders.field.FieldService): the worker's phone, evidence, messages, terminals."""
    return runtime().field


def demo_field():
    """The demo's simulated field on demand (serve.demo_field.DemoField: areas, state, set_switch, set_supply_offset);
    None outside the demo (the site has no simulator)."""
    return getattr(runtime(), "demo_field", None)
