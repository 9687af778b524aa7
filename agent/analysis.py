"""From windows to records: features, the asset's baseline, both models and the decision.

:class:`AssetAnalyser` holds one asset's baseline, drift and decision memory. :meth:`AssetAnalyser.analyse`
is pure computation on a batch of windows (no I/O, no clock: times come from the sensor's timestamps);
the service stores what it returns in the outbox.

While an asset commissions, its windows teach it its normal (:mod:`plantwatch.agent.baseline`) and its
records say ``normal`` with score 0; when the baseline completes, the anomaly model scores the
commissioning windows themselves to calibrate the asset's warning threshold, and from then on every
window is scored against it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import deque
from collections.abc import Mapping

import numpy as np

from plantwatch.agent.baseline import (
    ANOMALY_INPUTS,
    CLASSIFIER_INPUTS,
    DRIFT_LIMIT,
    Baseline,
    calibrate_threshold,
    input_matrix,
    model_inputs,
    relative_inputs,
)
from plantwatch.agent.config import AgentSettings, AssetSettings
from plantwatch.agent.decision import AssetState, DecisionSettings, decide, diagnose
from plantwatch.agent.features import FEATURE_NAMES, feature_matrix, vibration_features
from plantwatch.agent.outbox import AssetUpdate
from plantwatch.agent.snapshot import spectrum_snapshot
from plantwatch.agent.windows import WindowBatch
from plantwatch.clock import rfc3339, rfc3339_many
from plantwatch.contract import ALERT_SCHEMA, HEALTH_SCHEMA, ModelRef, Record, WindowRef, record_topic, uuid7
from plantwatch.log import event
from plantwatch.models.registry import AnomalyModel, FaultClassifier

log = logging.getLogger(__name__)

TEMPERATURE_SLOPE_S = 3600.0
"""Temperature slope is fitted over the readings of the last hour (°C per hour)."""

TEMPERATURE_HISTORY = 720
"""At most this many readings are kept for the slope."""


def model_ref(model: AnomalyModel | FaultClassifier) -> ModelRef:
    """The wire reference (name, version, sha256) of a loaded model."""
    manifest = model.manifest
    return ModelRef(name=manifest.name, version=manifest.version, sha256=manifest.sha256)


def temperature_slope_c_per_h(times_s: np.ndarray, temperatures_c: np.ndarray) -> float:
    """Least-squares slope of temperature over time, °C per hour (0 with fewer than 2 distinct times).

    >>> round(temperature_slope_c_per_h(np.array([0.0, 1800.0, 3600.0]), np.array([40.0, 41.0, 42.0])), 3)
    2.0
    """
    t = np.asarray(times_s, dtype=np.float64)
    y = np.asarray(temperatures_c, dtype=np.float64)
    if t.size < 2 or np.ptp(t) <= 0:
        return 0.0
    centred = t - t.mean()
    return float(centred @ (y - y.mean()) / (centred @ centred) * 3600.0)


STATUS_BASELINE = (
    "velocity_rms_mm_s",
    "rms_g",
    "kurtosis",
    "crest_factor",
    "env_bpfo_g",
    "env_bpfi_g",
    "env_bsf_g",
    "env_ftf_g",
    "order_1x_g",
    "temperature_c",
)
"""Learned medians the status reports per asset (the web page draws them under the features)."""


class AssetAnalyser:
    """Turns one asset's windows into health records and alerts."""

    def __init__(
        self,
        settings: AgentSettings,
        asset: AssetSettings,
        *,
        anomaly: AnomalyModel,
        classifier: FaultClassifier | None,
        memory_json: str | None = None,
        baseline_json: str | None = None,
    ) -> None:
        self.settings = settings
        self.asset = asset
        self.anomaly = anomaly
        self.classifier = classifier
        self.anomaly_ref = model_ref(anomaly)
        self.classifier_ref = model_ref(classifier) if classifier is not None else None
        self.memory = AssetState(**json.loads(memory_json)) if memory_json else AssetState()
        self.baseline = self._restore_baseline(baseline_json)
        self.decision = self._decision_settings()
        self.temperatures: deque[tuple[float, float]] = deque(maxlen=TEMPERATURE_HISTORY)
        self.snapshot_at = -math.inf
        """Measurement time of the newest health record that carried a spectrum snapshot."""

    def _restore_baseline(self, stored: str | None) -> Baseline:
        target = self.asset.commissioning_windows
        if stored is None:
            return Baseline(target_windows=target)
        try:
            return Baseline.from_json(stored, target_windows=target)
        except (ValueError, TypeError, KeyError) as error:
            event(log, logging.WARNING, "baseline_discarded", asset=self.asset.id, reason=error)
            return Baseline(target_windows=target)

    def _decision_settings(self) -> DecisionSettings:
        warning = self.asset.warning_threshold or self.baseline.threshold or self.anomaly.threshold
        return DecisionSettings(
            warning_threshold=warning,
            alarm_threshold=warning * self.asset.alarm_factor,
            persistence=self.asset.persistence,
            clear_windows=self.asset.clear_windows,
            alarm_repeat_s=self.asset.alarm_repeat_s,
            overheating_c=self.asset.overheating_c,
        )

    def recommission(self) -> None:
        """Forget the baseline and decision memory: the next windows teach the asset its normal again."""
        self.baseline = Baseline(target_windows=self.asset.commissioning_windows)
        self.memory = AssetState()
        self.decision = self._decision_settings()
        event(
            log,
            logging.INFO,
            "commissioning_started",
            asset=self.asset.id,
            windows=self.baseline.target_windows,
        )

    def add_temperature(self, t_s: float, celsius: float) -> None:
        """Take one temperature reading (measurement time in seconds)."""
        self.temperatures.append((t_s, celsius))

    def _temperature(self) -> tuple[float | None, float | None]:
        if not self.temperatures:
            return None, None
        latest_s, latest_c = self.temperatures[-1]
        recent = [(t, c) for t, c in self.temperatures if latest_s - t <= TEMPERATURE_SLOPE_S]
        times, values = np.array(recent).T
        return latest_c, temperature_slope_c_per_h(times, values)

    def features(self, batch: WindowBatch) -> dict[str, np.ndarray]:
        """The vibration features of a batch, with this asset's speed, bearing, band and machine class."""
        return vibration_features(
            batch.data,
            batch.fs_hz,
            shaft_hz=self.asset.shaft_hz,
            defect_orders=self.asset.bearing.orders(),
            estimate_speed=self.asset.estimate_speed,
            envelope_band_hz=(self.asset.envelope_band_hz[0], self.asset.envelope_band_hz[1]),
            machine_class=self.asset.machine_class,
        )

    def _commission(self, features: Mapping[str, np.ndarray], count: int) -> int:
        """Feed commissioning windows; complete the baseline when enough were seen. Returns how many
        windows of the batch were used for commissioning."""
        taken = self.baseline.add(features, count)
        if self.baseline.ready:
            rows = self.baseline.finish()
            scores = self.anomaly.score(
                input_matrix(relative_inputs(rows, self.baseline.median), ANOMALY_INPUTS)
            )
            self.baseline.threshold = calibrate_threshold(scores, self.anomaly.threshold)
            self.decision = self._decision_settings()
            event(
                log,
                logging.INFO,
                "commissioning_done",
                asset=self.asset.id,
                windows=self.baseline.windows,
                threshold=round(self.decision.warning_threshold, 4),
                largest_score=round(float(np.nanmax(scores)), 4) if scores.size else 0.0,
            )
        return taken

    def analyse(self, batch: WindowBatch) -> list[tuple[Record, str]]:
        """Records (with placeholder ``seq``) and topics for every window in ``batch``."""
        features = self.features(batch)
        count = batch.data.shape[0]
        commissioning = self._commission(features, count) if not self.baseline.complete else 0
        scored = slice(commissioning, count)
        scores = np.zeros(count)
        labels: list[str] = ["healthy"] * count
        confidences = np.ones(count)
        if commissioning < count:
            part = {name: values[scored] for name, values in features.items()}
            inputs = model_inputs(part, self.baseline.median)
            scores[scored] = self.anomaly.score(input_matrix(inputs, ANOMALY_INPUTS))
            if self.classifier is not None:
                named, probability = self.classifier.classify(input_matrix(inputs, CLASSIFIER_INPUTS))
                labels[commissioning:] = named
                confidences[scored] = probability
            self.baseline.update_drift(part)
        temperature_c, slope = self._temperature()
        matrix = np.round(feature_matrix(features, FEATURE_NAMES), 6).tolist()
        samples = batch.data.shape[1]
        starts_s = np.asarray(batch.start_us, dtype=np.float64) / 1e6
        ends_s = starts_s + samples / batch.fs_hz
        starts_text, ends_text = rfc3339_many(starts_s), rfc3339_many(ends_s)
        topics = {
            kind: record_topic(self.settings.site, self.settings.agent_id, self.asset.id, kind)  # type: ignore[arg-type]
            for kind in ("alert", "health")
        }
        extra = (
            {"temperature_c": round(temperature_c, 2), "temperature_slope_c_per_h": round(slope or 0.0, 3)}
            if temperature_c is not None
            else {}
        )
        drafts: list[tuple[Record, str]] = []
        for i in range(count):
            row = dict(zip(FEATURE_NAMES, matrix[i], strict=True))
            row.update(extra)
            end_s = float(ends_s[i])
            score = float(scores[i])
            if i < commissioning:
                outcome_state, previous, alert = self.memory.state, self.memory.state, False
            else:
                outcome = decide(self.decision, self.memory, score, end_s)
                outcome_state, previous, alert = outcome.state, outcome.previous_state, outcome.alert
            if outcome_state == "normal":
                mode, confidence, evidence = (
                    "healthy",
                    float(confidences[i]) if labels[i] == "healthy" else 0.5,
                    [],
                )
            else:
                mode, confidence, evidence = diagnose(
                    row,
                    self.baseline.median,
                    label=labels[i],
                    label_confidence=float(confidences[i]),
                    min_confidence=self.classifier.threshold if self.classifier is not None else 1.0,
                    shaft_hz=float(row["shaft_hz"]),
                    defect_orders=self.asset.bearing.orders(),
                    machine_class=self.asset.machine_class,
                    temperature_c=temperature_c,
                    overheating_c=self.asset.overheating_c,
                    explain=alert,
                )
                if alert:
                    evidence.insert(
                        0,
                        f"Anomaly score {score:.2f}, {score / self.decision.warning_threshold:.1f}× the asset's "
                        f"warning threshold ({self.decision.warning_threshold:.2f})",
                    )
            interval = self.settings.snapshot_interval_s
            snapshot = None
            if alert or (interval > 0 and end_s - self.snapshot_at >= interval):
                snapshot = spectrum_snapshot(
                    batch.data[i],
                    batch.fs_hz,
                    shaft_hz=float(row["shaft_hz"]) or self.asset.shaft_hz,
                    defect_orders=self.asset.bearing.orders(),
                    envelope_band_hz=(self.asset.envelope_band_hz[0], self.asset.envelope_band_hz[1]),
                )
                if not alert:
                    self.snapshot_at = end_s
            record = Record(
                schema=ALERT_SCHEMA if alert else HEALTH_SCHEMA,
                id=uuid7(),
                seq=0,
                ts=ends_text[i],
                site=self.settings.site,
                agent=self.settings.agent_id,
                asset=self.asset.id,
                state=outcome_state,
                previous_state=previous,
                score=round(score, 6),
                threshold=round(self.decision.warning_threshold, 6),
                failure_mode=mode,
                confidence=round(min(max(confidence, 0.0), 1.0), 3),
                model=self.anomaly_ref,
                features=row,
                window=WindowRef(start=starts_text[i], end=ends_text[i], fs_hz=batch.fs_hz, samples=samples),
                evidence=evidence if alert else [],
                classifier=self.classifier_ref,
                episode=(
                    rfc3339(self.memory.episode_start_s)
                    if alert and self.memory.episode_start_s is not None
                    else None
                ),
                spectrum=snapshot,
            )
            drafts.append((record, topics["alert" if alert else "health"]))
        return drafts

    def status(self) -> dict[str, object]:
        """The asset's commissioning progress, threshold and drift, for the agent's status message."""
        feature, drift = self.baseline.worst_drift()
        return {
            "commissioning": not self.baseline.complete,
            "baseline_windows": self.baseline.windows,
            "commissioning_windows": self.baseline.target_windows,
            "warning_threshold": round(self.decision.warning_threshold, 6),
            "alarm_threshold": round(self.decision.alarm_threshold, 6),
            "baseline": {
                name: float(f"{self.baseline.median[name]:.6g}")
                for name in STATUS_BASELINE
                if name in self.baseline.median
            },
            "state": self.memory.state,
            "drift": round(drift, 3),
            "drift_feature": feature,
            "drifting": abs(drift) >= DRIFT_LIMIT,
        }

    def update(self) -> AssetUpdate:
        """The asset's memory and baseline, to store with its records."""
        return AssetUpdate(
            asset=self.asset.id,
            memory=json.dumps(dataclasses.asdict(self.memory)),
            baseline=self.baseline.to_json(),
        )
