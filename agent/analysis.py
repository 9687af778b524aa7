"""From windows to records: features, the anomaly model, the asset's baseline and the decision.

:class:`AssetAnalyser` holds one asset's baseline and decision memory. :meth:`AssetAnalyser.analyse`
is pure computation on a batch of windows (no I/O, no clock: times come from the sensor's timestamps);
the service stores what it returns in the outbox.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from plantwatch.agent.config import AgentSettings, AssetSettings
from plantwatch.agent.decision import AssetState, DecisionSettings, decide, diagnose
from plantwatch.agent.features import ANOMALY_FEATURES, feature_matrix, vibration_features
from plantwatch.agent.outbox import AssetUpdate
from plantwatch.agent.windows import WindowBatch
from plantwatch.clock import rfc3339
from plantwatch.contract import ALERT_SCHEMA, HEALTH_SCHEMA, ModelRef, Record, WindowRef, record_topic, uuid7


@dataclass
class Baseline:
    """Running sums of an asset's features over its commissioning windows."""

    windows: int = 0
    complete: bool = False
    sums: dict[str, float] = dataclasses.field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        """Mean of each feature over the windows seen so far."""
        return {name: total / self.windows for name, total in self.sums.items()} if self.windows else {}


class AssetAnalyser:
    """Turns one asset's windows into health records and alerts."""

    def __init__(
        self,
        settings: AgentSettings,
        asset: AssetSettings,
        *,
        model_threshold: float,
        memory_json: str | None = None,
        baseline: tuple[int, bool, str] | None = None,
    ) -> None:
        self.settings = settings
        self.asset = asset
        warning = asset.warning_threshold or model_threshold
        self.decision = DecisionSettings(
            warning_threshold=warning,
            alarm_threshold=warning * asset.alarm_factor,
            persistence=asset.persistence,
            clear_windows=asset.clear_windows,
            alarm_repeat_s=asset.alarm_repeat_s,
            overheating_c=asset.overheating_c,
        )
        self.memory = AssetState(**json.loads(memory_json)) if memory_json else AssetState()
        if baseline is not None:
            windows, complete, sums = baseline
            self.baseline = Baseline(windows=windows, complete=complete, sums=json.loads(sums))
        else:
            self.baseline = Baseline()
        self.temperature_c: float | None = None

    def analyse(
        self, batch: WindowBatch, scores_of: Callable[[np.ndarray], np.ndarray], model: ModelRef
    ) -> list[tuple[Record, str]]:
        """Records (with placeholder ``seq``) and topics for every window in ``batch``."""
        orders = self.asset.bearing.orders()
        features = vibration_features(
            batch.data, batch.fs_hz, shaft_hz=self.asset.shaft_hz, defect_orders=orders
        )
        scores = scores_of(feature_matrix(features, ANOMALY_FEATURES))
        samples = batch.data.shape[1]
        drafts: list[tuple[Record, str]] = []
        for i in range(batch.data.shape[0]):
            row = {name: float(values[i]) for name, values in features.items()}
            if not self.baseline.complete:
                for name, value in row.items():
                    self.baseline.sums[name] = self.baseline.sums.get(name, 0.0) + value
                self.baseline.windows += 1
                self.baseline.complete = self.baseline.windows >= self.asset.commissioning_windows
            if self.temperature_c is not None:
                row["temperature_c"] = self.temperature_c
            start_s = batch.start_us[i] / 1e6
            end_s = start_s + samples / batch.fs_hz
            score = float(scores[i])
            outcome = decide(self.decision, self.memory, score, end_s)
            if outcome.state == "normal":
                mode, confidence, evidence = (
                    "healthy",
                    1.0 - min(score / self.decision.warning_threshold, 1.0) / 2,
                    [],
                )
            else:
                mode, confidence, evidence = diagnose(
                    row,
                    self.baseline.mean(),
                    shaft_hz=self.asset.shaft_hz,
                    defect_orders=orders,
                    temperature_c=self.temperature_c,
                    overheating_c=self.asset.overheating_c,
                )
                evidence.insert(
                    0,
                    f"Anomaly score {score:.2f}, {score / self.decision.warning_threshold:.1f}× the warning threshold"
                    f" ({self.decision.warning_threshold:.2f})",
                )
            kind = "alert" if outcome.alert else "health"
            record = Record(
                schema=ALERT_SCHEMA if outcome.alert else HEALTH_SCHEMA,
                id=uuid7(),
                seq=0,
                ts=rfc3339(end_s),
                site=self.settings.site,
                agent=self.settings.agent_id,
                asset=self.asset.id,
                state=outcome.state,
                previous_state=outcome.previous_state,
                score=round(score, 6),
                threshold=round(self.decision.warning_threshold, 6),
                failure_mode=mode,
                confidence=round(float(confidence), 3),
                model=model,
                features={name: round(value, 6) for name, value in row.items()},
                window=WindowRef(
                    start=rfc3339(start_s), end=rfc3339(end_s), fs_hz=batch.fs_hz, samples=samples
                ),
                evidence=evidence if outcome.alert else [],
            )
            topic = record_topic(self.settings.site, self.settings.agent_id, self.asset.id, kind)  # type: ignore[arg-type]
            drafts.append((record, topic))
        return drafts

    def update(self) -> AssetUpdate:
        """The asset's memory and baseline, to store with its records."""
        return AssetUpdate(
            asset=self.asset.id,
            memory=json.dumps(dataclasses.asdict(self.memory)),
            baseline_windows=self.baseline.windows,
            baseline_complete=self.baseline.complete,
            baseline_sums=json.dumps(self.baseline.sums),
        )
