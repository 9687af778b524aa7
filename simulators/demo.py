"""``make demo``: the plant in a box, end to end, to an ERP work order and quality holds.

simulator (pty) → agent → private Mosquitto → gateway → a real Tryton 8.2 server (``--erp tryton``, the
default) or the SAP S/4HANA simulator (``--erp sap``). An MES simulator announces a new production order
on pump-7 every few simulated hours; the gateway holds every lot made while pump-7 was abnormal. The
broker runs plantwatch's
locked-down configuration (TLS with throwaway certificates, a password per client, the ACL that lets the
agent write only under its own id). The simulator streams a fleet of three assets with different machines
and bearings: pump-7 with a growing outer-race defect, fan-2 and compressor-4 healthy. When the first
alert comes, the demo stops the broker for a few seconds (hours of simulated data): the agent keeps
analysing into its outbox, and after the restart the alerts go first and the backlog drains. Prints
progress as the defect grows and ends with the work order the ERP assigned, the asset, the failure mode and
the evidence, the lots held (in Tryton, finishing a held production order is refused), which assets stayed
healthy, and what the store-and-forward path delivered.

Exit status 0 when exactly one work order was created, for the faulty asset, every lot made during the
excursion and no other was held, no healthy asset raised an alert and the gateway received every record
the agent stored exactly once; 1 otherwise (with the logs' tails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path

from plantwatch.clock import rfc3339
from plantwatch.contract import PayloadError, alert_subscription, parse_record
from plantwatch.mqtt import BrokerSettings, MqttClient, TLSParameters
from plantwatch.simulators.fleet import FleetAsset
from plantwatch.simulators.mes import MesSimulator, PlanStep
from plantwatch.simulators.plant import LOT_QUANTITY, MATERIAL, SAP_PLANT, Plant, PlantError

WEB_USERS = {"planner": "planner", "admin": "administrator", "viewer": "viewer"}
"""The web page's users the demo makes (name → role), each with a new random password it prints."""
SETTLE_QUIET_S = 3.0
"""After the machine has sent everything, the demo takes alerts until none came for this long, then judges
the assets: while the agent still works through its buffer, pump-7's alarm repeats every simulated hour
of data, far more often than this."""


def say(started: float, text: str) -> None:
    """One progress line with the seconds since the demo started."""
    print(f"[{time.monotonic() - started:5.1f} s] {text}", flush=True)


class SimulatedClock:
    """The simulated stream's time: ``start_epoch_s`` plus wall seconds since ``begun`` times ``speed``."""

    def __init__(self, start_epoch_s: float, speed: float) -> None:
        self.start_epoch_s, self.speed, self.begun = start_epoch_s, speed, time.monotonic()

    def now(self) -> float:
        return self.start_epoch_s + (time.monotonic() - self.begun) * self.speed


def work_orders(plant: Plant) -> list[dict[str, object]]:
    """The work orders in the ERP, as a planner sees their header and text."""
    if plant.tryton is not None:
        return [
            {
                "number": task["number"],
                "equipment": task["plantwatch_asset"],
                "priority": task["plantwatch_priority"],
                "title": task["name"],
                "reference": task["plantwatch_correlation_id"],
                "text": task["comment"] or "",
            }
            for task in plant.tryton.tasks()  # type: ignore[attr-defined]
        ]
    return [
        {
            "number": note["MaintenanceNotification"],
            "equipment": str(note.get("TechnicalObject", "")).lower(),
            "priority": note.get("MaintPriority"),
            "title": note.get("NotificationText"),
            "reference": note.get("MaintNotifExtReferenceNumber"),
            "text": note.get("MaintNotifLongTextForEdit", ""),
        }
        for note in plant.notifications()
    ]


def show_work_order(order: dict[str, object], erp: str) -> None:
    """Print a work order as a planner would see its header and long text."""
    print()
    print(f"Maintenance work order created in {erp}:")
    print(f"  number        {order['number']}  (priority {order['priority']})")
    print(f"  equipment     {order['equipment']}")
    print(f"  title         {order['title']}")
    print(f"  external ref  {order['reference']}")
    print("  text:")
    for line in str(order["text"]).splitlines():
        print(f"    {line}")


def held_orders(plant: Plant) -> list[str]:
    """The production orders the ERP holds."""
    if plant.tryton is not None:
        by_id = {f"production,{pid}": order for order, pid in plant.production_ids.items()}
        return sorted(
            by_id.get(str(i["origin"]), str(i["origin"]))
            for i in plant.tryton.inspections()  # type: ignore[attr-defined]
            if i["state"] == "failed"
        )
    assert plant.sap is not None
    blocked = {
        str(item.get("Batch"))
        for document in plant.sap.material_documents()  # type: ignore[attr-defined]
        for item in document["to_MaterialDocumentItem"]
    }
    return sorted(lot.removeprefix("LOT-") for lot in blocked)


def expected_holds(plant: Plant, plan: list[PlanStep]) -> list[str]:
    """The orders whose run on pump-7 overlaps an excursion, from the gateway's own excursion records."""
    excursions = plant.gateway_rows(
        "SELECT started_at, ended_at, severity FROM excursions WHERE asset = ?", (plant.asset,)
    )
    runs = [
        (step.production_order, step.at_s, nxt.at_s if nxt else None)
        for step, nxt in zip(plan, [*plan[1:], None], strict=True)
    ]
    held = set()
    for excursion in excursions:
        if excursion["severity"] != "alarm":
            continue
        end = excursion["ended_at"] if excursion["ended_at"] is not None else float("inf")
        for order, since, until in runs:
            if (
                order
                and since < end
                and (until if until is not None else float("inf")) > excursion["started_at"]
            ):
                held.add(order)
    return sorted(held)


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
    start_epoch_s = float(int(time.time()))
    lot_s = args.lot_hours * 3600
    # pump-7's production orders, one every lot_hours of simulated time (ids by the hour they start)
    plan = [
        PlanStep(
            start_epoch_s + i * lot_s,
            "pump-7",
            f"PO-{i + 1:03d}",
            f"LOT-PO-{i + 1:03d}",
            MATERIAL,
            LOT_QUANTITY,
            "PC",
        )
        for i in range(int(args.days * 86400 // lot_s) + 1)
    ]
    plant = Plant(
        Path(args.workdir or tempfile.mkdtemp(prefix="plantwatch-demo-")),
        secure=True,
        outbox={"disk_budget_mb": args.disk_budget_mb},
        erp=args.erp,
        orders=tuple(str(step.production_order) for step in plan),
        start_epoch_s=start_epoch_s,
        web_users={name: (role, secrets.token_urlsafe(9)) for name, role in WEB_USERS.items()},
        **({"api_port": args.web_port} if args.web_port else {}),
    )
    erp_name = "Tryton 8.2 (a real server)" if args.erp == "tryton" else "SAP S/4HANA (simulator)"
    # the demo's own observer reconnects after the outage like any client; its warnings are not news here
    logging.getLogger("plantwatch.mqtt").setLevel(logging.ERROR)
    # the MES keeps a change pending while the broker is out and says so at every try: expected here
    logging.getLogger("plantwatch.simulators.mes").setLevel(logging.ERROR)
    say(started, f"working directory {plant.workdir}")
    observer = None
    mes_task: asyncio.Task[None] | None = None
    mes: MesSimulator | None = None
    failed = True
    try:
        plant.start(days=args.days, onset_days=args.onset_days, speed=args.speed)
        assert plant.broker is not None
        erp_url = plant.tryton.url if plant.tryton is not None else plant.sap.url  # type: ignore[attr-defined]
        say(
            started,
            f"Mosquitto on 127.0.0.1:{plant.broker.port} (TLS, passwords, ACL from systemd/); "
            f"{erp_name} at {erp_url}; the gateway's API at http://127.0.0.1:{plant.api_port}/api/v1",
        )
        logins = ", ".join(
            f"{name} / {password} ({role})" for name, (role, password) in plant.web_users.items()
        )
        say(started, f"the planner's web page: {plant.page_url}  log in as {logins}")
        mes = MesSimulator(
            BrokerSettings(
                host="127.0.0.1",
                port=plant.broker.port,
                client_id="plantwatch-demo-mes",
                username="mes",
                password=plant.mqtt_passwords["mes"],
                tls=TLSParameters(str(plant.broker.ca_file)),
            ),
            site=plant.site,
            plan=plan,
            plant=SAP_PLANT,
            storage_location="0001",
        )
        await mes.connect()
        mes_task = asyncio.create_task(mes.run_plan(SimulatedClock(start_epoch_s, args.speed)))
        say(
            started,
            f"MES simulator: a new production order on pump-7 every {args.lot_hours:g} simulated hours "
            f"({plan[0].production_order} … {plan[-1].production_order}, each in the ERP)",
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
        while time.monotonic() < deadline and not (work_orders(plant) and plant.machine_done()):
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
        orders = work_orders(plant)
        if shown_repeats > 1:
            say(
                started,
                f"({shown_repeats - 1} more repeated alarm alerts, one per simulated hour, not shown)",
            )
        if len(orders) != 1:
            say(started, f"expected one maintenance work order, {erp_name} has {len(orders)}")
            return 1
        show_work_order(orders[0], erp_name)
        if orders[0]["equipment"] != plant.asset:
            say(started, f"the work order is for {orders[0]['equipment']}, not for {plant.asset}")
            return 1
        if not await holds_as_expected(plant, plan, started):
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
        print(f"the planner's web page: {plant.page_url}  ({logins})")
        if args.keep_running:
            print("keeping the plant running for the web page: press Ctrl-C to stop")
            with contextlib.suppress(asyncio.CancelledError):
                while True:
                    plant.check_running()
                    await asyncio.sleep(1.0)
        return 0
    except PlantError as error:
        say(started, f"demo failed: {error}")
        return 1
    finally:
        if mes_task is not None:
            mes_task.cancel()
        if mes is not None:
            await mes.close()
        if observer is not None:
            await observer.stop()
        plant.stop()
        if failed or args.verbose:
            for name in ("machine", "agent", "gateway"):
                print(f"--- {name}.log (tail) ---\n{plant.log_tail(name)}")


async def holds_as_expected(plant: Plant, plan: list[PlanStep], started: float) -> bool:
    """Wait for the holds, print them, and check they are exactly the lots made during the excursion."""
    expected = expected_holds(plant, plan)
    deadline = time.monotonic() + 30
    while held_orders(plant) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    held = held_orders(plant)
    for excursion in plant.gateway_rows("SELECT * FROM excursions WHERE asset = ?", (plant.asset,)):
        end = "the end of the stream" if excursion["ended_at"] is None else rfc3339(excursion["ended_at"])
        print(
            f"\nExcursion on {plant.asset}: {excursion['severity']} from {rfc3339(excursion['started_at'])} to {end}"
        )
    print(f"Quality holds: {len(held)} of {len(plan)} production orders held: {', '.join(held) or 'none'}")
    if plant.tryton is not None and held:
        first_held = plant.production_ids[held[0]]
        refusal = plant.tryton.try_production_do(first_held)  # type: ignore[attr-defined]
        print(f"  finishing {held[0]} in Tryton: {refusal or 'done (NOT held!)'}")
        free = [order for order in plant.production_ids if order not in held]
        if free:
            outcome = plant.tryton.try_production_do(plant.production_ids[free[0]])  # type: ignore[attr-defined]
            print(f"  finishing {free[0]} (made before the excursion): {outcome or 'done'}")
        if refusal is None:
            return False
    if held != expected:
        say(
            started,
            f"expected holds on {', '.join(expected) or 'nothing'}, the ERP holds {', '.join(held) or 'nothing'}",
        )
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m plantwatch.simulators.demo``."""
    parser = argparse.ArgumentParser(
        prog="plantwatch-demo",
        description="Run the plant in a box: simulator → agent → Mosquitto → gateway → Tryton or the SAP "
        "simulator, with an MES simulator announcing production orders.",
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
    parser.add_argument(
        "--erp",
        choices=["tryton", "sap"],
        default="tryton",
        help="the ERP: a real Tryton 8.2 server (default; its database is built once and cached) or the SAP "
        "S/4HANA simulator",
    )
    parser.add_argument(
        "--lot-hours", type=float, default=8.0, help="simulated hours per production order (default 8)"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the checks, keep the plant and the web page up until Ctrl-C",
    )
    parser.add_argument(
        "--web-port", type=int, default=0, help="port of the gateway's web page and API (default: a free one)"
    )
    parser.add_argument("--workdir", help="keep logs and state here (default: a new temporary directory)")
    parser.add_argument("--verbose", action="store_true", help="print the tails of the logs at the end")
    try:
        return asyncio.run(run(parser.parse_args(argv)))
    except KeyboardInterrupt:
        return 130  # the plant was stopped on the way out


if __name__ == "__main__":
    sys.exit(main())
