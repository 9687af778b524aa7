"""The one TFLite import: an interpreter from ai-edge-litert, else from tflite_runtime.

Every part of plantwatch that runs a model gets its interpreter from :func:`make_interpreter`, so which
runtime is installed is decided here and nowhere else. TensorFlow itself is never imported at run time.
Models are normally loaded through :func:`plantwatch.models.registry.load_model`, which checks the file's
hash and tensors against its manifest before anything runs; use this module directly only for that::

    interpreter = make_interpreter(Path("anomaly-ae-1.0.0.tflite").read_bytes())
    interpreter.get_input_details()[0]["dtype"]  # numpy.int8
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from plantwatch.log import event

log = logging.getLogger(__name__)

# Tried in this order: ai-edge-litert is the maintained runtime (and the one that works with numpy 2);
# tflite_runtime is the older wheel still found on some gateway images.
BACKENDS: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


class InterpreterUnavailable(ImportError):
    """No TFLite interpreter can be imported; ``str()`` says what was tried and how to install one."""


class TFLiteInterpreter(Protocol):
    """The part of the TFLite interpreter API that plantwatch uses (same in both runtimes)."""

    def allocate_tensors(self) -> None: ...

    def get_input_details(self) -> list[dict[str, Any]]: ...

    def get_output_details(self) -> list[dict[str, Any]]: ...

    def resize_tensor_input(
        self, input_index: int, tensor_size: Sequence[int], strict: bool = ...
    ) -> None: ...

    def set_tensor(self, tensor_index: int, value: np.ndarray) -> None: ...

    def invoke(self) -> None: ...

    def get_tensor(self, tensor_index: int) -> np.ndarray: ...


_interpreter_class: Callable[..., TFLiteInterpreter] | None = None
_backend: str | None = None


def _load_interpreter_class() -> Callable[..., TFLiteInterpreter]:
    global _interpreter_class, _backend
    if _interpreter_class is not None:
        return _interpreter_class
    failures: list[str] = []
    for module_name, distribution in BACKENDS:
        try:
            module = __import__(module_name, fromlist=["Interpreter"])
        except ImportError as error:
            failures.append(f"{module_name}: {error}")
            continue
        _interpreter_class = module.Interpreter
        _backend = _distribution_version(distribution)
        event(log, logging.DEBUG, "interpreter_backend", backend=_backend)
        return module.Interpreter
    raise InterpreterUnavailable(
        "no TFLite interpreter is installed (tried "
        + "; ".join(failures)
        + "); install one with: pip install ai-edge-litert"
    )


def _distribution_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{distribution} {version(distribution)}"
    except PackageNotFoundError:
        return distribution


def interpreter_backend() -> str:
    """Name and version of the runtime :func:`make_interpreter` uses, e.g. ``"ai-edge-litert 2.3.0"``.

    Raises :class:`InterpreterUnavailable` if there is none.
    """
    _load_interpreter_class()
    assert _backend is not None
    return _backend


def make_interpreter(model_content: bytes, *, num_threads: int = 1) -> TFLiteInterpreter:
    """Create a TFLite interpreter for a model held in memory, tensors allocated.

    ``model_content`` is the ``.tflite`` file's bytes (the caller has already checked their hash, so the
    bytes that were verified are the bytes that run). ``num_threads`` is the number of CPU threads the
    interpreter may use; one is right for the small models here, where threading costs more than it saves
    and the agent runs many channels side by side.

    Raises :class:`InterpreterUnavailable` if neither ai-edge-litert nor tflite_runtime is installed, and
    :class:`ValueError` (from the runtime) if the bytes are not a valid model.
    """
    if num_threads < 1:
        raise ValueError(f"num_threads must be at least 1, not {num_threads}")
    interpreter_class = _load_interpreter_class()
    interpreter = interpreter_class(model_content=bytes(model_content), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter
