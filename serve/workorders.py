"""Work orders in the serving process: the service, its types seeded, the deadline job (automatic orders for alarms
open long enough, reminders), and automatic orders the moment an alarm opens."""
from __future__ import annotations

from core.clock import utcnow
from core.config import Config, site_zone
from core.events import ALARM_CHANGED
from workorders.service import WorkOrderService

DEADLINE_JOB = "workorders"


def attach_workorders(engine, cfg: Config, qr_key: bytes, jobs, events) -> WorkOrderService:
    service = WorkOrderService(engine, config=cfg.workorders, zone=site_zone(cfg.timezone), qr_key=qr_key,
                               clock=utcnow)
    service.seed()
    jobs.add(DEADLINE_JOB, service.run_deadline_job, cfg.workorders.deadline_interval_s)
    events.subscribe(ALARM_CHANGED, service.on_alarm_changed)
    return service
