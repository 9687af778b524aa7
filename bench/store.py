"""Benchmark: the agent's store-and-forward path against raw SQLite and raw paho-mqtt, in one run.

1. **Insert.** :meth:`Outbox.append` of health records in batches of 64 (the agent's analysis chunks)
   against raw ``sqlite3`` ``executemany`` of the same rows (the outbox's own table definition, payloads
   encoded beforehand) in the same batches, each side on a fresh file at the same durability: WAL,
   ``synchronous=NORMAL`` (what the outbox commits health-only transactions with), the same checkpoint
   pragmas. An alert-only variant runs both sides at ``synchronous=FULL``. The share of the outbox's time
   spent in ``Record.to_json`` is measured on the same records.
2. **Forward.** An outbox pre-filled with health records is drained into a private Mosquitto at QoS 1 by
   the real :class:`Publisher` and :class:`MqttClient` (window: the agent's default ``max_in_flight``, no
   drain-rate limit) until it is empty, against a raw paho-mqtt client publishing the same payloads to
   the same broker at QoS 1 with the same in-flight window (the messages queued in paho, at most
   :data:`RAW_QUEUE_AHEAD` ahead of the PUBACKs), done when every PUBACK came. No subscriber: the broker
   acknowledges and drops each message, so both sides measure the publishing client and the broker's
   PUBACK path, not a consumer.
3. **Drain.** A 1,000,000-record backlog in ``agent.sqlite`` (filled through :meth:`Outbox.append`) is
   drained by the real agent process (``python -m plantwatch.agent.cli``; its serial port does not exist,
   so it keeps retrying it while it publishes), timed until ``SELECT count(*) FROM outbox`` on a separate
   read-only connection says empty, sampling the agent's resident memory (VmRSS) at each poll.

Records are real: an :class:`AssetAnalyser` commissions on simulated healthy windows and scores more
(and faulty ones, for the alerts); every stored record is a copy of one of those with its own id and
window times. Progress goes to stderr; the table to stdout; ``--json`` ends with one JSON line of every
figure. The 1 M backlog is larger than the agent's default disk budget (512 MB), so the drain's
``agent.toml`` gets a budget that thins nothing (printed; ``records_thinned`` confirms it).

example: python bench/store.py --insert-records 20000 --forward-records 20000 --drain-records 50000 --drain-rate 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from itertools import zip_longest
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from plantwatch.agent.analysis import AssetAnalyser
from plantwatch.agent.baseline import ANOMALY_INPUTS, CLASSIFIER_INPUTS
from plantwatch.agent.config import AgentSettings, AssetSettings, MqttSettings, OutboxSettings, SerialSettings
from plantwatch.agent.outbox import MIGRATIONS, WAL_LIMIT_BYTES, BufferBudget, Outbox
from plantwatch.agent.publisher import Publisher
from plantwatch.agent.windows import WindowBatch
from plantwatch.clock import rfc3339_many
from plantwatch.contract import Record, uuid7
from plantwatch.models.registry import CLASSIFIER_KIND, DEFAULT_REGISTRY, load_model
from plantwatch.mqtt import BrokerSettings, MqttClient
from plantwatch.simulators.fleet import agent_asset_tables, default_fleet
from plantwatch.simulators.machine import MachineSpec, fault_windows
from plantwatch.simulators.plant import Broker, spawn, stop

SITE, AGENT = "bench", "gw-bench"
FS_HZ = 25_600.0
WINDOW = 4096
WINDOW_STEP_S = WINDOW / 2 / FS_HZ
"""A new window every 2048 samples (50 % overlap), as the agent's windower makes them."""
START_S = 1_772_366_400.0
"""2026-03-01T12:00:00Z: the first copied record's window start (realistic timestamps in the payloads)."""
BATCH = 64
"""Records an ``Outbox.append`` stores in one transaction: the agent's analysis chunk."""
COMMISSIONING_WINDOWS = 40
TEMPLATE_WINDOWS = 64
"""Windows the analyser scores once commissioned; their records are the templates every copy is made from."""

RAW_QUEUE_AHEAD = 50_000
"""Messages the raw paho client queues ahead of the PUBACKs: paho numbers messages modulo 65,536 and
silently overwrites one still waiting when a number comes round again, so the queue stays below that."""
CONNECT_TIMEOUT_S = 10.0
FORWARD_TIMEOUT_S = 1800.0
"""Longest a forwarding run may take before the benchmark gives up on it."""
POLL_S = 0.02
"""How often the forwarding run checks whether the outbox is empty."""
DRAIN_POLL_S = 1.0
"""How often the drain counts the records left and samples the agent's memory."""
DRAIN_FIRST_POLL_S = 0.2
"""Finer polling until the first record has left, to time the agent's start-up."""
DRAIN_STALL_S = 180.0
"""The drain gives up when the count has not moved for this long (the agent's log tail is shown)."""
PROGRESS_INTERVAL_S = 5.0
"""Seconds between progress lines on stderr."""
ROW_OVERHEAD_BYTES = 600
"""Bytes a stored record takes besides its payload (id, topic, kind, the two indexes, page slack: two
1.5 kB records fill a 4 kB page); only used to size a disk budget that thins nothing."""

TARGETS = {"insert_ratio": 0.80, "forward_ratio": 0.70, "drain_s": 300.0}
"""Insert ≥ 0.80 and forward ≥ 0.70 of the raw baseline; a 1 M backlog drained in under 5 minutes."""

Draft = tuple[Record, str]
"""A record as the analysis makes it (placeholder ``seq``) with its topic."""

INSERT_SQL = (
    "INSERT INTO outbox (message_id, asset, kind, priority, topic, payload, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class BenchError(RuntimeError):
    """A part of the benchmark could not run (a process died, a drain stalled)."""


class Progress:
    """Lines of ``what: left, rate`` on stderr, at most one every :data:`PROGRESS_INTERVAL_S`."""

    def __init__(self, what: str, total: int) -> None:
        self.what = what
        self.total = total
        self.started_s = self.last_s = time.perf_counter()
        self.last_left = total

    def update(self, left: int, *, extra: str = "", force: bool = False) -> None:
        """Report ``left`` records to go (and ``extra``) if the interval has passed, or with ``force``
        if anything changed since the last line."""
        now = time.perf_counter()
        if (now - self.last_s < PROGRESS_INTERVAL_S and not force) or (force and left == self.last_left):
            return
        rate = (self.last_left - left) / max(now - self.last_s, 1e-9)
        print(
            f"{self.what}: {left:,} of {self.total:,} left, {rate:,.0f} records/s, "
            f"{now - self.started_s:.1f} s{extra}",
            file=sys.stderr,
            flush=True,
        )
        self.last_s, self.last_left = now, left


# --- records -------------------------------------------------------------------------------------------


def template_records() -> tuple[list[Draft], list[Draft]]:
    """Real health records and alerts (with their topics) from an :class:`AssetAnalyser`.

    The analyser commissions on simulated healthy windows, then scores healthy windows (health records)
    and windows of a grown outer-race defect (alerts, with their evidence). Seeded: the same every run.
    """
    rng = np.random.default_rng(1)
    spec = MachineSpec()
    anomaly = load_model(DEFAULT_REGISTRY, "anomaly-ae", expected_features=ANOMALY_INPUTS)
    classifier = load_model(
        DEFAULT_REGISTRY, "fault-classifier", expected_features=CLASSIFIER_INPUTS, kind=CLASSIFIER_KIND
    )
    asset = AssetSettings(
        id="pump-7", vibration_channel=0, shaft_hz=spec.shaft_hz, commissioning_windows=COMMISSIONING_WINDOWS
    )
    settings = AgentSettings(site=SITE, agent_id=AGENT, serial=SerialSettings(port="loop://"), assets=[asset])
    analyser = AssetAnalyser(settings, asset, anomaly=anomaly, classifier=classifier)
    first = 0

    def analyse(mode: str | None, severity: float, windows: int) -> list[Draft]:
        nonlocal first
        data = fault_windows(spec, mode, severity, windows=windows, samples=WINDOW, fs_hz=FS_HZ, rng=rng)
        starts_us = ((START_S + (first + np.arange(windows)) * WINDOW_STEP_S) * 1e6).astype(np.int64)
        first += windows
        return analyser.analyse(WindowBatch(channel=0, fs_hz=FS_HZ, data=data, start_us=starts_us))

    analyse(None, 0.0, COMMISSIONING_WINDOWS)
    health = [draft for draft in analyse(None, 0.0, TEMPLATE_WINDOWS) if not draft[0].is_alert]
    alerts = [draft for draft in analyse("outer_race", 1.0, TEMPLATE_WINDOWS) if draft[0].is_alert]
    if not health or not alerts:
        raise BenchError(
            f"the analyser made {len(health)} health records and {len(alerts)} alerts; need both"
        )
    return health, alerts


def copies(templates: Sequence[Draft], count: int, *, first: int = 0) -> Iterator[list[Draft]]:
    """``count`` records in batches of :data:`BATCH`: the templates in turn, each copy with its own id
    (UUIDv7) and its own window times (one window step after the previous copy's)."""
    for start in range(first, first + count, BATCH):
        size = min(BATCH, first + count - start)
        starts_s = START_S + (start + np.arange(size)) * WINDOW_STEP_S
        starts_text = rfc3339_many(starts_s)
        ends_text = rfc3339_many(starts_s + WINDOW / FS_HZ)
        batch = []
        for k in range(size):
            record, topic = templates[(start + k) % len(templates)]
            window = dataclasses.replace(record.window, start=starts_text[k], end=ends_text[k])
            batch.append((dataclasses.replace(record, id=uuid7(), ts=ends_text[k], window=window), topic))
        yield batch


def ample_budget(records: int, payload_bytes: int) -> BufferBudget:
    """A disk budget under which ``records`` records of ``payload_bytes`` are never thinned (at least the
    agent's default)."""
    default = OutboxSettings()
    needed_mb = records * (payload_bytes + ROW_OVERHEAD_BYTES) / 1e6
    budget_mb = max(default.disk_budget_mb, 2 * needed_mb / (default.thin_to_percent / 100))
    return dataclasses.replace(default, disk_budget_mb=math.ceil(budget_mb)).budget()


def fill(
    path: Path, templates: Sequence[Draft], count: int, *, budget: BufferBudget, what: str
) -> tuple[float, int]:
    """Store ``count`` copies of ``templates`` in the outbox at ``path`` through :meth:`Outbox.append`;
    the seconds the appends took (making the copies not included) and the bytes of pages in use after."""
    outbox = Outbox(path, agent=AGENT, budget=budget)
    progress = Progress(what, count)
    stored = 0
    spent_s = 0.0
    try:
        for batch in copies(templates, count):
            started = time.perf_counter()
            outbox.append(batch, now_s=START_S)
            spent_s += time.perf_counter() - started
            stored += len(batch)
            progress.update(count - stored)
        level = outbox.level()
    finally:
        outbox.close()
    progress.update(0, force=True)
    if level.records_thinned:
        raise BenchError(f"{what}: {level.records_thinned} records thinned: the budget is too small")
    return spent_s, level.used_bytes


# --- 1. insert -----------------------------------------------------------------------------------------


def insert_outbox(
    path: Path, templates: Sequence[Draft], count: int, *, budget: BufferBudget, what: str
) -> tuple[float, float, list[list[tuple]], dict[str, int]]:
    """Store ``count`` copies of ``templates`` through :meth:`Outbox.append`, batch by batch.

    Returns the seconds the appends took; the seconds ``Record.to_json`` and UTF-8 encoding take for the
    same records, measured right after each append; the rows the outbox stored (numbered as it numbers
    them on a fresh file), for the raw side; and the checkpoint pragmas the outbox runs with. Each batch
    is made just before its append (not timed), so, as in the agent, only one batch of records is alive
    at a time and the interpreter's garbage collector sees a small heap.
    """
    outbox = Outbox(path, agent=AGENT, budget=budget)
    progress = Progress(what, count)
    rows: list[list[tuple]] = []
    append_s = encode_s = 0.0
    seq = 0
    try:
        pragmas = {
            name: outbox.conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("wal_autocheckpoint", "journal_size_limit")
        }
        for batch in copies(templates, count):
            started = time.perf_counter()
            outbox.append(batch, now_s=START_S)
            append_s += time.perf_counter() - started
            numbered = [dataclasses.replace(record, seq=seq + k) for k, (record, _) in enumerate(batch, 1)]
            seq += len(batch)
            started = time.perf_counter()
            payloads = [record.to_json().encode() for record in numbered]
            encode_s += time.perf_counter() - started
            rows.append(
                [
                    (
                        record.id,
                        record.asset,
                        "alert" if record.is_alert else "health",
                        0 if record.is_alert else 1,
                        topic,
                        payload,
                        START_S,
                    )
                    for record, (_, topic), payload in zip(numbered, batch, payloads, strict=True)
                ]
            )
            progress.update(count - seq)
        if outbox.level().records_thinned:
            raise BenchError(f"{what}: the outbox thinned records: the budget is too small")
    finally:
        outbox.close()
    progress.update(0, force=True)
    return append_s, encode_s, rows, pragmas


def insert_raw(
    path: Path, batches: Sequence[list[tuple]], *, synchronous: str, pragmas: dict[str, int]
) -> float:
    """Seconds raw ``sqlite3`` takes to insert the same rows in the same batches (one transaction each)
    into the outbox's table, in WAL mode at ``synchronous`` with the outbox's checkpoint ``pragmas``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        for name, value in pragmas.items():
            conn.execute(f"PRAGMA {name} = {value}")
        conn.executescript(MIGRATIONS[0])
        started = time.perf_counter()
        for rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_SQL, rows)
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def same_rows(outbox_path: Path, raw_path: Path) -> bool:
    """True if both files hold the same rows (message id, topic, payload) in the same order."""
    query = "SELECT message_id, topic, payload FROM outbox ORDER BY position"
    with (
        contextlib.closing(sqlite3.connect(outbox_path)) as outbox,
        contextlib.closing(sqlite3.connect(raw_path)) as raw,
    ):
        return all(a == b for a, b in zip_longest(outbox.execute(query), raw.execute(query)))


def bench_insert(
    directory: Path, templates: Sequence[Draft], count: int, *, synchronous: str, name: str
) -> dict[str, object]:
    """Outbox against raw SQLite for ``count`` copies of ``templates``; the figures."""
    budget = ample_budget(count, len(templates[0][0].to_json()))
    os.sync()  # neither side pays for writing back what came before it
    outbox_s, encode_s, rows, pragmas = insert_outbox(
        directory / f"{name}-outbox.sqlite", templates, count, budget=budget, what=f"{name}: outbox"
    )
    os.sync()
    raw_s = insert_raw(directory / f"{name}-raw.sqlite", rows, synchronous=synchronous, pragmas=pragmas)
    del rows
    identical = same_rows(directory / f"{name}-outbox.sqlite", directory / f"{name}-raw.sqlite")
    for suffix in ("outbox", "raw"):
        for path in directory.glob(f"{name}-{suffix}.sqlite*"):
            path.unlink()
    raw_rate, outbox_rate = count / raw_s, count / outbox_s
    rest_s = outbox_s - encode_s
    return {
        f"{name}_records": count,
        f"{name}_synchronous": synchronous,
        f"{name}_raw_records_per_s": round(raw_rate, 1),
        f"{name}_outbox_records_per_s": round(outbox_rate, 1),
        f"{name}_ratio": round(outbox_rate / raw_rate, 4),
        f"{name}_to_json_us_per_record": round(encode_s / count * 1e6, 2),
        f"{name}_to_json_share": round(min(1.0, encode_s / outbox_s), 4),
        # what the outbox would do if encoding were free (None when the two timings are within noise)
        f"{name}_outbox_without_to_json_records_per_s": round(count / rest_s, 1) if rest_s > 0 else None,
        f"{name}_same_rows": identical,
    }


# --- 2. forward ----------------------------------------------------------------------------------------


def forward_raw(port: int, messages: Sequence[tuple[str, bytes]], *, window: int) -> float:
    """Seconds a raw paho-mqtt client takes to publish ``messages`` at QoS 1 with ``window`` in flight,
    until the last PUBACK."""
    connected, done = threading.Event(), threading.Event()
    ahead = threading.Semaphore(RAW_QUEUE_AHEAD)
    counts = {"acked": 0, "refused": 0}

    def on_connect(
        client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if not getattr(reason, "is_failure", False):
            connected.set()

    def on_publish(client: paho.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        counts["acked"] += 1
        counts["refused"] += bool(getattr(reason, "is_failure", False))
        ahead.release()
        if counts["acked"] == len(messages):
            done.set()

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-store-raw", protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(CONNECT_TIMEOUT_S):
            raise BenchError(f"raw paho client: no connection to 127.0.0.1:{port}")
        started = time.perf_counter()
        progress = Progress("forward raw", len(messages))
        for topic, payload in messages:
            if not ahead.acquire(timeout=FORWARD_TIMEOUT_S):
                raise BenchError(f"raw paho client: {counts['acked']:,} of {len(messages):,} PUBACKs came")
            info = client.publish(topic, payload, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise BenchError(f"raw paho client: publish failed: {paho.error_string(info.rc)}")
            progress.update(len(messages) - counts["acked"])
        while not done.wait(PROGRESS_INTERVAL_S):
            if time.perf_counter() - started > FORWARD_TIMEOUT_S:
                raise BenchError(f"raw paho client: {counts['acked']:,} of {len(messages):,} PUBACKs came")
            progress.update(len(messages) - counts["acked"])
        elapsed = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
    if counts["refused"]:
        raise BenchError(f"raw paho client: the broker refused {counts['refused']} publishes")
    return elapsed


async def forward_outbox(
    path: Path, port: int, *, window: int, records: int, budget: BufferBudget
) -> tuple[float, int]:
    """Seconds the real :class:`Publisher` and :class:`MqttClient` take to empty the outbox at ``path``
    (``records`` records) into the broker, and the records left in it after."""
    outbox = Outbox(path, agent=AGENT, budget=budget)
    client = MqttClient(
        BrokerSettings(host="127.0.0.1", port=port, client_id="bench-store-outbox"), max_in_flight=window
    )
    publisher = Publisher(outbox, client, window=window, drain_rate_per_s=0.0)
    await client.start()
    try:
        if not await client.wait_connected(CONNECT_TIMEOUT_S):
            raise BenchError(f"MqttClient: no connection to 127.0.0.1:{port} ({client.last_error})")
        progress = Progress("forward outbox", records)
        started = time.perf_counter()
        task = asyncio.create_task(publisher.run())
        try:
            while publisher.published < records:
                if task.done():
                    task.result()
                    raise BenchError("the publisher stopped before the outbox was empty")
                if time.perf_counter() - started > FORWARD_TIMEOUT_S:
                    raise BenchError(f"the publisher sent {publisher.published:,} of {records:,}")
                await asyncio.sleep(POLL_S)
                progress.update(records - publisher.published)
            elapsed = time.perf_counter() - started
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = outbox.level().records
    finally:
        await client.stop()
        outbox.close()
    return elapsed, left


def bench_forward(
    directory: Path, broker: Broker, templates: Sequence[Draft], count: int
) -> dict[str, object]:
    """Publisher + MqttClient against raw paho for ``count`` records; the figures."""
    window = MqttSettings().max_in_flight
    path = directory / "forward.sqlite"
    budget = ample_budget(count, len(templates[0][0].to_json()))
    fill_s, _ = fill(path, templates, count, budget=budget, what="forward: filling the outbox")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        messages = [
            (row[0], bytes(row[1]))
            for row in conn.execute("SELECT topic, payload FROM outbox ORDER BY position")
        ]
    raw_s = forward_raw(broker.port, messages, window=window)
    del messages
    outbox_s, left = asyncio.run(
        forward_outbox(path, broker.port, window=window, records=count, budget=budget)
    )
    for stale in directory.glob("forward.sqlite*"):
        stale.unlink()
    raw_rate, outbox_rate = count / raw_s, count / outbox_s
    return {
        "forward_records": count,
        "forward_window": window,
        "forward_fill_records_per_s": round(count / fill_s, 1),
        "forward_raw_records_per_s": round(raw_rate, 1),
        "forward_outbox_records_per_s": round(outbox_rate, 1),
        "forward_ratio": round(outbox_rate / raw_rate, 4),
        "forward_records_left": left,
    }


# --- 3. drain ------------------------------------------------------------------------------------------


def drain_toml(*, state_dir: Path, broker_port: int, budget_mb: int, drain_rate_per_s: float | None) -> str:
    """The agent's configuration: a serial port that does not exist, one asset, the private broker, a
    disk budget that thins nothing and (if given) the drain rate; every other option at its default."""
    rate = f"drain_rate_per_s = {drain_rate_per_s}\n" if drain_rate_per_s is not None else ""
    return f"""site = "{SITE}"
agent_id = "{AGENT}"
state_dir = "{state_dir}"

[serial]
port = "{state_dir / "no-such-serial-port"}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}

[outbox]
disk_budget_mb = {budget_mb}
{rate}
{agent_asset_tables(default_fleet()[:1])}"""


def memory_mb(pid: int, field: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of process ``pid`` in MB (10^6 bytes), from /proc (Linux); ``None`` if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def count_left(path: Path) -> int:
    """Records in the outbox at ``path``, through a read-only connection of its own (WAL lets it read
    while the agent writes)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def bench_drain(
    directory: Path,
    broker: Broker,
    templates: Sequence[Draft],
    count: int,
    *,
    drain_rate_per_s: float | None,
) -> dict[str, object]:
    """Fill ``agent.sqlite`` with ``count`` records, run the real agent until it is empty; the figures."""
    state_dir = directory / "agent"
    database = state_dir / "agent.sqlite"
    budget = ample_budget(count, len(templates[0][0].to_json()))
    fill_s, used_bytes = fill(database, templates, count, budget=budget, what="drain: filling agent.sqlite")
    file_bytes = sum(path.stat().st_size for path in state_dir.glob("agent.sqlite*"))
    default = OutboxSettings()
    # pages in use must stay under the level where thinning starts, with room to spare
    budget_mb = max(
        math.ceil(default.disk_budget_mb),
        math.ceil((used_bytes / (default.thin_to_percent / 100) * 1.25 + WAL_LIMIT_BYTES) / 1e6),
    )
    config = directory / "agent.toml"
    config.write_text(
        drain_toml(
            state_dir=state_dir,
            broker_port=broker.port,
            budget_mb=budget_mb,
            drain_rate_per_s=drain_rate_per_s,
        )
    )
    rate = default.drain_rate_per_s if drain_rate_per_s is None else drain_rate_per_s
    print(
        f"drain: {count:,} records, {file_bytes / 1e6:,.1f} MB on disk, disk_budget_mb {budget_mb}, "
        f"drain_rate_per_s {rate:g}; starting the agent",
        file=sys.stderr,
        flush=True,
    )
    log_path = directory / "agent.log"
    rss: list[float] = []
    progress = Progress("drain", count)
    started = time.perf_counter()
    agent = spawn(["plantwatch-agent", "--config", str(config)], log_path=log_path)
    try:
        first_left_s: float | None = None
        left, moved_s = count, started
        while left:
            time.sleep(DRAIN_POLL_S if first_left_s else DRAIN_FIRST_POLL_S)
            if agent.poll() is not None:
                raise BenchError(f"the agent exited with {agent.returncode}; its log ends:\n{tail(log_path)}")
            now_left = count_left(database)
            now = time.perf_counter()
            if (sample := memory_mb(agent.pid, "VmRSS")) is not None:
                rss.append(sample)
            if now_left < left:
                moved_s = now
                if first_left_s is None:
                    first_left_s = now
            elif now - moved_s > DRAIN_STALL_S:
                raise BenchError(
                    f"the drain stalled at {now_left:,} records; the agent's log ends:\n{tail(log_path)}"
                )
            left = now_left
            progress.update(left, extra=f", agent RSS {rss[-1] if rss else 0:.1f} MB")
        drain_s = time.perf_counter() - started
        high_water = memory_mb(agent.pid, "VmHWM")
    finally:
        exit_code = stop(agent)
    progress.update(0, force=True)
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        left = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        row = conn.execute("SELECT value FROM counters WHERE name = 'records_thinned'").fetchone()
    startup_s = (first_left_s or started) - started
    return {
        "drain_records": count,
        "drain_rate_per_s": rate,
        "drain_fill_s": round(fill_s, 2),
        "drain_fill_records_per_s": round(count / fill_s, 1),
        "drain_file_bytes": file_bytes,
        "drain_disk_budget_mb": budget_mb,
        "drain_default_budget_would_thin": used_bytes
        >= default.thin_at_percent / 100 * default.budget().data_bytes,
        "drain_startup_s": round(startup_s, 2),
        "drain_s": round(drain_s, 2),
        "drain_records_per_s": round(count / max(drain_s - startup_s, 1e-9), 1),
        "drain_records_left": left,
        "drain_records_thinned": row[0] if row else 0,
        "drain_agent_exit_code": exit_code,
        "agent_rss_peak_mb": round(max(rss), 1) if rss else None,
        "agent_rss_median_mb": round(statistics.median(rss), 1) if rss else None,
        "agent_vmhwm_mb": round(high_water, 1) if high_water is not None else None,
    }


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# --- the command ---------------------------------------------------------------------------------------


def met(value: object, target: float, *, below: bool = False) -> str:
    """``met`` / ``missed`` for a figure against its target."""
    if not isinstance(value, int | float):
        return "-"
    return "met" if (value < target if below else value >= target) else "missed"


def report(figures: dict[str, object]) -> None:
    """The table people read."""
    print(
        f"{'store-and-forward':<44}{'records':>10}{'raw rec/s':>12}{'outbox rec/s':>14}{'ratio':>8}  target"
    )
    for name, label, target in (
        ("insert", "insert health, WAL, synchronous=NORMAL", TARGETS["insert_ratio"]),
        ("insert_alert", "insert alerts, WAL, synchronous=FULL", TARGETS["insert_ratio"]),
        ("forward", f"forward, QoS 1, window {figures['forward_window']}", TARGETS["forward_ratio"]),
    ):
        ratio = figures[f"{name}_ratio"]
        print(
            f"{label:<44}{figures[f'{name}_records']:>10,}{figures[f'{name}_raw_records_per_s']:>12,.0f}"
            f"{figures[f'{name}_outbox_records_per_s']:>14,.0f}{ratio:>8.3f}  ≥ {target:.2f} {met(ratio, target)}"
        )
    for name, kind in (("insert", "health"), ("insert_alert", "alert")):
        print(
            f"{kind} insert: Record.to_json {figures[f'{name}_to_json_us_per_record']} µs a record, "
            f"{100 * figures[f'{name}_to_json_share']:.1f} % of the outbox's time; without it "
            f"{figures[f'{name}_outbox_without_to_json_records_per_s'] or float('nan'):,.0f} records/s; "
            f"same rows on both sides: {figures[f'{name}_same_rows']}"
        )
    print(
        f"payload: health {figures['health_payload_bytes']} bytes, alert {figures['alert_payload_bytes']} bytes"
    )
    print(
        f"machine: {figures['cpus']} CPUs, load average {figures['load_average_1m']} before, "
        f"{figures['load_average_1m_end']} after (other work on it slows every figure)"
    )
    if "drain_s" not in figures:
        return
    print(
        f"drain fill: {figures['drain_records']:,} records in {figures['drain_fill_s']} s "
        f"({figures['drain_fill_records_per_s']:,.0f} records/s), {figures['drain_file_bytes'] / 1e6:,.1f} MB "
        f"on disk; disk_budget_mb {figures['drain_disk_budget_mb']} (the default would thin: "
        f"{figures['drain_default_budget_would_thin']}), records thinned {figures['drain_records_thinned']}"
    )
    print(
        f"drain by the agent (drain_rate_per_s {figures['drain_rate_per_s']:g}): empty after "
        f"{figures['drain_s']} s (start-up {figures['drain_startup_s']} s, then "
        f"{figures['drain_records_per_s']:,.0f} records/s), {figures['drain_records_left']} left; target "
        f"< {TARGETS['drain_s']:.0f} s {met(figures['drain_s'], TARGETS['drain_s'], below=True)}"
    )
    print(
        f"agent memory: RSS peak {figures['agent_rss_peak_mb']} MB, median {figures['agent_rss_median_mb']} MB, "
        f"VmHWM {figures['agent_vmhwm_mb']} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--insert-records",
        type=int,
        default=200_000,
        help="health records inserted by each side (default 200000)",
    )
    parser.add_argument(
        "--alert-records",
        type=int,
        default=20_000,
        help="alerts inserted by each side at FULL (default 20000)",
    )
    parser.add_argument(
        "--forward-records", type=int, default=100_000, help="records forwarded by each side (default 100000)"
    )
    parser.add_argument(
        "--drain-records", type=int, default=1_000_000, help="backlog the agent drains (default 1000000)"
    )
    parser.add_argument(
        "--drain-rate",
        type=float,
        default=None,
        metavar="PER_S",
        help=f"the agent's drain_rate_per_s (default: its own, {OutboxSettings().drain_rate_per_s:g}; 0 = unlimited)",
    )
    parser.add_argument("--skip-drain", action="store_true", help="leave out the agent's drain")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args(argv)
    for name in ("insert_records", "alert_records", "forward_records", "drain_records"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    # a plain `kill` stops the benchmark like Ctrl-C: the broker and the agent are stopped on the way out
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    figures: dict[str, object] = {"load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    health, alerts = template_records()
    figures["health_payload_bytes"] = round(statistics.mean(len(r.to_json().encode()) for r, _ in health))
    figures["alert_payload_bytes"] = round(statistics.mean(len(r.to_json().encode()) for r, _ in alerts))
    with tempfile.TemporaryDirectory(prefix="plantwatch-bench-store-") as temporary:
        directory = Path(temporary)
        figures.update(
            bench_insert(directory, health, args.insert_records, synchronous="NORMAL", name="insert")
        )
        figures.update(
            bench_insert(directory, alerts, args.alert_records, synchronous="FULL", name="insert_alert")
        )
        broker = Broker(directory / "broker")
        broker.start()
        try:
            figures.update(bench_forward(directory, broker, health, args.forward_records))
            if not args.skip_drain:
                figures.update(
                    bench_drain(
                        directory, broker, health, args.drain_records, drain_rate_per_s=args.drain_rate
                    )
                )
        finally:
            broker.stop()
    # other work on the machine skews every figure: the load before and after says whether there was any
    figures["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    figures["targets"] = TARGETS
    figures["targets_met"] = {
        "insert_ratio": figures["insert_ratio"] >= TARGETS["insert_ratio"],
        "insert_alert_ratio": figures["insert_alert_ratio"] >= TARGETS["insert_ratio"],
        "forward_ratio": figures["forward_ratio"] >= TARGETS["forward_ratio"],
        **({"drain_s": figures["drain_s"] < TARGETS["drain_s"]} if "drain_s" in figures else {}),
    }
    report(figures)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
