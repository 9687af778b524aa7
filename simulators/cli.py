"""``plantwatch-sim``: the stand-ins for the outside world (a sensor on a serial port, SAP)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING

from plantwatch.config import secret
from plantwatch.log import event, setup_logging

if TYPE_CHECKING:
    from plantwatch.simulators.streamer import StreamSettings

log = logging.getLogger("plantwatch.simulators")

FAULTS = ("outer_race", "inner_race", "ball", "imbalance", "misalignment", "looseness", "none")
"""``--fault`` choices: :data:`plantwatch.simulators.machine.FAULT_MODES` and ``none``."""

EPILOG = """examples:
  plantwatch-sim machine --link /tmp/pump7.tty --days 3 --onset-days 1 --speed 5000
  plantwatch-sim machine --link /tmp/pump7.tty --fault none --days 1
  plantwatch-sim machine --fleet --link /tmp/line1.tty --fault inner_race --days 3
  plantwatch-sim machine --fleet --print-agent-assets >> agent.toml
  plantwatch-sim sap --port 8080          # password: $PLANTWATCH_SAP_PASSWORD (default "secret")
"""

MACHINE_EPILOG = """examples:
  plantwatch-sim machine --link /tmp/pump7.tty --days 3 --onset-days 1 --speed 5000
      pump-7 (SKF 6205, 29.95 Hz) on channels 0/1; an outer-race defect from day 1, failure on day 3
  plantwatch-sim machine --link /tmp/pump7.tty --fault looseness --onset-days 0.5 --life-days 1
  plantwatch-sim machine --fleet --link /tmp/line1.tty --speed 8000
      pump-7 (faulty, channels 0/1), fan-2 (2/3) and compressor-4 (4/5), healthy
  plantwatch-sim machine --fleet --print-agent-assets
      the agent's [[assets]] tables for what would be streamed, then exit

faults: outer_race, inner_race (modulated by shaft rotation), ball (2×BSF, modulated by the cage),
imbalance (1×), misalignment (2×, 1×, 3×), looseness (harmonics to 10× and half orders, rattle);
severity grows as progress² from onset to failure, with noise and bearing temperature.
"""


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    result = argparse.ArgumentParser(
        prog="plantwatch-sim",
        description="Simulators for demos and tests: a machine (or a fleet of three) with a growing fault\n"
        "streaming sensor frames on a pseudo-terminal, and SAP S/4HANA's maintenance notification\n"
        "OData service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = result.add_subparsers(dest="command", required=True, metavar="COMMAND")
    machine = commands.add_parser(
        "machine",
        help="stream a simulated machine's vibration and temperature as sensor frames on a pty",
        description="Create a pseudo-terminal and stream a simulated machine's vibration (25.6 kHz) and\n"
        "temperature on it as framed binary records (see agent/frames.md), one snapshot every\n"
        "--snapshot-interval-s of simulated time. The agent opens the pty like a USB sensor.\n"
        "With --fleet: three assets of a line (different machines and bearings) on channels 0-5;\n"
        "the fault grows on pump-7, the others stay healthy.",
        epilog=MACHINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    machine.add_argument(
        "--link", metavar="PATH", help="also create a symlink to the pty here (a stable path for configs)"
    )
    machine.add_argument(
        "--days", type=_positive, default=3.0, help="simulated run length in days (default 3)"
    )
    machine.add_argument(
        "--fault",
        choices=FAULTS,
        default="outer_race",
        help="fault to grow on the machine (on pump-7 with --fleet); none: healthy (default outer_race)",
    )
    machine.add_argument(
        "--fleet",
        action="store_true",
        help="stream the default fleet: pump-7 (channels 0/1), fan-2 (2/3), compressor-4 (4/5)",
    )
    machine.add_argument(
        "--print-agent-assets",
        action="store_true",
        help="print the agent's [[assets]] TOML tables for what would be streamed, and exit",
    )
    machine.add_argument(
        "--onset-days", type=float, default=1.0, help="simulated day the fault starts (default 1)"
    )
    machine.add_argument(
        "--life-days", type=_positive, default=2.0, help="days from onset to failure (default 2)"
    )
    machine.add_argument(
        "--snapshot-interval-s",
        type=float,
        default=900.0,
        help="simulated seconds between snapshots (default 900)",
    )
    machine.add_argument(
        "--snapshot-samples", type=int, default=16384, help="vibration samples per snapshot (default 16384)"
    )
    machine.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="simulated seconds per wall second; 0 = as fast as read (default)",
    )
    machine.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    machine.add_argument("--start", type=float, help="simulated start, Unix seconds (default: now)")
    machine.add_argument(
        "--wait-reader-s",
        type=float,
        default=30.0,
        help="seconds to wait for a reader to take the data (default 30)",
    )
    sap = commands.add_parser(
        "sap",
        help="serve a simulated SAP S/4HANA API_MAINTNOTIFICATION (OData V2) on loopback",
        description="Serve SAP S/4HANA's maintenance notification OData V2 service (CSRF tokens, Basic auth, "
        "SAP error bodies, $filter read-back) until interrupted. Password: $PLANTWATCH_SAP_PASSWORD.",
        epilog="example: plantwatch-sim sap --port 8080",
    )
    sap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sap.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    sap.add_argument("--user", default="PLANTWATCH", help="the accepted user (default PLANTWATCH)")
    result.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO")
    return result


def machine_settings(args: argparse.Namespace) -> StreamSettings:
    """The stream that ``plantwatch-sim machine`` arguments describe."""
    from plantwatch.simulators.fleet import default_fleet
    from plantwatch.simulators.machine import FaultSpec
    from plantwatch.simulators.streamer import StreamSettings

    fault = None
    if args.fault != "none":
        fault = FaultSpec(mode=args.fault, onset_s=args.onset_days * 86400, life_s=args.life_days * 86400)
    # one machine is the default fleet's pump-7, so the demo's agent configuration fits either way
    fleet = default_fleet(fault=fault)
    return StreamSettings(
        start_epoch_s=args.start if args.start is not None else time.time(),
        duration_s=args.days * 86400,
        snapshot_interval_s=args.snapshot_interval_s,
        snapshot_samples=args.snapshot_samples,
        speed=args.speed,
        seed=args.seed,
        fleet=fleet if args.fleet else fleet[:1],
    )


def _run_machine(args: argparse.Namespace) -> int:
    from plantwatch.simulators.fleet import agent_asset_tables
    from plantwatch.simulators.serial_link import PtyLink
    from plantwatch.simulators.streamer import stream

    settings = machine_settings(args)
    if args.print_agent_assets:
        print(agent_asset_tables(settings.assets()), end="")
        return 0
    event(
        log,
        logging.INFO,
        "machine_starting",
        assets=",".join(
            f"{a.asset_id}:{a.fault.mode if a.fault else 'healthy'}@{a.vibration_channel}/{a.temperature_channel}"
            for a in settings.assets()
        ),
        days=args.days,
    )
    with PtyLink(link_path=args.link, write_timeout_s=args.wait_reader_s) as link:
        print(f"sensor port: {link.port_path}" + (f" (link {args.link})" if args.link else ""), flush=True)
        step = max(1, int(args.days * 86400 / args.snapshot_interval_s) // 20)

        def progress(done: int, total: int, degradation: float) -> None:
            if done % step == 0 or done == total:
                event(
                    log, logging.INFO, "snapshot", done=done, total=total, degradation=round(degradation, 3)
                )

        stream(settings, link.write, progress=progress)
        if not link.drain(args.wait_reader_s):
            event(log, logging.WARNING, "reader_slow", pending_bytes=link.pending())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``plantwatch-sim``."""
    args = parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.command == "machine":
        return _run_machine(args)
    from plantwatch.simulators.sap import serve

    serve(args.host, args.port, args.user, secret("sap-password", env="PLANTWATCH_SAP_PASSWORD") or "secret")
    return 0


if __name__ == "__main__":
    sys.exit(main())
