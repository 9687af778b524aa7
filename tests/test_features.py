"""Vibration features against known answers: a pure tone, white noise, an impulse train at a defect
frequency, running-speed harmonics of known amplitude, a slow sensor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plantwatch.agent.features import (
    CHUNK_WINDOWS,
    ENVELOPE_BAND_HZ,
    FEATURE_NAMES,
    G_MM_S2,
    ISO_ZONE_LIMITS_MM_S,
    envelope_spectrum,
    estimate_shaft_hz,
    feature_matrix,
    hann_amplitude,
    iso_zone,
    peak_near,
    peaks_at,
    time_features,
    vibration_features,
    zone_letter,
)

FS_HZ = 25600.0
SAMPLES = 4096  # 6.25 Hz bins
RESOLUTION_HZ = FS_HZ / SAMPLES
SHAFT_HZ = 29.95  # 4.79 bins: off-bin on purpose
ORDERS = {"bpfo": 3.585, "bpfi": 5.415, "bsf": 2.357, "ftf": 0.398}  # SKF 6205
BPFO_HZ = ORDERS["bpfo"] * SHAFT_HZ  # 107.4 Hz
BPFI_HZ = ORDERS["bpfi"] * SHAFT_HZ  # 162.2 Hz


def times(samples: int = SAMPLES, fs_hz: float = FS_HZ) -> np.ndarray:
    return np.arange(samples) / fs_hz


def tone(frequency_hz: float, amplitude: float, samples: int = SAMPLES, fs_hz: float = FS_HZ) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * frequency_hz * times(samples, fs_hz))


def impulse_train(
    rate_hz: float,
    *,
    resonance_hz: float = 3600.0,
    decay_per_s: float = 800.0,
    samples: int = SAMPLES,
    fs_hz: float = FS_HZ,
    modulation_hz: float | None = None,
    depth: float = 0.0,
) -> np.ndarray:
    """Decaying bursts of ``resonance_hz``, one every 1/``rate_hz`` s: a bearing defect ringing the housing.

    With ``modulation_hz`` each burst's strength is 1 + ``depth``·cos(2π·``modulation_hz``·t): an inner-race
    defect carried in and out of the load zone once a shaft turn.
    """
    t = times(samples, fs_hz)
    signal = np.zeros(samples)
    for start in np.arange(0.0, samples / fs_hz, 1.0 / rate_hz):
        strength = 1.0 if modulation_hz is None else 1.0 + depth * math.cos(2 * np.pi * modulation_hz * start)
        after = t >= start
        tau = t[after] - start
        signal[after] += strength * np.exp(-decay_per_s * tau) * np.sin(2 * np.pi * resonance_hz * tau)
    return signal


def features_of(
    windows: np.ndarray, fs_hz: float = FS_HZ, *, shaft_hz: float = SHAFT_HZ, **options: object
) -> dict[str, np.ndarray]:
    return vibration_features(
        np.atleast_2d(windows), fs_hz, shaft_hz=shaft_hz, defect_orders=ORDERS, **options
    )


# --- time domain -------------------------------------------------------------------------------------


def test_pure_tone_has_the_textbook_time_statistics() -> None:
    amplitude = 2.5
    # 100 Hz at 25.6 kHz: 256 samples a period, 16 whole periods, and sample 64 sits on the crest, so
    # every statistic is exact up to float64 rounding
    features = time_features(tone(100.0, amplitude)[None, :])
    assert features["rms_g"][0] == pytest.approx(amplitude / math.sqrt(2), rel=1e-12)
    assert features["peak_g"][0] == pytest.approx(amplitude, rel=1e-12)
    assert features["peak_to_peak_g"][0] == pytest.approx(2 * amplitude, rel=1e-12)
    assert features["crest_factor"][0] == pytest.approx(math.sqrt(2), rel=1e-12)
    assert features["kurtosis"][0] == pytest.approx(1.5, rel=1e-12)
    assert features["skewness"][0] == pytest.approx(0.0, abs=1e-12)


def test_pure_tone_statistics_hold_in_the_float32_batch_path() -> None:
    amplitude = 2.5
    features = features_of(tone(100.0, amplitude))
    # vibration_features computes in float32: 24-bit mantissa, about 1e-7 relative a step; the sums of 4096
    # squares and fourth powers keep the error within a few 1e-6
    assert features["rms_g"][0] == pytest.approx(amplitude / math.sqrt(2), rel=1e-5)
    assert features["peak_g"][0] == pytest.approx(amplitude, rel=1e-6)
    assert features["peak_to_peak_g"][0] == pytest.approx(2 * amplitude, rel=1e-6)
    assert features["crest_factor"][0] == pytest.approx(math.sqrt(2), rel=1e-5)
    assert features["kurtosis"][0] == pytest.approx(1.5, rel=1e-5)
    assert features["skewness"][0] == pytest.approx(0.0, abs=1e-5)


def test_white_noise_has_gaussian_kurtosis_no_skew_and_rms_of_its_standard_deviation() -> None:
    rng = np.random.default_rng(20240601)
    sigma, samples = 0.3, 1 << 18
    features = time_features(rng.normal(0.0, sigma, size=(1, samples)))
    # standard errors for n = 2^18: kurtosis √(24/n) ≈ 0.0096, skewness √(6/n) ≈ 0.0048, RMS σ/√(2n) ≈
    # 0.0014 σ; the tolerances are five of them
    assert features["kurtosis"][0] == pytest.approx(3.0, abs=0.05)
    assert features["skewness"][0] == pytest.approx(0.0, abs=0.025)
    assert features["rms_g"][0] == pytest.approx(sigma, rel=0.007)
    assert features["crest_factor"][0] > 3.5  # a Gaussian's peak over 2^18 samples sits 4–5 σ out


def test_a_one_sided_signal_has_the_sign_of_its_skewness() -> None:
    # half-wave rectified sine: its long tail is positive, its mirror image's negative
    rectified = np.maximum(tone(100.0, 1.0), 0.0)
    features = time_features(np.stack([rectified, -rectified]))
    assert features["skewness"][0] > 0.5
    assert features["skewness"][1] == pytest.approx(-features["skewness"][0], rel=1e-12)


def test_kurtosis_ignores_a_constant_offset_but_rms_includes_it() -> None:
    signal = tone(100.0, 1.0)
    plain, offset = time_features(np.stack([signal, signal + 5.0]))["kurtosis"]
    assert offset == pytest.approx(plain, rel=1e-9)
    rms = time_features((signal + 5.0)[None, :])["rms_g"][0]
    assert rms == pytest.approx(math.sqrt(0.5 + 25.0), rel=1e-12)


@pytest.mark.parametrize("level", [0.0, 2.0, -1.5])
def test_constant_window_gives_finite_features_without_numpy_warnings(level: float) -> None:
    windows = np.full((2, SAMPLES), level)
    with np.errstate(all="raise"):
        features = features_of(windows)
    assert set(features) == set(FEATURE_NAMES)
    for name, values in features.items():
        assert np.all(np.isfinite(values)), name
    assert np.all(features["kurtosis"] == 0.0)
    assert np.all(features["skewness"] == 0.0)
    assert np.all(features["rms_g"] == abs(level))
    assert np.all(features["crest_factor"] == (1.0 if level else 0.0))
    # a constant is all DC: nothing in any band, nothing in the envelope
    assert np.all(features["velocity_rms_mm_s"] == 0.0)
    assert np.all(features["iso_zone"] == 1.0)
    assert np.allclose(features["envelope_band_rms_g"], 0.0)
    assert np.allclose(features["env_bpfo_g"], 0.0)


def test_vibration_features_rejects_a_single_unbatched_window() -> None:
    with pytest.raises(ValueError, match="shape"):
        vibration_features(tone(100.0, 1.0), FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)


def test_vibration_features_rejects_windows_too_short_for_a_spectrum() -> None:
    with pytest.raises(ValueError, match="64"):
        vibration_features(np.zeros((2, 32)), FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)


def test_an_empty_batch_gives_every_feature_empty() -> None:
    features = features_of(np.zeros((0, SAMPLES)))
    assert set(features) == set(FEATURE_NAMES)
    assert all(values.shape == (0,) for values in features.values())


# --- velocity and ISO zone ---------------------------------------------------------------------------


def test_velocity_rms_of_a_one_g_tone_at_100_hz_is_g_over_omega_over_root_two() -> None:
    features = features_of(tone(100.0, 1.0))
    # a = 2πf·v: 1 g at 100 Hz is a velocity amplitude of 9806.65 / (2π·100) mm/s ≈ 15.61, RMS ≈ 11.04;
    # 100 Hz is bin 16 exactly, so only float32 rounding stands between the answer and the reading
    expected = G_MM_S2 / (2 * np.pi * 100.0) / math.sqrt(2)
    assert expected == pytest.approx(11.036, abs=1e-3)
    assert features["velocity_rms_mm_s"][0] == pytest.approx(expected, rel=0.01)
    # 11.04 mm/s is zone D for a class II machine (C/D at 7.1) and zone C for class IV (C/D at 18)
    assert features["iso_zone"][0] == 4.0
    assert features_of(tone(100.0, 1.0), machine_class="IV")["iso_zone"][0] == 3.0


def test_velocity_adds_tones_by_power_and_weights_them_by_one_over_frequency() -> None:
    features = features_of(tone(100.0, 1.0) + tone(400.0, 1.0))
    # both on bins (16 and 64); 1 g at 400 Hz is a quarter of the velocity of 1 g at 100 Hz
    one = G_MM_S2 / (2 * np.pi * 100.0) / math.sqrt(2)
    assert features["velocity_rms_mm_s"][0] == pytest.approx(one * math.sqrt(1 + 1 / 16), rel=0.01)


@pytest.mark.parametrize("frequency_hz", [5.0, 1500.0])
def test_a_tone_outside_10_to_1000_hz_has_no_velocity(frequency_hz: float) -> None:
    # 5120 samples give 5 Hz bins, so both tones fall on a bin and leak nothing: 5 Hz is bin 1 (below the
    # 10 Hz edge at bin 2), 1500 Hz is bin 300 (above the 1000 Hz edge at bin 200). The same 1 g inside the
    # band would read 16–110 mm/s, so 1e-4 mm/s is float32 rounding only
    features = features_of(tone(frequency_hz, 1.0, samples=5120), FS_HZ)
    assert features["velocity_rms_mm_s"][0] == pytest.approx(0.0, abs=1e-4)
    inside = features_of(tone(10.0, 1.0, samples=5120), FS_HZ)["velocity_rms_mm_s"][0]
    assert inside == pytest.approx(G_MM_S2 / (2 * np.pi * 10.0) / math.sqrt(2), rel=0.01)


@pytest.mark.parametrize(
    ("machine_class", "values", "zones"),
    [
        ("II", [0.0, 1.1199, 1.12, 2.7999, 2.8, 7.0999, 7.1, 45.0], [1, 1, 2, 2, 3, 3, 4, 4]),
        ("group2-rigid", [0.5, 1.3999, 1.4, 2.8, 4.4999, 4.5, 9.0], [1, 1, 2, 3, 3, 4, 4]),
    ],
)
def test_iso_zone_puts_a_value_on_a_boundary_in_the_higher_zone(
    machine_class: str, values: list[float], zones: list[int]
) -> None:
    assert iso_zone(np.array(values), machine_class).tolist() == zones
    assert [zone_letter(zone) for zone in zones] == ["ABCD"[zone - 1] for zone in zones]


def test_iso_zone_limits_are_the_published_ones_for_class_ii_and_group_2_rigid() -> None:
    # ISO 10816-1 class II and ISO 10816-3 group 2 on rigid supports, mm/s RMS
    assert ISO_ZONE_LIMITS_MM_S["II"] == (1.12, 2.8, 7.1)
    assert ISO_ZONE_LIMITS_MM_S["group2-rigid"] == (1.4, 2.8, 4.5)


def test_an_unknown_machine_class_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'V'"):
        iso_zone(np.array([1.0]), "V")
    with pytest.raises(ValueError, match="class"):
        features_of(tone(100.0, 1.0), machine_class="class-9")


# --- envelope ----------------------------------------------------------------------------------------


def test_envelope_spectrum_reads_the_modulation_depth_of_an_amplitude_modulated_carrier() -> None:
    t = times()
    depth, modulation_hz = 0.3, 100.0  # 100 Hz = bin 16: the Hann-windowed envelope reads it exactly
    signal = (1 + depth * np.cos(2 * np.pi * modulation_hz * t)) * np.sin(2 * np.pi * 4000.0 * t)
    envelope = envelope_spectrum(np.fft.rfft(signal[None, :], axis=-1), SAMPLES, FS_HZ, ENVELOPE_BAND_HZ)
    assert envelope.frequency_hz[1] - envelope.frequency_hz[0] == pytest.approx(RESOLUTION_HZ)
    assert envelope.frequency_hz[np.argmax(envelope.amplitude[0])] == pytest.approx(modulation_hz)
    assert peak_near(envelope, modulation_hz)[0] == pytest.approx(depth, rel=1e-3)
    assert peak_near(envelope, 250.0)[0] < 1e-3


def test_outer_race_impulse_train_gives_a_bpfo_comb_far_above_the_floor() -> None:
    defect = impulse_train(BPFO_HZ)
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, defect.std(), size=SAMPLES)  # same RMS, no periodic impacts
    features = features_of(np.stack([defect, noise]))
    floor = features["env_floor_g"][0]
    assert floor > 0
    # measured: the three lines stand 250–600× above the floor; 50× leaves room and still fails for noise
    for line in ("env_bpfo_g", "env_bpfo_h2_g", "env_bpfo_h3_g"):
        assert features[line][0] > 50 * floor, line
    assert features["env_bpfo_g"][0] > 20 * features["env_bpfi_g"][0]
    assert features["env_bpfo_g"][0] > 10 * features["env_bpfo_g"][1]
    assert features["env_bpfo_g"][1] < 10 * features["env_floor_g"][1]
    # the impacts are impulsive: far from a Gaussian's kurtosis, unlike the noise
    assert features["kurtosis"][0] > 6.0
    assert features["kurtosis"][1] == pytest.approx(3.0, abs=0.5)


def test_inner_race_train_modulated_by_the_shaft_shows_bpfi_with_shaft_sidebands() -> None:
    modulated = impulse_train(BPFI_HZ, modulation_hz=SHAFT_HZ, depth=0.8)
    steady = impulse_train(BPFI_HZ)
    features = features_of(np.stack([modulated, steady]))
    floor = features["env_floor_g"]
    assert features["env_bpfi_g"][0] > 50 * floor[0]
    assert features["env_bpfi_g"][0] > 20 * features["env_bpfo_g"][0]
    # depth 0.8 puts sidebands at BPFI ± 1× of about 0.4 of the BPFI line; measured 90× the floor
    assert features["env_bpfi_sb_g"][0] > 20 * floor[0]
    assert features["env_bpfi_sb_g"][0] > 0.2 * features["env_bpfi_g"][0]
    # without the modulation there are no sidebands
    assert features["env_bpfi_sb_g"][1] < 0.05 * features["env_bpfi_sb_g"][0]


def test_a_missing_defect_frequency_reads_zero() -> None:
    features = vibration_features(
        impulse_train(BPFO_HZ)[None, :], FS_HZ, shaft_hz=SHAFT_HZ, defect_orders={"bpfo": ORDERS["bpfo"]}
    )
    assert features["env_bpfo_g"][0] > 0.1
    for defect in ("bpfi", "bsf", "ftf"):
        for suffix in ("", "_h2", "_h3", "_sb"):
            assert features[f"env_{defect}{suffix}_g"][0] == 0.0


# --- running speed -----------------------------------------------------------------------------------


def test_running_speed_harmonics_read_their_amplitude_within_hann_scalloping() -> None:
    amplitudes = {"order_1x_g": 0.5, "order_2x_g": 0.3, "order_3x_g": 0.2}
    for shaft_hz in (23.7, SHAFT_HZ, 48.1):  # 1× at 3.8, 4.8 and 7.7 bins: none on a bin
        signal = sum(tone(k * shaft_hz, a) for k, a in enumerate(amplitudes.values(), start=1))
        features = features_of(signal, shaft_hz=shaft_hz)
        # a Hann window loses at most 15.1 % (8/(3π) at half a bin); a rectangular one would lose 36 %
        for name, amplitude in amplitudes.items():
            assert features[name][0] == pytest.approx(amplitude, rel=0.15), (shaft_hz, name)


def test_hann_amplitude_is_exact_on_a_bin_and_loses_the_known_scallop_between_bins() -> None:
    spectrum = np.fft.rfft(np.stack([tone(10 * RESOLUTION_HZ, 1.0), tone(10.5 * RESOLUTION_HZ, 1.0)]))
    amplitude = hann_amplitude(spectrum, SAMPLES, 40)
    assert amplitude.shape == (2, 40)
    assert amplitude[0, 10] == pytest.approx(1.0, rel=1e-9)
    assert amplitude[0, 9] == pytest.approx(0.5, rel=1e-9)  # the Hann kernel's side taps
    # half a bin off: |W(½)| / |W(0)| = sinc(½) / (1 − ¼) = 8 / (3π); leakage from the negative-frequency
    # image moves it by ~1e-4
    peak = peaks_at(amplitude, RESOLUTION_HZ, np.array([[0.0], [10.5 * RESOLUTION_HZ]]), 0.02)[1, 0]
    assert peak == pytest.approx(8 / (3 * np.pi), abs=5e-4)


@pytest.mark.parametrize("shaft_hz", [23.7, 29.95, 37.3, 48.1])
@pytest.mark.parametrize("nominal_factor", [0.95, 1.05])
def test_estimate_shaft_hz_recovers_the_1x_line_from_a_nominal_speed_five_percent_off(
    shaft_hz: float, nominal_factor: float
) -> None:
    rng = np.random.default_rng(11)
    signal = tone(shaft_hz, 0.5) + tone(2 * shaft_hz, 0.3) + rng.normal(0.0, 0.05, SAMPLES)
    orders = hann_amplitude(np.fft.rfft(signal[None, :]), SAMPLES, 200)
    nominal_hz = nominal_factor * shaft_hz
    estimate = estimate_shaft_hz(orders, RESOLUTION_HZ, nominal_hz)[0]
    # the docstring promises about ±0.5 Hz with 6.25 Hz bins (measured: 0.06–0.12 Hz)
    assert estimate == pytest.approx(shaft_hz, abs=0.5)
    # and vibration_features reads the lines at that speed
    features = features_of(signal, shaft_hz=nominal_hz, estimate_speed=True)
    assert features["shaft_hz"][0] == pytest.approx(estimate, rel=1e-5)
    assert features["order_1x_g"][0] == pytest.approx(0.5, rel=0.15)


def test_estimate_shaft_hz_keeps_the_nominal_speed_when_the_spectrum_has_no_line() -> None:
    # a single knock has a flat amplitude spectrum: no bin stands above the median
    knock = np.zeros((1, SAMPLES))
    knock[0, 1000] = 1.0
    orders = hann_amplitude(np.fft.rfft(knock), SAMPLES, 200)
    assert np.ptp(orders[0, 1:]) < 1e-12
    assert estimate_shaft_hz(orders, RESOLUTION_HZ, SHAFT_HZ).tolist() == [SHAFT_HZ]
    assert features_of(knock, estimate_speed=True)["shaft_hz"].tolist() == [SHAFT_HZ]


def noise_orders(count: int = 256) -> np.ndarray:
    noise = np.random.default_rng(2).normal(0.0, 0.1, size=(count, SAMPLES))
    return hann_amplitude(np.fft.rfft(noise), SAMPLES, 200)


def test_estimate_shaft_hz_keeps_the_nominal_speed_on_pure_noise() -> None:
    estimate = estimate_shaft_hz(noise_orders(), RESOLUTION_HZ, SHAFT_HZ)
    assert np.count_nonzero(estimate != SHAFT_HZ) == 0


def test_estimate_shaft_hz_stays_within_the_search_band() -> None:
    estimate = estimate_shaft_hz(noise_orders(), RESOLUTION_HZ, SHAFT_HZ)
    assert np.all(np.abs(estimate - SHAFT_HZ) <= 0.1 * SHAFT_HZ + 1e-9)


def test_estimate_shaft_hz_keeps_the_nominal_speed_for_a_flat_window() -> None:
    orders = hann_amplitude(np.fft.rfft(np.full((1, SAMPLES), 0.5)), SAMPLES, 200)
    assert estimate_shaft_hz(orders, RESOLUTION_HZ, SHAFT_HZ)[0] == SHAFT_HZ


def test_without_speed_estimation_the_configured_speed_is_used() -> None:
    features = features_of(tone(31.0, 0.5), estimate_speed=False)
    assert features["shaft_hz"][0] == SHAFT_HZ


# --- bands and a slow sensor -------------------------------------------------------------------------


def test_band_rms_of_a_tone_inside_a_band_is_its_rms_by_parseval() -> None:
    # 2000 Hz is bin 320, 4500 Hz bin 720: well inside 1–3 kHz and 3–6 kHz
    features = features_of(tone(2000.0, 2.0) + tone(4500.0, 1.0))
    assert features["band_rms_1k_3k_g"][0] == pytest.approx(2.0 / math.sqrt(2), rel=1e-5)
    assert features["band_rms_3k_6k_g"][0] == pytest.approx(1.0 / math.sqrt(2), rel=1e-5)
    assert features["band_rms_10_1k_g"][0] == pytest.approx(0.0, abs=1e-5)
    assert features["band_rms_6k_12k_g"][0] == pytest.approx(0.0, abs=1e-5)
    # both tones lie in the 2–8 kHz envelope band
    assert features["envelope_band_rms_g"][0] == pytest.approx(math.sqrt((4.0 + 1.0) / 2), rel=1e-5)


def test_a_12_khz_sensor_clips_the_envelope_band_below_nyquist_and_has_no_6_to_12_khz_band() -> None:
    fs_hz = 12000.0
    resolution_hz = fs_hz / SAMPLES
    # tones on bins: 3000 Hz (bin 1024) inside the clipped 2–5.52 kHz band, 5800.8 Hz (bin 1980) above
    # 0.92 × Nyquist and so outside it, though under Nyquist
    inside, above = tone(1024 * resolution_hz, 1.0, fs_hz=fs_hz), tone(1980 * resolution_hz, 1.0, fs_hz=fs_hz)
    features = features_of(np.stack([inside, above]), fs_hz)
    for name, values in features.items():
        assert np.all(np.isfinite(values)), name
    assert features["envelope_band_rms_g"][0] == pytest.approx(1 / math.sqrt(2), rel=1e-5)
    assert features["envelope_band_rms_g"][1] == pytest.approx(0.0, abs=1e-5)
    assert features["band_rms_6k_12k_g"].tolist() == [0.0, 0.0]


def test_a_12_khz_sensor_still_finds_an_outer_race_defect_ringing_at_3600_hz() -> None:
    fs_hz = 12000.0
    features = features_of(impulse_train(BPFO_HZ, fs_hz=fs_hz), fs_hz)
    assert features["env_bpfo_g"][0] > 50 * features["env_floor_g"][0]
    assert features["env_bpfo_g"][0] > 20 * features["env_bpfi_g"][0]


# --- batches -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimate_speed", [False, True])
def test_features_of_a_batch_equal_the_features_of_each_window_alone(estimate_speed: bool) -> None:
    rng = np.random.default_rng(3)
    count = 2 * CHUNK_WINDOWS + 6  # two full chunks and a short one: a chunk boundary must not leak
    defect = impulse_train(BPFO_HZ)
    windows = np.stack(
        [
            rng.uniform(0.1, 1.0) * defect
            + tone(SHAFT_HZ * rng.uniform(0.95, 1.05), rng.uniform(0.1, 0.5))
            + rng.normal(0.0, 0.05, SAMPLES)
            for _ in range(count)
        ]
    )
    batch = features_of(windows, estimate_speed=estimate_speed)
    assert set(batch) == set(FEATURE_NAMES)
    for row, window in enumerate(windows):
        alone = features_of(window, estimate_speed=estimate_speed)
        for name in FEATURE_NAMES:
            assert batch[name].shape == (count,)
            assert batch[name].dtype == np.float64
            # each row is computed by the same float32 operations alone or in a chunk; only the float64
            # matrix product for velocity may round differently (measured: 3e-16)
            assert batch[name][row] == pytest.approx(alone[name][0], rel=1e-9, abs=1e-12), (row, name)


def test_feature_matrix_orders_columns_by_the_names_given() -> None:
    features = {name: np.array([float(i), 10.0 + i]) for i, name in enumerate(reversed(FEATURE_NAMES))}
    matrix = feature_matrix(features)
    assert matrix.shape == (2, len(FEATURE_NAMES))
    for column, name in enumerate(FEATURE_NAMES):
        assert np.array_equal(matrix[:, column], features[name])
    subset = ("kurtosis", "rms_g")
    assert feature_matrix(features, subset).tolist() == [
        [features["kurtosis"][0], features["rms_g"][0]],
        [features["kurtosis"][1], features["rms_g"][1]],
    ]


def test_feature_names_are_unique_and_are_exactly_what_vibration_features_returns() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert tuple(features_of(tone(100.0, 1.0))) == FEATURE_NAMES
