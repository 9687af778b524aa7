"""``make demo``: the plant in a box, end to end, to an ERP maintenance notification.

simulator (pty) → agent → private Mosquitto → gateway → SAP simulator. Prints progress as the defect
grows and ends with the notification SAP assigned, the asset, the failure mode and the evidence.
Exit status 0 when exactly one notification was created, 1 otherwise (with the logs' tails).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from plantwatch.contract import TOPIC_ROOT, PayloadError, parse_record
from plantwatch.mqtt import BrokerSettings, MqttClient
from plantwatch.simulators.plant import Broker, PlantError, agent_toml, gateway_toml, spawn, stop
from plantwatch.simulators.sap import SapSimulator

SITE = "demo"
AGENT = "gw-line1"
ASSET = "pump-7"
SAP_PASSWORD = "demo-secret"


def say(started: float, text: str) -> None:
    """One progress line with the seconds since the demo started."""
    print(f"[{time.monotonic() - started:5.1f} s] {text}", flush=True)


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="plantwatch-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    say(started, f"working directory {workdir}")
    broker = Broker(workdir / "broker")
    sap = SapSimulator(password=SAP_PASSWORD)
    processes = {}
    observer = None
    try:
        broker.start()
        say(started, f"Mosquitto listening on 127.0.0.1:{broker.port}")
        sap.start()
        say(started, f"SAP S/4HANA simulator (API_MAINTNOTIFICATION) at {sap.url}")
        link = workdir / "sensor.tty"
        processes["machine"] = spawn(
            [
                "plantwatch-sim",
                "machine",
                "--link",
                str(link),
                "--days",
                str(args.days),
                "--onset-days",
                str(args.onset_days),
                "--life-days",
                str(args.days - args.onset_days),
                "--speed",
                str(args.speed),
                "--wait-reader-s",
                "60",
            ],
            log_path=workdir / "machine.log",
        )
        say(
            started,
            f"machine simulator: pump motor, SKF 6205 bearing, outer-race defect from day {args.onset_days:g}, "
            f"{args.days:g} simulated days at {args.speed:g}× real time",
        )
        (workdir / "agent.toml").write_text(
            agent_toml(
                site=SITE,
                agent_id=AGENT,
                port_path=str(link),
                broker_port=broker.port,
                state_dir=workdir / "agent",
            )
        )
        (workdir / "gateway.toml").write_text(
            gateway_toml(
                site=SITE,
                gateway_id="gw1",
                broker_port=broker.port,
                sap_url=sap.url,
                state_dir=workdir / "gateway",
            )
        )
        processes["gateway"] = spawn(
            ["plantwatch-gateway", "--config", str(workdir / "gateway.toml")],
            log_path=workdir / "gateway.log",
            env={"PLANTWATCH_ERP_PASSWORD": SAP_PASSWORD},
        )
        processes["agent"] = spawn(
            ["plantwatch-agent", "--config", str(workdir / "agent.toml")], log_path=workdir / "agent.log"
        )
        say(started, "agent and gateway started")
        observer = MqttClient(
            BrokerSettings(host="127.0.0.1", port=broker.port, client_id="plantwatch-demo-observer"),
            subscriptions=[(f"{TOPIC_ROOT}/{SITE}/+/+/alert", 1)],
        )
        await observer.start()
        deadline = time.monotonic() + args.timeout_s
        first_alert_day = None
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(observer.messages.get(), 0.5)
            except TimeoutError:
                message = None
            if message is not None:
                try:
                    record = parse_record(message.payload)
                except PayloadError:
                    continue
                if first_alert_day is None:
                    first_alert_day = record.ts
                say(
                    started,
                    f"alert {record.asset}: {record.previous_state} → {record.state} at {record.ts} "
                    f"score {record.score:.2f} (threshold {record.threshold:.2f}) failure mode {record.failure_mode}",
                )
            notes = sap.notifications()
            machine_done = processes["machine"].poll() is not None
            if notes and machine_done:
                break
            for name, process in processes.items():
                if name != "machine" and process.poll() is not None:
                    raise PlantError(f"{name} exited with {process.returncode}")
        notes = sap.notifications()
        if len(notes) != 1:
            say(started, f"expected one maintenance notification, SAP has {len(notes)}")
            return 1
        note = notes[0]
        print()
        print("Maintenance notification created in SAP S/4HANA (simulator):")
        print(
            f"  notification  {note['MaintenanceNotification']}  (type {note.get('NotificationType')}, "
            f"priority {note.get('MaintPriority')})"
        )
        print(f"  equipment     {note.get('TechnicalObject')}")
        print(f"  text          {note.get('NotificationText')}")
        print(f"  external ref  {note.get('MaintNotifExtReferenceNumber')}")
        print("  long text:")
        for line in str(note.get("MaintNotifLongTextForEdit", "")).splitlines():
            print(f"    {line}")
        print(f"\ndemo finished in {time.monotonic() - started:.1f} s; logs and state in {workdir}")
        return 0
    except PlantError as error:
        say(started, f"demo failed: {error}")
        return 1
    finally:
        if observer is not None:
            await observer.stop()
        for name in ("agent", "gateway", "machine"):
            stop(processes.get(name))
        sap.stop()
        broker.stop()
        if args.verbose or sys.exc_info()[0] is not None:
            for name in ("machine", "agent", "gateway"):
                log_file = workdir / f"{name}.log"
                if log_file.exists():
                    print(f"--- {name}.log (tail) ---")
                    print("\n".join(log_file.read_text().splitlines()[-15:]))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m plantwatch.simulators.demo``."""
    parser = argparse.ArgumentParser(
        prog="plantwatch-demo",
        description="Run the plant in a box: simulator → agent → Mosquitto → gateway → SAP simulator.",
        epilog="example: python -m plantwatch.simulators.demo --days 3 --speed 6000",
    )
    parser.add_argument("--days", type=float, default=3.0, help="simulated days (default 3)")
    parser.add_argument(
        "--onset-days", type=float, default=1.0, help="day the bearing defect starts (default 1)"
    )
    parser.add_argument(
        "--speed", type=float, default=8000.0, help="simulated seconds per wall second (default 8000)"
    )
    parser.add_argument(
        "--timeout-s", type=float, default=100.0, help="give up after this many wall seconds (default 100)"
    )
    parser.add_argument("--workdir", help="keep logs and state here (default: a new temporary directory)")
    parser.add_argument("--verbose", action="store_true", help="print the tails of the logs at the end")
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
