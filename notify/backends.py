"""SMS backends: the interface every delivery path implements, the log and http backends, and the factory.

The interface (the GSM-modem backend in notify/gsm.py implements it too):

    class Backend(Protocol):
        name: str                                     # "log", "http", "gsm-modem": stored with every message
        def send(self, number: str, text: str) -> SendResult: ...
        def close(self) -> None: ...                  # release the port / connection; send() may reopen

`send` delivers ONE message (the whole text; a backend that splits it into concatenated parts does so
itself and reports the parts) and returns only once the far side accepted it. It raises `SendFailed` when it
did not: `retryable=True` for what may pass later (a timeout, an HTTP 5xx, +CMS ERROR 38 network out of
order, a modem that stopped answering), `retryable=False` for what never will (a refused number, an HTTP
4xx, a SIM asking for a PUK). The outbox (notify/outbox.py) calls send() from one thread, one message at a
time, retries retryable failures with backoff and moves a message to the dead letters after the last attempt
or at once on a non-retryable failure. `number` is the phone as stored (digits, perhaps a leading "+");
`text` is the rendered message in the recipient's language (may hold Chinese).

`build_backend(sms, data_dir)` makes the configured backend from core.config.SmsConfig; for "gsm-modem" it
imports notify.gsm and calls `GsmModemBackend.from_config(sms)`.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

BACKENDS = ("log", "gsm-modem", "http")


@dataclass(frozen=True)
class SendResult:
    """What the far side said when it took the message."""
    reference: str = ""     # its id for the message: the modem's message reference(s), the gateway's id
    parts: int = 1          # how many SMS the text went out as


class SendFailed(Exception):
    """The message did not go; `retryable` says whether trying again later may succeed."""

    def __init__(self, reason: str, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Backend(Protocol):
    name: str

    def send(self, number: str, text: str) -> SendResult: ...

    def close(self) -> None: ...


class LogBackend:
    """The default: every message appended as one JSON line to a file (the database row is the outbox's)."""
    name = "log"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._count = 0

    def send(self, number: str, text: str) -> SendResult:
        line = json.dumps({"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "number": number, "text": text}, ensure_ascii=False)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
                self._count += 1
                return SendResult(reference=f"log-{self._count}")
        except OSError as exc:
            raise SendFailed(f"cannot write {self.path}: {exc.strerror or exc}", retryable=True) from None

    def close(self) -> None:
        pass


class HttpBackend:
    """POST {"to", "text"} as JSON with a bearer token; 2xx is sent, 5xx / timeouts / refused are retried,
    other 4xx are not (the gateway refused the message itself)."""
    name = "http"

    def __init__(self, url: str, token: str = "", timeout_s: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout_s = timeout_s

    def send(self, number: str, text: str) -> SendResult:
        body = json.dumps({"to": number, "text": text}, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - configured URL
                answer = response.read(4096)
        except urllib.error.HTTPError as exc:
            retryable = exc.code >= 500 or exc.code in (408, 429)
            raise SendFailed(f"HTTP {exc.code} {exc.reason}", retryable=retryable) from None
        except TimeoutError:
            raise SendFailed(f"no answer within {self.timeout_s:g} s", retryable=True) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise SendFailed(f"no answer within {self.timeout_s:g} s", retryable=True) from None
            raise SendFailed(f"cannot reach {self.url}: {reason}", retryable=True) from None
        return SendResult(reference=_reference(answer))

    def close(self) -> None:
        pass


def _reference(answer: bytes) -> str:
    try:
        data = json.loads(answer.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ""
    if isinstance(data, dict):
        for key in ("id", "message_id", "reference"):
            if key in data:
                return str(data[key])[:60]
    return ""


def build_backend(sms, data_dir: str | Path = "data") -> Backend:
    """The backend `sms` (core.config.SmsConfig) names; the log backend writes data_dir/sms.log."""
    if sms.backend == "http":
        return HttpBackend(sms.url, sms.token)
    if sms.backend == "gsm-modem":
        gsm = importlib.import_module("notify.gsm")   # written beside this module; pyserial is its own
        return gsm.GsmModemBackend.from_config(sms)
    return LogBackend(Path(data_dir) / "sms.log")
