"""What every billing service needs, passed explicitly: the database, a clock, the personal-data key, the site zone."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa

from core.clock import site_time, utcnow  # noqa: F401  (utcnow: imported from here by callers)

CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")


@dataclass
class BillingContext:
    engine: sa.Engine
    pii_key: bytes                                     # 32 bytes, AES-256-GCM for national IDs
    clock: Callable[[], dt.datetime] = utcnow           # naive UTC, like every timestamp stored
    tz: dt.tzinfo = CHINA_STANDARD_TIME                 # the site's clock: receipt dates, days, months
    notify: Callable[[], None] | None = None            # called after commands were queued (dispatcher.kick)
    prepaid_profiles: frozenset[str] | None = field(default=None)  # profiles that take money commands

    def now(self) -> dt.datetime:
        return self.clock()

    def local(self, utc: dt.datetime) -> dt.datetime:
        """A stored (naive UTC) time as the site's naive local time."""
        return site_time(utc, self.tz)

    def local_day(self, utc: dt.datetime) -> dt.date:
        return self.local(utc).date()

    def commands_queued(self) -> None:
        if self.notify is not None:
            try:
                self.notify()
            except Exception:  # waking the dispatcher early is a courtesy; its own timer still runs
                pass

    def is_prepaid_profile(self, profile: str) -> bool:
        if self.prepaid_profiles is None:
            from collectors.profiles import ProfileRegistry
            registry = ProfileRegistry()
            self.prepaid_profiles = frozenset(
                p for p in registry.names()
                if registry.get(p).mailbox is not None and "purchase_count" in registry.get(p).keys())
        return profile in self.prepaid_profiles
