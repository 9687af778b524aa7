"""The gateway service on a real Mosquitto: what it subscribes to, how it reads agent statuses, and what it
stores, drops and reports when records come out of order, twice, or never."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.agent.config import MqttSettings
from plantwatch.contract import (
    PayloadError,
    Record,
    agent_status_subscription,
    agent_status_topic,
    alert_subscription,
    gateway_status_topic,
    health_subscription,
    parse_agent_status_topic,
    record_topic,
)
from plantwatch.gateway.config import ApiSettings, GatewaySettings, PolicySettings
from plantwatch.gateway.erp import ErpDocument, NotificationRequest
from plantwatch.gateway.service import GatewayService, parse_agent_status
from plantwatch.simulators.plant import Broker
from tests.test_sequence import record

SITE = "plant1"
AGENT = "gw-line3"

# --- topics and statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "health", "status"),
    [
        ("plantwatch/v1/plant1/gw-line3/pump-7/health", True, False),
        ("plantwatch/v1/plant1/gw-line3/pump-7/alert", False, False),
        ("plantwatch/v1/plant1/gw-line3/status", False, True),
        ("plantwatch/v1/plant1/gateway/gw1/status", False, False),  # a gateway's, one level deeper
        ("plantwatch/v1/plant1/mes/pump-7/context", False, False),
        ("plantwatch/v1/plant2/gw-line3/status", False, False),
    ],
)
def test_the_gateway_subscribes_to_health_records_and_agent_statuses_but_not_gateway_statuses(
    topic: str, health: bool, status: bool
) -> None:
    assert paho.topic_matches_sub(health_subscription(SITE), topic) is health
    assert paho.topic_matches_sub(agent_status_subscription(SITE), topic) is status
    assert paho.topic_matches_sub(alert_subscription(SITE), topic) is topic.endswith("/alert")


def test_parse_agent_status_topic_names_site_and_agent_and_refuses_the_rest() -> None:
    assert parse_agent_status_topic(agent_status_topic(SITE, AGENT)) == (SITE, AGENT)
    for topic in (
        gateway_status_topic(SITE, "gw1"),
        "plantwatch/v1/plant1/gateway/status",  # reserved ids name no agent
        "plantwatch/v1/plant1/mes/status",
        "plantwatch/v1/plant1/GW/status",
        "plantwatch/v2/plant1/gw-line3/status",
        "plantwatch/v1/plant1/gw-line3/health",
    ):
        with pytest.raises(PayloadError, match="topic"):
            parse_agent_status_topic(topic)


def status_payload(**fields: object) -> bytes:
    body = {"schema": "plantwatch.status/1", "site": SITE, "agent": AGENT, "state": "online", **fields}
    return json.dumps(body).encode()


def test_parse_agent_status_reads_the_sequence_fields_and_tolerates_older_agents() -> None:
    payload = status_payload(last_seq=41, buffered_records=0, buffer={"records_thinned": 7, "percent": 2.5})
    status = parse_agent_status(SITE, AGENT, payload)
    assert (status.last_seq, status.buffered_records, status.records_thinned) == (41, 0, 7)
    assert status.drained and not status.retained
    assert status.summary is not None
    assert (status.summary["state"], status.summary["buffer_percent"]) == ("online", 2.5)
    older = parse_agent_status(SITE, AGENT, status_payload(buffered_records=3))
    assert (older.last_seq, older.buffered_records, older.records_thinned) == (None, 3, None)
    assert not older.drained
    # the broker's retained copy is shown but confirms no gaps
    retained = parse_agent_status(SITE, AGENT, payload, retained=True)
    assert retained.summary == status.summary and not retained.drained


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\xff", "payload: not UTF-8"),
        (b"[]", "payload: not a JSON object"),
        (status_payload(schema="plantwatch.status/2"), "schema: major version"),
        (status_payload(schema="plantwatch.health/1"), "is not an agent status"),
        (status_payload(agent="press-3"), "agent: 'press-3' does not match"),
        (status_payload(last_seq="41"), "last_seq: expected an integer"),
        (status_payload(buffered_records=-1), "buffered_records: expected an integer"),
        (status_payload(last_seq=True), "last_seq: expected an integer"),
        (status_payload(buffer={"records_thinned": "7"}), "records_thinned: expected an integer"),
    ],
)
def test_parse_agent_status_refuses_a_bad_payload_naming_the_field(payload: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_agent_status(SITE, AGENT, payload)


# --- on a real broker --------------------------------------------------------------------------------


class FakeErp:
    """An ERP that creates every notification it is asked for (the interface of gateway/erp.py)."""

    name = "fake"

    def __init__(self) -> None:
        self.requests: list[NotificationRequest] = []
        self._lock = threading.Lock()

    def create_notification(self, request: NotificationRequest) -> ErpDocument:
        with self._lock:
            self.requests.append(request)
            return ErpDocument(
                f"{10000000 + len(self.requests)}", request.correlation_id, True, "outstanding"
            )

    def find_notification(self, correlation_id: str) -> ErpDocument | None:
        return None

    def check(self) -> None:
        return None


class Site:
    """A paho client that publishes as agent ``gw-line3`` and keeps the gateway's latest status."""

    def __init__(self, port: int) -> None:
        self.gateway_status: dict[str, object] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-site", protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(gateway_status_topic(SITE, "gw1"), qos=1)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self.gateway_status = json.loads(message.payload)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def send(self, item: Record) -> None:
        self.publish(
            record_topic(SITE, AGENT, item.asset, "alert" if item.is_alert else "health"),
            item.to_json().encode(),
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def site(broker: Broker) -> Iterator[Site]:
    instance = Site(broker.port)
    yield instance
    instance.close()


async def eventually(condition: Callable[[], object], *, timeout_s: float, what: str) -> object:
    """Poll ``condition`` (the gateway runs on this loop meanwhile) until truthy; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := condition()):
        if loop.time() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def query(path: Path, sql: str) -> list[tuple]:
    # a reader of its own, beside the gateway's connection (WAL)
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_gateway_drops_copies_waits_for_the_backlog_and_reports_thinned_seqs_as_a_gap(
    broker: Broker, site: Site, tmp_path: Path
) -> None:
    settings = GatewaySettings(
        site=SITE,
        gateway_id="gw1",
        mqtt=MqttSettings(host="127.0.0.1", port=broker.port),
        state_dir=str(tmp_path / "gateway"),
        status_interval_s=0.1,
        policy=PolicySettings(debounce_alerts=1),  # the first alarm opens the document
        api=ApiSettings(port=0),
    )
    erp = FakeErp()
    service = GatewayService(settings, adapter=erp)
    running = asyncio.create_task(service.run())
    database = tmp_path / "gateway" / "gateway.sqlite"
    try:
        # the gateway publishes its status after subscribing: from then on nothing sent is missed
        await eventually(
            lambda: site.gateway_status.get("state") == "online", timeout_s=10, what="the gateway"
        )
        health = {seq: record(seq) for seq in (1, 2, 3, 5)}  # 4 was thinned by the agent
        alarm = record(6, kind="alert")
        for item in (health[1], health[2], alarm, health[3], health[3], health[5]):
            site.send(item)  # the alarm overtakes the backlog; 3 comes twice
        await eventually(
            lambda: site.gateway_status.get("open_holes") == {AGENT: 1},
            timeout_s=10,
            what="the open hole at 4",
        )
        assert site.gateway_status["sequence_gaps"] == {}
        # still sending: the hole stays open; drained: it is a gap
        site.publish(
            agent_status_topic(SITE, AGENT), status_payload(last_seq=6, buffered_records=2), retain=True
        )
        site.publish(
            agent_status_topic(SITE, AGENT),
            status_payload(last_seq=6, buffered_records=0, buffer={"records_thinned": 1}),
            retain=True,
        )
        await eventually(
            lambda: site.gateway_status.get("sequence_gaps") == {AGENT: 1}, timeout_s=10, what="the gap"
        )
        assert site.gateway_status["open_holes"] == {}
        assert site.gateway_status["duplicates_dropped"] == 1
        assert site.gateway_status["dead_letters"] == 0
        assert query(database, "SELECT kind, first, last, missing, thinned_by_agent FROM sequence_gaps") == [
            ("gap", 4, 4, 1, 1)
        ]
        assert sorted(query(database, "SELECT message_id, seq FROM received")) == sorted(
            (item.id, seq) for seq, item in health.items()
        )
        assert query(database, "SELECT message_id FROM inbox") == [(alarm.id,)]
        assert query(database, "SELECT contiguous, ranges FROM agent_sequence") == [(6, "[]")]
        assert query(database, "SELECT asset, state, seq FROM asset_latest") == [("pump-7", "alarm", 6)]
        await eventually(lambda: erp.requests, timeout_s=10, what="the notification")
        assert [request.asset for request in erp.requests] == ["pump-7"]
        # a copy of the alarm, resent by the agent after a reconnect, is dropped
        site.send(alarm)
        await eventually(
            lambda: site.gateway_status.get("duplicates_dropped") == 2, timeout_s=10, what="the second copy"
        )
        assert len(erp.requests) == 1
        assert query(database, "SELECT count(*) FROM inbox") == [(1,)]
    finally:
        service.stop()
        assert await asyncio.wait_for(running, 30) == 0
