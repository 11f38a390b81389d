"""The work orders' field side in the serving process: the evidence store under the data directory and the field
service, and a job that copies deadline reminders into the workers' messages and forgets abandoned uploads."""
from __future__ import annotations

from core.clock import utcnow
from core.config import Config
from workorders.evidence import EvidenceStore
from workorders.field import FieldService

FIELD_JOB = "field"


def attach_field(engine, cfg: Config, workorders, jobs) -> FieldService:
    evidence = EvidenceStore(engine, cfg.evidence, utcnow, root=cfg.evidence_dir())
    service = FieldService(engine, workorders, evidence, clock=utcnow)

    def run() -> dict:
        return {"reminders": service.copy_reminders(), "stale_uploads": evidence.forget_stale()}
    jobs.add(FIELD_JOB, run, cfg.workorders.deadline_interval_s)
    return service
