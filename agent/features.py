"""Vibration features a vibration analyst recognises: pure functions, arrays in, arrays out, no I/O.

Every function takes a batch of windows, shape ``(windows, samples)``, in physical units (acceleration
in g) and returns one value per window. :func:`vibration_features` computes them all with one forward
FFT per window and one short inverse FFT for the envelope:

- time domain: RMS, peak, peak-to-peak, crest factor, kurtosis, skewness;
- velocity RMS in mm/s over 10–1000 Hz by integration in the frequency domain, and its ISO 10816 /
  20816 zone (:func:`iso_zone`);
- the envelope spectrum (band-pass around the structural resonances, Hilbert envelope) and its
  amplitudes at the bearing defect frequencies BPFO, BPFI, BSF and FTF, their 2nd and 3rd harmonics and
  their sidebands (±1× shaft for the races, ±FTF for a ball);
- the 1×, 2×, 3× running-speed lines, the half orders and the 4×–10× harmonics (imbalance,
  misalignment, looseness), with the shaft speed configured or estimated from the spectrum;
- RMS in four spectral bands.

:data:`FEATURE_NAMES` lists every name :func:`vibration_features` returns; model manifests name the
model inputs derived from them (see :mod:`plantwatch.agent.baseline`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft

G_MM_S2 = 9806.65
"""One g in mm/s² (standard gravity)."""

VELOCITY_BAND_HZ = (10.0, 1000.0)
"""ISO 10816 / 20816 broadband velocity: 10 Hz to 1 kHz for machines running above 600 rpm."""

ENVELOPE_BAND_HZ = (2000.0, 8000.0)
"""Default band-pass before the envelope: above the shaft harmonics, around the structural resonances
that bearing impacts excite. The top is clipped to :data:`NYQUIST_MARGIN` of the Nyquist frequency for
slower sensors (12 kHz sampling gives 2–5.5 kHz)."""

NYQUIST_MARGIN = 0.92
"""Fraction of the Nyquist frequency a band may reach: the anti-alias filter of a sensor rolls off above."""

SPECTRAL_BANDS_HZ: dict[str, tuple[float, float]] = {
    "band_rms_10_1k_g": (10.0, 1000.0),
    "band_rms_1k_3k_g": (1000.0, 3000.0),
    "band_rms_3k_6k_g": (3000.0, 6000.0),
    "band_rms_6k_12k_g": (6000.0, 12000.0),
}
"""Bands for band RMS; a band above the sensor's Nyquist frequency reads 0."""

DEFECTS = ("bpfo", "bpfi", "bsf", "ftf")
"""Bearing defect frequencies, as named by analysts: outer race, inner race, ball spin, cage."""

HARMONICS = 3
"""Envelope harmonics read per defect frequency: a localised defect gives a comb of lines; 3 separate a
defect from a single coincident line without running into the next defect's comb."""

DEFECT_TOLERANCE = 0.02
"""Relative search band around a defect frequency (±2 %, at least one bin): covers the 1–2 % slip of the
rolling elements and speed error."""

ORDER_TOLERANCE = 0.02
"""Relative search band around a running-speed harmonic."""

LINE_CLEAR = 4.0
"""A 1× line must exceed this many times the median spectrum level near it to set the speed: in white
noise (Rayleigh amplitudes) a bin passes 4× its median about once in 10⁵, 2× in one window of ten."""

SPEED_SEARCH = 0.1
"""When estimating the shaft speed, the 1× line is sought within ±10 % of the nominal speed."""

ISO_ZONE_LIMITS_MM_S: dict[str, tuple[float, float, float]] = {
    "I": (0.71, 1.8, 4.5),
    "II": (1.12, 2.8, 7.1),
    "III": (1.8, 4.5, 11.2),
    "IV": (2.8, 7.1, 18.0),
    "group1-rigid": (2.3, 4.5, 7.1),
    "group1-flexible": (3.5, 7.1, 11.0),
    "group2-rigid": (1.4, 2.8, 4.5),
    "group2-flexible": (2.3, 4.5, 7.1),
}
"""Velocity RMS (mm/s) at the A/B, B/C and C/D zone boundaries. Classes I–IV are ISO 10816-1 (I: small
machines up to 15 kW; II: 15–75 kW, or up to 300 kW on special foundations; III: large machines on rigid
foundations; IV: large machines on soft foundations); groups 1 (300 kW–50 MW) and 2 (15–300 kW) on rigid
or flexible supports are ISO 10816-3 / 20816-3. Zone A: newly commissioned; B: unrestricted long-term
operation; C: restricted operation, plan maintenance; D: damage likely."""

ISO_ZONES = ("A", "B", "C", "D")

TIME_FEATURES = ("rms_g", "peak_g", "peak_to_peak_g", "crest_factor", "kurtosis", "skewness")
ORDER_FEATURES = ("order_1x_g", "order_2x_g", "order_3x_g", "order_half_g", "order_4x_10x_g")
ENVELOPE_FEATURES = tuple(
    f"env_{defect}{suffix}_g" for defect in DEFECTS for suffix in ("", "_h2", "_h3", "_sb")
) + ("env_rms_g", "env_floor_g")
FEATURE_NAMES: tuple[str, ...] = (
    TIME_FEATURES
    + ("velocity_rms_mm_s", "iso_zone", "shaft_hz")
    + ORDER_FEATURES
    + tuple(SPECTRAL_BANDS_HZ)
    + ("envelope_band_rms_g",)
    + ENVELOPE_FEATURES
)
"""Every name :func:`vibration_features` returns, in a stable order. ``iso_zone`` is 1–4 for A–D;
``shaft_hz`` is the speed the order and defect lines were read at; ``env_floor_g`` is the median level
of the envelope spectrum (the reference for how much a defect line stands out)."""


@dataclass(frozen=True)
class Spectrum:
    """One-sided amplitude spectra of a batch: ``amplitude[w, k]`` in units at ``frequency_hz[k]``."""

    frequency_hz: np.ndarray
    amplitude: np.ndarray


def time_features(windows: np.ndarray) -> dict[str, np.ndarray]:
    """RMS, peak (max |x|), peak-to-peak, crest factor (peak/RMS), kurtosis (Pearson, 3 for a Gaussian)
    and skewness (0 for a symmetric signal) per window.

    >>> t = np.arange(4096) / 25600
    >>> f = time_features(np.sin(2 * np.pi * 100 * t)[None, :])
    >>> round(float(f["rms_g"][0]), 4), round(float(f["crest_factor"][0]), 3), round(float(f["kurtosis"][0]), 2)
    (0.7071, 1.414, 1.5)
    """
    x = np.asarray(windows)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    square = np.square(centred)
    variance = square.mean(axis=-1)
    third = np.einsum("ij,ij->i", square, centred) / x.shape[-1]
    fourth = np.einsum("ij,ij->i", square, square) / x.shape[-1]
    value_rms = np.sqrt(variance + np.square(mean[:, 0]))
    high = x.max(axis=-1)
    low = x.min(axis=-1)
    peak = np.maximum(high, -low)
    with np.errstate(divide="ignore", invalid="ignore"):
        crest = np.where(value_rms > 0, peak / value_rms, 0.0)
        kurt = np.where(variance > 0, fourth / np.square(variance), 0.0)
        skew = np.where(variance > 0, third / variance**1.5, 0.0)
    return {
        "rms_g": value_rms,
        "peak_g": peak,
        "peak_to_peak_g": high - low,
        "crest_factor": crest,
        "kurtosis": kurt,
        "skewness": skew,
    }


def iso_zone(velocity_rms_mm_s: np.ndarray | float, machine_class: str = "II") -> np.ndarray:
    """ISO 10816 / 20816 evaluation zone, 1–4 for A–D, of velocity RMS values (mm/s, 10–1000 Hz).

    ``machine_class`` is a key of :data:`ISO_ZONE_LIMITS_MM_S`. A value on a boundary is in the higher zone.

    >>> iso_zone(np.array([0.5, 1.12, 3.0, 9.0]), "II").tolist()
    [1, 2, 3, 4]
    """
    try:
        limits = ISO_ZONE_LIMITS_MM_S[machine_class]
    except KeyError:
        raise ValueError(
            f"machine class {machine_class!r} is not one of {sorted(ISO_ZONE_LIMITS_MM_S)}"
        ) from None
    return np.searchsorted(np.asarray(limits), np.asarray(velocity_rms_mm_s), side="right") + 1


def zone_letter(zone: float) -> str:
    """``iso_zone`` value 1–4 as its letter A–D."""
    return ISO_ZONES[min(max(int(round(zone)), 1), 4) - 1]


@dataclass(frozen=True)
class _Plan:
    """Everything about a batch's spectra that depends only on its length and sampling rate."""

    samples: int
    fs_hz: float
    resolution_hz: float
    velocity_bins: slice
    velocity_weights: np.ndarray
    bands: dict[str, slice]
    envelope_bins: slice
    envelope_length: int
    envelope_window: np.ndarray
    order_bins: int


def _bins(frequency: tuple[float, float], resolution_hz: float, nyquist_hz: float) -> slice:
    """Bins of the half-open band [low, high): neighbouring bands share no bin."""
    top = min(frequency[1], NYQUIST_MARGIN * nyquist_hz)
    start = int(math.ceil(frequency[0] / resolution_hz))
    stop = int(math.ceil(top / resolution_hz)) if top > frequency[0] else start
    return slice(start, max(start, stop))


@lru_cache(maxsize=32)
def _plan(samples: int, fs_hz: float, envelope_band_hz: tuple[float, float]) -> _Plan:
    resolution = fs_hz / samples
    nyquist = fs_hz / 2
    velocity = _bins(VELOCITY_BAND_HZ, resolution, nyquist)
    frequency = np.arange(velocity.start, velocity.stop) * resolution
    # a(f) = (2π f) v(f): velocity in mm/s from acceleration in g
    weights = np.square(G_MM_S2 / (2 * np.pi * frequency)) if frequency.size else np.zeros(0)
    envelope = _bins(envelope_band_hz, resolution, nyquist)
    width = envelope.stop - envelope.start
    length = int(sp_fft.next_fast_len(max(width, 16), real=False))
    window = np.hanning(length)
    return _Plan(
        samples=samples,
        fs_hz=fs_hz,
        resolution_hz=resolution,
        velocity_bins=velocity,
        velocity_weights=weights,
        bands={name: _bins(band, resolution, nyquist) for name, band in SPECTRAL_BANDS_HZ.items()},
        envelope_bins=envelope,
        envelope_length=length,
        envelope_window=(window / window.sum() * 2.0).astype(np.float32),
        order_bins=min(samples // 2, int(1200.0 / resolution) + 3),
    )


def _band_power(power: np.ndarray, bins: slice) -> np.ndarray:
    if bins.stop <= bins.start:
        return np.zeros(power.shape[0])
    return power[:, bins].sum(axis=-1)


def envelope_spectrum(
    spectrum_complex: np.ndarray, samples: int, fs_hz: float, band_hz: tuple[float, float]
) -> Spectrum:
    """Envelope spectrum: band-pass ``band_hz``, Hilbert envelope, amplitude spectrum of the envelope.

    The analytic signal of the band-passed window is the inverse FFT of its positive-frequency bins
    doubled (Marple, IEEE Trans. Signal Process. 47(9), 1999); its magnitude is the envelope. Only the
    band's bins are transformed back, shifted to base band: the magnitude does not change with a shift,
    and a band of B bins needs only L ≥ B points (sampled at fs·L/N instead of fs), which makes the
    inverse FFT several times shorter. The envelope's mean is removed and a Hann window applied;
    amplitudes are corrected for the window's coherent gain, so a tone of amplitude A in the envelope
    reads A. ``spectrum_complex`` is the ``rfft`` of the windows, shape ``(windows, samples // 2 + 1)``.
    """
    plan = _plan(samples, float(fs_hz), (float(band_hz[0]), float(band_hz[1])))
    return _envelope(spectrum_complex, plan)[0]


def _envelope(spectrum_complex: np.ndarray, plan: _Plan) -> tuple[Spectrum, np.ndarray]:
    """The envelope spectrum and the envelope's RMS about its mean (g)."""
    bins = plan.envelope_bins
    length = plan.envelope_length
    width = bins.stop - bins.start
    shifted = np.zeros((spectrum_complex.shape[0], length), dtype=spectrum_complex.dtype)
    shifted[:, :width] = spectrum_complex[:, bins]
    # |ifft| of the doubled band, rescaled from L to N points: 2/N Σ X_k e^{…} = (2L/N) ifft_L
    envelope = np.abs(sp_fft.ifft(shifted, axis=-1)) * (2.0 * length / plan.samples)
    envelope -= envelope.mean(axis=-1, keepdims=True)
    # the band's analytic signal, shifted to base band and sampled at fs·L/N: the spectrum of its L
    # samples has the resolution of the original window
    amplitude = np.abs(sp_fft.rfft(envelope * plan.envelope_window, axis=-1))
    frequency = np.arange(amplitude.shape[-1]) * plan.resolution_hz
    return Spectrum(frequency_hz=frequency, amplitude=amplitude), np.sqrt(
        np.mean(np.square(envelope), axis=-1)
    )


def peaks_at(
    amplitude: np.ndarray, resolution_hz: float, frequency_hz: np.ndarray, tolerance: float
) -> np.ndarray:
    """Largest amplitude within ±``tolerance`` (relative, at least one bin) of each target frequency.

    ``amplitude`` has shape ``(windows, bins)`` with bin k at ``k * resolution_hz``; ``frequency_hz`` has
    shape ``(windows, targets)`` (a target per window, so each window may have its own shaft speed).
    Returns ``(windows, targets)``; a target beyond the spectrum reads 0.
    """
    windows, bins = amplitude.shape
    target = np.asarray(frequency_hz, dtype=np.float64) / resolution_hz
    half = np.maximum(target * tolerance, 1.0)
    reach = int(math.ceil(float(half.max()))) if half.size else 1
    offsets = np.arange(-reach, reach + 1)
    centre = np.rint(target).astype(np.int64)
    index = centre[..., None] + offsets
    inside = (np.abs(index - target[..., None]) <= half[..., None]) & (index >= 0) & (index < bins)
    rows = np.arange(windows)[:, None, None]
    values = amplitude[rows, np.clip(index, 0, bins - 1)]
    return np.where(inside, values, 0.0).max(axis=-1)


def peak_near(spectrum: Spectrum, frequency_hz: float, tolerance: float = DEFECT_TOLERANCE) -> np.ndarray:
    """Largest amplitude within ±``tolerance`` (relative, at least one bin) of ``frequency_hz``."""
    resolution = float(spectrum.frequency_hz[1] - spectrum.frequency_hz[0])
    targets = np.full((spectrum.amplitude.shape[0], 1), float(frequency_hz))
    return peaks_at(spectrum.amplitude, resolution, targets, tolerance)[:, 0]


def hann_amplitude(spectrum_complex: np.ndarray, samples: int, bins: int) -> np.ndarray:
    """Amplitude spectrum of the first ``bins`` bins as if the window had been Hann-weighted.

    A Hann window multiplies in time what a three-tap kernel (−¼, ½, −¼) convolves in frequency, so the
    Hann spectrum comes from the rectangular one without a second FFT; a tone of amplitude A between
    bins reads within 16 % of A (a rectangular window loses up to 36 %).
    """
    x = spectrum_complex[:, : bins + 1]
    hann = 0.5 * x[:, :bins]
    hann[:, 1:] -= 0.25 * x[:, : bins - 1]
    hann[:, :] -= 0.25 * x[:, 1 : bins + 1]
    hann[:, 0] -= 0.25 * np.conj(x[:, 1])
    # coherent gain of a Hann window is ½: a tone of amplitude A gives |X| = A·N/4
    return np.abs(hann) * (4.0 / samples)


def estimate_shaft_hz(
    order_amplitude: np.ndarray, resolution_hz: float, nominal_hz: float, search: float = SPEED_SEARCH
) -> np.ndarray:
    """Shaft speed of each window from its spectrum: the 1× line near ``nominal_hz``.

    ``order_amplitude`` is a Hann amplitude spectrum (see :func:`hann_amplitude`). The strongest bin
    within ±``search`` of the nominal speed is refined by fitting a parabola to the log amplitudes of it
    and its neighbours (Gaussian interpolation; a small fraction of a bin for a Hann window). A window
    whose 1× line does not stand out (not above :data:`LINE_CLEAR` times the median level from 0.5× to
    1.5× nominal) keeps the nominal speed; an estimate never leaves ±``search``. With 4096 samples at
    25.6 kHz (6.25 Hz bins) expect about ±0.5 Hz.
    """
    lowest_hz, highest_hz = nominal_hz * (1 - search), nominal_hz * (1 + search)
    low = max(1, int(math.ceil(lowest_hz / resolution_hz)))
    high = min(order_amplitude.shape[1] - 2, int(math.floor(highest_hz / resolution_hz)))
    if high < low:  # a band narrower than a bin: the bin nearest the nominal speed
        low = high = min(max(1, int(round(nominal_hz / resolution_hz))), order_amplitude.shape[1] - 2)
    band = order_amplitude[:, low : high + 1]
    best = np.argmax(band, axis=-1) + low
    wide = order_amplitude[
        :, max(1, int(nominal_hz * 0.5 / resolution_hz)) : int(nominal_hz * 1.5 / resolution_hz) + 2
    ]
    rows = np.arange(order_amplitude.shape[0])
    left, centre, right = (np.log(order_amplitude[rows, best + d] + 1e-12) for d in (-1, 0, 1))
    curvature = left - 2 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    estimate = np.clip((best + np.clip(shift, -0.5, 0.5)) * resolution_hz, lowest_hz, highest_hz)
    clear = order_amplitude[rows, best] > LINE_CLEAR * np.median(wide, axis=-1)
    return np.where(clear, estimate, nominal_hz)


CHUNK_WINDOWS = 64
"""Windows processed together: 64 windows of 4096 float32 samples (1 MB) and their spectra stay in the CPU's
cache through all the passes over them, which measured 2–3× faster than one pass over a large batch."""


def vibration_features(
    windows: np.ndarray,
    fs_hz: float,
    *,
    shaft_hz: float,
    defect_orders: Mapping[str, float],
    estimate_speed: bool = False,
    envelope_band_hz: tuple[float, float] = ENVELOPE_BAND_HZ,
    machine_class: str = "II",
) -> dict[str, np.ndarray]:
    """All of :data:`FEATURE_NAMES` for a batch of windows (acceleration in g, shape ``(windows, samples)``).

    ``shaft_hz`` is the configured (or nominal) shaft speed; with ``estimate_speed`` each window's speed
    is estimated from its 1× line near it (:func:`estimate_shaft_hz`). ``defect_orders`` gives the defect
    frequencies as orders of shaft speed (``{"bpfo": 3.585, "bpfi": 5.415, "bsf": 2.357, "ftf": 0.398}``
    for an SKF 6205); a missing defect reads 0. ``env_bsf`` reads the ball spin frequency, its 2nd
    harmonic ``env_bsf_h2`` the rate at which a ball defect strikes the races.

    Computed in float32 (a 16-bit sensor has far less resolution than that) in chunks of
    :data:`CHUNK_WINDOWS`; returned as float64.
    """
    x = np.asarray(windows, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 64:
        raise ValueError(f"windows must have shape (windows, samples ≥ 64), not {x.shape}")
    plan = _plan(x.shape[1], float(fs_hz), (float(envelope_band_hz[0]), float(envelope_band_hz[1])))
    parts = [
        _chunk_features(
            x[i : i + CHUNK_WINDOWS], plan, shaft_hz, defect_orders, estimate_speed, machine_class
        )
        for i in range(0, x.shape[0], CHUNK_WINDOWS)
    ]
    if not parts:
        return {name: np.zeros(0) for name in FEATURE_NAMES}
    return {name: np.concatenate([part[name] for part in parts]).astype(np.float64) for name in FEATURE_NAMES}


def _chunk_features(
    x: np.ndarray,
    plan: _Plan,
    shaft_hz: float,
    defect_orders: Mapping[str, float],
    estimate_speed: bool,
    machine_class: str,
) -> dict[str, np.ndarray]:
    count, samples = x.shape
    features = time_features(x)
    spectrum = sp_fft.rfft(x, axis=-1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    # Parseval on the one-sided spectrum: a bin k (not DC or Nyquist) holds power 2|X_k|²/N²
    scale = 2.0 / samples**2
    velocity = (
        power[:, plan.velocity_bins].astype(np.float64) @ plan.velocity_weights
        if plan.velocity_weights.size
        else np.zeros(count)
    )
    features["velocity_rms_mm_s"] = np.sqrt(scale * velocity)
    features["iso_zone"] = iso_zone(features["velocity_rms_mm_s"], machine_class).astype(np.float64)
    for name, bins in plan.bands.items():
        features[name] = np.sqrt(scale * _band_power(power, bins))
    features["envelope_band_rms_g"] = np.sqrt(scale * _band_power(power, plan.envelope_bins))

    orders = hann_amplitude(spectrum, samples, plan.order_bins)
    if estimate_speed:
        speed = estimate_shaft_hz(orders, plan.resolution_hz, shaft_hz)
    else:
        speed = np.full(count, float(shaft_hz))
    features["shaft_hz"] = speed
    multiples = np.array([1.0, 2.0, 3.0, 0.5, 1.5, 2.5, *range(4, 11)])
    lines = peaks_at(orders, plan.resolution_hz, speed[:, None] * multiples, ORDER_TOLERANCE)
    features["order_1x_g"], features["order_2x_g"], features["order_3x_g"] = (
        lines[:, 0],
        lines[:, 1],
        lines[:, 2],
    )
    features["order_half_g"] = np.sqrt(np.square(lines[:, 3:6]).sum(axis=-1))
    features["order_4x_10x_g"] = np.sqrt(np.square(lines[:, 6:]).sum(axis=-1))

    envelope, envelope_rms = _envelope(spectrum, plan)
    ftf = float(defect_orders.get("ftf", 0.0))
    targets = []
    for defect in DEFECTS:
        order = float(defect_orders.get(defect, 0.0))
        # sidebands: a race defect is modulated by the shaft, a ball defect by the cage carrying it
        sideband = ftf if defect == "bsf" else 1.0
        centre = 2.0 * order if defect == "bsf" else order
        targets += [order, 2 * order, 3 * order, centre - sideband, centre + sideband]
    frequency = speed[:, None] * np.asarray(targets)[None, :]
    amplitude = peaks_at(envelope.amplitude, plan.resolution_hz, frequency, DEFECT_TOLERANCE)
    for i, defect in enumerate(DEFECTS):
        block = amplitude[:, 5 * i : 5 * i + 5]
        if float(defect_orders.get(defect, 0.0)) <= 0:
            block = np.zeros_like(block)
        features[f"env_{defect}_g"] = block[:, 0]
        features[f"env_{defect}_h2_g"] = block[:, 1]
        features[f"env_{defect}_h3_g"] = block[:, 2]
        features[f"env_{defect}_sb_g"] = np.maximum(block[:, 3], block[:, 4])
    features["env_rms_g"] = envelope_rms
    middle = (envelope.amplitude.shape[1] - 1) // 2
    features["env_floor_g"] = np.partition(envelope.amplitude[:, 1:], middle, axis=-1)[:, middle]
    return features


def feature_matrix(features: Mapping[str, np.ndarray], names: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """Stack ``features`` into shape ``(windows, len(names))`` in the order of ``names``."""
    return np.stack([np.asarray(features[name], dtype=np.float64) for name in names], axis=-1)
