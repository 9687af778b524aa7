"""Benchmark: alert on the broker → document in the ERP, through a real gateway process, against a real
Tryton 8.2 server and the SAP simulator; with the raw adapter call measured in the same run as baseline.

For each backend:

1. **Plant rate.** ``--plant-alerts`` alerts (each for a new asset, so each opens a document; closed loop,
   no debounce) are published one at a time at ``--rate-per-min`` to a private Mosquitto by an MQTT 5 client
   at QoS 1. An alert's latency runs from just before its publish to the ``erp_created`` row the gateway
   writes in its ledger right after the ERP answered with the document's number (both on this machine's
   wall clock). p50 / p99 / max.
2. **Burst.** ``--burst-alerts`` alerts published back to back; documents per second from the first
   publish to the last ``erp_created`` row.
3. **Baseline.** The same backend's adapter called directly (``create_notification`` of fresh requests,
   one at a time, no broker, no gateway): p50 / p99 and documents per second. The ratios say what the
   gateway path adds to what the ERP costs anyway.

Progress goes to stderr, the table to stdout; ``--json`` ends with one JSON line of every figure.

example: python bench/erp.py --plant-alerts 30 --rate-per-min 60 --burst-alerts 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from plantwatch.gateway.erp import ErpAdapter, NotificationRequest
from plantwatch.simulators.broker import Broker
from plantwatch.simulators.gateway_process import Gateway, Publisher, alert_record


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


@contextmanager
def sap_backend() -> Iterator[tuple[dict[str, object], str, Callable[[], ErpAdapter]]]:
    from plantwatch.gateway.sap import SapAdapter
    from plantwatch.simulators.sap import SapSimulator

    simulator = SapSimulator(password="bench-secret")
    simulator.start()
    try:
        yield (
            {"kind": "sap", "base_url": simulator.url, "user": "PLANTWATCH"},
            "bench-secret",
            lambda: SapAdapter(base_url=simulator.url, user="PLANTWATCH", password="bench-secret"),
        )
    finally:
        simulator.stop()


@contextmanager
def tryton_backend(workdir: Path) -> Iterator[tuple[dict[str, object], str, Callable[[], ErpAdapter]]]:
    from plantwatch.gateway.tryton import TrytonAdapter
    from plantwatch.simulators.tryton import TrytonServer

    with TrytonServer(workdir / "tryton") as server:
        user, password = server.plantwatch_user, server.plantwatch_password
        yield (
            {"kind": "tryton", "base_url": server.url, "database": server.database, "user": user},
            password,
            lambda: TrytonAdapter(
                base_url=server.url, database=server.database, user=user, password=password
            ),
        )


def created_times(gateway: Gateway) -> dict[str, float]:
    """asset → when the gateway recorded its document's creation."""
    rows = gateway.rows("SELECT asset, at FROM ledger WHERE decision = 'erp_created'")
    return {row["asset"]: row["at"] for row in rows}


def run_gateway_path(
    workdir: Path, broker: Broker, erp: dict[str, object], password: str, args: argparse.Namespace, tag: str
) -> dict[str, float]:
    gateway = Gateway(
        workdir / f"gateway-{tag}", broker, erp=erp, erp_password=password, policy={"debounce_alerts": 1}
    )
    gateway.start()
    publisher = Publisher(broker, client_id=f"bench-{tag}")
    figures: dict[str, float] = {}
    try:
        seq = 0
        published: dict[str, float] = {}
        interval = 60.0 / args.rate_per_min
        progress(f"[{tag}] plant rate: {args.plant_alerts} alerts at {args.rate_per_min}/min")
        start = time.monotonic()
        for i in range(args.plant_alerts):
            target = start + i * interval
            time.sleep(max(0.0, target - time.monotonic()))
            seq += 1
            asset = f"rate-{i}"
            published[asset] = time.time()
            publisher.record(alert_record(asset=asset, seq=seq, at=time.time()))
        deadline = time.monotonic() + 120
        while len(created := created_times(gateway)) < len(published) and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = [created[a] - published[a] for a in published if a in created]
        if len(latencies) < len(published):
            raise SystemExit(
                f"[{tag}] only {len(latencies)} of {len(published)} documents created:\n{gateway.log()}"
            )
        figures.update(
            rate_p50_ms=statistics.median(latencies) * 1000,
            rate_p99_ms=percentile(latencies, 0.99) * 1000,
            rate_max_ms=max(latencies) * 1000,
        )
        progress(f"[{tag}] burst: {args.burst_alerts} alerts back to back")
        burst_assets = [f"burst-{i}" for i in range(args.burst_alerts)]
        first = time.time()
        for asset in burst_assets:
            seq += 1
            publisher.record(alert_record(asset=asset, seq=seq, at=time.time()))
        deadline = time.monotonic() + 300
        while not all(a in (created := created_times(gateway)) for a in burst_assets):
            if time.monotonic() > deadline:
                raise SystemExit(f"[{tag}] burst did not complete:\n{gateway.log()}")
            time.sleep(0.05)
        last = max(created[a] for a in burst_assets)
        figures["burst_docs_per_s"] = len(burst_assets) / (last - first)
        duplicates = gateway.rows(
            "SELECT count(*) - count(DISTINCT number) AS d FROM documents WHERE number IS NOT NULL"
        )
        figures["duplicate_numbers"] = float(duplicates[0]["d"])
    finally:
        publisher.close()
        gateway.stop()
    return figures


def run_baseline(make_adapter: Callable[[], ErpAdapter], count: int, tag: str) -> dict[str, float]:
    progress(f"[{tag}] baseline: {count} direct adapter calls")
    adapter = make_adapter()
    latencies = []
    begin = time.perf_counter()
    for i in range(count):
        request = NotificationRequest(
            correlation_id=f"PWBENCH{tag[:3].upper()}{i:08d}"[:20],
            asset=f"base-{i}",
            failure_mode="outer_race",
            severity="alarm",
            priority="2",
            title=f"base-{i}: bearing outer race defect",
            long_text="plantwatch benchmark baseline",
        )
        started = time.perf_counter()
        adapter.create_notification(request)
        latencies.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - begin
    return {
        "direct_p50_ms": statistics.median(latencies) * 1000,
        "direct_p99_ms": percentile(latencies, 0.99) * 1000,
        "direct_docs_per_s": count / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/erp.py",
        description="Alert on the broker → document in the ERP (p50/p99 latency, documents per second) against "
        "Tryton and the SAP simulator, with the direct adapter call as baseline.",
        epilog=__doc__.split("example:")[-1] if __doc__ else None,
    )
    parser.add_argument(
        "--backends", default="tryton,sap", help="comma-separated: tryton, sap (default both)"
    )
    parser.add_argument("--plant-alerts", type=int, default=30, help="alerts at the plant rate (default 30)")
    parser.add_argument(
        "--rate-per-min", type=float, default=60.0, help="plant rate, alerts per minute (default 60)"
    )
    parser.add_argument(
        "--burst-alerts", type=int, default=50, help="alerts published back to back (default 50)"
    )
    parser.add_argument("--baseline-calls", type=int, default=30, help="direct adapter calls (default 30)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    figures: dict[str, Any] = {"plant_alerts": args.plant_alerts, "rate_per_min": args.rate_per_min}
    with tempfile.TemporaryDirectory(prefix="plantwatch-bench-erp-") as scratch:
        workdir = Path(scratch)
        broker = Broker(workdir / "broker")
        broker.start()
        try:
            for name in backends:
                backend = sap_backend() if name == "sap" else tryton_backend(workdir)
                with backend as (erp, password, make_adapter):
                    result = run_gateway_path(workdir, broker, erp, password, args, name)
                    result.update(run_baseline(make_adapter, args.baseline_calls, name))
                result["p50_ratio"] = result["rate_p50_ms"] / result["direct_p50_ms"]
                result["throughput_ratio"] = result["burst_docs_per_s"] / result["direct_docs_per_s"]
                figures[name] = result
        finally:
            broker.stop()
    print(
        f"{'backend':8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'docs/s':>8} | {'direct p50':>10} {'direct/s':>9} | {'p50 ×':>6} {'docs/s ×':>8}"
    )
    for name in backends:
        r = figures[name]
        print(
            f"{name:8} {r['rate_p50_ms']:8.1f} {r['rate_p99_ms']:8.1f} {r['rate_max_ms']:8.1f} {r['burst_docs_per_s']:8.1f} |"
            f" {r['direct_p50_ms']:10.1f} {r['direct_docs_per_s']:9.1f} | {r['p50_ratio']:6.2f} {r['throughput_ratio']:8.2f}"
        )
    if "tryton" in figures:
        verdict = "met" if figures["tryton"]["rate_p99_ms"] < 1000 else "MISSED"
        print(f"target p99 < 1 s against Tryton at {args.rate_per_min:.0f} alerts/min: {verdict}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
