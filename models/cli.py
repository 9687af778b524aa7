"""``plantwatch-models``: build, list and verify the model registry (a thin shell over the library).

Exit status: 0 success, 1 a model failed verification (or there was none to verify), 2 a usage or
environment problem (no such directory, TensorFlow or the TFLite runtime missing).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from plantwatch.log import setup_logging
from plantwatch.models.interpreter import InterpreterUnavailable
from plantwatch.models.metrics import format_table
from plantwatch.models.registry import (
    DEFAULT_REGISTRY,
    ModelError,
    find_manifests,
    load_model,
    manifest_file_name,
    read_manifest,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_MODEL_FILE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)-(?P<version>[0-9]+(?:\.[0-9]+)*)\.tflite$")


@dataclass(frozen=True)
class RegistryEntry:
    """One model in a registry as ``list`` and ``verify`` report it."""

    name: str
    version: str
    sha256: str
    size_bytes: int | None
    verified: bool
    problem: str


def inspect_registry(directory: Path) -> list[RegistryEntry]:
    """Check every model in ``directory`` against its manifest, including model files without one.

    Raises :class:`~plantwatch.models.interpreter.InterpreterUnavailable` if no TFLite runtime is
    installed (then nothing can be verified).
    """
    entries: list[RegistryEntry] = []
    seen_models: set[str] = set()
    for manifest_path in find_manifests(directory):
        name, version = manifest_path.stem.rsplit("-", 1)
        model_path = directory / f"{name}-{version}.tflite"
        seen_models.add(model_path.name)
        size = model_path.stat().st_size if model_path.is_file() else None
        sha256, problem = "", ""
        try:
            manifest = read_manifest(manifest_path)
            sha256 = manifest.sha256
            load_model(
                directory, name, expected_features=manifest.features, version=version, kind=manifest.kind
            )
        except ModelError as error:
            problem = str(error)
        entries.append(RegistryEntry(name, version, sha256, size, not problem, problem))
    for model_path in sorted(directory.glob("*.tflite")) if directory.is_dir() else []:
        match = _MODEL_FILE.match(model_path.name)
        if model_path.name in seen_models or match is None:
            continue
        expected = manifest_file_name(match["name"], match["version"])
        problem = f"{model_path}: has no manifest ({expected})"
        entries.append(
            RegistryEntry(match["name"], match["version"], "", model_path.stat().st_size, False, problem)
        )
    return entries


def _table(entries: Sequence[RegistryEntry]) -> str:
    rows = [
        [
            entry.name,
            entry.version,
            entry.sha256[:12] or "-",
            "-" if entry.size_bytes is None else str(entry.size_bytes),
            "yes" if entry.verified else "no",
        ]
        for entry in entries
    ]
    return format_table(["name", "version", "sha256", "size_bytes", "verified"], rows)


def _registry_or_none(directory: Path) -> Path | None:
    if directory.is_dir():
        return directory
    print(f"plantwatch-models: no registry directory at {directory}", file=sys.stderr)
    return None


def _command_build(arguments: argparse.Namespace) -> int:
    from plantwatch.models.build import TrainingUnavailable, build_default_models

    out_dir = Path(arguments.out)
    print(f"building the default models into {out_dir} (seed {arguments.seed})", file=sys.stderr)
    try:
        manifests = build_default_models(out_dir, seed=arguments.seed)
    except TrainingUnavailable as error:
        print(f"plantwatch-models: {error}", file=sys.stderr)
        return EXIT_USAGE
    entries = [
        entry
        for entry in inspect_registry(out_dir)
        if (entry.name, entry.version) in {(manifest.name, manifest.version) for manifest in manifests}
    ]
    print(_table(entries))
    for manifest in manifests:
        if manifest.kind == "fault-classifier":
            print(
                f"{manifest.name} {manifest.version}: {len(manifest.labels)} classes, held-out int8 accuracy "
                f"{manifest.evaluation.get('held_out_accuracy_int8', float('nan')):.4f}"
            )
        else:
            print(
                f"{manifest.name} {manifest.version}: threshold {manifest.threshold:.4g} "
                f"(calibration p99.9 {manifest.calibration.p99_9:.4g} over {manifest.calibration.rows} rows)"
            )
    return EXIT_OK if all(entry.verified for entry in entries) else EXIT_FAILED


def _command_list(arguments: argparse.Namespace) -> int:
    directory = _registry_or_none(Path(arguments.registry))
    if directory is None:
        return EXIT_USAGE
    try:
        entries = inspect_registry(directory)
    except InterpreterUnavailable as error:
        print(f"plantwatch-models: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.json:
        print(json.dumps([asdict(entry) for entry in entries]))
    else:
        print(_table(entries))
        for entry in entries:
            if entry.problem:
                print(f"  {entry.name} {entry.version}: {entry.problem}")
    return EXIT_OK


def _command_verify(arguments: argparse.Namespace) -> int:
    directory = _registry_or_none(Path(arguments.registry))
    if directory is None:
        return EXIT_USAGE
    try:
        entries = inspect_registry(directory)
    except InterpreterUnavailable as error:
        print(f"plantwatch-models: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not entries:
        print(f"no models in {directory}", file=sys.stderr)
        return EXIT_FAILED
    for entry in entries:
        if entry.verified:
            print(f"ok        {entry.name} {entry.version} sha256={entry.sha256[:12]}")
        else:
            print(f"MISMATCH  {entry.name} {entry.version}: {entry.problem}")
    failed = sum(not entry.verified for entry in entries)
    print(f"{len(entries) - failed} verified, {failed} failed", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _command_evaluate(arguments: argparse.Namespace) -> int:
    from plantwatch.models import evaluate as evaluation
    from plantwatch.models.realdata import RealDataError

    registry = Path(arguments.registry)
    try:
        if arguments.layout == "cwru":
            train = arguments.train or arguments.folder
            test = arguments.test or arguments.folder
            if not train or not test:
                print("plantwatch-models: give FOLDER, or both --train and --test", file=sys.stderr)
                return EXIT_USAGE
            figures = evaluation.evaluate_cwru(
                Path(train),
                Path(test),
                train_loads=evaluation.parse_numbers(arguments.train_loads),
                test_loads=evaluation.parse_numbers(arguments.test_loads),
                train_sizes=evaluation.parse_numbers(arguments.train_sizes),
                test_sizes=evaluation.parse_numbers(arguments.test_sizes),
                window_samples=arguments.window,
                registry=registry,
                train_classifier_here=not arguments.no_train,
                seed=arguments.seed,
                progress=evaluation.log_progress,
            )
            print(evaluation.cwru_report(figures))
        else:
            if not arguments.folder:
                print("plantwatch-models: run-to-failure needs FOLDER", file=sys.stderr)
                return EXIT_USAGE
            folder = Path(arguments.folder)
            rpm = arguments.rpm or evaluation.pronostia_rpm(folder)
            if rpm is None:
                print("plantwatch-models: give --rpm (the folder is not named BearingC_n)", file=sys.stderr)
                return EXIT_USAGE
            from plantwatch.simulators.machine import BEARINGS

            name = arguments.bearing or "PRONOSTIA"
            if name not in BEARINGS:
                print(
                    f"plantwatch-models: unknown bearing {name!r}; known: {', '.join(BEARINGS)}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            figures = evaluation.evaluate_run_to_failure(
                folder,
                rpm=rpm,
                orders=BEARINGS[name].defect_orders(),
                channel=arguments.channel,
                commissioning_fraction=arguments.commissioning_fraction,
                registry=registry,
                progress=evaluation.log_progress,
            )
            print(evaluation.run_to_failure_report(figures))
    except (RealDataError, ValueError, ModelError) as error:
        print(f"plantwatch-models: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ImportError as error:
        print(f"plantwatch-models: {error} (or use --no-train)", file=sys.stderr)
        return EXIT_USAGE
    if arguments.json:
        print(json.dumps(figures, separators=(",", ":"), default=float))
    return EXIT_OK


def _help(text: str) -> str:
    return textwrap.dedent(text).strip()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``plantwatch-models`` (one subparser a command)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="plantwatch-models",
        description="Build, list and verify plantwatch's int8 TFLite models and their manifests.",
        epilog=_help(
            """
            Examples:
              plantwatch-models list
              plantwatch-models verify --registry /opt/plantwatch/models
              plantwatch-models build --seed 7
            """
        ),
        formatter_class=formatter,
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="level of the log lines on standard error (default INFO for build, WARNING otherwise)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="train the default models from simulated healthy machines (needs TensorFlow)",
        description=_help(
            """
            Train, quantize to int8, calibrate and register the default models (the anomaly
            autoencoder anomaly-ae 1.0.0) from simulated healthy machines. The same seed gives the same
            files. Needs the training extra: pip install 'plantwatch[train]'.
            """
        ),
        epilog="Example:\n  plantwatch-models build --out models/registry --seed 7",
        formatter_class=formatter,
    )
    build.add_argument(
        "--out", default=str(DEFAULT_REGISTRY), metavar="DIR", help="registry directory to write"
    )
    build.add_argument(
        "--seed", type=int, default=7, metavar="N", help="dataset and training seed (default 7)"
    )
    build.set_defaults(run=_command_build)

    listing = commands.add_parser(
        "list",
        help="list the models in a registry and whether each verifies",
        description=_help(
            """
            List the models in a registry: name, version, sha256 prefix, file size in bytes, and
            whether the file verifies against its manifest (hash, tensor dtype, shape, quantization).
            """
        ),
        epilog="Example:\n  plantwatch-models list --registry models/registry --json",
        formatter_class=formatter,
    )
    listing.add_argument(
        "--registry", default=str(DEFAULT_REGISTRY), metavar="DIR", help="registry directory"
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array instead of a table")
    listing.set_defaults(run=_command_list)

    verify = commands.add_parser(
        "verify",
        help="check every model against its manifest; exit 1 on any mismatch",
        description=_help(
            """
            Check every model in a registry against its manifest (sha256, tensor dtype, shape and
            quantization) and report model files without a manifest. Exits 1 if any check fails or
            the registry is empty, naming each mismatch.
            """
        ),
        epilog="Example:\n  plantwatch-models verify --registry models/registry",
        formatter_class=formatter,
    )
    verify.add_argument("--registry", default=str(DEFAULT_REGISTRY), metavar="DIR", help="registry directory")
    verify.set_defaults(run=_command_verify)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate the int8 models on labelled real data (CWRU or run-to-failure layout)",
        description=_help(
            """
            Run the agent's int8 path (features, the asset's baseline, both models, the decision) over
            labelled real data and print tables; --json ends with one JSON line of the figures.

            cwru DIR: a folder with manifest.csv and .mat files. The asset's normal is learned from the
            first half of the normal record(s) among the training loads; the second half is the healthy
            side of the test. A classifier is trained on the training selection (needs TensorFlow; skip
            with --no-train) and the shipped, simulator-trained classifier is judged as well.

            run-to-failure DIR: a folder of acc_NNNNN.csv snapshots (FEMTO/PRONOSTIA). The snapshots are
            replayed in time order through the agent's analyser, commissioning on the start of life.
            """
        ),
        epilog=_help(
            """
            Examples:
              plantwatch-models evaluate cwru data/cwru --train-loads 0 --test-loads 1,2,3
              plantwatch-models evaluate cwru data/cwru --train-loads 0,1,2,3 --test-loads 0,1,2,3 \
                  --train-sizes 0.007,0.021 --test-sizes 0.014
              plantwatch-models evaluate cwru --train A/cwru --train-loads 0,1 --test B/cwru --test-loads 2,3
              plantwatch-models evaluate run-to-failure data/femto/Learning_set/Bearing3_1 --json
            """
        ),
        formatter_class=formatter,
    )
    evaluate.add_argument("layout", choices=["cwru", "run-to-failure"], help="the folder's layout")
    evaluate.add_argument("folder", nargs="?", help="the data folder (for cwru: both training and test)")
    evaluate.add_argument("--train", metavar="DIR", help="cwru: training folder (default: FOLDER)")
    evaluate.add_argument("--test", metavar="DIR", help="cwru: test folder (default: FOLDER)")
    evaluate.add_argument("--train-loads", metavar="LIST", help="cwru: loads (hp) to train on, e.g. 0,1")
    evaluate.add_argument("--test-loads", metavar="LIST", help="cwru: loads (hp) to test on, e.g. 2,3")
    evaluate.add_argument("--train-sizes", metavar="LIST", help="cwru: fault diameters (in) to train on")
    evaluate.add_argument("--test-sizes", metavar="LIST", help="cwru: fault diameters (in) to test on")
    evaluate.add_argument("--window", type=int, default=4096, metavar="N", help="cwru: window samples (4096)")
    evaluate.add_argument("--no-train", action="store_true", help="cwru: judge only the shipped classifier")
    evaluate.add_argument("--rpm", type=float, help="run-to-failure: shaft speed (default: from BearingC_n)")
    evaluate.add_argument(
        "--bearing",
        default=None,
        help="run-to-failure: bearing name from the simulator's catalogue (default PRONOSTIA)",
    )
    evaluate.add_argument(
        "--channel", default="horizontal", choices=["horizontal", "vertical"], help="run-to-failure: channel"
    )
    evaluate.add_argument(
        "--commissioning-fraction",
        type=float,
        default=0.1,
        metavar="F",
        help="run-to-failure: share of life the asset learns its normal from (default 0.1)",
    )
    evaluate.add_argument(
        "--registry", default=str(DEFAULT_REGISTRY), metavar="DIR", help="registry directory"
    )
    evaluate.add_argument("--seed", type=int, default=7, help="cwru: seed of the classifier trained here")
    evaluate.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    evaluate.set_defaults(run=_command_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``plantwatch-models`` with ``argv`` (default: the command line); returns the exit status."""
    arguments = build_parser().parse_args(argv)
    # build's log lines are its progress; for list and verify they would repeat what the output says
    setup_logging(
        arguments.log_level or ("INFO" if arguments.command in ("build", "evaluate") else "WARNING")
    )
    return int(arguments.run(arguments))


if __name__ == "__main__":
    raise SystemExit(main())
