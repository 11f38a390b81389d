"""The one error type of work orders: a code, a message key in the catalogs (workorder.error.<code>), parameters."""
from __future__ import annotations


class WorkOrderError(ValueError):
    """Something the operator, the worker or the API client can fix; nothing was written. `code` is stable (the
    intake API returns it); the text is the catalogs' workorder.error.<code> in either language."""

    def __init__(self, code: str, **params):
        self.code = code
        self.params = params
        super().__init__(code)

    @property
    def key(self) -> str:
        return f"workorder.error.{self.code}"

    def message(self, lang: str = "en") -> str:
        from core.text import error_text
        return error_text(self, lang)

    def __str__(self) -> str:
        try:
            return self.message("en")
        except Exception:  # a missing key must not hide the error itself
            return f"{self.code} {self.params}"
