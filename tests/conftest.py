"""Shared fixtures: a private Mosquitto on a free loopback port, deadlines instead of sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plantwatch.simulators.plant import Broker, find_mosquitto


def wait_until(
    condition: Callable[[], object], *, timeout_s: float, what: str, poll_s: float = 0.1
) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto with persistence, stopped after the test."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (make setup installs it)")
    instance = Broker(tmp_path / "broker")
    instance.start()
    yield instance
    instance.stop()
