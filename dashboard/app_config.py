"""Names of what the web app keeps in its Flask configuration, shared by dashboard.app and dashboard.auth."""
from __future__ import annotations

SHELL_HOOKS = "WATTLINE_SHELL_HOOKS"  # {"current_user_name", "allowed", "csrf_token"}: what the navbar shows
