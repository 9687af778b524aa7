"""Health decision per asset: normal / warning / alarm with persistence and hysteresis, and the likely
failure mode with its evidence in words a planner reads. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from plantwatch.agent.features import ISO_ZONE_LIMITS_MM_S, zone_letter

LEVELS = ("normal", "warning", "alarm")

DEFECT_NAMES = {
    "bpfo": ("outer_race", "BPFO"),
    "bpfi": ("inner_race", "BPFI"),
    "bsf": ("ball", "BSF"),
    "ftf": ("cage", "FTF"),
}
"""Envelope feature → (failure mode, the name an analyst uses); ``env_bsf_h2`` is the 2×BSF line at which a
ball defect strikes the races."""


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
    episode_start_s: float | None = None
    """Measurement time at which the state last left normal; None while normal."""


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
    if changed:
        memory.episode_start_s = None if memory.state == "normal" else memory.episode_start_s or now_s
    repeat = (
        memory.state == "alarm" and not changed and now_s - memory.last_alert_s >= settings.alarm_repeat_s
    )
    if changed or repeat:
        memory.last_alert_s = now_s
    return Decision(state=memory.state, previous_state=previous, alert=changed or repeat)


PROMINENCE = 3.0
"""An envelope line this many times the envelope spectrum's floor stands out of the noise."""

LINE_GROWTH = 2.0
"""A line (envelope or running speed) this many times its commissioning median has grown."""


def diagnose(
    features: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    label: str,
    label_confidence: float,
    min_confidence: float,
    shaft_hz: float,
    defect_orders: Mapping[str, float],
    machine_class: str,
    temperature_c: float | None,
    overheating_c: float,
    explain: bool = True,
) -> tuple[str, float, list[str]]:
    """Name the likely failure mode and say why, in sentences a planner and an analyst read.

    ``label`` and ``label_confidence`` are the fault classifier's answer for the window; it is taken when
    its probability reaches ``min_confidence`` and it names a fault. Otherwise the envelope lines speak:
    the defect whose lines stand out most (prominence over the envelope floor, growth over the asset's
    baseline) names the mode with a modest confidence; with neither, an overheating bearing or
    ``unknown``. Returns ``(failure_mode, confidence 0..1, evidence sentences)``; evidence lists the
    classifier's answer, the defect lines, the running-speed lines, the ISO zone, impulsiveness and
    temperature, strongest first. With ``explain=False`` only the mode and confidence are worked out (the
    agent does that for every abnormal window, and writes the sentences only for alerts).
    """
    evidence: list[str] = []
    mode, confidence = "unknown", 0.5
    if label not in ("healthy", "unknown") and label_confidence >= min_confidence:
        mode, confidence = label, label_confidence
        evidence.append(f"Fault classifier: {label.replace('_', ' ')} (probability {label_confidence:.2f})")
    floor = max(features.get("env_floor_g", 0.0), 1e-9)
    best_line, best_strength = "unknown", 0.0
    for key, (defect_mode, name) in DEFECT_NAMES.items():
        order = defect_orders.get(key, 0.0)
        if order <= 0 or f"env_{key}_g" not in features:
            continue
        lines = [features.get(f"env_{key}{suffix}_g", 0.0) for suffix in ("", "_h2", "_h3")]
        prominent = [h + 1 for h, value in enumerate(lines) if value / floor >= PROMINENCE]
        # the baseline tracks the line a defect strikes at: 2×BSF for a ball, the fundamental otherwise
        tracked = 1 if key == "bsf" else 0
        reference = baseline.get(f"env_{key}{'_h2' if tracked else ''}_g", 0.0)
        growth = lines[tracked] / reference if reference > 0 else 0.0
        if not prominent or (reference > 0 and growth < LINE_GROWTH and tracked + 1 not in prominent):
            continue
        strength = max(lines) / floor
        if strength > best_strength:
            best_line, best_strength = defect_mode, strength
        if not explain:
            continue
        harmonics = ", ".join(f"{h}×" for h in prominent)
        sideband = features.get(f"env_{key}_sb_g", 0.0)
        modulation = "FTF" if key == "bsf" else "1× shaft"
        text = (
            f"{name} {order:.2f}× ({order * shaft_hz:.1f} Hz) in the envelope: harmonics {harmonics} stand "
            f"{strength:.0f}× above the floor; {lines[tracked]:.3f} g" + (" at 2×BSF" if tracked else "")
        )
        if reference > 0:
            text += f", {growth:.1f}× baseline"
        if sideband / floor >= PROMINENCE:
            text += f"; sidebands at ±{modulation}"
        evidence.append(text)
    if mode == "unknown" and best_line != "unknown":
        mode, confidence = best_line, 0.6
    if not explain:
        if mode == "unknown" and temperature_c is not None and temperature_c >= overheating_c:
            mode = "overheating"
        return mode, confidence, []
    for multiple in (1, 2, 3):
        name = f"order_{multiple}x_g"
        reference = baseline.get(name, 0.0)
        value = features.get(name, 0.0)
        if reference > 0 and value / reference >= LINE_GROWTH:
            evidence.append(
                f"{multiple}× running speed ({multiple * shaft_hz:.1f} Hz): {value:.3f} g, "
                f"{value / reference:.1f}× baseline"
            )
    velocity = features.get("velocity_rms_mm_s")
    if velocity is not None:
        zone = zone_letter(features.get("iso_zone", 1.0))
        limits = ISO_ZONE_LIMITS_MM_S.get(machine_class)
        boundary = f", B/C boundary {limits[1]:g} mm/s" if limits else ""
        evidence.append(
            f"Velocity {velocity:.2f} mm/s RMS (10–1000 Hz): ISO 10816 zone {zone} for class {machine_class}"
            f"{boundary}"
        )
    for name, text in (("kurtosis", "Kurtosis"), ("crest_factor", "Crest factor"), ("rms_g", "RMS")):
        reference = baseline.get(name, 0.0)
        if name in features and reference > 0 and features[name] / reference >= 1.5:
            unit = " g" if name.endswith("_g") else ""
            evidence.append(
                f"{text} {features[name]:.2f}{unit}, {features[name] / reference:.1f}× baseline ({reference:.2f}{unit})"
            )
    if temperature_c is not None:
        slope = features.get("temperature_slope_c_per_h", 0.0)
        if temperature_c >= overheating_c:
            evidence.append(
                f"Bearing temperature {temperature_c:.1f} °C, above the {overheating_c:.0f} °C limit "
                f"(rising {slope:.1f} °C/h)"
            )
            if mode == "unknown":
                mode = "overheating"
        elif slope >= 5.0:
            evidence.append(f"Bearing temperature {temperature_c:.1f} °C, rising {slope:.1f} °C/h")
    return mode, confidence, evidence
