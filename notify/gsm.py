"""The GSM-modem SMS backend: AT commands (3GPP TS 27.005, PDU mode) to a modem on a serial port, with pyserial.

On the first send (and after any failure that leaves the modem in doubt) it opens the port and sets the modem
up: AT, ATE0 (no echo), AT+CMEE=1 (numeric errors), AT+CPIN? (and AT+CPIN=<pin> when the SIM asks for its
PIN), AT+CMGF=0 (PDU mode). Each part of a message is then AT+CMGS=<TPDU length>, the "> " prompt, the PDU
and Ctrl-Z, answered by +CMGS: <message reference> and OK. One message at a time: a lock around send().

Failures raise notify.backends.SendFailed. Retryable: timeouts (the port is closed and reopened on the next
send), a plain ERROR, +CMS ERROR codes of the network or the modem that may pass (38 network out of order,
42 congestion, 331 no network service, 500 unknown ...). Not retryable: a number the network refuses
(1 unassigned, 21 rejected, 28 unidentified subscriber, 96 invalid mandatory information ...), a PDU the
modem cannot take (304), a SIM that wants its PUK or a PIN that is not configured, and a PIN the SIM
refused: that PIN is never tried again by this process, since three wrong tries lock the SIM.

A long message that fails after some of its parts went out is remembered (number, text): the next send of
the same message continues with the missing parts under the same concatenation reference, so the phone
still joins them and the recipient does not get the first parts twice.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import serial

from notify.backends import SendFailed, SendResult
from notify.pdu import PduError, encode_submit, normalize_number

CTRL_Z = b"\x1a"
ESC = b"\x1b"
FINAL_OK = "OK"

# 3GPP TS 27.005 3.2.5 (+CMS ERROR) with TS 24.011 E.2 / TS 23.040 9.2.3.22 causes: the ones that will not
# pass however often they are tried; everything else (network trouble, the modem busy, unknown) is retried.
CMS_NOT_RETRYABLE = {
    1: "unassigned (unallocated) number", 8: "operator determined barring", 10: "call barred",
    21: "short message transfer rejected", 28: "unidentified subscriber", 29: "facility rejected",
    30: "unknown subscriber", 50: "requested facility not subscribed", 69: "requested facility not implemented",
    95: "invalid short message", 96: "invalid mandatory information", 303: "operation not supported",
    304: "invalid PDU mode parameter", 316: "SIM PUK required",
}
CMS_NAMES = {
    27: "destination out of service", 38: "network out of order", 41: "temporary failure", 42: "congestion",
    47: "resources unavailable", 300: "ME failure", 301: "SMS service of ME reserved", 302: "operation not allowed",
    310: "SIM not inserted", 311: "SIM PIN required", 313: "SIM failure", 314: "SIM busy", 322: "memory full",
    330: "SMSC address unknown", 331: "no network service", 332: "network timeout", 500: "unknown error",
}
# +CME ERROR during set-up (TS 27.007 9.2.1)
CME_NAMES = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
             11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
             16: "incorrect password", 30: "no network service", 100: "unknown"}


class _NoAnswer(Exception):
    """The modem said nothing conclusive within the time allowed."""


@dataclass
class _PartlySent:
    reference: int
    sent: int                                  # parts already accepted
    references: list[str] = field(default_factory=list)


class GsmModemBackend:
    """SMS through a GSM modem; see the module docstring. Times are seconds."""
    name = "gsm-modem"

    def __init__(self, device: str, baud: int = 115200, pin: str = "", *, answer_timeout_s: float = 5.0,
                 send_timeout_s: float = 60.0, pin_ready_timeout_s: float = 15.0) -> None:
        self.device = device
        self.baud = baud
        self.pin = pin
        self.answer_timeout_s = answer_timeout_s     # an AT command's final result, the "> " prompt
        self.send_timeout_s = send_timeout_s         # +CMGS after Ctrl-Z: the network's answer takes seconds
        self.pin_ready_timeout_s = pin_ready_timeout_s
        self._lock = threading.Lock()
        self._port: serial.Serial | None = None
        self._buffer = b""
        self._refused_pin: str | None = None
        self._next_reference = 0
        self._partly_sent: dict[tuple[str, str], _PartlySent] = {}

    @classmethod
    def from_config(cls, sms) -> "GsmModemBackend":
        return cls(sms.device, sms.baud, sms.pin)

    # -- the interface -------------------------------------------------------------------------------------
    def send(self, number: str, text: str) -> SendResult:
        try:
            on_air = normalize_number(number)
        except PduError as exc:
            raise SendFailed(str(exc), retryable=False) from None
        if not isinstance(text, str):
            raise SendFailed(f"the text is {type(text).__name__}, not text", retryable=False)
        with self._lock:
            key = (on_air, text)
            progress = self._partly_sent.pop(key, None)
            if progress is None:
                progress = _PartlySent(reference=self._take_reference(), sent=0)
            try:
                pdus = encode_submit(on_air, text, reference=progress.reference)
            except PduError as exc:
                raise SendFailed(str(exc), retryable=False) from None
            try:
                self._ready()
                for pdu in pdus[progress.sent:]:
                    progress.references.append(self._submit(pdu.hex, pdu.tpdu_length))
                    progress.sent += 1
            except SendFailed as exc:
                if 0 < progress.sent < len(pdus) and exc.retryable:
                    self._remember(key, progress)
                if len(pdus) > 1:
                    exc.reason = f"part {progress.sent + 1} of {len(pdus)}: {exc.reason}"
                    exc.args = (exc.reason,)
                raise
            return SendResult(reference=",".join(progress.references), parts=len(pdus))

    def close(self) -> None:
        with self._lock:
            self._close_port()

    # -- the modem -----------------------------------------------------------------------------------------
    def _ready(self) -> None:
        """An open port and a modem set up for PDU mode; opened and set up again after any doubt."""
        if self._port is not None:
            return
        try:
            self._port = serial.Serial(self.device, self.baud, timeout=0.05, write_timeout=self.answer_timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None
            raise SendFailed(f"cannot open {self.device}: {exc}", retryable=True) from None
        self._buffer = b""
        try:
            self._port.reset_input_buffer()
            self._wake()
            self._command("ATE0")
            self._command("AT+CMEE=1")
            self._unlock_sim()
            self._command("AT+CMGF=0")
        except SendFailed:
            self._close_port()
            raise

    def _wake(self) -> None:
        """AT until OK: a modem just powered or left in the PDU prompt may swallow the first one."""
        self._write(ESC)                               # leave a half-entered PDU, if any
        for _ in range(2):
            try:
                self._command("AT", timeout_s=min(1.0, self.answer_timeout_s))
                return
            except SendFailed:
                continue
        self._command("AT")

    def _unlock_sim(self) -> None:
        state = self._sim_state()
        if state == "READY":
            return
        if state == "SIM PIN":
            if not self.pin:
                raise SendFailed("the SIM asks for its PIN and sms.pin is empty", retryable=False)
            if self.pin == self._refused_pin:
                raise SendFailed("the SIM refused the configured PIN before; not trying it again "
                                 "(three wrong tries lock the SIM)", retryable=False)
            try:
                self._command(f"AT+CPIN={self.pin}")
            except SendFailed as exc:
                if "incorrect password" in exc.reason or "+CME ERROR: 16" in exc.reason:
                    self._refused_pin = self.pin
                    raise SendFailed("the SIM refused the configured PIN (sms.pin)", retryable=False) from None
                raise
            deadline = time.monotonic() + self.pin_ready_timeout_s
            while self._sim_state_or_busy() != "READY":   # the SIM reads its files for a moment after the PIN
                if time.monotonic() > deadline:
                    raise SendFailed("the SIM took its PIN but did not become ready", retryable=True)
                time.sleep(0.2)
            return
        if state in ("SIM PUK", "SIM PUK2"):
            raise SendFailed("the SIM is locked and asks for its PUK", retryable=False)
        raise SendFailed(f"the SIM is not ready ({state})", retryable=True)

    def _sim_state_or_busy(self) -> str:
        try:
            return self._sim_state()
        except SendFailed as exc:
            if not exc.retryable:
                raise
            return "busy"

    def _sim_state(self) -> str:
        lines = self._command("AT+CPIN?")
        for line in lines:
            if line.startswith("+CPIN:"):
                return line.split(":", 1)[1].strip()
        raise SendFailed("the modem did not say the SIM's state", retryable=True)

    def _submit(self, pdu_hex: str, tpdu_length: int) -> str:
        """One part: AT+CMGS=<length>, the prompt, the PDU and Ctrl-Z; the modem's message reference."""
        self._write(f"AT+CMGS={tpdu_length}\r".encode("ascii"))
        try:
            self._read_until_prompt(self.answer_timeout_s)
        except _NoAnswer:
            self._write(ESC)
            self._close_port()
            raise SendFailed(f"the modem gave no \"> \" prompt within {self.answer_timeout_s:g} s",
                             retryable=True) from None
        self._write(pdu_hex.encode("ascii") + CTRL_Z)
        try:
            lines = self._read_result(self.send_timeout_s)
        except _NoAnswer:
            self._close_port()
            raise SendFailed(f"the modem did not confirm the message within {self.send_timeout_s:g} s",
                             retryable=True) from None
        final = lines[-1]
        if final != FINAL_OK:
            raise self._failure(final)
        for line in lines:
            if line.startswith("+CMGS:"):
                return line.split(":", 1)[1].split(",")[0].strip()
        return ""

    def _failure(self, final: str) -> SendFailed:
        if final.startswith("+CMS ERROR:"):
            code_text = final.split(":", 1)[1].strip()
            code = int(code_text) if code_text.isdigit() else -1
            if code in CMS_NOT_RETRYABLE:
                return SendFailed(f"+CMS ERROR: {code} ({CMS_NOT_RETRYABLE[code]})", retryable=False)
            if code in (310, 311, 313):
                self._close_port()                     # the SIM went away or the modem restarted: set up again
            name = CMS_NAMES.get(code, "")
            return SendFailed(f"+CMS ERROR: {code_text}" + (f" ({name})" if name else ""), retryable=True)
        return SendFailed(f"the modem answered {final}", retryable=True)

    def _command(self, command: str, timeout_s: float | None = None) -> list[str]:
        """Send one AT command; its answer lines, ending with OK. ERROR / +CME ERROR raise SendFailed."""
        self._write(command.encode("ascii") + b"\r")
        try:
            lines = self._read_result(self.answer_timeout_s if timeout_s is None else timeout_s)
        except _NoAnswer:
            raise SendFailed(f"the modem did not answer {command.split('=')[0]} within "
                             f"{self.answer_timeout_s if timeout_s is None else timeout_s:g} s",
                             retryable=True) from None
        final = lines[-1]
        if final == FINAL_OK:
            return lines
        if final.startswith("+CME ERROR:"):
            code_text = final.split(":", 1)[1].strip()
            name = CME_NAMES.get(int(code_text), "") if code_text.isdigit() else ""
            raise SendFailed(f"{command.split('=')[0]}: +CME ERROR: {code_text}" + (f" ({name})" if name else ""),
                             retryable=code_text not in ("12", "16"))
        raise SendFailed(f"{command.split('=')[0]}: the modem answered {final}", retryable=True)

    # -- bytes on the line ---------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._port is None:
            raise SendFailed(f"{self.device} is closed", retryable=True)
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            self._close_port()
            raise SendFailed(f"cannot write to {self.device}: {exc}", retryable=True) from None

    def _fill(self, deadline: float) -> bool:
        """Read what has arrived into the buffer; False once the deadline has passed."""
        if time.monotonic() > deadline:
            return False
        try:
            chunk = self._port.read(max(1, self._port.in_waiting))
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            self._close_port()
            raise SendFailed(f"cannot read from {self.device}: {exc}", retryable=True) from None
        self._buffer += chunk
        return True

    def _read_result(self, timeout_s: float) -> list[str]:
        """Lines up to and including a final result code (OK, ERROR, +CME ERROR, +CMS ERROR)."""
        deadline = time.monotonic() + timeout_s
        lines: list[str] = []
        while True:
            while b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.strip().decode("ascii", "replace")
                if not line:
                    continue
                lines.append(line)
                if line in ("OK", "ERROR") or line.startswith(("+CME ERROR:", "+CMS ERROR:")):
                    return lines
            if not self._fill(deadline):
                raise _NoAnswer

    def _read_until_prompt(self, timeout_s: float) -> None:
        """Wait for the "> " that asks for the PDU; a result code instead of it is the modem's refusal."""
        deadline = time.monotonic() + timeout_s
        while True:
            prompt = self._buffer.find(b">")
            newline = self._buffer.find(b"\n")
            if newline >= 0 and (prompt < 0 or newline < prompt):
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.strip().decode("ascii", "replace")
                if line in ("OK", "ERROR") or line.startswith(("+CME ERROR:", "+CMS ERROR:")):
                    raise self._failure(line)
                continue
            if prompt >= 0:
                self._buffer = self._buffer[prompt + 1:].lstrip(b" ")
                return
            if not self._fill(deadline):
                raise _NoAnswer

    def _close_port(self) -> None:
        port, self._port = self._port, None
        self._buffer = b""
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _take_reference(self) -> int:
        self._next_reference = (self._next_reference + 1) % 256
        return self._next_reference

    def _remember(self, key: tuple[str, str], progress: _PartlySent) -> None:
        if len(self._partly_sent) >= 64:              # the oldest half-sent message is given up
            self._partly_sent.pop(next(iter(self._partly_sent)))
        self._partly_sent[key] = progress
