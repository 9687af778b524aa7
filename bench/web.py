"""Benchmark: the planner's fleet page with 2,000 assets, in a real headless Chromium, against a static
HTML file of the same size served by the same server (measured in the same run as baseline).

A gateway database is filled with ``--assets`` assets (a health record each, some in warning and alarm) and
its HTTP server (:class:`~plantwatch.gateway.api.ApiServer`, the gateway's own) started on loopback.

1. **Server time.** ``--requests`` times what the browser fetches to show the fleet page: the page's HTML
   plus the first page of the fleet (``GET /api/v1/fleet``, 100 assets worst first, with counts and
   trends), logged in with a session cookie, over a fresh HTTP connection each. Baseline: the static file
   (the rendered fleet page saved with its scripts removed, so it has the same rows) from the same server.
2. **First render.** ``--loads`` loads in Chromium, each timed from navigation start (``performance.now()``
   in the page) to the first frame in which the fleet table holds its rows. Baseline: loading the static
   file until its table is there.
3. **Alert → visible.** With the fleet page open, ``--alerts`` alerts change the state of an asset on the
   first page: each is stored as the gateway's receiver stores a batch (``GatewayStore.take``) and announced
   on the event bus as the receiver does after its commit; its latency runs from just before the store call
   to the moment a ``MutationObserver`` in the page sees the row's ``data-state`` change (both on this
   machine's wall clock). The MQTT hop before the gateway is not part of it (``bench/erp.py`` measures
   broker → gateway).

Progress goes to stderr, the table to stdout; ``--json`` ends with one JSON line of every figure.

example: python bench/web.py --assets 2000 --loads 20 --alerts 30
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from plantwatch.clock import SystemClock, rfc3339
from plantwatch.contract import ALERT_SCHEMA, HEALTH_SCHEMA, ModelRef, Record, WindowRef, uuid7
from plantwatch.gateway import views
from plantwatch.gateway.api import ApiServer
from plantwatch.gateway.events import EventBus
from plantwatch.gateway.store import GatewayStore, RecordIn
from plantwatch.gateway.users import hash_password
from plantwatch.gateway.workflow import Policy
from plantwatch.simulators.browser import headless_chromium, log_in

SITE = "plant1"
MODEL = ModelRef(name="anomaly-ae", version="2.0.0", sha256="0" * 64)
PASSWORD = "bench-password-1"
TARGET_ALERT_S = 2.0
"""The issue's goal: an alert shows on an open fleet page within 2 s of reaching the gateway."""


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def record(asset: str, seq: int, state: str, at: float) -> Record:
    score = {"normal": 0.4, "warning": 1.6, "alarm": 3.2}[state] + (seq % 97) / 1000
    return Record(
        schema=ALERT_SCHEMA if state != "normal" else HEALTH_SCHEMA,
        id=uuid7(),
        seq=seq,
        ts=rfc3339(at),
        site=SITE,
        agent=f"gw-{seq % 20:02d}",
        asset=asset,
        state=state,
        previous_state="normal",
        score=score,
        threshold=1.0,
        failure_mode="outer_race" if state != "normal" else "healthy",
        confidence=0.9,
        model=MODEL,
        features={"velocity_rms_mm_s": 1.2 + (seq % 50) / 10, "iso_zone": 1.0 + (seq % 3), "kurtosis": 3.1},
        window=WindowRef(start=rfc3339(at - 1), end=rfc3339(at), fs_hz=25600.0, samples=25600),
        evidence=[f"Envelope line at BPFO, {state}"] if state != "normal" else [],
        episode=rfc3339(at) if state != "normal" else None,
    )


def fill(store: GatewayStore, assets: int, now: float) -> None:
    items = []
    for i in range(assets):
        state = "alarm" if i % 400 == 5 else "warning" if i % 90 == 3 else "normal"
        items.append(RecordIn(record(f"asset-{i:05d}", i + 1, state, now - assets + i)))
    store.take(items, now_s=now)


class Session:
    """HTTP requests with the session cookie, a fresh connection each (as a first page load)."""

    def __init__(self, port: int, cookie: str) -> None:
        self.port = port
        self.cookie = cookie

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers={"Cookie": self.cookie})
        reply = conn.getresponse()
        data = reply.read()
        conn.close()
        if reply.status != 200:
            raise RuntimeError(f"GET {path}: {reply.status}")
        return data


def login_cookie(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = urlencode({"user": "bench", "password": PASSWORD}).encode()
    conn.request("POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    reply = conn.getresponse()
    reply.read()
    conn.close()
    return reply.headers["Set-Cookie"].split(";")[0]


def timed(action: Any, count: int) -> list[float]:
    """Wall milliseconds of ``count`` calls of ``action`` (after one warm-up call)."""
    action()
    result = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        result.append((time.perf_counter() - started) * 1000)
    return result


RENDERED = """
const [css, done] = arguments;
function look() {
  if (document.querySelectorAll(css).length > 0) done(performance.now());
  else requestAnimationFrame(look);
}
look();
"""


def first_render(browser: Any, url: str, css: str, count: int) -> list[float]:
    """Milliseconds from navigation start to the first frame with ``css`` present, ``count`` loads."""
    result = []
    for i in range(count + 1):
        browser.get("about:blank")
        browser.get(url)
        took = browser.execute_async_script(RENDERED, css)
        if i:  # the first load warms the cache of scripts and styles
            result.append(float(took))
    return result


WATCH = """
const [asset, state, done] = arguments;
const row = document.querySelector(`#fleet-table tr[data-asset="${asset}"]`);
if (!row) { done(-1); return; }
if (row.getAttribute('data-state') === state) { done(performance.timeOrigin + performance.now()); return; }
const observer = new MutationObserver(() => {
  const now = document.querySelector(`#fleet-table tr[data-asset="${asset}"]`);
  if (now && now.getAttribute('data-state') === state) {
    observer.disconnect();
    done(performance.timeOrigin + performance.now());
  }
});
observer.observe(document.getElementById('fleet-table'), {subtree: true, childList: true, attributes: true});
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/web.py",
        description="The fleet page with many assets in headless Chromium, against a static file of the "
        "same size from the same server; and alert → visible latency.",
    )
    parser.add_argument("--assets", type=int, default=2000, help="assets in the fleet (default 2000)")
    parser.add_argument("--requests", type=int, default=50, help="server-time requests (default 50)")
    parser.add_argument("--loads", type=int, default=20, help="page loads in Chromium (default 20)")
    parser.add_argument("--alerts", type=int, default=30, help="alerts for the latency (default 30)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="plantwatch-bench-web-"))
    clock = SystemClock()
    store = GatewayStore(workdir / "gateway.sqlite", policy=Policy(debounce_alerts=1, default_mode="shadow"))
    store.put_user("bench", role="viewer", password_hash=hash_password(PASSWORD), now_s=clock.now())
    progress(f"filling the gateway's database with {args.assets} assets")
    fill(store, args.assets, clock.now())

    def render(kind: str, key: str) -> Any:
        site, _, name = key.partition("/")
        return views.fleet_row(store, site, name) if kind == "asset" else None

    bus = EventBus(render)
    server = ApiServer(store, site=SITE, clock=clock, events=bus)
    server.start()
    browser = headless_chromium()
    figures: dict[str, Any] = {"assets": args.assets}
    try:
        base = server.page_url.rstrip("/")
        session = Session(server.port, login_cookie(server.port))
        log_in(browser, base, "bench", PASSWORD)
        browser.find_element("css selector", "#fleet-table")
        progress("rendering the fleet page once for the static baseline")
        browser.execute_async_script(RENDERED, "#fleet-table tr[data-asset]")
        html = browser.execute_script("return document.documentElement.outerHTML")
        static = re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S).encode()
        page_bytes = len(session.get("/")) + len(session.get("/api/v1/fleet?limit=100"))
        server.web.files["bench-baseline.html"] = static  # served by the same server, like its pages
        figures["page_bytes"] = page_bytes
        figures["static_bytes"] = len(static)

        progress(f"server time: {args.requests} requests each")
        fleet_ms = timed(lambda: (session.get("/"), session.get("/api/v1/fleet?limit=100")), args.requests)
        static_ms = timed(lambda: session.get("/static/bench-baseline.html"), args.requests)

        progress(f"first render in Chromium: {args.loads} loads each")
        render_ms = first_render(browser, base + "/", "#fleet-table tr[data-asset]", args.loads)
        static_render_ms = first_render(
            browser, base + "/static/bench-baseline.html", "#fleet-table tr[data-asset]", args.loads
        )

        progress(f"alert → visible: {args.alerts} alerts")
        browser.get(base + "/")
        browser.execute_async_script(RENDERED, "#fleet-table tr[data-asset]")
        time.sleep(1.0)  # the event stream connects
        first = views.fleet(store, limit=1)["assets"][0]
        asset, seq = first["asset"], args.assets + 1
        latencies = []
        for i in range(args.alerts):
            state = "warning" if i % 2 == 0 else "alarm"
            sent: list[float] = []

            def send(state: str = state, seq: int = seq, sent: list[float] = sent) -> None:
                time.sleep(0.2)  # the page is watching by now
                sent.append(time.time())
                store.take([RecordIn(record(asset, seq, state, clock.now()))], now_s=clock.now())
                bus.publish("asset", f"{SITE}/{asset}")  # as the receiver does after its commit

            thread = threading.Thread(target=send)
            thread.start()
            seen_ms = browser.execute_async_script(WATCH, asset, state)
            thread.join()
            if seen_ms < 0:
                raise RuntimeError(f"{asset} is not on the open fleet page")
            latencies.append(seen_ms - sent[0] * 1000)
            seq += 1
        figures.update(
            server_p50_ms=round(statistics.median(fleet_ms), 2),
            server_p95_ms=round(percentile(fleet_ms, 95), 2),
            static_server_p50_ms=round(statistics.median(static_ms), 2),
            static_server_p95_ms=round(percentile(static_ms, 95), 2),
            server_ratio=round(statistics.median(fleet_ms) / statistics.median(static_ms), 2),
            render_p50_ms=round(statistics.median(render_ms), 1),
            render_p95_ms=round(percentile(render_ms, 95), 1),
            static_render_p50_ms=round(statistics.median(static_render_ms), 1),
            static_render_p95_ms=round(percentile(static_render_ms, 95), 1),
            render_ratio=round(statistics.median(render_ms) / statistics.median(static_render_ms), 2),
            alert_visible_p50_ms=round(statistics.median(latencies), 1),
            alert_visible_p99_ms=round(percentile(latencies, 99), 1),
            alert_visible_max_ms=round(max(latencies), 1),
            alert_target_met=max(latencies) < TARGET_ALERT_S * 1000,
        )
    finally:
        browser.quit()
        server.stop()
        store.close()

    f = figures
    print(
        f"fleet page, {f['assets']} assets ({f['page_bytes']} bytes of HTML + first page of JSON; static file {f['static_bytes']} bytes)"
    )
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'server: page + fleet JSON':28}{f['server_p50_ms']:>10}{f['server_p95_ms']:>10}")
    print(f"{'server: static file':28}{f['static_server_p50_ms']:>10}{f['static_server_p95_ms']:>10}")
    print(f"{'first render: fleet page':28}{f['render_p50_ms']:>10}{f['render_p95_ms']:>10}")
    print(f"{'first render: static file':28}{f['static_render_p50_ms']:>10}{f['static_render_p95_ms']:>10}")
    print(f"ratios (fleet / static, p50): server {f['server_ratio']}, first render {f['render_ratio']}")
    print(
        f"alert → visible on the open page: p50 {f['alert_visible_p50_ms']} ms, p99 {f['alert_visible_p99_ms']} ms, "
        f"max {f['alert_visible_max_ms']} ms (goal < {TARGET_ALERT_S:g} s: {'met' if f['alert_target_met'] else 'MISSED'})"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
