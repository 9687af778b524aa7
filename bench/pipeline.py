"""Benchmark: the agent's per-window path against raw batched ``numpy.fft.rfft`` of the same windows.

The agent path is what :class:`plantwatch.agent.analysis.AssetAnalyser` runs on a batch: features
(time domain, band energy, envelope spectrum at the defect frequencies), the int8 anomaly model and the
decision, building one record per window. The baseline is ``numpy.fft.rfft`` of the same batch, measured
in the same run. Prints windows/s for both, the ratio, and how many 25.6 kHz channels (4096-sample
windows, 50 % overlap) one core sustains. ``--json`` ends with one JSON line of the figures.

example: python bench/pipeline.py --windows 512 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from plantwatch.agent.analysis import AssetAnalyser
from plantwatch.agent.config import AgentSettings, AssetSettings, SerialSettings
from plantwatch.agent.features import ANOMALY_FEATURES
from plantwatch.agent.windows import WindowBatch
from plantwatch.contract import ModelRef
from plantwatch.models.registry import DEFAULT_REGISTRY, load_model
from plantwatch.simulators.machine import FaultSpec, MachineSpec, vibration_g

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
    fault = FaultSpec(onset_s=0.0, life_s=1.0)
    data = np.stack(
        [
            vibration_g(
                MachineSpec(), fault if i % 2 else None, t0_s=0.5, samples=WINDOW, fs_hz=FS_HZ, rng=rng
            )
            for i in range(args.windows)
        ]
    )
    batch = WindowBatch(
        channel=0, fs_hz=FS_HZ, data=data, start_us=np.arange(args.windows, dtype=np.int64) * 80_000
    )
    model = load_model(DEFAULT_REGISTRY, "anomaly-ae", expected_features=ANOMALY_FEATURES)
    ref = ModelRef(model.manifest.name, model.manifest.version, model.manifest.sha256)
    settings = AgentSettings(
        site="bench",
        agent_id="bench",
        serial=SerialSettings(port="loop://"),
        assets=[AssetSettings(id="pump", vibration_channel=0, shaft_hz=29.95)],
    )
    analyser = AssetAnalyser(settings, settings.assets[0], model_threshold=model.manifest.threshold)

    raw_s = best_of(args.repeats, lambda: np.fft.rfft(data, axis=-1))
    agent_s = best_of(args.repeats, lambda: analyser.analyse(batch, model.score, ref))
    raw_rate = args.windows / raw_s
    agent_rate = args.windows / agent_s
    windows_per_channel_s = FS_HZ / (WINDOW * 0.5)  # 50 % overlap: a new window every 2048 samples
    figures = {
        "windows": args.windows,
        "raw_rfft_windows_per_s": round(raw_rate, 1),
        "agent_windows_per_s": round(agent_rate, 1),
        "ratio_agent_to_raw": round(agent_rate / raw_rate, 4),
        "channels_per_core_25k6": round(agent_rate / windows_per_channel_s, 1),
    }
    print(f"{'path':<28}{'windows/s':>12}")
    print(f"{'raw numpy.fft.rfft':<28}{raw_rate:>12.1f}")
    print(f"{'agent (features+model+decision)':<28}{agent_rate:>12.1f}")
    print(f"ratio agent/raw: {figures['ratio_agent_to_raw']:.3f}")
    print(
        f"25.6 kHz channels one core sustains (4096-sample windows, 50 % overlap): {figures['channels_per_core_25k6']}"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
