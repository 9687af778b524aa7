"""The wire contract: UUIDv7 ids, record payloads and their validation ladder, topics."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwatch.contract import (
    ALERT_SCHEMA,
    HEALTH_SCHEMA,
    ModelRef,
    PayloadError,
    Record,
    WindowRef,
    agent_status_topic,
    alert_subscription,
    check_schema,
    gateway_status_topic,
    parse_record,
    parse_record_topic,
    record_topic,
    uuid7,
)

REQUIRED = (
    "schema",
    "id",
    "seq",
    "ts",
    "site",
    "agent",
    "asset",
    "state",
    "previous_state",
    "score",
    "threshold",
    "failure_mode",
    "confidence",
    "model",
    "features",
    "window",
    "evidence",
)


def record(*, alert: bool = True) -> Record:
    return Record(
        schema=ALERT_SCHEMA if alert else HEALTH_SCHEMA,
        id=uuid7(),
        seq=42,
        ts="2026-03-01T12:00:00.160Z",
        site="plant1",
        agent="gw-line3",
        asset="pump-7",
        state="alarm" if alert else "normal",
        previous_state="warning" if alert else "normal",
        score=3.25,
        threshold=1.0,
        failure_mode="outer_race" if alert else "healthy",
        confidence=0.87,
        model=ModelRef(name="anomaly-ae", version="1.0.0", sha256="ab" * 32),
        features={"rms_g": 0.31, "kurtosis": 7.5, "env_bpfo_g": 0.42},
        window=WindowRef(
            start="2026-03-01T12:00:00.000Z", end="2026-03-01T12:00:00.160Z", fs_hz=25600.0, samples=4096
        ),
        evidence=["BPFO 3.58× (107.4 Hz): 0.420 g in the envelope, 42× baseline"] if alert else [],
    )


def body(**changes: Any) -> dict[str, Any]:
    result = json.loads(record().to_json())
    result.update(changes)
    return result


def encoded(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def refused(payload: bytes) -> str:
    with pytest.raises(PayloadError) as caught:
        parse_record(payload)
    return str(caught.value)


# --- ids ---------------------------------------------------------------------------------------------


def test_uuid7_has_version_7_the_rfc_variant_and_the_time_in_its_first_48_bits() -> None:
    now_s = time.time()
    value = uuid.UUID(uuid7(now_s))
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert abs((value.int >> 80) - int(now_s * 1000)) <= 1
    assert str(value) == str(value).lower()


def test_uuid7_is_strictly_increasing_within_one_millisecond() -> None:
    now_s = time.time()
    ids = [uuid7(now_s) for _ in range(5000)]  # more than the 4096 a 12-bit counter holds in one ms
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))
    assert all(uuid.UUID(i).version == 7 for i in ids)
    ints = [uuid.UUID(i).int for i in ids]
    assert ints == sorted(set(ints))


def test_uuid7_stays_increasing_when_the_clock_steps_back() -> None:
    now_s = time.time()
    first = uuid7(now_s)
    assert uuid7(now_s - 5.0) > first


def test_uuid7_from_the_wall_clock_is_increasing() -> None:
    ids = [uuid7() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# --- round trip --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alert", [True, False])
def test_a_record_survives_to_json_and_parse_record(alert: bool) -> None:
    original = record(alert=alert)
    assert parse_record(original.to_json().encode()) == original


def test_health_payload_leaves_out_evidence_and_alert_payload_keeps_it() -> None:
    assert "evidence" not in json.loads(record(alert=False).to_json())
    assert json.loads(record(alert=True).to_json())["evidence"] == record().evidence


def test_non_ascii_evidence_round_trips_as_utf8() -> None:
    original = record()
    payload = original.to_json().encode("utf-8")
    assert "×".encode() in payload or b"\\u00d7" in payload
    assert parse_record(payload).evidence == original.evidence


# --- the validation ladder ---------------------------------------------------------------------------


def test_non_json_is_refused() -> None:
    assert refused(b'{"schema": ').startswith("payload: not JSON")


def test_non_utf8_is_refused() -> None:
    assert refused(b'{"schema": "\xff"}').startswith("payload: not UTF-8")


@pytest.mark.parametrize("payload", [b"[]", b'"alert"', b"42", b"null"])
def test_a_json_value_that_is_not_an_object_is_refused(payload: bytes) -> None:
    assert refused(payload) == "payload: not a JSON object"


@pytest.mark.parametrize("name", REQUIRED)
def test_each_missing_field_is_refused_by_name(name: str) -> None:
    value = body()
    del value[name]
    assert refused(encoded(value)) == f"{name}: missing"


@pytest.mark.parametrize("name", ["name", "version", "sha256"])
def test_a_missing_model_field_is_refused_by_name(name: str) -> None:
    value = body()
    del value["model"][name]
    assert refused(encoded(value)) == f"model.{name}: missing"


@pytest.mark.parametrize("name", ["start", "end", "fs_hz", "samples"])
def test_a_missing_window_field_is_refused_by_name(name: str) -> None:
    value = body()
    del value["window"][name]
    assert refused(encoded(value)) == f"window.{name}: missing"


@pytest.mark.parametrize(
    "schema",
    ["plantwatch.alert/2", "plantwatch.alert/0", "plantwatch.alert", "plantwatch.alert/x", "other/1"],
)
def test_an_unknown_schema_or_major_version_is_refused(schema: str) -> None:
    assert refused(encoded(body(schema=schema))).startswith("schema:")


def test_a_status_schema_is_not_a_record() -> None:
    assert "not a health or alert record" in refused(encoded(body(schema="plantwatch.status/1")))


def test_check_schema_accepts_the_known_majors() -> None:
    for schema in (ALERT_SCHEMA, HEALTH_SCHEMA, "plantwatch.status/1"):
        check_schema(schema)
    with pytest.raises(PayloadError, match="major version"):
        check_schema("plantwatch.health/2")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"state": "broken"}, "state"),
        ({"previous_state": "ALARM"}, "previous_state"),
        ({"asset": "Pump-7"}, "asset"),
        ({"asset": "pump 7"}, "asset"),
        ({"asset": "pump-7\n"}, "asset"),
        ({"site": ""}, "site"),
        ({"agent": "gw/line3"}, "agent"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.01}, "confidence"),
        ({"failure_mode": "gremlins"}, "failure_mode"),
        ({"id": "not-a-uuid"}, "id"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"seq": -1}, "seq"),
        ({"seq": 1 << 63}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"seq": True}, "seq"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": "2026-03-01T12:00:00.160Z\n"}, "ts"),
        ({"score": "high"}, "score"),
        ({"score": float("nan")}, "score"),
        ({"threshold": float("inf")}, "threshold"),
        ({"score": 10**400}, "score"),
        ({"features": {"rms_g": "0.3"}}, "features.rms_g"),
        ({"features": {"rms_g": float("nan")}}, "features.rms_g"),
        ({"features": {"rms_g": True}}, "features.rms_g"),
        ({"features": []}, "features"),
        ({"model": "anomaly-ae"}, "model"),
        ({"window": {"start": "a", "end": "b", "fs_hz": float("inf"), "samples": 4096}}, "window.fs_hz"),
        ({"window": {"start": "a", "end": "b", "fs_hz": 25600, "samples": float("inf")}}, "window"),
        ({"window": {"start": "a", "end": "b", "fs_hz": 10**400, "samples": 4096}}, "window"),
        ({"evidence": "BPFO"}, "evidence"),
        ({"evidence": [1, 2]}, "evidence"),
    ],
)
def test_a_bad_field_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    message = refused(encoded(body(**changes)))
    assert message.startswith(f"{field}:"), message


def test_a_health_record_needs_no_evidence() -> None:
    value = json.loads(record(alert=False).to_json())
    assert "evidence" not in value
    assert parse_record(encoded(value)).evidence == []


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_nothing_but_payload_error(payload: bytes) -> None:
    try:
        parsed = parse_record(payload)
    except PayloadError as error:
        assert str(error).split(":", 1)[0]  # every refusal names a field
        return
    assert isinstance(parsed, Record)


# what json.loads can hand a consumer: NaN and ±Infinity (json.dumps writes them), integers of any size
EDGE_VALUES = st.sampled_from(
    [float("nan"), float("inf"), float("-inf"), 10**400, 1 << 63, -1, 0, True, "", "\n"]
)
JSON_VALUES = EDGE_VALUES | st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=500)
@given(
    name=st.sampled_from(REQUIRED),
    inner=st.one_of(st.none(), st.text(max_size=8)),
    value=JSON_VALUES,
)
def test_any_value_in_any_field_gives_a_record_that_reserialises_or_a_payload_error(
    name: str, inner: str | None, value: Any
) -> None:
    """Whatever a consumer accepts, it can store again as JSON; everything else is a PayloadError."""
    payload = body()
    if inner is not None and isinstance(payload[name], dict):
        payload[name][inner] = value  # a field inside model, window or features
    else:
        payload[name] = value
    try:
        parsed = parse_record(json.dumps(payload).encode())
    except PayloadError:
        return
    assert parse_record(parsed.to_json().encode()) == parsed


@given(st.text(max_size=120))
def test_arbitrary_topics_raise_nothing_but_payload_error(topic: str) -> None:
    try:
        site, agent, asset, kind = parse_record_topic(topic)
    except PayloadError:
        return
    assert record_topic(site, agent, asset, kind) == topic  # type: ignore[arg-type]


# --- topics ------------------------------------------------------------------------------------------


def test_topic_helpers_build_the_documented_topics() -> None:
    assert (
        record_topic("plant1", "gw-line3", "pump-7", "alert") == "plantwatch/v1/plant1/gw-line3/pump-7/alert"
    )
    assert (
        record_topic("plant1", "gw-line3", "pump-7", "health")
        == "plantwatch/v1/plant1/gw-line3/pump-7/health"
    )
    assert agent_status_topic("plant1", "gw-line3") == "plantwatch/v1/plant1/gw-line3/status"
    assert gateway_status_topic("plant1", "gw1") == "plantwatch/v1/plant1/gateway/gw1/status"
    assert alert_subscription("plant1") == "plantwatch/v1/plant1/+/+/alert"


@pytest.mark.parametrize("kind", ["health", "alert"])
def test_parse_record_topic_inverts_record_topic(kind: str) -> None:
    topic = record_topic("plant_1", "gw-line3", "pump-7", kind)  # type: ignore[arg-type]
    assert parse_record_topic(topic) == ("plant_1", "gw-line3", "pump-7", kind)


@pytest.mark.parametrize(
    "topic",
    [
        "plantwatch/v1/plant1/gw-line3/status",
        "plantwatch/v1/plant1/gw-line3/pump-7/context",
        "plantwatch/v2/plant1/gw-line3/pump-7/alert",
        "plantwatch/v1/plant1/gw-line3/pump-7/alert/extra",
        "plantwatch/v1/Plant1/gw-line3/pump-7/alert",
        "plantwatch/v1/plant1/gw-line3//alert",
        "plantwatch/v1/plant1/gw-line3/pump-7\n/alert",
        "plantwatch/v1/plant1/+/pump-7/alert",
    ],
)
def test_parse_record_topic_refuses_other_topics(topic: str) -> None:
    with pytest.raises(PayloadError, match="topic"):
        parse_record_topic(topic)
