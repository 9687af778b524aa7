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


# --- Tryton: a real Tryton 8.2 server (tests/test_tryton.py) ------------------------------------------
# The template database (modules + seed) is built once per cache directory (about 30 s, then reused by
# later sessions; PLANTWATCH_TRYTON_CACHE moves it); each test gets its own server on a fresh copy.
# Imported here, below the shared fixtures, so that this section stays one block; importing it needs no
# trytond (the fixtures skip without it).
import plantwatch.simulators.tryton as tryton_simulator  # noqa: E402


@pytest.fixture(scope="session")
def tryton_template() -> tryton_simulator.TrytonTemplate:
    """The seeded template database, built at most once per session (reused from the cache if current)."""
    pytest.importorskip("trytond", reason="Tryton is not installed (make setup installs the tryton extra)")
    return tryton_simulator.ensure_template()


@pytest.fixture(scope="session")
def tryton_servers(
    tmp_path_factory: pytest.TempPathFactory, tryton_template: tryton_simulator.TrytonTemplate
) -> Iterator[tryton_simulator.WarmServers]:
    """Servers on fresh copies, the next one starting while a test runs."""
    servers = tryton_simulator.WarmServers(tmp_path_factory.mktemp("tryton"), tryton_template)
    yield servers
    servers.close()


@pytest.fixture
def tryton(tryton_servers: tryton_simulator.WarmServers) -> Iterator[tryton_simulator.TrytonServer]:
    """A started Tryton server on a fresh copy of the template, stopped after the test."""
    server = tryton_servers.take()
    yield server
    server.stop()
