"""Real-data readers: CWRU .mat + manifest and FEMTO/PRONOSTIA run-to-failure CSVs.

Tiny synthetic folders built in tmp_path cover parsing, resampling and every error; one test reads the
real developer data set when it is present beside the repository.
"""

from __future__ import annotations

import doctest
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from plantwatch.models import realdata
from plantwatch.models.realdata import (
    CwruRecord,
    RealDataError,
    RunToFailure,
    detect_layout,
    read_cwru,
    read_run_to_failure,
    windows_of,
)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_CWRU = REAL_DATA / "cwru"
REAL_BEARING = REAL_DATA / "femto_pronostia" / "Learning_set" / "Bearing3_1"

MANIFEST_HEADER = "file,record,fault,diameter_in,load_hp,rpm,fs_hz,location,sensor"


# --- CWRU helpers ---------------------------------------------------------------------------------


def write_mat(path: Path, variables: dict[str, np.ndarray | float]) -> None:
    """A MATLAB v5 file as CWRU ships them: column vectors, compressed."""
    scipy.io.savemat(path, variables, do_compression=True)


def write_manifest(folder: Path, lines: list[str], header: str = MANIFEST_HEADER) -> None:
    (folder / "manifest.csv").write_text("\n".join([header, *lines]) + "\n")


def cwru_folder(tmp_path: Path) -> Path:
    """Three records: normal at 48 kHz (with RPM), inner race at 12 kHz (with RPM), ball (without RPM)."""
    folder = tmp_path / "cwru"
    folder.mkdir()
    write_mat(folder / "Normal_0_97.mat", {"X097_DE_time": np.ones((4800, 1)) * 0.25, "X097RPM": 1796.0})
    write_mat(
        folder / "IR007_1_106.mat",
        {"X106_DE_time": np.arange(1200.0).reshape(-1, 1), "X106RPM": 1771.0},
    )
    write_mat(folder / "B014_3_188.mat", {"X188_DE_time": -np.ones((600, 1))})
    write_manifest(
        folder,
        [
            "Normal_0_97.mat,97,normal,0,0,1797,48000,none,DE",
            "IR007_1_106.mat,106,inner_race,0.007,1,1772,12000,drive_end,DE",
            "B014_3_188.mat,188,ball,0.014,3,1730,12000,drive_end,DE",
        ],
    )
    return folder


# --- CWRU -----------------------------------------------------------------------------------------


def test_read_cwru_returns_manifest_fields_signal_and_measured_rpm(tmp_path: Path) -> None:
    records = read_cwru(cwru_folder(tmp_path), fs_hz=None)

    assert [r.record for r in records] == [97, 106, 188]
    inner = records[1]
    assert isinstance(inner, CwruRecord)
    assert (inner.file, inner.fault, inner.diameter_in, inner.load_hp) == (
        "IR007_1_106.mat",
        "inner_race",
        0.007,
        1.0,
    )
    assert (inner.rpm, inner.nominal_rpm, inner.fs_hz) == (1771.0, 1772.0, 12000.0)
    assert inner.signal_g.dtype == np.float64 and inner.signal_g.shape == (1200,)
    np.testing.assert_array_equal(inner.signal_g, np.arange(1200.0))
    assert records[0].rpm == 1796.0 and records[0].fs_hz == 48000.0 and records[0].signal_g.size == 4800


def test_read_cwru_uses_manifest_rpm_when_the_file_has_none(tmp_path: Path) -> None:
    ball = read_cwru(cwru_folder(tmp_path), faults=["ball"])[0]

    assert (ball.rpm, ball.nominal_rpm) == (1730.0, 1730.0)


def test_read_cwru_resamples_48k_tone_to_12k_keeping_frequency_and_amplitude(tmp_path: Path) -> None:
    folder = tmp_path / "cwru"
    folder.mkdir()
    time_s = np.arange(48_000) / 48_000.0
    # 1 kHz at 0.5 g must survive; 7 kHz at 0.3 g is above the 6 kHz Nyquist of 12 kHz and would alias
    # to 5 kHz without the anti-alias filter.
    signal = 0.5 * np.sin(2 * np.pi * 1000.0 * time_s) + 0.3 * np.sin(2 * np.pi * 7000.0 * time_s)
    write_mat(folder / "Normal_0_97.mat", {"X097_DE_time": signal.reshape(-1, 1), "X097RPM": 1796.0})
    write_manifest(folder, ["Normal_0_97.mat,97,normal,0,0,1797,48000,none,DE"])

    (record,) = read_cwru(folder, fs_hz=12_000.0)

    assert record.fs_hz == 12_000.0
    assert record.signal_g.shape == (12_000,)
    middle = record.signal_g[1000:-1000]  # away from the filter's edge transients
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size)))
    frequencies_hz = np.fft.rfftfreq(middle.size, 1 / 12_000.0)
    assert frequencies_hz[np.argmax(spectrum)] == pytest.approx(1000.0, abs=1.0)
    assert np.sqrt(2) * np.sqrt(np.mean(middle**2)) == pytest.approx(0.5, rel=0.01)
    alias_bin = int(np.argmin(np.abs(frequencies_hz - 5000.0)))
    assert spectrum[alias_bin - 2 : alias_bin + 3].max() < 0.01 * spectrum.max()


def test_read_cwru_keeps_native_rates_when_fs_hz_is_none(tmp_path: Path) -> None:
    records = read_cwru(cwru_folder(tmp_path), fs_hz=None)

    assert [(r.fs_hz, r.signal_g.size) for r in records] == [(48000.0, 4800), (12000.0, 1200), (12000.0, 600)]


def test_read_cwru_default_brings_every_record_to_12k(tmp_path: Path) -> None:
    records = read_cwru(cwru_folder(tmp_path))

    assert [(r.fs_hz, r.signal_g.size) for r in records] == [(12000.0, 1200), (12000.0, 1200), (12000.0, 600)]
    np.testing.assert_allclose(records[0].signal_g[100:-100], 0.25, rtol=1e-3)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"loads": [1, 3]}, [106, 188]),
        ({"faults": ["normal", "ball"]}, [97, 188]),
        ({"diameters": [0.0070000001]}, [106]),
        ({"loads": [0], "faults": ["inner_race"]}, []),
    ],
)
def test_read_cwru_filters_by_load_fault_and_diameter(
    tmp_path: Path, filters: dict[str, list[float] | list[str]], expected: list[int]
) -> None:
    records = read_cwru(cwru_folder(tmp_path), fs_hz=None, **filters)  # type: ignore[arg-type]

    assert [r.record for r in records] == expected


def test_read_cwru_picks_the_records_own_variable_among_several(tmp_path: Path) -> None:
    folder = tmp_path / "cwru"
    folder.mkdir()
    # A file that also carries another record's channel (as 99.mat may): "the first _DE_time" is wrong.
    write_mat(
        folder / "Normal_2_99.mat",
        {"X098_DE_time": np.zeros((10, 1)), "X099_DE_time": np.full((10, 1), 2.0), "X099RPM": 1750.0},
    )
    write_manifest(folder, ["Normal_2_99.mat,99,normal,0,2,1750,12000,none,DE"])

    (record,) = read_cwru(folder)

    np.testing.assert_array_equal(record.signal_g, np.full(10, 2.0))


def test_read_cwru_falls_back_to_the_only_drive_end_variable_and_its_rpm(tmp_path: Path) -> None:
    folder = tmp_path / "cwru"
    folder.mkdir()
    write_mat(folder / "IR028_0_3001.mat", {"X048_DE_time": np.full((8, 1), 3.0), "X048RPM": 1790.0})
    write_manifest(folder, ["IR028_0_3001.mat,3001,inner_race,0.028,0,1797,12000,drive_end,DE"])

    (record,) = read_cwru(folder)

    np.testing.assert_array_equal(record.signal_g, np.full(8, 3.0))
    assert record.rpm == 1790.0


def test_read_cwru_refuses_to_guess_between_several_other_variables(tmp_path: Path) -> None:
    folder = tmp_path / "cwru"
    folder.mkdir()
    write_mat(folder / "x.mat", {"X001_DE_time": np.zeros((4, 1)), "X002_DE_time": np.zeros((4, 1))})
    write_manifest(folder, ["x.mat,97,normal,0,0,1797,12000,none,DE"])

    with pytest.raises(RealDataError, match=r"x\.mat: no variable X097_DE_time and several"):
        read_cwru(folder)


def test_read_cwru_names_the_file_missing_its_signal_variable(tmp_path: Path) -> None:
    folder = tmp_path / "cwru"
    folder.mkdir()
    write_mat(folder / "x.mat", {"X097_FE_time": np.zeros((4, 1))})
    write_manifest(folder, ["x.mat,97,normal,0,0,1797,12000,none,DE"])

    with pytest.raises(RealDataError, match=r"x\.mat: no variable X097_DE_time .*found \['X097_FE_time'\]"):
        read_cwru(folder)


def test_read_cwru_errors_for_a_missing_folder_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(RealDataError, match="no such folder"):
        read_cwru(tmp_path / "absent")
    with pytest.raises(RealDataError, match=r"manifest\.csv: missing"):
        read_cwru(tmp_path)


def test_read_cwru_names_missing_manifest_columns(tmp_path: Path) -> None:
    folder = cwru_folder(tmp_path)
    write_manifest(
        folder, ["Normal_0_97.mat,97,normal,0,1797,48000"], header="file,record,fault,diameter_in,rpm,fs_hz"
    )

    with pytest.raises(RealDataError, match=r"missing column\(s\) \['load_hp'\]"):
        read_cwru(folder)


def test_read_cwru_names_a_listed_file_that_is_absent(tmp_path: Path) -> None:
    folder = cwru_folder(tmp_path)
    (folder / "IR007_1_106.mat").unlink()

    with pytest.raises(RealDataError, match=r"IR007_1_106\.mat: listed in manifest\.csv but absent"):
        read_cwru(folder, faults=["normal"])  # the whole manifest is checked, not only the selection


def test_read_cwru_names_an_unknown_fault_label_and_its_line(tmp_path: Path) -> None:
    folder = cwru_folder(tmp_path)
    write_manifest(
        folder,
        [
            "Normal_0_97.mat,97,normal,0,0,1797,48000,none,DE",
            "IR007_1_106.mat,106,IR,0.007,1,1772,12000,drive_end,DE",
        ],
    )

    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(RealDataError, match=r"line 3: unknown fault label 'IR'"):
        read_cwru(folder)
    with pytest.raises(RealDataError, match=r"unknown fault label\(s\) \['outer'\] in the filter"):
        read_cwru(cwru_folder(other), faults=["outer"])


def test_read_cwru_names_a_bad_number_in_the_manifest(tmp_path: Path) -> None:
    folder = cwru_folder(tmp_path)
    write_manifest(folder, ["Normal_0_97.mat,97,normal,0,zero,1797,48000,none,DE"])

    with pytest.raises(RealDataError, match=r"line 2: column 'load_hp' is not a number: 'zero'"):
        read_cwru(folder)


def test_read_cwru_names_a_file_that_is_not_matlab(tmp_path: Path) -> None:
    folder = cwru_folder(tmp_path)
    (folder / "B014_3_188.mat").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")

    with pytest.raises(RealDataError, match=r"B014_3_188\.mat: not a readable MATLAB v5 file"):
        read_cwru(folder)


# --- windows --------------------------------------------------------------------------------------


def test_windows_of_cuts_overlapping_windows_and_drops_the_tail() -> None:
    windows = windows_of(np.arange(11.0), 4, overlap=0.5)

    assert windows.shape == (4, 4)
    np.testing.assert_array_equal(windows[:, 0], [0.0, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(windows[-1], [6.0, 7.0, 8.0, 9.0])  # sample 10 is the dropped tail


def test_windows_of_without_overlap_and_with_a_short_signal() -> None:
    np.testing.assert_array_equal(windows_of(np.arange(8.0), 4, overlap=0.0), [[0, 1, 2, 3], [4, 5, 6, 7]])
    assert windows_of(np.arange(3.0), 4).shape == (0, 4)
    assert windows_of(np.arange(4.0), 4, overlap=0.75).shape == (1, 4)


@pytest.mark.parametrize(
    ("signal", "window_samples", "overlap", "message"),
    [
        (np.zeros((2, 8)), 4, 0.5, "1-D"),
        (np.zeros(8), 0, 0.5, "window_samples"),
        (np.zeros(8), 4, 1.0, "overlap"),
        (np.zeros(8), 4, -0.1, "overlap"),
    ],
)
def test_windows_of_rejects_bad_arguments(
    signal: np.ndarray, window_samples: int, overlap: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        windows_of(signal, window_samples, overlap)


# --- run-to-failure helpers -----------------------------------------------------------------------


def three_digit_exponents(text: str) -> str:
    """``1.1879e+05`` → ``1.1879e+005``, as some FEMTO files write them."""
    return re.sub(r"e([+-])(\d\d)\b", r"e\g<1>0\2", text)


def acc_text(
    start: tuple[int, int, int, float],
    values_g: np.ndarray,
    *,
    separator: str = ",",
    newline: str = "\n",
    exponent_digits: int = 2,
) -> str:
    """An acc file: hour, minute, second, microsecond (5 significant digits), horizontal g, vertical g."""
    hour, minute, second, microsecond = start
    lines = []
    for k, (horizontal, vertical) in enumerate(values_g):
        row = [
            str(hour),
            str(minute),
            str(second),
            f"{microsecond + k * 1e6 / 25600:.4e}",
            f"{horizontal:.3f}",
            f"{vertical:.3f}",
        ]
        lines.append(separator.join(row))
    text = newline.join(lines) + newline
    return three_digit_exponents(text) if exponent_digits == 3 else text


def temp_text(
    start: tuple[int, int, int, int], values_c: list[float], *, separator: str = ";", newline: str = "\n"
) -> str:
    """A temp file: hour, minute, second, tenth (zero-padded as in FEMTO), °C, one row each 0.1 s."""
    hour, minute, second, tenth = start
    total_tenths = ((hour * 60 + minute) * 60 + second) * 10 + tenth
    lines = []
    for k, value in enumerate(values_c):
        t = total_tenths + k
        row = [
            f"{t // 36000:02d}",
            f"{t // 600 % 60:02d}",
            f"{t // 10 % 60:02d}",
            str(t % 10),
            f"{value:.3f}",
        ]
        lines.append(separator.join(row))
    return newline.join(lines) + newline


def bearing_folder(tmp_path: Path) -> Path:
    """Three snapshots of 4 rows, 10 s apart, in three dialects; two temperature files in two dialects."""
    folder = tmp_path / "Bearing9_9"
    folder.mkdir()
    ramp = np.arange(8.0).reshape(4, 2) / 8.0
    (folder / "acc_00001.csv").write_text(acc_text((9, 10, 39, 118790.0), ramp))
    (folder / "acc_00002.csv").write_bytes(
        acc_text((9, 10, 49, 118790.0), ramp + 1, separator=";", newline="\r\n").encode("ascii")
    )
    (folder / "acc_00003.csv").write_text(acc_text((9, 10, 59, 118790.0), ramp + 2, exponent_digits=3))
    (folder / "temp_00001.csv").write_text(temp_text((9, 10, 40, 0), [70.0, 70.5]))
    (folder / "temp_00002.csv").write_bytes(
        temp_text((9, 10, 50, 0), [71.0], separator=",", newline="\r\n").encode("ascii")
    )
    (folder / "notes.txt").write_text("ignored")
    return folder


# --- run-to-failure -------------------------------------------------------------------------------


def test_read_run_to_failure_parses_every_dialect_into_snapshots(tmp_path: Path) -> None:
    record = read_run_to_failure(bearing_folder(tmp_path))

    assert isinstance(record, RunToFailure)
    assert record.name == "Bearing9_9" and record.fs_hz == 25600.0
    assert record.channel_names == ("horizontal", "vertical")
    assert record.snapshots_g.shape == (3, 4, 2)
    ramp = np.arange(8.0).reshape(4, 2) / 8.0
    np.testing.assert_allclose(record.snapshots_g, np.stack([ramp, ramp + 1, ramp + 2]), atol=5e-4)
    np.testing.assert_allclose(record.snapshot_times_s, [0.0, 10.0, 20.0], atol=1e-9)


def test_read_run_to_failure_puts_temperature_on_the_snapshot_clock(tmp_path: Path) -> None:
    record = read_run_to_failure(bearing_folder(tmp_path))

    # First snapshot at 09:10:39.11879; temperature rows at 09:10:40.0, 40.1 and 50.0.
    np.testing.assert_allclose(record.temperature_times_s, [0.88121, 0.98121, 10.88121], atol=1e-6)
    np.testing.assert_array_equal(record.temperature_c, [70.0, 70.5, 71.0])
    np.testing.assert_array_equal(
        record.temperature_at([0.0, 0.88121, 0.9, 10.0, 10.9, 1e6]), [np.nan, 70.0, 70.0, 70.5, 71.0, 71.0]
    )


def test_read_run_to_failure_orders_by_file_number_not_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "bearing"
    folder.mkdir()
    for number, second in [(2, 10), (10, 30), (9, 20)]:  # "acc_10" sorts before "acc_2" as text
        (folder / f"acc_{number}.csv").write_text(acc_text((1, 0, second, 0.0), np.full((2, 2), number)))

    record = read_run_to_failure(folder)

    np.testing.assert_allclose(record.snapshots_g[:, 0, 0], [2.0, 9.0, 10.0])
    np.testing.assert_allclose(record.snapshot_times_s, [0.0, 10.0, 20.0])


def test_read_run_to_failure_continues_the_clock_past_midnight(tmp_path: Path) -> None:
    folder = tmp_path / "bearing"
    folder.mkdir()
    (folder / "acc_00001.csv").write_text(acc_text((23, 59, 50, 500000.0), np.zeros((2, 2))))
    (folder / "acc_00002.csv").write_text(acc_text((0, 0, 0, 500000.0), np.zeros((2, 2))))
    (folder / "acc_00003.csv").write_text(acc_text((0, 0, 10, 500000.0), np.zeros((2, 2))))
    (folder / "temp_00001.csv").write_text(temp_text((0, 0, 5, 0), [60.0]))

    record = read_run_to_failure(folder)

    np.testing.assert_allclose(record.snapshot_times_s, [0.0, 10.0, 20.0])
    np.testing.assert_allclose(record.temperature_times_s, [14.5])


def test_read_run_to_failure_without_temperature_files_has_empty_temperatures(tmp_path: Path) -> None:
    folder = bearing_folder(tmp_path)
    for file in folder.glob("temp_*.csv"):
        file.unlink()

    record = read_run_to_failure(folder)

    assert record.temperature_times_s.shape == (0,) and record.temperature_c.shape == (0,)
    assert np.isnan(record.temperature_at([0.0, 5.0])).all()


def test_read_run_to_failure_reports_progress_over_all_files(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []

    read_run_to_failure(bearing_folder(tmp_path), progress=lambda done, total: calls.append((done, total)))

    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_read_run_to_failure_names_a_snapshot_with_another_row_count(tmp_path: Path) -> None:
    folder = bearing_folder(tmp_path)
    (folder / "acc_00002.csv").write_text(acc_text((9, 10, 49, 0.0), np.zeros((3, 2))))

    with pytest.raises(RealDataError, match=r"acc_00002\.csv: has 3 rows; acc_00001\.csv .* has 4"):
        read_run_to_failure(folder)


def test_read_run_to_failure_names_a_file_with_wrong_columns(tmp_path: Path) -> None:
    folder = bearing_folder(tmp_path)
    (folder / "acc_00003.csv").write_text("9,10,59,1.0e+05,0.1\n9,10,59,1.1e+05,0.2\n")

    with pytest.raises(RealDataError, match=r"acc_00003\.csv: has 5 columns; expected 6"):
        read_run_to_failure(folder)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"9,10,39,1.0e+05,0.1,0.2\n9,10,39,1.0e+05,0.1\n", "not a table of numbers"),
        (b"9,10,39,1.0e+05,0.1,abc\n", "not a table of numbers"),
        (b"9 10 39 1.0e+05 0.1 0.2\n", "neither ',' nor ';'"),
        (b"", "is empty"),
        (b"9,10,39,1.0e+05,0.1,\xb0\n", "not ASCII"),
        (b"9,10,39,1.0e+05,0.1,nan\n", "row 1 holds a non-finite value"),
    ],
)
def test_read_run_to_failure_names_a_broken_file(tmp_path: Path, content: bytes, message: str) -> None:
    folder = bearing_folder(tmp_path)
    (folder / "acc_00001.csv").write_bytes(content)

    with pytest.raises(RealDataError, match=rf"acc_00001\.csv: .*{re.escape(message)}"):
        read_run_to_failure(folder)


def test_read_run_to_failure_names_a_broken_temperature_file(tmp_path: Path) -> None:
    folder = bearing_folder(tmp_path)
    (folder / "temp_00002.csv").write_text("09;10;50;0\n")

    with pytest.raises(RealDataError, match=r"temp_00002\.csv: has 4 columns; expected 5"):
        read_run_to_failure(folder)


def test_read_run_to_failure_errors_for_missing_folder_and_no_snapshots(tmp_path: Path) -> None:
    with pytest.raises(RealDataError, match="no such folder"):
        read_run_to_failure(tmp_path / "absent")
    with pytest.raises(RealDataError, match="no acc_NNNNN.csv files"):
        read_run_to_failure(tmp_path)


@settings(max_examples=40, deadline=None)
@given(
    values_g=hnp.arrays(np.float64, st.tuples(st.integers(1, 20), st.just(2)), elements=st.floats(-50, 50)),
    separator=st.sampled_from([",", ";"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    exponent_digits=st.sampled_from([2, 3]),
)
def test_read_run_to_failure_round_trips_any_dialect(
    values_g: np.ndarray, separator: str, newline: str, exponent_digits: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        text = acc_text(
            (12, 0, 0, 5.0), values_g, separator=separator, newline=newline, exponent_digits=exponent_digits
        )
        (folder / "acc_00001.csv").write_bytes(text.encode("ascii"))

        record = read_run_to_failure(folder)

    written_g = np.vectorize(lambda value: float(f"{value:.3f}"))(values_g)
    np.testing.assert_array_equal(record.snapshots_g[0], written_g)


# --- layout detection -----------------------------------------------------------------------------


def test_detect_layout_tells_the_two_layouts_apart(tmp_path: Path) -> None:
    assert detect_layout(cwru_folder(tmp_path)) == "cwru"
    assert detect_layout(bearing_folder(tmp_path)) == "run-to-failure"


def test_detect_layout_errors_for_other_folders_and_points_below(tmp_path: Path) -> None:
    with pytest.raises(RealDataError, match="no such folder"):
        detect_layout(tmp_path / "absent")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(RealDataError, match="not a folder"):
        detect_layout(tmp_path / "file.txt")
    (tmp_path / "Learning_set").mkdir()
    bearing_folder(tmp_path / "Learning_set")
    with pytest.raises(RealDataError, match=r"neither .*below it: Learning_set/Bearing9_9"):
        detect_layout(tmp_path)


# --- the real developer data set ------------------------------------------------------------------


@pytest.mark.skipif(not REAL_CWRU.is_dir(), reason=f"no CWRU data at {REAL_CWRU}")
def test_real_cwru_folder_reads_37_records_at_12k() -> None:
    started = time.perf_counter()
    records = read_cwru(REAL_CWRU)
    elapsed_s = time.perf_counter() - started

    assert len(records) == 37
    assert {r.fs_hz for r in records} == {12000.0}
    assert [r.fault for r in records].count("normal") == 1
    normal = records[0]
    assert (normal.record, normal.rpm, normal.nominal_rpm) == (97, 1796.0, 1797.0)
    assert normal.signal_g.size == 60_985  # 243,938 samples at 48 kHz, down by 4 (rounded up)
    ir108 = next(r for r in records if r.record == 108)
    assert (ir108.rpm, ir108.signal_g.size) == (1721.0, 122_917)
    assert elapsed_s < 10.0


@pytest.mark.skipif(not REAL_BEARING.is_dir(), reason=f"no FEMTO data at {REAL_BEARING}")
def test_real_bearing3_1_reads_515_snapshots_10_s_apart() -> None:
    started = time.perf_counter()
    record = read_run_to_failure(REAL_BEARING)
    elapsed_s = time.perf_counter() - started

    assert detect_layout(REAL_BEARING) == "run-to-failure"
    assert record.snapshots_g.shape == (515, 2560, 2)
    np.testing.assert_allclose(np.diff(record.snapshot_times_s), 10.0, atol=1e-3)
    assert record.snapshot_times_s[-1] == pytest.approx(5140.0, abs=1e-3)
    # PROVENANCE.md: snapshot 494 is the only one over 20 g (41.3 g horizontal, 21.7 g vertical).
    peaks_g = np.abs(record.snapshots_g).max(axis=1)
    assert np.flatnonzero(peaks_g.max(axis=1) > 20.0).tolist() == [493]
    np.testing.assert_allclose(peaks_g[493], [41.3, 21.7], atol=0.05)
    assert record.temperature_c.size == 87 * 600 + 417 + 280
    assert (record.temperature_c.min(), record.temperature_c.max()) == pytest.approx((67.1, 108.0), abs=0.05)
    assert elapsed_s < 10.0


def test_realdata_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(realdata)

    assert tried >= 2 and failures == 0
