"""The broker harness (:mod:`plantwatch.simulators.broker`, :mod:`plantwatch.simulators.pki`) against a real
Mosquitto running the shipped, locked-down configuration: TLS, passwords, client certificates, restarts."""

from __future__ import annotations

import socket
import ssl
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.reasoncodes import ReasonCode

from plantwatch.simulators import pki
from plantwatch.simulators.broker import (
    SYSTEMD_DIR,
    Broker,
    PlantError,
    find_mosquitto,
    find_mosquitto_passwd,
    shipped_acl,
    shipped_config,
)
from tests.conftest import wait_until

needs_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None or find_mosquitto_passwd() is None,
    reason="mosquitto and mosquitto_passwd are not installed (make setup installs them)",
)

PASSWORD = "correct horse battery staple"
USERS = {"press-3": PASSWORD, "gateway-site1": PASSWORD, "mes": PASSWORD}
TIMEOUT_S = 10.0


class Session:
    """A paho MQTT v5 client over TLS, driven by the test's own thread (no loop thread, so no automatic
    reconnect hides how a connection ended)."""

    def __init__(
        self,
        broker: Broker,
        user: str | None,
        password: str = PASSWORD,
        *,
        ca_file: Path | None = None,
        certificate: pki.IssuedCertificate | None = None,
    ) -> None:
        self._port = broker.port
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self._client.tls_set(
            ca_certs=str(ca_file or broker.ca_file),
            certfile=str(certificate.cert_file) if certificate else None,
            keyfile=str(certificate.key_file) if certificate else None,
        )
        if user is not None:
            self._client.username_pw_set(user, password)
        self.connack: ReasonCode | None = None
        self.closed: ReasonCode | None = None
        self.acks: dict[int, ReasonCode] = {}
        self.messages: dict[str, bytes] = {}
        self._client.on_connect = lambda _c, _u, _flags, reason, _p: setattr(self, "connack", reason)
        self._client.on_disconnect = lambda _c, _u, _flags, reason, _p: setattr(self, "closed", reason)
        self._client.on_publish = lambda _c, _u, mid, reason, _p: self.acks.__setitem__(mid, reason)
        self._client.on_subscribe = lambda _c, _u, mid, reasons, _p: self.acks.__setitem__(mid, reasons[0])
        self._client.on_message = lambda _c, _u, message: self.messages.__setitem__(
            message.topic, message.payload
        )

    def connect(self) -> None:
        """Connect (a TLS handshake error raises here) and wait for the CONNACK or the connection's end."""
        self._client.connect("127.0.0.1", self._port)
        self._wait(lambda: self.connack is not None or self.closed is not None, "a CONNACK or a close")

    @property
    def connected(self) -> bool:
        return self.connack is not None and not self.connack.is_failure and self.closed is None

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1; the PUBACK's reason."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        self._wait(lambda: info.mid in self.acks, f"the PUBACK of {topic}")
        return self.acks[info.mid]

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self._client.subscribe(topic_filter, qos=1)
        self._wait(lambda: mid in self.acks, f"the SUBACK of {topic_filter}")
        assert not self.acks[mid].is_failure, self.acks[mid]

    def wait_for_message(self, topic: str) -> bytes:
        self._wait(lambda: topic in self.messages, f"a message on {topic}")
        return self.messages[topic]

    def close(self) -> None:
        self._client.disconnect()

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        def pumped() -> bool:
            self._client.loop(timeout=0.05)  # waits up to 50 ms for the socket: this is the pause
            return condition()

        wait_until(pumped, timeout_s=TIMEOUT_S, what=what, poll_s=0.001)


def start(broker: Broker) -> Broker:
    broker.start()
    return broker


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto running the shipped configuration and ACL, with the accounts of ``USERS``."""
    broker = start(Broker(tmp_path / "broker", secure=True, users=USERS))
    yield broker
    broker.stop()


@pytest.fixture
def sessions(secure_broker: Broker) -> Iterator[Callable[..., Session]]:
    """Open sessions on ``secure_broker``; every one is closed after the test."""
    opened: list[Session] = []

    def open_session(user: str | None, password: str = PASSWORD, **tls: object) -> Session:
        session = Session(secure_broker, user, password, **tls)  # type: ignore[arg-type]
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


def log_has(broker: Broker, text: str) -> bool:
    return text in broker.log_file.read_text(errors="replace")


# --- the shipped configuration with passwords --------------------------------------------------------


@needs_mosquitto
def test_a_client_trusting_the_ca_with_the_right_password_connects(
    secure_broker: Broker, sessions: Callable[..., Session]
) -> None:
    session = sessions("press-3")
    session.connect()
    assert session.connected, (session.connack, session.closed)
    # the broker's connection line names the user who logged in
    wait_until(lambda: log_has(secure_broker, "u'press-3'"), timeout_s=TIMEOUT_S, what="the login in the log")


@needs_mosquitto
def test_a_wrong_password_is_refused_in_the_connack(sessions: Callable[..., Session]) -> None:
    session = sessions("press-3", "wrong password")
    session.connect()
    assert session.connack is not None, "the broker should answer a bad login with a CONNACK"
    # MQTT 5 has two reasons for this; Mosquitto 2.0 answers a failed password-file check with
    # "Not authorized" (0x87) and keeps "Bad user name or password" (0x86) for a bad client
    # certificate identity. Either is a refusal for the password, not a TLS or protocol failure.
    assert str(session.connack) in ("Bad user name or password", "Not authorized")
    assert not session.connected


@needs_mosquitto
def test_a_client_trusting_another_ca_fails_the_tls_handshake(
    tmp_path: Path, sessions: Callable[..., Session]
) -> None:
    stranger = pki.make_ca(tmp_path / "stranger", name="another throwaway CA")
    session = sessions("press-3", ca_file=stranger.cert_file)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        session.connect()
    assert session.connack is None


@needs_mosquitto
def test_the_broker_restarts_on_the_same_port_with_retained_messages_and_accounts(
    secure_broker: Broker, sessions: Callable[..., Session]
) -> None:
    topic = "plantwatch/v1/site1/press-3/status"
    agent = sessions("press-3")
    agent.connect()
    assert not agent.publish(topic, b'{"state": "online"}', retain=True).is_failure
    agent.close()
    port, ca_file = secure_broker.port, secure_broker.ca_file
    secure_broker.stop()
    assert secure_broker.process is None
    secure_broker.start()
    assert (secure_broker.port, secure_broker.ca_file) == (port, ca_file)
    gateway = sessions("gateway-site1")  # trusts the CA file read before the restart
    gateway.connect()
    assert gateway.connected, (gateway.connack, gateway.closed)
    gateway.subscribe("plantwatch/v1/site1/#")
    assert gateway.wait_for_message(topic) == b'{"state": "online"}'


@needs_mosquitto
def test_kill_is_a_crash_after_which_the_broker_starts_again(
    secure_broker: Broker, sessions: Callable[..., Session]
) -> None:
    process = secure_broker.process
    assert process is not None
    secure_broker.kill()
    assert process.returncode == -9 and secure_broker.process is None
    secure_broker.start()
    session = sessions("mes")
    session.connect()
    assert session.connected, (session.connack, session.closed)


@needs_mosquitto
def test_gateway_users_get_a_block_like_the_shipped_gateway(tmp_path: Path) -> None:
    users = {**USERS, "gateway-site2": PASSWORD}
    broker = start(Broker(tmp_path, secure=True, users=users, gateway_users={"gateway-site2": "site2"}))
    opened = []
    try:
        gateway, agent = Session(broker, "gateway-site2"), Session(broker, "press-3")
        opened = [gateway, agent]
        gateway.connect()
        agent.connect()
        # its own (retained) status, and not in another site
        assert not gateway.publish("plantwatch/v1/site2/gateway/gateway-site2/status", retain=True).is_failure
        assert str(gateway.publish("plantwatch/v1/site1/gateway/gateway-site2/status")) == "Not authorized"
        gateway.subscribe("plantwatch/v1/#")
        # One publisher, one subscriber: order is kept, so once the readable message (sent second)
        # has arrived, the unreadable one would have arrived before it.
        assert not agent.publish("plantwatch/v1/site1/press-3/pump-7/alert").is_failure
        assert not agent.publish("plantwatch/v1/site2/press-3/pump-7/alert").is_failure
        gateway.wait_for_message("plantwatch/v1/site2/press-3/pump-7/alert")
        assert sorted(gateway.messages) == [
            "plantwatch/v1/site2/gateway/gateway-site2/status",
            "plantwatch/v1/site2/press-3/pump-7/alert",
        ]
    finally:
        for session in opened:
            session.close()
        broker.stop()


# --- client certificates -----------------------------------------------------------------------------


@pytest.fixture
def certificate_broker(tmp_path: Path) -> Iterator[Broker]:
    """The shipped configuration with require_certificate turned on."""
    broker = start(Broker(tmp_path / "broker", secure=True, users=USERS, require_certificate=True))
    yield broker
    broker.stop()


@needs_mosquitto
def test_with_require_certificate_a_certificate_from_the_ca_lets_a_client_in(
    certificate_broker: Broker,
) -> None:
    session = Session(
        certificate_broker, "press-3", certificate=certificate_broker.issue_client_certificate("press-3")
    )
    try:
        session.connect()
        assert session.connected, (session.connack, session.closed)
    finally:
        session.close()


def refused_without_connack(session: Session) -> bool:
    """True if the connection ended in the TLS layer: the handshake failed (TLS 1.2: the client sees
    the alert at once) or the connection closed before any CONNACK (TLS 1.3: the server checks the
    client's certificate after the client considers the handshake done)."""
    try:
        session.connect()
    except ssl.SSLError:
        return True
    finally:
        session.close()
    return session.connack is None and session.closed is not None


@needs_mosquitto
def test_with_require_certificate_a_client_without_one_is_refused(certificate_broker: Broker) -> None:
    assert refused_without_connack(Session(certificate_broker, "press-3"))
    wait_until(
        lambda: log_has(certificate_broker, "peer did not return a certificate"),
        timeout_s=TIMEOUT_S,
        what="the broker to log the missing client certificate",
    )


@needs_mosquitto
def test_with_require_certificate_a_certificate_from_another_ca_is_refused(
    tmp_path: Path, certificate_broker: Broker
) -> None:
    stranger = pki.make_ca(tmp_path / "stranger", name="another throwaway CA")
    impostor = pki.issue(stranger, tmp_path / "stranger", "press-3", server=False)
    assert refused_without_connack(Session(certificate_broker, "press-3", certificate=impostor))


# --- start and configuration errors ------------------------------------------------------------------


@needs_mosquitto
def test_start_reports_the_log_tail_when_mosquitto_exits(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = Broker(tmp_path, port=squatter.getsockname()[1])
        with pytest.raises(PlantError, match="Address already in use"):
            broker.start()
    assert broker.process is not None and broker.process.poll() is not None


@needs_mosquitto
def test_a_running_broker_is_not_started_twice(secure_broker: Broker) -> None:
    process = secure_broker.process
    with pytest.raises(PlantError, match="running already"):
        secure_broker.start()
    assert secure_broker.process is process and process is not None and process.poll() is None


def test_the_plain_broker_refuses_options_of_the_secure_one(tmp_path: Path) -> None:
    with pytest.raises(PlantError, match="secure=True"):
        Broker(tmp_path, users=USERS)
    with pytest.raises(PlantError, match="no certificates"):
        _ = Broker(tmp_path).ca_file


def test_a_gateway_user_needs_a_password_and_an_id_of_the_naming_rule(tmp_path: Path) -> None:
    with pytest.raises(PlantError, match="no password"):
        Broker(tmp_path, secure=True, users=USERS, gateway_users={"gateway-site2": "site2"})
    with pytest.raises(PlantError, match="must start with 'gateway-'"):
        shipped_acl("", {"gw/site2": "site2"})
    with pytest.raises(PlantError, match="already has a block"):
        shipped_acl((SYSTEMD_DIR / "mosquitto.acl").read_text(), {"gateway-site1": "site1"})


def test_an_added_gateway_block_has_the_shape_of_the_shipped_one() -> None:
    shipped = (SYSTEMD_DIR / "mosquitto.acl").read_text()
    start = shipped.splitlines().index("user gateway-site1")
    block = shipped.splitlines()[start : start + 3]
    added = shipped_acl(shipped, {"gateway-north": "north"})
    assert added.startswith(shipped.rstrip("\n"))
    assert added.splitlines()[-3:] == [
        line.replace("gateway-site1", "gateway-north").replace("site1", "north") for line in block
    ]


def config_paths(tmp_path: Path) -> dict[str, Path]:
    names = ("cert_file", "key_file", "password_file", "acl_file", "persistence_dir")
    return {name: tmp_path / name for name in names}


def test_the_shipped_config_changes_only_installation_paths(tmp_path: Path) -> None:
    shipped = (SYSTEMD_DIR / "mosquitto.conf").read_text().splitlines()
    rendered = shipped_config("\n".join(shipped), port=1234, user="alice", **config_paths(tmp_path))
    changed = [(old, new) for old, new in zip(shipped, rendered.splitlines(), strict=False) if old != new]
    assert [new for _, new in changed] == [
        "listener 1234 127.0.0.1",
        f"certfile {tmp_path / 'cert_file'}",
        f"keyfile {tmp_path / 'key_file'}",
        f"password_file {tmp_path / 'password_file'}",
        f"acl_file {tmp_path / 'acl_file'}",
        f"persistence_location {tmp_path / 'persistence_dir'}/",
    ]
    assert rendered.splitlines()[len(shipped) :] == ["user alice"]


def test_the_shipped_config_must_have_each_replaced_line_once(tmp_path: Path) -> None:
    shipped = (SYSTEMD_DIR / "mosquitto.conf").read_text()
    for broken in (shipped.replace("listener 8883", "listener 1883"), shipped + "\nlistener 8883\n"):
        with pytest.raises(PlantError, match="'listener 8883' once"):
            shipped_config(broken, port=1234, user="alice", **config_paths(tmp_path))


def test_require_certificate_turns_on_in_the_listener_block(tmp_path: Path) -> None:
    shipped = (SYSTEMD_DIR / "mosquitto.conf").read_text()
    lines = shipped_config(
        shipped, port=1, user="alice", ca_file=tmp_path / "ca.crt", **config_paths(tmp_path)
    ).splitlines()
    at = lines.index("require_certificate true")
    assert lines[at + 1 : at + 3] == ["use_identity_as_username false", f"cafile {tmp_path / 'ca.crt'}"]
    assert "require_certificate false" not in lines
    assert lines.index("listener 1 127.0.0.1") < at < lines.index("# Security")


# --- certificates ------------------------------------------------------------------------------------


def test_issued_certificates_are_for_their_purpose_and_keys_are_private(tmp_path: Path) -> None:
    ca = pki.make_ca(tmp_path)
    server = pki.issue(ca, tmp_path, "server", server=True)
    client = pki.issue(ca, tmp_path, "press-3", server=False)
    for path in (ca.key_file, server.key_file, client.key_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    server_cert = x509.load_pem_x509_certificate(server.cert_file.read_bytes())
    client_cert = x509.load_pem_x509_certificate(client.cert_file.read_bytes())
    names = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert list(server_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert list(client_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert client_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "press-3"
    validity = server_cert.not_valid_after_utc - server_cert.not_valid_before_utc
    assert validity == pki.VALIDITY
    assert server_cert.issuer == x509.load_pem_x509_certificate(ca.cert_file.read_bytes()).subject


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_python_verifies_a_server_certificate_for_each_of_its_hosts_strictly(
    tmp_path: Path, host: str
) -> None:
    ca = pki.make_ca(tmp_path)
    server = pki.issue(ca, tmp_path, "server", server=True)
    client_context = ssl.create_default_context(cafile=str(ca.cert_file))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT  # the default of Python 3.13
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server.cert_file, server.key_file)
    handshake(client_context, server_context, host)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(client_context, server_context, "plant.example")


def handshake(client_context: ssl.SSLContext, server_context: ssl.SSLContext, host: str) -> None:
    """A TLS handshake between two in-memory ends (no sockets); raises what the client's check raises."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server, server_hostname=host)
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    pending = [client, server]
    for _ in range(10):  # TLS 1.3 needs two round trips; more means something is wrong
        for end in list(pending):
            try:
                end.do_handshake()
                pending.remove(end)
            except ssl.SSLWantReadError:
                pass
        if not pending:
            return
    raise AssertionError("the TLS handshake did not finish")


def test_a_certificate_name_cannot_leave_its_directory(tmp_path: Path) -> None:
    ca = pki.make_ca(tmp_path)
    with pytest.raises(ValueError, match="certificate name"):
        pki.issue(ca, tmp_path, "../escape", server=False)
