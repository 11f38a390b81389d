"""Notifications in the serving process: the configured SMS backend, the outbox's named job and the rules
subscribed to the event bus."""
from __future__ import annotations

from pathlib import Path

from core.clock import utcnow
from core.config import Config, site_zone
from notify.backends import build_backend
from notify.outbox import NOTIFY_JOB, Outbox
from notify.rules import NotificationRules


def attach_notifications(engine, cfg: Config, jobs, events) -> Outbox:
    """The outbox sends on its own job (woken whenever a rule queues a message); the backend's log file lives
    beside the master key (the data directory). Messages a stop left in sending go out again."""
    zone = site_zone(cfg.timezone)
    backend = build_backend(cfg.sms, Path(cfg.master_key_file).parent)
    outbox = Outbox(engine, backend, zone=zone, quiet=cfg.sms.quiet_window(), clock=utcnow)
    outbox.recover()
    jobs.add(NOTIFY_JOB, outbox.send_due, cfg.notify_interval_s)
    rules = NotificationRules(engine, cfg.sms, zone, clock=utcnow, wake=lambda: jobs.wake(NOTIFY_JOB))
    rules.subscribe(events)
    outbox.rules = rules   # the parameters page changes rules.sms.alarm_numbers live (serve.parameters)
    return outbox
