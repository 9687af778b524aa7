"""A gateway process to drive from outside, for the ERP tests and ``bench/erp.py``: a real
``plantwatch-gateway`` on a real Mosquitto with its own state directory and API port, records published as
an agent publishes them (:class:`Publisher`), and the gateway's API and database to look at."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.contract import Record, record_topic
from plantwatch.gateway.store import GatewayStore
from plantwatch.gateway.users import hash_password
from plantwatch.simulators.broker import Broker, free_port
from plantwatch.simulators.plant import _toml_table, read_rows, spawn, stop

SITE = "plant1"
USERS = {
    "pat": ("planner", "planner-password"),
    "ada": ("administrator", "admin-password"),
    "viv": ("viewer", "viewer-password"),
}


class Publisher:
    """An MQTT 5 client that publishes at QoS 1 and waits for each PUBACK."""

    def __init__(self, broker: Broker, client_id: str = "test-agent") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def record(self, record: Record) -> None:
        """Publish ``record`` on its topic."""
        kind = "alert" if record.is_alert else "health"
        self.raw(record_topic(record.site, record.agent, record.asset, kind), record.to_json().encode())

    def raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish ``payload`` on ``topic``."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"no PUBACK for {topic}"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Gateway:
    """A gateway process with its own state directory, API port and configuration."""

    workdir: Path
    broker: Broker
    erp: dict[str, object]
    erp_password: str
    gateway_id: str = "gw1"
    approval: str = "closed_loop"
    policy: dict[str, object] = field(default_factory=dict)
    shared_group: str = ""
    api_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.workdir / "gateway.toml"

    @property
    def database(self) -> Path:
        return self.workdir / "state" / "gateway.sqlite"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        erp = {
            "retry_initial_s": 0.2,
            "retry_max_s": 1.0,
            "feedback_interval_s": 1.0,
            "breaker_reset_s": 1.0,
            **self.erp,
        }
        self.config.write_text(
            f'site = "{SITE}"\ngateway_id = "{self.gateway_id}"\nstate_dir = "{self.workdir / "state"}"\n'
            f'status_interval_s = 1.0\nshared_group = "{self.shared_group}"\n\n'
            + _toml_table("mqtt", {"host": "127.0.0.1", "port": self.broker.port})
            + _toml_table("erp", erp)
            + _toml_table("policy", {"debounce_alerts": 1, **self.policy})
            + _toml_table("approval", {"mode": self.approval})
            + _toml_table("api", {"listen": "127.0.0.1", "port": self.api_port})
        )

    def start(self, env: dict[str, str] | None = None) -> None:
        """Write the configuration and users, start the process, wait for its API."""
        self.write_config()
        self.database.parent.mkdir(parents=True, exist_ok=True)
        store = GatewayStore(self.database)
        try:
            for name, (role, password) in USERS.items():
                if store.user(name) is None:
                    store.put_user(name, role=role, password_hash=hash_password(password), now_s=time.time())
        finally:
            store.close()
        self.process = spawn(
            ["plantwatch-gateway", "--config", str(self.config)],
            log_path=self.workdir / "gateway.log",
            env={"PLANTWATCH_ERP_PASSWORD": self.erp_password, **(env or {})},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.api("GET", "/status", "viv")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"gateway did not start:\n{self.log()}") from None
                time.sleep(0.1)

    def kill(self) -> None:
        """``kill -9``."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> int | None:
        return stop(self.process)

    def log(self) -> str:
        path = self.workdir / "gateway.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def api(self, method: str, path: str, user: str, body: Any = None) -> tuple[int, Any]:
        """``(status, JSON body)`` of an API call as ``user``."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/v1{path}", data=data, method=method
        )
        token = base64.b64encode(f"{user}:{USERS[user][1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def rows(self, sql: str, params: tuple[object, ...] = ()) -> list[dict[str, Any]]:
        """Rows of the gateway's database, read-only."""
        return read_rows(self.database, sql, params)

    def documents(self, status: str | None = None) -> list[dict[str, Any]]:
        if status is None:
            return self.rows("SELECT * FROM documents ORDER BY opened_at")
        return self.rows("SELECT * FROM documents WHERE status = ? ORDER BY opened_at", (status,))

    def decisions(self) -> list[str]:
        """The ledger's decisions, oldest first (user administration left out)."""
        rows = self.rows("SELECT decision FROM ledger WHERE decision != 'user_changed' ORDER BY id")
        return [row["decision"] for row in rows]


def alert_record(
    *,
    asset: str,
    seq: int,
    at: float,
    state: str = "alarm",
    failure_mode: str = "outer_race",
    agent: str = "gw-line3",
    episode: str | None = None,
) -> Record:
    """An alert as an agent publishes it (an outer-race finding with its evidence) for ``asset`` at ``at``."""
    from plantwatch.clock import rfc3339
    from plantwatch.contract import ALERT_SCHEMA, ModelRef, WindowRef, uuid7

    return Record(
        schema=ALERT_SCHEMA,
        id=uuid7(),
        seq=seq,
        ts=rfc3339(at),
        site=SITE,
        agent=agent,
        asset=asset,
        state=state,
        previous_state="normal",
        score=3.4,
        threshold=1.0,
        failure_mode=failure_mode,
        confidence=0.87,
        model=ModelRef(name="anomaly-ae", version="2.0.0", sha256="0123456789abcdef" * 4),
        features={"rms_g": 0.31, "env_bpfo_g": 0.42},
        window=WindowRef(start=rfc3339(at - 0.16), end=rfc3339(at), fs_hz=25600.0, samples=4096),
        evidence=[
            "Anomaly score 3.40, 3.4× the warning threshold (1.00)",
            "BPFO 3.58× (107.4 Hz): 0.420 g in the envelope, 42× baseline",
        ],
        episode=episode or rfc3339(at - 60),
    )
