"""A plant in a box: a private Mosquitto, the SAP simulator, the machine simulator, an agent and a gateway,
each a real process on loopback, wired by generated configuration files. Used by ``make demo`` and by the
end-to-end tests.

The machine simulator streams the default fleet (:func:`plantwatch.simulators.fleet.default_fleet`: pump-7
with a growing outer-race defect, fan-2 and compressor-4 healthy); the agent's ``[[assets]]`` tables are
rendered from that same fleet, so the two cannot disagree.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The broker lives in its own module; its names stay importable from here ("X as X": a re-export).
from plantwatch.simulators.broker import MOSQUITTO_CANDIDATES as MOSQUITTO_CANDIDATES
from plantwatch.simulators.broker import Broker as Broker
from plantwatch.simulators.broker import PlantError as PlantError
from plantwatch.simulators.broker import find_mosquitto as find_mosquitto
from plantwatch.simulators.broker import free_port as free_port
from plantwatch.simulators.broker import wait_for_port as wait_for_port
from plantwatch.simulators.fleet import FleetAsset, agent_asset_tables, default_fleet
from plantwatch.simulators.machine import FaultSpec

MATERIAL = "HOUSING-80"
"""What the demo's production orders make."""
SAP_PLANT = "1000"
LOT_QUANTITY = 100


def read_rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[dict[str, object]]:
    """Rows of a service's SQLite file, read-only beside the service (WAL); [] while the file or its
    tables do not exist yet."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    except sqlite3.OperationalError:  # the service has not created its tables yet
        return []
    finally:
        conn.close()


def _toml_table(name: str, values: dict[str, object]) -> str:
    """``[name]`` and its ``key = value`` lines (strings, numbers and booleans)."""
    lines = [f"[{name}]"]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = json.dumps(str(value))  # a TOML basic string
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def agent_toml(
    *,
    site: str,
    agent_id: str,
    port_path: str,
    mqtt: dict[str, object],
    state_dir: Path,
    fleet: Sequence[FleetAsset],
    outbox: dict[str, object] | None = None,
    status_interval_s: float = 5.0,
) -> str:
    """The demo agent's configuration, with one ``[[assets]]`` table for each asset of ``fleet``.

    ``mqtt`` and ``outbox`` are the keys of those tables (``[outbox]`` left out when ``None``).
    """
    return f"""site = "{site}"
agent_id = "{agent_id}"
state_dir = "{state_dir}"
status_interval_s = {status_interval_s}

[serial]
port = "{port_path}"
reopen_delay_s = 0.2

{_toml_table("mqtt", mqtt)}
{_toml_table("outbox", outbox) if outbox else ""}
{agent_asset_tables(fleet)}"""


def gateway_toml(
    *,
    site: str,
    gateway_id: str,
    mqtt: dict[str, object],
    erp: dict[str, object],
    state_dir: Path,
    api_port: int,
    approval: str = "closed_loop",
    policy: dict[str, object] | None = None,
    status_interval_s: float = 5.0,
    shared_group: str = "",
) -> str:
    """The demo gateway's configuration: ``erp`` is its ``[erp]`` table, ``policy`` its ``[policy]``."""
    return f"""site = "{site}"
gateway_id = "{gateway_id}"
state_dir = "{state_dir}"
status_interval_s = {status_interval_s}
shared_group = "{shared_group}"

{_toml_table("mqtt", mqtt)}
{_toml_table("erp", {"retry_initial_s": 0.2, "retry_max_s": 2.0, "feedback_interval_s": 2.0, **erp})}
{_toml_table("policy", {"debounce_alerts": 1, **(policy or {})})}
[approval]
mode = "{approval}"

[api]
listen = "127.0.0.1"
port = {api_port}
"""


def spawn(args: list[str], *, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a plantwatch command (``args[0]`` is the module's console name) writing its log to ``log_path``."""
    modules = {
        "plantwatch-agent": "plantwatch.agent.cli",
        "plantwatch-gateway": "plantwatch.gateway.cli",
        "plantwatch-sim": "plantwatch.simulators.cli",
    }
    command = [sys.executable, "-m", modules[args[0]], *args[1:]]
    stream = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen(
        command, stdout=stream, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )


def stop(process: subprocess.Popen[bytes] | None, *, timeout_s: float = 15.0) -> int | None:
    """SIGTERM a process and wait (SIGKILL if it does not stop in ``timeout_s``); its exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class Plant:
    """The whole plant in a box in ``workdir``: broker, SAP simulator, machine simulator, gateway, agent.

    ``secure``: the broker runs the shipped locked-down configuration (``systemd/mosquitto.conf`` and its
    ACL: TLS only, a password per client, each agent writing only under its own id) with throwaway
    certificates; agent and gateway log in with their ids as user names and passwords from the
    environment, and check the broker's certificate against the throwaway CA. ``outbox``: the agent's
    ``[outbox]`` table (disk budget, drain rate); ``status_interval_s``: both services' status period.
    """

    workdir: Path
    site: str = "demo"
    agent_id: str = "gw-line1"
    sap_password: str = "demo-secret"
    secure: bool = False
    outbox: dict[str, object] = field(default_factory=dict)
    status_interval_s: float = 5.0
    approval: str = "closed_loop"
    erp: str = "sap"
    """``"sap"`` (the SAP simulator) or ``"tryton"`` (a real Tryton server, see simulators/tryton.py)."""
    api_port: int = field(default_factory=free_port)
    broker: Broker | None = None
    sap: object | None = None
    tryton: object | None = None
    erp_password: str = ""
    orders: tuple[str, ...] = ()
    """Production orders the MES will announce: made to exist in the ERP before the machine starts (a
    running production in Tryton; a batch in stock in SAP, lot ``LOT-<order>``)."""
    start_epoch_s: float = field(default_factory=lambda: float(int(time.time())))
    """The simulated stream's start (Unix seconds): measurement times are this plus simulated time."""
    web_users: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Users of the gateway's web page and API: name → (role, password), written before it starts."""
    production_ids: dict[str, int] = field(default_factory=dict)
    """Tryton's production id of each order."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    fleet: tuple[FleetAsset, ...] = ()
    """What the machine simulator streams (set by :meth:`start`)."""
    sensor_link: Path | None = None
    """The symlink to the simulated sensor's pty (set by :meth:`start`)."""

    @property
    def gateway_id(self) -> str:
        """The gateway's id, which is also its MQTT user (the ACL's naming rule: ``gateway-…``)."""
        return f"gateway-{self.site}"

    @property
    def mqtt_passwords(self) -> dict[str, str]:
        """The broker's accounts (user → password) in the secure plant."""
        return {
            self.agent_id: "agent-demo-secret",
            self.gateway_id: "gateway-demo-secret",
            # another agent's account: what an agent configured with the wrong user name logs in as
            "gw-line2": "other-agent-secret",
            "mes": "mes-demo-secret",
        }

    def mqtt_table(self, user: str) -> dict[str, object]:
        """The ``[mqtt]`` table of a service that logs in as ``user``."""
        assert self.broker is not None
        table: dict[str, object] = {"host": "127.0.0.1", "port": self.broker.port}
        if self.secure:
            table.update(username=user, tls_ca_file=str(self.broker.ca_file))
        return table

    def start(
        self,
        *,
        days: float,
        onset_days: float,
        speed: float,
        seed: int = 1,
        fleet: bool = True,
        agent_password: str | None = None,
    ) -> None:
        """Start every part; the machine streams ``days`` simulated days with a defect from ``onset_days``.

        ``fleet``: stream the default fleet (three assets); else only its faulty asset, pump-7.
        ``agent_password``: the agent's MQTT password instead of the right one (secure plant).
        """
        from plantwatch.simulators.sap import SapSimulator

        fault = FaultSpec(mode="outer_race", onset_s=onset_days * 86400, life_s=(days - onset_days) * 86400)
        whole = default_fleet(fault=fault)
        self.fleet = whole if fleet else whole[:1]
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            self.broker = Broker(
                self.workdir / "broker",
                secure=True,
                users=self.mqtt_passwords,
                gateway_users={self.gateway_id: self.site},
            )
        else:
            self.broker = Broker(self.workdir / "broker")
        self.broker.start()
        if self.erp == "tryton":
            from plantwatch.simulators.tryton import TrytonServer

            tryton = TrytonServer(self.workdir / "tryton")
            tryton.start()
            self.tryton = tryton
            erp: dict[str, object] = {
                "kind": "tryton",
                "base_url": tryton.url,
                "database": tryton.database,
                "user": tryton.plantwatch_user,
            }
            self.erp_password = tryton.plantwatch_password
            for order in self.orders:
                self.production_ids[order] = tryton.add_production(order)[0]
        else:
            sap = SapSimulator(password=self.sap_password)
            sap.start()
            self.sap = sap
            erp = {"kind": "sap", "base_url": sap.url, "user": "PLANTWATCH"}
            for order in self.orders:
                sap.add_batch(MATERIAL, f"LOT-{order}", SAP_PLANT, quantity=LOT_QUANTITY, unit="PC")
            self.erp_password = self.sap_password
        link = self.workdir / "sensor.tty"
        self.processes["machine"] = spawn(
            [
                "plantwatch-sim",
                "machine",
                "--link",
                str(link),
                *(["--fleet"] if fleet else []),
                "--fault",
                fault.mode,
                "--days",
                str(days),
                "--onset-days",
                str(onset_days),
                "--life-days",
                str(days - onset_days),
                "--speed",
                str(speed),
                "--seed",
                str(seed),
                "--start",
                str(self.start_epoch_s),
                "--wait-reader-s",
                "60",
            ],
            log_path=self.workdir / "machine.log",
        )
        self.sensor_link = link
        self.write_agent_config()
        self.gateway_config.write_text(
            gateway_toml(
                site=self.site,
                gateway_id=self.gateway_id,
                mqtt=self.mqtt_table(self.gateway_id),
                erp=erp,
                state_dir=self.workdir / "gateway",
                api_port=self.api_port,
                approval=self.approval,
                status_interval_s=self.status_interval_s,
            )
        )
        self.add_web_users()
        self.start_gateway()
        self.start_agent(password=agent_password)

    def add_web_users(self) -> None:
        """Write :attr:`web_users` into the gateway's database (before the gateway opens it)."""
        from plantwatch.gateway.store import GatewayStore
        from plantwatch.gateway.users import hash_password

        if not self.web_users:
            return
        (self.workdir / "gateway").mkdir(parents=True, exist_ok=True)
        store = GatewayStore(self.workdir / "gateway" / "gateway.sqlite")
        try:
            for name, (role, password) in self.web_users.items():
                store.put_user(name, role=role, password_hash=hash_password(password), now_s=time.time())
        finally:
            store.close()

    @property
    def page_url(self) -> str:
        """The planner's web page."""
        return f"http://127.0.0.1:{self.api_port}/"

    @property
    def asset(self) -> str:
        """The asset whose bearing fails (pump-7)."""
        return next((a.asset_id for a in self.fleet if a.fault is not None), "pump-7")

    @property
    def healthy_assets(self) -> tuple[FleetAsset, ...]:
        """The assets streamed without a fault."""
        return tuple(a for a in self.fleet if a.fault is None)

    @property
    def agent_config(self) -> Path:
        return self.workdir / "agent.toml"

    @property
    def gateway_config(self) -> Path:
        return self.workdir / "gateway.toml"

    def write_agent_config(self, **mqtt: object) -> None:
        """(Re)write ``agent.toml``; keyword arguments replace keys of its ``[mqtt]`` table."""
        self.agent_config.write_text(
            agent_toml(
                site=self.site,
                agent_id=self.agent_id,
                port_path=str(self.sensor_link),
                mqtt={**self.mqtt_table(self.agent_id), **mqtt},
                state_dir=self.workdir / "agent",
                fleet=self.fleet,
                outbox=self.outbox or None,
                status_interval_s=self.status_interval_s,
            )
        )

    def start_agent(self, *, password: str | None = None) -> None:
        """Start (or restart) the agent; ``password`` replaces its MQTT password (secure plant)."""
        env = {}
        if self.secure:
            env["PLANTWATCH_MQTT_PASSWORD"] = password or self.mqtt_passwords[self.agent_id]
        self.processes["agent"] = spawn(
            ["plantwatch-agent", "--config", str(self.agent_config)],
            log_path=self.workdir / "agent.log",
            env=env,
        )

    def kill_agent(self) -> None:
        """``kill -9`` the agent (no chance to flush or say goodbye) and reap it."""
        process = self.processes.get("agent")
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def start_gateway(self) -> None:
        """Start (or restart) the gateway."""
        env = {"PLANTWATCH_ERP_PASSWORD": self.erp_password}
        if self.secure:
            env["PLANTWATCH_MQTT_PASSWORD"] = self.mqtt_passwords[self.gateway_id]
        self.processes["gateway"] = spawn(
            ["plantwatch-gateway", "--config", str(self.gateway_config)],
            log_path=self.workdir / "gateway.log",
            env=env,
        )

    def agent_numbers(self) -> tuple[int, int, int]:
        """``(last sequence number given out, records buffered, records thinned)`` from the agent's file."""
        last = self._count(self.workdir / "agent" / "agent.sqlite", "SELECT seq FROM sequence")
        waiting = self._count(self.workdir / "agent" / "agent.sqlite", "SELECT count(*) FROM outbox")
        thinned = self._count(
            self.workdir / "agent" / "agent.sqlite",
            "SELECT value FROM counters WHERE name = 'records_thinned'",
        )
        return last, waiting, thinned

    def gateway_numbers(self) -> tuple[int, int, int]:
        """``(alerts in the inbox, health records received, sequence numbers reported missing)``."""
        path = self.workdir / "gateway" / "gateway.sqlite"
        return (
            self._count(path, "SELECT count(*) FROM inbox"),
            self._count(path, "SELECT count(*) FROM received"),
            self._count(path, "SELECT coalesce(sum(missing), 0) FROM sequence_gaps"),
        )

    @staticmethod
    def _count(path: Path, sql: str) -> int:
        rows = read_rows(path, sql)
        value = next(iter(rows[0].values())) if rows else None
        return int(value) if value is not None else 0

    def gateway_rows(self, sql: str, params: tuple[object, ...] = ()) -> list[dict[str, object]]:
        """Rows of the gateway's database (read-only; [] before its tables exist)."""
        return read_rows(self.workdir / "gateway" / "gateway.sqlite", sql, params)

    def notifications(self) -> list[dict[str, object]]:
        """The maintenance notifications in the SAP simulator."""
        return self.sap.notifications() if self.sap is not None else []  # type: ignore[attr-defined]

    def machine_done(self) -> bool:
        """True once the machine simulator streamed everything and exited."""
        return self.processes["machine"].poll() is not None

    def peak_rss_mb(self, name: str) -> float | None:
        """Peak resident memory (VmHWM, MB) of a running process of the plant, from /proc (Linux)."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return None
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    def check_running(self) -> None:
        """Raise :class:`PlantError` if the agent or the gateway died."""
        for name in ("agent", "gateway"):
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise PlantError(
                    f"{name} exited with {process.returncode}; see {self.workdir / (name + '.log')}"
                )

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines of a part's log."""
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> dict[str, int | None]:
        """Stop everything; the exit codes of the processes."""
        codes = {name: stop(self.processes.get(name)) for name in ("agent", "gateway", "machine")}
        if self.sap is not None:
            self.sap.stop()  # type: ignore[attr-defined]
        if self.tryton is not None:
            self.tryton.stop()  # type: ignore[attr-defined]
        if self.broker is not None:
            self.broker.stop()
        return codes
