"""The publisher: outbox → broker at QoS 1, deleting a record only after its PUBACK.

It sends batches of at most the in-flight window, alerts first (the outbox orders them), and waits for
every PUBACK of a batch before deleting those records. When the connection drops, unacknowledged
records stay in the outbox and go again after the reconnect; the gateway drops the duplicates by id.
"""

from __future__ import annotations

import asyncio
import logging

from plantwatch.agent.outbox import Outbox
from plantwatch.log import event
from plantwatch.mqtt import MqttClient, MqttError

log = logging.getLogger("plantwatch.agent.publisher")


class Publisher:
    """Drains the outbox into the broker."""

    def __init__(self, outbox: Outbox, client: MqttClient, *, window: int) -> None:
        self.outbox = outbox
        self.client = client
        self.window = window
        self.wake = asyncio.Event()
        self.published = 0

    async def run(self) -> None:
        """Forward records until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.client.is_connected:
                await self.client.wait_connected()
            batch = await loop.run_in_executor(None, self.outbox.next_batch, self.window)
            if not batch:
                self.wake.clear()
                await self.wake.wait()
                continue
            results = await asyncio.gather(
                *(self.client.publish(item.topic, item.payload, qos=1) for item in batch),
                return_exceptions=True,
            )
            done = [item.position for item, result in zip(batch, results, strict=True) if result is None]
            await loop.run_in_executor(None, self.outbox.remove, done)
            self.published += len(done)
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures:
                unexpected = [f for f in failures if not isinstance(f, MqttError)]
                if unexpected:
                    raise unexpected[0]
                event(
                    log,
                    logging.WARNING,
                    "publish_incomplete",
                    sent=len(done),
                    kept=len(failures),
                    reason=failures[0],
                )
                await asyncio.sleep(0.2)  # let the disconnect reach the client before asking again
