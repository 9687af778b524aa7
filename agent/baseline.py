"""Each machine's normal: the commissioning baseline, the model inputs relative to it, and drift.

A new asset (or one recommissioned on command) spends its first ``commissioning_windows`` windows
learning what normal is for *this* machine: the median of every feature and its spread. The models never
see absolute levels; they see each feature as a ratio to the asset's own median (``rel_*``) and each
envelope line as a ratio to the envelope spectrum's floor in the same window (``prom_*``). That is what
lets a model trained on simulated machines judge a real one with another speed, bearing, mount and
sensor. The asset's warning threshold is calibrated on its commissioning windows (:func:`calibrate_threshold`).

After commissioning, **drift** follows each feature's exponentially weighted mean in units of its
commissioning spread; its largest magnitude (and which feature) goes into the agent's status.

Pure: no I/O; :meth:`Baseline.to_json` / :meth:`Baseline.from_json` are what the outbox stores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from plantwatch.agent.features import DEFECTS

BASELINE_FEATURES: tuple[str, ...] = (
    "rms_g",
    "peak_to_peak_g",
    "crest_factor",
    "kurtosis",
    "velocity_rms_mm_s",
    "band_rms_10_1k_g",
    "band_rms_1k_3k_g",
    "band_rms_3k_6k_g",
    "band_rms_6k_12k_g",
    "envelope_band_rms_g",
    "env_rms_g",
    "order_1x_g",
    "order_2x_g",
    "order_3x_g",
    "order_half_g",
    "order_4x_10x_g",
    "env_bpfo_g",
    "env_bpfi_g",
    "env_bsf_h2_g",
    "env_ftf_g",
)
"""Features whose median and spread an asset learns, and which the models see relative to it."""

ENVELOPE_LINES: tuple[str, ...] = tuple(
    f"env_{defect}{suffix}_g" for defect in DEFECTS for suffix in ("", "_h2", "_h3", "_sb")
)

RELATIVE_INPUTS: tuple[str, ...] = tuple(f"rel_{name}" for name in BASELINE_FEATURES)
PROMINENCE_INPUTS: tuple[str, ...] = tuple(f"prom_{name}" for name in ENVELOPE_LINES)
ANOMALY_INPUTS: tuple[str, ...] = RELATIVE_INPUTS
"""The anomaly model's inputs, in order: how far this window is from the asset's normal."""
CLASSIFIER_INPUTS: tuple[str, ...] = RELATIVE_INPUTS + PROMINENCE_INPUTS
"""The fault classifier's inputs, in order: the relative features plus how far each defect line stands
above the envelope floor (a defect's signature, whatever the machine's normal)."""

FLOOR = 1e-6
"""Added to a feature and its median before the ratio, so a feature that is 0 on this sensor (a band above
its Nyquist frequency) reads a ratio of 1 and not 0/0."""

MIN_SPREAD = 0.05
"""Smallest spread of a log feature (5 %): a feature that hardly moved while commissioning must not make a
tiny, normal wobble look like drift."""

DRIFT_SPAN_WINDOWS = 200
"""Span of the drift average (windows): long enough that a single odd window does not move it."""

DRIFT_LIMIT = 1.0
"""Drift is reported when a feature's average has moved one commissioning spread (the average of 200
windows of healthy noise wanders about 0.1 spread)."""

THRESHOLD_MARGIN = 1.5
"""An asset's warning threshold is this many times the largest score among its commissioning windows
(or the model's calibrated threshold, if higher)."""


@dataclass
class Baseline:
    """What an asset learned while commissioning, and its drift since."""

    target_windows: int
    windows: int = 0
    rows: list[list[float]] = field(default_factory=list)
    """Commissioning feature rows (:data:`BASELINE_FEATURES` order), kept until the baseline completes."""
    median: dict[str, float] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    """Robust standard deviation (1.4826 × MAD) of each feature's natural log."""
    threshold: float | None = None
    """The asset's calibrated warning threshold (anomaly score)."""
    drift: dict[str, float] = field(default_factory=dict)
    """Exponentially weighted mean of each feature's log ratio to its median, in spreads."""

    @property
    def complete(self) -> bool:
        """True once the medians are learned."""
        return bool(self.median)

    def add(self, features: Mapping[str, np.ndarray], count: int) -> int:
        """Take up to the remaining commissioning windows from the first rows of ``features``.

        Returns how many rows were taken (0 once complete); :meth:`finish` must be called when
        :attr:`windows` reaches :attr:`target_windows`.
        """
        if self.complete:
            return 0
        take = min(count, self.target_windows - self.windows)
        if take > 0:
            block = np.stack(
                [np.asarray(features[name][:take], dtype=np.float64) for name in BASELINE_FEATURES], 1
            )
            self.rows.extend(block.tolist())
            self.windows += take
        return take

    @property
    def ready(self) -> bool:
        """True when enough windows were collected to compute the baseline."""
        return not self.complete and self.windows >= self.target_windows

    def finish(self) -> dict[str, np.ndarray]:
        """Compute medians and spreads from the collected rows; returns those rows as features."""
        rows = np.asarray(self.rows, dtype=np.float64).reshape(-1, len(BASELINE_FEATURES))
        logged = np.log(rows + FLOOR)
        median = np.median(rows, axis=0)
        mad = np.median(np.abs(logged - np.median(logged, axis=0)), axis=0)
        self.median = {name: float(value) for name, value in zip(BASELINE_FEATURES, median, strict=True)}
        self.spread = {
            name: max(float(1.4826 * value), MIN_SPREAD)
            for name, value in zip(BASELINE_FEATURES, mad, strict=True)
        }
        self.rows = []
        self.drift = dict.fromkeys(BASELINE_FEATURES, 0.0)
        return {name: rows[:, i] for i, name in enumerate(BASELINE_FEATURES)}

    def update_drift(self, features: Mapping[str, np.ndarray]) -> None:
        """Advance each feature's drift average by the windows in ``features`` (after commissioning)."""
        if not self.complete:
            return
        alpha = 2.0 / (DRIFT_SPAN_WINDOWS + 1)
        for name in BASELINE_FEATURES:
            values = np.asarray(features[name], dtype=np.float64)
            if values.size == 0:
                continue
            z = (np.log(values + FLOOR) - math.log(self.median[name] + FLOOR)) / self.spread[name]
            z = z[np.isfinite(z)]
            if z.size == 0:
                continue
            # closed form of n EWMA steps: m_n = (1-α)^n m_0 + Σ α (1-α)^(n-1-i) z_i
            weights = alpha * (1 - alpha) ** np.arange(z.size - 1, -1, -1)
            self.drift[name] = float((1 - alpha) ** z.size * self.drift.get(name, 0.0) + weights @ z)

    def worst_drift(self) -> tuple[str | None, float]:
        """The feature that drifted most and its drift in spreads (signed)."""
        if not self.drift:
            return None, 0.0
        name = max(self.drift, key=lambda key: abs(self.drift[key]))
        return name, self.drift[name]

    def to_json(self) -> str:
        """The baseline as stored in the agent's database."""
        return json.dumps(
            {
                "target_windows": self.target_windows,
                "windows": self.windows,
                "rows": self.rows,
                "median": self.median,
                "spread": self.spread,
                "threshold": self.threshold,
                "drift": self.drift,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, *, target_windows: int) -> Baseline:
        """Read a stored baseline; raises :class:`ValueError` if it is not one this version wrote.

        A stored baseline whose features differ from :data:`BASELINE_FEATURES` (an older plantwatch) is
        refused, so that the asset commissions again instead of comparing different quantities.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or "median" not in data:
            raise ValueError("not a baseline of this plantwatch version")
        if data["median"] and set(data["median"]) != set(BASELINE_FEATURES):
            raise ValueError("the baseline's features differ from this version's")
        if any(len(row) != len(BASELINE_FEATURES) for row in data.get("rows", [])):
            raise ValueError("the baseline's commissioning rows have the wrong length")
        return cls(
            target_windows=int(data.get("target_windows", target_windows)),
            windows=int(data["windows"]),
            rows=[list(map(float, row)) for row in data.get("rows", [])],
            median={str(k): float(v) for k, v in data["median"].items()},
            spread={str(k): float(v) for k, v in data.get("spread", {}).items()},
            threshold=None if data.get("threshold") is None else float(data["threshold"]),
            drift={str(k): float(v) for k, v in data.get("drift", {}).items()},
        )


def model_inputs(features: Mapping[str, np.ndarray], median: Mapping[str, float]) -> dict[str, np.ndarray]:
    """The models' inputs from a batch's features and the asset's baseline medians.

    ``rel_<feature>`` = (feature + FLOOR) / (median + FLOOR); ``prom_<line>`` = line / envelope floor of the
    same window. All are positive ratios; the models take their logarithm (see the manifest's transform).

    >>> f = {name: np.array([2.0]) for name in BASELINE_FEATURES} | {"env_floor_g": np.array([0.5])}
    >>> f |= {name: np.array([1.0]) for name in ENVELOPE_LINES if name not in f}
    >>> inputs = model_inputs(f, dict.fromkeys(BASELINE_FEATURES, 1.0))
    >>> round(float(inputs["rel_rms_g"][0]), 4), round(float(inputs["prom_env_bpfi_h2_g"][0]), 4)
    (2.0, 2.0)
    """
    inputs: dict[str, np.ndarray] = {}
    for name in BASELINE_FEATURES:
        inputs[f"rel_{name}"] = (np.asarray(features[name], dtype=np.float64) + FLOOR) / (
            median[name] + FLOOR
        )
    floor = np.asarray(features["env_floor_g"], dtype=np.float64) + 1e-9
    for name in ENVELOPE_LINES:
        inputs[f"prom_{name}"] = (np.asarray(features[name], dtype=np.float64) + 1e-9) / floor
    return inputs


def relative_inputs(features: Mapping[str, np.ndarray], median: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Only the ``rel_*`` inputs (all the anomaly model needs): each feature over the asset's median."""
    return {
        f"rel_{name}": (np.asarray(features[name], dtype=np.float64) + FLOOR) / (median[name] + FLOOR)
        for name in BASELINE_FEATURES
    }


def input_matrix(inputs: Mapping[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """Stack model inputs into shape ``(windows, len(names))`` in the order of ``names``."""
    return np.stack([np.asarray(inputs[name], dtype=np.float64) for name in names], axis=-1)


def calibrate_threshold(commissioning_scores: np.ndarray, model_threshold: float) -> float:
    """An asset's warning threshold: :data:`THRESHOLD_MARGIN` × its largest commissioning score, or the
    model's calibrated threshold if that is higher (a very quiet machine must not alarm at a whisper)."""
    scores = np.asarray(commissioning_scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    own = THRESHOLD_MARGIN * float(scores.max()) if scores.size else 0.0
    return max(own, float(model_threshold))
