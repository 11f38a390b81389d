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

Writes are grouped (_GroupCommit): one thread per run commits every mark and settlement the bus threads
have waiting in one transaction. The order above holds for each command: its frame leaves only after the
commit of its mark, and its answer is recorded with what it settles in one transaction (with the other
commands' writes of that moment). A bus marks its next meter's command while the current meter's frames
are on the wire, so a crash can also leave a command sent whose frame never left: the next run sends it
with the same counter, as above; a money command marked ahead whose bus then refuses the connection goes
back as it was. A bus does not wait for a settlement to commit before it goes on to its next meter; a
meter's next command does, and the run ends when every write is committed. A run reads the head commands
of all its meters in one query.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
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
    MONEY_KINDS, dispatch_targets, expire_stale, head_command, head_commands, is_conflict,
    mark_sent, meter_transaction, meters_transaction, move_command, move_commands, shift_money_counters,
    unmark_sent,
)
from storage import alarms

log = logging.getLogger(__name__)

RELAY_KINDS = {"trip": sf.RelayAction.TRIP, "close": sf.RelayAction.CLOSE,
               "keep_power": sf.RelayAction.KEEP_POWER_ON, "restore_prepaid": sf.RelayAction.KEEP_POWER_OFF}
# A transformer terminal's telecontrol and teleadjust (grid.control, grid.avc): payload {"position": n},
# {"mode": 0 small | 1 large}, {"outlet": 1..8, "action": 0 open | 1 close}.
GRID_KINDS = {"tap": sf.Command.TAP_SET, "capacity_mode": sf.Command.CAPACITY_MODE, "breaker": sf.Command.BREAKER}
COMMAND_CODES = {"recharge": sf.Command.RECHARGE, "refund": sf.Command.REFUND, "tariff": sf.Command.SET_TARIFF,
                 "limits": sf.Command.SET_LIMITS, "time_sync": sf.Command.TIME_SYNC,
                 **{kind: sf.Command.RELAY for kind in RELAY_KINDS}, **GRID_KINDS}
# The state bits a relay command sets: read to confirm it when only the command sequence says it was applied.
RELAY_STATE = {"trip": {"forced_trip": True}, "close": {"forced_trip": False}, "keep_power": {"keep_power": True},
               "restore_prepaid": {"keep_power": False, "prepaid_enabled": True}}


def expected_state(cmd: dict) -> dict:
    """The state a command sets, as the device's reading names it (read back to confirm the command): a relay
    command's bits, a terminal's tap position, capacity mode or outlet breaker; {} for the others."""
    kind = cmd["kind"]
    if kind in RELAY_STATE:
        return RELAY_STATE[kind]
    if kind not in GRID_KINDS:
        return {}
    payload = json.loads(cmd.get("payload") or "{}")
    if kind == "tap":
        return {"tap_position": int(payload["position"])}
    if kind == "capacity_mode":
        return {"capacity_mode": int(payload["mode"])}
    return {f"breaker_{int(payload['outlet'])}": bool(int(payload["action"]))}
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
    elif kind == "tap":
        code, body = sf.Command.TAP_SET, sf.tap_set_payload(int(payload["position"]))
    elif kind == "capacity_mode":
        code, body = sf.Command.CAPACITY_MODE, sf.capacity_mode_payload(int(payload["mode"]))
    elif kind == "breaker":
        code, body = sf.Command.BREAKER, sf.breaker_payload(int(payload["outlet"]), int(payload["action"]))
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
        self._writer: _GroupCommit | None = None   # the run's grouped commits (run_once)

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
                heads = head_commands(conn, meter_ids)   # every meter's head command in one query
                targets = dispatch_targets(conn, sorted(heads))
            summary.meters = len(heads)
            for _ in range(self.max_per_meter):
                # a settlement can queue the meter's next command (a closing's refund after its trip):
                # it goes in this run too, as the meters whose command was settled are looked at again
                settled = self._pass(heads, targets, summary)
                if not settled:
                    break
                with self.engine.connect() as conn:
                    heads = head_commands(conn, sorted(settled))
                if not heads:
                    break
            if summary.sent:
                log.info("dispatch: %d meters, %d sent, %d acked, %d failed, %d expired, %d undelivered",
                         summary.meters, summary.sent, summary.acked, summary.failed, summary.expired,
                         summary.undelivered)
            return summary

    def _pass(self, heads: dict[int, tuple[dict, int]], targets: dict[int, dict], summary: DispatchSummary) -> set[int]:
        """Each bus's meters one after another, the buses at once; the meters whose last command was settled
        (acked or failed, committed: its settlement may have queued the meter's next command)."""
        by_endpoint: dict[tuple, list[int]] = {}
        for mid in sorted(heads):
            t = targets.get(mid)
            if t is not None:
                by_endpoint.setdefault((t["host"], t["port"]), []).append(mid)
        lock = threading.Lock()
        settling: dict[int, Future] = {}

        def bus(meters: list[int]) -> None:
            marks: dict[int, Future] = {}

            def mark_ahead(i: int) -> None:
                if i < len(meters) and self._due(heads[meters[i]][0]):
                    marks[meters[i]] = self._writer.mark(heads[meters[i]][0])

            mark_ahead(0)
            for i, mid in enumerate(meters):
                # the next meter's head command is marked sent while this meter's frames are on the wire, so
                # its frame can leave as soon as this meter is done (still only after that mark committed)
                mark_ahead(i + 1)
                try:
                    done = self._run_meter(targets[mid], heads[mid], marks.pop(mid, None), summary, lock)
                    if isinstance(done, Future):
                        with lock:
                            settling[mid] = done
                    elif not done:
                        # endpoint refused: the rest of this bus waits for the next run, each of its
                        # commands counting this run as an attempt that could not reach the meter
                        for other in meters[i + 1:]:
                            self._unreachable_attempt(heads[other][0], marks.pop(other, None), summary, lock)
                        return
                except Exception:
                    log.exception("dispatch to meter %s failed", targets[mid]["meter_address"])

        self._writer = _GroupCommit(self)
        try:
            if len(by_endpoint) <= 1:
                for meters in by_endpoint.values():
                    bus(meters)
            else:
                with ThreadPoolExecutor(max_workers=min(self.workers, len(by_endpoint)),
                                        thread_name_prefix="wattline-dispatch-bus") as pool:
                    list(pool.map(bus, by_endpoint.values()))
        finally:
            self._writer.close()   # every settlement committed (and published) before the pass returns
            self._writer = None
        return {mid for mid, f in settling.items() if f.exception() is None and f.result() in ("acked", "failed")}

    def _run_meter(self, t: dict, head: tuple[dict, int], mark: Future | None, summary: DispatchSummary,
                   lock: threading.Lock) -> "bool | Future[str]":
        """The meter's commands in order (`mark`: its head command's mark, asked for ahead): False when its
        endpoint refused; the settlement's future when its last command was handed to the writer to settle
        (the meter is looked at again once that is committed); else True."""
        target = PollTarget(meter_id=t["meter_id"], meter_address=t["meter_address"], gateway=t["gateway"],
                            host=t["host"], port=t["port"], framing=t["framing"], bus_no=t["bus_no"], unit=t["unit"],
                            profile=t["profile"], timeout_s=t["timeout_s"], retries=t["retries"])
        cmd, unfinished = head
        more = unfinished > 1   # commands after the head: each waits for the one before it to be settled
        for _ in range(self.max_per_meter):
            if cmd is None:
                return True
            if mark is None and not self._due(cmd):
                return True   # backing off after a send that got nowhere
            outcome, mark = self._send(cmd, target, mark), None
            if isinstance(outcome, Future):
                # settled: the writer commits it while this bus goes on to its next meter
                outcome.add_done_callback(lambda f: f.exception() or self._count(summary, lock, f.result()))
                if not more:
                    return outcome
                outcome = outcome.result()
            else:
                self._count(summary, lock, outcome)
            if outcome == "undelivered":
                return False
            if outcome in ("unanswered", "retry_later"):
                return True   # "resend" and "renumbered" go round again at once
            with self.engine.connect() as conn:
                cmd = head_command(conn, t["meter_id"])
            more = True
        return True

    @staticmethod
    def _count(summary: DispatchSummary, lock: threading.Lock, outcome: str, sent: bool = True) -> None:
        with lock:
            summary.results[outcome] = summary.results.get(outcome, 0) + 1
            if sent and outcome != "moved":
                summary.sent += outcome != "undelivered"
            if outcome in ("acked", "failed", "undelivered", "unanswered"):
                setattr(summary, outcome, getattr(summary, outcome) + 1)

    def _gives_up(self, cmd: dict) -> bool:
        """A command that is not money, sent (this time included) max_attempts times without reaching the meter."""
        return cmd["kind"] not in MONEY_KINDS and cmd["attempts"] + 1 >= self.max_attempts

    def _due(self, cmd: dict) -> bool:
        """Resends of a command that is not money back off: backoff_s, then twice that ... (at most 5 minutes)."""
        if cmd["kind"] in MONEY_KINDS or not cmd["attempts"] or cmd.get("sent_at") is None or self.backoff_s <= 0:
            return True
        wait = min(self.backoff_s * 2 ** (cmd["attempts"] - 1), 300.0)
        return self.clock() >= cmd["sent_at"] + dt.timedelta(seconds=wait)

    def _unreachable_attempt(self, cmd: dict, mark: Future | None, summary: DispatchSummary,
                             lock: threading.Lock) -> None:
        """The meter's gateway refused this run: its head command (not money) counts an attempt, and is failed
        as UNREACHABLE at max_attempts, as if it had been sent and refused on connect. A money command marked
        ahead goes back as it was (state, attempts, sent_at): its frame never left."""
        if mark is None and (cmd["kind"] in MONEY_KINDS or not self._due(cmd)):
            return
        marked = (mark if mark is not None else self._writer.mark(cmd)).result()
        if marked is None:
            return
        cmd = marked[0]
        if cmd["kind"] in MONEY_KINDS:
            self._write(cmd["meter_id"], lambda conn: unmark_sent(conn, cmd))
            return
        error = "the gateway refused the connection"
        if self._gives_up(cmd):
            self._finish(cmd, "failed", "UNREACHABLE", None, error).add_done_callback(
                lambda f: f.exception() or self._count(summary, lock, f.result(), sent=False))
        else:
            self._write(cmd["meter_id"], lambda conn: move_command(conn, cmd["id"], "queued", error=error))
            self._count(summary, lock, "undelivered", sent=False)

    def _tx(self, meter_id: int, work: Callable[[sa.Connection], object]):
        for attempt in range(8):
            try:
                with meter_transaction(self.engine, meter_id) as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if not is_conflict(exc) or attempt == 7:
                    raise

    def _write(self, meter_id: int, work: Callable[[sa.Connection], object]):
        """work(conn) in the run's next grouped commit, waited for."""
        return self._writer.work(meter_id, work).result()

    def _send(self, cmd: dict, target: PollTarget, mark: Future | None = None) -> "str | Future[str]":
        marked = (mark if mark is not None else self._writer.mark(cmd)).result()   # committed before the frame leaves
        if marked is None:
            return "moved"
        cmd = marked[0]   # the row as the marking transaction read it (attempts before this send)
        try:
            issued_at = int(self.clock().replace(tzinfo=dt.UTC).timestamp())
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
                self._write(cmd["meter_id"], lambda conn: move_command(conn, cmd["id"], "queued", error=error))
                return "undelivered"
            return self._unanswered(cmd, exc)
        except (FieldError, TimeoutError, OSError) as exc:
            return self._unanswered(cmd, exc)
        return self._record(cmd, target, answer)

    def _note(self, cmd: dict, error: str) -> None:
        """Say on the command row why it is still unsettled (it stays sent and is sent again)."""
        from storage.schema import command
        self._write(cmd["meter_id"], lambda conn: conn.execute(
            command.update().where(command.c.id == cmd["id"]).values(error=error[:300])))

    def _unanswered(self, cmd: dict, exc: BaseException) -> str:
        if self._gives_up(cmd):
            self._finish(cmd, "failed", "NO_ANSWER", None, f"{type(exc).__name__}: {exc}"[:300])
            return "unanswered"
        self._note(cmd, f"{type(exc).__name__}: {exc}")
        return "unanswered"

    def _record(self, cmd: dict, target: PollTarget, answer: MailboxResult) -> "str | Future[str]":
        verdict = judge_answer(answer, COMMAND_CODES[cmd["kind"]], cmd["counter"])
        if verdict.outcome == APPLIED and (cmd["kind"] in RELAY_STATE or cmd["kind"] in GRID_KINDS):
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
                self._write(cmd["meter_id"], lambda conn: move_command(
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
        """A relay command is confirmed only when the meter's relay bits read back agree with it (a terminal's
        command: its tap position, capacity mode or breaker bit). The meter's own APPLIED with bits that do not
        agree: it took the frame but did not move its relay (NOT_EXECUTED, failed); only the sequence said
        applied: another frame took that sequence (superseded)."""
        expected = expected_state(cmd)
        try:
            reading = self.field_io.read_meter(target, all_blocks=False)
        except (FieldError, TimeoutError, OSError) as exc:
            log.warning("meter %s: could not read the relay state to confirm command %s: %s",
                        target.meter_address, cmd["id"], exc)
            return Verdict(PENDING, verdict.result, verdict.own, True, verdict.conflict)
        seen = {key: reading.get(key) for key in expected}
        if any(value is None for value in seen.values()):
            return verdict   # the profile does not report these bits: the sequence decides alone
        if all(_same(seen[key], value) for key, value in expected.items()):
            return verdict
        bits = ", ".join(f"{key}={int(value)}" for key, value in seen.items())
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
        self._write(cmd["meter_id"], lambda conn: alarms.open_alarm(
            conn, CONFLICT_ALARM, alarms.meter(cmd["meter_id"]), alarms.AlarmLevel.CRITICAL, "mailbox_conflict",
            params, now))

    def _finish(self, cmd: dict, state: str, result: str | None, answer: MailboxResult | None,
                error: str | None = None) -> "Future[str]":
        """Settle the command (acked or failed) with what it settles, in the run's next grouped commit; the
        future gives the state, or "moved" when it was moved meanwhile. Published once committed."""
        return self._writer.settle(cmd, state, result, answer, error)

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


@dataclass
class _Write:
    kind: str                  # mark | settle | work
    meter_id: int
    cmd: dict | None = None
    state: str | None = None   # settle: acked | failed, with its result, answer and error
    result: str | None = None
    answer: MailboxResult | None = None
    error: str | None = None
    work: Callable[[sa.Connection], object] | None = None
    future: Future = field(default_factory=Future)


class _GroupCommit:
    """The run's one writing thread. The bus threads hand it their marks (sent, attempts + 1), settlements and
    other writes, and it commits all that are waiting in one transaction (the meters' locks taken in id order),
    so sixteen buses cost one commit and a few statements, not sixteen commits of several statements each.

    The crash-safety order is the module's: a mark's requester waits for its commit before the frame leaves;
    a settlement is the answer with everything it settles (state, counters, alarms, on_settled) in one
    transaction, published after that commits. Its requester does not wait (the meter's next command does),
    and the run ends only when every write is committed. A group that fails other than by a conflict is
    committed again write by write, so one bad settlement does not take the others with it."""

    MAX_GROUP = 64

    def __init__(self, dispatcher: "Dispatcher"):
        self.dispatcher = dispatcher
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="wattline-dispatch-commit", daemon=True)
        self._thread.start()

    def mark(self, cmd: dict) -> "Future[tuple[dict, dt.datetime] | None]":
        """The command marked sent: its row as read before the mark and the time of the mark; None if refused."""
        return self._put(_Write("mark", cmd["meter_id"], cmd))

    def settle(self, cmd: dict, state: str, result: str | None, answer: MailboxResult | None,
               error: str | None) -> "Future[str]":
        return self._put(_Write("settle", cmd["meter_id"], cmd, state, result, answer, error))

    def work(self, meter_id: int, work: Callable[[sa.Connection], object]) -> Future:
        return self._put(_Write("work", meter_id, work=work))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _put(self, write: _Write) -> Future:
        self._queue.put(write)
        return write.future

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, last = [first], False
            while len(group) < self.MAX_GROUP:
                try:
                    write = self._queue.get_nowait()
                except queue.Empty:
                    break
                if write is None:
                    last = True
                    break
                group.append(write)
            self._commit(group)
            if last:
                return

    def _commit(self, group: list[_Write]) -> None:
        d = self.dispatcher
        now = d.clock()
        try:
            values = self._transaction(group, now)
        except Exception as exc:
            if len(group) > 1:
                log.warning("dispatch: a grouped commit of %d writes failed (%s); committing them one by one",
                            len(group), exc)
                for write in group:
                    self._commit([write])
                return
            log.exception("dispatch: %s of command %s to meter %s failed", group[0].kind,
                          (group[0].cmd or {}).get("id"), group[0].meter_id)
            group[0].future.set_exception(exc)
            return
        for write, value in zip(group, values):
            if write.kind == "settle" and value == write.state:
                try:
                    d._publish(write.cmd, write.state, write.result, write.error, now)
                except Exception:
                    log.exception("publishing settled command %s failed", write.cmd["id"])
            write.future.set_result(value)

    def _transaction(self, group: list[_Write], now: dt.datetime) -> list:
        meters = [w.meter_id for w in group]
        for attempt in range(8):
            try:
                with meters_transaction(self.dispatcher.engine, meters) as conn:
                    return self._apply(conn, group, now)
            except sa.exc.DBAPIError as exc:
                if not is_conflict(exc) or attempt == 7:
                    raise
        raise AssertionError("unreachable")

    def _apply(self, conn: sa.Connection, group: list[_Write], now: dt.datetime) -> list:
        """The group's writes in one transaction: other writes in order, then the settlements, then the marks
        (a group never holds two writes of one command: a requester waits for a command's mark before its
        settlement, and a meter's next command waits for the settlement before it)."""
        d = self.dispatcher
        values: list = [None] * len(group)
        for i, w in enumerate(group):
            if w.kind == "work":
                values[i] = w.work(conn)
        settles = [(i, w) for i, w in enumerate(group) if w.kind == "settle"]
        if settles:
            # storage.transitions.COMMAND: acked and failed only from sent; anything else was moved meanwhile
            moved = move_commands(conn, [(w.cmd["id"], w.state, {"result": w.result, "finished_at": now,
                                                                 "error": w.error}) for _, w in settles])
            done = []
            for i, w in settles:
                if w.cmd["id"] not in moved:
                    values[i] = "moved"
                    continue
                if w.state in ("failed", "expired") and w.cmd["kind"] in MONEY_KINDS:
                    shift_money_counters(conn, w.cmd["meter_id"], w.cmd["counter"])
                values[i] = w.state
                done.append(w)
            _command_alarms(conn, [(w.cmd, w.state, w.result, w.answer, w.error) for w in done], now)
            if d.on_settled is not None:
                for w in done:
                    d.on_settled(conn, w.cmd, w.state, w.result, w.answer, now)
        marks = [(i, w) for i, w in enumerate(group) if w.kind == "mark"]
        if marks:
            rows = mark_sent(conn, [w.cmd["id"] for _, w in marks], now)
            for i, w in marks:
                row = rows.get(w.cmd["id"])
                values[i] = None if row is None else (row, now)
        return values


def _same(seen, expected) -> bool:
    """A state read back equals what the command sets (bits as booleans, positions and modes as integers)."""
    return bool(seen) == expected if isinstance(expected, bool) else int(seen) == int(expected)


def _family(kind: str) -> str | None:
    """"money", "relay" or "grid" (a terminal's breaker, tap, capacity mode) for the commands whose failure opens an
    alarm, else None."""
    return "money" if kind in MONEY_KINDS else "relay" if kind in RELAY_KINDS else "grid" if kind in GRID_KINDS \
        else None


def _command_alarms(conn: sa.Connection, settled: list[tuple], now: dt.datetime) -> None:
    """In the settling transaction, for each (command row, state, result, answer, error): a money command refused
    for its count opens count_mismatch (reconciliation closes it); any other failed money or relay command opens
    command_failed on its meter; a later command of the same family (money, relay, grid) applied closes that again.
    A few statements for the lot, not one per command."""
    mismatched, failed, applied = [], [], {}
    for cmd, state, result, answer, error in settled:
        subject = alarms.meter(cmd["meter_id"])
        family = _family(cmd["kind"])
        if result == "COUNT_MISMATCH":
            mismatched.append((subject, "count_refused", {
                "counter": cmd["counter"], "meter_count": answer.purchase_count if answer else "?"}))
        elif state == "failed" and family is not None:
            failed.append((subject, "command_failed", {"command": cmd["id"], "command_kind": cmd["kind"],
                                                       "family": family, "result": result or error or "?"}))
        elif state == "acked" and family is not None:
            applied.setdefault(subject.id, set()).add(family)
    alarms.open_alarms_of(conn, alarms.COUNT_MISMATCH, alarms.AlarmLevel.CRITICAL, mismatched, now)
    alarms.open_alarms_of(conn, alarms.COMMAND_FAILED, alarms.AlarmLevel.WARNING, failed, now)
    if applied:
        for alarm in alarms.open_alarms(conn, alarms.COMMAND_FAILED, subject_kind="meter"):
            if alarm["message_params"].get("family") in applied.get(alarm["subject_id"], ()):
                alarms.close_alarm_by_id(conn, alarm["id"], now)
