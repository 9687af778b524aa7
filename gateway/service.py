"""The gateway service: alerts from the broker → inbox → policy → ERP adapter → ledger.

A received message is stored (inbox, decision, pending document) in one transaction before the broker is
told it arrived (manual PUBACK), so a gateway that dies never loses an alert: the broker delivers it
again and the inbox drops the copy. A pending document is created in the ERP by a separate worker that
looks its correlation id up first, so a retry after a crash finds the document instead of creating a
second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plantwatch.clock import Clock, SystemClock, rfc3339
from plantwatch.config import secret
from plantwatch.contract import (
    STATUS_SCHEMA,
    PayloadError,
    alert_subscription,
    gateway_status_topic,
    parse_record,
    parse_record_topic,
)
from plantwatch.gateway.config import GatewaySettings
from plantwatch.gateway.erp import ErpAdapter, ErpError
from plantwatch.gateway.policy import document_severity, notification_request
from plantwatch.gateway.store import Document, GatewayStore
from plantwatch.log import event
from plantwatch.mqtt import BrokerSettings, Message, MqttClient, RetainedStatus, TLSParameters, Will
from plantwatch.runtime import keep_status_fresh, supervise

log = logging.getLogger("plantwatch.gateway")


def make_adapter(settings: GatewaySettings) -> ErpAdapter:
    """The configured ERP adapter, with its password from credentials or the environment."""
    from plantwatch.gateway.sap import SapAdapter

    erp = settings.erp
    return SapAdapter(
        base_url=erp.base_url,
        user=erp.user,
        password=secret("erp-password", env="PLANTWATCH_ERP_PASSWORD") or "",
        timeout_s=erp.timeout_s,
        notification_type=erp.notification_type,
    )


def broker_settings(settings: GatewaySettings) -> BrokerSettings:
    """Connection settings: a persistent session, so alerts sent while the gateway is down wait for it."""
    mqtt = settings.mqtt
    tls = TLSParameters(mqtt.tls_ca_file, mqtt.tls_cert_file, mqtt.tls_key_file) if mqtt.tls_ca_file else None
    return BrokerSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=f"plantwatch-gateway-{settings.site}-{settings.gateway_id}",
        username=mqtt.username,
        password=secret("mqtt-password", env="PLANTWATCH_MQTT_PASSWORD"),
        keepalive_s=mqtt.keepalive_s,
        tls=tls,
        persistent_session=True,
    )


class GatewayService:
    """Runs one gateway until it is stopped."""

    def __init__(
        self, settings: GatewaySettings, *, clock: Clock | None = None, adapter: ErpAdapter | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store = GatewayStore(Path(settings.state_dir) / "gateway.sqlite")
        self.adapter = adapter or make_adapter(settings)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway")
        self.status_topic = gateway_status_topic(settings.site, settings.gateway_id)
        self.erp_reachable: bool | None = None
        self._dead_letters = self.store.dead_letter_count()
        self.client = MqttClient(
            broker_settings(settings),
            will=Will(self.status_topic, self._status_payload("offline")),
            status=RetainedStatus(self.status_topic, lambda: self._status_payload("online")),
            subscriptions=[(alert_subscription(settings.site), 1)],
            manual_ack=True,
        )
        self.wake_worker = asyncio.Event()
        self.received = 0
        self.duplicates = 0
        self._stop = asyncio.Event()

    def _status_payload(self, state: str) -> bytes:
        body = {
            "schema": STATUS_SCHEMA,
            "ts": rfc3339(self.clock.now()),
            "site": self.settings.site,
            "gateway": self.settings.gateway_id,
            "state": state,
            "erp": self.adapter.name,
            "erp_reachable": self.erp_reachable,
            "dead_letters": self._dead_letters,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def stop(self) -> None:
        """Ask the service to stop."""
        self._stop.set()

    async def run(self) -> int:
        """Receive, decide, create documents until :meth:`stop`; 1 if a part failed, else 0."""
        event(
            log,
            logging.INFO,
            "gateway_starting",
            site=self.settings.site,
            gateway=self.settings.gateway_id,
            erp=self.adapter.name,
        )
        await self.client.start()
        failed = await supervise(
            log,
            self._stop,
            {
                "receiver": self._receive_loop(),
                "erp-worker": self._erp_worker(),
                "status": keep_status_fresh(
                    log,
                    self.client,
                    self.status_topic,
                    lambda: self._status_payload("online"),
                    interval_s=self.settings.status_interval_s,
                ),
            },
        )
        await self.client.stop(publish_offline=(self.status_topic, self._status_payload("offline")))
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.store.close()
        event(log, logging.INFO, "gateway_stopped", received=self.received, duplicates=self.duplicates)
        return 1 if failed else 0

    # --- receiving ---------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self.client.messages.get()
            opened = await loop.run_in_executor(self.executor, self._take, message)
            self.client.ack(message)
            if opened:
                self.wake_worker.set()

    def _take(self, message: Message) -> bool:
        """Store one message (or its dead letter); True if it opened a document."""
        now = self.clock.now()
        try:
            site, agent, asset, _kind = parse_record_topic(message.topic)
            record = parse_record(message.payload)
            if (record.site, record.agent, record.asset) != (site, agent, asset):
                raise PayloadError(
                    f"topic {message.topic!r} does not match payload site/agent/asset "
                    f"{record.site}/{record.agent}/{record.asset}"
                )
        except PayloadError as error:
            self.store.dead_letter(
                source="mqtt", topic=message.topic, payload=message.payload, reason=str(error), now_s=now
            )
            self._dead_letters += 1
            event(log, logging.WARNING, "dead_letter", topic=message.topic, reason=error)
            return False
        severity = document_severity(record, create_on=self.settings.policy.create_on)
        accepted, document = self.store.accept(
            record, now_s=now, open_document_as=severity, erp=self.adapter.name
        )
        self.received += 1
        if not accepted:
            self.duplicates += 1
            event(log, logging.INFO, "duplicate_dropped", id=record.id, agent=record.agent, seq=record.seq)
            return False
        event(
            log,
            logging.INFO,
            "alert_received",
            asset=record.asset,
            state=record.state,
            failure_mode=record.failure_mode,
            seq=record.seq,
            id=record.id,
            opened=document.correlation_id if document else "-",
        )
        return document is not None

    # --- the ERP worker ----------------------------------------------------------------------------

    async def _erp_worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock.now()
            due = await loop.run_in_executor(self.executor, self.store.due_documents, now)
            for document in due:
                await loop.run_in_executor(self.executor, self._create, document)
            next_due = await loop.run_in_executor(self.executor, self.store.next_due_at)
            self.wake_worker.clear()
            timeout = None if next_due is None else max(0.05, next_due - self.clock.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake_worker.wait(), timeout)

    def _create(self, document: Document) -> None:
        now = self.clock.now()
        record = self.store.opening_record(document)
        request = notification_request(
            record, correlation_id=document.correlation_id, severity=document.severity
        )
        try:
            result = self.adapter.create_notification(request)
        except ErpError as error:
            self.erp_reachable = error.status is not None and error.status < 500 and error.status != 429
            if error.retryable:
                backoff = min(
                    self.settings.erp.retry_max_s, self.settings.erp.retry_initial_s * 2**document.attempts
                )
                delay = max(error.retry_after_s or 0.0, backoff * random.uniform(0.5, 1.0))
                self.store.document_retry(document, error=str(error), next_attempt_at=now + delay, now_s=now)
                event(
                    log,
                    logging.WARNING,
                    "erp_retry",
                    correlation_id=document.correlation_id,
                    attempt=document.attempts + 1,
                    delay_s=round(delay, 2),
                    reason=error,
                )
            else:
                self.store.document_failed(document, error=str(error), now_s=now)
                self._dead_letters += 1
                event(log, logging.ERROR, "erp_refused", correlation_id=document.correlation_id, reason=error)
            return
        self.erp_reachable = True
        self.store.document_created(
            document, number=result.number, found_existing=not result.created, now_s=now
        )
        event(
            log,
            logging.WARNING,
            "notification_created" if result.created else "notification_found",
            number=result.number,
            asset=document.asset,
            failure_mode=document.failure_mode,
            correlation_id=document.correlation_id,
        )
