"""Evaluation on labelled real data, through the same int8 path the agent runs.

Two layouts (see :mod:`plantwatch.models.realdata`):

- **CWRU** (:func:`evaluate_cwru`): seeded-fault records at several loads and fault sizes. The asset's
  normal is learned from the first half of the normal record(s) in the *training* selection (as an agent
  commissions a machine); the second half is the healthy part of the test. Reported: anomaly AUROC of the
  shipped anomaly model (healthy vs faulty test windows), detection and false-alarm rates at the threshold
  calibrated on the commissioning windows, and fault-type accuracy with per-class precision/recall of two
  classifiers — one trained here, int8 and quantized exactly like the shipped one, on the training
  selection only (needs TensorFlow), and the shipped classifier trained on simulated machines only.
- **Run to failure** (:func:`evaluate_run_to_failure`): snapshots replayed in time order through
  :class:`plantwatch.agent.analysis.AssetAnalyser` — features, commissioning from the start of life,
  per-asset threshold, both models and the decision with its persistence and hysteresis — reporting the
  first warning and alarm, the lead time before the end of life and every alarm in the first half of
  life.

Training and test selections may come from different folders, so a model can be judged on data kept
apart from everything it was built with.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plantwatch.agent.baseline import (
    ANOMALY_INPUTS,
    CLASSIFIER_INPUTS,
    Baseline,
    calibrate_threshold,
    input_matrix,
    model_inputs,
)
from plantwatch.agent.features import vibration_features
from plantwatch.log import event
from plantwatch.models.metrics import (
    accuracy,
    auroc,
    confusion_matrix,
    format_table,
    per_class_precision_recall,
)
from plantwatch.models.realdata import CwruRecord, RunToFailure, read_cwru, read_run_to_failure, windows_of
from plantwatch.models.registry import (
    CLASSIFIER_KIND,
    DEFAULT_REGISTRY,
    AnomalyModel,
    FaultClassifier,
    load_model,
)

log = logging.getLogger(__name__)

CWRU_ORDERS = {"bpfo": 3.5848, "bpfi": 5.4152, "bsf": 2.357, "ftf": 0.39828}
"""SKF 6205-2RS JEM (CWRU drive end): defect frequencies as orders of shaft speed (CWRU's table)."""

PRONOSTIA_RPM = {1: 1800.0, 2: 1650.0, 3: 1500.0}
"""FEMTO/PRONOSTIA operating conditions: the shaft speed of ``Bearing<condition>_<n>``."""

FAULT_CLASSES = ("inner_race", "outer_race", "ball")


@dataclass(frozen=True)
class Windows:
    """Windows cut from records, with what each window is."""

    data: np.ndarray
    labels: list[str]
    shaft_hz: np.ndarray
    records: list[int]
    fs_hz: float


def _cut(records: Sequence[CwruRecord], window_samples: int) -> Windows:
    data, labels, speeds, numbers = [], [], [], []
    for record in records:
        windows = windows_of(record.signal_g, window_samples, 0.5)
        data.append(windows)
        labels += ["healthy" if record.fault == "normal" else record.fault] * len(windows)
        speeds.append(np.full(len(windows), record.rpm / 60.0))
        numbers += [record.record] * len(windows)
    fs = {record.fs_hz for record in records}
    if len(fs) > 1:
        raise ValueError(f"records have different sampling rates {sorted(fs)}; resample them to one")
    return Windows(
        data=np.concatenate(data) if data else np.zeros((0, window_samples)),
        labels=labels,
        shaft_hz=np.concatenate(speeds) if speeds else np.zeros(0),
        records=numbers,
        fs_hz=fs.pop() if fs else 0.0,
    )


def _features(windows: Windows, orders: dict[str, float]) -> dict[str, np.ndarray]:
    """Features per record speed (each record has its own measured speed)."""
    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    for speed in np.unique(windows.shaft_hz):
        rows = np.flatnonzero(windows.shaft_hz == speed)
        parts.append(
            (
                rows,
                vibration_features(
                    windows.data[rows], windows.fs_hz, shaft_hz=float(speed), defect_orders=orders
                ),
            )
        )
    result: dict[str, np.ndarray] = {}
    for name in parts[0][1]:
        column = np.zeros(windows.data.shape[0])
        for rows, features in parts:
            column[rows] = features[name]
        result[name] = column
    return result


def _select(features: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in features.items()}


def parse_numbers(text: str | None) -> list[float] | None:
    """A comma-separated list of numbers (``"0,1"``), or None for no filter."""
    if text is None or text == "":
        return None
    return [float(part) for part in text.split(",") if part.strip()]


def evaluate_cwru(
    train_dir: Path,
    test_dir: Path,
    *,
    train_loads: Sequence[float] | None,
    test_loads: Sequence[float] | None,
    train_sizes: Sequence[float] | None = None,
    test_sizes: Sequence[float] | None = None,
    window_samples: int = 4096,
    registry: Path = DEFAULT_REGISTRY,
    train_classifier_here: bool = True,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate on CWRU-layout folders; returns the figures (see the module docstring)."""
    say = progress or (lambda text: None)
    train_records = read_cwru(train_dir, loads=train_loads, diameters=None)
    test_records = read_cwru(test_dir, loads=test_loads, diameters=None)
    normal_train = [r for r in train_records if r.fault == "normal"]
    if not normal_train:
        raise ValueError(
            f"no normal record in the training selection of {train_dir}: an asset needs its normal"
        )

    def keep(records: list[CwruRecord], sizes: Sequence[float] | None) -> list[CwruRecord]:
        return [
            r
            for r in records
            if r.fault != "normal" and (sizes is None or any(abs(r.diameter_in - s) < 1e-6 for s in sizes))
        ]

    faulty_train = keep(train_records, train_sizes)
    faulty_test = keep(test_records, test_sizes)
    if not faulty_test:
        raise ValueError("no faulty record in the test selection")
    same_folder = Path(train_dir).resolve() == Path(test_dir).resolve()
    shared = sorted({r.record for r in faulty_train} & {r.record for r in faulty_test}) if same_folder else []
    if shared:
        raise ValueError(f"records {shared} are in both the training and the test selection")

    # the asset's normal: the first half of each normal training record commissions, the second half is
    # the healthy side of the test (CWRU has one normal record per load; the 0 hp one is all there is here)
    normal = _cut(normal_train, window_samples)
    orders = CWRU_ORDERS
    say(f"features of {normal.data.shape[0]} normal windows")
    normal_features = _features(normal, orders)
    commission_rows, healthy_rows = [], []
    for record in sorted(set(normal.records)):
        rows = np.flatnonzero(np.array(normal.records) == record)
        half = len(rows) // 2
        commission_rows += rows[:half].tolist()
        healthy_rows += rows[half:].tolist()
    commission_rows_a = np.array(commission_rows)
    baseline = Baseline(target_windows=len(commission_rows_a))
    baseline.add(_select(normal_features, commission_rows_a), len(commission_rows_a))
    baseline.finish()

    anomaly: AnomalyModel = load_model(registry, "anomaly-ae", expected_features=ANOMALY_INPUTS)
    shipped: FaultClassifier = load_model(
        registry, "fault-classifier", expected_features=CLASSIFIER_INPUTS, kind=CLASSIFIER_KIND
    )
    commissioning_inputs = model_inputs(_select(normal_features, commission_rows_a), baseline.median)
    commissioning_scores = anomaly.score(input_matrix(commissioning_inputs, ANOMALY_INPUTS))
    threshold = calibrate_threshold(commissioning_scores, anomaly.threshold)

    test = _cut(faulty_test, window_samples)
    say(f"features of {test.data.shape[0]} faulty test windows ({len(faulty_test)} records)")
    test_features = _features(test, orders)
    healthy_features = _select(normal_features, np.array(healthy_rows))
    test_inputs = model_inputs(test_features, baseline.median)
    healthy_inputs = model_inputs(healthy_features, baseline.median)
    faulty_scores = anomaly.score(input_matrix(test_inputs, ANOMALY_INPUTS))
    healthy_scores = anomaly.score(input_matrix(healthy_inputs, ANOMALY_INPUTS))
    scores = np.concatenate([healthy_scores, faulty_scores])
    positives = np.concatenate([np.zeros(healthy_scores.size, bool), np.ones(faulty_scores.size, bool)])
    figures: dict[str, Any] = {
        "layout": "cwru",
        "train_dir": str(train_dir),
        "test_dir": str(test_dir),
        "train_loads": list(train_loads) if train_loads is not None else "all",
        "test_loads": list(test_loads) if test_loads is not None else "all",
        "train_sizes_in": list(train_sizes) if train_sizes is not None else "all",
        "test_sizes_in": list(test_sizes) if test_sizes is not None else "all",
        "window_samples": window_samples,
        "fs_hz": test.fs_hz,
        "commissioning_windows": int(commission_rows_a.size),
        "healthy_test_windows": int(healthy_scores.size),
        "faulty_test_windows": int(faulty_scores.size),
        "anomaly_model": f"{anomaly.manifest.name} {anomaly.manifest.version}",
        "anomaly_auroc": auroc(scores, positives),
        "asset_threshold": threshold,
        "detected_at_threshold": float(np.mean(faulty_scores >= threshold)),
        "false_alarms_at_threshold": float(np.mean(healthy_scores >= threshold)),
    }

    test_truth = ["healthy"] * healthy_scores.size + test.labels
    test_matrix = np.concatenate(
        [input_matrix(healthy_inputs, CLASSIFIER_INPUTS), input_matrix(test_inputs, CLASSIFIER_INPUTS)]
    )
    classifiers: dict[str, tuple[list[str], np.ndarray]] = {}
    classifiers["shipped"] = shipped.classify(test_matrix)
    figures["shipped_classifier"] = f"{shipped.manifest.name} {shipped.manifest.version}"
    if train_classifier_here:
        if not faulty_train:
            raise ValueError("no faulty record in the training selection to train a classifier on")
        train = _cut(faulty_train, window_samples)
        say(
            f"training a classifier on {train.data.shape[0]} windows ({len(faulty_train)} records) plus the commissioning windows"
        )
        train_inputs = model_inputs(_features(train, orders), baseline.median)
        rows = np.concatenate(
            [
                input_matrix(commissioning_inputs, CLASSIFIER_INPUTS),
                input_matrix(train_inputs, CLASSIFIER_INPUTS),
            ]
        )
        labels = ["healthy"] * commission_rows_a.size + train.labels
        classes = tuple(c for c in ("healthy", *FAULT_CLASSES) if c in labels)
        from plantwatch.models.build import train_classifier

        manifest, content = train_classifier(
            rows,
            CLASSIFIER_INPUTS,
            labels,
            classes=classes,
            name="cwru-classifier",
            version="0",
            out_dir=Path("."),
            seed=seed,
            trained_on="CWRU training selection",
            register=False,
        )
        trained = FaultClassifier(manifest, content, source="cwru-classifier")
        classifiers["trained"] = trained.classify(test_matrix)
        figures["trained_classifier_bytes"] = len(content)
    faulty = np.array([t != "healthy" for t in test_truth])
    for name, (predicted, _confidence) in classifiers.items():
        labels_all = ["healthy", *FAULT_CLASSES]
        labels_all += sorted(set(predicted) - set(labels_all))
        figures[f"{name}_fault_type_accuracy"] = accuracy(
            [t for t, f in zip(test_truth, faulty, strict=True) if f],
            [p for p, f in zip(predicted, faulty, strict=True) if f],
        )
        figures[f"{name}_accuracy_all"] = accuracy(test_truth, predicted)
        table = per_class_precision_recall(test_truth, predicted, labels_all)
        figures[f"{name}_per_class"] = {
            label: {"precision": p, "recall": r, "support": n} for label, (p, r, n) in table.items()
        }
        figures[f"{name}_confusion"] = confusion_matrix(test_truth, predicted, labels_all).tolist()
        # one vote per record: the label most of its windows got
        votes = {}
        for record, truth, guess in zip(
            [-1] * healthy_scores.size + test.records, test_truth, predicted, strict=True
        ):
            votes.setdefault((record, truth), []).append(guess)
        record_hits = [
            max(set(v), key=v.count) == truth for (record, truth), v in votes.items() if record >= 0
        ]
        figures[f"{name}_record_accuracy"] = float(np.mean(record_hits)) if record_hits else math.nan
    return figures


def cwru_report(figures: dict[str, Any]) -> str:
    """The CWRU figures as tables for people."""
    lines = [
        f"CWRU evaluation: train {figures['train_dir']} loads {figures['train_loads']} sizes {figures['train_sizes_in']};"
        f" test {figures['test_dir']} loads {figures['test_loads']} sizes {figures['test_sizes_in']}",
        f"windows of {figures['window_samples']} samples at {figures['fs_hz']:g} Hz, 50 % overlap; commissioning "
        f"{figures['commissioning_windows']} normal windows; test {figures['healthy_test_windows']} healthy + "
        f"{figures['faulty_test_windows']} faulty windows",
        "",
        format_table(
            ["anomaly model", "AUROC", "threshold", "detected", "false alarms"],
            [
                [
                    figures["anomaly_model"],
                    figures["anomaly_auroc"],
                    figures["asset_threshold"],
                    figures["detected_at_threshold"],
                    figures["false_alarms_at_threshold"],
                ]
            ],
            float_digits=4,
        ),
    ]
    for name in ("trained", "shipped"):
        if f"{name}_per_class" not in figures:
            continue
        title = (
            "classifier trained on the training selection (int8)"
            if name == "trained"
            else f"shipped classifier {figures['shipped_classifier']} (simulator only, int8)"
        )
        rows = [
            [label, v["precision"], v["recall"], v["support"]]
            for label, v in figures[f"{name}_per_class"].items()
        ]
        lines += [
            "",
            f"{title}: fault-type accuracy {figures[f'{name}_fault_type_accuracy']:.4f}, all windows "
            f"{figures[f'{name}_accuracy_all']:.4f}, records (majority vote) {figures[f'{name}_record_accuracy']:.4f}",
            format_table(["class", "precision", "recall", "windows"], rows, float_digits=4),
        ]
    return "\n".join(lines)


# --- run to failure ------------------------------------------------------------------------------------


def pronostia_rpm(folder: Path) -> float | None:
    """The shaft speed of a PRONOSTIA ``Bearing<condition>_<n>`` folder, or None for another name."""
    match = re.fullmatch(r"Bearing(\d)_\d+", Path(folder).name)
    return PRONOSTIA_RPM.get(int(match.group(1))) if match else None


def evaluate_run_to_failure(
    folder: Path,
    *,
    rpm: float,
    orders: dict[str, float],
    channel: str = "horizontal",
    commissioning_fraction: float = 0.1,
    registry: Path = DEFAULT_REGISTRY,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay a run-to-failure folder through the agent's analyser; returns the figures."""
    from plantwatch.agent.analysis import AssetAnalyser
    from plantwatch.agent.config import AgentSettings, AssetSettings, BearingSettings, SerialSettings
    from plantwatch.agent.windows import WindowBatch

    say = progress or (lambda text: None)
    run: RunToFailure = read_run_to_failure(folder)
    if channel not in run.channel_names:
        raise ValueError(f"channel {channel!r} is not one of {list(run.channel_names)}")
    column = run.channel_names.index(channel)
    snapshots = run.snapshots_g.shape[0]
    commissioning = max(8, int(round(snapshots * commissioning_fraction)))
    asset = AssetSettings(
        id="bearing",
        vibration_channel=0,
        shaft_hz=rpm / 60.0,
        bearing=BearingSettings(**orders),
        commissioning_windows=commissioning,
    )
    settings = AgentSettings(site="eval", agent_id="eval", serial=SerialSettings(port="-"), assets=[asset])
    anomaly = load_model(registry, "anomaly-ae", expected_features=ANOMALY_INPUTS)
    classifier = load_model(
        registry, "fault-classifier", expected_features=CLASSIFIER_INPUTS, kind=CLASSIFIER_KIND
    )
    analyser = AssetAnalyser(settings, asset, anomaly=anomaly, classifier=classifier)
    say(
        f"{snapshots} snapshots of {run.snapshots_g.shape[1]} samples; commissioning on the first {commissioning}"
    )
    temperatures = run.temperature_at(run.snapshot_times_s)
    states, scores, modes, changes = [], [], [], []
    for index in range(snapshots):
        t_s = float(run.snapshot_times_s[index])
        if np.isfinite(temperatures[index]):
            analyser.add_temperature(t_s, float(temperatures[index]))
        batch = WindowBatch(
            channel=0,
            fs_hz=run.fs_hz,
            data=run.snapshots_g[index : index + 1, :, column].astype(np.float64),
            start_us=np.array([int(round(t_s * 1e6))]),
        )
        ((record, _topic),) = analyser.analyse(batch)
        states.append(record.state)
        scores.append(record.score)
        modes.append(record.failure_mode)
        if record.state != record.previous_state:
            changes.append(
                {
                    "snapshot": index + 1,
                    "t_s": t_s,
                    "from": record.previous_state,
                    "to": record.state,
                    "score": record.score,
                    "failure_mode": record.failure_mode,
                }
            )
    end_s = float(run.snapshot_times_s[-1])
    half_s = end_s / 2

    def first(level: str) -> float | None:
        for state, t_s in zip(states, run.snapshot_times_s, strict=True):
            if state == level or (level == "warning" and state == "alarm"):
                return float(t_s)
        return None

    first_warning, first_alarm = first("warning"), first("alarm")
    alarms_first_half = [c for c in changes if c["to"] == "alarm" and c["t_s"] < half_s]
    warnings_first_half = [c for c in changes if c["to"] == "warning" and c["t_s"] < half_s]
    peak = np.abs(run.snapshots_g).max(axis=(1, 2))
    over = np.flatnonzero(peak > 20.0)
    return {
        "layout": "run-to-failure",
        "folder": str(folder),
        "channel": channel,
        "snapshots": snapshots,
        "life_s": end_s,
        "rpm": rpm,
        "commissioning_snapshots": commissioning,
        "asset_threshold": analyser.decision.warning_threshold,
        "first_warning_s": first_warning,
        "first_alarm_s": first_alarm,
        "first_warning_life_fraction": None if first_warning is None else first_warning / end_s,
        "first_alarm_life_fraction": None if first_alarm is None else first_alarm / end_s,
        "alarm_lead_fraction_of_life": None if first_alarm is None else (end_s - first_alarm) / end_s,
        "warning_lead_fraction_of_life": None if first_warning is None else (end_s - first_warning) / end_s,
        "first_over_20g_s": float(run.snapshot_times_s[over[0]]) if over.size else None,
        "alarms_first_half": len(alarms_first_half),
        "warnings_first_half": len(warnings_first_half),
        "state_changes": changes,
        "failure_mode_at_end": modes[-1],
        "score_median_by_life_tenth": [
            float(np.median(part)) for part in np.array_split(np.asarray(scores), 10)
        ],
    }


def run_to_failure_report(figures: dict[str, Any]) -> str:
    """The run-to-failure figures as text for people."""

    def at(t: float | None) -> str:
        return "never" if t is None else f"{t:.0f} s ({t / figures['life_s']:.1%} of life)"

    lines = [
        f"run to failure: {figures['folder']} ({figures['channel']} channel), {figures['snapshots']} snapshots, "
        f"life {figures['life_s']:.0f} s, {figures['rpm']:g} rpm",
        f"commissioning on the first {figures['commissioning_snapshots']} snapshots; asset threshold "
        f"{figures['asset_threshold']:.3f}",
        f"first warning: {at(figures['first_warning_s'])}; first alarm: {at(figures['first_alarm_s'])}",
        "alarm lead before end of life: "
        + (
            "none"
            if figures["alarm_lead_fraction_of_life"] is None
            else f"{figures['alarm_lead_fraction_of_life']:.1%} of life"
        ),
        f"first snapshot over 20 g: {at(figures['first_over_20g_s'])}",
        f"alarms in the first half of life: {figures['alarms_first_half']}; warnings: {figures['warnings_first_half']}",
        "median anomaly score per tenth of life: "
        + " ".join(f"{v:.2f}" for v in figures["score_median_by_life_tenth"]),
        "",
        format_table(
            ["snapshot", "time s", "from", "to", "score", "failure mode"],
            [
                [c["snapshot"], c["t_s"], c["from"], c["to"], c["score"], c["failure_mode"]]
                for c in figures["state_changes"]
            ],
            float_digits=2,
        )
        if figures["state_changes"]
        else "(no state changes)",
    ]
    return "\n".join(lines)


def log_progress(text: str) -> None:
    """Progress lines of a long evaluation, on the log."""
    event(log, logging.INFO, "evaluation", step=text)
