"""Model manifests and verified loading: a model runs only if its file and tensors match its manifest.

A registry is a directory of model files, each with a JSON manifest beside it::

    anomaly-ae-1.0.0.tflite   the full-integer int8 TFLite model
    anomaly-ae-1.0.0.json     its manifest: hash, input features and pre-processing, tensor dtype, shape
                              and quantization, threshold, calibration, what it was trained on

:func:`load_model` picks a manifest (the newest version unless one is asked for), then refuses, with
:class:`ModelMismatch`, a file whose sha256 differs from the manifest, a manifest whose feature names or
order differ from what the caller computes, and a model whose input or output tensor dtype, shape or
quantization differ from the manifest. Only then does it return an :class:`AnomalyModel`, whose
:meth:`~AnomalyModel.score` reproduces the pre-processing exactly and runs the int8 model on a batch.

Usage (the agent passes the names of the features it computes, in its order)::

    model = load_model(DEFAULT_REGISTRY, "anomaly-ae", expected_features=feature_names)
    scores = model.score(features)  # (n, k) raw features -> (n,) scores
    anomalous = scores > model.manifest.threshold
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plantwatch.log import event
from plantwatch.models.interpreter import TFLiteInterpreter, make_interpreter

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = Path(__file__).parent / "registry"
"""Where the committed models live (``models/registry/``, shipped as package data)."""

MANIFEST_SCHEMA = "plantwatch.model-manifest/1"
"""Written into every manifest; a reader refuses a major version it does not know (as on the wire)."""

ANOMALY_KIND = "anomaly-autoencoder"
CLASSIFIER_KIND = "fault-classifier"
KINDS = (ANOMALY_KIND, CLASSIFIER_KIND)
TRANSFORMS = ("log",)
TENSOR_DTYPES = ("int8",)

LOG_FLOOR = 1e-9
"""Features are floored here before the natural log, so a zero (a dead sensor) gives a large, finite value."""

SCALE_REL_TOL = 1e-6
"""Quantization scales are float32 in the model and decimal in JSON; this tolerance absorbs the round trip
and nothing else (a hand-edited or stale scale differs by far more)."""

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
VERSION_PATTERN = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")
_MANIFEST_FILE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)-(?P<version>[0-9]+(?:\.[0-9]+)*)\.json$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INT8_MIN, _INT8_MAX = -128, 127


class ModelError(Exception):
    """Base class of the registry's errors; ``str()`` names the file and the problem."""

    def __init__(self, file: Path | str, problem: str) -> None:
        self.file = Path(file)
        self.problem = problem
        super().__init__(f"{file}: {problem}")


class ModelMismatch(ModelError):
    """A model file, its manifest and the caller disagree (hash, features, tensor dtype/shape/quantization)."""


class ManifestError(ModelError, ValueError):
    """A manifest that cannot be read: not JSON, an unknown schema, a missing or bad field."""


class ModelNotFound(ModelError, LookupError):
    """No manifest for the requested model name (and version) in the registry directory."""


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """What a model's input or output tensor must be.

    ``shape`` uses ``None`` for the batch dimension (the interpreter's ``-1``). A real value ``r`` and
    its int8 code ``q`` are related by ``r = scale * (q - zero_point)``.
    """

    dtype: str
    shape: tuple[int | None, ...]
    scale: float
    zero_point: int

    def __post_init__(self) -> None:
        if self.dtype not in TENSOR_DTYPES:
            raise ValueError(f"tensor dtype {self.dtype!r} is not one of {list(TENSOR_DTYPES)}")
        if len(self.shape) != 2 or self.shape[0] is not None or not isinstance(self.shape[1], int):
            raise ValueError(f"tensor shape must be [null, k], not {_shape_text(self.shape)}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"tensor scale must be a positive number, not {self.scale}")
        info = np.iinfo(self.dtype)
        if not info.min <= self.zero_point <= info.max:
            raise ValueError(f"tensor zero_point {self.zero_point} is outside {self.dtype}")


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """The model's input: which features, in which order, and how they become the int8 tensor.

    ``z = (ln(max(x, log_floor)) - mean) / std`` per feature (``x`` in the feature's own unit, ``z`` in
    standard deviations of the training set), then ``q = clip(round(z / scale + zero_point))``.
    """

    features: tuple[str, ...]
    transform: str
    log_floor: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tensor: TensorSpec

    def __post_init__(self) -> None:
        k = len(self.features)
        if k == 0 or len(set(self.features)) != k:
            raise ValueError(f"input features must be distinct names, not {list(self.features)}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"input transform {self.transform!r} is not one of {list(TRANSFORMS)}")
        if not (math.isfinite(self.log_floor) and self.log_floor > 0):
            raise ValueError(f"input log_floor must be a positive number, not {self.log_floor}")
        if len(self.mean) != k or len(self.std) != k:
            raise ValueError(f"input mean and std must have {k} values, one per feature")
        if not all(math.isfinite(m) for m in self.mean):
            raise ValueError("input mean must be finite")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError("input std must be positive and finite")
        if self.tensor.shape[1] != k:
            raise ValueError(f"input tensor shape {_shape_text(self.tensor.shape)} does not fit {k} features")


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """Quantiles of the int8 model's scores on held-out healthy rows it was not trained on."""

    rows: int
    p50: float
    p99: float
    p99_9: float
    max: float


@dataclass(frozen=True, kw_only=True)
class TrainedOn:
    """What a model learned from: a sentence for people, and the generator and seed that reproduce it."""

    description: str
    generator: str
    seed: int
    rows: int


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything needed to check and run one model file; stored as ``<name>-<version>.json``.

    ``score`` of an anomaly model is the mean squared reconstruction error in standardised units (see
    :meth:`AnomalyModel.score`); ``threshold`` is in the same unit. ``labels`` is empty for an anomaly
    model (a classifier lists its classes). ``evaluation`` holds figures measured when the model was
    built; ``created_with`` the versions of the tools that built it.
    """

    name: str
    version: str
    sha256: str
    file: str
    kind: str = ANOMALY_KIND
    input: InputSpec
    output: TensorSpec
    labels: tuple[str, ...] = ()
    threshold: float
    calibration: Calibration
    trained_on: TrainedOn
    evaluation: Mapping[str, float] = field(default_factory=dict)
    created_with: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must match {NAME_PATTERN.pattern}")
        if not VERSION_PATTERN.match(self.version):
            raise ValueError(f"version {self.version!r} must be numbers separated by dots, e.g. 1.0.0")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"sha256 {self.sha256!r} is not 64 lowercase hex digits")
        if self.file != model_file_name(self.name, self.version):
            raise ValueError(f"file must be {model_file_name(self.name, self.version)!r}, not {self.file!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {list(KINDS)}")
        if self.kind == ANOMALY_KIND:
            if self.labels:
                raise ValueError("an anomaly model has no labels")
            if self.output.shape != self.input.tensor.shape:
                raise ValueError(
                    f"an autoencoder's output shape {_shape_text(self.output.shape)} must equal its input "
                    f"shape {_shape_text(self.input.tensor.shape)}"
                )
        if self.kind == CLASSIFIER_KIND:
            if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
                raise ValueError(f"a classifier needs two or more distinct labels, not {list(self.labels)}")
            if self.output.shape != (None, len(self.labels)):
                raise ValueError(
                    f"a classifier's output shape {_shape_text(self.output.shape)} must be "
                    f"[null, {len(self.labels)}], one column per label"
                )
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"threshold must be a positive number, not {self.threshold}")

    @property
    def features(self) -> tuple[str, ...]:
        """The input feature names, in the model's order."""
        return self.input.features

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON-able data, in a stable key order."""
        return {
            "schema": MANIFEST_SCHEMA,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "file": self.file,
            "sha256": self.sha256,
            "input": {
                "features": list(self.input.features),
                "transform": self.input.transform,
                "log_floor": self.input.log_floor,
                "mean": list(self.input.mean),
                "std": list(self.input.std),
                "tensor": _tensor_to_dict(self.input.tensor),
            },
            "output": {"tensor": _tensor_to_dict(self.output)},
            "labels": list(self.labels),
            "threshold": self.threshold,
            "calibration": {
                "rows": self.calibration.rows,
                "p50": self.calibration.p50,
                "p99": self.calibration.p99,
                "p99_9": self.calibration.p99_9,
                "max": self.calibration.max,
            },
            "trained_on": {
                "description": self.trained_on.description,
                "generator": self.trained_on.generator,
                "seed": self.trained_on.seed,
                "rows": self.trained_on.rows,
            },
            "evaluation": dict(self.evaluation),
            "created_with": dict(self.created_with),
        }

    def to_json(self) -> str:
        """The manifest as JSON text, as stored on disk (two-space indent, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Build a manifest from parsed JSON; raises :class:`ValueError` naming the key and the problem.

        Unknown keys are refused, like unknown configuration keys: a typo must not pass silently.
        """
        top = _Fields(data, "")
        schema = top.take("schema", str)
        if schema != MANIFEST_SCHEMA:
            raise ValueError(f"schema {schema!r} is not {MANIFEST_SCHEMA!r} (written by a newer plantwatch?)")
        input_fields = _Fields(top.take("input", dict), "input.")
        output_fields = _Fields(top.take("output", dict), "output.")
        calibration = _Fields(top.take("calibration", dict), "calibration.")
        trained_on = _Fields(top.take("trained_on", dict), "trained_on.")
        evaluation = top.take("evaluation", dict)
        created_with = top.take("created_with", dict)
        manifest = cls(
            name=top.take("name", str),
            version=top.take("version", str),
            kind=top.take("kind", str),
            file=top.take("file", str),
            sha256=top.take("sha256", str),
            input=InputSpec(
                features=tuple(input_fields.take_list("features", str)),
                transform=input_fields.take("transform", str),
                log_floor=input_fields.take("log_floor", float),
                mean=tuple(input_fields.take_list("mean", float)),
                std=tuple(input_fields.take_list("std", float)),
                tensor=_tensor_from_dict(input_fields.take("tensor", dict), "input.tensor."),
            ),
            output=_tensor_from_dict(output_fields.take("tensor", dict), "output.tensor."),
            labels=tuple(top.take_list("labels", str)),
            threshold=top.take("threshold", float),
            calibration=Calibration(
                rows=calibration.take("rows", int),
                p50=calibration.take("p50", float),
                p99=calibration.take("p99", float),
                p99_9=calibration.take("p99_9", float),
                max=calibration.take("max", float),
            ),
            trained_on=TrainedOn(
                description=trained_on.take("description", str),
                generator=trained_on.take("generator", str),
                seed=trained_on.take("seed", int),
                rows=trained_on.take("rows", int),
            ),
            evaluation={str(k): _number(v, f"evaluation.{k}") for k, v in evaluation.items()},
            created_with={str(k): str(v) for k, v in created_with.items()},
        )
        for fields_ in (top, input_fields, output_fields, calibration, trained_on):
            fields_.refuse_unknown()
        return manifest

    @classmethod
    def from_json(cls, text: str, *, source: Path | str = "<manifest>") -> Manifest:
        """Parse manifest JSON; raises :class:`ManifestError` naming ``source`` and the problem."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ManifestError(source, f"not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise ManifestError(source, "a manifest must be a JSON object")
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ManifestError(source, str(error)) from error


class _Fields:
    """Typed access to one JSON object's keys, remembering which were used."""

    def __init__(self, data: Mapping[str, Any], prefix: str) -> None:
        self.data = data
        self.prefix = prefix
        self.used: set[str] = set()

    def take(self, key: str, kind: type) -> Any:
        self.used.add(key)
        if key not in self.data:
            raise ValueError(f"{self.prefix}{key} is missing")
        value = self.data[key]
        if kind is float:
            return _number(value, self.prefix + key)
        # bool is an int in Python, but a JSON true is not a count
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{self.prefix}{key} must be {kind.__name__}, not {type(value).__name__}")
        return value

    def take_list(self, key: str, kind: type) -> list[Any]:
        values = self.take(key, list)
        if kind is float:
            return [_number(v, f"{self.prefix}{key}[{i}]") for i, v in enumerate(values)]
        for i, value in enumerate(values):
            if not isinstance(value, kind):
                raise ValueError(f"{self.prefix}{key}[{i}] must be {kind.__name__}")
        return values

    def refuse_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ValueError("unknown keys: " + ", ".join(self.prefix + key for key in unknown))


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number, not {type(value).__name__}")
    return float(value)


def _tensor_to_dict(tensor: TensorSpec) -> dict[str, Any]:
    return {
        "dtype": tensor.dtype,
        "shape": list(tensor.shape),
        "scale": tensor.scale,
        "zero_point": tensor.zero_point,
    }


def _tensor_from_dict(data: Mapping[str, Any], prefix: str) -> TensorSpec:
    fields_ = _Fields(data, prefix)
    shape = fields_.take("shape", list)
    if not all(d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape):
        raise ValueError(f"{prefix}shape must hold integers and null, not {shape}")
    tensor = TensorSpec(
        dtype=fields_.take("dtype", str),
        shape=tuple(shape),
        scale=fields_.take("scale", float),
        zero_point=fields_.take("zero_point", int),
    )
    fields_.refuse_unknown()
    return tensor


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("None" if d is None or d == -1 else str(d) for d in shape) + "]"


def log_features(features: np.ndarray, log_floor: float = LOG_FLOOR) -> np.ndarray:
    """Natural log of each feature value, floored at ``log_floor`` first (the manifest's ``"log"`` transform).

    Vibration amplitudes spread over decades and are skewed; their logs are close to normal, which
    suits standardisation and a squared-error score. NaN stays NaN. Returns float64 of the same shape.
    """
    return np.log(np.maximum(np.asarray(features, dtype=np.float64), log_floor))


def model_file_name(name: str, version: str) -> str:
    """The model file's name in a registry: ``<name>-<version>.tflite``."""
    return f"{name}-{version}.tflite"


def manifest_file_name(name: str, version: str) -> str:
    """The manifest's name in a registry: ``<name>-<version>.json``."""
    return f"{name}-{version}.json"


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a version string: ``"1.10.0"`` is newer than ``"1.9.2"``."""
    return tuple(int(part) for part in version.split("."))


def sha256_hex(content: bytes) -> str:
    """The sha256 of a model file's bytes, as 64 lowercase hex digits (what manifests store)."""
    return hashlib.sha256(content).hexdigest()


def find_manifests(directory: Path, name: str | None = None) -> list[Path]:
    """Manifest files in a registry directory, by name and then oldest to newest version.

    Only files named ``<name>-<version>.json`` count; ``name`` restricts to one model. A missing
    directory holds no manifests.
    """
    found: list[tuple[str, tuple[int, ...], Path]] = []
    if not Path(directory).is_dir():
        return []
    for path in Path(directory).iterdir():
        match = _MANIFEST_FILE.match(path.name)
        if match is None or (name is not None and match["name"] != name):
            continue
        found.append((match["name"], version_key(match["version"]), path))
    return [path for _, _, path in sorted(found)]


def read_manifest(path: Path) -> Manifest:
    """Read and validate one manifest file; its name must be ``<name>-<version>.json`` of its content.

    Raises :class:`ManifestError` for unreadable or invalid content, :class:`ModelMismatch` if the file
    name and the manifest's name or version disagree.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ModelNotFound(path, "no such manifest") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(path, f"cannot be read: {error}") from error
    manifest = Manifest.from_json(text, source=path)
    expected = manifest_file_name(manifest.name, manifest.version)
    if path.name != expected:
        raise ModelMismatch(
            path, f"holds the manifest of {manifest.name} {manifest.version}, which belongs in {expected}"
        )
    return manifest


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_model(directory: Path, manifest: Manifest, model_content: bytes) -> tuple[Path, Path]:
    """Store a model and its manifest in a registry directory; returns ``(model_path, manifest_path)``.

    The model is written first and the manifest last, each atomically, so a reader never finds a manifest
    whose model is half written. An existing version is replaced. Raises :class:`ValueError` if the bytes
    do not have the manifest's sha256.
    """
    digest = sha256_hex(model_content)
    if digest != manifest.sha256:
        raise ValueError(f"model bytes have sha256 {digest}, the manifest says {manifest.sha256}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / manifest.file
    manifest_path = directory / manifest_file_name(manifest.name, manifest.version)
    _write_atomically(model_path, model_content)
    _write_atomically(manifest_path, manifest.to_json().encode("utf-8"))
    event(
        log,
        logging.INFO,
        "model_written",
        model=manifest.name,
        version=manifest.version,
        sha256=digest[:12],
        size_bytes=len(model_content),
        file=model_path.name,
    )
    return model_path, manifest_path


def _select_manifest(directory: Path, name: str, version: str | None) -> Path:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"model name {name!r} must match {NAME_PATTERN.pattern}")
    candidates = find_manifests(directory, name)
    if version is None:
        if not candidates:
            raise ModelNotFound(directory, f"no manifest for model {name!r}")
        return candidates[-1]
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"version {version!r} must be numbers separated by dots, e.g. 1.0.0")
    path = Path(directory) / manifest_file_name(name, version)
    if not path.is_file():
        versions = [p.name.removeprefix(f"{name}-").removesuffix(".json") for p in candidates]
        raise ModelNotFound(
            directory, f"no manifest for model {name!r} version {version} (found: {versions})"
        )
    return path


def load_model(
    directory: Path,
    name: str,
    *,
    expected_features: Sequence[str],
    version: str | None = None,
    num_threads: int = 1,
    kind: str = ANOMALY_KIND,
) -> Any:
    """Load a model from a registry directory after checking it against its manifest and the caller.

    ``kind`` is the kind the caller needs: :data:`ANOMALY_KIND` returns an :class:`AnomalyModel`,
    :data:`CLASSIFIER_KIND` a :class:`FaultClassifier`; a manifest of another kind is refused.

    ``expected_features`` are the names of the features the caller computes, in the order of the columns
    it will pass to :meth:`AnomalyModel.score`. ``version=None`` takes the newest version (by number, so
    1.10.0 is newer than 1.9.0); if that one is broken, loading fails rather than falling back silently.
    ``num_threads`` is passed to the interpreter.

    The checks, in order: the manifest is valid; the model file's sha256 equals the manifest's; the
    manifest's feature names and order equal ``expected_features``; the model is an anomaly model; the
    interpreter's input and output tensors have the manifest's dtype, shape and quantization.

    Raises :class:`ModelNotFound`, :class:`ManifestError`, :class:`ModelMismatch`, and
    :class:`~plantwatch.models.interpreter.InterpreterUnavailable` if no TFLite runtime is installed.
    """
    directory = Path(directory)
    manifest_path = _select_manifest(directory, name, version)
    manifest = read_manifest(manifest_path)
    model_path = directory / manifest.file
    try:
        content = model_path.read_bytes()
    except FileNotFoundError as error:
        raise ModelMismatch(model_path, f"is missing, but {manifest_path.name} names it") from error
    digest = sha256_hex(content)
    if digest != manifest.sha256:
        raise ModelMismatch(model_path, f"sha256 is {digest} but {manifest_path.name} says {manifest.sha256}")
    expected = tuple(expected_features)
    if expected != manifest.input.features:
        raise ModelMismatch(
            model_path,
            f"feature names or order differ: {manifest_path.name} has {list(manifest.input.features)} "
            f"but the caller computes {list(expected)}",
        )
    try:
        factory = _MODEL_CLASSES[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} is not one of {list(KINDS)}") from None
    # the model class refuses a manifest of another kind, naming both
    model = factory(manifest, content, source=model_path, num_threads=num_threads)
    event(
        log,
        logging.INFO,
        "model_loaded",
        model=manifest.name,
        version=manifest.version,
        sha256=digest[:12],
        threshold=manifest.threshold,
    )
    return model


def _check_tensor(detail: Mapping[str, Any], spec: TensorSpec, role: str, source: Path | str) -> None:
    """Raise :class:`ModelMismatch` if an interpreter tensor differs from its manifest entry."""
    dtype = np.dtype(detail["dtype"])
    if dtype != np.dtype(spec.dtype):
        raise ModelMismatch(source, f"{role} tensor dtype is {dtype} but the manifest says {spec.dtype}")
    shape = [int(d) for d in detail.get("shape_signature", detail["shape"])]
    expected_shape = [-1 if d is None else d for d in spec.shape]
    if shape != expected_shape:
        raise ModelMismatch(
            source,
            f"{role} tensor shape is {_shape_text(shape)} but the manifest says {_shape_text(spec.shape)}",
        )
    parameters = detail.get("quantization_parameters", {})
    scales = np.asarray(parameters.get("scales", []), dtype=np.float64)
    zero_points = np.asarray(parameters.get("zero_points", []), dtype=np.int64)
    if scales.size != 1 or zero_points.size != 1:
        raise ModelMismatch(
            source,
            f"{role} tensor has {scales.size} quantization scales; the manifest describes one per tensor",
        )
    scale, zero_point = float(scales[0]), int(zero_points[0])
    if not math.isclose(scale, spec.scale, rel_tol=SCALE_REL_TOL):
        raise ModelMismatch(
            source, f"{role} tensor quantization scale is {scale!r} but the manifest says {spec.scale!r}"
        )
    if zero_point != spec.zero_point:
        raise ModelMismatch(
            source,
            f"{role} tensor quantization zero_point is {zero_point} but the manifest says {spec.zero_point}",
        )


class _Int8Model:
    """A full-integer int8 model checked against its manifest: pre-processing, quantization, one batched
    invocation per call, dequantized output. One instance may be shared between threads: invocations are
    serialised, because a TFLite interpreter is not thread-safe."""

    kind = ANOMALY_KIND
    role = "model"

    def __init__(
        self,
        manifest: Manifest,
        model_content: bytes,
        *,
        source: Path | str = "<model>",
        num_threads: int = 1,
    ) -> None:
        if manifest.kind != self.kind:
            raise ModelMismatch(source, f"kind is {manifest.kind!r}, not {self.kind!r}")
        self._manifest = manifest
        self._interpreter: TFLiteInterpreter = make_interpreter(model_content, num_threads=num_threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelMismatch(
                source,
                f"has {len(inputs)} input and {len(outputs)} output tensors; {self.role} has one of each",
            )
        _check_tensor(inputs[0], manifest.input.tensor, "input", source)
        _check_tensor(outputs[0], manifest.output, "output", source)
        self._input_index = int(inputs[0]["index"])
        self._output_index = int(outputs[0]["index"])
        self._rows = int(inputs[0]["shape"][0])
        self._lock = threading.Lock()
        self._mean = np.asarray(manifest.input.mean, dtype=np.float64)
        self._std = np.asarray(manifest.input.std, dtype=np.float64)
        self._input_scale = manifest.input.tensor.scale
        self._input_zero_point = manifest.input.tensor.zero_point
        self._output_scale = manifest.output.scale
        self._output_zero_point = manifest.output.zero_point

    @property
    def manifest(self) -> Manifest:
        """The manifest this model was checked against."""
        return self._manifest

    @property
    def threshold(self) -> float:
        """The manifest's threshold (an anomaly score, or a classifier's least confidence)."""
        return self._manifest.threshold

    def standardise(self, features: np.ndarray) -> np.ndarray:
        """The manifest's pre-processing: ``(ln(max(x, log_floor)) - mean) / std`` per column.

        ``features`` has shape ``(n, k)``, columns in the manifest's feature order, each in its own unit.
        Returns float64 ``(n, k)`` in standard deviations of the training set. Raises
        :class:`ValueError` for any other shape.
        """
        x = np.asarray(features, dtype=np.float64)
        k = len(self._manifest.input.features)
        if x.ndim != 2 or x.shape[1] != k:
            raise ValueError(
                f"features must have shape (n, {k}) with columns {list(self._manifest.input.features)}, "
                f"not {x.shape}"
            )
        return (log_features(x, self._manifest.input.log_floor) - self._mean) / self._std

    def _run(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quantize standardised rows ``z``, invoke once, return (dequantized output, finite-row mask).

        Non-finite rows are run as zeros and flagged in the mask. The input tensor is resized, and tensors
        re-allocated, only when the row count differs from the previous call.
        """
        rows = z.shape[0]
        finite = np.isfinite(z).all(axis=1)
        all_finite = bool(finite.all())
        codes = (z if all_finite else np.where(finite[:, None], z, 0.0)) / self._input_scale
        codes += self._input_zero_point
        np.rint(codes, out=codes)
        np.clip(codes, _INT8_MIN, _INT8_MAX, out=codes)
        quantized = codes.astype(np.int8)
        with self._lock:
            if rows != self._rows:
                self._interpreter.resize_tensor_input(self._input_index, quantized.shape, strict=True)
                self._interpreter.allocate_tensors()
                self._rows = rows
            self._interpreter.set_tensor(self._input_index, quantized)
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output_index)
        return (output.astype(np.float64) - self._output_zero_point) * self._output_scale, finite


class AnomalyModel(_Int8Model):
    """An int8 autoencoder checked against its manifest, scoring raw feature rows in batches.

    Normally made by :func:`load_model`, which also checks the file's hash and the caller's features;
    constructing one directly checks only the tensors (the build uses this to calibrate a model before
    its manifest is final). ``source`` names the model in error messages.
    """

    kind = ANOMALY_KIND
    role = "an autoencoder"

    def score(self, features: np.ndarray) -> np.ndarray:
        """Anomaly score of each row: mean squared reconstruction error in standardised units.

        ``features`` has shape ``(n, k)`` of raw feature values (see :meth:`standardise`). The rows are
        standardised, quantized with the input tensor's scale and zero point (rounded, clipped to int8),
        run through the model in one invocation, and the dequantized reconstruction ``r`` is compared
        with the standardised input ``z``: ``score = mean_j (r_j - z_j)**2``. ``z`` is taken before
        clipping, so a value beyond the int8 range the model was calibrated on adds its full distance to
        the score instead of being hidden by saturation.

        Returns float64 scores of shape ``(n,)``; a row with a non-finite feature scores NaN (it is not
        anomalous or healthy, it is unknown).
        """
        z = self.standardise(features)
        if z.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        reconstruction, finite = self._run(z)
        error = reconstruction - z
        scores = np.einsum("ij,ij->i", error, error) / z.shape[1]
        scores[~finite] = np.nan
        return scores


class FaultClassifier(_Int8Model):
    """An int8 fault classifier checked against its manifest: class probabilities of raw feature rows.

    ``manifest.labels`` names the output columns; ``manifest.threshold`` is the least probability at which
    a fault is named (below it the failure mode is ``unknown``).
    """

    kind = CLASSIFIER_KIND
    role = "a classifier"

    @property
    def labels(self) -> tuple[str, ...]:
        """The class of each output column."""
        return self._manifest.labels

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, len(labels))`` (the int8 softmax output, dequantized); a row
        with a non-finite feature gets NaN."""
        z = self.standardise(features)
        if z.shape[0] == 0:
            return np.empty((0, len(self.labels)), dtype=np.float64)
        probabilities, finite = self._run(z)
        probabilities[~finite] = np.nan
        return probabilities

    def classify(self, features: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The most probable label of each row and its probability (``unknown``/NaN for a bad row)."""
        probabilities = self.probabilities(features)
        if probabilities.shape[0] == 0:
            return [], np.empty(0)
        safe = np.nan_to_num(probabilities, nan=-1.0)
        best = np.argmax(safe, axis=1)
        confidence = probabilities[np.arange(best.size), best]
        labels = [
            self.labels[i] if np.isfinite(c) else "unknown" for i, c in zip(best, confidence, strict=True)
        ]
        return labels, confidence


_MODEL_CLASSES: dict[str, type[_Int8Model]] = {cls.kind: cls for cls in (AnomalyModel, FaultClassifier)}
