"""Health decision per asset: normal / warning / alarm with persistence and hysteresis, and the likely
failure mode with its evidence in words a planner reads. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LEVELS = ("normal", "warning", "alarm")

DEFECT_NAMES = {
    "bpfo": ("outer_race", "BPFO"),
    "bpfi": ("inner_race", "BPFI"),
    "bsf": ("ball", "BSF"),
    "ftf": ("cage", "FTF"),
}
"""Envelope feature → (failure mode, the name an analyst uses)."""

DEFECT_RATIO = 4.0
"""An envelope line this many times its baseline names a bearing defect; below it the mode is unknown.
Healthy envelope lines scatter by about ±50 % window to window, so 4× is well clear of that."""


@dataclass(frozen=True)
class DecisionSettings:
    """How an asset's state moves between levels."""

    warning_threshold: float
    alarm_threshold: float
    persistence: int = 3
    """Consecutive windows at or above a level before the state rises to it."""
    clear_windows: int = 6
    """Consecutive windows below the lower threshold × ``hysteresis`` before the state falls (to the highest
    level those windows held, judged with ``hysteresis``)."""
    hysteresis: float = 0.8
    alarm_repeat_s: float = 3600.0
    """While in alarm, repeat the alert this often (seconds of measurement time)."""
    overheating_c: float = 90.0


@dataclass
class AssetState:
    """What the decider remembers about one asset (persisted by the agent)."""

    state: str = "normal"
    pending_level: int = 0
    pending_count: int = 0
    clear_count: int = 0
    clear_level: int = 0
    """Highest level held (with hysteresis) during the current clearing streak: where the state falls."""
    last_alert_s: float = 0.0


@dataclass(frozen=True)
class Decision:
    """The outcome for one window."""

    state: str
    previous_state: str
    alert: bool
    """True when this window's record must go out as an alert (state change or repeated alarm)."""


def decide(settings: DecisionSettings, memory: AssetState, score: float, now_s: float) -> Decision:
    """Advance ``memory`` (mutated) by one window with anomaly ``score`` at measurement time ``now_s``.

    >>> s = DecisionSettings(warning_threshold=1.0, alarm_threshold=3.0, persistence=2, clear_windows=2)
    >>> m = AssetState()
    >>> [decide(s, m, x, t).state for t, x in enumerate([0.5, 1.2, 1.3, 4.0, 4.0, 0.9, 0.7, 0.7, 0.7])]
    ['normal', 'normal', 'warning', 'warning', 'alarm', 'alarm', 'warning', 'warning', 'normal']
    """
    previous = memory.state
    current = LEVELS.index(previous)
    level = 2 if score >= settings.alarm_threshold else 1 if score >= settings.warning_threshold else 0
    if level > current:
        # a streak above the current level rises to the lowest level held throughout the streak
        memory.clear_count = 0
        memory.pending_level = level if memory.pending_count == 0 else min(memory.pending_level, level)
        memory.pending_count += 1
        if memory.pending_count >= settings.persistence:
            memory.state = LEVELS[memory.pending_level]
            memory.pending_level = memory.pending_count = 0
    else:
        memory.pending_level = memory.pending_count = 0
        lower = settings.warning_threshold if current == 1 else settings.alarm_threshold
        if current > 0 and score < lower * settings.hysteresis:
            # a clearing streak falls to the highest level held throughout it, judged with hysteresis as
            # a state at that level would be: an alarm at scores that keep a warning falls to warning
            held = 1 if current == 2 and score >= settings.warning_threshold * settings.hysteresis else 0
            memory.clear_level = held if memory.clear_count == 0 else max(memory.clear_level, held)
            memory.clear_count += 1
            if memory.clear_count >= settings.clear_windows:
                memory.state = LEVELS[memory.clear_level]
                memory.clear_count = memory.clear_level = 0
        else:
            memory.clear_count = 0
    changed = memory.state != previous
    repeat = (
        memory.state == "alarm" and not changed and now_s - memory.last_alert_s >= settings.alarm_repeat_s
    )
    if changed or repeat:
        memory.last_alert_s = now_s
    return Decision(state=memory.state, previous_state=previous, alert=changed or repeat)


def diagnose(
    features: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    shaft_hz: float,
    defect_orders: Mapping[str, float],
    temperature_c: float | None,
    overheating_c: float,
) -> tuple[str, float, list[str]]:
    """Name the likely failure mode from envelope lines against the asset's baseline.

    Returns ``(failure_mode, confidence 0..1, evidence sentences)``; ``unknown`` when the score is high
    but no defect line stands out.
    """
    evidence: list[str] = []
    best_mode, best_ratio = "unknown", 0.0
    for key, (mode, label) in DEFECT_NAMES.items():
        name = f"env_{key}_g"
        if name not in features or key not in defect_orders:
            continue
        reference = max(baseline.get(name, 0.0), 1e-6)
        ratio = features[name] / reference
        if ratio >= DEFECT_RATIO:
            order = defect_orders[key]
            evidence.append(
                f"{label} {order:.2f}× ({order * shaft_hz:.1f} Hz): {features[name]:.3f} g in the envelope, "
                f"{ratio:.0f}× baseline"
            )
            if ratio > best_ratio:
                best_mode, best_ratio = mode, ratio
    for name, label in (("kurtosis", "Kurtosis"), ("crest_factor", "Crest factor"), ("rms_g", "RMS")):
        if name in features and name in baseline and baseline[name] > 0:
            ratio = features[name] / baseline[name]
            if ratio >= 1.5:
                unit = " g" if name.endswith("_g") else ""
                evidence.append(
                    f"{label} {features[name]:.2f}{unit}, {ratio:.1f}× baseline ({baseline[name]:.2f}{unit})"
                )
    if temperature_c is not None and temperature_c >= overheating_c:
        evidence.append(f"Bearing temperature {temperature_c:.1f} °C, above the {overheating_c:.0f} °C limit")
        if best_mode == "unknown":
            best_mode = "overheating"
    if best_mode in ("unknown", "overheating"):
        confidence = 0.5
    else:
        # more separation from the baseline, more confidence; saturates near 1
        confidence = round(min(0.99, 1.0 - DEFECT_RATIO / best_ratio / 2), 2)
    evidence.sort(key=lambda line: 0 if " envelope" in line else 1)
    return best_mode, confidence, evidence
