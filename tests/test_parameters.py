"""Default parameters: stored, audited with before and after, refused with a message when bad, and a poll interval
change reschedules the running jobs without a restart."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing.context import utcnow
from billing.errors import BillingError
from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from collectors.schedule import POLL_JOB, STATE_POLL_JOB, Jobs
from core.config import Config
from serve.parameters import ParameterServices
from storage.schema import audit_log, setting

from tests.billing_support import actor, flat_tariff, make_ctx


@pytest.fixture
def params(any_engine):
    ctx = make_ctx(any_engine, utcnow)
    jobs = Jobs()
    with FieldIO(ProfileRegistry()) as fio:
        collector = CollectorService(any_engine, fio, clock=utcnow)
        services = ParameterServices(ctx, Config(), jobs, collector)
        services.add_poll_jobs()
        yield services


def _interval(jobs: Jobs, name: str) -> float:
    return next(s.interval_s for s in jobs.status() if s.name == name)


def test_the_poll_intervals_start_from_the_configuration(params):
    assert (_interval(params.jobs, POLL_JOB), _interval(params.jobs, STATE_POLL_JOB)) == (1800.0, 120.0)


def test_a_poll_interval_change_reschedules_the_job_and_is_audited_with_before_and_after(params):
    new, changed = params.save(actor("admin"), {"state_poll_interval_s": "90", "poll_interval_s": "1800"})
    assert changed == ["state_poll_interval_s"] and new.state_poll_interval_s == 90.0
    assert _interval(params.jobs, STATE_POLL_JOB) == 90.0 and params.collector.state_poll_interval_s == 90.0
    with params.ctx.engine.connect() as conn:
        row = conn.execute(sa.select(audit_log).where(audit_log.c.action == "settings.parameter")).mappings().one()
    assert (row["operator"], row["target"]) == ("admin", "collector.state_poll_interval_s")
    assert json.loads(row["before"]) == {"state_poll_interval_s": 120.0}
    assert json.loads(row["after"]) == {"state_poll_interval_s": 90.0}
    assert params.current().state_poll_interval_s == 90.0     # kept: the next start uses it too


def test_the_defaults_are_stored_and_each_change_logged(params):
    tid = flat_tariff(params.ctx)
    new, changed = params.save(actor("admin"), {
        "alarm1": "25", "alarm2": "8.50", "overload_w": "4000", "default_tariff_id": str(tid),
        "hoarding_limit": "", "alarm_numbers": "13900000001, 13900000002", "command_expiry_h": "12"})
    assert (new.alarm1, new.alarm2, new.overload_w, new.hoarding_limit) == (Decimal("25.00"), Decimal("8.50"), 4000,
                                                                             None)
    assert new.alarm_numbers == ("13900000001", "13900000002") and new.command_expiry_h == 12.0
    with params.ctx.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log.c.target).where(audit_log.c.action == "settings.parameter")).scalars()
        assert set(logged) == {"billing.alarm1", "billing.alarm2", "billing.overload_w", "billing.hoarding_limit",
                               "sms.alarm_numbers", "billing.command_expiry_hours"}


@pytest.mark.parametrize("form, field, code", [
    ({"poll_interval_s": "5"}, "poll_interval_s", "interval_invalid"),
    ({"poll_interval_s": "1,800"}, "poll_interval_s", "interval_invalid"),
    ({"state_poll_interval_s": "3600"}, "state_poll_interval_s", "state_poll_slower"),
    ({"alarm1": "50,5"}, "alarm1", "amount_decimal_comma"),
    ({"alarm2": "30"}, "alarm2", "alarm2_above_alarm1"),
    ({"overload_w": "99999"}, "overload_w", "overload_invalid"),
    ({"alarm_numbers": "13900000001, call me"}, "alarm_numbers", "phone_invalid"),
    ({"default_tariff_id": "77"}, "default_tariff_id", "tariff_unknown"),
    ({"command_expiry_h": "-1"}, "command_expiry_h", "expiry_invalid"),
])
def test_a_bad_parameter_is_refused_with_a_message_and_nothing_is_written(params, form, field, code):
    with pytest.raises(BillingError) as err:
        params.save(actor("admin"), form)
    assert (err.value.code, err.value.field) == (code, field)
    assert "billing.error" not in err.value.message("zh")
    with params.ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(setting)).scalar() == 0
    assert _interval(params.jobs, POLL_JOB) == 1800.0


def test_an_operator_without_settings_edit_cannot_change_a_parameter(params):
    with pytest.raises(BillingError) as err:
        params.save(actor("operator"), {"poll_interval_s": "600"})
    assert err.value.code == "permission_denied" and _interval(params.jobs, POLL_JOB) == 1800.0
