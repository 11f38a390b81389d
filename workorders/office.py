"""The work-order office: the review queue, the customer follow-up call (回访), the order list's district and
due filters, the workers' online rate, and the audited KPI export. The lifecycle itself (dispatch, hold, cancel,
approve, reject, archive) is workorders.service.WorkOrderService.act: the office pages call it directly."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from billing.credit import Actor
from core import permissions as P
from core.clock import site_time, utc_time
from storage import audit
from storage import workorder_kpis as kpi_store
from storage import workorder_office as store
from storage import workorders as order_store
from workorders.errors import WorkOrderError
from workorders.kpis import KpiReport, kpi_report
from workorders.service import REASON_LENGTH, WorkOrderService, one_line

FOLLOWUP_OUTCOMES = ("reached", "no_answer", "refused", "wrong_number")
FOLLOWUP_STATES = ("completed", "approved", "archived")   # a call follows the work, never precedes it
DUE_FILTERS = ("due_soon", "overdue")
OFFICE = (P.WORKORDER_DISPATCH, P.WORKORDER_REVIEW)


class Office:
    """The office's reads and writes over one WorkOrderService (its engine, zone and clock)."""

    def __init__(self, service: WorkOrderService):
        self.service = service
        self.engine = service.engine

    def _require_any(self, actor: Actor, permissions: tuple[str, ...], target: str, now: dt.datetime) -> None:
        if not isinstance(actor, Actor):
            raise TypeError("the office's services take a billing.credit.Actor")
        if not any(actor.may(p) for p in permissions):
            raise self.service._deny(actor, permissions[0], target, now)

    # -- the order list ---------------------------------------------------------------------------------------
    def orders(self, actor: Actor, *, text=None, types=None, states=None, worker_id: int | None = None,
               building: str | None = None, due: str | None = None, limit: int = 500,
               now: dt.datetime | None = None) -> list[dict]:
        """WorkOrderService.search, narrowed to a building (district) and to due soon / overdue orders."""
        now = self.service._now(now)
        if due is not None and due not in DUE_FILTERS:
            raise WorkOrderError("state_unknown", state=one_line(due, 20))
        wide = building is not None or due is not None
        rows = self.service.search(actor, text=text, types=types, states=states, worker_id=worker_id,
                                   limit=5000 if wide else limit, now=now)
        if building is not None:
            rows = [r for r in rows if r.get("building_name") == building]
        if due is not None:
            rows = [r for r in rows if r.get("flag") == due]
        return rows[:limit]

    # -- the review queue and the follow-up call -------------------------------------------------------------
    def review_queue(self, actor: Actor, now: dt.datetime | None = None) -> list[dict]:
        """Completed orders to approve or reject, then approved ones to call back and archive."""
        now = self.service._now(now)
        self._require_any(actor, OFFICE, "work_order:review", now)
        with self.engine.connect() as conn:
            return store.review_queue(conn)

    def evidence(self, order_id: int) -> list[dict]:
        """The order's evidence files (the field side's: photos, audio, video, signatures), for its office page."""
        from storage.field import evidence_of_order
        with self.engine.connect() as conn:
            return evidence_of_order(conn, order_id)

    def followups(self, order_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            return store.followups_of(conn, order_id)

    def record_followup(self, actor: Actor, order_id: int, *, outcome, satisfaction=None, called_at=None,
                        note=None, now: dt.datetime | None = None) -> int:
        """The customer's follow-up call: `called_at` the site's local time of the call (None: now), `outcome`
        one of FOLLOWUP_OUTCOMES, `satisfaction` 1-5 only when the customer was reached. Audited."""
        now = self.service._now(now)
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            raise WorkOrderError("order_unknown", order=one_line(order_id, 30))
        target = f"work_order:{order_id}"
        self._require_any(actor, OFFICE, target, now)
        if not isinstance(outcome, str) or outcome not in FOLLOWUP_OUTCOMES:
            raise WorkOrderError("followup_outcome_unknown")
        rating = _rating(satisfaction)
        if rating is not None and outcome != "reached":
            raise WorkOrderError("followup_rating_unreached")
        when = now if called_at is None else _call_time(called_at, self.service.zone)
        if when > now:
            raise WorkOrderError("followup_time_future")
        text = one_line(note, REASON_LENGTH) or None
        with self.engine.begin() as conn:
            o = order_store.order(conn, order_id, for_update=True)
            if o is None:
                raise WorkOrderError("order_unknown", order=order_id)
            if o["state"] not in FOLLOWUP_STATES:
                raise WorkOrderError("followup_not_done", state=o["state"])
            if o["completed_at"] is not None and when < o["completed_at"]:
                raise WorkOrderError("followup_before_completion")
            fid = store.insert_followup(conn, order_id=order_id, called_at=when, called_by=actor.username[:100],
                                        outcome=outcome, satisfaction=rating, note=text,
                                        recorded_by=actor.username[:100], recorded_at=now)
            audit.record(conn, operator=actor.username[:100], action="workorder.followup",
                         target=f"work_order:{o['number']}", ts=now, source=actor.address or actor.channel,
                         after={"outcome": outcome, "satisfaction": rating, "called_at": when, "note": text})
        return fid

    # -- KPIs ---------------------------------------------------------------------------------------------------
    def online_rate(self, first_day: dt.date, last_day: dt.date, now: dt.datetime | None = None) -> float | None:
        """The workers' online rate over the site's days first..last (up to now): the mean over the active workers
        of each one's share of working time their phone was seen, as the terminals page counts it
        (workorders.field.online_rates, same calendar), summed here over whole frames for a period of months;
        None without workers or working time."""
        from workorders.field import SLOT, working_calendar
        now = self.service._now(now)
        calendar = working_calendar(self.service.calendar)
        start = utc_time(dt.datetime.combine(first_day, dt.time()), calendar.zone)
        end = min(now, utc_time(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), calendar.zone))
        working = calendar.between(start, end)
        with self.engine.connect() as conn:
            workers = [w["username"] for w in order_store.workers(conn)]
            seen = kpi_store.seen_frame(conn, start, end) if working > dt.timedelta() else None
        if not workers or seen is None:
            return None
        seen = seen[seen["operator"].isin(workers)]
        slot = pd.to_datetime(seen["slot"])
        lo = site_time(slot.clip(lower=start), calendar.zone)
        hi = site_time((slot + SLOT).clip(upper=end), calendar.zone)
        day = lo.dt.normalize()
        open_, close = (pd.Timedelta(hours=h.hour, minutes=h.minute) for h in calendar.hours)
        overlap = (np.minimum(hi, day + close) - np.maximum(lo, day + open_)).clip(lower=pd.Timedelta(0))
        overlap = overlap.where((lo.dt.day_of_week + 1).isin(list(calendar.days)), pd.Timedelta(0))   # ISO weekdays
        per_worker = (overlap.groupby(seen["operator"]).sum() / working).clip(upper=1.0)
        return float(per_worker.sum()) / len(workers)

    def kpis(self, actor: Actor, first_day: dt.date, last_day: dt.date, now: dt.datetime | None = None) -> KpiReport:
        now = self.service._now(now)
        self._require_any(actor, (P.REPORT_VIEW, *OFFICE), "work_order:kpis", now)
        return kpi_report(self.engine, self.service.zone, now, first_day, last_day,
                          online_rate=self.online_rate(first_day, last_day, now))

    def export_kpis(self, actor: Actor, first_day: dt.date, last_day: dt.date,
                    now: dt.datetime | None = None) -> KpiReport:
        """The KPI report read again for its workbook, and the export written to the operation log."""
        now = self.service._now(now)
        self._require_any(actor, (P.REPORT_EXPORT,), "work_order:kpis", now)
        report = self.kpis(actor, first_day, last_day, now)
        with self.engine.begin() as conn:
            audit.record(conn, operator=actor.username[:100], action="report.export", target="work_order:kpis",
                         ts=now, source=actor.address or actor.channel,
                         after={"report": "workorder_kpis", "from": first_day.isoformat(), "to": last_day.isoformat(),
                                "orders": report.kpis.orders})
        return report


def _rating(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise WorkOrderError("followup_rating_invalid")
    return value


def _call_time(value, zone: dt.tzinfo) -> dt.datetime:
    if not isinstance(value, dt.datetime) or not dt.date(2000, 1, 1) <= value.date() <= dt.date(2999, 12, 31):
        raise WorkOrderError("followup_time_invalid")
    return utc_time(value.replace(tzinfo=None), zone)
