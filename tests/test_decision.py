"""The health decision (persistence, hysteresis, repeated alarms) and the failure-mode diagnosis."""

from __future__ import annotations

import dataclasses

import pytest

from plantwatch.agent.decision import AssetState, Decision, DecisionSettings, decide, diagnose

SETTINGS = DecisionSettings(
    warning_threshold=1.0,
    alarm_threshold=3.0,
    persistence=3,
    clear_windows=4,
    hysteresis=0.8,
    alarm_repeat_s=3600.0,
)
SHAFT_HZ = 29.95
ORDERS = {"bpfo": 3.585, "bpfi": 5.415, "bsf": 2.357, "ftf": 0.398}
BASELINE = {
    "rms_g": 0.2,
    "crest_factor": 4.0,
    "kurtosis": 3.0,
    "order_1x_g": 0.1,
    "order_2x_g": 0.05,
    "order_3x_g": 0.02,
    "env_bpfo_g": 0.01,
    "env_bpfi_g": 0.01,
    "env_bsf_h2_g": 0.01,
    "env_ftf_g": 0.01,
}
"""An asset's commissioning medians (a subset of the baseline features)."""
FLOOR_G = 0.01
HEALTHY = {
    **BASELINE,
    **{f"env_{defect}{suffix}_g": FLOOR_G for defect in ORDERS for suffix in ("", "_h2", "_h3", "_sb")},
    "env_floor_g": FLOOR_G,
}
"""A healthy window: every feature at its baseline, every envelope line at the floor (prominence 1)."""


def run(
    scores: list[float],
    *,
    settings: DecisionSettings = SETTINGS,
    memory: AssetState | None = None,
    step_s: float = 10.0,
    start_s: float = 1_700_000_000.0,
) -> list[Decision]:
    memory = memory if memory is not None else AssetState()
    return [decide(settings, memory, score, start_s + i * step_s) for i, score in enumerate(scores)]


def states(decisions: list[Decision]) -> list[str]:
    return [decision.state for decision in decisions]


def alerts(decisions: list[Decision]) -> list[int]:
    return [i for i, decision in enumerate(decisions) if decision.alert]


# --- persistence -------------------------------------------------------------------------------------


def test_warning_needs_persistence_consecutive_windows() -> None:
    decisions = run([1.5, 1.5, 1.5, 1.5])
    assert states(decisions) == ["normal", "normal", "warning", "warning"]
    assert alerts(decisions) == [2]
    assert decisions[2].previous_state == "normal"


def test_an_interrupted_streak_starts_counting_again() -> None:
    decisions = run([1.5, 1.5, 0.5, 1.5, 1.5, 1.5])
    assert states(decisions) == ["normal"] * 5 + ["warning"]


def test_normal_jumps_straight_to_alarm_after_persistence_windows_at_alarm_level() -> None:
    decisions = run([5.0, 5.0, 5.0])
    assert states(decisions) == ["normal", "normal", "alarm"]
    assert decisions[2].previous_state == "normal"
    assert alerts(decisions) == [2]


def test_a_mixed_streak_rises_to_the_lowest_level_held_throughout() -> None:
    decisions = run([5.0, 1.5, 5.0, 5.0, 5.0, 5.0])
    # the streak 5, 1.5, 5 holds warning throughout; alarm then needs its own streak
    assert states(decisions) == ["normal", "normal", "warning", "warning", "warning", "alarm"]
    assert alerts(decisions) == [2, 5]


# --- hysteresis --------------------------------------------------------------------------------------


def test_warning_does_not_clear_while_score_stays_above_threshold_times_hysteresis() -> None:
    memory = AssetState()
    run([1.5, 1.5, 1.5], memory=memory)
    assert memory.state == "warning"
    decisions = run([0.85] * 20, memory=memory)  # below 1.0, above 1.0 × 0.8
    assert states(decisions) == ["warning"] * 20
    assert alerts(decisions) == []


def test_warning_clears_after_clear_windows_below_threshold_times_hysteresis() -> None:
    memory = AssetState()
    run([1.5, 1.5, 1.5], memory=memory)
    decisions = run([0.7, 0.7, 0.7, 0.7, 0.7], memory=memory)
    assert states(decisions) == ["warning", "warning", "warning", "normal", "normal"]
    assert alerts(decisions) == [3]
    assert decisions[3].previous_state == "warning"


def test_one_window_above_the_hysteresis_band_restarts_the_clearing_count() -> None:
    memory = AssetState()
    run([1.5, 1.5, 1.5], memory=memory)
    decisions = run([0.7, 0.7, 0.7, 0.9, 0.7, 0.7, 0.7, 0.7], memory=memory)
    assert states(decisions) == ["warning"] * 7 + ["normal"]


def test_alarm_falls_to_warning_when_scores_drop_below_alarm_band_but_stay_at_warning_level() -> None:
    memory = AssetState()
    run([5.0] * 3, memory=memory)
    assert memory.state == "alarm"
    decisions = run([2.6, 2.6, 2.6, 2.6], memory=memory)  # below 3.0 but above 3.0 × 0.8: no change
    assert states(decisions) == ["alarm"] * 4
    decisions = run([2.0] * 4, memory=memory)
    assert states(decisions) == ["alarm"] * 3 + ["warning"]
    assert decisions[3].previous_state == "alarm" and decisions[3].alert


def test_alarm_clearing_with_scores_inside_the_warning_hysteresis_band_stays_in_warning() -> None:
    memory = AssetState()
    run([5.0] * 3, memory=memory)
    # 0.9 is below the warning threshold but above 1.0 × 0.8: a warning would not clear at this score,
    # so an alarm must not fall past warning to normal either
    decisions = run([0.9] * 4, memory=memory)
    assert states(decisions)[-1] == "warning"


def test_alarm_clearing_falls_to_the_highest_level_held_during_the_clearing_streak() -> None:
    memory = AssetState()
    run([5.0] * 3, memory=memory)
    # three windows at warning level and one quiet window: the asset is still at warning level
    decisions = run([2.0, 2.0, 2.0, 0.1], memory=memory)
    assert states(decisions)[-1] == "warning"
    decisions = run([0.1] * 4, memory=memory)
    assert states(decisions) == ["warning"] * 3 + ["normal"]


def test_alarm_clears_to_normal_when_every_clearing_window_is_quiet() -> None:
    memory = AssetState()
    run([5.0] * 3, memory=memory)
    decisions = run([0.1] * 4, memory=memory)
    assert states(decisions) == ["alarm"] * 3 + ["normal"]
    assert decisions[-1].previous_state == "alarm"


# --- alerts ------------------------------------------------------------------------------------------


def test_alert_only_on_a_state_change_outside_alarm() -> None:
    scores = [0.1] * 5 + [1.5] * 10 + [0.1] * 10 + [1.5] * 5
    decisions = run(scores)
    changes = [i for i in range(1, len(decisions)) if decisions[i].state != decisions[i - 1].state]
    assert alerts(decisions) == changes == [7, 18, 27]
    for decision in decisions:
        assert decision.alert == (decision.state != decision.previous_state)


def test_alarm_repeats_every_alarm_repeat_s_and_not_in_between() -> None:
    # one window every 10 s for 2.5 hours at alarm level
    decisions = run([5.0] * 900, step_s=10.0)
    assert decisions[2].state == "alarm"
    # the alarm starts at window 2 (t = 20 s); repeats at t = 3620 s and t = 7220 s
    assert alerts(decisions) == [2, 362, 722]
    assert [decisions[i].previous_state for i in alerts(decisions)] == ["normal", "alarm", "alarm"]


def test_repeat_is_measured_from_the_last_alert_in_measurement_time() -> None:
    settings = dataclasses.replace(SETTINGS, alarm_repeat_s=100.0)
    memory = AssetState()
    start = 1_700_000_000.0
    for i in range(3):
        decide(settings, memory, 5.0, start + i)
    assert memory.state == "alarm"
    assert memory.last_alert_s == start + 2
    assert not decide(settings, memory, 5.0, start + 101.9).alert
    assert decide(settings, memory, 5.0, start + 102.0).alert
    assert not decide(settings, memory, 5.0, start + 150.0).alert


def test_memory_survives_a_round_trip_through_its_fields() -> None:
    memory = AssetState()
    run([5.0, 5.0], memory=memory)
    restored = AssetState(**dataclasses.asdict(memory))
    assert decide(SETTINGS, restored, 5.0, 1_700_000_100.0).state == "alarm"


# --- diagnosis ---------------------------------------------------------------------------------------


def diagnosis(
    features: dict[str, float],
    baseline: dict[str, float] = BASELINE,
    *,
    label: str = "healthy",
    label_confidence: float = 0.9,
    min_confidence: float = 0.7,
    machine_class: str = "II",
    temperature_c: float | None = None,
    explain: bool = True,
) -> tuple[str, float, list[str]]:
    return diagnose(
        features,
        baseline,
        label=label,
        label_confidence=label_confidence,
        min_confidence=min_confidence,
        shaft_hz=SHAFT_HZ,
        defect_orders=ORDERS,
        machine_class=machine_class,
        temperature_c=temperature_c,
        overheating_c=90.0,
        explain=explain,
    )


# an outer-race comb: 10×, 5× and 4× the envelope floor, the fundamental 10× its baseline
BPFO_COMB = {"env_bpfo_g": 0.1, "env_bpfo_h2_g": 0.05, "env_bpfo_h3_g": 0.04}


def test_a_healthy_window_has_no_failure_mode_and_no_evidence() -> None:
    assert diagnosis(HEALTHY) == ("unknown", 0.5, [])


@pytest.mark.parametrize("probability", [0.7, 0.93])
def test_the_classifiers_label_is_taken_at_or_above_min_confidence(probability: float) -> None:
    mode, confidence, evidence = diagnosis(HEALTHY, label="inner_race", label_confidence=probability)
    assert (mode, confidence) == ("inner_race", probability)
    assert evidence == [f"Fault classifier: inner race (probability {probability:.2f})"]


def test_the_classifiers_label_below_min_confidence_is_ignored() -> None:
    assert diagnosis(HEALTHY, label="inner_race", label_confidence=0.69) == ("unknown", 0.5, [])


@pytest.mark.parametrize("label", ["healthy", "unknown"])
def test_a_healthy_or_unknown_label_never_names_a_fault_however_sure(label: str) -> None:
    assert diagnosis(HEALTHY, label=label, label_confidence=0.99) == ("unknown", 0.5, [])


def test_a_prominent_bpfo_comb_names_outer_race_when_the_classifier_is_unsure() -> None:
    features = HEALTHY | BPFO_COMB
    mode, confidence, evidence = diagnosis(features, label="inner_race", label_confidence=0.4)
    assert (mode, confidence) == ("outer_race", 0.6)
    assert evidence == [
        "BPFO 3.58× (107.4 Hz) in the envelope: harmonics 1×, 2×, 3× stand 10× above the floor; 0.100 g,"
        " 10.0× baseline"
    ]


def test_shaft_sidebands_around_a_defect_line_are_named() -> None:
    features = HEALTHY | {"env_bpfi_g": 0.08, "env_bpfi_sb_g": 0.04}
    mode, _, evidence = diagnosis(features)
    assert mode == "inner_race"
    assert len(evidence) == 1
    assert evidence[0].startswith("BPFI 5.42× (162.2 Hz) in the envelope: harmonics 1× stand 8×")
    assert evidence[0].endswith("; sidebands at ±1× shaft")


def test_a_confident_classifier_keeps_its_label_and_the_envelope_adds_evidence() -> None:
    mode, confidence, evidence = diagnosis(
        HEALTHY | BPFO_COMB, label="outer_race", label_confidence=0.95, min_confidence=0.8
    )
    assert (mode, confidence) == ("outer_race", 0.95)
    assert evidence[0] == "Fault classifier: outer race (probability 0.95)"
    assert "BPFO" in evidence[1]


def test_the_strongest_defect_names_the_mode_and_every_standing_out_defect_is_evidence() -> None:
    features = HEALTHY | {"env_bpfo_g": 0.06, "env_bpfi_g": 0.2}
    mode, _, evidence = diagnosis(features)
    assert mode == "inner_race"
    assert sorted(line.split()[0] for line in evidence) == ["BPFI", "BPFO"]


def test_a_harmonic_standing_out_without_its_fundamental_growing_is_not_evidence() -> None:
    # only 2×BPFO is prominent and BPFO itself sits at its baseline: a coincident line, not a comb
    features = HEALTHY | {"env_bpfo_h2_g": 0.05}
    assert diagnosis(features) == ("unknown", 0.5, [])
    # once the fundamental has grown past 2× its baseline, the harmonic counts
    mode, _, evidence = diagnosis(features | {"env_bpfo_g": 0.025})
    assert mode == "outer_race"
    assert "harmonics 2× stand 5× above the floor; 0.025 g, 2.5× baseline" in evidence[0]


def test_a_prominent_fundamental_is_evidence_even_if_it_was_already_there_at_commissioning() -> None:
    # a bearing commissioned with a defect: BPFO stands 5× above the floor but only 1.33× its baseline
    mode, _, evidence = diagnosis(HEALTHY | {"env_bpfo_g": 0.05}, BASELINE | {"env_bpfo_g": 0.0375})
    assert mode == "outer_race"
    assert evidence[0].endswith("stand 5× above the floor; 0.050 g, 1.3× baseline")


def test_a_line_below_prominence_is_not_evidence_however_much_it_grew() -> None:
    # the whole envelope rose: BPFO is 10× its baseline but only 2× the floor
    features = HEALTHY | {"env_floor_g": 0.05, "env_bpfo_g": 0.1}
    assert diagnosis(features) == ("unknown", 0.5, [])


def test_a_grown_running_speed_harmonic_is_evidence_with_its_frequency() -> None:
    features = HEALTHY | {"order_2x_g": 0.2, "order_3x_g": 0.03}  # 4× and 1.5× their baselines
    mode, _, evidence = diagnosis(features)
    assert mode == "unknown"
    assert evidence == ["2× running speed (59.9 Hz): 0.200 g, 4.0× baseline"]


@pytest.mark.parametrize(
    ("machine_class", "velocity", "zone", "sentence"),
    [
        (
            "II",
            3.0,
            3.0,
            "Velocity 3.00 mm/s RMS (10–1000 Hz): ISO 10816 zone C for class II, B/C boundary 2.8 mm/s",
        ),
        (
            "group2-rigid",
            5.25,
            4.0,
            "Velocity 5.25 mm/s RMS (10–1000 Hz): ISO 10816 zone D for class group2-rigid, B/C boundary 2.8 mm/s",
        ),
        (
            "II",
            0.5,
            1.0,
            "Velocity 0.50 mm/s RMS (10–1000 Hz): ISO 10816 zone A for class II, B/C boundary 2.8 mm/s",
        ),
    ],
)
def test_the_iso_zone_is_stated_with_the_velocity_and_the_classs_b_c_boundary(
    machine_class: str, velocity: float, zone: float, sentence: str
) -> None:
    features = HEALTHY | {"velocity_rms_mm_s": velocity, "iso_zone": zone}
    mode, _, evidence = diagnosis(features, machine_class=machine_class)
    assert mode == "unknown"
    assert evidence == [sentence]


def test_impulsiveness_and_rms_growth_are_evidence_after_the_lines() -> None:
    features = (
        HEALTHY | BPFO_COMB | {"kurtosis": 9.0, "rms_g": 0.5, "velocity_rms_mm_s": 3.0, "iso_zone": 3.0}
    )
    _, _, evidence = diagnosis(features)
    assert [line.split()[0] for line in evidence] == ["BPFO", "Velocity", "Kurtosis", "RMS"]
    assert evidence[2] == "Kurtosis 9.00, 3.0× baseline (3.00)"
    assert evidence[3] == "RMS 0.50 g, 2.5× baseline (0.20 g)"


def test_temperature_over_the_limit_names_overheating() -> None:
    features = HEALTHY | {"temperature_slope_c_per_h": 2.5}
    mode, confidence, evidence = diagnosis(features, temperature_c=95.0)
    assert (mode, confidence) == ("overheating", 0.5)
    assert evidence == ["Bearing temperature 95.0 °C, above the 90 °C limit (rising 2.5 °C/h)"]


def test_a_fast_rising_temperature_below_the_limit_is_evidence_but_no_failure_mode() -> None:
    mode, _, evidence = diagnosis(HEALTHY | {"temperature_slope_c_per_h": 6.0}, temperature_c=70.0)
    assert mode == "unknown"
    assert evidence == ["Bearing temperature 70.0 °C, rising 6.0 °C/h"]
    assert diagnosis(HEALTHY | {"temperature_slope_c_per_h": 4.9}, temperature_c=70.0)[2] == []


def test_a_bearing_defect_outranks_overheating_but_keeps_the_temperature_as_evidence() -> None:
    mode, _, evidence = diagnosis(HEALTHY | BPFO_COMB, temperature_c=95.0)
    assert mode == "outer_race"
    assert "BPFO" in evidence[0]
    assert evidence[-1].startswith("Bearing temperature 95.0 °C, above the 90 °C limit")


def test_a_confident_classifier_outranks_overheating() -> None:
    mode, _, _ = diagnosis(HEALTHY, label="misalignment", label_confidence=0.9, temperature_c=95.0)
    assert mode == "misalignment"


@pytest.mark.parametrize("baseline", [{}, dict.fromkeys(BASELINE, 0.0)])
def test_a_missing_or_zero_baseline_does_not_divide_by_zero(baseline: dict[str, float]) -> None:
    features = HEALTHY | BPFO_COMB | {"kurtosis": 9.0, "order_1x_g": 0.5}
    mode, confidence, evidence = diagnosis(features, baseline)
    assert (mode, confidence) == ("outer_race", 0.6)
    assert len(evidence) == 1
    assert "baseline" not in evidence[0]


def test_all_zero_features_and_a_zero_floor_do_not_divide_by_zero() -> None:
    features = dict.fromkeys(HEALTHY, 0.0) | {"velocity_rms_mm_s": 0.0, "iso_zone": 1.0}
    mode, _, evidence = diagnosis(features, dict.fromkeys(BASELINE, 0.0), temperature_c=20.0)
    assert mode == "unknown"
    assert [line.split()[0] for line in evidence] == ["Velocity"]


@pytest.mark.parametrize(
    ("features", "label", "temperature_c"),
    [
        (HEALTHY, "healthy", None),
        (HEALTHY, "inner_race", None),
        (HEALTHY | BPFO_COMB, "healthy", 95.0),
        (HEALTHY | {"env_bpfo_g": 0.06, "env_bpfi_g": 0.2}, "healthy", None),
        (HEALTHY | {"env_bpfo_h2_g": 0.05}, "healthy", None),
        (HEALTHY, "healthy", 95.0),
        (HEALTHY, "misalignment", 95.0),
    ],
)
def test_without_explanation_the_mode_and_confidence_are_the_same_and_no_sentences_are_written(
    features: dict[str, float], label: str, temperature_c: float | None
) -> None:
    explained = diagnosis(features, label=label, temperature_c=temperature_c)
    mode, confidence, evidence = diagnosis(features, label=label, temperature_c=temperature_c, explain=False)
    assert (mode, confidence) == explained[:2]
    assert evidence == []
