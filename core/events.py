"""In-process publish/subscribe: what the collector and the dispatcher changed, to every site-wide job that cares.

Handlers run in the publisher's thread, in the order they subscribed, after the publisher's transaction has
committed (so a handler may read what the event names). A handler that raises is logged with its traceback and
never stops the publisher or the handlers after it. Subscribing, unsubscribing and publishing are thread-safe;
a handler added while an event is being delivered gets the next event.

Topics (the event type is a frozen dataclass of the publishing module):

    CYCLE_CHANGED    collectors.cycle.CycleChanges: once per poll cycle (also an empty one), what it changed:
                     meters, buses and gateways lost / recovered, status bits, balances crossing the site's alarm
                     amounts or zero, relays. Published by collectors.cycle.CollectorService.record.
    COMMAND_SETTLED  collectors.dispatch.SettledCommand: a remote command reached acked, failed or expired.
                     Published by collectors.dispatch.Dispatcher after the settling transaction.
    ALARM_CHANGED    storage.alarms.AlarmChanges: alarm events opened and closed (kind, level, subject, message
                     code and parameters), once per evaluation that changed any. Published by
                     billing.alarm_engine.AlarmEngine after each poll cycle (its own kinds and the collector's lost
                     contact) and after a settled command (failed commands, count refusals).

Why not blinker (installed with Flask): its send() lets the first failing receiver's exception stop the others
(every handler would need our own wrapper anyway), and it holds receivers by weak reference by default, so a
lambda or functools.partial subscribed without keeping a reference silently stops receiving.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

CYCLE_CHANGED = "collector.cycle_changed"
COMMAND_SETTLED = "dispatch.command_settled"
ALARM_CHANGED = "alarm.changed"
TOPICS = (CYCLE_CHANGED, COMMAND_SETTLED, ALARM_CHANGED)

Handler = Callable[[Any], object]


class EventBus:
    """Topics to handlers; publish(topic, event) calls each handler of the topic with the event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, tuple[Handler, ...]] = {}

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call `handler(event)` for every event published on `topic`; returns a function that unsubscribes."""
        with self._lock:
            self._handlers[topic] = (*self._handlers.get(topic, ()), handler)
        return lambda: self.unsubscribe(topic, handler)

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        with self._lock:
            handlers = list(self._handlers.get(topic, ()))
            if handler in handlers:
                handlers.remove(handler)
            self._handlers[topic] = tuple(handlers)

    def handlers(self, topic: str) -> tuple[Handler, ...]:
        with self._lock:
            return self._handlers.get(topic, ())

    def publish(self, topic: str, event: Any) -> int:
        """Deliver `event` to the topic's handlers; returns how many of them failed (each one logged)."""
        failed = 0
        for handler in self.handlers(topic):
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - one subscriber's failure is its own; the others still hear
                failed += 1
                log.exception("subscriber %s of %s failed", getattr(handler, "__qualname__", handler), topic)
        return failed
