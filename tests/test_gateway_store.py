"""The gateway's store and policy on a real SQLite file: duplicates, one open document per finding, ledger."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantwatch.contract import ALERT_SCHEMA, HEALTH_SCHEMA, ModelRef, Record, WindowRef, uuid7
from plantwatch.gateway.erp import CORRELATION_ID_PATTERN
from plantwatch.gateway.policy import document_severity, notification_request
from plantwatch.gateway.store import GatewayStore, correlation_id

MODEL = ModelRef(name="anomaly-ae", version="1.0.0", sha256="0123456789abcdef" * 4)
EVIDENCE = [
    "Anomaly score 3.40, 3.4× the warning threshold (1.00)",
    "BPFO 3.58× (107.4 Hz): 0.420 g in the envelope, 42× baseline",
]


def alert(
    *,
    asset: str = "pump-7",
    state: str = "alarm",
    failure_mode: str = "outer_race",
    seq: int = 1,
    schema: str = ALERT_SCHEMA,
) -> Record:
    return Record(
        schema=schema,
        id=uuid7(),
        seq=seq,
        ts="2026-03-01T12:00:00.160Z",
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
        window=WindowRef(
            start="2026-03-01T12:00:00.000Z", end="2026-03-01T12:00:00.160Z", fs_hz=25600.0, samples=4096
        ),
        evidence=list(EVIDENCE) if schema == ALERT_SCHEMA else [],
    )


def take(store: GatewayStore, record: Record, *, now_s: float = 1000.0, create_on: str = "alarm"):
    """What the gateway service does with a received record."""
    severity = document_severity(record, create_on=create_on)
    return store.accept(record, now_s=now_s, open_document_as=severity, erp="sap")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatewayStore]:
    result = GatewayStore(tmp_path / "gateway.sqlite")
    yield result
    result.close()


# --- inbox -------------------------------------------------------------------------------------------


def test_a_duplicate_message_id_is_dropped_and_leaves_the_ledger_unchanged(store: GatewayStore) -> None:
    record = alert()
    accepted, document = take(store, record)
    assert accepted and document is not None
    ledger = store.ledger()
    assert take(store, record, now_s=2000.0) == (False, None)
    assert store.ledger() == ledger
    assert len(store.documents()) == 1
    assert store.conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 1


# --- documents ---------------------------------------------------------------------------------------


def test_the_first_alarm_for_an_asset_and_failure_mode_opens_one_pending_document(
    store: GatewayStore,
) -> None:
    record = alert()
    accepted, document = take(store, record, now_s=1000.0)
    assert accepted
    assert document is not None
    assert document.status == "pending"
    assert (document.asset, document.failure_mode, document.severity) == ("pump-7", "outer_race", "alarm")
    assert document.message_id == record.id
    assert document.correlation_id == correlation_id(record.id)
    assert document.erp == "sap" and document.number is None and document.attempts == 0
    assert store.due_documents(1000.0) == [document]
    assert store.next_due_at() == 0.0
    assert store.opening_record(document) == record
    (entry,) = store.ledger()
    assert entry["decision"] == "create"
    assert entry["correlation_id"] == document.correlation_id
    assert json.loads(entry["evidence"]) == EVIDENCE
    assert json.loads(entry["model"]) == {"name": "anomaly-ae", "version": "1.0.0", "sha256": MODEL.sha256}


def test_a_second_alarm_for_the_same_asset_and_failure_mode_opens_none(store: GatewayStore) -> None:
    _, first = take(store, alert(seq=1))
    accepted, second = take(store, alert(seq=2), now_s=1100.0)
    assert accepted and second is None
    assert len(store.documents()) == 1
    assert [entry["decision"] for entry in store.ledger()] == ["create", "repeat"]
    assert store.ledger()[1]["correlation_id"] == first.correlation_id


def test_a_different_failure_mode_or_asset_opens_another_document(store: GatewayStore) -> None:
    take(store, alert(failure_mode="outer_race"))
    _, other_mode = take(store, alert(failure_mode="inner_race", seq=2))
    _, other_asset = take(store, alert(asset="pump-8", seq=3))
    assert other_mode is not None and other_mode.failure_mode == "inner_race"
    assert other_asset is not None and other_asset.asset == "pump-8"
    assert len({d.correlation_id for d in store.documents()}) == 3


def test_warnings_open_no_document_when_documents_are_created_on_alarm(store: GatewayStore) -> None:
    accepted, document = take(store, alert(state="warning"), create_on="alarm")
    assert accepted and document is None
    assert store.documents() == []
    assert [entry["decision"] for entry in store.ledger()] == ["observe"]


def test_warnings_open_a_warning_document_when_documents_are_created_on_warning(store: GatewayStore) -> None:
    _, document = take(store, alert(state="warning"), create_on="warning")
    assert document is not None and document.severity == "warning"


def test_health_records_never_open_a_document(store: GatewayStore) -> None:
    record = alert(state="alarm", schema=HEALTH_SCHEMA)
    assert document_severity(record, create_on="warning") is None
    assert take(store, record, create_on="warning")[1] is None


def test_document_created_stores_the_erp_number_and_writes_the_ledger(store: GatewayStore) -> None:
    _, document = take(store, alert())
    store.document_created(document, number="10000042", found_existing=False, now_s=1010.0)
    (stored,) = store.documents()
    assert (stored.status, stored.number, stored.attempts, stored.last_error) == ("open", "10000042", 1, None)
    assert store.due_documents(2000.0) == []
    entry = store.ledger()[-1]
    assert (entry["decision"], entry["erp_number"], entry["correlation_id"]) == (
        "erp_created",
        "10000042",
        document.correlation_id,
    )
    # the open document still absorbs repeats, and the ledger names its ERP number
    take(store, alert(seq=2))
    assert store.ledger()[-1]["decision"] == "repeat"
    assert store.ledger()[-1]["erp_number"] == "10000042"


def test_a_document_found_existing_in_the_erp_is_recorded_as_such(store: GatewayStore) -> None:
    _, document = take(store, alert())
    store.document_created(document, number="10000042", found_existing=True, now_s=1010.0)
    assert store.ledger()[-1]["decision"] == "erp_found_existing"


def test_document_retry_keeps_the_document_pending_until_its_next_attempt(store: GatewayStore) -> None:
    _, document = take(store, alert())
    store.document_retry(document, error="HTTP 503", next_attempt_at=1060.0, now_s=1010.0)
    assert store.due_documents(1059.0) == []
    (due,) = store.due_documents(1060.0)
    assert (due.attempts, due.last_error, due.status) == (1, "HTTP 503", "pending")
    assert store.next_due_at() == 1060.0


def test_document_failed_keeps_a_dead_letter_with_the_reason_and_frees_the_slot(store: GatewayStore) -> None:
    record = alert()
    _, document = take(store, record)
    reason = "SAP refused: Equipment PUMP-7 does not exist (IW/012)"
    store.document_failed(document, error=reason, now_s=1010.0)
    (failed,) = store.documents()
    assert (failed.status, failed.last_error, failed.attempts) == ("failed", reason, 1)
    assert store.dead_letter_count() == 1
    source, topic, payload, stored_reason = store.conn.execute(
        "SELECT source, topic, payload, reason FROM dead_letters"
    ).fetchone()
    assert (source, topic, stored_reason) == ("erp", document.correlation_id, reason)
    assert json.loads(payload)["id"] == record.id
    entry = store.ledger()[-1]
    assert (entry["decision"], entry["detail"]) == ("erp_refused", reason)
    # a failed document is not open: the next alarm for the same finding opens a new one
    _, again = take(store, alert(seq=2), now_s=1100.0)
    assert again is not None and again.correlation_id != document.correlation_id


def test_dead_letter_keeps_a_bad_payload_with_its_reason(store: GatewayStore) -> None:
    store.dead_letter(
        source="mqtt",
        topic="plantwatch/v1/plant1/x/y/alert",
        payload=b"\xff",
        reason="payload: not UTF-8",
        now_s=5.0,
    )
    assert store.dead_letter_count() == 1
    assert tuple(store.conn.execute("SELECT payload, reason FROM dead_letters").fetchone()) == (
        b"\xff",
        "payload: not UTF-8",
    )


def test_the_file_is_in_wal_mode_with_its_migration_recorded(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite"
    GatewayStore(path).close()
    GatewayStore(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [row[0] for row in conn.execute("SELECT number FROM schema_migrations")] == [1, 2]
    finally:
        conn.close()


def test_documents_and_ledger_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite"
    store = GatewayStore(path)
    record = alert()
    take(store, record)
    store.close()
    store = GatewayStore(path)
    try:
        assert take(store, record) == (False, None)  # still a duplicate after a restart
        assert take(store, alert(seq=2))[1] is None  # the pending document is still open
        assert [entry["decision"] for entry in store.ledger()] == ["create", "repeat"]
    finally:
        store.close()


# --- correlation id and notification -----------------------------------------------------------------


def test_correlation_id_is_twenty_base32_characters_and_deterministic() -> None:
    ids = [uuid7() for _ in range(200)]
    cids = [correlation_id(message_id) for message_id in ids]
    for cid in cids:
        assert re.fullmatch(r"PW[A-Z2-7]{18}", cid)
        assert CORRELATION_ID_PATTERN.match(cid)
    assert len(set(cids)) == len(ids)
    assert [correlation_id(message_id) for message_id in ids] == cids
    assert correlation_id("018f3e2a-0000-7000-8000-000000000000") == "PWY7HIPTBKBEGFZXINHL"


def test_notification_request_for_an_alarm_carries_evidence_model_and_priority_two() -> None:
    record = alert()
    cid = correlation_id(record.id)
    request = notification_request(record, correlation_id=cid, severity="alarm")
    assert request.priority == "2"
    assert (request.correlation_id, request.asset, request.failure_mode, request.severity) == (
        cid,
        "pump-7",
        "outer_race",
        "alarm",
    )
    assert request.title == "pump-7: bearing outer race defect"
    lines = request.long_text.splitlines()
    for sentence in EVIDENCE:
        assert f"- {sentence}" in lines
    assert any("anomaly-ae 1.0.0" in line and "0123456789ab" in line for line in lines)
    assert any(cid in line and record.id in line for line in lines)
    assert "Confidence: 87%" in request.long_text


def test_notification_request_for_a_warning_has_priority_three() -> None:
    record = alert(state="warning", failure_mode="unknown")
    request = notification_request(record, correlation_id="PWAAAAAAAAAAAAAAAAAA", severity="warning")
    assert request.priority == "3"
    assert request.title == "pump-7: abnormal vibration"
