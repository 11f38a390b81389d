"""Communication state of a meter from its poll outcomes: online, or lost after N misses.

A pure function so the scheduler, the tests and a replay of history agree:

- a good poll: online, miss_count 0, last_seen = now, lost_since None, lost_reason None;
- a miss (timeout, bad reply, exception reply): miss_count + 1; lost once miss_count reaches
  ``lost_after`` (lost_since = the poll that crossed the line);
- gateway unreachable: lost at once (lost_reason "gateway"), however many misses before;
- a lost meter stays lost, with its first lost_since, until one good poll.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

OK = "ok"
GATEWAY_UNREACHABLE = "gateway_unreachable"


def next_comm_state(prev: dict[str, Any] | None, outcome: Any, now: datetime,
                    lost_after: int = 3) -> dict[str, Any]:
    """Next state after one poll; ``outcome`` is an Outcome or its status string."""
    if lost_after < 1:
        raise ValueError("lost_after must be at least 1")
    status = outcome if isinstance(outcome, str) else outcome.status
    prev = prev or {}
    if status == OK:
        return {"comm_state": "online", "miss_count": 0, "last_seen": now,
                "lost_since": None, "lost_reason": None}
    misses = int(prev.get("miss_count") or 0) + 1
    was_lost = prev.get("comm_state") == "lost"
    if status == GATEWAY_UNREACHABLE:
        lost, reason = True, "gateway"
    elif misses >= lost_after or was_lost:
        # a meter whose gateway answers again but which itself stays silent is lost on its own
        lost, reason = True, "meter"
    else:
        lost, reason = False, None
    return {
        "comm_state": "lost" if lost else "online",
        "miss_count": misses,
        "last_seen": prev.get("last_seen"),
        "lost_since": (prev.get("lost_since") or now) if lost and was_lost else (now if lost else None),
        "lost_reason": reason,
    }
