"""The one error type of billing: a code, a message key in the locale catalogs, and its parameters."""
from __future__ import annotations


class BillingError(ValueError):
    """Something the operator or the API client can fix; nothing was written.

    `code` is stable (the API returns it); the text comes from the catalogs' `billing.error.<code>`
    in either language, formatted with `params`.
    """

    def __init__(self, code: str, **params):
        self.code = code
        self.params = params
        super().__init__(code)

    @property
    def key(self) -> str:
        return f"billing.error.{self.code}"

    def message(self, lang: str = "en") -> str:
        """The text in `lang` (core.text.error_text: the catalogs are the floor every layer may read)."""
        from core.text import error_text
        return error_text(self, lang)

    def __str__(self) -> str:
        try:
            return self.message("en")
        except Exception:  # a missing key must not hide the error itself
            return f"{self.code} {self.params}"
