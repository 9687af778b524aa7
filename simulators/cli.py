"""``plantwatch-sim``: the stand-ins for the outside world (a sensor on a serial port, SAP)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from plantwatch.config import secret
from plantwatch.log import event, setup_logging

log = logging.getLogger("plantwatch.simulators")

EPILOG = """examples:
  plantwatch-sim machine --link /tmp/pump7.tty --days 3 --onset-days 1 --speed 5000
  plantwatch-sim machine --link /tmp/pump7.tty --fault none --days 1
  plantwatch-sim sap --port 8080          # password: $PLANTWATCH_SAP_PASSWORD (default "secret")
"""

FAULTS = ("outer_race", "inner_race", "ball", "none")


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    result = argparse.ArgumentParser(
        prog="plantwatch-sim",
        description="Simulators for demos and tests: a machine with a growing bearing defect streaming sensor "
        "frames on a pseudo-terminal, and SAP S/4HANA's maintenance notification OData service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = result.add_subparsers(dest="command", required=True, metavar="COMMAND")
    machine = commands.add_parser(
        "machine",
        help="stream a simulated machine's vibration and temperature as sensor frames on a pty",
        description="Create a pseudo-terminal and stream a simulated pump motor's vibration (25.6 kHz) and "
        "temperature on it as framed binary records (see agent/frames.md), one snapshot every "
        "--snapshot-interval-s of simulated time. The agent opens the pty like a USB sensor.",
        epilog="example: plantwatch-sim machine --link /tmp/pump7.tty --days 3 --onset-days 1 --speed 5000",
    )
    machine.add_argument(
        "--link", metavar="PATH", help="also create a symlink to the pty here (a stable path for configs)"
    )
    machine.add_argument("--days", type=float, default=3.0, help="simulated run length in days (default 3)")
    machine.add_argument(
        "--fault", choices=FAULTS, default="outer_race", help="bearing defect to grow (default outer_race)"
    )
    machine.add_argument(
        "--onset-days", type=float, default=1.0, help="simulated day the defect starts (default 1)"
    )
    machine.add_argument(
        "--life-days", type=float, default=2.0, help="days from onset to failure (default 2)"
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


def _run_machine(args: argparse.Namespace) -> int:
    from plantwatch.simulators.machine import FaultSpec
    from plantwatch.simulators.serial_link import PtyLink
    from plantwatch.simulators.streamer import StreamSettings, stream

    fault = None
    if args.fault != "none":
        fault = FaultSpec(mode=args.fault, onset_s=args.onset_days * 86400, life_s=args.life_days * 86400)
    settings = StreamSettings(
        start_epoch_s=args.start if args.start is not None else time.time(),
        duration_s=args.days * 86400,
        snapshot_interval_s=args.snapshot_interval_s,
        snapshot_samples=args.snapshot_samples,
        speed=args.speed,
        seed=args.seed,
        fault=fault,
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
