"""An asset's learned normal: commissioning, medians and spreads, model inputs, drift, storage, threshold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from plantwatch.agent.baseline import (
    ANOMALY_INPUTS,
    BASELINE_FEATURES,
    CLASSIFIER_INPUTS,
    DRIFT_SPAN_WINDOWS,
    ENVELOPE_LINES,
    FLOOR,
    MIN_SPREAD,
    PROMINENCE_INPUTS,
    RELATIVE_INPUTS,
    THRESHOLD_MARGIN,
    Baseline,
    calibrate_threshold,
    input_matrix,
    model_inputs,
    relative_inputs,
)
from plantwatch.agent.features import FEATURE_NAMES

ALPHA = 2.0 / (DRIFT_SPAN_WINDOWS + 1)
SCALE = {name: 0.1 * (i + 1) for i, name in enumerate(BASELINE_FEATURES)}
"""Each feature's median in the known data: distinct, so a feature mixed up with another shows."""
LOG_STEPS = (-0.2, -0.1, 0.0, 0.1, 0.2)
"""Known commissioning data: each feature is its scale × e^step. The median is the scale itself (the
middle value, exact), the log deviations are 0.2, 0.1, 0, 0.1, 0.2, so the MAD of the logs is 0.1 and
the spread 1.4826 × 0.1."""


def batch(values: dict[str, list[float]]) -> dict[str, np.ndarray]:
    return {name: np.asarray(column, dtype=np.float64) for name, column in values.items()}


def constant(count: int, **overrides: float) -> dict[str, np.ndarray]:
    """``count`` windows at every feature's median, with ``overrides`` (feature = value)."""
    return {
        name: np.full(count, overrides.get(name, SCALE[name]), dtype=np.float64) for name in BASELINE_FEATURES
    }


def known_rows() -> dict[str, np.ndarray]:
    return {name: SCALE[name] * np.exp(np.asarray(LOG_STEPS)) for name in BASELINE_FEATURES}


def commissioned(threshold: float | None = 0.5) -> Baseline:
    baseline = Baseline(target_windows=len(LOG_STEPS))
    baseline.add(known_rows(), len(LOG_STEPS))
    baseline.finish()
    baseline.threshold = threshold
    return baseline


# --- commissioning -----------------------------------------------------------------------------------


def test_commissioning_takes_exactly_target_windows_across_several_batches_and_no_more() -> None:
    baseline = Baseline(target_windows=10)
    assert not baseline.complete and not baseline.ready
    # each window is numbered in every feature, so which rows were taken shows
    first = constant(4) | {"rms_g": np.array([0.0, 1.0, 2.0, 3.0])}
    second = constant(4) | {"rms_g": np.array([10.0, 11.0, 12.0, 13.0])}
    third = constant(4) | {"rms_g": np.array([20.0, 21.0, 22.0, 23.0])}
    assert baseline.add(first, 4) == 4
    assert baseline.add(second, 4) == 4
    assert not baseline.ready
    assert baseline.add(third, 4) == 2  # only two more were needed: the batch's first two
    assert baseline.windows == 10
    assert baseline.ready and not baseline.complete
    assert baseline.add(third, 4) == 0  # full, though not finished
    column = BASELINE_FEATURES.index("rms_g")
    assert [row[column] for row in baseline.rows] == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21]
    rows = baseline.finish()
    assert rows["rms_g"].tolist() == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21]
    assert baseline.complete and not baseline.ready
    assert baseline.add(first, 4) == 0
    assert baseline.windows == 10


def test_commissioning_reads_only_the_baseline_features_of_a_full_feature_batch() -> None:
    features = {name: np.full(3, 0.25) for name in FEATURE_NAMES}
    baseline = Baseline(target_windows=3)
    assert baseline.add(features, 3) == 3
    assert baseline.rows == [[0.25] * len(BASELINE_FEATURES)] * 3


def test_finish_gives_exact_medians_and_the_robust_spread_of_the_logs() -> None:
    baseline = commissioned()
    assert baseline.median == SCALE  # the middle of five values: no interpolation, exact
    for name in BASELINE_FEATURES:
        # 1.4826 × MAD of log(x + 1e-6); the 1e-6 moves each log by at most 1e-6 / 0.08
        assert baseline.spread[name] == pytest.approx(1.4826 * 0.1, rel=1e-4), name
    assert baseline.rows == []
    assert baseline.drift == dict.fromkeys(BASELINE_FEATURES, 0.0)
    assert baseline.worst_drift()[1] == 0.0


def test_a_feature_that_never_moved_gets_the_minimum_spread() -> None:
    baseline = Baseline(target_windows=5)
    baseline.add(known_rows() | {"kurtosis": np.full(5, 3.0)}, 5)
    baseline.finish()
    assert baseline.median["kurtosis"] == 3.0
    assert baseline.spread["kurtosis"] == MIN_SPREAD
    assert baseline.spread["rms_g"] == pytest.approx(0.14826, rel=1e-4)


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    baseline = Baseline(target_windows=4)
    baseline.add(constant(4) | {"rms_g": np.array([4.0, 1.0, 3.0, 2.0])}, 4)
    baseline.finish()
    assert baseline.median["rms_g"] == 2.5


# --- model inputs ------------------------------------------------------------------------------------


def window_features(**values: float) -> dict[str, np.ndarray]:
    """One window's features: every baseline feature and envelope line at 1.0, the floor at 0.5."""
    features = {name: np.array([1.0]) for name in BASELINE_FEATURES + ENVELOPE_LINES}
    features["env_floor_g"] = np.array([0.5])
    features.update({name: np.array([value]) for name, value in values.items()})
    return features


def test_relative_inputs_are_the_feature_over_the_median_with_a_floor() -> None:
    median = dict.fromkeys(BASELINE_FEATURES, 2.0) | {"band_rms_6k_12k_g": 0.0}
    features = window_features(rms_g=6.0, band_rms_6k_12k_g=0.0, kurtosis=0.0)
    inputs = model_inputs(features, median)
    assert inputs["rel_rms_g"][0] == pytest.approx((6.0 + FLOOR) / (2.0 + FLOOR), rel=1e-15)
    assert inputs["rel_rms_g"][0] == pytest.approx(3.0, rel=1e-6)
    # a feature that is 0 on this sensor and was 0 at commissioning reads 1, not 0/0
    assert inputs["rel_band_rms_6k_12k_g"][0] == 1.0
    # a feature that fell to 0 reads FLOOR / (median + FLOOR): tiny, positive, finite under a logarithm
    assert inputs["rel_kurtosis"][0] == pytest.approx(FLOOR / (2.0 + FLOOR), rel=1e-12)
    assert relative_inputs(features, median).keys() == set(RELATIVE_INPUTS)
    for name, values in relative_inputs(features, median).items():
        assert np.array_equal(values, inputs[name]), name


def test_prominence_inputs_are_each_envelope_line_over_the_same_windows_floor() -> None:
    features = window_features(env_bpfo_g=1.5, env_bpfi_h2_g=0.25)
    features = {name: np.concatenate([values, 2 * values]) for name, values in features.items()}
    inputs = model_inputs(features, dict.fromkeys(BASELINE_FEATURES, 1.0))
    # line / floor; the 1e-9 added to both moves the ratio by ~1e-9 relative
    assert inputs["prom_env_bpfo_g"] == pytest.approx([3.0, 3.0], rel=1e-8)
    assert inputs["prom_env_bpfi_h2_g"] == pytest.approx([0.5, 0.5], rel=1e-8)
    assert inputs["prom_env_ftf_sb_g"] == pytest.approx([2.0, 2.0], rel=1e-8)


def test_model_inputs_are_exactly_the_classifier_inputs_and_stack_in_their_order() -> None:
    inputs = model_inputs(window_features(), dict.fromkeys(BASELINE_FEATURES, 1.0))
    assert set(inputs) == set(CLASSIFIER_INPUTS)
    assert CLASSIFIER_INPUTS == RELATIVE_INPUTS + PROMINENCE_INPUTS
    assert ANOMALY_INPUTS == RELATIVE_INPUTS
    numbered = {name: np.array([float(i), -float(i)]) for i, name in enumerate(CLASSIFIER_INPUTS)}
    matrix = input_matrix(numbered, ANOMALY_INPUTS)
    assert matrix.shape == (2, len(ANOMALY_INPUTS))
    assert matrix[0].tolist() == list(range(len(ANOMALY_INPUTS)))
    assert input_matrix(numbered, CLASSIFIER_INPUTS)[1].tolist() == [-float(i) for i in range(len(numbered))]


# --- drift -------------------------------------------------------------------------------------------


def test_drift_of_an_asset_that_stays_at_its_median_is_zero() -> None:
    baseline = commissioned()
    for _ in range(5):
        baseline.update_drift(constant(100))
    name, drift = baseline.worst_drift()
    # log(m + 1e-6) − log(m + 1e-6) is exactly 0: nothing can accumulate
    assert drift == 0.0
    assert all(value == 0.0 for value in baseline.drift.values())


def test_drift_of_healthy_noise_stays_well_under_one_spread() -> None:
    baseline = commissioned()
    rng = np.random.default_rng(5)
    spread = 1.4826 * 0.1
    for _ in range(10):
        noise = rng.normal(0.0, spread, size=(100, len(BASELINE_FEATURES)))
        baseline.update_drift(
            {name: SCALE[name] * np.exp(noise[:, i]) for i, name in enumerate(BASELINE_FEATURES)}
        )
    # the EWMA of unit normal z has standard deviation √(α / (2 − α)) ≈ 0.07 spread; 20 features stay
    # within five of them
    assert abs(baseline.worst_drift()[1]) < 0.35


@pytest.mark.parametrize("shift", [3.0, -2.0])
def test_a_shifted_feature_drifts_toward_its_shift_in_spreads_and_is_named(shift: float) -> None:
    baseline = commissioned()
    spread = baseline.spread["kurtosis"]
    shifted = SCALE["kurtosis"] * math.exp(shift * spread)  # log ratio = shift spreads
    seen = []
    for windows in (1, 49, 150, 800):
        baseline.update_drift(constant(windows, kurtosis=shifted))
        seen.append(baseline.drift["kurtosis"])
    # n windows of a constant z from 0: drift = z (1 − (1 − α)^n); FLOOR bends z by ~1e-5 relative
    for drift, total in zip(seen, (1, 50, 200, 1000), strict=True):
        assert drift == pytest.approx(shift * (1 - (1 - ALPHA) ** total), rel=1e-4)
    assert [abs(value) for value in seen] == sorted(abs(value) for value in seen)
    assert abs(seen[-1]) < abs(shift)
    assert seen[-1] == pytest.approx(shift, rel=1e-3)
    assert baseline.worst_drift() == ("kurtosis", seen[-1])
    assert all(value == 0.0 for name, value in baseline.drift.items() if name != "kurtosis")


def test_drift_over_one_batch_equals_the_same_windows_one_at_a_time() -> None:
    rng = np.random.default_rng(8)
    together, one_by_one = commissioned(), commissioned()
    warm_up = {name: SCALE[name] * np.exp(rng.normal(0.5, 0.2, 30)) for name in BASELINE_FEATURES}
    windows = {name: SCALE[name] * np.exp(rng.normal(-0.3, 0.2, 57)) for name in BASELINE_FEATURES}
    for baseline in (together, one_by_one):
        baseline.update_drift(warm_up)  # start from a drift that is not 0
    together.update_drift(windows)
    for i in range(57):
        one_by_one.update_drift({name: values[i : i + 1] for name, values in windows.items()})
    # the closed form Σ α(1−α)^(n−1−i) z_i against 57 recurrences m ← (1−α) m + α z: float64 rounding
    for name in BASELINE_FEATURES:
        assert together.drift[name] == pytest.approx(one_by_one.drift[name], rel=1e-12, abs=1e-15), name
        assert together.drift[name] != 0.0


def test_a_window_with_a_missing_value_leaves_that_features_drift_untouched() -> None:
    baseline = commissioned()
    baseline.update_drift(constant(1, rms_g=float("nan"), kurtosis=SCALE["kurtosis"] * 2.0))
    assert baseline.drift["rms_g"] == 0.0
    assert baseline.drift["kurtosis"] > 0.0
    assert all(math.isfinite(value) for value in baseline.drift.values())


def test_drift_is_not_followed_while_commissioning() -> None:
    baseline = Baseline(target_windows=10)
    baseline.add(constant(3), 3)
    baseline.update_drift(constant(3, rms_g=100.0))
    assert baseline.drift == {}
    assert baseline.worst_drift() == (None, 0.0)


# --- storage -----------------------------------------------------------------------------------------


def test_a_baseline_survives_a_json_round_trip_while_commissioning_and_once_complete() -> None:
    partial = Baseline(target_windows=5)
    partial.add(known_rows(), 3)
    complete = commissioned(threshold=0.37)
    complete.update_drift(constant(20, kurtosis=SCALE["kurtosis"] * 1.5))
    for baseline in (partial, complete):
        text = baseline.to_json()
        assert isinstance(json.loads(text), dict)
        assert Baseline.from_json(text, target_windows=99) == baseline
    assert Baseline.from_json(complete.to_json(), target_windows=99).threshold == 0.37


def test_from_json_refuses_a_baseline_of_other_features() -> None:
    data = json.loads(commissioned().to_json())
    data["median"] = {"rms_g": 0.2, "band_rms_2k_8k_g": 0.1}  # an older plantwatch's features
    with pytest.raises(ValueError, match="features differ"):
        Baseline.from_json(json.dumps(data), target_windows=5)


def test_from_json_refuses_commissioning_rows_of_the_wrong_length() -> None:
    partial = Baseline(target_windows=5)
    partial.add(known_rows(), 2)
    data = json.loads(partial.to_json())
    data["rows"][1] = data["rows"][1][:-1]
    with pytest.raises(ValueError, match="wrong length"):
        Baseline.from_json(json.dumps(data), target_windows=5)


@pytest.mark.parametrize("text", ["[]", "{}", '{"windows": 3, "sums": {}}'])
def test_from_json_refuses_something_that_is_not_a_baseline(text: str) -> None:
    with pytest.raises(ValueError, match="not a baseline"):
        Baseline.from_json(text, target_windows=5)


# --- threshold ---------------------------------------------------------------------------------------


def test_threshold_is_a_margin_over_the_largest_commissioning_score_ignoring_nan() -> None:
    scores = np.array([0.1, 0.4, float("nan"), 0.2])
    assert THRESHOLD_MARGIN == 1.5
    assert calibrate_threshold(scores, 0.3) == pytest.approx(0.6, rel=1e-15)


def test_threshold_is_never_below_the_models_calibrated_threshold() -> None:
    assert calibrate_threshold(np.array([0.1, 0.4]), 0.9) == 0.9
    assert calibrate_threshold(np.array([float("nan"), float("inf")]), 0.9) == 0.9
    assert calibrate_threshold(np.zeros(0), 0.9) == 0.9
