"""Training data for the shipped default models: simulated machines, each judged against its own normal.

The shipped models are trained on simulator data only, reproducibly (one seed). Every simulated machine
is random (:func:`plantwatch.simulators.machine.random_machine`: speed, bearing, resonances, noise, load)
and sampled at a random sensor rate and window length, and each is treated the way the agent treats a
real asset: its first windows are its commissioning period, and every later window becomes model inputs
*relative to that machine's own baseline* (:func:`plantwatch.agent.baseline.model_inputs`). Healthy
windows after commissioning train the anomaly model; healthy and faulty windows of every failure mode,
at severities from barely visible to failure, train the classifier.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from plantwatch.agent.baseline import ANOMALY_INPUTS, CLASSIFIER_INPUTS, Baseline, input_matrix, model_inputs
from plantwatch.agent.features import vibration_features
from plantwatch.simulators.machine import FAULT_MODES, MachineSpec, fault_windows, random_machine

CLASSES: tuple[str, ...] = ("healthy", *FAULT_MODES)
"""The fault classifier's labels: healthy and every failure mode the simulator can produce."""

SENSORS: tuple[tuple[float, int], ...] = (
    (12_000.0, 2048),
    (12_000.0, 4096),
    (25_600.0, 2048),
    (25_600.0, 4096),
)
"""(sampling rate, window length) pairs a simulated machine is measured with: the models must not depend
on either (12 kHz and 25.6 kHz are the rates of the public bearing data sets)."""

COMMISSIONING_WINDOWS = 40

OPERATING_GROUPS = 5
"""Healthy windows are drawn in this many groups, each at its own operating point (see
:func:`operating_point`): a real machine's healthy features wander between snapshots with load, process and
temperature, and a model that never saw that wander flags it."""

OPERATING_SPREAD = 0.15
"""Log-normal spread of the levels that move with the operating point (noise, shaft lines, looseness)."""


def operating_point(spec: MachineSpec, rng: np.random.Generator) -> MachineSpec:
    """The same healthy machine at another moment: levels scattered by :data:`OPERATING_SPREAD`, load ±0.1."""

    def scatter(value: float) -> float:
        return float(value * np.exp(OPERATING_SPREAD * rng.standard_normal()))

    return dataclasses.replace(
        spec,
        noise_g=scatter(spec.noise_g),
        imbalance_g=scatter(spec.imbalance_g),
        misalignment_g=scatter(spec.misalignment_g),
        looseness_g=scatter(spec.looseness_g),
        load=float(np.clip(spec.load + 0.1 * rng.standard_normal(), 0.0, 1.0)),
    )


def healthy_windows(
    spec: MachineSpec, count: int, *, samples: int, fs_hz: float, rng: np.random.Generator
) -> np.ndarray:
    """``count`` healthy windows spread over :data:`OPERATING_GROUPS` operating points of ``spec``."""
    sizes = np.diff(np.linspace(0, count, OPERATING_GROUPS + 1).astype(int))
    return np.concatenate(
        [
            fault_windows(
                operating_point(spec, rng), None, 0.0, windows=int(n), samples=samples, fs_hz=fs_hz, rng=rng
            )
            for n in sizes
            if n > 0
        ]
    )


SEVERITY_RANGE = (0.02, 1.0)
"""Fault severities are drawn log-uniformly in this range: from hardly visible to failure."""


@dataclass(frozen=True)
class TrainingSet:
    """Model inputs of simulated windows: healthy rows for the anomaly model, labelled rows for the classifier."""

    healthy: np.ndarray
    """Healthy windows after commissioning, columns :data:`ANOMALY_INPUTS`."""
    labelled: np.ndarray
    """Healthy and faulty windows, columns :data:`CLASSIFIER_INPUTS`."""
    labels: list[str]
    severities: np.ndarray
    machines: int


def simulated_training_set(
    *,
    seed: int,
    machines: int = 60,
    healthy_count: int = 30,
    fault_windows_per_mode: int = 12,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingSet:
    """Simulate ``machines`` random machines and turn their windows into model inputs.

    Per machine: :data:`COMMISSIONING_WINDOWS` healthy windows learn its baseline; ``healthy_count`` more
    healthy windows (each set spread over operating points) and ``fault_windows_per_mode`` windows of each
    failure mode (each with its own
    severity) become inputs relative to it. ``progress(done, machines)`` after each machine.
    """
    rng = np.random.default_rng(seed)
    healthy_rows, labelled_rows, labels, severities = [], [], [], []
    for index in range(machines):
        fs_hz, samples = SENSORS[int(rng.integers(len(SENSORS)))]
        spec = random_machine(rng, fs_hz=fs_hz)
        orders = spec.bearing.defect_orders()

        features_of = functools.partial(
            vibration_features, fs_hz=fs_hz, shaft_hz=spec.running_hz, defect_orders=orders
        )
        commissioning = healthy_windows(spec, COMMISSIONING_WINDOWS, samples=samples, fs_hz=fs_hz, rng=rng)
        baseline = Baseline(target_windows=COMMISSIONING_WINDOWS)
        baseline.add(features_of(commissioning), COMMISSIONING_WINDOWS)
        baseline.finish()
        healthy = healthy_windows(spec, healthy_count, samples=samples, fs_hz=fs_hz, rng=rng)
        inputs = model_inputs(features_of(healthy), baseline.median)
        healthy_rows.append(input_matrix(inputs, ANOMALY_INPUTS))
        labelled_rows.append(input_matrix(inputs, CLASSIFIER_INPUTS))
        labels += ["healthy"] * healthy_count
        severities.append(np.zeros(healthy_count))
        low, high = np.log(SEVERITY_RANGE[0]), np.log(SEVERITY_RANGE[1])
        for mode in FAULT_MODES:
            severity = np.exp(rng.uniform(low, high, fault_windows_per_mode))
            faulty = fault_windows(
                operating_point(spec, rng),
                mode,
                severity,
                windows=fault_windows_per_mode,
                samples=samples,
                fs_hz=fs_hz,
                rng=rng,
            )
            inputs = model_inputs(features_of(faulty), baseline.median)
            labelled_rows.append(input_matrix(inputs, CLASSIFIER_INPUTS))
            labels += [mode] * fault_windows_per_mode
            severities.append(severity)
        if progress is not None:
            progress(index + 1, machines)
    return TrainingSet(
        healthy=np.concatenate(healthy_rows),
        labelled=np.concatenate(labelled_rows),
        labels=labels,
        severities=np.concatenate(severities),
        machines=machines,
    )


if __name__ == "__main__":  # a quick look at the data: python -m plantwatch.models.dataset
    started = time.monotonic()
    data = simulated_training_set(seed=7, machines=8)
    print(
        f"{data.healthy.shape[0]} healthy rows, {data.labelled.shape[0]} labelled rows in {time.monotonic() - started:.1f} s"
    )
