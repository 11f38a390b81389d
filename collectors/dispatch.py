"""Command dispatch: queued outbox commands to the meters as secure frames, and the meters' answers back.

Per meter, commands go strictly in the order they were queued; buses are served concurrently
(one thread per bus endpoint, one meter after another on it). For each command:

1. it is marked sent (attempts + 1) and committed *before* the frame goes out;
2. the frame is built with the site master key and issued_at = now, and written to the mailbox;
3. the answer is recorded in one transaction with whatever it settles (the on_settled hook:
   billing confirms or fails the ledger entry there).

A crash between 1 and 3 leaves the command "sent"; the next run sends it again with the same
counter and amount, and the meter answers ALREADY_APPLIED if the first frame got through, so
nothing is credited twice and nothing is lost. A sent money command is therefore never expired:
it is resent until the meter gives a definite answer. A connect failure (the frame never left)
puts the command back to queued. Every move of a command's state goes through its machine
(storage.transitions.COMMAND, read in the moving transaction); a refused move means another
process moved the command first, and this one leaves it alone.

Whose answer: the mailbox read-back names the frame its result answers (collectors.commands.judge_answer).
A result that names this frame decides: APPLIED / ALREADY_APPLIED -> acked; BAD_FRAME, INSUFFICIENT,
INVALID_PAYLOAD, EXPIRED -> failed; COUNT_MISMATCH -> failed and a "count_mismatch" alarm for
reconciliation; REPLAYED (not money) -> acked when the meter's sequence equals ours (our earlier send
got through), else the command takes the sequence after the meter's and is retried.
A result that names another frame (a second master wrote the mailbox), or none (a mailbox version 1
meter, junk), does not decide: the counts read with it do. Money: purchase_count equal to the
counter -> acked (result APPLIED_BY_COUNT unless the meter said APPLIED); one less -> not applied, the
frame is sent again at once (up to MAX_BLIND_SENDS sends, then on the next runs; after that many
identical refusals naming no frame, the refusal is taken as this frame's: a version 1 meter);
more than one less -> failed as COUNT_MISMATCH; past it -> undecided, kept sent. Other commands:
command_seq equal -> applied, and a relay command's state bits are read to confirm it; below ->
sent again; past it -> renumbered as for REPLAYED. A money command is never failed while the
meter's purchase_count says it was applied. Every disagreement (another frame named, a result the
counts contradict, relay bits that do not match) is logged and opens a "mailbox_conflict" alarm.

When a money command fails or expires, the queued money commands after it move down one count, so
the meter still sees consecutive counts.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa

from collectors import secureframe as sf
from collectors.commands import (
    APPLIED, NOT_APPLIED, PENDING, REFUSED, SAYS_NOT_APPLIED, SUPERSEDED, MailboxResult, Verdict, judge_answer,
)
from collectors.modbus import FieldError, GatewayUnreachable
from collectors.poller import FieldIO, PollTarget
from core.events import COMMAND_SETTLED, EventBus
from storage.outbox import (
    MONEY_KINDS, count_attempt, dispatch_targets, expire_stale, head_command, is_conflict,
    meter_transaction, meters_with_work, move_command, shift_money_counters,
)
from storage import alarms

log = logging.getLogger(__name__)

RELAY_KINDS = {"trip": sf.RelayAction.TRIP, "close": sf.RelayAction.CLOSE,
               "keep_power": sf.RelayAction.KEEP_POWER_ON, "restore_prepaid": sf.RelayAction.KEEP_POWER_OFF}
COMMAND_CODES = {"recharge": sf.Command.RECHARGE, "refund": sf.Command.REFUND, "tariff": sf.Command.SET_TARIFF,
                 "limits": sf.Command.SET_LIMITS, "time_sync": sf.Command.TIME_SYNC,
                 **{kind: sf.Command.RELAY for kind in RELAY_KINDS}}
# The state bits a relay command sets: read to confirm it when only the command sequence says it was applied.
RELAY_STATE = {"trip": {"forced_trip": True}, "close": {"forced_trip": False}, "keep_power": {"keep_power": True},
               "restore_prepaid": {"keep_power": False, "prepaid_enabled": True}}
MAX_REPLAY_RENUMBER = 3
# A command that is not money gives up after this many sends that never reached the meter (connection refused) or
# never got an answer: failed with UNREACHABLE / NO_ANSWER, so a batch never shows a meter "sent" forever. A money
# command is never given up this way (it is resent until the meter answers, or expires while still queued).
MAX_ATTEMPTS = 5
MAX_BLIND_SENDS = 4   # sends of one command in a row while the read-back is not its own and the count says not applied
CONFLICT_ALARM = "mailbox_conflict"

# (conn, command row, final state, result name, mailbox answer or None, now), inside the settling transaction
SettleHook = Callable[[sa.Connection, dict, str, "str | None", "MailboxResult | None", dt.datetime], None]


def command_frame(master_key: bytes, address: str, cmd: dict, issued_at: int) -> bytes:
    """The secure frame of one outbox command (payload JSON in wire units)."""
    kind, payload = cmd["kind"], json.loads(cmd["payload"] or "{}")
    if kind == "recharge":
        code, body = sf.Command.RECHARGE, sf.recharge_payload(int(payload["amount_fen"]))
    elif kind == "refund":
        code, body = sf.Command.REFUND, sf.refund_payload(int(payload["amount_fen"]))
    elif kind == "tariff":
        mode = int(payload["mode"])
        if mode == sf.TariffMode.FLAT:
            body = sf.tariff_flat_payload(int(payload["prices"][2]))
        elif mode == sf.TariffMode.TIME_OF_USE:
            body = sf.tariff_tou_payload([int(p) for p in payload["prices"]],
                                         [(int(a), int(b)) for a, b in payload["segments"]])
        else:
            body = sf.tariff_tiered_payload([int(p) for p in payload["prices"]],
                                            [(int(a), int(b)) for a, b in payload["tiers"]])
        code = sf.Command.SET_TARIFF
    elif kind == "limits":
        code, body = sf.Command.SET_LIMITS, sf.limits_payload(
            int(payload["alarm1_fen"]), int(payload["alarm2_fen"]), int(payload["overload_w"]),
            int(payload["overdraft_fen"]))
    elif kind in RELAY_KINDS:
        code, body = sf.Command.RELAY, sf.relay_payload(int(RELAY_KINDS[kind]))
    elif kind == "time_sync":
        code, body = sf.Command.TIME_SYNC, sf.time_sync_payload(int(payload.get("unix", issued_at)))
    else:
        raise ValueError(f"unknown command kind {kind!r}")
    return sf.encrypt_frame(master_key, address, code, int(cmd["counter"]), issued_at, body)


@dataclass(frozen=True)
class SettledCommand:
    """Published on core.events.COMMAND_SETTLED after the transaction that settled the command commits."""
    id: int
    meter_id: int
    kind: str
    purpose: str | None     # what the command is for (sale, refund, tariff push ...), when the command carries one
    state: str              # acked | failed | expired
    result: str | None      # the meter's answer (APPLIED, COUNT_MISMATCH ...) or LOCAL_ERROR; None when expired
    error: str | None
    at: dt.datetime         # naive UTC


@dataclass
class DispatchSummary:
    meters: int = 0
    sent: int = 0
    acked: int = 0
    failed: int = 0
    expired: int = 0
    undelivered: int = 0   # connection refused: back to queued
    unanswered: int = 0    # no answer after the write: stays sent, resent next time
    results: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Sends the outbox. run_once() is safe to call from any thread; one run at a time per process."""

    def __init__(self, engine: sa.Engine, field_io: FieldIO, master_key: bytes,
                 clock: Callable[[], dt.datetime], *, on_settled: SettleHook | None = None,
                 expire_after: dt.timedelta = dt.timedelta(hours=24), send_timeout_s: float = 3.0,
                 max_per_meter: int = 50, workers: int = 16, retry_interval_s: float = 30.0,
                 events: EventBus | None = None, max_attempts: int = MAX_ATTEMPTS, backoff_s: float = 0.0):
        if len(master_key) != 24:
            raise ValueError("the site master key must be 24 bytes")
        self.engine = engine
        self.field_io = field_io
        self._key = bytes(master_key)
        self.clock = clock
        self.on_settled = on_settled
        self.expire_after = expire_after
        self.send_timeout_s = send_timeout_s
        self.max_per_meter = max_per_meter
        self.workers = workers
        self.retry_interval_s = retry_interval_s
        self.events = events   # each settled command goes to COMMAND_SETTLED
        self.max_attempts = max_attempts   # sends of a command that is not money before it is failed (unreachable)
        self.backoff_s = backoff_s         # a resend waits backoff_s * 2**(attempts - 1), at most 5 minutes (0: none)
        self._run_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return "Dispatcher(key=***)"

    # -- background worker: wakes on kick() (after a sale) and every retry_interval_s
    def start(self) -> "Dispatcher":
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="wattline-dispatch", daemon=True)
            self._thread.start()
        return self

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.run_once()
            except Exception:  # the worker must outlive one bad run
                log.exception("command dispatch failed")

    # -- one run
    def run_once(self, meter_ids: list[int] | None = None) -> DispatchSummary:
        with self._run_lock:
            summary = DispatchSummary()
            self._expire(summary)
            with self.engine.connect() as conn:
                ids = meters_with_work(conn, meter_ids)
                targets = dispatch_targets(conn, ids)
            summary.meters = len(ids)
            by_endpoint: dict[tuple, list[int]] = {}
            for mid in ids:
                t = targets.get(mid)
                if t is not None:
                    by_endpoint.setdefault((t["host"], t["port"]), []).append(mid)
            lock = threading.Lock()

            def bus(meters: list[int]) -> None:
                for i, mid in enumerate(meters):
                    try:
                        if not self._run_meter(targets[mid], summary, lock):
                            # endpoint refused: the rest of this bus waits for the next run, each of its
                            # commands counting this run as an attempt that could not reach the meter
                            for other in meters[i + 1:]:
                                self._unreachable_attempt(other, summary, lock)
                            return
                    except Exception:
                        log.exception("dispatch to meter %s failed", targets[mid]["meter_address"])

            if len(by_endpoint) <= 1:
                for meters in by_endpoint.values():
                    bus(meters)
            else:
                with ThreadPoolExecutor(max_workers=min(self.workers, len(by_endpoint)),
                                        thread_name_prefix="wattline-dispatch-bus") as pool:
                    list(pool.map(bus, by_endpoint.values()))
            if summary.sent:
                log.info("dispatch: %d meters, %d sent, %d acked, %d failed, %d expired, %d undelivered",
                         summary.meters, summary.sent, summary.acked, summary.failed, summary.expired,
                         summary.undelivered)
            return summary

    def _run_meter(self, t: dict, summary: DispatchSummary, lock: threading.Lock) -> bool:
        target = PollTarget(meter_id=t["meter_id"], meter_address=t["meter_address"], gateway=t["gateway"],
                            host=t["host"], port=t["port"], framing=t["framing"], bus_no=t["bus_no"], unit=t["unit"],
                            profile=t["profile"], timeout_s=t["timeout_s"], retries=t["retries"])
        for _ in range(self.max_per_meter):
            with self.engine.connect() as conn:
                cmd = head_command(conn, t["meter_id"])
            if cmd is None:
                return True
            if not self._due(cmd):
                return True   # backing off after a send that got nowhere
            outcome = self._send(cmd, target)
            with lock:
                summary.results[outcome] = summary.results.get(outcome, 0) + 1
                if outcome != "moved":
                    summary.sent += outcome != "undelivered"
                if outcome in ("acked", "failed", "undelivered", "unanswered"):
                    setattr(summary, outcome, getattr(summary, outcome) + 1)
            if outcome == "undelivered":
                return False
            if outcome in ("unanswered", "retry_later"):
                return True   # "resend" and "renumbered" go round again at once
        return True

    def _gives_up(self, cmd: dict) -> bool:
        """A command that is not money, sent (this time included) max_attempts times without reaching the meter."""
        return cmd["kind"] not in MONEY_KINDS and cmd["attempts"] + 1 >= self.max_attempts

    def _due(self, cmd: dict) -> bool:
        """Resends of a command that is not money back off: backoff_s, then twice that ... (at most 5 minutes)."""
        if cmd["kind"] in MONEY_KINDS or not cmd["attempts"] or cmd.get("sent_at") is None or self.backoff_s <= 0:
            return True
        wait = min(self.backoff_s * 2 ** (cmd["attempts"] - 1), 300.0)
        return self.clock() >= cmd["sent_at"] + dt.timedelta(seconds=wait)

    def _unreachable_attempt(self, meter_id: int, summary: DispatchSummary, lock: threading.Lock) -> None:
        """The meter's gateway refused this run: its head command (not money) counts an attempt, and is failed
        as UNREACHABLE at max_attempts, as if it had been sent and refused on connect."""
        with self.engine.connect() as conn:
            cmd = head_command(conn, meter_id)
        if cmd is None or cmd["kind"] in MONEY_KINDS or not self._due(cmd):
            return
        now = self.clock()
        if not self._tx(meter_id, lambda conn: count_attempt(conn, cmd["id"], now)):
            return
        error = "the gateway refused the connection"
        if self._gives_up(cmd):
            outcome = self._finish(cmd, "failed", "UNREACHABLE", None, error)
        else:
            self._tx(meter_id, lambda conn: move_command(conn, cmd["id"], "queued", error=error))
            outcome = "undelivered"
        with lock:
            summary.results[outcome] = summary.results.get(outcome, 0) + 1
            if outcome in ("failed", "undelivered"):
                setattr(summary, outcome, getattr(summary, outcome) + 1)

    def _tx(self, meter_id: int, work: Callable[[sa.Connection], object]):
        for attempt in range(8):
            try:
                with meter_transaction(self.engine, meter_id) as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if not is_conflict(exc) or attempt == 7:
                    raise

    def _send(self, cmd: dict, target: PollTarget) -> str:
        now = self.clock()
        if not self._tx(cmd["meter_id"], lambda conn: count_attempt(conn, cmd["id"], now)):
            return "moved"
        try:
            issued_at = int(now.replace(tzinfo=dt.UTC).timestamp())
            frame = command_frame(self._key, target.meter_address, cmd, issued_at)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("command %s cannot be framed: %s", cmd["id"], exc)
            self._finish(cmd, "failed", "LOCAL_ERROR", None, str(exc))
            return "failed"
        try:
            answer = self.field_io.send_frame(target, frame, self.send_timeout_s)
        except GatewayUnreachable as exc:
            if type(exc) is GatewayUnreachable:  # refused on connect: the frame never left
                error = str(exc)[:300]
                if self._gives_up(cmd):
                    self._finish(cmd, "failed", "UNREACHABLE", None, error)
                    return "undelivered"
                self._tx(cmd["meter_id"], lambda conn: move_command(conn, cmd["id"], "queued", error=error))
                return "undelivered"
            return self._unanswered(cmd, exc)
        except (FieldError, TimeoutError, OSError) as exc:
            return self._unanswered(cmd, exc)
        return self._record(cmd, target, answer)

    def _note(self, cmd: dict, error: str) -> None:
        """Say on the command row why it is still unsettled (it stays sent and is sent again)."""
        from storage.schema import command
        self._tx(cmd["meter_id"], lambda conn: conn.execute(
            command.update().where(command.c.id == cmd["id"]).values(error=error[:300])))

    def _unanswered(self, cmd: dict, exc: BaseException) -> str:
        if self._gives_up(cmd):
            self._finish(cmd, "failed", "NO_ANSWER", None, f"{type(exc).__name__}: {exc}"[:300])
            return "unanswered"
        self._note(cmd, f"{type(exc).__name__}: {exc}")
        return "unanswered"

    def _record(self, cmd: dict, target: PollTarget, answer: MailboxResult) -> str:
        verdict = judge_answer(answer, COMMAND_CODES[cmd["kind"]], cmd["counter"])
        if verdict.outcome == APPLIED and cmd["kind"] in RELAY_STATE:
            verdict = self._confirm_relay_state(cmd, target, verdict)
        if verdict.conflict:
            self._report_conflict(cmd, target, answer, verdict)
        seen = (f"{answer.result.name} read back (purchase count {answer.purchase_count}, "
                f"command sequence {answer.command_seq})")
        if verdict.outcome == APPLIED:
            return self._finish(cmd, "acked", verdict.result, answer)
        if verdict.outcome == REFUSED:
            return self._finish(cmd, "failed", verdict.result, answer)
        if verdict.outcome == SUPERSEDED:
            if cmd["attempts"] < MAX_REPLAY_RENUMBER:
                self._tx(cmd["meter_id"], lambda conn: move_command(
                    conn, cmd["id"], "queued", counter=max(cmd["counter"], answer.command_seq) + 1,
                    error=f"{verdict.result}: meter sequence {answer.command_seq}"))
                return "renumbered"
            return self._finish(cmd, "failed", verdict.result, answer)
        if verdict.outcome == NOT_APPLIED:
            sends = cmd["attempts"] + 1
            if sends >= MAX_BLIND_SENDS and not answer.names_a_frame and answer.result in SAYS_NOT_APPLIED:
                # the same refusal after every send and no frame named: a version 1 meter refusing this one
                return self._finish(cmd, "failed", verdict.result, answer)
            self._note(cmd, f"not applied yet: {seen}; sent again")
            return "resend" if sends < MAX_BLIND_SENDS else "retry_later"
        # undecided (the counts cannot tell) or pending (BUSY / IDLE after the wait): ask again next run
        self._note(cmd, f"undecided: {seen}")
        return "unanswered" if verdict.outcome == PENDING else "retry_later"

    def _confirm_relay_state(self, cmd: dict, target: PollTarget, verdict: Verdict) -> Verdict:
        """A relay command is confirmed only when the meter's relay bits read back agree with it. The meter's own
        APPLIED with bits that do not agree: it took the frame but did not move its relay (NOT_EXECUTED, failed);
        only the sequence said applied: another frame took that sequence (superseded)."""
        expected = RELAY_STATE[cmd["kind"]]
        try:
            reading = self.field_io.read_meter(target, all_blocks=False)
        except (FieldError, TimeoutError, OSError) as exc:
            log.warning("meter %s: could not read the relay state to confirm command %s: %s",
                        target.meter_address, cmd["id"], exc)
            return Verdict(PENDING, verdict.result, verdict.own, True, verdict.conflict)
        seen = {key: reading.get(key) for key in expected}
        if any(value is None for value in seen.values()):
            return verdict   # the profile does not report these bits: the sequence decides alone
        if all(bool(seen[key]) == value for key, value in expected.items()):
            return verdict
        bits = ", ".join(f"{key}={int(bool(value))}" for key, value in seen.items())
        if not verdict.by_counts:
            log.warning("meter %s answered APPLIED to %s (command %s) but its relay bits read %s",
                        target.meter_address, cmd["kind"], cmd["id"], bits)
            return Verdict(REFUSED, "NOT_EXECUTED", verdict.own, False)
        return Verdict(SUPERSEDED, verdict.result, verdict.own, True,
                       f"command sequence {cmd['counter']} is the meter's, but its relay bits ({bits}) "
                       f"are not what {cmd['kind']} sets: another frame took that sequence")

    def _report_conflict(self, cmd: dict, target: PollTarget, answer: MailboxResult, verdict: Verdict) -> None:
        """Log the disagreement and open the meter's mailbox_conflict alarm (one open per meter)."""
        text = (f"command {cmd['id']} ({cmd['kind']}, counter {cmd['counter']}): {verdict.conflict}; "
                f"decided {verdict.outcome}")
        log.warning("meter %s mailbox conflict: %s", target.meter_address, text)
        now = self.clock()
        params = {"command": cmd["id"], "command_kind": cmd["kind"], "counter": cmd["counter"],
                  "conflict": verdict.conflict, "outcome": verdict.outcome}
        self._tx(cmd["meter_id"], lambda conn: alarms.open_alarm(
            conn, CONFLICT_ALARM, alarms.meter(cmd["meter_id"]), alarms.AlarmLevel.CRITICAL, "mailbox_conflict",
            params, now))

    def _finish(self, cmd: dict, state: str, result: str | None, answer: MailboxResult | None,
                error: str | None = None) -> str:
        now = self.clock()

        def work(conn: sa.Connection) -> str:
            # storage.transitions.COMMAND: acked and failed only from sent; anything else was moved meanwhile
            if not move_command(conn, cmd["id"], state, result=result, finished_at=now, error=error):
                return "moved"
            if state in ("failed", "expired") and cmd["kind"] in MONEY_KINDS:
                shift_money_counters(conn, cmd["meter_id"], cmd["counter"])
            _command_alarms(conn, cmd, state, result, answer, error, now)
            if self.on_settled is not None:
                self.on_settled(conn, cmd, state, result, answer, now)
            return state
        outcome = self._tx(cmd["meter_id"], work)
        if outcome == state:
            self._publish(cmd, state, result, error, now)
        return outcome

    def _expire(self, summary: DispatchSummary) -> None:
        now = self.clock()
        with self.engine.connect() as conn:
            stale = expire_stale(conn, now - self.expire_after)
        for cmd in stale:
            def work(conn: sa.Connection, cmd=cmd) -> bool:
                # the machine's guard keeps a sent money command: it is resent until the meter answers
                if not move_command(conn, cmd["id"], "expired", finished_at=now,
                                    error="expired before the meter answered"):
                    return False
                if cmd["kind"] in MONEY_KINDS:
                    shift_money_counters(conn, cmd["meter_id"], cmd["counter"])
                if self.on_settled is not None:
                    self.on_settled(conn, cmd, "expired", None, None, now)
                return True
            if self._tx(cmd["meter_id"], work):
                summary.expired += 1
                self._publish(cmd, "expired", None, "expired before the meter answered", now)

    def _publish(self, cmd: dict, state: str, result: str | None, error: str | None, now: dt.datetime) -> None:
        if self.events is not None:
            self.events.publish(COMMAND_SETTLED, SettledCommand(
                int(cmd["id"]), int(cmd["meter_id"]), cmd["kind"], cmd.get("purpose"), state, result, error, now))


def _family(kind: str) -> str | None:
    """"money" or "relay" for the commands whose failure opens an alarm, else None."""
    return "money" if kind in MONEY_KINDS else "relay" if kind in RELAY_KINDS else None


def _command_alarms(conn: sa.Connection, cmd: dict, state: str, result: str | None, answer: MailboxResult | None,
                    error: str | None, now: dt.datetime) -> None:
    """In the settling transaction: a money command refused for its count opens count_mismatch (reconciliation
    closes it); any other failed money or relay command opens command_failed on its meter; a later command of the
    same family (money, relay) applied closes that again."""
    subject = alarms.meter(cmd["meter_id"])
    family = _family(cmd["kind"])
    if result == "COUNT_MISMATCH":
        alarms.open_alarm(conn, alarms.COUNT_MISMATCH, subject, alarms.AlarmLevel.CRITICAL, "count_refused",
                          {"counter": cmd["counter"], "meter_count": answer.purchase_count if answer else "?"}, now)
    elif state == "failed" and family is not None:
        alarms.open_alarm(conn, alarms.COMMAND_FAILED, subject, alarms.AlarmLevel.WARNING, "command_failed",
                          {"command": cmd["id"], "command_kind": cmd["kind"], "family": family,
                           "result": result or error or "?"}, now)
    elif state == "acked" and family is not None:
        for alarm in alarms.open_alarms(conn, alarms.COMMAND_FAILED, subject):
            if alarm["message_params"].get("family") == family:
                alarms.close_alarm_by_id(conn, alarm["id"], now)
