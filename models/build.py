"""Training: a tiny autoencoder learned from healthy feature rows, quantized to int8, calibrated, registered.

The anomaly model learns what healthy vibration features look like and nothing else, so it needs no
fault examples: a window whose features it cannot reconstruct is unlike anything healthy it has seen.

1. The rows are split deterministically (by ``seed``) into a training part and a held-out calibration
   part (:data:`CALIBRATION_FRACTION`).
2. Features are log-transformed and standardised with the training part's mean and standard deviation
   (:func:`plantwatch.models.registry.log_features`); the manifest records both, so the agent reproduces
   the pre-processing exactly.
3. A dense autoencoder ``k -> 8 -> 3 -> 8 -> k`` (relu, linear bottleneck and output) is fitted with
   mean squared error, seeded and with deterministic ops.
4. It is converted to a full-integer int8 TFLite model (int8 input and output tensors), with the
   training rows as the representative dataset that sets the quantization ranges.
5. The **int8 model itself**, run through the same :class:`~plantwatch.models.registry.AnomalyModel` the
   agent uses, scores the calibration rows; their quantiles and a suggested threshold go in the manifest.
6. Model and manifest are written to the registry and loaded back through
   :func:`~plantwatch.models.registry.load_model`, so a written model is a verified model.

TensorFlow is needed only here and is imported on first use: ``pip install 'plantwatch[train]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Any

import numpy as np

from plantwatch.log import event
from plantwatch.models.registry import (
    ANOMALY_KIND,
    CLASSIFIER_KIND,
    DEFAULT_REGISTRY,
    LOG_FLOOR,
    AnomalyModel,
    Calibration,
    FaultClassifier,
    InputSpec,
    Manifest,
    TensorSpec,
    TrainedOn,
    load_model,
    log_features,
    model_file_name,
    sha256_hex,
    write_model,
)

log = logging.getLogger(__name__)

DEFAULT_NAME = "anomaly-ae"
DEFAULT_VERSION = "2.0.0"
CLASSIFIER_NAME = "fault-classifier"
CLASSIFIER_VERSION = "1.0.0"
DEFAULT_GENERATOR = "plantwatch.models.dataset.simulated_training_set"
DEFAULT_MACHINES = 160
SEVERITY_TEXT = "0.02-1 (log-uniform)"

HIDDEN_UNITS = 16
BOTTLENECK_UNITS = 4
"""Narrower than the input, so the network must learn how a healthy machine's features move together
around its own baseline (RMS with band energy, peak with crest factor) instead of copying its input;
faults break those relations."""

CALIBRATION_FRACTION = 0.25
"""Share of the healthy rows held out of training to calibrate the score; enough rows for a p99.9."""

MIN_ROWS = 400
"""Fewer healthy rows than this cannot give a stable standardisation and a meaningful p99.9."""

DEFAULT_EPOCHS = 60
BATCH_SIZE = 64
LEARNING_RATE = 3e-3

REPRESENTATIVE_ROWS = 2000
"""At most this many training rows set the int8 ranges: enough to reach the healthy tails, bounded so
conversion stays fast on large datasets."""

THRESHOLD_MARGIN = 1.5
"""Suggested threshold = p99.9 of held-out healthy scores x this margin. p99.9 alone would flag about
one healthy window in a thousand by construction, and a p99.9 estimated from a few thousand rows is
itself uncertain (it rests on the last few rows); machines in the field also differ more than the
training set. A 50 % margin puts the threshold clear of the healthy tail while a fault that breaks the
feature relations still scores many times higher (see ``evaluation`` in the manifest). The agent's
decision layer adds persistence, hysteresis and per-asset baselines on top; this is a ceiling for
"unlike any healthy machine", not an alarm rule."""

SHIFT_TEST_SD = 4.0
"""Evaluation: one feature of each calibration row is raised by this many standard deviations (in the
model's log space) and the share of rows then above the threshold is recorded per feature."""

MAX_MODEL_BYTES = 64 * 1024
"""Edge budget for one model file."""


class TrainingUnavailable(ImportError):
    """TensorFlow, needed only to build models, is not installed."""


def import_tensorflow() -> Any:
    """Import TensorFlow for training, quietly; raise :class:`TrainingUnavailable` saying how to get it."""
    # TensorFlow's C++ start-up chatter is not plantwatch's log format; warnings and errors still show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise TrainingUnavailable(
            f"building models needs TensorFlow ({error}); install it with: pip install 'plantwatch[train]'"
        ) from error
    return tf


def split_rows(
    rows: int, *, seed: int, calibration_fraction: float = CALIBRATION_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of ``rows`` row indices into ``(train, calibration)``, each sorted.

    >>> train, calibration = split_rows(8, seed=7, calibration_fraction=0.25)
    >>> len(train), len(calibration), sorted([*train, *calibration]) == list(range(8))
    (6, 2, True)
    """
    if not 0 < calibration_fraction < 1:
        raise ValueError(f"calibration_fraction must be between 0 and 1, not {calibration_fraction}")
    order = np.random.default_rng(seed).permutation(rows)
    held_out = int(round(rows * calibration_fraction))
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def fit_standardisation(
    logged: np.ndarray, feature_names: Sequence[str], *, allow_constant: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of log features ``(n, k)``, for ``z = (v - mean) / std``.

    Raises :class:`ValueError` naming a feature that is (nearly) constant: it carries no information and
    would divide by zero. With ``allow_constant`` such a feature gets a standard deviation of 1 instead
    (a band above one sensor's Nyquist frequency is constant in data from that sensor alone).
    """
    mean = logged.mean(axis=0)
    std = logged.std(axis=0)
    for index, (name, value) in enumerate(zip(feature_names, std, strict=True)):
        if not value > 1e-6:
            if not allow_constant:
                raise ValueError(f"feature {name!r} is constant in the training rows (log std {value:.3g})")
            std[index] = 1.0
    return mean, std


def calibrate(scores: np.ndarray) -> Calibration:
    """Quantiles of held-out healthy scores (p50, p99, p99.9, max), ignoring NaN.

    >>> calibrate(np.arange(1001.0)).p99_9
    999.0
    """
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ValueError("no finite calibration scores")
    p50, p99, p99_9 = np.quantile(finite, [0.5, 0.99, 0.999])
    return Calibration(
        rows=int(finite.size), p50=float(p50), p99=float(p99), p99_9=float(p99_9), max=float(finite.max())
    )


def suggest_threshold(calibration: Calibration) -> float:
    """Suggested score threshold: p99.9 of held-out healthy scores x :data:`THRESHOLD_MARGIN`."""
    return calibration.p99_9 * THRESHOLD_MARGIN


def _autoencoder(tf: Any, k: int) -> Any:
    keras = tf.keras
    inputs = keras.Input(shape=(k,), name="features")
    hidden = keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="encode")(inputs)
    code = keras.layers.Dense(min(BOTTLENECK_UNITS, k - 1), name="bottleneck")(hidden)
    hidden = keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="decode")(code)
    outputs = keras.layers.Dense(k, name="reconstruction")(hidden)
    model = keras.Model(inputs, outputs, name="anomaly_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE), loss="mse")
    return model


def _progress_callback(tf: Any, name: str, epochs: int) -> Any:
    every = max(1, epochs // 10)

    class Progress(tf.keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if (epoch + 1) % every == 0 or epoch + 1 == epochs:
                loss = float((logs or {}).get("loss", float("nan")))
                event(
                    log,
                    logging.INFO,
                    "training_progress",
                    model=name,
                    epoch=epoch + 1,
                    epochs=epochs,
                    loss=loss,
                )

    return Progress()


def _convert_int8(tf: Any, model: Any, representative: np.ndarray) -> bytes:
    """Full-integer int8 TFLite bytes; int8 input and output, batch dimension left dynamic."""

    def representative_dataset() -> Any:
        for row in representative.astype(np.float32):
            yield [row[None, :]]

    # from_keras_model, not from_concrete_functions: with Keras 3 the latter leaves variable reads in
    # the graph that the int8 calibrator cannot run
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    chatty = [logging.getLogger(name) for name in ("tensorflow", "absl")]
    levels = [logger.level for logger in chatty]
    try:
        # the export prints its signature to stdout and logs a temporary path; neither is ours to show
        for logger in chatty:
            logger.setLevel(logging.WARNING)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # the converter warns that int8 inputs come without float statistics; the manifest has them
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return bytes(converter.convert())
    finally:
        for logger, level in zip(chatty, levels, strict=True):
            logger.setLevel(level)


def _tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    shape = [None if d == -1 else int(d) for d in detail["shape_signature"]]
    return TensorSpec(
        dtype=np.dtype(detail["dtype"]).name,
        shape=tuple(shape),
        scale=float(scale),
        zero_point=int(zero_point),
    )


def _created_with(tf: Any) -> dict[str, str]:
    versions = {"tensorflow": str(tf.__version__), "numpy": np.__version__}
    with contextlib.suppress(PackageNotFoundError):  # running from a source tree without metadata
        versions["plantwatch"] = distribution_version("plantwatch")
    return versions


def _fresh_session(tf: Any, seed: int) -> None:
    """Fresh layer names and graph state, seeded and deterministic ops: a rebuild is byte-identical."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _quantize(tf: Any, network: Any, z_train: np.ndarray) -> bytes:
    """The int8 model of ``network``, its ranges set by evenly spaced training rows (so they do not depend
    on the split's order); refused if over :data:`MAX_MODEL_BYTES`."""
    picks = np.linspace(0, len(z_train) - 1, num=min(REPRESENTATIVE_ROWS, len(z_train))).astype(int)
    content = _convert_int8(tf, network, z_train[picks])
    if len(content) > MAX_MODEL_BYTES:
        raise ValueError(f"the model is {len(content)} bytes, over the {MAX_MODEL_BYTES}-byte edge budget")
    return content


def _draft_manifest(
    tf: Any,
    content: bytes,
    *,
    name: str,
    version: str,
    kind: str,
    names: tuple[str, ...],
    mean: np.ndarray,
    std: np.ndarray,
    labels: tuple[str, ...] = (),
    threshold: float,
    trained_on: TrainedOn,
) -> Manifest:
    """The manifest of a converted model, its tensor entries read from the model itself; calibration and
    evaluation are filled in once the int8 model has run on held-out rows."""
    from plantwatch.models.interpreter import make_interpreter

    interpreter = make_interpreter(content)
    return Manifest(
        name=name,
        version=version,
        sha256=sha256_hex(content),
        file=model_file_name(name, version),
        kind=kind,
        input=InputSpec(
            features=names,
            transform="log",
            log_floor=LOG_FLOOR,
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            tensor=_tensor_spec(interpreter.get_input_details()[0]),
        ),
        output=_tensor_spec(interpreter.get_output_details()[0]),
        labels=labels,
        threshold=threshold,
        calibration=Calibration(rows=0, p50=0.0, p99=0.0, p99_9=0.0, max=0.0),
        trained_on=trained_on,
        created_with=_created_with(tf),
    )


def train_anomaly_model(
    features: np.ndarray,
    feature_names: Sequence[str],
    *,
    name: str,
    version: str,
    out_dir: Path,
    seed: int = 7,
    trained_on: str,
    generator: str = "",
    epochs: int = DEFAULT_EPOCHS,
) -> Manifest:
    """Train, quantize, calibrate and register an int8 autoencoder on healthy feature rows.

    ``features`` has shape ``(n, k)``: raw feature values of healthy windows (each in its own unit, e.g.
    g for ``rms_g``), columns named by ``feature_names`` in order; at least :data:`MIN_ROWS` rows, all
    finite. ``seed`` fixes the split, the initial weights and the shuffling: the same inputs give the
    same model. ``trained_on`` is a sentence saying what the rows are; ``generator`` names the function
    that made them (recorded with ``seed`` so anyone can rebuild). ``epochs`` are passes over the
    training part.

    Writes ``<name>-<version>.tflite`` and ``<name>-<version>.json`` into ``out_dir`` (replacing an
    existing version) and returns the manifest. Raises :class:`ValueError` for unusable rows and
    :class:`TrainingUnavailable` without TensorFlow.
    """
    x = np.asarray(features, dtype=np.float64)
    names = tuple(feature_names)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"features must have shape (n, {len(names)}) for {list(names)}, not {x.shape}")
    if x.shape[1] < 2:
        raise ValueError("an autoencoder needs at least 2 features")
    if x.shape[0] < MIN_ROWS:
        raise ValueError(f"need at least {MIN_ROWS} healthy rows, got {x.shape[0]}")
    bad_rows = int(np.count_nonzero(~np.isfinite(x).all(axis=1)))
    if bad_rows:
        raise ValueError(f"{bad_rows} rows hold NaN or infinite features; clean the training data first")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")

    tf = import_tensorflow()
    train_rows, calibration_rows = split_rows(x.shape[0], seed=seed)
    logged = log_features(x, LOG_FLOOR)
    mean, std = fit_standardisation(logged[train_rows], names)
    z_train = ((logged[train_rows] - mean) / std).astype(np.float32)
    event(
        log,
        logging.INFO,
        "training_started",
        model=name,
        version=version,
        train_rows=len(train_rows),
        calibration_rows=len(calibration_rows),
        epochs=epochs,
        seed=seed,
    )

    _fresh_session(tf, seed)
    network = _autoencoder(tf, len(names))
    history = network.fit(
        z_train,
        z_train,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        shuffle=True,
        verbose=0,
        callbacks=[_progress_callback(tf, name, epochs)],
    )
    content = _quantize(tf, network, z_train)
    manifest = _draft_manifest(
        tf,
        content,
        name=name,
        version=version,
        kind=ANOMALY_KIND,
        names=names,
        mean=mean,
        std=std,
        threshold=1.0,
        trained_on=TrainedOn(description=trained_on, generator=generator, seed=seed, rows=int(x.shape[0])),
    )
    int8_model = AnomalyModel(manifest, content, source=model_file_name(name, version))
    held_out = x[calibration_rows]
    int8_scores = int8_model.score(held_out)
    calibration = calibrate(int8_scores)
    threshold = suggest_threshold(calibration)

    z_held_out = (logged[calibration_rows] - mean) / std
    float_scores = np.mean(
        (network.predict(z_held_out.astype(np.float32), verbose=0) - z_held_out) ** 2, axis=1
    )
    evaluation: dict[str, float] = {
        "train_loss_float": float(history.history["loss"][-1]),
        "calibration_score_mean_float": float(np.mean(float_scores)),
        "calibration_score_mean_int8": float(np.mean(int8_scores)),
        "calibration_below_threshold": float(np.mean(int8_scores < threshold)),
    }
    for column, feature in enumerate(names):
        shifted = held_out.copy()
        shifted[:, column] *= np.exp(SHIFT_TEST_SD * std[column])
        evaluation[f"shift_{SHIFT_TEST_SD:g}sd_{feature}_above_threshold"] = float(
            np.mean(int8_model.score(shifted) > threshold)
        )

    manifest = dataclasses.replace(
        manifest, threshold=threshold, calibration=calibration, evaluation=evaluation
    )
    write_model(out_dir, manifest, content)
    load_model(out_dir, name, expected_features=names, version=version)
    event(
        log,
        logging.INFO,
        "training_finished",
        model=name,
        version=version,
        size_bytes=len(content),
        sha256=manifest.sha256[:12],
        p99_9=calibration.p99_9,
        threshold=threshold,
    )
    return manifest


CLASSIFIER_HIDDEN = (32, 16)
CLASSIFIER_EPOCHS = 60
CLASSIFIER_MIN_CONFIDENCE = 0.5
"""A fault is named only when the classifier gives it at least this probability; below it the failure
mode is ``unknown`` and the evidence speaks for itself."""


def _classifier(tf: Any, k: int, classes: int) -> Any:
    keras = tf.keras
    inputs = keras.Input(shape=(k,), name="features")
    hidden = inputs
    for index, units in enumerate(CLASSIFIER_HIDDEN):
        hidden = keras.layers.Dense(units, activation="relu", name=f"hidden{index + 1}")(hidden)
    outputs = keras.layers.Dense(classes, activation="softmax", name="probabilities")(hidden)
    model = keras.Model(inputs, outputs, name="fault_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train_classifier(
    features: np.ndarray,
    feature_names: Sequence[str],
    labels: Sequence[str],
    *,
    classes: Sequence[str],
    name: str,
    version: str,
    out_dir: Path,
    seed: int = 7,
    trained_on: str,
    generator: str = "",
    epochs: int = CLASSIFIER_EPOCHS,
    register: bool = True,
) -> tuple[Manifest, bytes]:
    """Train, quantize and register an int8 fault classifier on labelled feature rows.

    ``features`` has shape ``(n, k)`` (positive values; the model takes their log, standardised like the
    anomaly model's inputs), ``labels`` one class name per row, ``classes`` the output columns in order.
    Classes are weighted inversely to their counts. A held-out quarter (the seeded split of :func:`split_rows`)
    measures the **int8** model's accuracy and per-class recall into the manifest's ``evaluation``.
    With ``register`` the model is written to ``out_dir`` and loaded back through :func:`load_model`;
    without, nothing is written (an evaluation trains throw-away models). Returns the manifest and the
    model bytes.
    """
    x = np.asarray(features, dtype=np.float64)
    names = tuple(feature_names)
    class_names = tuple(classes)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"features must have shape (n, {len(names)}) for {list(names)}, not {x.shape}")
    if len(labels) != x.shape[0]:
        raise ValueError(f"{len(labels)} labels for {x.shape[0]} rows")
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(class_names)}")
    if not np.isfinite(x).all():
        raise ValueError("rows hold NaN or infinite features; clean the training data first")
    y = np.array([class_names.index(label) for label in labels])
    counts = np.bincount(y, minlength=len(class_names))
    if (counts == 0).any():
        missing = [c for c, n in zip(class_names, counts, strict=True) if n == 0]
        raise ValueError(f"no training rows for classes {missing}")

    tf = import_tensorflow()
    train_rows, held_rows = split_rows(x.shape[0], seed=seed)
    logged = log_features(x, LOG_FLOOR)
    mean, std = fit_standardisation(logged[train_rows], names, allow_constant=True)
    z = ((logged - mean) / std).astype(np.float32)
    weights = {i: float(len(y) / (len(class_names) * n)) for i, n in enumerate(counts)}
    event(log, logging.INFO, "training_started", model=name, version=version, rows=len(train_rows), seed=seed)
    _fresh_session(tf, seed)
    network = _classifier(tf, len(names), len(class_names))
    network.fit(
        z[train_rows],
        y[train_rows],
        epochs=epochs,
        batch_size=BATCH_SIZE,
        shuffle=True,
        verbose=0,
        class_weight=weights,
        callbacks=[_progress_callback(tf, name, epochs)],
    )
    content = _quantize(tf, network, z[train_rows])
    manifest = _draft_manifest(
        tf,
        content,
        name=name,
        version=version,
        kind=CLASSIFIER_KIND,
        names=names,
        mean=mean,
        std=std,
        labels=class_names,
        threshold=CLASSIFIER_MIN_CONFIDENCE,
        trained_on=TrainedOn(description=trained_on, generator=generator, seed=seed, rows=int(x.shape[0])),
    )
    model = FaultClassifier(manifest, content, source=model_file_name(name, version))
    predicted, confidence = model.classify(x[held_rows])
    truth = [class_names[i] for i in y[held_rows]]
    hits = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    evaluation: dict[str, float] = {
        "held_out_rows": float(len(held_rows)),
        "held_out_accuracy_int8": float(hits.mean()),
    }
    for label in class_names:
        mine = np.array([t == label for t in truth])
        if mine.any():
            evaluation[f"held_out_recall_{label}"] = float(hits[mine].mean())
    calibration = calibrate(confidence)
    manifest = dataclasses.replace(manifest, calibration=calibration, evaluation=evaluation)
    if register:
        write_model(out_dir, manifest, content)
        load_model(out_dir, name, expected_features=names, version=version, kind=CLASSIFIER_KIND)
    event(
        log,
        logging.INFO,
        "training_finished",
        model=name,
        version=version,
        size_bytes=len(content),
        accuracy=round(evaluation["held_out_accuracy_int8"], 4),
    )
    return manifest, content


def select_columns(features: np.ndarray, feature_names: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """The columns of ``features`` named ``wanted``, in that order; :class:`ValueError` names any missing.

    >>> select_columns(np.array([[1.0, 2.0, 3.0]]), ["a", "b", "c"], ["c", "a"])
    array([[3., 1.]])
    """
    names = list(feature_names)
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValueError(f"features {missing} are not among the dataset's columns {names}")
    return np.asarray(features)[:, [names.index(name) for name in wanted]]


def build_default_models(
    out_dir: Path = DEFAULT_REGISTRY, *, seed: int = 7, machines: int = DEFAULT_MACHINES
) -> list[Manifest]:
    """Build the models plantwatch ships, from simulated machines only, into ``out_dir``.

    Two models, both on inputs relative to each machine's own commissioning baseline
    (:mod:`plantwatch.agent.baseline`): the anomaly autoencoder ``anomaly-ae`` on
    :data:`~plantwatch.agent.baseline.ANOMALY_INPUTS`, learned from healthy windows only, and the fault
    classifier ``fault-classifier`` on :data:`~plantwatch.agent.baseline.CLASSIFIER_INPUTS` with the labels
    :data:`plantwatch.models.dataset.CLASSES`. The rows come from
    :func:`plantwatch.models.dataset.simulated_training_set` with the same ``seed``. Returns the manifests
    written.
    """
    import_tensorflow()  # fail before the simulation, not after it
    from plantwatch.agent.baseline import ANOMALY_INPUTS, CLASSIFIER_INPUTS
    from plantwatch.models.dataset import CLASSES, simulated_training_set

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            event(log, logging.INFO, "simulating", machines=f"{done}/{total}")

    data = simulated_training_set(seed=seed, machines=machines, progress=progress)
    description = (
        f"Simulated machines only: {machines} random machines (shaft 10-60 Hz, six bearing types, "
        f"resonances 1.5-6 kHz, loads 0-1, 12 and 25.6 kHz sensors), each judged against its own "
        f"commissioning baseline; seed {seed}."
    )
    anomaly = train_anomaly_model(
        data.healthy,
        ANOMALY_INPUTS,
        name=DEFAULT_NAME,
        version=DEFAULT_VERSION,
        out_dir=Path(out_dir),
        seed=seed,
        trained_on=f"{data.healthy.shape[0]} healthy windows after commissioning. {description}",
        generator=DEFAULT_GENERATOR,
    )
    classifier, _ = train_classifier(
        data.labelled,
        CLASSIFIER_INPUTS,
        data.labels,
        classes=CLASSES,
        name=CLASSIFIER_NAME,
        version=CLASSIFIER_VERSION,
        out_dir=Path(out_dir),
        seed=seed,
        trained_on=(
            f"{data.labelled.shape[0]} windows, healthy and six failure modes at severities "
            f"{SEVERITY_TEXT}. {description}"
        ),
        generator=DEFAULT_GENERATOR,
    )
    return [anomaly, classifier]
