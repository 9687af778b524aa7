"""The MQTT client wrapper and the publisher against a real Mosquitto (and one fake broker for MQTT 3.1.1)."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from plantwatch.agent.outbox import Outbox
from plantwatch.agent.publisher import Publisher, TokenBucket
from plantwatch.contract import parse_record
from plantwatch.mqtt import (
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    BrokerSettings,
    MqttClient,
    NotConnected,
    TLSParameters,
    reconnect_delay_s,
)
from plantwatch.simulators.plant import Broker
from tests.test_outbox import AGENT, draft


async def wait_for(condition, *, timeout_s: float, what: str, task: asyncio.Task[None] | None = None) -> None:
    """Await ``condition()`` becoming true, polling; fail naming ``what`` after ``timeout_s``.

    ``task``: a publisher task whose failure ends the wait with its exception.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if task is not None and task.done():
            task.result()
            pytest.fail(f"the publisher stopped while waiting for {what}")
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Subscriber:
    """A plain paho subscriber that keeps what arrives, in order."""

    def __init__(self, port: int, topic: str = "plantwatch/#") -> None:
        self.received: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="test-subscriber", protocol=paho.MQTTv5
        )
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *args: self.ready.set()
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10), "subscriber did not subscribe"

    def seqs(self, kind: str | None = None) -> list[int]:
        return [parse_record(p).seq for t, p in self.received if kind is None or t.endswith("/" + kind)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    instance = Subscriber(broker.port)
    yield instance
    instance.close()


@pytest.fixture
async def client(broker: Broker) -> AsyncIterator[MqttClient]:
    instance = MqttClient(BrokerSettings("127.0.0.1", broker.port, client_id="test-agent"), max_in_flight=50)
    await instance.start()
    assert await instance.wait_connected(10)
    yield instance
    await instance.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "agent.sqlite", agent=AGENT)
    yield box
    box.close()


async def run_publisher(publisher: Publisher) -> asyncio.Task[None]:
    task = asyncio.create_task(publisher.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    async with asyncio.timeout(10):  # a publisher that ignores cancellation fails the test, not hangs it
        await asyncio.gather(task, return_exceptions=True)


# --- the client -------------------------------------------------------------------------------------


async def test_publish_returns_after_the_puback_and_the_message_arrives(
    client: MqttClient, subscriber: Subscriber
) -> None:
    await client.publish("plantwatch/v1/s/a/x/health", b"one", qos=1)
    await wait_for(lambda: subscriber.received, timeout_s=10, what="the message")
    assert subscriber.received == [("plantwatch/v1/s/a/x/health", b"one")]


async def test_publishing_without_a_connection_fails_at_once(broker: Broker) -> None:
    broker.stop()
    instance = MqttClient(BrokerSettings("127.0.0.1", broker.port, client_id="test-offline"))
    await instance.start()
    try:
        with pytest.raises(NotConnected, match="not connected"):
            instance.publish_nowait("t", b"x")
        await wait_for(lambda: instance.last_error is not None, timeout_s=10, what="a connect error")
        assert "connection refused" in (instance.last_error or "")
    finally:
        await instance.stop()


async def test_the_client_reconnects_after_the_broker_restarts(broker: Broker, client: MqttClient) -> None:
    broker.stop()
    await wait_for(lambda: not client.is_connected, timeout_s=10, what="the disconnect")
    broker.start()
    assert await client.wait_connected(2 * RECONNECT_MAX_S)
    await client.publish("t/after", b"x")


def test_reconnect_delays_double_up_to_the_cap_each_drawn_from_the_upper_half() -> None:
    rng = random.Random(3)
    for attempt in range(12):
        ceiling = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2**attempt)
        delays = [reconnect_delay_s(attempt, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not lockstep


def test_the_token_bucket_allows_its_rate_and_its_burst_and_no_more() -> None:
    bucket = TokenBucket(100.0, burst=20, now_s=0.0)
    assert bucket.available(0.0) == 20
    bucket.take(20)
    assert bucket.available(0.0) == 0
    assert bucket.wait_s() == pytest.approx(0.01)
    assert bucket.available(0.1) == 10
    assert bucket.available(10.0) == 20  # never more than the burst
    assert TokenBucket(0.0, burst=5, now_s=0.0).available(0.0) is None


class FakeBroker:
    """A TCP server that refuses MQTT 5 with CONNACK 132 and accepts MQTT 3.1.1: an older broker."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.levels: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(20)
        for _ in range(4):
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                data = connection.recv(4096)
                # fixed header (1), remaining length (1 for small packets), "\0\4MQTT", level
                level = data[8]
                self.levels.append(level)
                if level == 5:
                    connection.sendall(bytes([0x20, 3, 0, 0x84, 0]))  # Unsupported Protocol Version
                    continue
                connection.sendall(bytes([0x20, 2, 0, 0]))
                connection.recv(4096)  # hold the connection until the client goes
                return

    def close(self) -> None:
        self.server.close()


async def test_a_broker_without_mqtt_5_gets_mqtt_3_1_1() -> None:
    fake = FakeBroker()
    instance = MqttClient(BrokerSettings("127.0.0.1", fake.port, client_id="test-old-broker"))
    await instance.start()
    try:
        assert await instance.wait_connected(10)
        assert fake.levels == [5, 4]
        assert instance.protocol == paho.MQTTv311
    finally:
        await instance.stop()
        fake.close()


# --- the publisher ------------------------------------------------------------------------------


async def test_the_publisher_empties_the_outbox_alerts_first_each_lane_in_order(
    client: MqttClient, subscriber: Subscriber, outbox: Outbox
) -> None:
    outbox.append([draft() for _ in range(300)], now_s=1.0)
    outbox.append([draft(alert=True), draft(), draft(alert=True)], now_s=2.0)
    publisher = Publisher(outbox, client, window=50)
    task = await run_publisher(publisher)
    try:
        await wait_for(lambda: len(subscriber.received) == 303, timeout_s=30, what="every record", task=task)
        await wait_for(lambda: outbox.level().records == 0, timeout_s=10, what="the outbox to empty")
    finally:
        await stop(task)
    assert subscriber.seqs("alert") == [301, 303]
    assert subscriber.seqs("health") == [*range(1, 301), 302]
    assert subscriber.seqs()[:2] == [301, 303]  # the alerts went first
    assert publisher.published == 303


async def test_records_stored_while_the_broker_is_down_arrive_after_it_is_back(
    broker: Broker, client: MqttClient, outbox: Outbox
) -> None:
    publisher = Publisher(outbox, client, window=20)
    task = await run_publisher(publisher)
    try:
        broker.stop()
        await wait_for(lambda: not client.is_connected, timeout_s=10, what="the disconnect")
        outbox.append([draft() for _ in range(100)] + [draft(alert=True)], now_s=1.0)
        publisher.wake.set()
        await asyncio.sleep(0.3)
        assert outbox.level().records == 101  # nothing is lost while nobody listens
        broker.start()
        subscriber = Subscriber(broker.port)
        try:
            await wait_for(
                lambda: outbox.level().records == 0, timeout_s=2 * RECONNECT_MAX_S + 10, what="the drain"
            )
        finally:
            subscriber.close()
    finally:
        await stop(task)
    assert publisher.published == 101


async def test_an_alert_stored_during_a_rate_limited_drain_overtakes_the_backlog(
    client: MqttClient, subscriber: Subscriber, outbox: Outbox
) -> None:
    outbox.append([draft() for _ in range(1000)], now_s=1.0)
    # 250 health records a second: the backlog cannot drain in under 3 s, whatever the machine
    publisher = Publisher(outbox, client, window=20, drain_rate_per_s=250)
    task = await run_publisher(publisher)
    try:
        await wait_for(
            lambda: len(subscriber.received) >= 50, timeout_s=20, what="the drain to start", task=task
        )
        (alert,) = outbox.append([draft(alert=True)], now_s=2.0)
        publisher.wake.set()
        await wait_for(
            lambda: alert.seq in subscriber.seqs("alert"), timeout_s=20, what="the alert", task=task
        )
        health_before_alert = len(subscriber.seqs("health"))
    finally:
        await stop(task)
    assert health_before_alert < 1000 - 20  # it did not wait for the backlog
    # order kept meanwhile (records in flight when the publisher stopped may land after the count above)
    health = subscriber.seqs("health")
    assert health == list(range(1, len(health) + 1))


async def test_the_client_logs_in_over_tls_with_a_client_certificate_and_a_password(tmp_path: Path) -> None:
    secure = Broker(tmp_path / "broker", secure=True, users={"gw-line3": "s3cret"}, require_certificate=True)
    secure.start()
    certificate = secure.issue_client_certificate("gw-line3")
    instance = MqttClient(
        BrokerSettings(
            "127.0.0.1",
            secure.port,
            client_id="test-certificate",
            username="gw-line3",
            password="s3cret",
            tls=TLSParameters(str(secure.ca_file), str(certificate.cert_file), str(certificate.key_file)),
        )
    )
    await instance.start()
    try:
        assert await instance.wait_connected(10), instance.last_error
        await instance.publish("plantwatch/v1/s/gw-line3/pump-7/health", b"{}")  # allowed by the ACL
    finally:
        await instance.stop()
        secure.stop()


async def test_refused_credentials_stop_the_retries_and_say_why(tmp_path: Path) -> None:
    secure = Broker(tmp_path / "broker", secure=True, users={"gw-line3": "s3cret"})
    secure.start()
    settings = BrokerSettings(
        "127.0.0.1",
        secure.port,
        client_id="test-wrong-password",
        username="gw-line3",
        password="wrong",
        tls=TLSParameters(str(secure.ca_file)),
    )
    instance = MqttClient(settings)
    await instance.start()
    try:
        await wait_for(lambda: instance.refused is not None, timeout_s=10, what="the refusal")
        assert "gw-line3" in (instance.refused or "")
        assert instance._thread is not None
        await asyncio.get_running_loop().run_in_executor(None, instance._thread.join, 10)
        assert not instance._thread.is_alive()  # the connection loop ended: no more attempts
        assert not instance.is_connected
    finally:
        await instance.stop()
        secure.stop()
