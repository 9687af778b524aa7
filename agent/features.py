"""Vibration and temperature features: pure functions, arrays in, arrays out, no I/O.

Every function takes a batch of windows, shape ``(windows, samples)``, in physical units (acceleration
in g) and returns one value per window. Names in :data:`ANOMALY_FEATURES` are the stable names that model
manifests use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

ANOMALY_FEATURES: tuple[str, ...] = ("rms_g", "peak_g", "crest_factor", "kurtosis", "band_rms_2k_8k_g")
"""The anomaly model's input, in this order."""

BAND_HZ = (2000.0, 8000.0)
"""Band for band energy and envelope analysis: above shaft harmonics, around the structural resonances
that bearing impacts excite. Clipped to the Nyquist frequency for slower sensors."""

DEFECT_TOLERANCE = 0.02
"""Relative search band around a defect frequency (±2 %): covers slip of the rolling elements and
speed error."""


@dataclass(frozen=True)
class Spectrum:
    """One-sided amplitude spectra of a batch: ``amplitude[w, k]`` in units at ``frequency_hz[k]``."""

    frequency_hz: np.ndarray
    amplitude: np.ndarray


def rms(windows: np.ndarray) -> np.ndarray:
    """Root mean square of each window."""
    return np.sqrt(np.mean(np.square(windows), axis=-1))


def time_features(windows: np.ndarray) -> dict[str, np.ndarray]:
    """RMS, peak (max |x|), crest factor (peak/RMS) and kurtosis (Pearson, 3 for a Gaussian) per window.

    >>> t = np.arange(4096) / 25600
    >>> f = time_features(np.sin(2 * np.pi * 100 * t)[None, :])
    >>> round(float(f["rms_g"][0]), 4), round(float(f["crest_factor"][0]), 3), round(float(f["kurtosis"][0]), 2)
    (0.7071, 1.414, 1.5)
    """
    x = np.asarray(windows, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    value_rms = rms(x)
    peak = np.max(np.abs(x), axis=-1)
    variance = np.mean(np.square(centred), axis=-1)
    fourth = np.mean(np.square(np.square(centred)), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crest = np.where(value_rms > 0, peak / value_rms, 0.0)
        kurt = np.where(variance > 0, fourth / np.square(variance), 0.0)
    return {"rms_g": value_rms, "peak_g": peak, "crest_factor": crest, "kurtosis": kurt}


def band_rms(
    spectrum_complex: np.ndarray, samples: int, fs_hz: float, band_hz: tuple[float, float]
) -> np.ndarray:
    """RMS of the part of each window between ``band_hz`` (Parseval on an unwindowed ``rfft``)."""
    frequency = np.fft.rfftfreq(samples, 1.0 / fs_hz)
    mask = (frequency >= band_hz[0]) & (frequency < band_hz[1])
    power = np.sum(np.square(np.abs(spectrum_complex[:, mask])), axis=-1)
    return np.sqrt(2.0 * power) / samples


def envelope_spectrum(
    spectrum_complex: np.ndarray, samples: int, fs_hz: float, band_hz: tuple[float, float]
) -> Spectrum:
    """Envelope spectrum: band-pass ``band_hz``, Hilbert envelope, amplitude spectrum of the envelope.

    The analytic signal of the band-passed window is the inverse FFT of its positive-frequency bins
    doubled (Marple, IEEE Trans. Signal Process. 47(9), 1999); its magnitude is the envelope. The
    envelope's mean is removed and a Hann window applied; amplitudes are corrected for the window's
    coherent gain, so a tone of amplitude A in the envelope reads A.
    """
    frequency = np.fft.rfftfreq(samples, 1.0 / fs_hz)
    mask = (frequency >= band_hz[0]) & (frequency < min(band_hz[1], fs_hz / 2))
    analytic_bins = np.zeros((spectrum_complex.shape[0], samples), dtype=np.complex128)
    analytic_bins[:, : frequency.size][:, mask] = 2.0 * spectrum_complex[:, mask]
    envelope = np.abs(np.fft.ifft(analytic_bins, axis=-1))
    envelope -= envelope.mean(axis=-1, keepdims=True)
    hann = np.hanning(samples)
    amplitude = np.abs(np.fft.rfft(envelope * hann, axis=-1)) * 2.0 / hann.sum()
    return Spectrum(frequency_hz=frequency, amplitude=amplitude)


def peak_near(spectrum: Spectrum, frequency_hz: float, tolerance: float = DEFECT_TOLERANCE) -> np.ndarray:
    """Largest amplitude within ±``tolerance`` (relative, at least one bin) of ``frequency_hz``."""
    resolution = spectrum.frequency_hz[1] - spectrum.frequency_hz[0]
    half = max(frequency_hz * tolerance, resolution)
    mask = np.abs(spectrum.frequency_hz - frequency_hz) <= half
    if not mask.any():
        return np.zeros(spectrum.amplitude.shape[0])
    return spectrum.amplitude[:, mask].max(axis=-1)


def vibration_features(
    windows: np.ndarray,
    fs_hz: float,
    *,
    shaft_hz: float,
    defect_orders: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """All vibration features of a batch of windows (acceleration in g, shape ``(windows, samples)``).

    Returns :data:`ANOMALY_FEATURES` plus ``env_<name>_g`` for each defect frequency in
    ``defect_orders`` (orders of ``shaft_hz``: e.g. ``{"bpfo": 3.585}``), the envelope amplitude at
    that frequency. Only the fundamental is used: with 6.25 Hz bins (4096 samples at 25.6 kHz) the
    harmonics of one defect fall into the bins of another's (3×BPFO ≈ 2×BPFI on a 6205 bearing).
    """
    x = np.asarray(windows, dtype=np.float64)
    samples = x.shape[-1]
    band = (BAND_HZ[0], min(BAND_HZ[1], fs_hz / 2))
    spectrum = np.fft.rfft(x, axis=-1)
    features = time_features(x)
    features["band_rms_2k_8k_g"] = band_rms(spectrum, samples, fs_hz, band)
    envelope = envelope_spectrum(spectrum, samples, fs_hz, band)
    for name, order in defect_orders.items():
        features[f"env_{name}_g"] = peak_near(envelope, order * shaft_hz)
    return features


def feature_matrix(
    features: Mapping[str, np.ndarray], names: tuple[str, ...] = ANOMALY_FEATURES
) -> np.ndarray:
    """Stack ``features`` into shape ``(windows, len(names))`` in the order of ``names``."""
    return np.stack([np.asarray(features[name], dtype=np.float64) for name in names], axis=-1)
