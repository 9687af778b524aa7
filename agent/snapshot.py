"""A compact spectrum snapshot of one window for the planner's page (wire contract 1.3, ``spectrum``).

The amplitude spectrum (Hann) and the envelope spectrum are computed as the features compute them
(:mod:`plantwatch.agent.features`), cut to the range a vibration analyst looks at, merged to at most
:data:`~plantwatch.contract.SPECTRUM_BINS_MAX` bins keeping the largest line of each merged group (a
defect line keeps its height), and quantised to 0…255 against the largest. A snapshot is a few KB of
JSON; the agent computes one only for the records that carry it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import fft as sp_fft

from plantwatch.agent.features import NYQUIST_MARGIN, _envelope, _plan, hann_amplitude
from plantwatch.contract import SPECTRUM_BINS_MAX, SpectrumSnapshot, SpectrumTrace

SPECTRUM_MIN_TOP_HZ = 1000.0
SPECTRUM_ORDERS = 12
"""The amplitude spectrum reaches max(1 kHz, 12× running speed), within the sensor's band."""
ENVELOPE_MIN_TOP_HZ = 200.0
ENVELOPE_DEFECT_REACH = 4.5
ENVELOPE_ORDERS = 10
"""The envelope spectrum reaches max(200 Hz, 4.5× the highest defect frequency, 10× running speed): the
third harmonic of every defect line is on it."""


def _significant(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def quantise(amplitude: np.ndarray, resolution_hz: float, top_hz: float, unit: str) -> SpectrumTrace:
    """Bins 0 … ``top_hz`` of an amplitude spectrum, merged by peak-hold to at most the contract's bin
    count (``df_hz`` a whole multiple of ``resolution_hz``) and quantised to 0…255."""
    count = max(1, min(len(amplitude), int(top_hz / resolution_hz) + 1))
    merge = max(1, math.ceil(count / SPECTRUM_BINS_MAX))
    kept = amplitude[: count - count % merge] if count >= merge else amplitude[:count]
    held = kept.reshape(-1, merge).max(axis=1) if merge > 1 else kept
    largest = float(held.max()) if held.size else 0.0
    bins = np.rint(held / largest * 255).astype(int) if largest > 0 else np.zeros(held.size, dtype=int)
    return SpectrumTrace(
        unit=unit,
        df_hz=_significant(resolution_hz * merge),
        scale=_significant(largest / 255),
        bins=tuple(int(b) for b in bins),
    )


def spectrum_snapshot(
    window: np.ndarray,
    fs_hz: float,
    *,
    shaft_hz: float,
    defect_orders: Mapping[str, float],
    envelope_band_hz: tuple[float, float],
) -> SpectrumSnapshot:
    """The snapshot of one window (acceleration in g) at running speed ``shaft_hz``; markers at 1×–3× and at
    each defect frequency whose order is known (above 0)."""
    x = np.asarray(window, dtype=np.float32)[None, :]
    samples = x.shape[1]
    plan = _plan(samples, float(fs_hz), (float(envelope_band_hz[0]), float(envelope_band_hz[1])))
    complex_spectrum = sp_fft.rfft(x, axis=-1)
    defects = {name: order * shaft_hz for name, order in defect_orders.items() if order > 0}
    top = min(NYQUIST_MARGIN * fs_hz / 2, max(SPECTRUM_MIN_TOP_HZ, SPECTRUM_ORDERS * shaft_hz))
    bins = min(samples // 2, int(top / plan.resolution_hz) + 1)
    amplitude = hann_amplitude(complex_spectrum, samples, bins)[0]
    envelope, _ = _envelope(complex_spectrum, plan)
    envelope_top = max(
        ENVELOPE_MIN_TOP_HZ,
        ENVELOPE_ORDERS * shaft_hz,
        ENVELOPE_DEFECT_REACH * max(defects.values(), default=0),
    )
    markers = {f"{k}x": _significant(k * shaft_hz) for k in (1, 2, 3)}
    markers.update((name, _significant(hz)) for name, hz in defects.items())
    return SpectrumSnapshot(
        shaft_hz=_significant(shaft_hz),
        markers_hz=markers,
        spectrum=quantise(amplitude, plan.resolution_hz, top, "g"),
        envelope=quantise(envelope.amplitude[0], plan.resolution_hz, envelope_top, "g"),
    )
