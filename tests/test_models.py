"""Model registry, verified loading, int8 scoring, training and the ``plantwatch-models`` CLI.

The mismatch and scoring tests run without TensorFlow, on a tiny fixture model committed in
``tests/data/models/`` (trained once on :func:`synthetic_healthy_features`). To rebuild it after a
change to the build (needs ``pip install 'plantwatch[train]'``)::

    python tests/test_models.py --write-fixture

The training tests need TensorFlow and are skipped without it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plantwatch.models import cli, interpreter
from plantwatch.models.build import TrainingUnavailable, calibrate, split_rows, train_anomaly_model
from plantwatch.models.registry import (
    AnomalyModel,
    Manifest,
    ManifestError,
    ModelMismatch,
    ModelNotFound,
    TensorSpec,
    _check_tensor,
    load_model,
    read_manifest,
    sha256_hex,
    write_model,
)

FEATURES = ("rms_g", "peak_g", "crest_factor", "kurtosis", "band_rms_2k_8k_g")
FIXTURE_DIR = Path(__file__).parent / "data" / "models"
FIXTURE_NAME = "fixture-ae"
FIXTURE_VERSION = "1.0.0"
FIXTURE_ROWS = 3000
FIXTURE_DATA_SEED = 1
FIXTURE_EPOCHS = 40


def synthetic_healthy_features(rows: int, *, seed: int) -> np.ndarray:
    """Healthy-looking feature rows ``(rows, 5)`` in :data:`FEATURES` order, with their physics.

    Two hidden causes vary between windows: amplitude (machine size and load, log-normal, ~35 %) and
    impulsiveness (~8 %). rms and the 2-8 kHz band follow amplitude, crest factor and kurtosis follow
    impulsiveness, and peak is exactly crest factor x rms, each with a few percent of noise. A fault
    that moves one feature alone breaks these relations.
    """
    rng = np.random.default_rng(seed)
    amplitude = rng.normal(0.0, 0.35, rows)
    impulsiveness = rng.normal(0.0, 0.08, rows)
    rms_g = 0.05 * np.exp(amplitude + rng.normal(0.0, 0.03, rows))
    crest_factor = 3.0 * np.exp(impulsiveness + rng.normal(0.0, 0.03, rows))
    peak_g = rms_g * crest_factor
    kurtosis = 3.0 * np.exp(2.0 * impulsiveness + rng.normal(0.0, 0.03, rows))
    band_rms_2k_8k_g = 0.02 * np.exp(amplitude + rng.normal(0.0, 0.05, rows))
    return np.column_stack([rms_g, peak_g, crest_factor, kurtosis, band_rms_2k_8k_g])


def shift_feature(features: np.ndarray, manifest: Manifest, column: int, sd: float) -> np.ndarray:
    """Raise one feature by ``sd`` standard deviations in the model's (log) space."""
    shifted = np.array(features, dtype=np.float64)
    shifted[:, column] *= np.exp(sd * manifest.input.std[column])
    return shifted


def copy_fixture(tmp_path: Path) -> Path:
    directory = tmp_path / "registry"
    shutil.copytree(FIXTURE_DIR, directory)
    return directory


def edit_manifest(directory: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = directory / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def load_fixture(directory: Path = FIXTURE_DIR, **options) -> AnomalyModel:  # type: ignore[no-untyped-def]
    return load_model(directory, FIXTURE_NAME, expected_features=FEATURES, **options)


# --- manifests ---------------------------------------------------------------------------------------


def test_manifest_round_trips_through_json_and_disk(tmp_path: Path) -> None:
    manifest_path = FIXTURE_DIR / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json"
    manifest = read_manifest(manifest_path)
    assert Manifest.from_json(manifest.to_json()) == manifest
    content = (FIXTURE_DIR / manifest.file).read_bytes()
    _, written = write_model(tmp_path, manifest, content)
    assert read_manifest(written) == manifest
    # the on-disk form is stable: rewriting a manifest reproduces the committed bytes
    assert written.read_text() == manifest_path.read_text()


def test_manifest_records_what_the_agent_needs() -> None:
    manifest = read_manifest(FIXTURE_DIR / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json")
    assert manifest.kind == "anomaly-autoencoder"
    assert manifest.features == FEATURES
    assert manifest.input.transform == "log"
    assert manifest.input.tensor == dataclasses.replace(manifest.input.tensor, dtype="int8", shape=(None, 5))
    assert manifest.labels == ()
    c = manifest.calibration
    assert 0 < c.p50 <= c.p99 <= c.p99_9 <= c.max < manifest.threshold
    assert manifest.threshold == pytest.approx(1.5 * c.p99_9)
    assert manifest.trained_on.seed == 7 and manifest.trained_on.rows == FIXTURE_ROWS
    assert "tensorflow" in manifest.created_with


def test_manifest_refuses_unknown_and_missing_keys() -> None:
    data = json.loads((FIXTURE_DIR / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json").read_text())
    with pytest.raises(ManifestError, match=r"unknown keys: input\.scale"):
        Manifest.from_json(json.dumps({**data, "input": {**data["input"], "scale": 1.0}}), source="m.json")
    del data["threshold"]
    with pytest.raises(ManifestError, match=r"^m\.json: threshold is missing$"):
        Manifest.from_json(json.dumps(data), source="m.json")


def test_manifest_refuses_a_newer_schema() -> None:
    data = json.loads((FIXTURE_DIR / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json").read_text())
    data["schema"] = "plantwatch.model-manifest/2"
    with pytest.raises(ManifestError, match="model-manifest/2"):
        Manifest.from_json(json.dumps(data))


# --- verified loading --------------------------------------------------------------------------------


def test_fixture_model_loads_and_verifies() -> None:
    model = load_fixture()
    assert model.manifest.version == FIXTURE_VERSION
    assert model.manifest.sha256 == sha256_hex((FIXTURE_DIR / model.manifest.file).read_bytes())


def test_model_file_whose_hash_differs_from_manifest_is_refused(tmp_path: Path) -> None:
    directory = copy_fixture(tmp_path)
    model_path = directory / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.tflite"
    content = bytearray(model_path.read_bytes())
    content[-1] ^= 0x01
    model_path.write_bytes(bytes(content))
    with pytest.raises(ModelMismatch) as caught:
        load_fixture(directory)
    message = str(caught.value)
    assert model_path.name in message
    assert "sha256 is " + sha256_hex(bytes(content)) in message
    assert caught.value.file == model_path


def test_features_in_another_order_are_refused(tmp_path: Path) -> None:
    swapped = (FEATURES[1], FEATURES[0], *FEATURES[2:])
    with pytest.raises(ModelMismatch, match="feature names or order differ") as caught:
        load_model(FIXTURE_DIR, FIXTURE_NAME, expected_features=swapped)
    assert "['peak_g', 'rms_g'," in str(caught.value)
    with pytest.raises(ModelMismatch, match="feature names or order differ"):
        load_model(FIXTURE_DIR, FIXTURE_NAME, expected_features=FEATURES[:4])


@pytest.mark.parametrize(
    ("section", "key", "change", "expected"),
    [
        ("input", "scale", lambda v: v * 1.01, "input tensor quantization scale is"),
        ("input", "zero_point", lambda v: v + 1, "input tensor quantization zero_point is"),
        ("output", "scale", lambda v: v / 2, "output tensor quantization scale is"),
        ("output", "zero_point", lambda v: v - 3, "output tensor quantization zero_point is"),
    ],
)
def test_manifest_quantization_that_disagrees_with_tensor_is_refused(
    tmp_path: Path,
    section: str,
    key: str,
    change,
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    directory = copy_fixture(tmp_path)

    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data[section]["tensor"][key] = change(data[section]["tensor"][key])

    edit_manifest(directory, edit)
    with pytest.raises(ModelMismatch, match=expected) as caught:
        load_fixture(directory)
    assert f"{FIXTURE_NAME}-{FIXTURE_VERSION}.tflite" in str(caught.value)


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (
            {"dtype": np.uint8, "shape_signature": [-1, 5]},
            "input tensor dtype is uint8 but the manifest says int8",
        ),
        ({"dtype": np.float32, "shape_signature": [-1, 5]}, "dtype is float32"),
        (
            {"dtype": np.int8, "shape_signature": [1, 5]},
            r"shape is \[1, 5\] but the manifest says \[None, 5\]",
        ),
        ({"dtype": np.int8, "shape_signature": [-1, 4]}, r"shape is \[None, 4\]"),
    ],
)
def test_tensor_dtype_or_shape_that_disagrees_with_manifest_is_refused(detail: dict, expected: str) -> None:  # type: ignore[type-arg]
    spec = TensorSpec(dtype="int8", shape=(None, 5), scale=0.03, zero_point=-10)
    full = {"shape": [1, 5], "quantization_parameters": {"scales": [0.03], "zero_points": [-10]}, **detail}
    with pytest.raises(ModelMismatch, match=expected):
        _check_tensor(full, spec, "input", "m.tflite")


def test_per_channel_quantization_is_refused() -> None:
    spec = TensorSpec(dtype="int8", shape=(None, 5), scale=0.03, zero_point=-10)
    detail = {
        "dtype": np.int8,
        "shape": [1, 5],
        "shape_signature": [-1, 5],
        "quantization_parameters": {"scales": [0.03, 0.04], "zero_points": [-10, -10]},
    }
    with pytest.raises(ModelMismatch, match="2 quantization scales"):
        _check_tensor(detail, spec, "output", "m.tflite")


def test_newest_version_is_chosen_by_number_not_text(tmp_path: Path) -> None:
    source = FIXTURE_DIR / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json"
    manifest = read_manifest(source)
    content = (FIXTURE_DIR / manifest.file).read_bytes()
    for version in ("1.9.0", "1.10.0", "1.2.0"):
        write_model(
            tmp_path,
            dataclasses.replace(manifest, version=version, file=f"{FIXTURE_NAME}-{version}.tflite"),
            content,
        )
    assert load_fixture(tmp_path).manifest.version == "1.10.0"
    assert load_fixture(tmp_path, version="1.9.0").manifest.version == "1.9.0"
    with pytest.raises(
        ModelNotFound, match=r"version 3\.0\.0 \(found: \['1\.2\.0', '1\.9\.0', '1\.10\.0'\]\)"
    ):
        load_fixture(tmp_path, version="3.0.0")
    with pytest.raises(ModelNotFound, match="no manifest for model 'other-ae'"):
        load_model(tmp_path, "other-ae", expected_features=FEATURES)


def test_manifest_under_another_versions_name_is_refused(tmp_path: Path) -> None:
    directory = copy_fixture(tmp_path)
    (directory / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json").rename(directory / f"{FIXTURE_NAME}-2.0.0.json")
    with pytest.raises(ModelMismatch, match=f"belongs in {FIXTURE_NAME}-{FIXTURE_VERSION}.json"):
        load_fixture(directory)


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    directory = copy_fixture(tmp_path)
    (directory / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.tflite").unlink()
    with pytest.raises(ModelMismatch, match="is missing"):
        load_fixture(directory)


def test_without_a_tflite_runtime_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interpreter, "_interpreter_class", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(interpreter.InterpreterUnavailable, match="pip install ai-edge-litert"):
        interpreter.make_interpreter(b"")


# --- scoring -----------------------------------------------------------------------------------------


def test_score_of_a_batch_equals_scores_of_single_rows() -> None:
    model = load_fixture()
    rows = synthetic_healthy_features(300, seed=11)
    rows[::7] = shift_feature(rows[::7], model.manifest, column=0, sd=5.0)  # some anomalous rows too
    batch = model.score(rows)
    one_by_one = np.array([model.score(row[None, :])[0] for row in rows])
    assert batch.shape == (300,) and batch.dtype == np.float64
    np.testing.assert_array_equal(batch, one_by_one)
    # resizing back to the first batch size gives the same answer again
    np.testing.assert_array_equal(model.score(rows), batch)


def test_fixture_scores_unseen_healthy_rows_below_threshold_and_shifted_rows_above() -> None:
    model = load_fixture()
    healthy = synthetic_healthy_features(2000, seed=12345)  # not the training seed
    scores = model.score(healthy)
    assert np.mean(scores < model.threshold) >= 0.99
    for column, feature in enumerate(FEATURES):
        shifted = model.score(shift_feature(healthy, model.manifest, column, sd=4.0))
        assert np.mean(shifted > model.threshold) >= 0.99, feature


def test_score_follows_the_manifest_preprocessing() -> None:
    model = load_fixture()
    manifest = model.manifest
    # a row exactly at the training mean standardises to zeros
    at_mean = np.exp(np.array(manifest.input.mean))[None, :]
    np.testing.assert_allclose(model.standardise(at_mean), np.zeros((1, 5)), atol=1e-12)
    # a zero (dead sensor) is floored, not -inf: a finite, very large score
    dead = at_mean.copy()
    dead[0, 0] = 0.0
    assert np.isfinite(model.score(dead)[0]) and model.score(dead)[0] > 100 * model.threshold


def test_score_rejects_wrong_shape_and_marks_non_finite_rows_unknown() -> None:
    model = load_fixture()
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        model.score(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        model.score(np.ones(5))
    rows = synthetic_healthy_features(3, seed=5)
    rows[1, 2] = np.nan
    scores = model.score(rows)
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    assert model.score(np.empty((0, 5))).shape == (0,)


# --- training (pure parts and refusals run without TensorFlow) ---------------------------------------


def test_split_is_deterministic_and_disjoint() -> None:
    train, held_out = split_rows(1000, seed=7)
    again_train, again_held_out = split_rows(1000, seed=7)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(held_out, again_held_out)
    assert len(held_out) == 250 and not set(train) & set(held_out)
    assert not np.array_equal(split_rows(1000, seed=8)[1], held_out)


def test_calibration_quantiles_of_a_known_distribution() -> None:
    calibration = calibrate(np.r_[np.arange(1001.0), np.nan])
    assert (calibration.rows, calibration.p50, calibration.p99, calibration.p99_9, calibration.max) == (
        1001,
        500.0,
        990.0,
        999.0,
        1000.0,
    )


def test_training_refuses_unusable_rows(tmp_path: Path) -> None:
    rows = synthetic_healthy_features(1000, seed=3)
    options = {"name": "x", "version": "1.0.0", "out_dir": tmp_path, "trained_on": "test"}
    with pytest.raises(ValueError, match="at least 400 healthy rows"):
        train_anomaly_model(rows[:100], FEATURES, **options)
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        train_anomaly_model(rows, FEATURES[:4], **options)
    rows[5, 1] = np.inf
    with pytest.raises(ValueError, match="1 rows hold NaN or infinite"):
        train_anomaly_model(rows, FEATURES, **options)


def test_training_without_tensorflow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(TrainingUnavailable, match=r"pip install 'plantwatch\[train\]'"):
        train_anomaly_model(
            synthetic_healthy_features(1000, seed=3),
            FEATURES,
            name="x",
            version="1.0.0",
            out_dir=tmp_path,
            trained_on="test",
        )
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    pytest.importorskip("tensorflow")
    out_dir = tmp_path_factory.mktemp("trained")
    manifest = train_anomaly_model(
        synthetic_healthy_features(1600, seed=21),
        FEATURES,
        name="test-ae",
        version="0.1.0",
        out_dir=out_dir,
        seed=7,
        trained_on="Synthetic healthy rows for a test.",
        epochs=30,
    )
    return out_dir, manifest


def test_trained_model_is_small_int8_and_verifies(trained: tuple[Path, Manifest]) -> None:
    out_dir, manifest = trained
    assert (out_dir / manifest.file).stat().st_size <= 64 * 1024
    assert manifest.input.tensor.dtype == manifest.output.dtype == "int8"
    model = load_model(out_dir, "test-ae", expected_features=FEATURES)
    assert model.manifest == manifest
    assert manifest.evaluation["calibration_below_threshold"] >= 0.999


def test_trained_model_separates_healthy_rows_from_shifted_rows(trained: tuple[Path, Manifest]) -> None:
    out_dir, manifest = trained
    model = load_model(out_dir, "test-ae", expected_features=FEATURES)
    healthy = synthetic_healthy_features(2000, seed=777)
    assert np.mean(model.score(healthy) < manifest.threshold) >= 0.99
    for column, feature in enumerate(FEATURES):
        shifted = model.score(shift_feature(healthy, manifest, column, sd=4.0))
        assert np.mean(shifted > manifest.threshold) >= 0.95, feature


def test_same_seed_builds_the_same_file(trained: tuple[Path, Manifest], tmp_path: Path) -> None:
    _, manifest = trained
    again = train_anomaly_model(
        synthetic_healthy_features(1600, seed=21),
        FEATURES,
        name="test-ae",
        version="0.1.0",
        out_dir=tmp_path,
        seed=7,
        trained_on="Synthetic healthy rows for a test.",
        epochs=30,
    )
    assert again.sha256 == manifest.sha256
    assert again == manifest


# --- command line ------------------------------------------------------------------------------------


def subcommands() -> list[str]:
    parser = cli.build_parser()
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sorted(actions[0].choices)  # type: ignore[attr-defined]


def test_cli_has_the_commands_of_the_registry() -> None:
    assert subcommands() == ["build", "evaluate", "list", "verify"]


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in subcommands()])
def test_every_command_has_help_with_an_example(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "Example" in out and "plantwatch-models " in out.split("Example", 1)[1]


def test_console_script_help_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plantwatch.models.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "usage: plantwatch-models" in result.stdout


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    # setup_logging replaces the root handlers, which would take pytest's log capture away
    monkeypatch.setattr(cli, "setup_logging", lambda level: None)


@pytest.mark.usefixtures("quiet_cli")
def test_cli_verify_passes_the_fixture_and_names_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["verify", "--registry", str(FIXTURE_DIR)]) == 0
    assert f"ok        {FIXTURE_NAME} {FIXTURE_VERSION}" in capsys.readouterr().out

    directory = copy_fixture(tmp_path)
    edit_manifest(directory, lambda data: data["input"]["tensor"].update(zero_point=0))
    shutil.copy(directory / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.tflite", directory / "orphan-ae-1.0.0.tflite")
    assert cli.main(["verify", "--registry", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH  fixture-ae 1.0.0:" in out and "input tensor quantization zero_point is" in out
    assert "MISMATCH  orphan-ae 1.0.0:" in out and "has no manifest (orphan-ae-1.0.0.json)" in out


@pytest.mark.usefixtures("quiet_cli")
def test_cli_list_reports_size_hash_and_verification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = copy_fixture(tmp_path)
    model_path = directory / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.tflite"
    model_path.write_bytes(model_path.read_bytes() + b"\0")
    assert cli.main(["list", "--registry", str(directory), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    manifest = read_manifest(FIXTURE_DIR / f"{FIXTURE_NAME}-{FIXTURE_VERSION}.json")
    assert entry["sha256"] == manifest.sha256
    assert entry["size_bytes"] == (FIXTURE_DIR / manifest.file).stat().st_size + 1
    assert entry["verified"] is False and "sha256 is" in entry["problem"]

    assert cli.main(["list", "--registry", str(FIXTURE_DIR)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "version", "sha256", "size_bytes", "verified"]
    assert lines[1].split() == [
        FIXTURE_NAME,
        FIXTURE_VERSION,
        manifest.sha256[:12],
        str(entry["size_bytes"] - 1),
        "yes",
    ]


@pytest.mark.usefixtures("quiet_cli")
def test_cli_refuses_missing_registry_and_empty_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["verify", "--registry", str(tmp_path / "nowhere")]) == 2
    assert "no registry directory at" in capsys.readouterr().err
    assert cli.main(["verify", "--registry", str(tmp_path)]) == 1
    assert cli.main(["list", "--registry", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.usefixtures("quiet_cli")
def test_cli_build_without_tensorflow_exits_2_saying_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    assert cli.main(["build", "--out", str(tmp_path)]) == 2
    assert "pip install 'plantwatch[train]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# --- fixture regeneration ----------------------------------------------------------------------------


def write_fixture() -> Manifest:
    """Train the committed fixture model (needs TensorFlow); deterministic, so reruns give the same file."""
    return train_anomaly_model(
        synthetic_healthy_features(FIXTURE_ROWS, seed=FIXTURE_DATA_SEED),
        FEATURES,
        name=FIXTURE_NAME,
        version=FIXTURE_VERSION,
        out_dir=FIXTURE_DIR,
        seed=7,
        trained_on=(
            "Synthetic healthy feature rows for tests: two hidden causes (amplitude, impulsiveness) "
            "with peak = crest factor x rms."
        ),
        generator=f"tests/test_models.py:synthetic_healthy_features(rows={FIXTURE_ROWS}, seed={FIXTURE_DATA_SEED})",
        epochs=FIXTURE_EPOCHS,
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-fixture"]:
        raise SystemExit("usage: python tests/test_models.py --write-fixture")
    written = write_fixture()
    print(f"wrote {written.file} sha256={written.sha256} threshold={written.threshold:.4g}")


def test_evaluate_refuses_a_folder_without_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        ["evaluate", "cwru", str(tmp_path), "--train-loads", "0", "--test-loads", "1", "--no-train"]
    )
    assert status != 0
    assert "manifest.csv" in capsys.readouterr().err


def test_evaluate_run_to_failure_needs_a_speed_for_a_foreign_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["evaluate", "run-to-failure", str(tmp_path / "my_bearing")]) != 0
    assert "--rpm" in capsys.readouterr().err
