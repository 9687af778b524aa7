"""The gateway's store and workflow on a real SQLite file: duplicates, debounce, one open document per
finding, repeats and escalation, maintenance windows, approval modes, quality holds, ledger, replay."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantwatch.clock import parse_rfc3339, rfc3339
from plantwatch.contract import (
    ALERT_SCHEMA,
    HEALTH_SCHEMA,
    ModelRef,
    ProductionContext,
    Record,
    WindowRef,
    uuid7,
)
from plantwatch.gateway.erp import CORRELATION_ID_PATTERN
from plantwatch.gateway.policy import notification_request
from plantwatch.gateway.store import Conflict, ContextIn, GatewayStore, RecordIn
from plantwatch.gateway.workflow import Policy, make_correlation_id

MODEL = ModelRef(name="anomaly-ae", version="1.0.0", sha256="0123456789abcdef" * 4)
EVIDENCE = [
    "Anomaly score 3.40, 3.4× the warning threshold (1.00)",
    "BPFO 3.58× (107.4 Hz): 0.420 g in the envelope, 42× baseline",
]
T0 = parse_rfc3339("2026-03-01T12:00:00.000Z")
EPISODE = rfc3339(T0 - 60)


def alert(
    *,
    asset: str = "pump-7",
    state: str = "alarm",
    failure_mode: str = "outer_race",
    seq: int = 1,
    at: float = T0,
    schema: str = ALERT_SCHEMA,
    episode: str | None = EPISODE,
) -> Record:
    return Record(
        schema=schema,
        id=uuid7(),
        seq=seq,
        ts=rfc3339(at),
        site="plant1",
        agent="gw-line3",
        asset=asset,
        state=state,
        previous_state="normal",
        score=3.4,
        threshold=1.0,
        failure_mode=failure_mode,
        confidence=0.87,
        model=MODEL,
        features={"rms_g": 0.31, "env_bpfo_g": 0.42},
        window=WindowRef(start=rfc3339(at - 0.16), end=rfc3339(at), fs_hz=25600.0, samples=4096),
        evidence=list(EVIDENCE) if schema == ALERT_SCHEMA else [],
        episode=episode if schema == ALERT_SCHEMA and state != "normal" else None,
    )


def health(*, state: str = "alarm", at: float = T0, asset: str = "pump-7", seq: int = 100) -> Record:
    return alert(state=state, at=at, asset=asset, seq=seq, schema=HEALTH_SCHEMA)


def take(store: GatewayStore, record: Record, *, now_s: float = 1000.0):
    """What the gateway service does with a received record; the documents that became due."""
    return store.accept(record, now_s=now_s)


def opened(store: GatewayStore, *records: Record, now_s: float = 1000.0):
    """Take ``records``; the one document they opened."""
    for record in records:
        take(store, record, now_s=now_s)
    (document,) = store.documents()
    return document


def decisions(store: GatewayStore) -> list[str]:
    return [str(entry["decision"]) for entry in store.ledger()]


def make_store(tmp_path: Path, **policy: object) -> GatewayStore:
    settings = {"debounce_alerts": 1, **policy}
    return GatewayStore(tmp_path / "gateway.sqlite", policy=Policy(**settings), erp="sap")  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatewayStore]:
    result = make_store(tmp_path)
    yield result
    result.close()


# --- inbox -------------------------------------------------------------------------------------------


def test_a_duplicate_message_id_is_dropped_and_leaves_the_ledger_unchanged(store: GatewayStore) -> None:
    record = alert()
    assert not take(store, record).duplicate
    ledger = store.ledger()
    again = take(store, record, now_s=1001.0)
    assert again.duplicate and again.due == ()
    assert store.ledger() == ledger
    assert len(store.documents()) == 1


# --- debounce, repeats, escalation ----------------------------------------------------------------------


def test_the_first_alarm_opens_one_pending_document_with_priority_two(store: GatewayStore) -> None:
    record = alert()
    taken = take(store, record)
    (document,) = store.documents()
    assert taken.due == (document.correlation_id,)
    assert (document.status, document.mode, document.severity, document.priority) == (
        "pending",
        "closed_loop",
        "alarm",
        "2",
    )
    assert document.correlation_id == make_correlation_id("plant1", "pump-7", "outer_race", EPISODE, "0")
    assert CORRELATION_ID_PATTERN.match(document.correlation_id)
    entry = store.ledger()[-1]
    assert (entry["decision"], entry["message_id"], entry["model_name"], entry["model_version"]) == (
        "create",
        record.id,
        "anomaly-ae",
        "1.0.0",
    )
    assert entry["model_sha256"] == MODEL.sha256 and entry["confidence"] == 0.87
    assert json.loads(str(entry["features"]))["env_bpfo_g"] == 0.42
    assert json.loads(str(entry["evidence"])) == EVIDENCE


def test_debounce_waits_for_a_second_alarm(tmp_path: Path) -> None:
    store = make_store(tmp_path, debounce_alerts=2, debounce_s=600.0)
    assert take(store, alert(seq=1)).due == ()
    assert store.documents() == []
    assert decisions(store) == ["debounce"]
    assert len(take(store, alert(seq=2, at=T0 + 10)).due) == 1
    assert decisions(store) == ["debounce", "create"]


def test_debounce_opens_when_health_records_show_the_alarm_persisted(tmp_path: Path) -> None:
    store = make_store(tmp_path, debounce_alerts=3, debounce_s=300.0)
    first = alert()
    take(store, first)
    assert take(store, health(at=T0 + 299)).due == ()
    due = take(store, health(at=T0 + 300, seq=101)).due
    (document,) = store.documents()
    assert due == (document.correlation_id,)
    assert document.message_id == first.id  # the opening record is the alert, with its evidence
    assert "still alarm or worse 300 s" in str(store.ledger()[-1]["detail"])


def test_debounce_drops_the_candidate_on_a_newer_normal_record_not_on_an_older_backlog(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path, debounce_alerts=2, debounce_s=10_000.0)
    take(store, alert())
    take(store, health(state="normal", at=T0 - 500))  # backlog measured before the alert: ignored
    assert decisions(store) == ["debounce"]
    take(store, health(state="normal", at=T0 + 30, seq=101))
    assert decisions(store) == ["debounce", "debounce_cleared"]
    take(store, alert(seq=2, at=T0 + 60))  # counting starts over
    assert store.documents() == []


def test_a_repeat_updates_the_open_document_and_a_rise_in_severity_escalates_it(tmp_path: Path) -> None:
    store = make_store(tmp_path, create_on="warning", update_interval_s=3600.0)
    document = opened(store, alert(state="warning"))
    assert (document.severity, document.priority) == ("warning", "3")
    store.document_created(document, number="10000042", found_existing=False, now_s=1010.0)
    assert take(store, alert(state="warning", seq=2, at=T0 + 60), now_s=1100.0).due == ()  # a repeat waits
    assert store.due_updates(1100.0) == []
    assert [d.correlation_id for d in store.due_updates(1010.0 + 3600)] == [document.correlation_id]
    due = take(store, alert(state="alarm", seq=3, at=T0 + 120), now_s=1200.0).due
    assert due == (document.correlation_id,)
    (update,) = store.due_updates(1200.0)
    assert (update.severity, update.priority, update.repeats) == ("alarm", "2", 2)
    assert "again warning" in str(update.update_note) and "rose to alarm" in str(update.update_note)
    assert decisions(store)[-2:] == ["repeat", "escalate"]
    assert store.ledger()[-1]["erp_number"] == "10000042"
    store.update_sent(update, note=update.update_note, priority="2", now_s=1201.0)
    after = store.document(document.correlation_id)
    assert (after.update_note, after.erp_priority) == (None, "2")
    assert store.due_updates(1201.0 + 3599) == []


def test_a_different_failure_mode_or_asset_opens_another_document(store: GatewayStore) -> None:
    take(store, alert())
    take(store, alert(failure_mode="inner_race", seq=2))
    take(store, alert(asset="fan-2", seq=3))
    assert len(store.documents()) == 3


def test_warnings_open_nothing_when_documents_open_on_alarm(store: GatewayStore) -> None:
    take(store, alert(state="warning"))
    assert store.documents() == [] and decisions(store) == ["observe"]


def test_health_records_alone_never_open_a_document(store: GatewayStore) -> None:
    take(store, health())
    assert store.documents() == [] and store.ledger() == []


def test_planned_maintenance_suppresses_new_documents_on_its_asset_only(store: GatewayStore) -> None:
    store.add_maintenance_window(
        site="plant1",
        asset="pump-7",
        starts_at=T0 - 60,
        ends_at=T0 + 60,
        reason="bearing change",
        user="bob",
        now_s=1.0,
    )
    take(store, alert())
    assert store.documents() == []
    assert store.ledger()[-1]["decision"] == "suppress" and "bearing change" in str(
        store.ledger()[-1]["detail"]
    )
    take(store, alert(asset="fan-2", seq=2))
    take(store, alert(seq=3, at=T0 + 60))  # the window has ended
    assert sorted(d.asset for d in store.documents()) == ["fan-2", "pump-7"]


def test_a_fault_that_returns_after_its_document_was_closed_opens_a_new_one(store: GatewayStore) -> None:
    first = opened(store, alert())
    store.document_created(first, number="10000042", found_existing=False, now_s=1010.0)
    store.feedback_read(
        store.document(first.correlation_id), status="completed", outcome="fault_confirmed", now_s=1020.0
    )
    take(store, alert(seq=2, at=T0 + 3600))
    documents = store.documents()
    assert [d.status for d in documents] == ["closed", "pending"]
    assert documents[1].correlation_id == make_correlation_id("plant1", "pump-7", "outer_race", EPISODE, "1")
    (label,) = store.feedback()
    assert (label["label"], label["erp_number"], label["features"]["env_bpfo_g"]) == (
        "fault_confirmed",
        "10000042",
        0.42,
    )


# --- approval modes ---------------------------------------------------------------------------------------


def test_mode_rules_resolve_from_the_most_specific(store: GatewayStore) -> None:
    store.set_mode(site="plant1", asset="*", failure_mode="*", mode="advisory", user="admin", now_s=1.0)
    store.set_mode(
        site="plant1", asset="*", failure_mode="inner_race", mode="shadow", user="admin", now_s=1.0
    )
    store.set_mode(
        site="plant1", asset="fan-2", failure_mode="*", mode="closed_loop", user="admin", now_s=1.0
    )
    take(store, alert(seq=1))
    take(store, alert(failure_mode="inner_race", seq=2))
    take(store, alert(asset="fan-2", failure_mode="inner_race", seq=3))
    modes = {(d.asset, d.failure_mode): (d.mode, d.status) for d in store.documents()}
    assert modes == {
        ("pump-7", "outer_race"): ("advisory", "awaiting_approval"),
        ("pump-7", "inner_race"): ("shadow", "shadow"),
        ("fan-2", "inner_race"): ("closed_loop", "pending"),
    }
    assert [e["actor"] for e in store.ledger() if e["decision"] == "mode_changed"] == ["admin"] * 3


def test_advisory_creates_nothing_until_approved_and_records_who(store: GatewayStore) -> None:
    store.set_mode(site="plant1", asset="*", failure_mode="*", mode="advisory", user="admin", now_s=1.0)
    document = opened(store, alert())
    assert store.due_documents(10_000.0) == []
    approved = store.decide(
        document.correlation_id, approve=True, user="alice", reason="confirmed by ear", now_s=2000.0
    )
    assert (approved.status, approved.decided_by) == ("pending", "alice")
    assert [d.correlation_id for d in store.due_documents(2000.0)] == [document.correlation_id]
    entry = store.ledger()[-1]
    assert (entry["decision"], entry["actor"], entry["reason"]) == ("approved", "alice", "confirmed by ear")
    with pytest.raises(Conflict):
        store.decide(document.correlation_id, approve=False, user="bob", reason="late", now_s=2001.0)


def test_a_rejection_creates_nothing_and_keeps_the_episode_quiet(store: GatewayStore) -> None:
    store.set_mode(site="plant1", asset="*", failure_mode="*", mode="advisory", user="admin", now_s=1.0)
    document = opened(store, alert())
    store.decide(document.correlation_id, approve=False, user="alice", reason="sensor loose", now_s=2000.0)
    take(store, alert(seq=2, at=T0 + 7200), now_s=3000.0)
    assert [d.status for d in store.documents()] == ["rejected"]
    assert store.due_documents(10_000.0) == []
    assert decisions(store)[-2:] == ["rejected", "suppress"]
    # a new episode asks again
    take(store, alert(seq=3, at=T0 + 9000, episode=rfc3339(T0 + 8000)), now_s=3100.0)
    assert [d.status for d in store.documents()] == ["rejected", "awaiting_approval"]


def test_shadow_records_what_would_be_created_and_closes_when_the_asset_is_normal(
    store: GatewayStore,
) -> None:
    store.set_mode(site="plant1", asset="*", failure_mode="*", mode="shadow", user="admin", now_s=1.0)
    document = opened(store, alert())
    assert document.status == "shadow" and store.due_documents(10_000.0) == []
    take(store, alert(state="normal", seq=2, at=T0 + 600))
    assert store.document(document.correlation_id).status == "closed"
    assert decisions(store) == ["mode_changed", "shadow", "shadow_closed", "observe"]


# --- quality holds ------------------------------------------------------------------------------------------


def context(order: str | None, lot: str | None, since: float, *, asset: str = "pump-7") -> ContextIn:
    return ContextIn(
        ProductionContext(
            schema="plantwatch.context/1",
            id=uuid7(),
            site="plant1",
            asset=asset,
            ts=rfc3339(since),
            production_order=order,
            lot=lot,
            material="FLANGE-80" if order else None,
            since=rfc3339(since),
            plant="1000" if order else None,
            storage_location="0001" if order else None,
            quantity=None,
            unit=None,
        )
    )


def holds(store: GatewayStore) -> list[tuple[str | None, str | None]]:
    return sorted((d.production_order, d.lot) for d in store.documents(kind="hold"))


def test_an_excursion_holds_exactly_the_lots_made_during_it(store: GatewayStore) -> None:
    start = parse_rfc3339(EPISODE)  # the excursion runs from the episode's start …
    end = T0 + 600  # … until the alert back to normal
    store.take(
        [
            context("PO-1", "LOT-1", start - 7200),  # ended exactly when the excursion began: not held
            context("PO-2", "LOT-2", start),
            context("PO-3", "LOT-3", start + 100),
            context(None, None, start + 200),  # idle
            context("PO-4", "LOT-4", start + 300),
            context("PO-9", "LOT-9", start, asset="fan-2"),  # another asset: not held
        ],
        now_s=900.0,
    )
    take(store, alert(state="warning", at=start))  # warning: below hold_on, nothing held yet
    assert holds(store) == []
    take(store, alert(state="alarm", seq=2))
    assert holds(store) == [("PO-2", "LOT-2"), ("PO-3", "LOT-3"), ("PO-4", "LOT-4")]
    take(store, alert(state="normal", seq=3, at=end))
    store.take([context("PO-5", "LOT-5", end)], now_s=1100.0)  # began exactly when it ended: not held
    store.take([context("PO-8", "LOT-8", start - 50)], now_s=1150.0)  # late, ran before it: not held
    store.take([context("PO-0", "LOT-0", start + 150)], now_s=1200.0)  # late, ran during it: held
    assert holds(store) == [("PO-0", "LOT-0"), ("PO-2", "LOT-2"), ("PO-3", "LOT-3"), ("PO-4", "LOT-4")]
    assert all(d.status == "pending" for d in store.documents(kind="hold"))
    entry = next(e for e in store.ledger() if e["decision"] == "hold")
    assert entry["kind"] == "hold" and "LOT-2" in str(entry["detail"])


def test_holds_follow_the_approval_mode(store: GatewayStore) -> None:
    store.set_mode(site="plant1", asset="pump-7", failure_mode="*", mode="advisory", user="admin", now_s=1.0)
    store.take([context("PO-2", "LOT-2", T0 - 3600)], now_s=900.0)
    take(store, alert())
    (hold,) = store.documents(kind="hold")
    assert hold.status == "awaiting_approval"


# --- the ERP worker's side -------------------------------------------------------------------------------


def test_document_retry_keeps_the_document_pending_until_its_next_attempt(store: GatewayStore) -> None:
    document = opened(store, alert())
    store.document_retry(document, error="HTTP 503", next_attempt_at=1060.0, now_s=1010.0)
    assert store.due_documents(1059.0) == []
    (due,) = store.due_documents(1060.0)
    assert (due.attempts, due.last_error, due.status) == (1, "HTTP 503", "pending")
    assert store.next_due_at() == 1060.0


def test_a_refused_document_is_dead_lettered_and_replay_makes_it_pending_again(store: GatewayStore) -> None:
    record = alert()
    document = opened(store, record)
    reason = "SAP refused: Equipment PUMP-7 does not exist (IW/012)"
    store.document_failed(document, error=reason, now_s=1010.0)
    assert store.document(document.correlation_id).status == "failed"
    (letter,) = store.dead_letters()
    assert (letter["source"], letter["correlation_id"], letter["reason"]) == (
        "erp",
        document.correlation_id,
        reason,
    )
    assert json.loads(str(letter["payload"]))["id"] == record.id
    assert store.ledger()[-1]["decision"] == "erp_refused"
    take(store, alert(seq=2, at=T0 + 60))  # the episode stays quiet: no second document
    assert len(store.documents()) == 1
    store.replay(int(letter["id"]), user="admin", now_s=2000.0)
    assert [d.correlation_id for d in store.due_documents(2000.0)] == [document.correlation_id]
    assert store.dead_letters() == [] and store.ledger()[-1]["actor"] == "admin"
    with pytest.raises(Conflict):
        store.replay(int(letter["id"]), user="admin", now_s=2001.0)


def test_the_file_is_in_wal_mode_with_its_migrations_recorded(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite"
    GatewayStore(path).close()
    GatewayStore(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [row[0] for row in conn.execute("SELECT number FROM schema_migrations")] == [1, 2, 3, 4]
    finally:
        conn.close()


def test_documents_candidates_and_ledger_survive_reopening_the_file(tmp_path: Path) -> None:
    store = make_store(tmp_path, debounce_alerts=2, debounce_s=10_000.0)
    record = alert()
    take(store, record)
    store.close()
    store = make_store(tmp_path, debounce_alerts=2, debounce_s=10_000.0)
    try:
        assert take(store, record).duplicate  # still a duplicate after a restart
        take(store, alert(seq=2, at=T0 + 5))  # the candidate survived: the second alert opens
        take(store, alert(seq=3, at=T0 + 9))
        assert decisions(store) == ["debounce", "create", "repeat"]
    finally:
        store.close()


# --- correlation id and notification -----------------------------------------------------------------


def test_correlation_ids_are_twenty_base32_characters_and_deterministic() -> None:
    cids = [make_correlation_id("plant1", "pump-7", "outer_race", str(i), "0") for i in range(200)]
    for cid in cids:
        assert re.fullmatch(r"PW[A-Z2-7]{18}", cid)
        assert CORRELATION_ID_PATTERN.match(cid)
    assert len(set(cids)) == len(cids)
    assert make_correlation_id("plant1", "pump-7", "outer_race", "0", "0") == cids[0]


def test_notification_request_carries_evidence_model_and_priority() -> None:
    record = alert()
    cid = "PWAAAAAAAAAAAAAAAAAA"
    request = notification_request(record, correlation_id=cid, severity="alarm", priority="2")
    assert (
        request.correlation_id,
        request.asset,
        request.failure_mode,
        request.severity,
        request.priority,
    ) == (
        cid,
        "pump-7",
        "outer_race",
        "alarm",
        "2",
    )
    assert request.title == "pump-7: bearing outer race defect"
    lines = request.long_text.splitlines()
    for sentence in EVIDENCE:
        assert f"- {sentence}" in lines
    assert any("anomaly-ae 1.0.0" in line and "0123456789ab" in line for line in lines)
    assert any(cid in line and record.id in line for line in lines)
    assert "Confidence: 87%" in request.long_text


def test_the_store_takes_records_in_a_batch(store: GatewayStore) -> None:
    results = store.take([RecordIn(alert()), RecordIn(health(seq=5))], now_s=1000.0)
    assert [r.duplicate for r in results] == [False, False]  # type: ignore[union-attr]
