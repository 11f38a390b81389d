"""Prepaid billing: accounts, tariffs, ledger, selling."""
