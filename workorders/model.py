"""What a work order is: its types, priorities, states, the actions that move it and who may take each."""
from __future__ import annotations

from dataclasses import dataclass

from core import permissions as P

# Types seeded on every site (work_order_type rows; a site may add its own). (key, English, Chinese, photo to complete)
SEEDED_TYPES: tuple[tuple[str, str, str, bool], ...] = (
    ("repair", "Repair", "抢修", True),
    ("new_connection", "New connection", "业扩安装", True),
    ("meter_install", "Meter installation", "装表", True),
    ("meter_removal", "Meter removal", "拆表", True),
    ("acceptance", "Completion acceptance and energising", "竣工验收送电", True),
    ("fee_collection", "Fee collection", "电费催收", False),
    ("safety_inspection", "Safety inspection", "安全检查", True),
    ("contract_inspection", "Contract compliance inspection", "履约违约检查", True),
    ("temporary", "Temporary order", "临时工单", False),
)
TYPE_KEYS = tuple(t[0] for t in SEEDED_TYPES)   # the intake API's types
PRIORITIES = ("urgent", "high", "normal", "low")
DEFAULT_PRIORITY = "normal"
SOURCES = ("manual", "counter", "phone", "api", "alarm", "followup")

STATES = ("created", "dispatched", "accepted", "on_site", "on_hold", "completed", "rejected", "approved",
          "archived", "cancelled")
# Open: the work is not finished. Its cause key stays taken (no second order for the cause) and its clock runs
# (except on hold). Completed orders wait for review: still open for the cause, the clock stopped.
OPEN_STATES = ("created", "dispatched", "accepted", "on_site", "on_hold", "completed", "rejected")
CLOCK_STATES = ("created", "dispatched", "accepted", "on_site", "rejected")   # due soon / overdue apply
CLOSED_STATES = ("approved", "archived", "cancelled")
ITEM_KINDS = ("step", "hazard", "tool", "material", "service")
STEP_KINDS = ("step", "hazard")
MATERIAL_KINDS = ("tool", "material", "service")
DISTRICT_KINDS = ("building", "area")
FEE_METHODS = ("cash", "card", "transfer")

# Cause keys of automatic orders: one open order per cause (work_order_cause's primary key).
ARREARS_CAUSE = "arrears:meter:{meter_id}"
LOST_CONTACT_CAUSE = "lost_contact:meter:{meter_id}"
COMMAND_FAILED_CAUSE = "relay_failed:meter:{meter_id}"


@dataclass(frozen=True)
class Action:
    """One move of the lifecycle. `to` is the state it reaches (None: the state the hold was taken from).
    `office` is the permission that lets an office operator take it (None: no office operator may); `worker`
    whether the order's assigned worker (holding workorder.execute) may take it on their own order."""
    name: str
    to: str | None
    office: str | None
    worker: bool
    reason_required: bool = False


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("create", "created", P.WORKORDER_DISPATCH, False),
    Action("dispatch", "dispatched", P.WORKORDER_DISPATCH, False),          # also a new worker for a dispatched one
    Action("decline", "created", None, True, reason_required=True),          # back to the office, unassigned
    Action("accept", "accepted", None, True),
    Action("arrive", "on_site", None, True),
    Action("complete", "completed", None, True),
    Action("approve", "approved", P.WORKORDER_REVIEW, False),
    Action("reject", "rejected", P.WORKORDER_REVIEW, False, reason_required=True),
    Action("rework", "on_site", None, True),                                # a rejected order taken up again
    Action("archive", "archived", P.WORKORDER_REVIEW, False),
    Action("hold", "on_hold", P.WORKORDER_DISPATCH, True, reason_required=True),
    Action("release", None, P.WORKORDER_DISPATCH, True),
    Action("cancel", "cancelled", P.WORKORDER_DISPATCH, False, reason_required=True),
)}


def may_take(action: Action, permissions, *, own: bool, system: bool = False) -> bool:
    """Whether an actor with `permissions` may take `action` on an order (own: the actor is its assigned worker).
    The system (automatic orders, deadlines) creates orders only."""
    if system:
        return action.name == "create"
    if action.office is not None and action.office in permissions:
        return True
    return action.worker and own and P.WORKORDER_EXECUTE in permissions
