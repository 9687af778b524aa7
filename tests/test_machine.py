"""The machine simulator: known answers for every fault's signature, severity, speed, load and heat.

Spectra are computed here with numpy alone (not with the agent's features), so a change in the agent
cannot hide a change in the simulator.
"""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest
from scipy import signal

from plantwatch.simulators import machine
from plantwatch.simulators.machine import (
    BEARINGS,
    FAULT_MODES,
    BearingGeometry,
    FaultSpec,
    MachineSpec,
    fault_windows,
    random_machine,
    severity_curve,
    speed_wander,
    temperature_c,
    vibration_g,
)

FS_HZ = 25_600.0
SAMPLES = 16_384
"""1.56 Hz resolution: FTF sidebands (12 Hz on the 6205 at 30 Hz) are clear of their carrier."""

SPEC = MachineSpec()
ORDERS = SPEC.bearing.defect_orders()
SHAFT_HZ = SPEC.running_hz


def windows(mode: str | None, severity: float, *, spec: MachineSpec = SPEC, count: int = 6, seed: int = 7):
    return fault_windows(
        spec, mode, severity, windows=count, samples=SAMPLES, fs_hz=FS_HZ, rng=np.random.default_rng(seed)
    )


def envelope_spectrum(x: np.ndarray, spec: MachineSpec = SPEC) -> tuple[np.ndarray, np.ndarray]:
    """Mean envelope amplitude spectrum: band-pass ±50 % around the resonance by an FFT mask, the magnitude
    of the analytic signal, its Hann-windowed amplitude spectrum."""
    samples = x.shape[-1]
    frequency = np.fft.rfftfreq(samples, 1.0 / FS_HZ)
    spectrum = np.fft.rfft(x, axis=-1)
    band = (frequency >= 0.5 * spec.resonance_hz) & (frequency < min(1.5 * spec.resonance_hz, FS_HZ / 2))
    analytic = np.zeros((x.shape[0], samples), dtype=complex)
    analytic[:, : frequency.size][:, band] = 2.0 * spectrum[:, band]
    envelope = np.abs(np.fft.ifft(analytic, axis=-1))
    envelope -= envelope.mean(axis=-1, keepdims=True)
    hann = np.hanning(samples)
    amplitude = np.abs(np.fft.rfft(envelope * hann, axis=-1)) * 2.0 / hann.sum()
    return frequency, amplitude.mean(axis=0)


def amplitude_spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean flat-top-windowed amplitude spectrum: a tone of amplitude A reads A (±0.1 %) wherever it falls
    between bins."""
    flattop = signal.windows.flattop(x.shape[-1], sym=False)
    amplitude = np.abs(np.fft.rfft(x * flattop, axis=-1)) * 2.0 / flattop.sum()
    return np.fft.rfftfreq(x.shape[-1], 1.0 / FS_HZ), amplitude.mean(axis=0)


def line(frequency: np.ndarray, amplitude: np.ndarray, at_hz: float, tolerance: float = 0.01) -> float:
    """Largest amplitude within ±``tolerance`` (relative, at least two bins) of ``at_hz``."""
    half = max(at_hz * tolerance, 2 * (frequency[1] - frequency[0]))
    return float(amplitude[np.abs(frequency - at_hz) <= half].max())


def strongest(frequency: np.ndarray, amplitude: np.ndarray, low_hz: float = 5.0, high_hz: float = 400.0):
    band = (frequency >= low_hz) & (frequency <= high_hz)
    return float(frequency[band][np.argmax(amplitude[band])])


def floor(frequency: np.ndarray, amplitude: np.ndarray, low_hz: float = 5.0, high_hz: float = 400.0):
    return float(np.median(amplitude[(frequency >= low_hz) & (frequency <= high_hz)]))


@pytest.fixture(scope="module")
def healthy() -> np.ndarray:
    return windows(None, 0.0)


def test_outer_race_envelope_peaks_at_bpfo(healthy: np.ndarray) -> None:
    frequency, amplitude = envelope_spectrum(windows("outer_race", 0.3))
    bpfo_hz = ORDERS["bpfo"] * SHAFT_HZ
    assert strongest(frequency, amplitude) == pytest.approx(bpfo_hz, rel=0.015)
    assert line(frequency, amplitude, bpfo_hz) > 20 * floor(frequency, amplitude)
    # a stationary defect: no shaft modulation, so no sidebands at BPFO ± 1×
    for side in (bpfo_hz - SHAFT_HZ, bpfo_hz + SHAFT_HZ):
        assert line(frequency, amplitude, side) < 0.1 * line(frequency, amplitude, bpfo_hz)
    healthy_frequency, healthy_amplitude = envelope_spectrum(healthy)
    assert line(frequency, amplitude, bpfo_hz) > 20 * line(healthy_frequency, healthy_amplitude, bpfo_hz)


def test_inner_race_shows_bpfi_with_shaft_sidebands() -> None:
    frequency, amplitude = envelope_spectrum(windows("inner_race", 0.3))
    bpfi_hz = ORDERS["bpfi"] * SHAFT_HZ
    carrier = line(frequency, amplitude, bpfi_hz)
    noise = floor(frequency, amplitude)
    assert carrier > 20 * noise
    for side in (bpfi_hz - SHAFT_HZ, bpfi_hz + SHAFT_HZ):
        assert 0.2 * carrier < line(frequency, amplitude, side) < carrier
        assert line(frequency, amplitude, side) > 10 * noise
    # the load-zone modulation also puts the shaft frequency itself into the envelope
    assert line(frequency, amplitude, SHAFT_HZ) > 10 * noise
    assert line(frequency, amplitude, ORDERS["bpfo"] * SHAFT_HZ) < 5 * noise


def test_ball_shows_twice_bsf_with_cage_sidebands() -> None:
    frequency, amplitude = envelope_spectrum(windows("ball", 0.3))
    ball_hz = 2 * ORDERS["bsf"] * SHAFT_HZ
    cage_hz = ORDERS["ftf"] * SHAFT_HZ
    carrier = line(frequency, amplitude, ball_hz, tolerance=0.005)
    noise = floor(frequency, amplitude)
    assert strongest(frequency, amplitude) == pytest.approx(ball_hz, rel=0.015)
    assert carrier > 15 * noise
    for side in (ball_hz - cage_hz, ball_hz + cage_hz):
        assert 0.2 * carrier < line(frequency, amplitude, side, tolerance=0.005) < carrier
    # strikes alternate between the races, the inner one weaker: a BSF line below 2×BSF
    assert 3 * noise < line(frequency, amplitude, ORDERS["bsf"] * SHAFT_HZ) < carrier


def test_healthy_machine_has_no_bearing_lines(healthy: np.ndarray) -> None:
    frequency, amplitude = envelope_spectrum(healthy)
    noise = floor(frequency, amplitude)
    for order in (ORDERS["bpfo"], ORDERS["bpfi"], 2 * ORDERS["bsf"], ORDERS["bsf"]):
        assert line(frequency, amplitude, order * SHAFT_HZ) < 3 * noise
    centred = healthy - healthy.mean(axis=-1, keepdims=True)
    kurtosis = np.mean(centred**4, axis=-1) / np.mean(centred**2, axis=-1) ** 2
    assert np.all(kurtosis < 3.3)


def test_imbalance_grows_the_running_speed_line(healthy: np.ndarray) -> None:
    spec = dataclasses.replace(SPEC, speed_variation=0.0)
    frequency, faulty = amplitude_spectrum(windows("imbalance", 1.0, spec=spec))
    _, baseline = amplitude_spectrum(windows(None, 0.0, spec=spec))
    assert line(frequency, baseline, SHAFT_HZ) == pytest.approx(SPEC.imbalance_g, rel=0.1)
    assert line(frequency, faulty, SHAFT_HZ) == pytest.approx(SPEC.imbalance_g + 0.5, rel=0.1)
    assert line(frequency, faulty, 2 * SHAFT_HZ) == pytest.approx(SPEC.misalignment_g, rel=0.2)


def test_misalignment_grows_twice_running_speed_most() -> None:
    spec = dataclasses.replace(SPEC, speed_variation=0.0)
    frequency, faulty = amplitude_spectrum(windows("misalignment", 1.0, spec=spec))
    assert line(frequency, faulty, 2 * SHAFT_HZ) == pytest.approx(SPEC.misalignment_g + 0.5, rel=0.1)
    assert line(frequency, faulty, SHAFT_HZ) == pytest.approx(SPEC.imbalance_g + 0.25, rel=0.1)
    assert line(frequency, faulty, 3 * SHAFT_HZ) == pytest.approx(0.15, rel=0.15)


def test_looseness_raises_many_harmonics_and_half_orders(healthy: np.ndarray) -> None:
    frequency, faulty = amplitude_spectrum(windows("looseness", 0.5))
    _, baseline = amplitude_spectrum(healthy)

    def gain(order: float) -> float:
        return line(frequency, faulty, order * SHAFT_HZ) / line(frequency, baseline, order * SHAFT_HZ)

    # 1× and 2× start from residual imbalance and misalignment; 3× … 10× and the half orders from noise
    assert gain(1.0) > 3 and gain(2.0) > 3
    assert min(gain(k) for k in range(3, 11)) > 20
    assert min(gain(k + 0.5) for k in range(10)) > 15
    # the rattle once per revolution rings the resonance: the envelope shows 1×
    env_frequency, envelope = envelope_spectrum(windows("looseness", 0.5))
    assert strongest(env_frequency, envelope, high_hz=200.0) == pytest.approx(SHAFT_HZ, rel=0.015)


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_severity_zero_is_exactly_the_healthy_machine(mode: str, healthy: np.ndarray) -> None:
    np.testing.assert_array_equal(windows(mode, 0.0), healthy)


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_severity_raises_energy_monotonically(mode: str) -> None:
    rms = [float(np.sqrt(np.mean(windows(mode, level, count=3) ** 2))) for level in (0.0, 0.1, 0.4, 1.0)]
    assert rms == sorted(rms) and rms[-1] > 2 * rms[0], rms


def test_vibration_before_onset_is_the_healthy_machine() -> None:
    fault = FaultSpec(mode="inner_race", onset_s=1000.0, life_s=500.0)
    before = vibration_g(SPEC, fault, t0_s=900.0, samples=4096, fs_hz=FS_HZ, rng=np.random.default_rng(3))
    healthy = vibration_g(SPEC, None, t0_s=900.0, samples=4096, fs_hz=FS_HZ, rng=np.random.default_rng(3))
    failing = vibration_g(SPEC, fault, t0_s=1500.0, samples=4096, fs_hz=FS_HZ, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(before, healthy)
    assert np.max(np.abs(failing)) > 2.0 > np.max(np.abs(healthy))


def test_severity_grows_as_progress_squared() -> None:
    fault = FaultSpec(onset_s=100.0, life_s=1000.0)
    assert [fault.severity(t) for t in (0.0, 100.0, 600.0, 1100.0, 5000.0)] == [0.0, 0.0, 0.25, 1.0, 1.0]
    np.testing.assert_allclose(severity_curve(np.array([-1.0, 0.5, 2.0])), [0.0, 0.25, 1.0])


def test_temperature_rises_with_degradation() -> None:
    fault = FaultSpec(onset_s=0.0, life_s=1000.0, heat_at_failure_c=25.0)
    rng = np.random.default_rng(5)

    def mean_c(t_s: float) -> float:
        return float(np.mean([temperature_c(SPEC, fault, t_s=t_s, rng=rng) for _ in range(200)]))

    healthy_c = SPEC.ambient_c + SPEC.operating_rise_c
    assert mean_c(0.0) == pytest.approx(healthy_c, abs=0.1)
    assert mean_c(500.0) == pytest.approx(healthy_c + 25.0 * 0.25, abs=0.1)
    assert mean_c(1000.0) == pytest.approx(healthy_c + 25.0, abs=0.1)


def test_load_lowers_speed_by_slip_and_raises_noise_and_heat() -> None:
    loaded = dataclasses.replace(SPEC, load=1.0, speed_variation=0.0, imbalance_g=0.3)
    assert loaded.running_hz == pytest.approx(29.95 * (1 - 0.026))  # CWRU: 1797 rpm idle, 1750 at 2 hp
    x = fault_windows(loaded, None, 0.0, windows=2, samples=65_536, fs_hz=FS_HZ, rng=np.random.default_rng(1))
    frequency, amplitude = amplitude_spectrum(x)
    assert strongest(frequency, amplitude, 10.0, 100.0) == pytest.approx(29.95 * (1 - 0.026), abs=0.4)
    # noise between shaft lines and resonances: 1 kHz … 12 kHz carries only the broadband noise
    band = (frequency > 1000) & (frequency < 12_000)
    idle = fault_windows(
        dataclasses.replace(loaded, load=0.0),
        None,
        0.0,
        windows=2,
        samples=65_536,
        fs_hz=FS_HZ,
        rng=np.random.default_rng(1),
    )
    _, idle_amplitude = amplitude_spectrum(idle)
    ratio = np.sqrt(np.mean(amplitude[band] ** 2) / np.mean(idle_amplitude[band] ** 2))
    assert ratio == pytest.approx(1.3, rel=0.05)  # LOAD_NOISE_GAIN
    assert temperature_c(loaded, None, t_s=0.0, rng=np.random.default_rng(0)) > temperature_c(
        SPEC, None, t_s=0.0, rng=np.random.default_rng(0)
    )


def test_speed_wanders_slowly_with_unit_rms() -> None:
    month = np.arange(0.0, 30 * 86_400.0, 900.0)
    wander = np.array([speed_wander(t) for t in month])
    assert np.sqrt(np.mean(wander**2)) == pytest.approx(1.0, rel=0.05)
    # between two snapshots 15 minutes apart the speed moves by a small part of its range
    assert np.abs(np.diff(wander)).max() < 0.2 * (wander.max() - wander.min())


def test_impacts_ring_the_structural_resonances() -> None:
    spec = dataclasses.replace(SPEC, resonance_hz=3000.0, resonance2_hz=7000.0, resonance2_gain=0.5)
    frequency, amplitude = amplitude_spectrum(windows("outer_race", 1.0, spec=spec, count=3))
    assert strongest(frequency, amplitude, 1000.0, 12_000.0) == pytest.approx(3000.0, rel=0.05)
    assert strongest(frequency, amplitude, 5000.0, 12_000.0) == pytest.approx(7000.0, rel=0.05)
    single = fault_windows(
        dataclasses.replace(spec, resonance2_hz=None),
        "outer_race",
        1.0,
        windows=3,
        samples=SAMPLES,
        fs_hz=FS_HZ,
        rng=np.random.default_rng(7),
    )
    _, single_amplitude = amplitude_spectrum(single)
    assert line(frequency, amplitude, 7000.0) > 4 * line(frequency, single_amplitude, 7000.0)


def test_unknown_fault_mode_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="'bogus' is not one of: outer_race, inner_race, ball, imbalance"):
        FaultSpec(mode="bogus")
    with pytest.raises(ValueError, match="looseness"):
        fault_windows(SPEC, "bogus", 0.5, windows=1, samples=1024, fs_hz=FS_HZ, rng=np.random.default_rng(0))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        fault_windows(SPEC, "ball", 1.5, windows=1, samples=1024, fs_hz=FS_HZ, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="load"):
        MachineSpec(load=1.5)
    with pytest.raises(ValueError, match="life_s"):
        FaultSpec(life_s=0.0)
    with pytest.raises(ValueError, match="resonance 3600.0 Hz"):
        fault_windows(
            SPEC, "outer_race", 0.5, windows=1, samples=1024, fs_hz=6000.0, rng=np.random.default_rng(0)
        )


def test_severity_may_differ_per_window() -> None:
    x = fault_windows(
        SPEC,
        "outer_race",
        np.array([0.0, 1.0]),
        windows=2,
        samples=4096,
        fs_hz=FS_HZ,
        rng=np.random.default_rng(2),
    )
    assert np.max(np.abs(x[0])) < 0.5 < 3.0 < np.max(np.abs(x[1]))


def test_known_bearings_match_published_defect_orders() -> None:
    # CWRU Bearing Data Center: drive end 6205 and fan end 6203, multiples of running speed
    published = {
        "SKF 6205": {"bpfi": 5.4152, "bpfo": 3.5848, "ftf": 0.39828, "bsf": 4.7135 / 2},
        "SKF 6203": {"bpfi": 4.9469, "bpfo": 3.0530, "ftf": 0.3817, "bsf": 3.9874 / 2},
    }
    for name, orders in published.items():
        computed = BEARINGS[name].defect_orders()
        for key, value in orders.items():
            assert computed[key] == pytest.approx(value, rel=2e-3), (name, key)
    assert BEARINGS["SKF 6205"] == BearingGeometry()
    assert BEARINGS["SKF 22220 E"].contact_angle_deg == pytest.approx(10.0)


def test_random_machines_are_plausible_and_usable() -> None:
    rng = np.random.default_rng(11)
    specs = [random_machine(rng, fs_hz=12_000.0) for _ in range(200)]
    assert all(10.0 <= s.shaft_hz <= 60.0 for s in specs)
    assert all(s.resonance_hz <= 0.35 * 12_000.0 for s in specs)
    assert all(s.resonance2_hz is None or s.resonance2_hz < 0.45 * 12_000.0 for s in specs)
    assert {s.bearing for s in specs} == set(BEARINGS.values())
    assert 0.4 < sum(s.resonance2_hz is not None for s in specs) / len(specs) < 0.6
    assert (
        min(s.noise_g for s in specs) < SPEC.noise_g * 0.6
        and max(s.noise_g for s in specs) > SPEC.noise_g * 1.7
    )
    assert random_machine(rng, bearing="SKF 6308").bearing == BEARINGS["SKF 6308"]
    with pytest.raises(ValueError, match="unknown bearing"):
        random_machine(rng, bearing="SKF 9999")
    x = fault_windows(specs[0], "ball", 0.5, windows=4, samples=2048, fs_hz=12_000.0, rng=rng)
    assert x.shape == (4, 2048) and np.all(np.isfinite(x))


def test_docstring_examples_run() -> None:
    assert doctest.testmod(machine, raise_on_error=False).failed == 0
