"""``make demo``: the plant in a box, end to end, to an ERP maintenance notification.

simulator (pty) → agent → private Mosquitto → gateway → SAP simulator. The broker runs plantwatch's
locked-down configuration (TLS with throwaway certificates, a password per client, the ACL that lets the
agent write only under its own id). The simulator streams a fleet of three assets with different machines
and bearings: pump-7 with a growing outer-race defect, fan-2 and compressor-4 healthy. When the first
alert comes, the demo stops the broker for a few seconds (hours of simulated data): the agent keeps
analysing into its outbox, and after the restart the alerts go first and the backlog drains. Prints
progress as the defect grows and ends with the notification SAP assigned, the asset, the failure mode and
the evidence, which assets stayed healthy, and what the store-and-forward path delivered.

Exit status 0 when exactly one notification was created, for the faulty asset, no healthy asset raised an
alert and the gateway received every record the agent stored exactly once; 1 otherwise (with the logs'
tails).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

from plantwatch.contract import PayloadError, alert_subscription, parse_record
from plantwatch.mqtt import BrokerSettings, MqttClient, TLSParameters
from plantwatch.simulators.fleet import FleetAsset
from plantwatch.simulators.plant import Plant, PlantError

SETTLE_QUIET_S = 3.0
"""After the machine has sent everything, the demo takes alerts until none came for this long, then judges
the assets: while the agent still works through its buffer, pump-7's alarm repeats every simulated hour
of data, far more often than this."""


def say(started: float, text: str) -> None:
    """One progress line with the seconds since the demo started."""
    print(f"[{time.monotonic() - started:5.1f} s] {text}", flush=True)


def show_notification(note: dict[str, object]) -> None:
    """Print a notification as a planner would see its header and long text."""
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


def describe(asset: FleetAsset) -> str:
    """One line about a fleet asset: what it is, its speed and channels, and its fault."""
    machine = asset.machine
    fault = asset.fault
    state = (
        f"{fault.mode.replace('_', '-')} fault from day {fault.onset_s / 86400:g}, failure on day "
        f"{(fault.onset_s + fault.life_s) / 86400:g}"
        if fault is not None
        else "healthy"
    )
    return (
        f"{asset.asset_id}: {asset.description or 'machine'}, {machine.running_hz * 60:.0f} rpm, channels "
        f"{asset.vibration_channel}/{asset.temperature_channel}, {state}"
    )


async def outage(plant: Plant, seconds: float, started: float) -> None:
    """Stop the broker for ``seconds`` (wall time) and start it again, saying what the agent buffered."""
    assert plant.broker is not None
    say(started, f"stopping the broker for {seconds:g} s: the agent keeps analysing into its outbox")
    plant.broker.stop()
    await asyncio.sleep(seconds)
    _, waiting, _ = plant.agent_numbers()
    plant.broker.start()
    say(started, f"broker back: {waiting} records buffered during the outage go out, alerts first")


def delivered_exactly_once(plant: Plant, started: float) -> bool:
    """Wait for the agent's outbox to drain and compare what it numbered with what the gateway holds."""
    deadline = time.monotonic() + 30
    while True:
        last, waiting, thinned = plant.agent_numbers()
        alerts, health, missing = plant.gateway_numbers()
        if (waiting == 0 and alerts + health + thinned >= last) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(
        f"\nstore and forward: the agent stored {last} records ({alerts} alerts); the gateway received "
        f"{alerts + health}, {waiting} still buffered, {thinned} thinned, {missing} reported missing"
    )
    if waiting or alerts + health + thinned != last:
        say(started, "not every stored record reached the gateway")
        return False
    return True


async def run(args: argparse.Namespace) -> int:
    """Run the demo; the exit status."""
    started = time.monotonic()
    plant = Plant(
        Path(args.workdir or tempfile.mkdtemp(prefix="plantwatch-demo-")),
        secure=True,
        outbox={"disk_budget_mb": args.disk_budget_mb},
    )
    # the demo's own observer reconnects after the outage like any client; its warnings are not news here
    logging.getLogger("plantwatch.mqtt").setLevel(logging.ERROR)
    say(started, f"working directory {plant.workdir}")
    observer = None
    failed = True
    try:
        plant.start(days=args.days, onset_days=args.onset_days, speed=args.speed)
        assert plant.broker is not None
        say(
            started,
            f"Mosquitto on 127.0.0.1:{plant.broker.port} (TLS, passwords, ACL from systemd/); "
            f"SAP S/4HANA simulator at {plant.sap.url}",  # type: ignore[attr-defined]
        )
        say(started, f"machine simulator: {len(plant.fleet)} assets, replayed at {args.speed:g}× real time")
        for asset in plant.fleet:
            say(started, f"  {describe(asset)}")
        say(started, "agent and gateway started")
        say(started, f"agent outbox: disk budget {args.disk_budget_mb:g} MB (health records thinned near it)")
        observer = MqttClient(
            BrokerSettings(
                host="127.0.0.1",
                port=plant.broker.port,
                client_id="plantwatch-demo-observer",
                # the gateway's account may read the site's alerts
                username=plant.gateway_id,
                password=plant.mqtt_passwords[plant.gateway_id],
                tls=TLSParameters(str(plant.broker.ca_file)),
            ),
            subscriptions=[(alert_subscription(plant.site), 1)],
        )
        await observer.start()
        messages = observer.messages
        deadline = time.monotonic() + args.timeout_s
        shown_repeats = 0
        alerts: dict[str, list[str]] = {asset.asset_id: [] for asset in plant.fleet}

        async def take_alert() -> bool:
            """Wait up to 0.5 s for an alert, record and show it; False if none came."""
            nonlocal shown_repeats
            try:
                message = await asyncio.wait_for(messages.get(), 0.5)
                record = parse_record(message.payload)
            except TimeoutError:
                return False
            except PayloadError:
                return True
            alerts.setdefault(record.asset, []).append(record.state)
            if record.state == record.previous_state:
                shown_repeats += 1
                if shown_repeats > 1:
                    return True
            change = "still" if record.state == record.previous_state else f"{record.previous_state} →"
            say(
                started,
                f"alert {record.asset} {change} {record.state} (measured {record.ts[:16]}Z) score "
                f"{record.score:.2f} vs threshold {record.threshold:.2f}, failure mode {record.failure_mode}",
            )
            return True

        outage_done = args.outage_s <= 0
        while time.monotonic() < deadline and not (plant.notifications() and plant.machine_done()):
            plant.check_running()
            await take_alert()
            if not outage_done and any(alerts.values()):
                outage_done = True
                await outage(plant, args.outage_s, started)
        # the machine has sent everything, but the agent may still be analysing what it buffered
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < SETTLE_QUIET_S:
            plant.check_running()
            if await take_alert():
                quiet_since = time.monotonic()
        notes = plant.notifications()
        if shown_repeats > 1:
            say(
                started,
                f"({shown_repeats - 1} more repeated alarm alerts, one per simulated hour, not shown)",
            )
        if len(notes) != 1:
            say(started, f"expected one maintenance notification, SAP has {len(notes)}")
            return 1
        show_notification(notes[0])
        if notes[0].get("TechnicalObject") != plant.asset.upper():
            say(started, f"the notification is for {notes[0].get('TechnicalObject')}, not for {plant.asset}")
            return 1
        print()
        false_alarms = 0
        for asset in plant.healthy_assets:
            states = alerts.get(asset.asset_id, [])
            if states:
                false_alarms += 1
                print(
                    f"  {asset.asset_id} FALSE ALARM: healthy, but raised {len(states)} alerts ({', '.join(states)})"
                )
            else:
                print(f"  {asset.asset_id} stayed healthy: no alerts ({asset.description})")
        if false_alarms:
            say(started, f"{false_alarms} healthy assets raised alerts")
            return 1
        failed = False
        if not delivered_exactly_once(plant, started):
            return 1
        rss = plant.peak_rss_mb("agent")
        if rss is not None:
            print(f"\nagent peak memory (RSS): {rss:.0f} MB")
        print(f"\ndemo finished in {time.monotonic() - started:.1f} s; logs and state in {plant.workdir}")
        return 0
    except PlantError as error:
        say(started, f"demo failed: {error}")
        return 1
    finally:
        if observer is not None:
            await observer.stop()
        plant.stop()
        if failed or args.verbose:
            for name in ("machine", "agent", "gateway"):
                print(f"--- {name}.log (tail) ---\n{plant.log_tail(name)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m plantwatch.simulators.demo``."""
    parser = argparse.ArgumentParser(
        prog="plantwatch-demo",
        description="Run the plant in a box: simulator → agent → Mosquitto → gateway → SAP simulator.",
        epilog="example: python -m plantwatch.simulators.demo --days 3 --speed 8000",
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
    parser.add_argument(
        "--outage-s",
        type=float,
        default=3.0,
        help="stop the broker this many wall seconds at the first alert (default 3; 0: no outage)",
    )
    parser.add_argument(
        "--disk-budget-mb", type=float, default=64.0, help="the agent's outbox disk budget (default 64)"
    )
    parser.add_argument("--workdir", help="keep logs and state here (default: a new temporary directory)")
    parser.add_argument("--verbose", action="store_true", help="print the tails of the logs at the end")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
