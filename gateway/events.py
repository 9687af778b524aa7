"""Live updates for the web page: what changed, from the gateway's threads to every open event stream.

The receiver publishes an ``asset`` event per stored record, an ``agent`` event per status and a
``document`` event whenever a document changes (approved, created in the ERP, refused …). Each open page
holds a :class:`Subscription`; events for the same thing (kind and key) that the page has not fetched yet
are merged, newest wins, so a backlog of thousands of records a second costs a page one update per asset,
not one per record, and a slow page cannot make the gateway hold memory without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

MAX_PENDING = 10_000
"""Distinct things a subscription holds before the oldest is dropped (the page re-reads on ``resync``)."""


class Subscription:
    """One open event stream's queue; :meth:`take` waits for events."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._pending: dict[tuple[str, str], Any] = {}
        self._condition = threading.Condition()
        self._overflowed = False
        self.closed = False

    def put(self, kind: str, key: str, data: Any) -> None:
        """Queue an event (the bus calls this)."""
        with self._condition:
            self._pending.pop((kind, key), None)
            self._pending[(kind, key)] = data
            if len(self._pending) > MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
                self._overflowed = True
            self._condition.notify()

    def take(self, timeout_s: float) -> list[tuple[str, Any]]:
        """Events waiting now, oldest first; waits up to ``timeout_s`` for one. After an overflow the first
        event is ``("resync", {})``: the page must read everything again."""
        with self._condition:
            if not self._pending and not self.closed:
                self._condition.wait(timeout_s)
            events = [(kind, data) for (kind, _), data in self._pending.items()]
            self._pending.clear()
            if self._overflowed:
                events.insert(0, ("resync", {}))
                self._overflowed = False
            return events

    def close(self) -> None:
        """Stop receiving; a waiting :meth:`take` returns."""
        self._bus.unsubscribe(self)
        with self._condition:
            self.closed = True
            self._condition.notify_all()


class EventBus:
    """Fan-out of events to subscriptions; thread-safe.

    ``render(kind, key)`` turns a changed thing into the data the page gets; it runs once per event in the
    publisher's thread, and only when someone listens.
    """

    def __init__(self, render: Callable[[str, str], Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._render = render
        self.closed = False

    def subscribe(self) -> Subscription:
        """A new subscription (close it when the stream ends)."""
        subscription = Subscription(self)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    @property
    def listening(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return len(self._subscriptions)

    def publish(self, kind: str, key: str, data: Any = None) -> None:
        """Send an event to every subscription (``data`` ``None``: rendered by ``render``)."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        if not subscriptions:
            return
        if data is None and self._render is not None:
            data = self._render(kind, key)
            if data is None:
                return
        for subscription in subscriptions:
            subscription.put(kind, key, data)

    def close(self) -> None:
        """End every subscription (the server is stopping)."""
        self.closed = True
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()
