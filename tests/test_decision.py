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
    "peak_g": 0.8,
    "crest_factor": 4.0,
    "kurtosis": 3.0,
    "env_bpfo_g": 0.01,
    "env_bpfi_g": 0.01,
    "env_bsf_g": 0.01,
    "env_ftf_g": 0.01,
}


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


def test_bpfo_ten_times_baseline_names_outer_race_with_bpfo_evidence() -> None:
    features = dict(BASELINE, env_bpfo_g=0.1)
    mode, confidence, evidence = diagnose(
        features, BASELINE, shaft_hz=SHAFT_HZ, defect_orders=ORDERS, temperature_c=60.0, overheating_c=90.0
    )
    assert mode == "outer_race"
    assert 0.5 < confidence <= 0.99
    assert len(evidence) == 1
    assert "BPFO" in evidence[0]
    assert "107.4 Hz" in evidence[0]
    assert "10× baseline" in evidence[0]


def test_the_strongest_defect_line_wins_and_all_stand_out_lines_are_evidence() -> None:
    features = dict(BASELINE, env_bpfo_g=0.06, env_bpfi_g=0.2, kurtosis=9.0)
    mode, _, evidence = diagnose(
        features, BASELINE, shaft_hz=SHAFT_HZ, defect_orders=ORDERS, temperature_c=None, overheating_c=90.0
    )
    assert mode == "inner_race"
    assert any("BPFI" in line for line in evidence)
    assert any("BPFO" in line for line in evidence)
    # envelope lines first, then the time-domain statistics
    assert "Kurtosis" in evidence[-1]
    assert all("envelope" in line for line in evidence[:2])


def test_more_separation_from_baseline_gives_more_confidence() -> None:
    confidences = []
    for ratio in (5, 10, 40):
        features = dict(BASELINE, env_bsf_g=0.01 * ratio)
        mode, confidence, _ = diagnose(
            features,
            BASELINE,
            shaft_hz=SHAFT_HZ,
            defect_orders=ORDERS,
            temperature_c=None,
            overheating_c=90.0,
        )
        assert mode == "ball"
        confidences.append(confidence)
    assert confidences == sorted(confidences)
    assert confidences[0] < confidences[-1] <= 0.99


def test_nothing_standing_out_gives_unknown_with_no_evidence() -> None:
    features = dict(BASELINE, env_bpfo_g=0.03, rms_g=0.25)  # 3× and 1.25×: within healthy scatter
    mode, confidence, evidence = diagnose(
        features, BASELINE, shaft_hz=SHAFT_HZ, defect_orders=ORDERS, temperature_c=40.0, overheating_c=90.0
    )
    assert (mode, confidence, evidence) == ("unknown", 0.5, [])


def test_temperature_over_the_limit_names_overheating() -> None:
    mode, _, evidence = diagnose(
        BASELINE, BASELINE, shaft_hz=SHAFT_HZ, defect_orders=ORDERS, temperature_c=95.0, overheating_c=90.0
    )
    assert mode == "overheating"
    assert evidence == ["Bearing temperature 95.0 °C, above the 90 °C limit"]


def test_a_bearing_defect_outranks_overheating_but_keeps_the_temperature_as_evidence() -> None:
    features = dict(BASELINE, env_bpfo_g=0.1)
    mode, _, evidence = diagnose(
        features, BASELINE, shaft_hz=SHAFT_HZ, defect_orders=ORDERS, temperature_c=95.0, overheating_c=90.0
    )
    assert mode == "outer_race"
    assert "BPFO" in evidence[0]
    assert any("temperature" in line for line in evidence)


@pytest.mark.parametrize("baseline", [{}, {"env_bpfo_g": 0.0}])
def test_a_missing_or_zero_baseline_does_not_divide_by_zero(baseline: dict[str, float]) -> None:
    mode, confidence, _ = diagnose(
        {"env_bpfo_g": 0.1, "kurtosis": 5.0},
        baseline,
        shaft_hz=SHAFT_HZ,
        defect_orders=ORDERS,
        temperature_c=None,
        overheating_c=90.0,
    )
    assert mode == "outer_race"
    assert confidence == 0.99
