"""Default parameters in the serving process: the poll jobs on the intervals in force, and what the parameters page
calls to store a change and apply it to the running process (jobs rescheduled, no restart)."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

from billing.parameters import Parameters, read_parameters, save_parameters
from collectors.schedule import POLL_JOB, STATE_POLL_JOB

log = logging.getLogger("wattline.parameters")


def config_fallbacks(cfg) -> dict:
    """The configuration file's values of the parameters it also sets; those stored from the page win."""
    return {"poll_interval_s": cfg.poll_interval_s, "state_poll_interval_s": cfg.state_poll_interval_s,
            "alarm_numbers": tuple(cfg.sms.alarm_numbers)}


class ParameterServices:
    """The runtime's `parameters`: read, save (permission, checks, audit in billing.parameters) and apply."""

    def __init__(self, ctx, cfg, jobs, collector, dispatcher=None, notification_rules=None):
        self.ctx, self.fallbacks = ctx, config_fallbacks(cfg)
        self.jobs, self.collector, self.dispatcher, self.rules = jobs, collector, dispatcher, notification_rules

    def current(self) -> Parameters:
        with self.ctx.engine.connect() as conn:
            return read_parameters(conn, **self.fallbacks)

    def add_poll_jobs(self) -> Parameters:
        """The full reading and the fast state poll as named jobs on the intervals in force."""
        params = self.current()
        self.jobs.add(POLL_JOB, self.collector.run_cycle, params.poll_interval_s)
        self.jobs.add(STATE_POLL_JOB, self.collector.run_state_poll, params.state_poll_interval_s,
                      first_run=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=params.state_poll_interval_s))
        self.apply(params)
        return params

    def save(self, actor, form: dict) -> tuple[Parameters, list[str]]:
        params, changed = save_parameters(self.ctx, actor, form, **self.fallbacks)
        self.apply(params, changed)
        return params, changed

    def apply(self, params: Parameters, changed: list[str] | None = None) -> None:
        """Put the parameters to work in this process: job intervals, the dispatcher's expiry, alarm numbers."""
        changed = set(changed) if changed is not None else None
        self.collector.state_poll_interval_s = params.state_poll_interval_s
        if changed is not None and "poll_interval_s" in changed:
            self.jobs.reschedule(POLL_JOB, params.poll_interval_s)
        if changed is not None and "state_poll_interval_s" in changed:
            self.jobs.reschedule(STATE_POLL_JOB, params.state_poll_interval_s)
        if self.dispatcher is not None:
            self.dispatcher.expire_after = dt.timedelta(hours=params.command_expiry_h)
        if self.rules is not None and getattr(self.rules, "sms", None) is not None:
            self.rules.sms = replace(self.rules.sms, alarm_numbers=tuple(params.alarm_numbers))
