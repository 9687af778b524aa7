"""What every plantwatch service does the same way: stop on SIGTERM, supervise its tasks, keep its
retained status fresh. Agent and gateway both run through :func:`supervise`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from plantwatch.log import event
from plantwatch.mqtt import MqttClient, MqttError


async def supervise(
    log: logging.Logger,
    stop: asyncio.Event,
    tasks: dict[str, Coroutine[Any, Any, None]],
) -> bool:
    """Run ``tasks`` until ``stop`` is set (SIGTERM/SIGINT set it) or one of them fails; True if one failed.

    A failed task is logged with its exception; every other task is then cancelled and awaited.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # not possible outside the main thread (tests): the caller sets ``stop`` then
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    running = [asyncio.create_task(coroutine, name=name) for name, coroutine in tasks.items()]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *running], return_when=asyncio.FIRST_COMPLETED)
    failed = False
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            failed = True
            event(log, logging.ERROR, "task_failed", task=task.get_name(), error=repr(task.exception()))
    for task in [stopper, *running]:
        task.cancel()
    await asyncio.gather(stopper, *running, return_exceptions=True)
    return failed


async def keep_status_fresh(
    log: logging.Logger,
    client: MqttClient,
    topic: str,
    payload: Callable[[], bytes],
    *,
    interval_s: float,
    refresh: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Republish the retained ``online`` status every ``interval_s`` (after ``refresh()``, if given)."""
    while True:
        await asyncio.sleep(interval_s)
        if refresh is not None:
            await refresh()
        if client.is_connected:
            try:
                await client.publish(topic, payload(), retain=True)
            except MqttError as error:
                event(log, logging.WARNING, "status_not_sent", reason=error)
