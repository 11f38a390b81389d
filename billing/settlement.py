"""What happens when a remote command reaches its final state (called by the dispatcher in its transaction)."""
from __future__ import annotations

from billing.ledger import settle_command  # noqa: F401  (the registry by purpose replaces this: issue 9)
