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
import os
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
    context_subscription,
    context_topic,
    decode_json_object,
    gateway_status_topic,
    health_subscription,
    parse_agent_status_topic,
    parse_context,
    parse_record,
    parse_record_topic,
)
from plantwatch.gateway import views
from plantwatch.gateway.api import ApiServer
from plantwatch.gateway.config import GatewaySettings, workflow_policy
from plantwatch.gateway.erp import ErpAdapter, ErpDocument, ErpError, NotificationUpdate
from plantwatch.gateway.events import EventBus
from plantwatch.gateway.policy import hold_request, notification_request
from plantwatch.gateway.resilience import Backoff, CircuitBreaker
from plantwatch.gateway.sequence import Arrival
from plantwatch.gateway.store import (
    AgentStatus,
    ContextIn,
    ContextTaken,
    DeadLetter,
    Document,
    GatewayStore,
    Incoming,
    NotFound,
    RecordIn,
    RecordTaken,
    StatusTaken,
    Taken,
)
from plantwatch.log import event
from plantwatch.mqtt import Message, MqttClient, RetainedStatus, Will
from plantwatch.runtime import keep_status_fresh, supervise

log = logging.getLogger("plantwatch.gateway")

CRASH_AFTER_ERP_CREATE = os.environ.get("PLANTWATCH_FAULT_INJECTION") == "crash-after-erp-create"
"""Tests set ``PLANTWATCH_FAULT_INJECTION=crash-after-erp-create`` to kill the gateway right after the ERP
created a document and before the ledger records it: the restart must find, not duplicate, it."""

BATCH_MAX_MESSAGES = 500
"""Messages stored in one transaction at most. A commit (an fsync with ``synchronous=FULL``) per message
caps a backlog drain at a few hundred records a second; one per batch lifts it to thousands, while a batch
stays short enough (tens of milliseconds) not to hold the ERP worker back."""


def parse_agent_status(site: str, agent: str, payload: bytes, *, retained: bool = False) -> AgentStatus:
    """What the gateway uses of agent ``agent``'s status payload; :class:`PayloadError` names a bad field.

    ``retained``: the broker's retained copy, delivered on (re)subscription (shown, confirms no gaps).

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
    models = {name: body.get(name) for name in ("model", "classifier")}
    summary = {
        "state": body.get("state") if body.get("state") in ("online", "offline") else "unknown",
        "ts": body.get("ts") if isinstance(body.get("ts"), str) else None,
        "buffered_records": fields["buffered_records"],
        "buffer_percent": buffer.get("percent") if isinstance(buffer, dict) else None,
        **{name: value if isinstance(value, dict) else None for name, value in models.items()},
        "assets": body.get("assets") if isinstance(body.get("assets"), dict) else {},
    }
    return AgentStatus(site, agent, **fields, summary=summary, retained=retained)


def make_adapter(settings: GatewaySettings) -> ErpAdapter:
    """The configured ERP adapter, with its password (or webhook secret) from credentials or the environment."""
    erp = settings.erp
    password = secret("erp-password", env="PLANTWATCH_ERP_PASSWORD") or ""
    if erp.kind == "tryton":
        from plantwatch.gateway.tryton import TrytonAdapter

        return TrytonAdapter(
            base_url=erp.base_url,
            database=erp.database,
            user=erp.user,
            password=password,
            timeout_s=erp.timeout_s,
        )
    if erp.kind == "webhook":
        from plantwatch.gateway.webhook import WebhookAdapter

        return WebhookAdapter(erp.base_url, secret=password.encode(), timeout_s=erp.timeout_s)
    from plantwatch.gateway.sap import SapAdapter

    return SapAdapter(
        base_url=erp.base_url,
        user=erp.user,
        password=password,
        timeout_s=erp.timeout_s,
        notification_type=erp.notification_type,
        hold_method=erp.hold_method,
        create_order=erp.create_order,
    )


def shared(topic: str, group: str) -> str:
    """``topic`` as an MQTT 5 shared subscription of ``group`` (unchanged when ``group`` is empty)."""
    return f"$share/{group}/{topic}" if group else topic


class GatewayService:
    """Runs one gateway until it is stopped."""

    def __init__(
        self, settings: GatewaySettings, *, clock: Clock | None = None, adapter: ErpAdapter | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.adapter = adapter or make_adapter(settings)
        self.store = GatewayStore(
            Path(settings.state_dir) / "gateway.sqlite",
            health_retention_s=settings.inbox.health_retention_s,
            policy=workflow_policy(settings),
            erp=self.adapter.name,
        )
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway")
        self.status_topic = gateway_status_topic(settings.site, settings.gateway_id)
        self.erp_reachable: bool | None = None
        self.breaker = CircuitBreaker(
            failure_threshold=settings.erp.breaker_failures, reset_after_s=settings.erp.breaker_reset_s
        )
        self.backoff = Backoff(settings.erp.retry_initial_s, settings.erp.retry_max_s)
        self._dead_letters = self.store.dead_letter_count()
        self.received = 0
        self.duplicates = 0
        site, group = settings.site, settings.shared_group
        self.client = MqttClient(
            # a persistent session: records sent while the gateway is down wait for it at the broker
            settings.mqtt.broker_settings(
                f"plantwatch-gateway-{settings.site}-{settings.gateway_id}", persistent_session=True
            ),
            will=Will(self.status_topic, self._status_payload("offline")),
            status=RetainedStatus(self.status_topic, lambda: self._status_payload("online")),
            subscriptions=[
                (shared(alert_subscription(site), group), 1),
                (shared(health_subscription(site), group), 1),
                (shared(agent_status_subscription(site), group), 1),
                # every gateway needs every lot's context to hold what ran during an excursion
                (context_subscription(site), 1),
            ],
            manual_ack=True,
        )
        self.api: ApiServer | None = None
        self.events = EventBus(self._render)
        self.wake_worker = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
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
            "erp_circuit": self.breaker.state,
            "dead_letters": self._dead_letters,
            "duplicates_dropped": self.duplicates,
            "sequence_gaps": self.store.sequence_gaps(self.settings.site),
            "open_holes": self.store.open_holes(self.settings.site),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def stop(self) -> None:
        """Ask the service to stop."""
        self._stop.set()

    def wake(self) -> None:
        """Wake the ERP worker (from any thread): something became due."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.wake_worker.set)

    def counters(self) -> dict[str, object]:
        """What the API's status shows."""
        return {
            "gateway": self.settings.gateway_id,
            "erp": self.adapter.name,
            "erp_reachable": self.erp_reachable,
            "erp_circuit": self.breaker.state,
            "received": self.received,
            "duplicates_dropped": self.duplicates,
            "documents": self.store.counts(),
        }

    def replay_message(self, topic: str, payload: bytes) -> str:
        """Take a dead-lettered MQTT message again (from the API's thread); what became of it."""
        message = Message(topic=topic, payload=payload, qos=1, retain=False, mid=0)
        item = self._incoming(message)
        if self._take_items([item]):
            self.wake()
        return f"dead letter again: {item.reason}" if isinstance(item, DeadLetter) else "taken"

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
        self._loop = asyncio.get_running_loop()
        if self.settings.api.port:
            self.api = ApiServer(
                self.store,
                site=self.settings.site,
                clock=self.clock,
                host=self.settings.api.listen,
                port=self.settings.api.port,
                changed=self.wake,
                replay_message=self.replay_message,
                status=self.counters,
                events=self.events,
                tls=self.settings.api.tls_context(),
                secure_cookies=self.settings.api.secure_cookies,
            )
            self.api.start()
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
        if self.api is not None:
            self.api.stop()
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
        """Store a batch of messages in one transaction; True if a document became due for the ERP."""
        return self._take_items([self._incoming(message) for message in messages])

    def _take_items(self, items: list[Incoming]) -> bool:
        results = self.store.take(items, now_s=self.clock.now())
        self._publish(results)
        due = False
        for item, taken in zip(items, results, strict=True):
            if isinstance(item, DeadLetter):
                self._dead_letters += 1
                event(log, logging.WARNING, "dead_letter", topic=item.topic, reason=item.reason)
            elif isinstance(taken, ContextTaken):
                event(
                    log,
                    logging.INFO,
                    "production_context",
                    asset=taken.context.asset,
                    order=taken.context.production_order or "-",
                    lot=taken.context.lot or "-",
                    since=taken.context.since,
                    holds_due=len(taken.due),
                )
                due = due or bool(taken.due)
            else:
                due = self._report(taken) or due
        return due

    def _incoming(self, message: Message) -> Incoming:
        """What a message is for the store."""
        kind = message.topic.rsplit("/", 1)[-1]
        try:
            if kind == "context":
                context = parse_context(message.payload)
                if message.topic != context_topic(context.site, context.asset):
                    raise PayloadError(
                        f"topic {message.topic!r} does not match payload site/asset {context.site}/{context.asset}"
                    )
                return ContextIn(context)
            if kind == "status":
                site, agent = parse_agent_status_topic(message.topic)
                # a retained copy comes on (re)subscription, perhaps ahead of records still queued for
                # this session: it is shown, not used to confirm gaps
                return parse_agent_status(site, agent, message.payload, retained=message.retain)
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
        return RecordIn(record)

    def _publish(self, results: list[Taken]) -> None:
        """Tell open web pages what the batch changed: each asset, agent and document once."""
        if not self.events.listening:
            return
        changed: dict[tuple[str, str], None] = {}
        for taken in results:
            if isinstance(taken, RecordTaken) and not taken.duplicate:
                changed[("asset", f"{taken.record.site}/{taken.record.asset}")] = None
            elif isinstance(taken, StatusTaken):
                changed[("agent", f"{taken.status.site}/{taken.status.agent}")] = None
            if isinstance(taken, RecordTaken | ContextTaken):
                changed.update((("document", cid), None) for cid in taken.due)
        for kind, key in changed:
            self.events.publish(kind, key)

    def _render(self, kind: str, key: str) -> dict[str, object] | None:
        """The data of a live update (the event bus calls this for :meth:`_publish`'s keys)."""
        if kind == "document":
            try:
                return self.store.document(key).as_dict()
            except NotFound:
                return None
        site, _, name = key.partition("/")
        if kind == "asset":
            return views.fleet_row(self.store, site, name)
        return views.agent(self.store, site, name)

    def _report(self, taken: Taken) -> bool:
        """Count and log what became of a record or status; True if a document became due for the ERP."""
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
        if record.is_alert:
            event(
                log,
                logging.INFO,
                "alert_received",
                asset=record.asset,
                state=record.state,
                failure_mode=record.failure_mode,
                seq=record.seq,
                id=record.id,
                due=",".join(taken.due) or "-",
            )
        return bool(taken.due)

    # --- the ERP worker ----------------------------------------------------------------------------

    async def _erp_worker(self) -> None:
        """Create due documents, send due updates, read open ones back; one ERP call at a time."""
        loop = asyncio.get_running_loop()
        interval = self.settings.erp.feedback_interval_s
        next_feedback = self.clock.now()
        while True:
            self.wake_worker.clear()
            now = self.clock.now()
            work: list[tuple[str, Document]] = []
            retry_at = self.breaker.retry_at()
            if retry_at is None or now >= retry_at:  # allow() below makes the first call the trial
                work += [
                    ("create", d)
                    for d in await loop.run_in_executor(self.executor, self.store.due_documents, now)
                ]
                work += [
                    ("update", d)
                    for d in await loop.run_in_executor(self.executor, self.store.due_updates, now)
                ]
                if now >= next_feedback:
                    feedback = await loop.run_in_executor(
                        self.executor, self.store.due_feedback, now, interval
                    )
                    work += [("read", d) for d in feedback]
                    next_feedback = now + min(interval, 60.0)
            for action, document in work:
                if not self.breaker.allow(self.clock.now()):
                    break
                await loop.run_in_executor(self.executor, self._call, action, document)
            next_due = await loop.run_in_executor(self.executor, self.store.next_due_at)
            now = self.clock.now()
            wake_at = min(t for t in (next_due, next_feedback, self.breaker.retry_at()) if t is not None)
            timeout = max(0.05, wake_at - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # not wait_for: see agent/publisher.py
                    await self.wake_worker.wait()

    def _call(self, action: str, document: Document) -> None:
        """One ERP call for ``document``; failures are classified, retried, dead-lettered."""
        try:
            self._erp_call(action, document)
        finally:
            self.events.publish("document", document.correlation_id)

    def _erp_call(self, action: str, document: Document) -> None:
        try:
            if action == "create":
                result = self._create(document)
            elif action == "update":
                result = self._update(document)
            else:
                result = self._read(document)
        except ErpError as error:
            self._failed(action, document, error)
            return
        except Exception as error:  # noqa: BLE001 - a bug in an adapter must not stop the gateway
            log.exception("erp_call_crashed action=%s correlation_id=%s", action, document.correlation_id)
            self._failed(action, document, ErpError(self.adapter.name, repr(error), retryable=True))
            return
        self.breaker.success(self.clock.now())
        self.erp_reachable = True
        if action == "create":
            if CRASH_AFTER_ERP_CREATE:
                # fault injection for the tests: die between the ERP's answer and the ledger's write
                os._exit(9)
            # the ledger's time is when the ERP answered
            self.store.document_created(
                document, number=result.number, found_existing=not result.created, now_s=self.clock.now()
            )
            event(
                log,
                logging.WARNING,
                f"{document.kind}_{'created' if result.created else 'found'}",
                number=result.number,
                asset=document.asset,
                failure_mode=document.failure_mode,
                correlation_id=document.correlation_id,
                order=document.production_order or "-",
                lot=document.lot or "-",
            )

    def _create(self, document: Document) -> ErpDocument:
        record = self.store.opening_record(document)
        if document.kind == "notification":
            request = notification_request(
                record,
                correlation_id=document.correlation_id,
                severity=document.severity,
                priority=document.priority,
            )
            return self.adapter.create_notification(request)
        context = self.store.production_context(document)
        excursion = self.store.excursion(document)
        if context is None or excursion is None:
            raise ErpError("plantwatch", f"hold {document.correlation_id}: its production context is gone")
        hold = hold_request(
            record, correlation_id=document.correlation_id, context=context, excursion=excursion
        )
        return self.adapter.create_hold(hold)

    def _update(self, document: Document) -> ErpDocument:
        assert document.number is not None
        note = document.update_note
        update = NotificationUpdate(
            number=document.number,
            correlation_id=document.correlation_id,
            priority=document.priority,
            note=note or f"{rfc3339(self.clock.now())}: priority {document.priority}",
        )
        result = self.adapter.update_notification(update)
        self.store.update_sent(document, note=note, priority=document.priority, now_s=self.clock.now())
        event(
            log,
            logging.INFO,
            "notification_updated",
            number=document.number,
            correlation_id=document.correlation_id,
            priority=document.priority,
        )
        return result

    def _read(self, document: Document) -> ErpDocument:
        assert document.number is not None
        result = self.adapter.read_notification(document.number)
        if self.store.feedback_read(
            document, status=result.status, outcome=result.outcome, now_s=self.clock.now()
        ):
            event(
                log,
                logging.WARNING,
                "notification_closed",
                number=document.number,
                correlation_id=document.correlation_id,
                outcome=result.outcome or "-",
            )
        return result

    def _failed(self, action: str, document: Document, error: ErpError) -> None:
        now = self.clock.now()
        if error.retryable:
            self.breaker.failure(now)
            self.erp_reachable = error.status is not None and error.status < 500 and error.status != 429
            delay = self.backoff.delay(document.attempts, error.retry_after_s)
            if action == "create":
                self.store.document_retry(document, error=str(error), next_attempt_at=now + delay, now_s=now)
            elif action == "update":
                self.store.update_retry(document, error=str(error), next_attempt_at=now + delay)
            event(
                log,
                logging.WARNING,
                "erp_retry",
                action=action,
                correlation_id=document.correlation_id,
                attempt=document.attempts + 1,
                delay_s=round(delay, 2),
                circuit=self.breaker.state,
                reason=error,
            )
            return
        self.breaker.success(now)  # the ERP answered: it is up, it refused this one
        self.erp_reachable = True
        if action == "create":
            self.store.document_failed(document, error=str(error), now_s=now)
            self._dead_letters += 1
            event(log, logging.ERROR, "erp_refused", correlation_id=document.correlation_id, reason=error)
        elif action == "update":
            self.store.update_retry(
                document, error=str(error), next_attempt_at=now + self.settings.erp.retry_max_s
            )
        if action != "create":
            event(
                log,
                logging.ERROR,
                f"erp_{action}_refused",
                correlation_id=document.correlation_id,
                reason=error,
            )
