"""The MES simulator against a real Mosquitto: retained production context, plans, outages, the shipped ACL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plantwatch.clock import ManualClock, parse_rfc3339
from plantwatch.contract import (
    CONTEXT_SCHEMA,
    PayloadError,
    ProductionContext,
    context_subscription,
    context_topic,
    parse_context,
    parse_context_topic,
)
from plantwatch.mqtt import BrokerSettings, Message, MqttClient, TLSParameters
from plantwatch.simulators.broker import Broker, find_mosquitto, find_mosquitto_passwd
from plantwatch.simulators.mes import MesError, MesSimulator, PlanStep

SITE = "plant1"
DAY_S = 86400.0
T0_S = 1_772_438_400.0  # 2026-03-02T08:00:00Z
TIMEOUT_S = 10.0


def settings(port: int, client_id: str | None = None, **options: object) -> BrokerSettings:
    return BrokerSettings("127.0.0.1", port, client_id=client_id or f"test-{uuid.uuid4().hex[:8]}", **options)  # type: ignore[arg-type]


async def observe(broker_settings: BrokerSettings, site: str = SITE) -> MqttClient:
    """A connected client subscribed to every asset's context at ``site``."""
    client = MqttClient(broker_settings, subscriptions=[(context_subscription(site), 1)])
    await client.start()
    assert await client.wait_connected(TIMEOUT_S), client.last_error
    return client


async def take(client: MqttClient, count: int) -> list[Message]:
    """The next ``count`` messages, failing after the deadline."""
    messages = []
    async with asyncio.timeout(TIMEOUT_S):
        for _ in range(count):
            messages.append(await client.messages.get())
    return messages


async def wait_for(condition, *, what: str) -> None:  # type: ignore[no-untyped-def]
    """Await ``condition()`` becoming true, polling; fail naming ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {TIMEOUT_S} s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def mes(broker: Broker) -> AsyncIterator[MesSimulator]:
    simulator = MesSimulator(
        settings(broker.port, "plantwatch-mes"), site=SITE, plant="1010", storage_location="0001"
    )
    await simulator.connect()
    yield simulator
    await simulator.close()


async def test_a_subscriber_that_comes_later_gets_the_retained_context(
    broker: Broker, mes: MesSimulator
) -> None:
    sent = await mes.start_order(
        "press-3", "1000123", "L-2026-0042", "BRK-DISC-220", T0_S, quantity=1200, unit="PC"
    )
    await mes.close()  # the context outlives the MES's connection

    observer = await observe(settings(broker.port))
    try:
        (message,) = await take(observer, 1)
    finally:
        await observer.stop()
    assert message.retain and message.qos == 1
    assert message.topic == context_topic(SITE, "press-3")
    assert parse_context_topic(message.topic) == (SITE, "press-3")
    received = parse_context(message.payload)
    assert received == sent
    assert (received.schema, received.production_order, received.lot, received.material) == (
        CONTEXT_SCHEMA,
        "1000123",
        "L-2026-0042",
        "BRK-DISC-220",
    )
    assert (received.plant, received.storage_location, received.quantity, received.unit) == (
        "1010",
        "0001",
        1200.0,
        "PC",
    )
    assert parse_rfc3339(received.since) == T0_S == parse_rfc3339(received.ts)


async def test_stop_replaces_the_retained_order_with_an_idle_context(
    broker: Broker, mes: MesSimulator
) -> None:
    await mes.start_order("press-3", "1000123", "L-0042", "BRK-DISC-220", T0_S)
    idle = await mes.stop("press-3", T0_S + 3600.0)
    assert mes.context("press-3") == idle

    observer = await observe(settings(broker.port))
    try:
        (message,) = await take(observer, 1)
    finally:
        await observer.stop()
    received = parse_context(message.payload)
    assert received.idle and received.lot is None and received.storage_location is None
    assert received.plant == "1010"
    assert parse_rfc3339(received.since) == T0_S + 3600.0


async def test_a_plan_is_published_in_order_as_time_passes(broker: Broker) -> None:
    plan = [
        (T0_S + DAY_S, "press-3", None, None, None),
        (T0_S, "press-3", "1000123", "L-0042", "BRK-DISC-220"),
        (T0_S, "oven-1", "1000124", "L-0043", "PAD-7"),
        PlanStep(T0_S + 2 * DAY_S, "press-3", "1000130", "L-0050", "BRK-DISC-240", quantity=500, unit="PC"),
    ]
    observer = await observe(settings(broker.port))
    try:
        async with MesSimulator(settings(broker.port), site=SITE, plan=plan) as simulator:
            assert len(simulator.pending) == 4
            assert await simulator.advance_to(T0_S - 1.0) == []
            first = await simulator.advance_to(T0_S + 10.0)
            assert [(c.asset, c.production_order) for c in first] == [
                ("press-3", "1000123"),
                ("oven-1", "1000124"),
            ]
            assert [(c.asset, c.production_order) for c in await simulator.advance_to(T0_S + 3 * DAY_S)] == [
                ("press-3", None),
                ("press-3", "1000130"),
            ]
            assert simulator.pending == ()
            assert await simulator.advance_to(T0_S + 9 * DAY_S) == []
        messages = await take(observer, 4)
    finally:
        await observer.stop()
    received = [parse_context(message.payload) for message in messages]
    assert [(c.asset, c.production_order, c.lot) for c in received] == [
        ("press-3", "1000123", "L-0042"),
        ("oven-1", "1000124", "L-0043"),
        ("press-3", None, None),
        ("press-3", "1000130", "L-0050"),
    ]
    assert received[-1].quantity == 500.0 and received[-1].unit == "PC"

    # what a gateway starting now sees: the last state of each asset
    late = await observe(settings(broker.port))
    try:
        retained = {m.topic: parse_context(m.payload) for m in await take(late, 2)}
    finally:
        await late.stop()
    assert retained[context_topic(SITE, "press-3")].production_order == "1000130"
    assert retained[context_topic(SITE, "oven-1")].production_order == "1000124"


async def test_run_plan_follows_a_simulated_clock(broker: Broker) -> None:
    clock = ManualClock(start=T0_S)
    plan = [(T0_S, "press-3", "1000123", "L-0042", None), (T0_S + DAY_S, "press-3", None, None, None)]
    async with MesSimulator(settings(broker.port), site=SITE, plan=plan) as simulator:
        task = asyncio.create_task(simulator.run_plan(clock, poll_s=0.01))
        await wait_for(lambda: len(simulator.pending) == 1, what="the first planned change")
        current = simulator.context("press-3")
        assert current is not None and current.production_order == "1000123"
        assert not task.done()
        clock.advance(DAY_S)
        async with asyncio.timeout(TIMEOUT_S):
            await task
        current = simulator.context("press-3")
        assert current is not None and current.idle


async def test_a_planned_change_waits_out_a_broker_outage_and_is_not_skipped(broker: Broker) -> None:
    plan = [(T0_S, "press-3", "1000123", "L-0042", None), (T0_S + 60.0, "press-3", "1000124", "L-0043", None)]
    async with MesSimulator(settings(broker.port), site=SITE, plan=plan) as simulator:
        assert len(await simulator.advance_to(T0_S)) == 1
        broker.stop()
        await wait_for(lambda: not simulator._client.is_connected, what="the MES to notice the outage")
        assert await simulator.advance_to(T0_S + 60.0) == []
        assert [step.production_order for step in simulator.pending] == ["1000124"]
        broker.start()
        assert await simulator._client.wait_connected(TIMEOUT_S)
        (published,) = await simulator.advance_to(T0_S + 60.0)
        assert published.production_order == "1000124"
    observer = await observe(settings(broker.port))
    try:
        (message,) = await take(observer, 1)
    finally:
        await observer.stop()
    assert parse_context(message.payload).production_order == "1000124"


async def test_publishing_without_a_connection_is_an_error(broker: Broker) -> None:
    simulator = MesSimulator(settings(broker.port), site=SITE)
    with pytest.raises(MesError, match="not connected"):
        await simulator.start_order("press-3", "1000123", None, None, T0_S)
    assert simulator.context("press-3") is None


async def test_a_change_before_the_last_one_is_refused(mes: MesSimulator) -> None:
    await mes.start_order("press-3", "1000123", "L-0042", None, T0_S)
    with pytest.raises(ValueError, match="before its last change"):
        await mes.stop("press-3", T0_S - 1.0)
    current = mes.context("press-3")
    assert current is not None and current.production_order == "1000123"


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ((T0_S, "Press 3", "1000123", None, None), "asset"),
        ((T0_S, "press-3", None, "L-0042", None), "lot"),
        ((T0_S, "press-3", "", None, None), "production_order"),
        (PlanStep(T0_S, "press-3", "1000123", quantity=5.0), "unit"),
    ],
)
def test_a_bad_plan_is_refused_when_it_is_made_naming_the_field(step: object, field: str) -> None:
    with pytest.raises(PayloadError, match=rf"^{field}: "):
        MesSimulator(settings(1883), site=SITE, plan=[step])  # type: ignore[list-item]


def test_a_bad_site_is_refused() -> None:
    with pytest.raises(PayloadError, match="^site: "):
        MesSimulator(settings(1883), site="Plant 1", plan=[(T0_S, "press-3", "1000123", None, None)])


# --- the shipped, locked-down broker -------------------------------------------------------------------

needs_secure_broker = pytest.mark.skipif(
    find_mosquitto() is None or find_mosquitto_passwd() is None,
    reason="mosquitto and mosquitto_passwd are not installed (make setup installs them)",
)
MES_PASSWORD = "mes-secret"
GATEWAY_PASSWORD = "gateway-secret"


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Broker]:
    instance = Broker(
        tmp_path / "secure", secure=True, users={"mes": MES_PASSWORD, "gateway-site1": GATEWAY_PASSWORD}
    )
    instance.start()
    yield instance
    instance.stop()


@needs_secure_broker
async def test_the_mes_user_publishes_context_through_the_shipped_acl_over_tls(secure_broker: Broker) -> None:
    tls = TLSParameters(str(secure_broker.ca_file))
    mes_settings = settings(
        secure_broker.port, "plantwatch-mes", username="mes", password=MES_PASSWORD, tls=tls
    )
    async with MesSimulator(mes_settings, site="site1") as simulator:
        sent: ProductionContext = await simulator.start_order("press-3", "1000123", "L-0042", None, T0_S)
    gateway = await observe(
        settings(secure_broker.port, username="gateway-site1", password=GATEWAY_PASSWORD, tls=tls),
        site="site1",
    )
    try:
        (message,) = await take(gateway, 1)
    finally:
        await gateway.stop()
    assert parse_context(message.payload) == sent


@needs_secure_broker
async def test_a_wrong_mes_password_fails_to_connect_saying_why(secure_broker: Broker) -> None:
    tls = TLSParameters(str(secure_broker.ca_file))
    simulator = MesSimulator(
        settings(secure_broker.port, username="mes", password="wrong", tls=tls), site="site1"
    )
    with pytest.raises(MesError, match="(?i)bad user name or password|not authori"):
        await simulator.connect(timeout_s=5.0)
