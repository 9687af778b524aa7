"""Training data for the shipped default models: simulated healthy machines, turned into features.

The shipped models are trained on simulator data only, reproducibly (fixed seed). Healthy machines vary in
speed, imbalance, misalignment, noise and resonance, so that the model learns "healthy" as a range and
not as one machine.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from plantwatch.agent.features import ANOMALY_FEATURES, feature_matrix, vibration_features
from plantwatch.simulators.machine import MachineSpec, vibration_g

FS_HZ = 25_600.0
WINDOW_SAMPLES = 4096


def healthy_training_features(
    *, seed: int, machines: int = 40, windows_per_machine: int = 60
) -> tuple[np.ndarray, list[str]]:
    """Features of ``machines × windows_per_machine`` healthy windows, shape ``(n, len(ANOMALY_FEATURES))``."""
    rng = np.random.default_rng(seed)
    base = MachineSpec()
    rows = []
    for _ in range(machines):
        spec = dataclasses.replace(
            base,
            shaft_hz=float(rng.uniform(24.0, 31.0)),
            imbalance_g=float(base.imbalance_g * rng.uniform(0.6, 1.5)),
            misalignment_g=float(base.misalignment_g * rng.uniform(0.6, 1.5)),
            noise_g=float(base.noise_g * rng.uniform(0.8, 1.25)),
            resonance_hz=float(rng.uniform(2800.0, 5000.0)),
        )
        windows = np.stack(
            [
                vibration_g(spec, None, t0_s=float(i), samples=WINDOW_SAMPLES, fs_hz=FS_HZ, rng=rng)
                for i in range(windows_per_machine)
            ]
        )
        orders = spec.bearing.defect_orders()
        features = vibration_features(windows, FS_HZ, shaft_hz=spec.shaft_hz, defect_orders=orders)
        rows.append(feature_matrix(features))
    return np.concatenate(rows).astype(np.float32), list(ANOMALY_FEATURES)
