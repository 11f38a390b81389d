"""Notifications: the SMS outbox, the rules that fill it and the backends that deliver it (log, http, gsm-modem)."""
