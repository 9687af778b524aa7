"""Vibration features against known answers: a pure tone, white noise, an impulse train at a defect frequency."""

from __future__ import annotations

import numpy as np
import pytest

from plantwatch.agent.features import (
    ANOMALY_FEATURES,
    BAND_HZ,
    band_rms,
    envelope_spectrum,
    feature_matrix,
    peak_near,
    time_features,
    vibration_features,
)

FS_HZ = 25600.0
SAMPLES = 4096  # 6.25 Hz bins
SHAFT_HZ = 29.95
ORDERS = {"bpfo": 3.585, "bpfi": 5.415, "bsf": 2.357, "ftf": 0.398}  # SKF 6205
BPFO_HZ = ORDERS["bpfo"] * SHAFT_HZ  # 107.4 Hz


def times(samples: int = SAMPLES, fs_hz: float = FS_HZ) -> np.ndarray:
    return np.arange(samples) / fs_hz


def tone(frequency_hz: float, amplitude: float, samples: int = SAMPLES, fs_hz: float = FS_HZ) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * frequency_hz * times(samples, fs_hz))


def impulse_train(
    rate_hz: float, *, resonance_hz: float = 3600.0, decay_per_s: float = 800.0, samples: int = SAMPLES
) -> np.ndarray:
    """Decaying bursts of ``resonance_hz``, one every 1/``rate_hz`` s: a bearing defect ringing the housing."""
    t = times(samples)
    signal = np.zeros(samples)
    for start in np.arange(0.0, samples / FS_HZ, 1.0 / rate_hz):
        after = t >= start
        tau = t[after] - start
        signal[after] += np.exp(-decay_per_s * tau) * np.sin(2 * np.pi * resonance_hz * tau)
    return signal


# --- time domain -------------------------------------------------------------------------------------


def test_pure_tone_has_rms_amplitude_over_root_two_crest_root_two_and_kurtosis_one_and_a_half() -> None:
    amplitude = 2.5
    features = time_features(tone(100.0, amplitude)[None, :])  # 16 whole periods in the window
    assert features["rms_g"][0] == pytest.approx(amplitude / np.sqrt(2), rel=1e-9)
    assert features["peak_g"][0] == pytest.approx(amplitude, rel=1e-3)
    assert features["crest_factor"][0] == pytest.approx(np.sqrt(2), rel=1e-3)
    assert features["kurtosis"][0] == pytest.approx(1.5, rel=1e-9)


def test_white_noise_has_gaussian_kurtosis_and_rms_of_its_standard_deviation() -> None:
    rng = np.random.default_rng(20240601)
    sigma = 0.3
    noise = rng.normal(0.0, sigma, size=(1, 1 << 18))
    features = time_features(noise)
    # standard error of the sample kurtosis is sqrt(24 / n) ≈ 0.01 here
    assert features["kurtosis"][0] == pytest.approx(3.0, abs=0.05)
    assert features["rms_g"][0] == pytest.approx(sigma, rel=0.01)
    assert features["crest_factor"][0] > 3.5  # a Gaussian's peak over 2^18 samples sits 4–5 σ out


def test_kurtosis_ignores_a_constant_offset() -> None:
    signal = tone(100.0, 1.0)
    plain = time_features(signal[None, :])["kurtosis"][0]
    offset = time_features((signal + 5.0)[None, :])["kurtosis"][0]
    assert offset == pytest.approx(plain, rel=1e-9)


@pytest.mark.parametrize("level", [0.0, 2.0, -1.5])
def test_constant_window_gives_finite_features_without_warnings(level: float) -> None:
    windows = np.full((2, SAMPLES), level)
    with np.errstate(all="raise"):
        features = vibration_features(windows, FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)
    for name, values in features.items():
        assert np.all(np.isfinite(values)), name
    assert np.all(features["kurtosis"] == 0.0)
    assert np.all(features["rms_g"] == abs(level))
    assert np.all(features["crest_factor"] == (1.0 if level else 0.0))
    assert np.allclose(features["band_rms_2k_8k_g"], 0.0)
    assert np.allclose(features["env_bpfo_g"], 0.0)


# --- band energy -------------------------------------------------------------------------------------


def test_band_rms_of_a_tone_inside_the_band_is_its_rms_by_parseval() -> None:
    amplitude = 2.0
    spectrum = np.fft.rfft(tone(3000.0, amplitude)[None, :], axis=-1)  # 3000 Hz is bin 480
    assert band_rms(spectrum, SAMPLES, FS_HZ, BAND_HZ)[0] == pytest.approx(amplitude / np.sqrt(2), rel=1e-9)


@pytest.mark.parametrize("frequency_hz", [500.0, 1993.75, 8000.0, 10000.0])
def test_band_rms_of_a_tone_outside_the_band_is_zero(frequency_hz: float) -> None:
    spectrum = np.fft.rfft(tone(frequency_hz, 2.0)[None, :], axis=-1)
    assert band_rms(spectrum, SAMPLES, FS_HZ, BAND_HZ)[0] == pytest.approx(0.0, abs=1e-9)


def test_band_rms_of_two_tones_counts_only_the_one_inside() -> None:
    signal = tone(200.0, 5.0) + tone(4000.0, 1.0)
    features = vibration_features(signal[None, :], FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)
    assert features["band_rms_2k_8k_g"][0] == pytest.approx(1.0 / np.sqrt(2), rel=1e-9)
    assert features["rms_g"][0] == pytest.approx(np.sqrt((25.0 + 1.0) / 2), rel=1e-9)


def test_band_is_clipped_to_nyquist_for_a_slow_sensor() -> None:
    fs_hz = 10000.0
    signal = tone(3000.0, 2.0, fs_hz=fs_hz) + tone(4987.0, 1.0, fs_hz=fs_hz)
    features = vibration_features(signal[None, :], fs_hz, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)
    for values in features.values():
        assert np.all(np.isfinite(values))
    # both tones lie in 2 kHz .. Nyquist; the 4987 Hz one is not on a bin, so allow its leakage
    assert features["band_rms_2k_8k_g"][0] == pytest.approx(np.sqrt((4.0 + 1.0) / 2), rel=0.02)


# --- envelope ----------------------------------------------------------------------------------------


def test_envelope_spectrum_reads_the_modulation_depth_of_an_amplitude_modulated_carrier() -> None:
    t = times()
    depth, modulation_hz = 0.3, 100.0  # 100 Hz = bin 16
    signal = (1 + depth * np.cos(2 * np.pi * modulation_hz * t)) * np.sin(2 * np.pi * 4000.0 * t)
    envelope = envelope_spectrum(np.fft.rfft(signal[None, :], axis=-1), SAMPLES, FS_HZ, BAND_HZ)
    assert envelope.frequency_hz[np.argmax(envelope.amplitude[0])] == pytest.approx(modulation_hz)
    assert peak_near(envelope, modulation_hz)[0] == pytest.approx(depth, rel=1e-3)
    assert peak_near(envelope, 250.0)[0] < 1e-3


def test_outer_race_impulse_train_stands_out_at_bpfo_and_not_at_other_defect_lines() -> None:
    defect = impulse_train(BPFO_HZ)
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, defect.std(), size=SAMPLES)  # same RMS, no periodic impacts
    features = vibration_features(np.stack([defect, noise]), FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)
    bpfo_defect, bpfo_noise = features["env_bpfo_g"]
    assert bpfo_defect > 0.1
    assert bpfo_defect > 20 * features["env_bpfi_g"][0]
    assert bpfo_defect > 20 * features["env_bsf_g"][0]
    assert bpfo_defect > 10 * bpfo_noise
    # the impacts are impulsive: far from a Gaussian's kurtosis, unlike the noise
    assert features["kurtosis"][0] > 6.0
    assert features["kurtosis"][1] == pytest.approx(3.0, abs=0.5)


def test_inner_race_impulse_train_stands_out_at_bpfi_not_at_bpfo() -> None:
    features = vibration_features(
        impulse_train(ORDERS["bpfi"] * SHAFT_HZ)[None, :], FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS
    )
    assert features["env_bpfi_g"][0] > 10 * features["env_bpfo_g"][0]


def test_features_of_a_batch_equal_the_features_of_each_window_alone() -> None:
    rng = np.random.default_rng(3)
    windows = np.stack(
        [
            impulse_train(BPFO_HZ) + rng.normal(0, 0.05, SAMPLES),
            tone(100.0, 1.0),
            rng.normal(0, 0.2, SAMPLES),
            np.zeros(SAMPLES),
        ]
    )
    batch = vibration_features(windows, FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)
    assert set(batch) == set(ANOMALY_FEATURES) | {f"env_{name}_g" for name in ORDERS}
    for row, window in enumerate(windows):
        alone = vibration_features(window[None, :], FS_HZ, shaft_hz=SHAFT_HZ, defect_orders=ORDERS)
        for name, values in alone.items():
            assert batch[name].shape == (len(windows),)
            assert batch[name][row] == pytest.approx(values[0], rel=1e-9, abs=1e-12), name


def test_feature_matrix_orders_columns_by_the_manifest_names() -> None:
    features = {name: np.array([float(i), 10.0 + i]) for i, name in enumerate(reversed(ANOMALY_FEATURES))}
    matrix = feature_matrix(features)
    assert matrix.shape == (2, len(ANOMALY_FEATURES))
    for column, name in enumerate(ANOMALY_FEATURES):
        assert np.array_equal(matrix[:, column], features[name])
