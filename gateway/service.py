"""The gateway service: records from the broker → inbox → policy → ERP adapter → ledger.

The gateway subscribes to its site's alerts, health records and agent statuses. Messages are stored in
batches: the receiver takes everything the broker has delivered so far (up to :data:`BATCH_MAX_MESSAGES`),
stores it in one transaction (inbox, decisions, pending documents, health ids, sequence accounts, dead
letters) and only then tells the broker the messages arrived (manual PUBACK), so a gateway that dies
never loses a record: the broker delivers it again and the inbox drops the copy. A pending document is
created in the ERP by a separate worker that looks its correlation id up first, so a retry after a crash
finds the document instead of creating a second one.

Sequence numbers (:mod:`plantwatch.gateway.sequence`): every record updates its agent's account of
arrived seqs. A hole may still fill (alerts overtake older health records), so it is reported as a gap
only when the agent's status says it had nothing left to send (``buffered_records`` 0) up to its
``last_seq``. Statuses delivered as retained messages when the gateway (re)subscribes are not used for
that: the broker may hand them over before the records still queued for the gateway's session, and the
agent sends a fresh one every status interval. Gaps, resets and late records are logged and kept; none
stops anything. With several gateways behind a shared subscription each sees part of the records, so the
gaps they report are not meaningful.
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
    MAX_SEQ,
    STATUS_SCHEMA,
    PayloadError,
    agent_status_subscription,
    alert_subscription,
    check_schema,
    decode_json_object,
    gateway_status_topic,
    health_subscription,
    parse_agent_status_topic,
    parse_record,
    parse_record_topic,
)
from plantwatch.gateway.config import GatewaySettings
from plantwatch.gateway.erp import ErpAdapter, ErpError
from plantwatch.gateway.policy import document_severity, notification_request
from plantwatch.gateway.sequence import Arrival
from plantwatch.gateway.store import (
    AgentStatus,
    DeadLetter,
    Document,
    GatewayStore,
    Incoming,
    RecordIn,
    RecordTaken,
    StatusTaken,
    Taken,
)
from plantwatch.log import event
from plantwatch.mqtt import Message, MqttClient, RetainedStatus, Will
from plantwatch.runtime import keep_status_fresh, supervise

log = logging.getLogger("plantwatch.gateway")

BATCH_MAX_MESSAGES = 500
"""Messages stored in one transaction at most. A commit (an fsync with ``synchronous=FULL``) per message
caps a backlog drain at a few hundred records a second; one per batch lifts it to thousands, while a batch
stays short enough (tens of milliseconds) not to hold the ERP worker back."""


def parse_agent_status(site: str, agent: str, payload: bytes) -> AgentStatus:
    """What the gateway uses of agent ``agent``'s status payload; :class:`PayloadError` names a bad field.

    ``last_seq``, ``buffered_records`` and ``buffer.records_thinned`` are optional (older agents send none
    of them); when present they must be integers within ``0`` … ``MAX_SEQ``. ``site`` and ``agent``, when
    present, must match the topic's.
    """
    body = decode_json_object(payload)
    schema = body.get("schema")
    if not isinstance(schema, str):
        raise PayloadError(f"schema: expected a string, got {schema!r}")
    check_schema(schema)
    if not schema.startswith("plantwatch.status/"):
        raise PayloadError(f"schema: {schema!r} is not an agent status")
    for name, expected in (("site", site), ("agent", agent)):
        if name in body and body[name] != expected:
            raise PayloadError(f"{name}: {body[name]!r} does not match the topic's {expected!r}")
    buffer = body.get("buffer")
    fields = {
        "last_seq": body.get("last_seq"),
        "buffered_records": body.get("buffered_records"),
        # with the agent's other disk figures
        "records_thinned": buffer.get("records_thinned") if isinstance(buffer, dict) else None,
    }
    for name, value in fields.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ
        ):
            raise PayloadError(f"{name}: expected an integer within 0..{MAX_SEQ}, got {value!r}")
    return AgentStatus(site, agent, **fields)


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


class GatewayService:
    """Runs one gateway until it is stopped."""

    def __init__(
        self, settings: GatewaySettings, *, clock: Clock | None = None, adapter: ErpAdapter | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store = GatewayStore(
            Path(settings.state_dir) / "gateway.sqlite", health_retention_s=settings.inbox.health_retention_s
        )
        self.adapter = adapter or make_adapter(settings)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway")
        self.status_topic = gateway_status_topic(settings.site, settings.gateway_id)
        self.erp_reachable: bool | None = None
        self._dead_letters = self.store.dead_letter_count()
        self.received = 0
        self.duplicates = 0
        site = settings.site
        self.client = MqttClient(
            # a persistent session: records sent while the gateway is down wait for it at the broker
            settings.mqtt.broker_settings(
                f"plantwatch-gateway-{settings.site}-{settings.gateway_id}", persistent_session=True
            ),
            will=Will(self.status_topic, self._status_payload("offline")),
            status=RetainedStatus(self.status_topic, lambda: self._status_payload("online")),
            subscriptions=[
                (alert_subscription(site), 1),
                (health_subscription(site), 1),
                (agent_status_subscription(site), 1),
            ],
            manual_ack=True,
        )
        self.wake_worker = asyncio.Event()
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
            "duplicates_dropped": self.duplicates,
            "sequence_gaps": self.store.sequence_gaps(self.settings.site),
            "open_holes": self.store.open_holes(self.settings.site),
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
        queue = self.client.messages
        while True:
            batch = [await queue.get()]
            while len(batch) < BATCH_MAX_MESSAGES and not queue.empty():
                batch.append(queue.get_nowait())
            opened = await loop.run_in_executor(self.executor, self._take, batch)
            # only now is every message of the batch stored: the broker may forget them
            for message in batch:
                self.client.ack(message)
            if opened:
                self.wake_worker.set()

    def _take(self, messages: list[Message]) -> bool:
        """Store a batch of messages (records, statuses, dead letters) in one transaction; True if a
        document was opened."""
        now = self.clock.now()
        items: list[Incoming] = []
        for message in messages:
            item = self._incoming(message)
            if item is not None:
                items.append(item)
        results = self.store.take(items, now_s=now, erp=self.adapter.name)
        opened = False
        for item, taken in zip(items, results, strict=True):
            if isinstance(item, DeadLetter):
                self._dead_letters += 1
                event(log, logging.WARNING, "dead_letter", topic=item.topic, reason=item.reason)
            else:
                opened = self._report(taken) or opened
        return opened

    def _incoming(self, message: Message) -> Incoming | None:
        """What a message is for the store; ``None`` for one to leave aside (a retained agent status)."""
        kind = message.topic.rsplit("/", 1)[-1]
        try:
            if kind == "status":
                site, agent = parse_agent_status_topic(message.topic)
                status = parse_agent_status(site, agent, message.payload)
                if message.retain:
                    # sent on (re)subscription, perhaps ahead of records still queued for this session
                    event(log, logging.DEBUG, "retained_status_skipped", agent=agent)
                    return None
                return status
            site, agent, asset, record_kind = parse_record_topic(message.topic)
            record = parse_record(message.payload)
            if (record.site, record.agent, record.asset) != (site, agent, asset):
                raise PayloadError(
                    f"topic {message.topic!r} does not match payload site/agent/asset "
                    f"{record.site}/{record.agent}/{record.asset}"
                )
            if record.is_alert != (record_kind == "alert"):
                raise PayloadError(f"topic {message.topic!r} does not match payload schema {record.schema!r}")
        except PayloadError as error:
            return DeadLetter(source="mqtt", topic=message.topic, payload=message.payload, reason=str(error))
        return RecordIn(record, document_severity(record, create_on=self.settings.policy.create_on))

    def _report(self, taken: Taken) -> bool:
        """Count and log what became of a record or status; True if a document was opened."""
        if isinstance(taken, StatusTaken):
            confirmation = taken.confirmation
            if confirmation is not None:
                for gap in confirmation.gaps:
                    event(
                        log,
                        logging.WARNING,
                        "sequence_gap",
                        site=taken.status.site,
                        agent=taken.status.agent,
                        first=gap.first,
                        last=gap.last,
                        missing=gap.missing,
                        thinned_by_agent="-" if confirmation.thinned is None else confirmation.thinned,
                    )
            return False
        if not isinstance(taken, RecordTaken):
            return False
        record = taken.record
        self.received += 1
        if taken.duplicate:
            self.duplicates += 1
            event(
                log,
                logging.INFO,
                "duplicate_dropped",
                id=record.id,
                agent=record.agent,
                seq=record.seq,
                kind="alert" if record.is_alert else "health",
            )
            return False
        observation = taken.observation
        if observation is not None and observation.arrival is Arrival.RESET:
            event(
                log,
                logging.WARNING,
                "sequence_reset",
                site=record.site,
                agent=record.agent,
                seq=record.seq,
                previous_highest=observation.previous_highest,
                abandoned=observation.abandoned,
            )
        elif observation is not None and observation.arrival is Arrival.LATE:
            event(
                log,
                logging.INFO,
                "late_record",
                site=record.site,
                agent=record.agent,
                seq=record.seq,
                id=record.id,
            )
        if not record.is_alert:
            return False
        document = taken.document
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
                async with asyncio.timeout(timeout):  # not wait_for: see agent/publisher.py
                    await self.wake_worker.wait()

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
