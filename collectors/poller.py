"""Poll cycles over the field: buses concurrently, meters on one bus in sequence; FieldIO facade.

One cycle:
- targets are grouped by endpoint (host, port, framing) = one gateway bus port; every
  endpoint runs as its own task, so all gateways and buses are polled at once;
- on one endpoint, meters are read strictly one after another (one transaction on the bus);
- an endpoint that refuses or does not connect within its timeout costs one connect attempt
  per cycle; its meters get outcome ``gateway_unreachable`` without a request each;
- a meter that times out is retried ``retries`` times, then the bus moves on;
- a bad reply (garbage, truncated, wrong function or length) reconnects the endpoint before
  the next request, so leftovers cannot desynchronise the next meter;
- a block with ``every = N`` is read one cycle in N, staggered by meter id (``all_blocks=True``
  reads every block, e.g. right after a settings command);
- a state poll (``state_only=True``, the fast state poll between full readings) reads only each profile's
  ``[[state_block]]`` registers (balance, relay and status bits); meters whose profile has none are skipped.

Outcomes: ok | timeout | bad_reply | exception | gateway_unreachable, plus config_error for a
meter whose profile name or framing is unknown (that meter is skipped; the cycle goes on).
A gateway's exception 0x0A/0x0B (path unavailable / target did not answer) counts as timeout.

Commands (FieldIO.send_frame) use the same endpoint connection as the polls; pymodbus's
per-client lock is FIFO, so a command queued during a cycle goes on the bus right after the
transaction in progress, ahead of that bus's remaining polls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Coroutine, NamedTuple

from .modbus import (
    BadReply,
    ConnectionDropped,
    EndpointKey,
    EndpointPool,
    ExceptionReply,
    FieldError,
    FieldTimeout,
    GatewayUnreachable,
    due_blocks,
    quiet_pymodbus_logging,
    read_raw_blocks,
)
from .profiles import ProfileError, ProfileRegistry

log = logging.getLogger(__name__)


@dataclass
class PollTarget:
    meter_id: int
    meter_address: str
    gateway: str
    host: str
    port: int
    framing: str
    bus_no: int
    unit: int
    profile: str
    timeout_s: float = 1.0
    retries: int = 1

    @property
    def endpoint(self) -> EndpointKey:
        return EndpointKey(self.host, int(self.port), self.framing)


class Outcome(NamedTuple):
    status: str  # ok | timeout | bad_reply | exception | gateway_unreachable | config_error
    message: str = ""


OK = Outcome("ok")


@dataclass
class CycleResult:
    started_at: datetime
    finished_at: datetime
    duration_s: float
    readings: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    unreachable_endpoints: set[EndpointKey] = field(default_factory=set)
    unreachable_gateways: set[str] = field(default_factory=set)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == status)


class Poller:
    """Runs poll cycles on the endpoints of one pool; lives on the I/O loop's thread."""

    def __init__(self, profiles: ProfileRegistry, pool: EndpointPool | None = None):
        self.profiles = profiles
        self.pool = pool if pool is not None else EndpointPool()
        self.cycle_no = 0
        quiet_pymodbus_logging()

    async def poll_cycle(self, targets: list[PollTarget], *, all_blocks: bool = False,
                         state_only: bool = False) -> CycleResult:
        started_at = datetime.now(timezone.utc)
        t0 = time.monotonic()
        result = CycleResult(started_at, started_at, 0.0)
        by_endpoint: dict[EndpointKey, list[PollTarget]] = {}
        for target in targets:
            by_endpoint.setdefault(target.endpoint, []).append(target)
        cycle_no = self.cycle_no
        self.cycle_no += 1
        await asyncio.gather(*(self._poll_bus_guarded(key, group, result, cycle_no, all_blocks, state_only)
                               for key, group in by_endpoint.items()))
        result.finished_at = datetime.now(timezone.utc)
        result.duration_s = time.monotonic() - t0
        return result

    async def _poll_bus_guarded(self, key: EndpointKey, targets: list[PollTarget], result: CycleResult,
                                cycle_no: int, all_blocks: bool, state_only: bool = False) -> None:
        """poll_bus, but a fault in one bus's code path must not cost the other buses their cycle."""
        try:
            await self.poll_bus(key, targets, result, cycle_no, all_blocks, state_only)
        except Exception as exc:  # noqa: BLE001 - reported per meter, logged with its traceback
            log.exception("polling %s failed", key)
            for endpoint in self.pool:
                if endpoint.key == key:
                    endpoint.close()
            for t in targets:
                result.outcomes.setdefault(t.meter_id, Outcome("bad_reply", f"collector error: {exc!r}"))

    async def poll_bus(self, key: EndpointKey, targets: list[PollTarget], result: CycleResult,
                       cycle_no: int = 0, all_blocks: bool = False, state_only: bool = False) -> None:
        """All meters of one bus endpoint, in sequence."""
        connect_timeout = max(t.timeout_s for t in targets)
        try:
            endpoint = self.pool.get(key.host, key.port, key.framing, connect_timeout)
        except ValueError as exc:  # unknown framing
            for t in targets:
                result.outcomes[t.meter_id] = Outcome("config_error", str(exc))
            return
        outcomes, readings = result.outcomes, result.readings
        if not endpoint.connected and not await endpoint.connect(connect_timeout):
            self._unreachable(key, targets, result, "connection refused or timed out")
            return
        for i, target in enumerate(targets):
            try:
                profile = self.profiles.get(target.profile)
            except ProfileError as exc:
                outcomes[target.meter_id] = Outcome("config_error", str(exc))
                continue
            if state_only:
                blocks, decode = profile.state_blocks, profile.decode_state
                if not blocks:
                    continue
            else:
                blocks, decode = due_blocks(profile, cycle_no, target.meter_id, all_blocks), profile.decode
            try:
                raw = await self._read_with_retries(endpoint, target, blocks, connect_timeout)
            except GatewayUnreachable as exc:
                self._unreachable(key, targets[i:], result, str(exc))
                return
            except FieldError as exc:
                outcomes[target.meter_id] = Outcome(exc.outcome, str(exc))
                continue
            try:
                values = decode(raw)
            except ValueError as exc:
                outcomes[target.meter_id] = Outcome("bad_reply", str(exc))
                continue
            values["meter_id"] = target.meter_id
            values["ts"] = datetime.now(timezone.utc)
            readings.append(values)
            outcomes[target.meter_id] = OK

    async def _read_with_retries(self, endpoint, target: PollTarget, blocks, connect_timeout: float):
        raw: dict = {}
        last: FieldError | None = None
        for _attempt in range(max(0, target.retries) + 1):
            if not endpoint.connected and not await endpoint.connect(connect_timeout):
                raise GatewayUnreachable(f"{endpoint.key}: connection lost and refused on reconnect")
            try:
                return await read_raw_blocks(endpoint, target.unit, blocks, target.timeout_s, raw)
            except ExceptionReply:
                raise  # the meter answered; asking again gives the same answer
            except FieldTimeout as exc:
                last = exc
            except BadReply as exc:
                last = exc
                endpoint.close()  # reconnected at the top of the next attempt or the next meter
            except ConnectionDropped as exc:
                last = exc
                endpoint.close()
        if isinstance(last, ConnectionDropped):
            if not await endpoint.connect(connect_timeout):
                raise GatewayUnreachable(str(last))
            raise BadReply(str(last))
        raise last  # type: ignore[misc]

    @staticmethod
    def _unreachable(key: EndpointKey, targets: list[PollTarget], result: CycleResult, why: str) -> None:
        result.unreachable_endpoints.add(key)
        result.unreachable_gateways.update(t.gateway for t in targets)
        outcome = Outcome("gateway_unreachable", f"{key}: {why}")
        for t in targets:
            result.outcomes[t.meter_id] = outcome


class FieldIO:
    """Synchronous facade over one asyncio loop thread that owns every Modbus connection.

    The scheduler's jobs and the dashboard call it from their own threads; every request
    runs on the loop thread, so one endpoint's connection is never used by two threads.
    """

    def __init__(self, profiles: ProfileRegistry | None = None, *, thread_name: str = "wattline-field-io"):
        self.profiles = profiles or ProfileRegistry()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=thread_name, daemon=True)
        self._thread.start()
        self.pool = EndpointPool()
        self.poller = Poller(self.profiles, self.pool)
        self._closed = False

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine, timeout: float | None = None):
        """Run a coroutine on the I/O loop and wait for its result (TimeoutError after timeout)."""
        if self._closed:
            coro.close()
            raise RuntimeError("FieldIO is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"field I/O did not finish within {timeout} s") from None

    def poll_cycle(self, targets: list[PollTarget], *, all_blocks: bool = False, state_only: bool = False,
                   timeout: float | None = None) -> CycleResult:
        return self.run(self.poller.poll_cycle(targets, all_blocks=all_blocks, state_only=state_only), timeout)

    def read_meter(self, target: PollTarget, *, all_blocks: bool = True) -> dict:
        """Read one meter now (all blocks by default); FieldError if it does not answer well."""
        async def one():
            result = CycleResult(datetime.now(timezone.utc), datetime.now(timezone.utc), 0.0)
            await self.poller.poll_bus(target.endpoint, [target], result, 0, all_blocks)
            outcome = result.outcomes[target.meter_id]
            if outcome.status != "ok":
                raise _ERRORS.get(outcome.status, FieldError)(outcome.message)
            return result.readings[0]
        return self.run(one())

    def send_frame(self, target: PollTarget, frame: bytes, timeout_s: float = 2.0):
        """Write a secure frame to the target's mailbox and wait for its result (MailboxResult)."""
        from .commands import send_frame_to_target
        return self.run(send_frame_to_target(self.pool, self.profiles, target, frame, timeout_s),
                        timeout=timeout_s + target.timeout_s + 5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def shutdown():
            self.pool.close_all()
            await asyncio.sleep(0)
        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self.loop.close()

    def __enter__(self) -> "FieldIO":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_ERRORS = {"timeout": FieldTimeout, "bad_reply": BadReply, "gateway_unreachable": GatewayUnreachable,
           "exception": FieldError, "config_error": ProfileError}
