"""The spectrum snapshot on the wire (contract 1.3): the lines a planner looks for are where the physics
puts them, peak-hold keeps them tall, the payload stays compact and the contract refuses a bad one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plantwatch.agent.snapshot import spectrum_snapshot
from plantwatch.contract import SPECTRUM_BINS_MAX, PayloadError, parse_record
from tests.test_gateway_store import alert

FS = 25600.0
SAMPLES = 4096 * 4
SHAFT = 29.95
ORDERS = {"bpfo": 3.5848, "bpfi": 5.4152, "bsf": 2.3572, "ftf": 0.3983}


def outer_race_signal(seed: int = 3) -> np.ndarray:
    """Impacts at BPFO ringing a 4 kHz resonance, a 1× tone of 0.2 g and noise (acceleration in g)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / FS
    bpfo = ORDERS["bpfo"] * SHAFT
    signal = 0.2 * np.sin(2 * np.pi * SHAFT * t) + 0.02 * rng.standard_normal(SAMPLES)
    ring = np.exp(-t[:200] * 2000) * np.sin(2 * np.pi * 4000 * t[:200])
    for start in np.arange(0, t[-1], 1 / bpfo):
        i = int(start * FS)
        signal[i : i + 200] += ring[: len(signal[i : i + 200])]
    return signal


def snapshot() -> object:
    return spectrum_snapshot(
        outer_race_signal(), FS, shaft_hz=SHAFT, defect_orders=ORDERS, envelope_band_hz=(2000.0, 8000.0)
    )


def strongest_hz(trace: object) -> float:
    bins = trace.bins  # type: ignore[attr-defined]
    return bins.index(max(bins)) * trace.df_hz  # type: ignore[attr-defined]


def test_the_envelope_peaks_at_bpfo_and_the_spectrum_at_running_speed() -> None:
    shot = snapshot()
    assert shot.markers_hz["bpfo"] == pytest.approx(ORDERS["bpfo"] * SHAFT, rel=1e-5)
    assert shot.markers_hz["1x"] == pytest.approx(SHAFT) and shot.markers_hz["3x"] == pytest.approx(3 * SHAFT)
    assert abs(strongest_hz(shot.envelope) - shot.markers_hz["bpfo"]) <= shot.envelope.df_hz
    assert abs(strongest_hz(shot.spectrum) - SHAFT) <= shot.spectrum.df_hz
    # peak-hold: the 1× line keeps its height (0.2 g) though many FFT lines were merged into one bin
    assert max(shot.spectrum.bins) * shot.spectrum.scale == pytest.approx(0.2, rel=0.2)
    for trace in (shot.spectrum, shot.envelope):
        assert 0 < len(trace.bins) <= SPECTRUM_BINS_MAX and max(trace.bins) == 255 and min(trace.bins) >= 0
    # the envelope reaches the third harmonic of the highest defect line, the spectrum 12× running speed
    assert len(shot.envelope.bins) * shot.envelope.df_hz >= 3 * shot.markers_hz["bpfi"]
    assert len(shot.spectrum.bins) * shot.spectrum.df_hz >= 12 * SHAFT


def test_a_snapshot_travels_the_contract_and_older_payloads_still_parse() -> None:
    shot = snapshot()
    record = alert()
    with_shot = type(record)(**{**record.__dict__, "spectrum": shot})
    payload = with_shot.to_json().encode()
    assert len(payload) < 8000  # compact: a few KB per alert
    assert parse_record(payload) == with_shot
    assert "spectrum" not in json.loads(record.to_json())  # a 1.2 payload
    assert parse_record(record.to_json().encode()).spectrum is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s.update(shaft_hz=-1), "spectrum.shaft_hz: must be above 0"),
        (lambda s: s["envelope"].update(df_hz=0), "spectrum.envelope.df_hz: must be above 0"),
        (lambda s: s["spectrum"].update(bins=[0, 256]), "spectrum.spectrum.bins: every bin"),
        (lambda s: s["spectrum"].update(bins="0,1"), "spectrum.spectrum.bins: expected a list"),
        (lambda s: s["envelope"].pop("scale"), "spectrum.envelope.scale: missing"),
        (lambda s: s["markers_hz"].update(gmf=100.0), "spectrum.markers_hz.gmf: not one of"),
        (lambda s: s.pop("envelope"), "spectrum.envelope: expected an object"),
    ],
)
def test_a_bad_snapshot_is_refused_naming_the_field(change: object, problem: str) -> None:
    record = alert()
    body = json.loads(type(record)(**{**record.__dict__, "spectrum": snapshot()}).to_json())
    change(body["spectrum"])  # type: ignore[operator]
    with pytest.raises(PayloadError, match=problem.replace(".", r"\.")):
        parse_record(json.dumps(body).encode())
