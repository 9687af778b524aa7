"""The agent's outbox on a real SQLite file: numbering, lanes, removal, asset memory, WAL and migrations."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from plantwatch.agent.baseline import BASELINE_FEATURES, Baseline
from plantwatch.agent.outbox import MIGRATIONS, AssetUpdate, BufferBudget, Outbox
from plantwatch.contract import (
    ALERT_SCHEMA,
    HEALTH_SCHEMA,
    ModelRef,
    Record,
    WindowRef,
    parse_record,
    record_topic,
    uuid7,
)
from plantwatch.db import DatabaseError, open_database

SITE, AGENT = "plant1", "gw-line3"
MODEL = ModelRef(name="anomaly-ae", version="1.0.0", sha256="ab" * 32)


def draft(asset: str = "pump-7", *, alert: bool = False, score: float = 0.2) -> tuple[Record, str]:
    """A record as the agent's analysis makes it (placeholder ``seq``) with its topic."""
    record = Record(
        schema=ALERT_SCHEMA if alert else HEALTH_SCHEMA,
        id=uuid7(),
        seq=0,
        ts="2026-03-01T12:00:00.160Z",
        site=SITE,
        agent=AGENT,
        asset=asset,
        state="alarm" if alert else "normal",
        previous_state="warning" if alert else "normal",
        score=score,
        threshold=1.0,
        failure_mode="outer_race" if alert else "healthy",
        confidence=0.8,
        model=MODEL,
        features={"rms_g": 0.21, "env_bpfo_g": 0.42},
        window=WindowRef(
            start="2026-03-01T12:00:00.000Z", end="2026-03-01T12:00:00.160Z", fs_hz=25600.0, samples=4096
        ),
        evidence=["BPFO 3.58× (107.4 Hz): 0.420 g in the envelope, 42× baseline"] if alert else [],
    )
    return record, record_topic(SITE, AGENT, asset, "alert" if alert else "health")


def baseline(windows: int, *, target: int = 40) -> Baseline:
    """An asset's baseline after ``windows`` commissioning windows (complete at ``target``)."""
    learned = Baseline(target_windows=target)
    learned.add({name: np.full(windows, 0.2) for name in BASELINE_FEATURES}, windows)
    if learned.ready:
        learned.finish()
        learned.threshold = 0.42
    return learned


def update(asset: str = "pump-7", *, windows: int = 3, state: str = "warning") -> AssetUpdate:
    return AssetUpdate(
        asset=asset,
        memory=json.dumps({"state": state, "pending_count": 1}),
        baseline=baseline(windows).to_json(),
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "agent.sqlite", agent=AGENT)
    yield box
    box.close()


def test_append_numbers_records_strictly_increasing_from_one(outbox: Outbox) -> None:
    stored = outbox.append([draft(), draft(alert=True), draft()], now_s=100.0)
    assert [record.seq for record in stored] == [1, 2, 3]
    stored = outbox.append([draft(), draft()], now_s=101.0)
    assert [record.seq for record in stored] == [4, 5]
    assert outbox.last_seq() == 5
    # the stored payload carries the number, not the draft's placeholder
    payloads = sorted(parse_record(p.payload).seq for p in outbox.next_batch(10))
    assert payloads == [1, 2, 3, 4, 5]


def test_sequence_counter_survives_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    box = Outbox(path, agent=AGENT)
    box.append([draft() for _ in range(4)], now_s=100.0)
    box.remove([p.position for p in box.next_batch(10)])  # even an empty outbox keeps its counter
    box.close()
    box = Outbox(path, agent=AGENT)
    try:
        assert box.last_seq() == 4
        assert [record.seq for record in box.append([draft()], now_s=200.0)] == [5]
    finally:
        box.close()


def test_alerts_go_before_older_health_records_and_each_lane_keeps_its_order(outbox: Outbox) -> None:
    health_1, health_2, alert_1, health_3, alert_2 = (
        draft(score=0.1),
        draft(score=0.2),
        draft(alert=True, score=3.1),
        draft(score=0.3),
        draft(alert=True, score=3.2),
    )
    outbox.append([health_1, health_2], now_s=100.0)
    outbox.append([alert_1, health_3], now_s=101.0)
    outbox.append([alert_2], now_s=102.0)
    batch = outbox.next_batch(10)
    expected = [alert_1, alert_2, health_1, health_2, health_3]
    assert [p.message_id for p in batch] == [record.id for record, _ in expected]
    assert [p.kind for p in batch] == ["alert", "alert", "health", "health", "health"]
    assert [p.topic for p in batch] == [topic for _, topic in expected]
    assert outbox.next_batch(3) == batch[:3]


def test_remove_deletes_only_the_given_records(outbox: Outbox) -> None:
    outbox.append([draft() for _ in range(5)], now_s=100.0)
    batch = outbox.next_batch(10)
    outbox.remove([batch[1].position, batch[3].position])
    left = outbox.next_batch(10)
    assert [p.message_id for p in left] == [batch[i].message_id for i in (0, 2, 4)]
    outbox.remove([])
    outbox.remove([batch[1].position])  # removing an already removed record is harmless
    assert len(outbox.next_batch(10)) == 3


def level_of(box: Outbox) -> tuple[int, int, float | None, int]:
    level = box.level()
    return level.records, level.alerts, level.oldest_created_at, level.last_seq


def test_level_counts_records_waiting_alerts_the_oldest_creation_time_and_the_last_seq(
    outbox: Outbox,
) -> None:
    assert level_of(outbox) == (0, 0, None, 0)
    outbox.append([draft(), draft()], now_s=100.0)
    outbox.append([draft(alert=True)], now_s=150.0)
    assert level_of(outbox) == (3, 1, 100.0, 3)
    batch = outbox.next_batch(10)
    outbox.remove([p.position for p in batch if p.kind == "health"])
    assert level_of(outbox) == (1, 1, 150.0, 3)
    level = outbox.level()
    assert level.budget_bytes is None and level.percent is None and level.records_thinned == 0


def test_asset_memory_and_baseline_are_stored_with_the_records_and_loaded_back(outbox: Outbox) -> None:
    assert outbox.load_asset("pump-7") == (None, None)
    outbox.append([draft()], now_s=100.0, assets=[update(windows=3)])
    outbox.append(
        [draft()], now_s=101.0, assets=[update(windows=40, state="alarm"), update("fan-2", windows=1)]
    )
    memory, stored = outbox.load_asset("pump-7")
    assert memory is not None and json.loads(memory)["state"] == "alarm"
    # the baseline comes back as the very JSON text stored, and reads back as the same baseline
    assert stored == baseline(40).to_json()
    restored = Baseline.from_json(stored, target_windows=40)
    assert restored == baseline(40)
    assert restored.complete and restored.threshold == 0.42
    assert restored.median["rms_g"] == 0.2
    fan_memory, fan_baseline = outbox.load_asset("fan-2")
    assert fan_memory is not None and json.loads(fan_memory)["state"] == "warning"
    assert fan_baseline is not None
    assert Baseline.from_json(fan_baseline, target_windows=40) == baseline(1)
    assert outbox.load_asset("fan-9") == (None, None)


def test_a_failed_append_stores_neither_records_nor_asset_memory_nor_numbers(outbox: Outbox) -> None:
    first = draft()
    outbox.append([first], now_s=100.0, assets=[update(windows=3)])
    with pytest.raises(sqlite3.IntegrityError):
        # the second record repeats a message id: the whole transaction must roll back
        outbox.append(
            [draft(), first], now_s=101.0, assets=[update(windows=4, state="alarm"), update("fan-2")]
        )
    assert outbox.last_seq() == 1
    assert outbox.level().records == 1
    memory, stored = outbox.load_asset("pump-7")
    assert memory is not None and json.loads(memory)["state"] == "warning"
    assert stored is not None and Baseline.from_json(stored, target_windows=40).windows == 3
    assert outbox.load_asset("fan-2") == (None, None)


def test_the_file_is_in_wal_mode_with_its_migrations_recorded(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    Outbox(path, agent=AGENT).close()
    Outbox(path, agent=AGENT).close()  # reopening applies nothing twice
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [row[0] for row in conn.execute("SELECT number FROM schema_migrations")] == [1, 2, 3]
        assert len(MIGRATIONS) == 3
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {
            "outbox",
            "sequence",
            "baseline",
            "asset_state",
            "recommission",
            "counters",
            "schema_migrations",
        } <= tables
        columns = [row[1] for row in conn.execute("PRAGMA table_info(baseline)")]
        assert columns == ["asset", "state", "updated_at"]
    finally:
        conn.close()


def test_upgrading_a_first_version_file_drops_old_baselines_and_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    conn = open_database(path, MIGRATIONS[:1])  # the agent.sqlite of the first version
    conn.execute("INSERT INTO sequence VALUES (?, 7)", (AGENT,))
    conn.execute("INSERT INTO baseline VALUES ('pump-7', 40, 1, ?, 100.0)", (json.dumps({"rms_g": 8.0}),))
    conn.execute("INSERT INTO asset_state VALUES ('pump-7', ?, 100.0)", (json.dumps({"state": "warning"}),))
    conn.close()
    box = Outbox(path, agent=AGENT)
    try:
        # running sums cannot become medians: the asset commissions again, its decision memory stays
        assert box.load_asset("pump-7") == (json.dumps({"state": "warning"}), None)
        assert box.last_seq() == 7
        box.append([draft()], now_s=200.0, assets=[update(windows=2)])
        assert Baseline.from_json(box.load_asset("pump-7")[1] or "", target_windows=40).windows == 2
    finally:
        box.close()


def test_recommission_requests_are_stored_and_taken_once(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    service = Outbox(path, agent=AGENT)  # the running agent
    try:
        assert service.take_recommission_requests() == []
        command = Outbox(path, agent=AGENT)  # plantwatch-agent --recommission, another connection
        command.request_recommission("pump-7", 100.0)
        command.request_recommission("fan-2", 101.0)
        command.request_recommission("pump-7", 102.0)  # asked again: still one request
        command.close()
        assert sorted(service.take_recommission_requests()) == ["fan-2", "pump-7"]
        assert service.take_recommission_requests() == []
    finally:
        service.close()


def test_a_recommission_request_waits_in_the_file_for_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    command = Outbox(path, agent=AGENT)
    command.request_recommission("pump-7", 100.0)
    command.close()
    service = Outbox(path, agent=AGENT)
    try:
        assert service.take_recommission_requests() == ["pump-7"]
    finally:
        service.close()
    service = Outbox(path, agent=AGENT)
    try:
        assert service.take_recommission_requests() == []
    finally:
        service.close()


def test_health_payloads_leave_out_evidence_and_alert_payloads_keep_it(outbox: Outbox) -> None:
    outbox.append([draft(), draft(alert=True)], now_s=100.0)
    alert, health = outbox.next_batch(10)
    assert "evidence" not in json.loads(health.payload)
    assert parse_record(alert.payload).evidence == [
        "BPFO 3.58× (107.4 Hz): 0.420 g in the envelope, 42× baseline"
    ]


# --- durability -------------------------------------------------------------------------------------


def synchronous_of(box: Outbox) -> int:
    return box.conn.execute("PRAGMA synchronous").fetchone()[0]


def test_a_batch_with_an_alert_commits_fully_synchronous_and_health_alone_normally(outbox: Outbox) -> None:
    outbox.append([draft(), draft()], now_s=100.0)
    assert synchronous_of(outbox) == 1  # NORMAL
    outbox.append([draft(), draft(alert=True)], now_s=101.0)
    assert synchronous_of(outbox) == 2  # FULL


def test_health_records_are_fsynced_before_they_are_handed_to_the_publisher(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    outbox.append([draft()], now_s=100.0)
    assert synced == []  # stored with NORMAL: no fsync yet
    outbox.next_batch(10)
    assert len(synced) == 1  # the log, before anything leaves
    outbox.next_batch(10)
    assert len(synced) == 1  # nothing new stored: nothing to sync
    outbox.append([draft(alert=True)], now_s=101.0)
    outbox.next_batch(10)
    assert len(synced) == 1  # the alert's commit was synchronous already


# --- lanes and cursors --------------------------------------------------------------------------


def test_next_batch_continues_after_the_records_already_in_flight_in_each_lane(outbox: Outbox) -> None:
    outbox.append([draft() for _ in range(4)], now_s=100.0)
    first = outbox.next_batch(2)
    outbox.append([draft(alert=True)], now_s=101.0)
    second = outbox.next_batch(10, after_health=first[-1].position)
    assert [p.kind for p in second] == ["alert", "health", "health"]
    assert [p.position for p in second[1:]] == [p.position for p in outbox.next_batch(10)[3:]]
    assert outbox.next_batch(10, after_alert=second[0].position, after_health=second[-1].position) == []


def test_health_limit_caps_health_records_but_never_alerts(outbox: Outbox) -> None:
    outbox.append([draft() for _ in range(5)] + [draft(alert=True), draft(alert=True)], now_s=100.0)
    assert [p.kind for p in outbox.next_batch(10, health_limit=0)] == ["alert", "alert"]
    assert [p.kind for p in outbox.next_batch(10, health_limit=2)] == ["alert", "alert", "health", "health"]


# --- disk budget --------------------------------------------------------------------------------


def fill(
    box: Outbox, records: int, *, assets: tuple[str, ...] = ("pump-7", "fan-2"), alert_every: int = 0
) -> None:
    """Append ``records`` records in batches of 50, assets taking turns; every ``alert_every``-th is an alert."""
    made = 0
    while made < records:
        batch = []
        for _ in range(min(50, records - made)):
            made += 1
            alert = alert_every > 0 and made % alert_every == 0
            batch.append(draft(assets[made % len(assets)], alert=alert))
        box.append(batch, now_s=float(made))


def test_under_a_disk_budget_health_records_are_thinned_and_every_alert_kept(tmp_path: Path) -> None:
    budget = BufferBudget(budget_bytes=1_000_000, keep_one_in=4)
    box = Outbox(tmp_path / "agent.sqlite", agent=AGENT, budget=budget)
    try:
        fill(box, 3000, alert_every=99)
        level = box.level()
        assert level.records_thinned > 0
        assert level.records + level.records_thinned == 3000
        assert level.alerts == 30
        assert level.used_bytes < budget.thin_at * budget.data_bytes
        assert level.percent is not None and level.percent < 100 * budget.thin_at
        # file on disk: pages in use are reused, so the file stays near the budget
        assert (tmp_path / "agent.sqlite").stat().st_size < 1.2 * budget.budget_bytes
        # survivors keep their order per asset, the newest are all there, older ones are sparser
        pending = box.next_batch(10_000)
        records = [(p.kind, parse_record(p.payload)) for p in pending]
        for asset in ("pump-7", "fan-2"):
            for kind in ("alert", "health"):
                in_lane = [r.seq for k, r in records if k == kind and r.asset == asset]
                assert in_lane and in_lane == sorted(in_lane)
        health = [parse_record(p.payload).seq for p in pending if p.kind == "health"]
        newest = sorted(health)[-100:]
        assert newest == [s for s in range(2900, 3001) if s % 99 != 0][-100:]
        oldest_half = [s for s in health if s <= 1500]
        assert len(oldest_half) < len([s for s in health if s > 1500]) / 2
    finally:
        box.close()


def test_the_thinned_count_survives_a_restart(tmp_path: Path) -> None:
    budget = BufferBudget(budget_bytes=1_000_000)
    box = Outbox(tmp_path / "agent.sqlite", agent=AGENT, budget=budget)
    fill(box, 2000)
    thinned = box.level().records_thinned
    box.close()
    box = Outbox(tmp_path / "agent.sqlite", agent=AGENT, budget=budget)
    try:
        assert thinned > 0 and box.level().records_thinned == thinned
    finally:
        box.close()


def test_alerts_alone_grow_past_the_budget_rather_than_being_dropped(tmp_path: Path) -> None:
    budget = BufferBudget(budget_bytes=1_000_000)
    box = Outbox(tmp_path / "agent.sqlite", agent=AGENT, budget=budget)
    try:
        fill(box, 1500, alert_every=1)
        level = box.level()
        assert level.records == level.alerts == 1500
        assert level.records_thinned == 0
        assert level.used_bytes > budget.data_bytes
    finally:
        box.close()


def test_a_budget_needs_thin_to_below_thin_at() -> None:
    with pytest.raises(ValueError, match="thin_to"):
        BufferBudget(budget_bytes=1_000_000, thin_at=0.5, thin_to=0.6)


# --- a corrupt file -------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_moved_aside_and_a_fresh_one_started(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    path.write_bytes(b"this is not a database, an SD card ate it" * 100)
    box = Outbox(path, agent=AGENT)
    try:
        assert box.moved_aside is not None
        assert box.moved_aside.path.name.startswith("agent.sqlite.corrupt-")
        assert box.moved_aside.path.read_bytes().startswith(b"this is not a database")
        assert "not a usable SQLite database" in box.moved_aside.reason
        assert box.salvaged_seq is None
        assert [r.seq for r in box.append([draft()], now_s=1.0)] == [1]
    finally:
        box.close()


def test_a_damaged_file_is_moved_aside_and_its_sequence_continues(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    box = Outbox(path, agent=AGENT)
    fill(box, 400)
    box.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    box.close()
    data = bytearray(path.read_bytes())
    page = 4096
    # scribble over a page of the outbox's records, far from the small tables at the start of the file
    middle = (len(data) // page // 2) * page
    data[middle : middle + page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(data))
    box = Outbox(path, agent=AGENT)
    try:
        assert box.moved_aside is not None
        assert re.search("malformed|integrity check failed", box.moved_aside.reason)
        assert box.salvaged_seq == 400
        assert [r.seq for r in box.append([draft()], now_s=1.0)] == [401]
        assert box.level().records == 1
    finally:
        box.close()


def test_the_recommission_command_does_not_move_a_running_agents_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(DatabaseError):
        Outbox(path, agent=AGENT, move_aside_corrupt=False)
    assert path.read_bytes() == b"garbage" * 1000
