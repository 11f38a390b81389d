"""A fake GSM modem on a real pseudo-terminal: answers AT commands (TS 27.005 PDU mode) as a modem does.

The backend opens `modem.device` (the pty's slave, /dev/pts/N) with pyserial like any serial port; a thread
on the master side reads its bytes and answers: echo until ATE0, OK / ERROR / +CME ERROR, the SIM's PIN state,
the "> " prompt after AT+CMGS=<n>, the PDU checked against <n> and decoded, +CMGS: <mr> and OK after `pace_s`
seconds (a real modem takes a few per second). Faults a test can ask for: +CMS ERROR <code> on the next send,
a number refused with a code, and a modem that stops answering (reads everything, says nothing).
`delivered` holds the messages as a phone would show them: concatenated parts joined by their reference.
"""
from __future__ import annotations

import os
import select
import threading
import time
import tty
from dataclasses import dataclass

from notify.pdu import DecodedSubmit, PduError, decode_submit


@dataclass(frozen=True)
class Delivered:
    number: str
    text: str
    parts: list[DecodedSubmit]


class FakeModem:
    def __init__(self, *, pin: str = "", pace_s: float = 0.0, pin_ready_after_s: float = 0.0) -> None:
        self.pin = pin
        self.pace_s = pace_s
        self.pin_ready_after_s = pin_ready_after_s
        self.sim_state = "SIM PIN" if pin else "READY"
        self.pin_tries = 3
        self.echo = True
        self.pdu_mode = False
        self.commands: list[str] = []          # every AT command line received, in order
        self.submitted: list[DecodedSubmit] = []
        self.delivered: list[Delivered] = []
        self.protocol_errors: list[str] = []   # what a real modem would also have refused
        self.answering = True
        self._fail_next: list[int] = []
        self._fail_after = 0
        self._refused: dict[str, int] = {}
        self._awaiting_pdu: int | None = None  # the <length> of AT+CMGS while the prompt is open
        self._pdu = b""
        self._line = b""
        self._pending_parts: dict[tuple[str, int, int], dict[int, DecodedSubmit]] = {}
        self._ready_at = 0.0
        self._mr = 0
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)                # bytes pass unchanged until pyserial sets the port up
        self.device = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._run, name="fake-modem", daemon=True)

    # -- the test's controls -------------------------------------------------------------------------------
    def start(self) -> "FakeModem":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "FakeModem":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next_send(self, cms_error: int = 500, times: int = 1, after: int = 0) -> None:
        """After `after` more parts go out, the next `times` are answered +CMS ERROR: <cms_error>."""
        self._fail_after = after
        self._fail_next += [cms_error] * times

    def refuse_number(self, number: str, cms_error: int = 1) -> None:
        """Every message to `number` (as on air, "+86...") is answered +CMS ERROR: <cms_error>."""
        self._refused[number] = cms_error

    def stop_answering(self) -> None:
        self.answering = False

    def resume_answering(self) -> None:
        """Answer again, as a modem does after a power cycle: echo on, text mode, SIM locked if it has a PIN."""
        self.echo, self.pdu_mode = True, False
        self._awaiting_pdu, self._pdu, self._line = None, b"", b""
        self.sim_state = "SIM PIN" if self.pin and self.pin_tries > 0 else self.sim_state
        self.answering = True

    def wait_delivered(self, count: int, timeout_s: float = 10.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.delivered) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.delivered)} of {count} messages delivered")
                self._changed.wait(left)
        return list(self.delivered)

    # -- the modem -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                time.sleep(0.01)               # no one holds the port open right now
                continue
            if self.answering:
                for byte in data:
                    self._take(bytes([byte]))

    def _say(self, text: str) -> None:
        if self.answering:
            os.write(self.master, text.encode("ascii"))

    def _take(self, byte: bytes) -> None:
        if self._awaiting_pdu is not None:
            if byte == b"\x1a":
                length, pdu = self._awaiting_pdu, self._pdu
                self._awaiting_pdu, self._pdu = None, b""
                self._submit(length, pdu.decode("ascii", "replace").strip())
            elif byte == b"\x1b":
                self._awaiting_pdu, self._pdu = None, b""
                self._say("\r\nOK\r\n")
            elif byte not in (b"\r", b"\n"):
                self._pdu += byte
            return
        if byte == b"\x1b":
            return                             # ESC outside the prompt: nothing to cancel
        if self.echo:
            self._say(byte.decode("latin-1"))
        if byte == b"\r":
            line, self._line = self._line.decode("ascii", "replace").strip(), b""
            if line:
                self._command(line)
        elif byte != b"\n":
            self._line += byte

    def _command(self, line: str) -> None:
        self.commands.append(line)
        upper = line.upper()
        if not upper.startswith("AT"):
            return self._say("\r\nERROR\r\n")
        if upper == "AT":
            return self._ok()
        if upper in ("ATE0", "ATE1"):
            self.echo = upper == "ATE1"
            return self._ok()
        if upper.startswith("AT+CMEE="):
            return self._ok()
        if upper == "AT+CPIN?":
            if self.sim_state == "READY" and time.monotonic() < self._ready_at:
                return self._say("\r\n+CME ERROR: 14\r\n")      # SIM busy while it reads its files
            return self._say(f"\r\n+CPIN: {self.sim_state}\r\n\r\nOK\r\n")
        if upper.startswith("AT+CPIN="):
            return self._enter_pin(line.split("=", 1)[1].strip().strip('"'))
        if upper.startswith("AT+CMGF="):
            self.pdu_mode = upper.endswith("=0")
            return self._ok()
        if upper.startswith("AT+CMGS="):
            if self.sim_state != "READY":
                return self._say("\r\n+CMS ERROR: 311\r\n")
            if not self.pdu_mode:
                self.protocol_errors.append("AT+CMGS in text mode")
                return self._say("\r\n+CMS ERROR: 302\r\n")
            try:
                length = int(upper.split("=", 1)[1])
            except ValueError:
                return self._say("\r\n+CMS ERROR: 304\r\n")
            self._awaiting_pdu = length
            return self._say("\r\n> ")
        return self._say("\r\nERROR\r\n")

    def _ok(self) -> None:
        self._say("\r\nOK\r\n")

    def _enter_pin(self, pin: str) -> None:
        if self.sim_state != "SIM PIN":
            return self._say("\r\n+CME ERROR: 3\r\n")
        if pin == self.pin:
            self.sim_state = "READY"
            self._ready_at = time.monotonic() + self.pin_ready_after_s
            return self._ok()
        self.pin_tries -= 1
        if self.pin_tries == 0:
            self.sim_state = "SIM PUK"
        return self._say("\r\n+CME ERROR: 16\r\n")

    def _submit(self, length: int, pdu_hex: str) -> None:
        try:
            part = decode_submit(pdu_hex)
        except PduError as exc:
            self.protocol_errors.append(str(exc))
            return self._say("\r\n+CMS ERROR: 304\r\n")
        if part.tpdu_length != length:
            self.protocol_errors.append(f"AT+CMGS={length} for a TPDU of {part.tpdu_length} octets")
            return self._say("\r\n+CMS ERROR: 304\r\n")
        if self.pace_s and self._stop.wait(self.pace_s):
            return
        if self._fail_next and self._fail_after > 0:
            self._fail_after -= 1
        elif self._fail_next:
            return self._say(f"\r\n+CMS ERROR: {self._fail_next.pop(0)}\r\n")
        if part.number in self._refused:
            return self._say(f"\r\n+CMS ERROR: {self._refused[part.number]}\r\n")
        self._mr = (self._mr + 1) % 256
        with self._changed:
            self.submitted.append(part)
            self._join(part)
            self._changed.notify_all()
        self._say(f"\r\n+CMGS: {self._mr}\r\n\r\nOK\r\n")

    def _join(self, part: DecodedSubmit) -> None:
        if part.concat is None:
            self.delivered.append(Delivered(part.number, part.text, [part]))
            return
        reference, total, number = part.concat
        pending = self._pending_parts.setdefault((part.number, reference, total), {})
        pending[number] = part
        if len(pending) == total:
            del self._pending_parts[(part.number, reference, total)]
            parts = [pending[i] for i in range(1, total + 1)]
            self.delivered.append(Delivered(part.number, "".join(p.text for p in parts), parts))
