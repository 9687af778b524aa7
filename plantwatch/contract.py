"""The wire contract between agents, the MES and gateways (DESIGN.md, "Wire contract").

Topics are built and parsed here only; payloads are UTF-8 JSON objects with ``schema``, ``id`` (UUIDv7),
``seq``, ``ts``, ``site``, ``agent`` and ``asset``. :func:`parse_record` is the consumer's validation
ladder: the first problem found raises :class:`PayloadError` naming the field.

**Production context** (``plantwatch/v1/{site}/mes/{asset}/context``, retained, QoS 1, written by the
MES; :func:`parse_context`): which production order and lot run on an asset, from when. The MES is not an
agent, and a retained context is a state, not a stream: the newest one replaces the last, so the payload
carries no ``agent`` and no ``seq``; a consumer that sees two orders them by ``ts``. Schema
``plantwatch.context/1``::

    {"schema": "plantwatch.context/1", "id": "<UUIDv7>", "site": "plant1", "asset": "press-3",
     "ts": "2026-03-02T06:00:00.250Z",        # when the MES published this
     "production_order": "1000123",           # null: the asset is idle
     "lot": "L-2026-0042", "material": "BRK-DISC-220",  # string or null (absent = null)
     "since": "2026-03-02T06:00:00.000Z",     # when this order started on the asset (or it went idle)
     "plant": "1010", "storage_location": "0001",       # where the lot's stock lies, or null
     "quantity": 1200, "unit": "PC"}          # how much the lot holds: both or neither, quantity > 0

``production_order`` must be present (null when idle) and ``since`` must not be after ``ts``; identifiers
are non-empty one-line strings without surrounding spaces (they are matched against ERP keys). An idle
asset's context leaves ``lot``, ``material``, ``storage_location``, ``quantity`` and ``unit`` null.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

TOPIC_ROOT = "plantwatch/v1"

State = Literal["normal", "warning", "alarm"]
STATES: tuple[str, ...] = ("normal", "warning", "alarm")
FAILURE_MODES: tuple[str, ...] = (
    "healthy",
    "inner_race",
    "outer_race",
    "ball",
    "cage",
    "imbalance",
    "misalignment",
    "looseness",
    "overheating",
    "unknown",
)
HEALTH_SCHEMA = "plantwatch.health/1"
ALERT_SCHEMA = "plantwatch.alert/1"
STATUS_SCHEMA = "plantwatch.status/1"
KNOWN_MAJORS = {"plantwatch.health": 1, "plantwatch.alert": 1, "plantwatch.status": 1}
MAX_SEQ = (1 << 63) - 1
"""Largest ``seq``: consumers keep it in a SQLite INTEGER (signed 64 bits)."""

_NAME = re.compile(r"^[a-z0-9_-]+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class PayloadError(ValueError):
    """A payload that breaks the wire contract; the message names the field and the problem."""


# --- topics -----------------------------------------------------------------------------------------


def record_topic(site: str, agent: str, asset: str, kind: Literal["health", "alert"]) -> str:
    """``plantwatch/v1/{site}/{agent}/{asset}/{kind}``."""
    return f"{TOPIC_ROOT}/{site}/{agent}/{asset}/{kind}"


def agent_status_topic(site: str, agent: str) -> str:
    """``plantwatch/v1/{site}/{agent}/status`` (retained)."""
    return f"{TOPIC_ROOT}/{site}/{agent}/status"


def gateway_status_topic(site: str, gateway: str) -> str:
    """``plantwatch/v1/{site}/gateway/{gateway}/status`` (retained)."""
    return f"{TOPIC_ROOT}/{site}/gateway/{gateway}/status"


def alert_subscription(site: str) -> str:
    """The filter that matches every agent's alerts at ``site``."""
    return f"{TOPIC_ROOT}/{site}/+/+/alert"


def health_subscription(site: str) -> str:
    """The filter that matches every agent's health records at ``site``."""
    return f"{TOPIC_ROOT}/{site}/+/+/health"


def agent_status_subscription(site: str) -> str:
    """The filter that matches every agent's status at ``site``.

    Gateway statuses (``…/{site}/gateway/{gateway}/status``) are one level deeper and do not match; the
    MES writes no status. A catch-all such as ``…/{site}/+/+/+`` would take a gateway's status for a record.
    """
    return f"{TOPIC_ROOT}/{site}/+/status"


_NOT_AGENTS = ("gateway", "mes")
"""First topic levels under a site that belong to other publishers (DESIGN.md); no agent bears these ids."""


def parse_agent_status_topic(topic: str) -> tuple[str, str]:
    """``(site, agent)`` of an agent's status topic; :class:`PayloadError` otherwise.

    >>> parse_agent_status_topic("plantwatch/v1/plant1/gw-line3/status")
    ('plant1', 'gw-line3')
    """
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT or parts[4] != "status":
        raise PayloadError(f"topic {topic!r}: not a plantwatch agent status topic")
    site, agent = parts[2], parts[3]
    for name, value in (("site", site), ("agent", agent)):
        if not _NAME.fullmatch(value):
            raise PayloadError(f"topic {topic!r}: {name} {value!r} must match [a-z0-9_-]+")
    if agent in _NOT_AGENTS:
        raise PayloadError(f"topic {topic!r}: {agent!r} is reserved and names no agent")
    return site, agent


def parse_record_topic(topic: str) -> tuple[str, str, str, str]:
    """``(site, agent, asset, kind)`` of a health or alert topic; :class:`PayloadError` otherwise."""
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != TOPIC_ROOT or parts[5] not in ("health", "alert"):
        raise PayloadError(f"topic {topic!r}: not a plantwatch record topic")
    site, agent, asset, kind = parts[2], parts[3], parts[4], parts[5]
    for name, value in (("site", site), ("agent", agent), ("asset", asset)):
        if not _NAME.fullmatch(value):
            raise PayloadError(f"topic {topic!r}: {name} {value!r} must match [a-z0-9_-]+")
    return site, agent, asset, kind


# --- ids --------------------------------------------------------------------------------------------

_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7(now_s: float | None = None) -> str:
    """A UUIDv7 string (RFC 9562): 48-bit Unix milliseconds, then a counter and random bits.

    Ids made in one process are strictly increasing, also within one millisecond.
    """
    global _last_ms, _counter
    ms = int((time.time() if now_s is None else now_s) * 1000)
    with _uuid_lock:
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter >= 1 << 12:
                ms += 1
                _counter = 0
        else:
            _counter = 0
        _last_ms = ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    text = f"{value:032x}"
    # the canonical 8-4-4-4-12 form, without building a uuid.UUID (ids are made for every record)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# --- payloads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """Which model scored a record."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class WindowRef:
    """The stretch of signal a record describes."""

    start: str
    end: str
    fs_hz: float
    samples: int


SPECTRUM_BINS_MAX = 800
"""Most bins of one trace of a spectrum snapshot."""
MARKERS = ("1x", "2x", "3x", "bpfo", "bpfi", "bsf", "ftf")


@dataclass(frozen=True)
class SpectrumTrace:
    """One amplitude spectrum, quantised: the amplitude at ``k * df_hz`` is ``bins[k] * scale`` (``unit``).

    ``bins`` are 0…255, relative to the largest (``scale`` = largest / 255); each is the largest of the
    FFT lines it stands for, so a narrow line keeps its height.
    """

    unit: str
    df_hz: float
    scale: float
    bins: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "df_hz": self.df_hz, "scale": self.scale, "bins": list(self.bins)}


@dataclass(frozen=True)
class SpectrumSnapshot:
    """What the planner's page draws of one window (contract 1.3): its amplitude and envelope spectra and
    where the running-speed orders (``1x``, ``2x``, ``3x``) and bearing defect frequencies (``bpfo``,
    ``bpfi``, ``bsf``, ``ftf``, when the bearing is known) lie, at the speed ``shaft_hz``."""

    shaft_hz: float
    markers_hz: dict[str, float]
    spectrum: SpectrumTrace
    envelope: SpectrumTrace

    def as_dict(self) -> dict[str, Any]:
        return {
            "shaft_hz": self.shaft_hz,
            "markers_hz": dict(self.markers_hz),
            "spectrum": self.spectrum.as_dict(),
            "envelope": self.envelope.as_dict(),
        }


@dataclass(frozen=True)
class Record:
    """A health record or (with ``evidence``) an alert, as published by an agent."""

    schema: str
    id: str
    seq: int
    ts: str
    site: str
    agent: str
    asset: str
    state: str
    previous_state: str
    score: float
    threshold: float
    failure_mode: str
    confidence: float
    model: ModelRef
    features: dict[str, float]
    window: WindowRef
    evidence: list[str] = field(default_factory=list)
    classifier: ModelRef | None = None
    """The fault classifier that named ``failure_mode`` (optional; added in 1.1, ignored by 1.0 readers)."""
    episode: str | None = None
    """On alerts while the asset is not normal: when (RFC 3339, measurement time) the asset left normal.
    Every alert of one abnormal episode carries the same value, so gateways that each see only some of the
    alerts (a shared subscription) agree on the episode (optional; added in 1.2, ignored by older readers)."""
    spectrum: SpectrumSnapshot | None = None
    """A compact spectrum snapshot of the window: on every alert, on a health record now and then (optional;
    added in 1.3, ignored by older readers)."""

    @property
    def is_alert(self) -> bool:
        """True for an alert (state change or repeated alarm)."""
        return self.schema.startswith("plantwatch.alert/")

    def to_json(self) -> str:
        """The payload as compact UTF-8 JSON; health records leave out ``evidence``."""
        # a shallow dict per level: dataclasses.asdict deep-copies every feature and evidence line, which
        # cost the outbox three quarters of its insert time
        body = {name: getattr(self, name) for name in _RECORD_FIELDS}
        body["model"] = _shallow(self.model)
        body["window"] = _shallow(self.window)
        if not self.is_alert:
            del body["evidence"]
        if self.episode is None:
            del body["episode"]
        if self.spectrum is None:
            del body["spectrum"]
        else:
            body["spectrum"] = self.spectrum.as_dict()
        if self.classifier is None:
            del body["classifier"]
        else:
            body["classifier"] = _shallow(self.classifier)
        return json.dumps(body, separators=(",", ":"), allow_nan=False)


def _shallow(value: Any) -> dict[str, Any]:
    return {item.name: getattr(value, item.name) for item in fields(value)}


_RECORD_FIELDS = tuple(item.name for item in fields(Record))


def _require(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body:
        raise PayloadError(f"{name}: missing")
    value = body[name]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise PayloadError(f"{name}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _finite(value: Any, name: str) -> float:
    # json.loads reads NaN, Infinity and integers of any size: none is a usable measurement, and NaN
    # and Infinity could not be written back out as JSON
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError(f"{name}: integer out of range") from None
    if not math.isfinite(number):
        raise PayloadError(f"{name}: expected a finite number, got {value!r}")
    return number


def _model_ref(body: dict[str, Any], name: str) -> ModelRef:
    reference = _require(body, name, dict)
    try:
        return ModelRef(
            name=str(reference["name"]), version=str(reference["version"]), sha256=str(reference["sha256"])
        )
    except KeyError as error:
        raise PayloadError(f"{name}.{error.args[0]}: missing") from None


def check_schema(schema: str) -> None:
    """Refuse a schema whose name or major version this consumer does not know."""
    name, _, major = schema.partition("/")
    if name not in KNOWN_MAJORS:
        raise PayloadError(f"schema: unknown schema {schema!r}")
    if not (major.isascii() and major.isdigit()) or int(major) != KNOWN_MAJORS[name]:
        raise PayloadError(f"schema: major version of {schema!r} not supported")


def decode_json_object(payload: bytes) -> dict[str, Any]:
    """The first rungs of every payload's validation: UTF-8, JSON, an object (else :class:`PayloadError`)."""
    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise PayloadError(f"payload: not UTF-8 ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise PayloadError(f"payload: not JSON ({error.msg} at {error.pos})") from None
    if not isinstance(body, dict):
        raise PayloadError("payload: not a JSON object")
    return body


def parse_record(payload: bytes) -> Record:
    """Validate and parse a health or alert payload; raise :class:`PayloadError` on the first problem."""
    body = decode_json_object(payload)
    schema = _require(body, "schema", str)
    check_schema(schema)
    if schema.split("/")[0] not in ("plantwatch.health", "plantwatch.alert"):
        raise PayloadError(f"schema: {schema!r} is not a health or alert record")
    if not _UUID.fullmatch(_require(body, "id", str)):
        raise PayloadError(f"id: {body['id']!r} is not a UUIDv7")
    if not 0 <= _require(body, "seq", int) <= MAX_SEQ:
        raise PayloadError(f"seq: must be within 0..{MAX_SEQ}")
    if not _RFC3339.fullmatch(_require(body, "ts", str)):
        raise PayloadError(f"ts: {body['ts']!r} is not an RFC 3339 timestamp")
    for name in ("site", "agent", "asset"):
        if not _NAME.fullmatch(_require(body, name, str)):
            raise PayloadError(f"{name}: {body[name]!r} must match [a-z0-9_-]+")
    for name in ("state", "previous_state"):
        if _require(body, name, str) not in STATES:
            raise PayloadError(f"{name}: {body[name]!r} is not one of {', '.join(STATES)}")
    if _require(body, "failure_mode", str) not in FAILURE_MODES:
        raise PayloadError(f"failure_mode: {body['failure_mode']!r} is not a known failure mode")
    score = _finite(_require(body, "score", (int, float)), "score")
    threshold = _finite(_require(body, "threshold", (int, float)), "threshold")
    confidence = _finite(_require(body, "confidence", (int, float)), "confidence")
    if not 0.0 <= confidence <= 1.0:
        raise PayloadError("confidence: must be within 0..1")
    model_ref = _model_ref(body, "model")
    features = _require(body, "features", dict)
    for key, value in features.items():
        _finite(value, f"features.{key}")
    window = _require(body, "window", dict)
    try:
        window_ref = WindowRef(
            start=str(window["start"]),
            end=str(window["end"]),
            fs_hz=float(window["fs_hz"]),
            samples=int(window["samples"]),
        )
    except KeyError as error:
        raise PayloadError(f"window.{error.args[0]}: missing") from None
    except (TypeError, ValueError, OverflowError) as error:
        raise PayloadError(f"window: {error}") from None
    if not math.isfinite(window_ref.fs_hz):
        raise PayloadError(f"window.fs_hz: expected a finite number, got {window['fs_hz']!r}")
    classifier_ref = _model_ref(body, "classifier") if body.get("classifier") is not None else None
    episode = body.get("episode")
    if episode is not None and not (isinstance(episode, str) and _RFC3339.fullmatch(episode)):
        raise PayloadError(f"episode: {episode!r} is not an RFC 3339 timestamp")
    spectrum = _snapshot(body["spectrum"]) if body.get("spectrum") is not None else None
    evidence: list[str] = []
    if schema.startswith("plantwatch.alert/"):
        evidence = _require(body, "evidence", list)
        if not all(isinstance(line, str) for line in evidence):
            raise PayloadError("evidence: expected a list of sentences")
    return Record(
        schema=schema,
        id=body["id"],
        seq=body["seq"],
        ts=body["ts"],
        site=body["site"],
        agent=body["agent"],
        asset=body["asset"],
        state=body["state"],
        previous_state=body["previous_state"],
        score=score,
        threshold=threshold,
        failure_mode=body["failure_mode"],
        confidence=confidence,
        model=model_ref,
        features={k: float(v) for k, v in features.items()},
        window=window_ref,
        evidence=list(evidence),
        classifier=classifier_ref,
        episode=episode,
        spectrum=spectrum,
    )


def _positive(value: Any, name: str) -> float:
    number = _finite(value, name)
    if number <= 0:
        raise PayloadError(f"{name}: must be above 0, got {value!r}")
    return number


def _trace(body: dict[str, Any], name: str) -> SpectrumTrace:
    trace = body.get(name)
    if not isinstance(trace, dict):
        raise PayloadError(f"spectrum.{name}: expected an object, got {trace!r}")
    for key in ("unit", "df_hz", "scale", "bins"):
        if key not in trace:
            raise PayloadError(f"spectrum.{name}.{key}: missing")
    if not isinstance(trace["unit"], str):
        raise PayloadError(f"spectrum.{name}.unit: expected a string")
    scale = _finite(trace["scale"], f"spectrum.{name}.scale")
    if scale < 0:
        raise PayloadError(f"spectrum.{name}.scale: must not be negative")
    bins = trace["bins"]
    if not isinstance(bins, list) or not 0 < len(bins) <= SPECTRUM_BINS_MAX:
        raise PayloadError(f"spectrum.{name}.bins: expected a list of 1..{SPECTRUM_BINS_MAX} integers")
    if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in bins):
        raise PayloadError(f"spectrum.{name}.bins: every bin must be an integer 0..255")
    return SpectrumTrace(
        trace["unit"], _positive(trace["df_hz"], f"spectrum.{name}.df_hz"), scale, tuple(bins)
    )


def _snapshot(body: Any) -> SpectrumSnapshot:
    if not isinstance(body, dict):
        raise PayloadError(f"spectrum: expected an object, got {body!r}")
    if "shaft_hz" not in body:
        raise PayloadError("spectrum.shaft_hz: missing")
    markers = body.get("markers_hz")
    if not isinstance(markers, dict):
        raise PayloadError("spectrum.markers_hz: expected an object")
    for key in markers:
        if key not in MARKERS:
            raise PayloadError(f"spectrum.markers_hz.{key}: not one of {', '.join(MARKERS)}")
    return SpectrumSnapshot(
        shaft_hz=_positive(body["shaft_hz"], "spectrum.shaft_hz"),
        markers_hz={key: _positive(value, f"spectrum.markers_hz.{key}") for key, value in markers.items()},
        spectrum=_trace(body, "spectrum"),
        envelope=_trace(body, "envelope"),
    )


# --- production context (from the MES) ------------------------------------------------------------

CONTEXT_SCHEMA = "plantwatch.context/1"
_CONTEXT_SCHEMA_NAME, _, _CONTEXT_MAJOR = CONTEXT_SCHEMA.partition("/")
_CONTEXT_TEXT_FIELDS = ("production_order", "lot", "material", "plant", "storage_location", "unit")
_IDLE_EMPTY_FIELDS = ("lot", "material", "storage_location", "quantity", "unit")
"""What an idle asset's context must leave null: nothing is being made, so there is no lot to hold."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def context_topic(site: str, asset: str) -> str:
    """``plantwatch/v1/{site}/mes/{asset}/context`` (retained, written by the MES)."""
    return f"{TOPIC_ROOT}/{site}/mes/{asset}/context"


def context_subscription(site: str) -> str:
    """The filter that matches the production context of every asset at ``site``."""
    return f"{TOPIC_ROOT}/{site}/mes/+/context"


def parse_context_topic(topic: str) -> tuple[str, str]:
    """``(site, asset)`` of a production context topic; :class:`PayloadError` otherwise.

    >>> parse_context_topic("plantwatch/v1/plant1/mes/pump-7/context")
    ('plant1', 'pump-7')
    """
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != TOPIC_ROOT or parts[3] != "mes" or parts[5] != "context":
        raise PayloadError(f"topic {topic!r}: not a plantwatch production context topic")
    site, asset = parts[2], parts[4]
    for name, value in (("site", site), ("asset", asset)):
        if not _NAME.fullmatch(value):
            raise PayloadError(f"topic {topic!r}: {name} {value!r} must match [a-z0-9_-]+")
    return site, asset


@dataclass(frozen=True)
class ProductionContext:
    """What runs on an asset, as the MES says: a production order and its lot, or nothing (idle).

    ``production_order`` None means the asset is idle; then ``lot``, ``material``, ``storage_location``,
    ``quantity`` and ``unit`` are None too. ``since`` (RFC 3339) is when this order started on the asset
    (or when it went idle); ``ts`` when the MES published this message. ``quantity`` is in ``unit`` (both
    or neither).
    """

    schema: str
    id: str
    site: str
    asset: str
    ts: str
    production_order: str | None
    lot: str | None
    material: str | None
    since: str
    plant: str | None = None
    storage_location: str | None = None
    quantity: float | None = None
    unit: str | None = None

    @property
    def idle(self) -> bool:
        """True when no production order runs on the asset."""
        return self.production_order is None

    def to_json(self) -> str:
        """The payload as compact UTF-8 JSON; every field is written, absent values as ``null``."""
        body = {item.name: getattr(self, item.name) for item in fields(self)}
        return json.dumps(body, separators=(",", ":"), allow_nan=False)


def _rfc3339_moment(body: dict[str, Any], name: str) -> datetime:
    text = _require(body, name, str)
    if not _RFC3339.fullmatch(text):
        raise PayloadError(f"{name}: {text!r} is not an RFC 3339 timestamp")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise PayloadError(f"{name}: {text!r} is not a valid time ({error})") from None


def _context_text(body: dict[str, Any], name: str) -> str | None:
    """An optional identifier: absent or null gives None; else non-empty text, trimmed, one line."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{name}: expected a string or null, got {value!r}")
    # identifiers are matched against the ERP's keys: a padded or empty one would match nothing there
    if not value or value != value.strip() or _CONTROL.search(value):
        raise PayloadError(
            f"{name}: {value!r} must be non-empty, without surrounding spaces or control characters"
        )
    return value


def parse_context(payload: bytes) -> ProductionContext:
    """Validate and parse a production context payload; raise :class:`PayloadError` on the first problem.

    The ladder: UTF-8 JSON object; ``schema`` (name and major); ``id`` (UUIDv7); ``ts``; ``site`` and
    ``asset``; ``production_order`` (present, a string or null); ``since`` (not after ``ts``); the optional
    identifiers; ``quantity`` (a positive finite number or null) with ``unit``; an idle asset's empty fields.
    Keys this version does not know are ignored (a later minor version may add some).
    """
    body = decode_json_object(payload)
    schema = _require(body, "schema", str)
    name, _, major = schema.partition("/")
    if name != _CONTEXT_SCHEMA_NAME:
        known = name in KNOWN_MAJORS
        raise PayloadError(
            f"schema: {schema!r} is not a production context"
            if known
            else f"schema: unknown schema {schema!r}"
        )
    if major != _CONTEXT_MAJOR:
        raise PayloadError(f"schema: major version of {schema!r} not supported")
    if not _UUID.fullmatch(_require(body, "id", str)):
        raise PayloadError(f"id: {body['id']!r} is not a UUIDv7")
    published = _rfc3339_moment(body, "ts")
    for key in ("site", "asset"):
        if not _NAME.fullmatch(_require(body, key, str)):
            raise PayloadError(f"{key}: {body[key]!r} must match [a-z0-9_-]+")
    if "production_order" not in body:
        raise PayloadError("production_order: missing (null when the asset is idle)")
    production_order = _context_text(body, "production_order")
    started = _rfc3339_moment(body, "since")
    if started > published:
        raise PayloadError(f"since: {body['since']!r} is after ts {body['ts']!r}")
    texts = {key: _context_text(body, key) for key in _CONTEXT_TEXT_FIELDS}
    quantity = body.get("quantity")
    if quantity is not None:
        quantity = _finite(quantity, "quantity")
        if quantity <= 0:
            raise PayloadError(f"quantity: must be positive, got {body['quantity']!r}")
    if (quantity is None) != (texts["unit"] is None):
        missing = "unit" if texts["unit"] is None else "quantity"
        raise PayloadError(f"{missing}: required when {'quantity' if missing == 'unit' else 'unit'} is given")
    if production_order is None:
        values = {**texts, "quantity": quantity}
        for key in _IDLE_EMPTY_FIELDS:
            if values[key] is not None:
                raise PayloadError(f"{key}: must be null while production_order is null (asset idle)")
    return ProductionContext(
        schema=schema,
        id=body["id"],
        site=body["site"],
        asset=body["asset"],
        ts=body["ts"],
        production_order=production_order,
        lot=texts["lot"],
        material=texts["material"],
        since=body["since"],
        plant=texts["plant"],
        storage_location=texts["storage_location"],
        quantity=quantity,
        unit=texts["unit"],
    )
