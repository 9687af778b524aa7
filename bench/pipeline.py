"""Benchmark: the agent's per-window path against raw batched ``numpy.fft.rfft`` of the same windows.

The agent path is what :class:`plantwatch.agent.analysis.AssetAnalyser` runs on a batch of a commissioned
asset: features (time domain, velocity and ISO zone, band energies, orders, envelope spectrum with defect
harmonics and sidebands), inputs relative to the baseline, drift, the int8 anomaly model and the int8 fault
classifier, and the decision, building one record per window. It also times one single-row inference of
each model and prints the model file sizes. The baseline is ``numpy.fft.rfft`` of the same batch, measured
in the same run. Prints windows/s for both, the ratio, and how many 25.6 kHz channels (4096-sample
windows, 50 % overlap) one core sustains. ``--json`` ends with one JSON line of the figures.

example: python bench/pipeline.py --windows 512 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from plantwatch.agent.analysis import AssetAnalyser
from plantwatch.agent.baseline import ANOMALY_INPUTS, CLASSIFIER_INPUTS, input_matrix, model_inputs
from plantwatch.agent.config import AgentSettings, AssetSettings, SerialSettings
from plantwatch.agent.windows import WindowBatch
from plantwatch.models.registry import CLASSIFIER_KIND, DEFAULT_REGISTRY, load_model
from plantwatch.simulators.machine import MachineSpec, fault_windows

FS_HZ = 25_600.0
WINDOW = 4096


def best_of(repeats: int, work) -> float:
    """The fastest of ``repeats`` runs of ``work()``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def latency_ms(run: Callable[[np.ndarray], object], rows: np.ndarray, repeats: int = 200) -> float:
    """Median time of one single-row inference (ms), interpreter already sized for one row."""
    one = rows[:1]
    run(one)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=512, help="windows per batch (default 512)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of each path; the fastest counts (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    spec = MachineSpec()
    healthy = fault_windows(spec, None, 0.0, windows=args.windows // 2, samples=WINDOW, fs_hz=FS_HZ, rng=rng)
    faulty = fault_windows(
        spec,
        "outer_race",
        0.3,
        windows=args.windows - args.windows // 2,
        samples=WINDOW,
        fs_hz=FS_HZ,
        rng=rng,
    )
    data = np.concatenate([healthy, faulty])
    batch = WindowBatch(
        channel=0, fs_hz=FS_HZ, data=data, start_us=np.arange(args.windows, dtype=np.int64) * 80_000
    )
    anomaly = load_model(DEFAULT_REGISTRY, "anomaly-ae", expected_features=ANOMALY_INPUTS)
    classifier = load_model(
        DEFAULT_REGISTRY, "fault-classifier", expected_features=CLASSIFIER_INPUTS, kind=CLASSIFIER_KIND
    )
    asset = AssetSettings(id="pump", vibration_channel=0, shaft_hz=spec.shaft_hz, commissioning_windows=40)
    settings = AgentSettings(
        site="bench", agent_id="bench", serial=SerialSettings(port="loop://"), assets=[asset]
    )
    analyser = AssetAnalyser(settings, asset, anomaly=anomaly, classifier=classifier)
    # commission first (not timed): from then on every window is scored by both models
    commissioning = fault_windows(spec, None, 0.0, windows=40, samples=WINDOW, fs_hz=FS_HZ, rng=rng)
    analyser.analyse(
        WindowBatch(channel=0, fs_hz=FS_HZ, data=commissioning, start_us=np.zeros(40, dtype=np.int64))
    )
    assert analyser.baseline.complete

    features = analyser.features(batch)
    inputs = model_inputs(features, analyser.baseline.median)
    anomaly_rows = input_matrix(inputs, ANOMALY_INPUTS)
    classifier_rows = input_matrix(inputs, CLASSIFIER_INPUTS)

    raw_s = best_of(args.repeats, lambda: np.fft.rfft(data, axis=-1))
    agent_s = best_of(args.repeats, lambda: analyser.analyse(batch))
    features_s = best_of(args.repeats, lambda: analyser.features(batch))
    models_s = best_of(
        args.repeats, lambda: (anomaly.score(anomaly_rows), classifier.classify(classifier_rows))
    )
    raw_rate = args.windows / raw_s
    agent_rate = args.windows / agent_s
    windows_per_channel_s = FS_HZ / (WINDOW * 0.5)  # 50 % overlap: a new window every 2048 samples
    sizes = {
        m.manifest.name: (DEFAULT_REGISTRY / m.manifest.file).stat().st_size for m in (anomaly, classifier)
    }
    figures = {
        "windows": args.windows,
        "raw_rfft_windows_per_s": round(raw_rate, 1),
        "agent_windows_per_s": round(agent_rate, 1),
        "ratio_agent_to_raw": round(agent_rate / raw_rate, 4),
        "channels_per_core_25k6": round(agent_rate / windows_per_channel_s, 1),
        "features_us_per_window": round(features_s / args.windows * 1e6, 1),
        "both_models_us_per_window": round(models_s / args.windows * 1e6, 1),
        "rest_us_per_window": round((agent_s - features_s - models_s) / args.windows * 1e6, 1),
        "anomaly_single_inference_ms": round(latency_ms(anomaly.score, anomaly_rows), 4),
        "classifier_single_inference_ms": round(latency_ms(classifier.classify, classifier_rows), 4),
        "model_bytes": sizes,
    }
    print(f"{'path':<40}{'windows/s':>12}")
    print(f"{'raw numpy.fft.rfft (float64, one batch)':<40}{raw_rate:>12.1f}")
    print(f"{'agent (features+both models+decision)':<40}{agent_rate:>12.1f}")
    print(f"ratio agent/raw: {figures['ratio_agent_to_raw']:.3f}")
    print(
        f"per window: features {figures['features_us_per_window']} µs, both models "
        f"{figures['both_models_us_per_window']} µs, decision and records {figures['rest_us_per_window']} µs"
    )
    print(
        f"one inference: anomaly {figures['anomaly_single_inference_ms']} ms, classifier "
        f"{figures['classifier_single_inference_ms']} ms; model files {sizes} bytes"
    )
    print(
        f"25.6 kHz channels one core sustains (4096-sample windows, 50 % overlap): {figures['channels_per_core_25k6']}"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
