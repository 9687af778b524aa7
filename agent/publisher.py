"""The publisher: outbox → broker at QoS 1, deleting a record only after its PUBACK.

A sliding window: up to ``window`` records are in flight (sent, not yet acknowledged) at any time, each
freed slot is refilled at once, and acknowledged records are deleted from the outbox in groups. Alerts
go first (the outbox's priority lane): a live alarm waits behind at most one window of health records,
however long the backlog. Health records leave at most ``drain_rate_per_s`` a second (a token bucket), so
a backlog after an outage drains steadily instead of flooding the broker and the gateway, while the
agent's own analysis keeps its share of the machine.

When the connection drops, unacknowledged records stay in the outbox and go again, oldest first, after
the reconnect (the gateway drops duplicates by id). A publish the broker refuses (an MQTT 5 reason code,
e.g. the ACL denies the topic) is kept too: the publisher reports it and pauses, doubling the pause up to
:data:`REFUSED_PAUSE_MAX_S`, because only a configuration change can fix it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

from plantwatch.agent.outbox import Outbox
from plantwatch.log import event
from plantwatch.mqtt import MqttClient, MqttError, NotConnected, PublishRefused

log = logging.getLogger("plantwatch.agent.publisher")

DELETE_GROUP = 256
"""Acknowledged records deleted in one transaction; fewer are deleted when there is nothing to send."""
PUBACK_TIMEOUT_S = 60.0
"""A connection on which records wait this long for a PUBACK with none arriving is broken (a broker
acknowledges QoS 1 within a round trip): the publisher drops it and the records go again after the
reconnect."""
REFUSED_PAUSE_MIN_S = 2.0
REFUSED_PAUSE_MAX_S = 60.0
"""Pause after the broker refused a publish, doubling from the minimum to the cap."""


class TokenBucket:
    """At most ``rate_per_s`` tokens a second, at most ``burst`` saved up (``rate_per_s`` 0: unlimited).

    >>> bucket = TokenBucket(100.0, burst=10, now_s=0.0)
    >>> bucket.available(0.0), bucket.take(10), bucket.available(0.05)
    (10, None, 5)
    """

    def __init__(self, rate_per_s: float, *, burst: int, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated_s = now_s

    def available(self, now_s: float) -> int | None:
        """Whole tokens available now (``None``: unlimited)."""
        if self.rate_per_s <= 0:
            return None
        self.tokens = min(self.burst, self.tokens + (now_s - self.updated_s) * self.rate_per_s)
        self.updated_s = now_s
        return int(self.tokens)

    def take(self, count: int) -> None:
        """Spend ``count`` tokens."""
        if self.rate_per_s > 0:
            self.tokens -= count

    def wait_s(self) -> float:
        """Seconds until one more token is there."""
        return max(0.0, (1.0 - self.tokens) / self.rate_per_s) if self.rate_per_s > 0 else 0.0


class Publisher:
    """Drains the outbox into the broker."""

    def __init__(
        self, outbox: Outbox, client: MqttClient, *, window: int, drain_rate_per_s: float = 0.0
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.window = window
        self.drain_rate_per_s = drain_rate_per_s
        self.wake = asyncio.Event()
        """Set when there is news: records stored, PUBACKs arrived."""
        self.published = 0
        self.refused: str | None = None
        """The broker's last refusal, until a publish goes through again."""
        self._refused_pause_s = REFUSED_PAUSE_MIN_S

    async def run(self) -> None:
        """Forward records until cancelled."""
        while True:
            if not self.client.is_connected:
                await self.client.wait_connected()
            refusal = await self._forward()
            if refusal is not None:
                if self.refused != str(refusal):
                    event(
                        log,
                        logging.ERROR,
                        "publish_refused",
                        reason=refusal,
                        retry_in_s=self._refused_pause_s,
                    )
                self.refused = str(refusal)
                await asyncio.sleep(self._refused_pause_s)
                self._refused_pause_s = min(REFUSED_PAUSE_MAX_S, 2 * self._refused_pause_s)

    async def _forward(self) -> PublishRefused | None:
        """Send over one connection until it drops (``None``) or the broker refuses a record."""
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(self.drain_rate_per_s, burst=self.window, now_s=time.monotonic())
        after_alert = after_health = 0
        in_flight = 0
        acked: list[int] = []
        failure: list[MqttError] = []

        last_progress = time.monotonic()

        def settled(position: int, future: asyncio.Future[None]) -> None:
            nonlocal in_flight, last_progress
            in_flight -= 1
            last_progress = time.monotonic()
            error = future.exception()
            if error is None:
                acked.append(position)
            elif isinstance(error, MqttError):
                failure.append(error)
            else:
                failure.append(MqttError(f"publish failed: {error!r}"))
            self.wake.set()

        async def delete_acked() -> None:
            done = acked[:]
            del acked[:]
            if done:
                await loop.run_in_executor(None, self.outbox.remove, done)
                self.published += len(done)
                self.refused = None

        try:
            while not failure:
                self.wake.clear()  # news from here on wakes the wait below
                if len(acked) >= DELETE_GROUP:
                    await delete_acked()
                room = self.window - in_flight
                batch = []
                health_limit: int | None = None
                # refill in handfuls, not one query per PUBACK
                if room > 0 and (in_flight == 0 or room >= self.window // 4):
                    health_limit = bucket.available(time.monotonic())
                    batch = await loop.run_in_executor(
                        None,
                        partial(
                            self.outbox.next_batch,
                            room,
                            after_alert=after_alert,
                            after_health=after_health,
                            health_limit=health_limit,
                        ),
                    )
                if in_flight == 0:
                    last_progress = time.monotonic()
                for item in batch:
                    future = self.client.publish_nowait(item.topic, item.payload, qos=1)
                    in_flight += 1
                    future.add_done_callback(partial(settled, item.position))
                    if item.kind == "alert":
                        after_alert = item.position
                    else:
                        after_health = item.position
                        bucket.take(1)
                if batch:
                    continue
                if acked:
                    await delete_acked()
                    continue
                timeout = PUBACK_TIMEOUT_S if in_flight else None
                if health_limit == 0:
                    # health records may be waiting for tokens. Decided by the query's limit, not by the
                    # bucket now: tokens that came during the query would leave nothing to wake this wait
                    timeout = bucket.wait_s()
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
                    # that arrives as the event is set, and the publisher would never stop
                    async with asyncio.timeout(timeout):
                        await self.wake.wait()
                except TimeoutError:
                    if in_flight and time.monotonic() - last_progress > PUBACK_TIMEOUT_S:
                        event(
                            log,
                            logging.ERROR,
                            "puback_timeout",
                            in_flight=in_flight,
                            waited_s=PUBACK_TIMEOUT_S,
                        )
                        self.client.drop_connection("no PUBACK for the records in flight")
                        while in_flight:  # the loss fails them
                            self.wake.clear()
                            await self.wake.wait()
        except NotConnected as error:
            failure.append(error)
        # every record sent on this connection settles: acknowledged, refused, or failed by the loss
        while in_flight:
            self.wake.clear()
            await self.wake.wait()
        await delete_acked()
        refusal = next((f for f in failure if isinstance(f, PublishRefused)), None)
        if refusal is None:
            self._refused_pause_s = REFUSED_PAUSE_MIN_S
            if failure:
                event(log, logging.WARNING, "publish_interrupted", reason=failure[0])
        return refusal
