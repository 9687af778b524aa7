"""The shipped systemd units, Mosquitto configuration and ACL, checked by the tools that read them.

``systemd-analyze verify`` checks the units where it exists; the ACL is checked twice: against an
offline model of Mosquitto's rules (always), and on a real Mosquitto started with the shipped
``mosquitto.conf`` and ``mosquitto.acl`` (where mosquitto and mosquitto_passwd exist; the
certificates are made in Python).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plantwatch.simulators.broker import Broker, find_mosquitto, find_mosquitto_passwd

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
PARTS = ["agent", "gateway"]
BINARY_DIR = "/opt/plantwatch/.venv/bin"

Unit = dict[str, list[tuple[str, str]]]


def read_unit(path: Path) -> Unit:
    """Sections of a unit file as lists of (key, value), keeping repeated keys in order."""
    unit: Unit = {}
    section: list[tuple[str, str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: continuation lines are not expected"
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), [])
            continue
        assert section is not None, f"{path.name}:{number}: setting outside a section"
        key, separator, value = line.partition("=")
        assert separator, f"{path.name}:{number}: not a key=value line: {line!r}"
        section.append((key.strip(), value.strip()))
    return unit


def settings(part: str, section: str = "Service") -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in read_unit(SYSTEMD_DIR / f"plantwatch-{part}.service")[section]:
        values.setdefault(key, []).append(value)
    return values


# --- systemd-analyze -----------------------------------------------------------------------------

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def verify(unit_path: Path) -> str:
    """What ``systemd-analyze verify`` says about the unit itself (dependencies' problems left out)."""
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", str(unit_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 or output, "verify failed without saying why"
    return output


def with_runnable_binary(part: str, directory: Path) -> Path:
    """A copy of the unit whose commands run /bin/true: verify refuses a command that is not installed
    (``Command ... is not executable``), and plantwatch is not installed in /opt on a build machine."""
    name = f"plantwatch-{part}.service"
    text = (SYSTEMD_DIR / name).read_text()
    binary = f"{BINARY_DIR}/plantwatch-{part}"
    assert text.count(binary) == 2, "ExecStartPre and ExecStart should run the one installed binary"
    copy = directory / name
    copy.write_text(text.replace(binary, shutil.which("true") or "/bin/true"))
    return copy


@needs_systemd_analyze
@pytest.mark.parametrize("part", PARTS)
def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(part: str, tmp_path: Path) -> None:
    assert verify(with_runnable_binary(part, tmp_path)) == ""


@needs_systemd_analyze
def test_verify_reports_a_misspelt_key_so_the_check_above_means_something(tmp_path: Path) -> None:
    unit = with_runnable_binary("agent", tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "ProtectSytem" in verify(unit)


# --- unit contents -------------------------------------------------------------------------------

HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "true",
    "PrivateTmp": "true",
    "NoNewPrivileges": "true",
    "ProtectKernelTunables": "true",
    "ProtectKernelModules": "true",
    "ProtectControlGroups": "true",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "LockPersonality": "true",
    "CapabilityBoundingSet": "",
    "SystemCallArchitectures": "native",
    "DynamicUser": "yes",
    "Restart": "on-failure",
    "ConfigurationDirectory": "plantwatch",
}


@pytest.mark.parametrize("part", PARTS)
def test_units_are_hardened_and_unprivileged(part: str) -> None:
    service = settings(part)
    for key, value in HARDENING.items():
        assert service.get(key) == [value], f"plantwatch-{part}.service: {key}"
    assert service["SystemCallFilter"][0] == "@system-service"
    assert "User" not in service  # a dynamic, unprivileged user
    assert len(service["MemoryDenyWriteExecute"]) == 1  # decided explicitly, one way or the other
    assert service["StateDirectory"] == [f"plantwatch-{part}"]


@pytest.mark.parametrize("part", PARTS)
def test_the_configuration_is_checked_before_the_service_starts(part: str) -> None:
    service = settings(part)
    command = f"{BINARY_DIR}/plantwatch-{part} --config /etc/plantwatch/{part}.toml"
    assert service["ExecStartPre"] == [f"{command} --check-config"]
    assert service["ExecStart"] == [command]


def test_the_agent_may_open_serial_ports_and_nothing_else_of_the_hardware() -> None:
    service = settings("agent")
    assert service["SupplementaryGroups"] == ["dialout"]
    assert service["DevicePolicy"] == ["closed"]
    assert service["DeviceAllow"] == ["char-ttyUSB rw", "char-ttyACM rw"]
    assert service["LoadCredential"] == ["mqtt-password:/etc/plantwatch/credentials/agent-mqtt-password"]


def test_the_gateway_gets_its_broker_and_erp_secrets_as_credentials() -> None:
    service = settings("gateway")
    assert service["LoadCredential"] == [
        "mqtt-password:/etc/plantwatch/credentials/gateway-mqtt-password",
        "erp-password:/etc/plantwatch/credentials/gateway-erp-password",
    ]
    assert service["PrivateDevices"] == ["true"]
    assert service["MemoryDenyWriteExecute"] == ["true"]


def test_shipped_files_name_no_path_of_the_machine_they_were_written_on() -> None:
    checkout = str(SYSTEMD_DIR.parent)
    for path in SYSTEMD_DIR.iterdir():
        assert checkout not in path.read_text(), f"{path.name} names this checkout ({checkout})"


# --- the ACL, offline --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acl:
    anonymous: list[tuple[str, str]]
    users: dict[str, list[tuple[str, str]]]
    patterns: list[tuple[str, str]]


def parse_acl(text: str) -> Acl:
    """Mosquitto's acl_file format: ``user NAME``, ``topic [ACCESS] TOPIC``, ``pattern [ACCESS] TOPIC``."""
    anonymous: list[tuple[str, str]] = []
    users: dict[str, list[tuple[str, str]]] = {}
    patterns: list[tuple[str, str]] = []
    current = anonymous
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "user":
            current = users.setdefault(rest.strip(), [])
            continue
        assert keyword in ("topic", "pattern"), f"line {number}: unknown keyword {keyword!r}"
        words = rest.split(" ", 1)
        access, topic = (words[0], words[1]) if len(words) == 2 else ("readwrite", words[0])
        assert access in ("read", "write", "readwrite", "deny"), f"line {number}: access {access!r}"
        (patterns if keyword == "pattern" else current).append((access, topic.strip()))
    return Acl(anonymous, users, patterns)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching (``+`` one level, ``#`` the rest)."""
    filter_levels, levels = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(filter_levels) == len(levels)


def acl_allows(acl: Acl, user: str, access: str, topic: str) -> bool:
    """Mosquitto 2's acl_file decision: denials first, then the user's lines, then the patterns."""
    rules = acl.users.get(user, []) + [(a, t.replace("%u", user)) for a, t in acl.patterns]
    if any(a == "deny" and topic_matches(t, topic) for a, t in rules):
        return False
    return any(a in (access, "readwrite") and topic_matches(t, topic) for a, t in rules)


ACL = parse_acl((SYSTEMD_DIR / "mosquitto.acl").read_text())

# (user, topic, may write) — the wire contract of DESIGN.md
WRITES = [
    ("press-3", "plantwatch/v1/site1/press-3/pump-7/health", True),
    ("press-3", "plantwatch/v1/site1/press-3/pump-7/alert", True),
    ("press-3", "plantwatch/v1/site1/press-3/status", True),
    ("press-3", "plantwatch/v1/site1/press-4/pump-7/alert", False),
    ("press-3", "plantwatch/v1/site1/press-3x/status", False),
    ("press-3", "plantwatch/v1/site1/mes/pump-7/context", False),
    ("press-3", "plantwatch/v1/site1/gateway/gateway-site1/status", False),
    ("press-3", "plantwatch/v2/site1/press-3/status", False),
    ("gateway-site1", "plantwatch/v1/site1/gateway/gateway-site1/status", True),
    ("gateway-site1", "plantwatch/v1/site1/gateway/gateway-site2/status", False),
    ("gateway-site1", "plantwatch/v1/site2/gateway/gateway-site1/status", False),
    ("gateway-site1", "plantwatch/v1/site1/press-3/pump-7/alert", False),
    ("gateway-site1", "plantwatch/v1/site1/mes/pump-7/context", False),
    ("mes", "plantwatch/v1/site1/mes/pump-7/context", True),
    ("mes", "plantwatch/v1/site2/mes/pump-7/context", True),
    ("mes", "plantwatch/v1/site1/press-3/pump-7/alert", False),
    ("mes", "plantwatch/v1/site1/gateway/gateway-site1/status", False),
]

# (user, topic, may read)
READS = [
    ("gateway-site1", "plantwatch/v1/site1/press-3/pump-7/alert", True),
    ("gateway-site1", "plantwatch/v1/site1/press-3/status", True),
    ("gateway-site1", "plantwatch/v1/site1/mes/pump-7/context", True),
    ("gateway-site1", "plantwatch/v1/site2/press-3/pump-7/alert", False),
    ("press-3", "plantwatch/v1/site1/press-4/pump-7/alert", False),
    ("press-3", "plantwatch/v1/site1/press-3/pump-7/alert", False),
    ("mes", "plantwatch/v1/site1/press-3/pump-7/alert", False),
]


def test_the_acl_has_the_agent_pattern_and_no_anonymous_rules() -> None:
    assert ("write", "plantwatch/v1/+/%u/#") in ACL.patterns
    assert ACL.patterns == [("write", "plantwatch/v1/+/%u/#")]
    assert ACL.anonymous == []


def test_gateway_users_read_their_site_and_write_only_their_status() -> None:
    gateways = {user: rules for user, rules in ACL.users.items() if user.startswith("gateway-")}
    assert gateways
    for user, rules in gateways.items():
        writes = [topic for access, topic in rules if access != "read"]
        sites = {topic.split("/")[2] for access, topic in rules if access == "read"}
        assert all(access in ("read", "write") for access, _ in rules)
        assert writes == [f"plantwatch/v1/{site}/gateway/{user}/status" for site in sorted(sites)]
        assert sorted(topic for access, topic in rules if access == "read") == [
            f"plantwatch/v1/{site}/#" for site in sorted(sites)
        ]
    assert ACL.users["mes"] == [("write", "plantwatch/v1/+/mes/+/context")]


@pytest.mark.parametrize(("user", "topic", "allowed"), WRITES)
def test_acl_model_write(user: str, topic: str, allowed: bool) -> None:
    assert acl_allows(ACL, user, "write", topic) is allowed


@pytest.mark.parametrize(("user", "topic", "allowed"), READS)
def test_acl_model_read(user: str, topic: str, allowed: bool) -> None:
    assert acl_allows(ACL, user, "read", topic) is allowed


# --- the shipped configuration on a real Mosquitto -------------------------------------------------

PASSWORD = "correct horse battery staple"
USERS = ["press-3", "gateway-site1", "mes"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Mosquitto running the shipped mosquitto.conf and mosquitto.acl, with only the paths that belong
    to an installation (certificates, password file, persistence, port) moved to a temporary directory
    (see :class:`plantwatch.simulators.broker.Broker`)."""
    if find_mosquitto() is None or find_mosquitto_passwd() is None:
        pytest.skip("mosquitto and mosquitto_passwd are not installed")
    instance = Broker(tmp_path_factory.mktemp("broker"), secure=True, users=dict.fromkeys(USERS, PASSWORD))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


class Client:
    """A paho MQTT v5 client over TLS that waits for acknowledgements (with deadlines)."""

    def __init__(self, broker: Broker, user: str | None, password: str = PASSWORD) -> None:
        import paho.mqtt.client as mqtt

        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self._client.tls_set(ca_certs=str(broker.ca_file))
        if user is not None:
            self._client.username_pw_set(user, password)
        self._changed = threading.Condition()
        self.connect_result: object = None
        self.acks: dict[int, object] = {}
        self.messages: list[str] = []
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_ack
        self._client.on_subscribe = self._on_ack
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        self._wait(lambda: self.connect_result is not None, "CONNACK")

    def _on_connect(
        self, client: object, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        with self._changed:
            self.connect_result = reason
            self._changed.notify_all()

    def _on_ack(self, client: object, userdata: object, mid: int, reason: object, props: object) -> None:
        with self._changed:
            self.acks[mid] = reason
            self._changed.notify_all()

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        with self._changed:
            self.messages.append(message.topic)  # type: ignore[attr-defined]
            self._changed.notify_all()

    def _wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(condition, timeout_s), f"timed out waiting for {what}"

    @property
    def connected(self) -> bool:
        return not self.connect_result.is_failure  # type: ignore[attr-defined]

    def publish(self, topic: str) -> bool:
        """Publish at QoS 1; True if the broker accepted it (False: PUBACK says not authorized)."""
        info = self._client.publish(topic, b"{}", qos=1)
        self._wait(lambda: info.mid in self.acks, f"PUBACK of {topic}")
        return not self.acks[info.mid].is_failure  # type: ignore[attr-defined]

    def subscribe(self, topic: str) -> None:
        _, mid = self._client.subscribe(topic, qos=1)
        self._wait(lambda: mid in self.acks, f"SUBACK of {topic}")

    def wait_for_message(self, topic: str) -> None:
        self._wait(lambda: topic in self.messages, f"a message on {topic}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator[Callable[[str], Client]]:
    opened: list[Client] = []

    def open_client(user: str) -> Client:
        client = Client(broker, user)
        opened.append(client)
        assert client.connected, f"{user}: {client.connect_result}"
        return client

    yield open_client
    for client in opened:
        client.close()


def test_the_shipped_configuration_opens_only_its_tls_listener(broker: Broker) -> None:
    # A listener option placed before the first "listener" line silently opens a plain-text port 1883.
    ports = re.findall(r"Opening ipv[46] listen socket on port (\d+)", broker.log_file.read_text())
    assert ports and set(ports) == {str(broker.port)}


@pytest.mark.parametrize("password", [None, "wrong password"])
def test_the_broker_refuses_anonymous_clients_and_wrong_passwords(
    broker: Broker, password: str | None
) -> None:
    client = Client(broker, None if password is None else "press-3", password or "")
    try:
        assert not client.connected
    finally:
        client.close()


def test_the_broker_enforces_the_write_rules_of_the_acl(clients: Callable[[str], Client]) -> None:
    connected = {user: clients(user) for user in USERS}
    outcome = [(user, topic, connected[user].publish(topic)) for user, topic, _ in WRITES]
    assert outcome == WRITES


def test_the_broker_delivers_only_what_a_user_may_read(clients: Callable[[str], Client]) -> None:
    gateway, agent, mes = clients("gateway-site1"), clients("press-3"), clients("mes")
    gateway.subscribe("plantwatch/v1/#")  # accepted, but each message is checked against "read"
    # From each publisher, an unreadable message goes first and a readable one after it: when the
    # second has arrived, the first would have arrived before it (one publisher, one subscriber: order
    # is kept), so its absence is a result, not an impatient timeout.
    for publisher, site in ((agent, "press-3/pump-7/alert"), (mes, "mes/pump-7/context")):
        assert publisher.publish(f"plantwatch/v1/site2/{site}")
        assert publisher.publish(f"plantwatch/v1/site1/{site}")
        gateway.wait_for_message(f"plantwatch/v1/site1/{site}")
    assert sorted(gateway.messages) == [
        "plantwatch/v1/site1/mes/pump-7/context",
        "plantwatch/v1/site1/press-3/pump-7/alert",
    ]


def test_the_model_of_the_acl_agrees_with_mosquitto_on_user_names() -> None:
    # Every id in a topic is [a-z0-9_-]+; users in the ACL must follow the rule too.
    for user in ACL.users:
        assert re.fullmatch(r"[a-z0-9_-]+", user), user
