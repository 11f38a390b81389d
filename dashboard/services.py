"""What pages reach on the server: the running process's services and the signed-in operator's name."""
from __future__ import annotations

from flask import current_app


def runtime():
    """The serving process (core.runtime.Runtime) the app was created for."""
    return current_app.config["WATTLINE_SERVICES"]


def billing():
    """The billing context (billing.context.BillingContext) of the serving process."""
    return runtime().billing


def operator_name() -> str:
    """The signed-in operator's username, as the ledger and the operation log record it."""
    from dashboard.auth import signed_in
    op = signed_in()
    return op.username if op is not None else "-"
