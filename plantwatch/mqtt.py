"""The one MQTT client wrapper: paho-mqtt 2.x driven from asyncio.

paho runs its network loop in its own thread; this wrapper turns its callbacks into asyncio futures and a
message queue. :meth:`MqttClient.publish` returns only after the broker's PUBACK (QoS 1), so a caller may
delete a record from its outbox when the call returns. Messages sent while the connection drops fail with
:class:`NotConnected`; the caller keeps them and sends them again after the reconnect (consumers drop
duplicates by message id). paho reconnects by itself with a capped backoff; on every connect the wrapper
subscribes again and republishes the client's retained status.

Publishing more than 65,535 unacknowledged QoS 1 messages makes paho reuse message ids and lose messages
silently, so callers bound their in-flight window well below that (:data:`MAX_IN_FLIGHT`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from plantwatch.log import event

log = logging.getLogger("plantwatch.mqtt")

MAX_IN_FLIGHT = 1000
"""Upper bound of unacknowledged QoS 1 publishes; far below paho's 65,535 message-id wrap."""

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
"""paho's reconnect backoff: doubles from the minimum up to the cap."""


class MqttError(Exception):
    """An MQTT operation that failed; ``str()`` says the operation and the reason."""


class NotConnected(MqttError):
    """The client is not connected (or lost the connection before the PUBACK came)."""


class PublishRefused(MqttError):
    """The broker answered a publish with an MQTT 5 failure reason code (e.g. not authorized)."""


@dataclass(frozen=True)
class Will:
    """The last will the broker publishes if the client vanishes."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class TLSParameters:
    """TLS to the broker: the CA that signed its certificate, and optionally a client certificate."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class BrokerSettings:
    """Where and how to connect."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    tls: TLSParameters | None = None
    persistent_session: bool = False
    """Keep the session (subscriptions, queued QoS 1 messages) across disconnects: gateways need it."""
    session_expiry_s: int = 7 * 24 * 3600


@dataclass(frozen=True)
class Message:
    """A message received on a subscription; pass it to :meth:`MqttClient.ack` once it is stored."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


@dataclass
class _Pending:
    future: asyncio.Future[None]
    topic: str


@dataclass
class RetainedStatus:
    """A retained message published again on every connect (e.g. the ``online`` status)."""

    topic: str
    payload: Callable[[], bytes]
    qos: int = 1


@dataclass
class _State:
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    last_error: str | None = None


class MqttClient:
    """An asyncio MQTT 5 client on top of paho-mqtt.

    Keyword-only options: ``will`` (last will), ``subscriptions`` (topic filters with QoS, renewed on every
    connect), ``status`` (a retained message republished on every connect), ``manual_ack`` (received QoS 1
    messages are acknowledged only when the caller calls :meth:`ack`, after it stored them).
    """

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        will: Will | None = None,
        subscriptions: list[tuple[str, int]] | None = None,
        status: RetainedStatus | None = None,
        manual_ack: bool = False,
        max_in_flight: int = 100,
    ) -> None:
        if not 0 < max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(f"max_in_flight must be 1..{MAX_IN_FLIGHT}")
        self.settings = settings
        self.subscriptions = list(subscriptions or [])
        self.status = status
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _State()
        self._pending: dict[int, _Pending] = {}
        self._stopping = False
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5,
            manual_ack=manual_ack,
        )
        self._client.max_inflight_messages_set(max_in_flight)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            self._client.tls_set(
                ca_certs=settings.tls.ca_file,
                certfile=settings.tls.cert_file,
                keyfile=settings.tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; returns at once (see :meth:`wait_connected`)."""
        self._loop = asyncio.get_running_loop()
        properties = Properties(PacketTypes.CONNECT)
        if self.settings.persistent_session:
            properties.SessionExpiryInterval = self.settings.session_expiry_s
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=not self.settings.persistent_session,
            properties=properties,
        )
        self._client.loop_start()

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected; ``False`` if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._state.connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    @property
    def is_connected(self) -> bool:
        """True while a connection is up."""
        return self._state.connected.is_set()

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt or connection failed, if it did."""
        return self._state.last_error

    async def stop(self, *, publish_offline: tuple[str, bytes] | None = None) -> None:
        """Disconnect cleanly (optionally after publishing a retained ``offline`` status)."""
        if publish_offline is not None and self.is_connected:
            try:
                await asyncio.wait_for(self.publish(*publish_offline, retain=True), 5)
            except (MqttError, TimeoutError) as error:
                event(log, logging.WARNING, "offline_status_not_sent", reason=error)
        self._stopping = True
        self._client.disconnect()
        await asyncio.get_running_loop().run_in_executor(None, self._client.loop_stop)

    # --- publish / receive -----------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and return when the broker acknowledged it (QoS 1: PUBACK).

        Raises :class:`NotConnected` if there is no connection or it drops before the PUBACK, and
        :class:`PublishRefused` if the broker refuses the message with an MQTT 5 reason code.
        """
        if not self.is_connected:
            raise NotConnected(f"publish {topic}: not connected ({self._state.last_error or 'connecting'})")
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise NotConnected(f"publish {topic}: {paho.error_string(info.rc)}")
        if qos == 0:
            return
        # paho's PUBACK callback reaches this loop through call_soon_threadsafe, so it cannot run
        # before the future is registered here.
        self._pending[info.mid] = _Pending(future, topic)
        await future

    def ack(self, message: Message) -> None:
        """Acknowledge a received message (with ``manual_ack``): the broker may now forget it."""
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)

    # --- paho callbacks (paho's thread) ----------------------------------------------------------

    def _call(self, function: Callable[..., object], *args: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(function, *args)

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self._state.last_error = f"connection refused: {reason}"
            event(log, logging.ERROR, "mqtt_refused", client=self.settings.client_id, reason=reason)
            return
        self._state.last_error = None
        for topic_filter, qos in self.subscriptions:
            client.subscribe(topic_filter, qos=qos)
        if self.status is not None:
            client.publish(self.status.topic, self.status.payload(), qos=self.status.qos, retain=True)
        event(
            log,
            logging.INFO,
            "mqtt_connected",
            client=self.settings.client_id,
            broker=f"{self.settings.host}:{self.settings.port}",
        )
        self._call(self._state.connected.set)

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._state.last_error = f"disconnected: {reason}"
        level = logging.INFO if self._stopping else logging.WARNING
        event(log, level, "mqtt_disconnected", client=self.settings.client_id, reason=reason)
        self._call(self._fail_pending, f"connection lost: {reason}")

    def _fail_pending(self, why: str) -> None:
        self._state.connected.clear()
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(NotConnected(f"publish {item.topic}: {why}"))

    def _on_publish(
        self, client: paho.Client, userdata: object, mid: int, reason: object, props: object
    ) -> None:
        self._call(self._resolve, mid, reason)

    def _resolve(self, mid: int, reason: object) -> None:
        item = self._pending.pop(mid, None)
        if item is None or item.future.done():
            return
        if getattr(reason, "is_failure", False):
            item.future.set_exception(PublishRefused(f"publish {item.topic}: refused by broker: {reason}"))
        else:
            item.future.set_result(None)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        received = Message(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            mid=message.mid,
        )
        self._call(self.messages.put_nowait, received)
