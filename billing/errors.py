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
        # The catalogs are the application's one set of texts (dashboard/locales); i18n.t is a
        # plain TOML lookup with no UI import, so the domain layer can use it for its messages.
        from dashboard.i18n import permission_label, t
        params = {k: _text(v) for k, v in self.params.items()}
        if "permission" in params:  # a refusal names the permission as the operator reads it, and its code
            params.setdefault("permission_label", permission_label(params["permission"], lang))
        return t(self.key, lang, **params)

    def __str__(self) -> str:
        try:
            return self.message("en")
        except Exception:  # a missing key must not hide the error itself
            return f"{self.code} {self.params}"


def _text(value) -> str:
    return str(value)
