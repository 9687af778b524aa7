"""The one MQTT client wrapper: paho-mqtt 2.x driven from asyncio.

paho runs the network loop in a thread of this wrapper's; its callbacks become asyncio futures and a
message queue. :meth:`MqttClient.publish` returns only after the broker's PUBACK (QoS 1), so a caller may
delete a record from its outbox when the call returns. Messages sent while the connection drops fail with
:class:`NotConnected`; the caller keeps them and sends them again after the reconnect (consumers drop
duplicates by message id). paho's own copies of unacknowledged messages are dropped at a disconnect, so
the caller's store stays the only source of resends.

The connection thread (not paho's auto-reconnect) owns connecting, so that it can:

- back off with jitter (doubling from :data:`RECONNECT_MIN_S` to :data:`RECONNECT_MAX_S`, each delay drawn
  from its upper half), so a site's agents do not reconnect in lockstep after a broker restart;
- report why a connection failed in words (TLS: "certificate verify failed: …", refused: "Bad user name or
  password");
- stop retrying when the broker refuses the credentials (retrying cannot help and slows the broker's
  authentication for everyone); :attr:`MqttClient.refused` says why, and the caller keeps buffering;
- speak MQTT 5 and fall back to 3.1.1 for a broker that does not offer it (then a publish the broker's ACL
  denies is acknowledged like any other: MQTT 3.1.1 has no reason codes, a warning says so).

On every connect the wrapper subscribes again and republishes the client's retained status.

Publishing more than 65,535 unacknowledged QoS 1 messages makes paho reuse message ids and lose messages
silently, so callers bound their in-flight window well below that (:data:`MAX_IN_FLIGHT`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import threading
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

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
"""Reconnect backoff: doubles from the minimum up to the cap; each delay is drawn from its upper half."""

CREDENTIALS_REFUSED = {134: "Bad user name or password", 135: "Not authorized"}
"""CONNACK reason codes after which retrying cannot help (MQTT 5; paho maps 3.1.1's 4 and 5 to these)."""
UNSUPPORTED_PROTOCOL = 132
"""CONNACK reason code of a broker that does not speak the requested protocol version."""


def reconnect_delay_s(attempt: int, *, rng: random.Random | None = None) -> float:
    """The delay before reconnect attempt ``attempt`` (0 = the first after a loss), in seconds.

    >>> [round(reconnect_delay_s(n, rng=random.Random(1)), 2) for n in range(7)]
    [0.57, 1.13, 2.27, 4.54, 9.07, 17.02, 17.02]
    """
    ceiling = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2**attempt)
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def describe_connect_error(error: BaseException) -> str:
    """Words for a failed connection attempt (TLS problems named as such)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate is not trusted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the broker running on that port?)"
    return f"{type(error).__name__}: {error}"


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


def _socket_write_is_the_loops_job(client: paho.Client, userdata: object, sock: object) -> None:
    """paho's external-loop hook, on purpose doing nothing (see :meth:`MqttClient._new_client`)."""


@dataclass
class _State:
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    last_error: str | None = None


class MqttClient:
    """An asyncio MQTT 5 client on top of paho-mqtt.

    Keyword-only options: ``will`` (last will), ``subscriptions`` (topic filters with QoS, renewed on every
    connect), ``status`` (a retained message republished on every connect), ``manual_ack`` (received QoS 1
    messages are acknowledged only when the caller calls :meth:`ack`, after it stored them),
    ``max_in_flight`` (unacknowledged publishes paho sends before it queues).
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
        self.will = will
        self.manual_ack = manual_ack
        self.max_in_flight = max_in_flight
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.protocol = paho.MQTTv5
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _State()
        self._pending: dict[int, _Pending] = {}
        self._acks: collections.deque[tuple[int, object]] = collections.deque()
        self._acks_scheduled = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused: str | None = None
        self._connected_once = False
        self._downgrade_requested = False
        self._client = self._new_client()

    def _new_client(self) -> paho.Client:
        settings = self.settings
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=self.protocol,
            clean_session=None if self.protocol == paho.MQTTv5 else not settings.persistent_session,
            manual_ack=self.manual_ack,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(self.max_in_flight)
        client.max_queued_messages_set(0)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            client.tls_set(
                ca_certs=settings.tls.ca_file,
                certfile=settings.tls.cert_file,
                keyfile=settings.tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, qos=self.will.qos, retain=self.will.retain)
        # Only the connection thread may touch the socket: paho writes a publish or an ack directly from
        # the calling thread unless it runs its own loop thread or an external loop is registered. Two
        # threads in one TLS session corrupt OpenSSL's state (glibc aborts with "corrupted double-linked
        # list"), so register a no-op: paho then queues the packet and wakes the loop, which writes it.
        client.on_socket_register_write = _socket_write_is_the_loops_job
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; returns at once (see :meth:`wait_connected`)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._connection_loop, name=f"mqtt-{self.settings.client_id}", daemon=True
        )
        self._thread.start()

    def _connect_once(self) -> None:
        properties = None
        clean: dict[str, bool] = {}
        if self.protocol == paho.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            if self.settings.persistent_session:
                properties.SessionExpiryInterval = self.settings.session_expiry_s
            clean["clean_start"] = not self.settings.persistent_session
        self._client.connect(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            properties=properties,
            **clean,
        )

    def _connection_loop(self) -> None:
        """Connect, run paho's network loop until the connection ends, back off, again (paho's thread)."""
        attempt = 0
        reported: str | None = None
        while not self._stopping.is_set():
            self._connected_once = False
            try:
                self._connect_once()
            except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
                why = describe_connect_error(error)
                self._state.last_error = why
                if why != reported:  # a changed reason is news; the same one again is not
                    reported = why
                    level = logging.ERROR if why.startswith("TLS") else logging.WARNING
                    event(
                        log,
                        level,
                        "mqtt_connect_failed",
                        client=self.settings.client_id,
                        broker=f"{self.settings.host}:{self.settings.port}",
                        reason=why,
                    )
            else:
                # loop() (unlike loop_forever()) sets up the socket pair that wakes this thread when
                # another thread queues a packet; it returns an error once the connection has ended
                while self._client.loop(timeout=1.0) == paho.MQTT_ERR_SUCCESS:
                    pass
                # paho resends unacknowledged messages itself after a reconnect; the caller's store
                # resends them already, so drop paho's copies
                self._client.drop_out_messages()
            if self._stopping.is_set() or self._refused is not None:
                break
            if self._downgrade_requested:
                self._downgrade_requested = False
                continue
            if self._connected_once:
                attempt = 0
                reported = None
            self._stopping.wait(reconnect_delay_s(attempt))
            attempt += 1

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected; ``False`` if ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: it can swallow a cancellation in 3.11
                await self._state.connected.wait()
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

    @property
    def refused(self) -> str | None:
        """Why the broker refused this client's credentials, if it did (then no more attempts are made)."""
        return self._refused

    async def stop(self, *, publish_offline: tuple[str, bytes] | None = None) -> None:
        """Disconnect cleanly (optionally after publishing a retained ``offline`` status)."""
        if publish_offline is not None and self.is_connected:
            try:
                async with asyncio.timeout(5):
                    await self.publish(*publish_offline, retain=True)
            except (MqttError, TimeoutError) as error:
                event(log, logging.WARNING, "offline_status_not_sent", reason=error)
        self._stopping.set()
        self._client.disconnect()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)

    def drop_connection(self, why: str) -> None:
        """Close the current connection (it will be made again after the backoff), e.g. when it stalls."""
        event(log, logging.WARNING, "mqtt_dropping_connection", client=self.settings.client_id, reason=why)
        self._client.disconnect()

    # --- publish / receive -----------------------------------------------------------------------

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Send now; the future completes at the broker's PUBACK (see :meth:`publish` for its errors).

        Raises :class:`NotConnected` at once if there is no connection.
        """
        if not self.is_connected:
            raise NotConnected(f"publish {topic}: not connected ({self._state.last_error or 'connecting'})")
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise NotConnected(f"publish {topic}: {paho.error_string(info.rc)}")
        if qos == 0:
            future.set_result(None)
        else:
            # PUBACKs reach this loop through call_soon_threadsafe, so none can be handled before
            # the future is registered here.
            self._pending[info.mid] = _Pending(future, topic)
        return future

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and return when the broker acknowledged it (QoS 1: PUBACK).

        Raises :class:`NotConnected` if there is no connection or it drops before the PUBACK, and
        :class:`PublishRefused` if the broker refuses the message with an MQTT 5 reason code.
        """
        await self.publish_nowait(topic, payload, qos=qos, retain=retain)

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
            code = getattr(reason, "value", None)
            if code == UNSUPPORTED_PROTOCOL and self.protocol == paho.MQTTv5:
                event(
                    log,
                    logging.WARNING,
                    "mqtt_v5_unsupported",
                    client=self.settings.client_id,
                    note="falling back to MQTT 3.1.1: publishes the broker's ACL denies look acknowledged",
                )
                self.protocol = paho.MQTTv311
                self._client = self._new_client()
                self._downgrade_requested = True
                return
            self._state.last_error = f"connection refused: {reason}"
            if code in CREDENTIALS_REFUSED:
                self._refused = f"{reason} (user {self.settings.username!r})"
                event(
                    log,
                    logging.ERROR,
                    "mqtt_credentials_refused",
                    client=self.settings.client_id,
                    user=self.settings.username,
                    reason=reason,
                    note="not retrying; fix the user or password and restart",
                )
            else:
                event(log, logging.ERROR, "mqtt_refused", client=self.settings.client_id, reason=reason)
            return
        self._state.last_error = None
        self._connected_once = True
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
            protocol="5" if self.protocol == paho.MQTTv5 else "3.1.1",
        )
        self._call(self._state.connected.set)

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if self._state.last_error is None or self._connected_once:
            self._state.last_error = f"disconnected: {reason}"
        if self._connected_once:
            level = logging.INFO if self._stopping.is_set() else logging.WARNING
            event(log, level, "mqtt_disconnected", client=self.settings.client_id, reason=reason)
        self._call(self._fail_pending, f"connection lost: {reason}")

    def _fail_pending(self, why: str) -> None:
        self._state.connected.clear()
        self._drain_acks()  # PUBACKs that came before the loss still count
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(NotConnected(f"publish {item.topic}: {why}"))

    def _on_publish(
        self, client: paho.Client, userdata: object, mid: int, reason: object, props: object
    ) -> None:
        # one wake-up of the event loop per burst of PUBACKs, not one per message
        self._acks.append((mid, reason))
        if not self._acks_scheduled:
            self._acks_scheduled = True
            self._call(self._drain_acks)

    def _drain_acks(self) -> None:
        self._acks_scheduled = False
        while self._acks:
            mid, reason = self._acks.popleft()
            item = self._pending.pop(mid, None)
            if item is None or item.future.done():
                continue
            if getattr(reason, "is_failure", False):
                item.future.set_exception(
                    PublishRefused(f"publish {item.topic}: refused by broker: {reason}")
                )
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
