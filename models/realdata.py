"""Readers for two public bearing data layouts: CWRU seeded faults and FEMTO/PRONOSTIA run-to-failure.

Both readers are pure: a folder in, arrays and frozen dataclasses out; no model, no feature, no clock.

- **CWRU** (Case Western Reserve University Bearing Data Center): a folder with ``manifest.csv``
  (``file,record,fault,diameter_in,load_hp,rpm,fs_hz,location,sensor``) and MATLAB v5 ``.mat`` files
  holding ``XNNN_DE_time`` (drive-end acceleration, g) and ``XNNNRPM`` (measured shaft speed, rpm).
  Rates differ between records (the normal baseline is 48 kHz, the fault records 12 kHz), so
  :func:`read_cwru` resamples to one rate unless told not to.
- **Run-to-failure** (FEMTO-ST PRONOSTIA, IEEE PHM 2012): a folder with ``acc_NNNNN.csv`` (one
  0.1 s snapshot at 25.6 kHz every 10 s; columns hour, minute, second, microsecond, horizontal g,
  vertical g) and optionally ``temp_NNNNN.csv`` (hour, minute, second, tenth of a second, °C). The
  separator is ``,`` or ``;`` depending on the file, exponents may have three digits and line endings
  may be CRLF, so each file's separator is detected from its first line.

Every problem with the data raises :class:`RealDataError`, whose ``str()`` names the file and the
problem.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast

import numpy as np
import scipy.io
import scipy.signal

log = logging.getLogger(__name__)

Layout = Literal["cwru", "run-to-failure"]
FaultLabel = Literal["normal", "inner_race", "ball", "outer_race"]

CWRU_MANIFEST = "manifest.csv"
CWRU_FAULTS: tuple[str, ...] = ("normal", "inner_race", "ball", "outer_race")
CWRU_REQUIRED_COLUMNS: tuple[str, ...] = ("file", "record", "fault", "diameter_in", "load_hp", "rpm", "fs_hz")
"""Manifest columns the reader uses; ``location`` and ``sensor`` are informational (only DE is read)."""
CWRU_DIAMETER_DECIMALS = 3
"""Fault diameters are compared rounded to 0.001 in: CWRU's sizes are 0.007/0.014/0.021/0.028 in."""
MAX_RESAMPLE_FACTOR = 1000
"""Largest up or down factor accepted for a rate change; beyond it the polyphase filter gets huge."""

FEMTO_FS_HZ = 25_600.0
"""PRONOSTIA accelerometer sampling rate (challenge document §4.1)."""
FEMTO_ACC_COLUMNS = 6
FEMTO_TEMP_COLUMNS = 5
FEMTO_CHANNELS: tuple[str, str] = ("horizontal", "vertical")
SECONDS_PER_DAY = 86_400.0
_ACC_FILE = re.compile(r"^acc_(\d+)\.csv$")
_TEMP_FILE = re.compile(r"^temp_(\d+)\.csv$")


class RealDataError(ValueError):
    """A folder or file that does not read as its layout says; ``str()`` names the path and the problem."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# eq=False: the fields hold arrays, whose == is elementwise; identity is the only safe equality here.
@dataclass(frozen=True, eq=False)
class CwruRecord:
    """One CWRU drive-end recording.

    ``rpm`` is the measured shaft speed from the file's ``XNNNRPM`` variable when it has one, else the
    manifest's ``nominal_rpm`` (CWRU's table value for the load). ``fs_hz`` is the rate of
    ``signal_g`` after any resampling; ``diameter_in`` is 0 for the normal record.
    """

    file: str
    record: int
    fault: FaultLabel
    diameter_in: float
    load_hp: float
    rpm: float
    nominal_rpm: float
    fs_hz: float
    signal_g: np.ndarray


@dataclass(frozen=True, eq=False)
class RunToFailure:
    """One bearing's run-to-failure record.

    ``snapshots_g`` has shape ``(snapshots, samples, channels)`` (float64, g), sampled at ``fs_hz``;
    sample ``k`` of snapshot ``i`` is at ``snapshot_times_s[i] + k / fs_hz``. Times are seconds from
    the start of the first snapshot. ``temperature_times_s`` / ``temperature_c`` share that origin
    (readings before the first snapshot have negative times) and are empty when there are no
    temperature files.
    """

    name: str
    fs_hz: float
    snapshot_times_s: np.ndarray
    snapshots_g: np.ndarray
    channel_names: tuple[str, ...]
    temperature_times_s: np.ndarray
    temperature_c: np.ndarray

    def temperature_at(self, times_s: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Last temperature reading (°C) at or before each of ``times_s`` (s); NaN where there is none.

        >>> record = RunToFailure(
        ...     name="demo", fs_hz=25600.0, snapshot_times_s=np.zeros(1), snapshots_g=np.zeros((1, 4, 2)),
        ...     channel_names=FEMTO_CHANNELS, temperature_times_s=np.array([0.0, 60.0]),
        ...     temperature_c=np.array([70.0, 71.5]),
        ... )
        >>> record.temperature_at([-1.0, 0.0, 59.9, 60.0, 1e6]).tolist()
        [nan, 70.0, 70.0, 71.5, 71.5]
        """
        times = np.asarray(times_s, dtype=np.float64)
        index = np.searchsorted(self.temperature_times_s, times, side="right") - 1
        known = index >= 0
        temperature_c = np.full(times.shape, np.nan)
        temperature_c[known] = self.temperature_c[index[known]]
        return temperature_c


# --- layout detection -----------------------------------------------------------------------------


def detect_layout(folder: Path | str) -> Layout:
    """Say which layout ``folder`` holds: ``"cwru"`` (has ``manifest.csv``) or ``"run-to-failure"``
    (has ``acc_NNNNN.csv`` files).

    Raises :class:`RealDataError` for a missing folder or one that is neither; when the folder is a
    parent of run-to-failure folders (e.g. ``Learning_set``), the error lists a few of them.
    """
    path = _existing_folder(folder)
    if (path / CWRU_MANIFEST).is_file():
        return "cwru"
    if any(_ACC_FILE.match(child.name) for child in path.iterdir()):
        return "run-to-failure"
    nested = sorted(
        {acc.parent for pattern in ("*/acc_*.csv", "*/*/acc_*.csv") for acc in path.glob(pattern)}
    )
    hint = ""
    if nested:
        shown = ", ".join(str(child.relative_to(path)) for child in nested[:5])
        hint = f"; run-to-failure folders below it: {shown}{' …' if len(nested) > 5 else ''}"
    raise RealDataError(
        path,
        f"neither a CWRU folder (no {CWRU_MANIFEST}) nor a run-to-failure folder (no acc_NNNNN.csv){hint}",
    )


def _existing_folder(folder: Path | str) -> Path:
    path = Path(folder)
    if not path.exists():
        raise RealDataError(path, "no such folder")
    if not path.is_dir():
        raise RealDataError(path, "not a folder")
    return path


# --- CWRU -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ManifestRow:
    file: str
    record: int
    fault: FaultLabel
    diameter_in: float
    load_hp: float
    nominal_rpm: float
    fs_hz: float


def read_cwru(
    folder: Path | str,
    *,
    fs_hz: float | None = 12_000.0,
    loads: Iterable[float] | None = None,
    faults: Iterable[str] | None = None,
    diameters: Iterable[float] | None = None,
) -> list[CwruRecord]:
    """Read the CWRU records listed in ``folder/manifest.csv``, in manifest order.

    fs_hz
        Sampling rate (Hz) to return every signal at. Records at another rate are resampled with
        :func:`scipy.signal.resample_poly` (polyphase FIR with a Kaiser-window anti-alias filter; the
        48 kHz normal record becomes 12 kHz by down = 4). ``None`` keeps each record's own rate.
    loads, faults, diameters
        Keep only records whose ``load_hp``, ``fault`` label or ``diameter_in`` (compared to 0.001 in)
        is in the given collection; ``None`` keeps all. The normal record has diameter 0.

    The whole manifest is checked (columns, values, labels, listed files present) before any signal is
    read, so a broken folder fails fast. The signal is the variable ``X{record:03d}_DE_time``, or the
    file's only ``*_DE_time`` variable; the measured speed comes from the matching ``…RPM`` variable.

    Raises :class:`RealDataError` naming the file (and line or variable) for every problem.
    """
    path = _existing_folder(folder)
    if fs_hz is not None and not (math.isfinite(fs_hz) and fs_hz > 0):
        raise ValueError(f"fs_hz must be a positive number of Hz or None, not {fs_hz!r}")
    rows = _read_cwru_manifest(path / CWRU_MANIFEST)
    wanted_faults = None if faults is None else set(faults)
    unknown = sorted(wanted_faults - set(CWRU_FAULTS)) if wanted_faults is not None else []
    if unknown:
        raise RealDataError(
            path, f"unknown fault label(s) {unknown} in the filter; known: {list(CWRU_FAULTS)}"
        )
    wanted_loads = None if loads is None else {float(load) for load in loads}
    wanted_diameters = (
        None if diameters is None else {round(float(d), CWRU_DIAMETER_DECIMALS) for d in diameters}
    )
    selected = [
        row
        for row in rows
        if (wanted_faults is None or row.fault in wanted_faults)
        and (wanted_loads is None or row.load_hp in wanted_loads)
        and (wanted_diameters is None or round(row.diameter_in, CWRU_DIAMETER_DECIMALS) in wanted_diameters)
    ]
    return [_read_cwru_record(path / row.file, row, fs_hz) for row in selected]


def _read_cwru_manifest(manifest: Path) -> list[_ManifestRow]:
    if not manifest.is_file():
        raise RealDataError(manifest, "missing: a CWRU folder needs a manifest.csv")
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in CWRU_REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise RealDataError(manifest, f"missing column(s) {missing}; found {columns}")
        reader.fieldnames = columns
        rows = [_manifest_row(manifest, reader.line_num, raw) for raw in reader]
    if not rows:
        raise RealDataError(manifest, "lists no records")
    absent = [row.file for row in rows if not (manifest.parent / row.file).is_file()]
    if absent:
        shown = ", ".join(absent[:5]) + (" …" if len(absent) > 5 else "")
        raise RealDataError(
            manifest.parent / absent[0],
            f"listed in {CWRU_MANIFEST} but absent ({len(absent)} missing: {shown})",
        )
    return rows


def _manifest_row(manifest: Path, line: int, raw: dict[str, str | None]) -> _ManifestRow:
    where = f"line {line}"

    def text(column: str) -> str:
        value = (raw.get(column) or "").strip()
        if not value:
            raise RealDataError(manifest, f"{where}: column {column!r} is empty")
        return value

    def number(column: str) -> float:
        value = text(column)
        try:
            parsed = float(value)
        except ValueError:
            raise RealDataError(manifest, f"{where}: column {column!r} is not a number: {value!r}") from None
        if not math.isfinite(parsed) or parsed < 0:
            raise RealDataError(manifest, f"{where}: column {column!r} must be finite and ≥ 0: {value!r}")
        return parsed

    fault = text("fault")
    if fault not in CWRU_FAULTS:
        raise RealDataError(
            manifest, f"{where}: unknown fault label {fault!r} in column 'fault'; known: {list(CWRU_FAULTS)}"
        )
    sensor = (raw.get("sensor") or "DE").strip()
    if sensor != "DE":
        raise RealDataError(
            manifest, f"{where}: column 'sensor' is {sensor!r}; only the drive-end channel 'DE' is read"
        )
    record = number("record")
    if record != int(record):
        raise RealDataError(
            manifest, f"{where}: column 'record' is not a whole number: {raw.get('record')!r}"
        )
    fs = number("fs_hz")
    if fs == 0:
        raise RealDataError(manifest, f"{where}: column 'fs_hz' is 0")
    return _ManifestRow(
        file=text("file"),
        record=int(record),
        fault=cast(FaultLabel, fault),  # checked against CWRU_FAULTS above
        diameter_in=number("diameter_in"),
        load_hp=number("load_hp"),
        nominal_rpm=number("rpm"),
        fs_hz=fs,
    )


def _read_cwru_record(file: Path, row: _ManifestRow, fs_hz: float | None) -> CwruRecord:
    try:
        variables = scipy.io.loadmat(file)
    except Exception as error:  # scipy raises MatReadError, IndexError, NotImplementedError (v7.3), …
        raise RealDataError(file, f"not a readable MATLAB v5 file: {error}") from error
    signal_name = _signal_variable(file, row.record, variables)
    signal = np.asarray(variables[signal_name])
    if signal.ndim > 2 or (signal.ndim == 2 and min(signal.shape) != 1) or signal.size == 0:
        raise RealDataError(
            file, f"variable {signal_name} has shape {signal.shape}; expected a non-empty vector"
        )
    if not np.issubdtype(signal.dtype, np.number):
        raise RealDataError(file, f"variable {signal_name} holds {signal.dtype}, not numbers")
    signal_g = signal.astype(np.float64).ravel()
    rpm = _measured_rpm(file, signal_name.removesuffix("_DE_time") + "RPM", variables, row.nominal_rpm)
    record_fs_hz = row.fs_hz
    if fs_hz is not None and fs_hz != record_fs_hz:
        signal_g = _resample(file, signal_g, record_fs_hz, fs_hz)
        record_fs_hz = float(fs_hz)
    return CwruRecord(
        file=row.file,
        record=row.record,
        fault=row.fault,
        diameter_in=row.diameter_in,
        load_hp=row.load_hp,
        rpm=rpm,
        nominal_rpm=row.nominal_rpm,
        fs_hz=record_fs_hz,
        signal_g=signal_g,
    )


def _signal_variable(file: Path, record: int, variables: dict[str, object]) -> str:
    expected = f"X{record:03d}_DE_time"
    if expected in variables:
        return expected
    # Some CWRU files carry other numbers (the 0.028 in faults, 3001-3008, hold X048…X059); accept the
    # only drive-end channel, but never guess between several (99.mat may carry extra variables).
    candidates = sorted(name for name in variables if name.endswith("_DE_time"))
    if len(candidates) == 1:
        log.info("cwru_variable_fallback file=%s expected=%s used=%s", file.name, expected, candidates[0])
        return candidates[0]
    found = sorted(name for name in variables if not name.startswith("__"))
    if not candidates:
        raise RealDataError(file, f"no variable {expected} and no other *_DE_time variable; found {found}")
    raise RealDataError(
        file, f"no variable {expected} and several *_DE_time variables {candidates}; cannot choose"
    )


def _measured_rpm(file: Path, name: str, variables: dict[str, object], nominal_rpm: float) -> float:
    if name not in variables:
        return nominal_rpm
    values = np.asarray(variables[name]).ravel()
    if (
        values.size != 1
        or not np.issubdtype(values.dtype, np.number)
        or not np.isfinite(values[0])
        or values[0] <= 0
    ):
        log.warning(
            "cwru_rpm_unusable file=%s variable=%s value=%r using=nominal", file.name, name, values.tolist()
        )
        return nominal_rpm
    return float(values[0])


def _resample(file: Path, signal: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    ratio = Fraction(str(float(to_hz))) / Fraction(str(float(from_hz)))
    up, down = ratio.numerator, ratio.denominator
    if max(up, down) > MAX_RESAMPLE_FACTOR:
        raise RealDataError(
            file, f"cannot resample {from_hz} Hz to {to_hz} Hz: ratio {up}/{down} is too fine"
        )
    return scipy.signal.resample_poly(signal, up, down)


def windows_of(signal: np.ndarray, window_samples: int, overlap: float = 0.5) -> np.ndarray:
    """Cut a 1-D ``signal`` into windows of ``window_samples``, each starting ``hop`` samples after the
    previous one, with ``hop = max(1, round(window_samples × (1 − overlap)))`` (as the agent's
    ``Windower``). The incomplete tail is dropped.

    Returns a read-only strided view of shape ``(windows, window_samples)``; copy it before writing.

    >>> windows_of(np.arange(10.0), 4, overlap=0.5).tolist()
    [[0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0], [4.0, 5.0, 6.0, 7.0], [6.0, 7.0, 8.0, 9.0]]
    """
    values = np.asarray(signal)
    if values.ndim != 1:
        raise ValueError(f"signal must be 1-D, not of shape {values.shape}")
    if window_samples < 1:
        raise ValueError(f"window_samples must be ≥ 1, not {window_samples}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be within [0, 1), not {overlap}")
    if values.size < window_samples:
        return np.empty((0, window_samples), dtype=values.dtype)
    hop = max(1, int(round(window_samples * (1.0 - overlap))))
    return np.lib.stride_tricks.sliding_window_view(values, window_samples)[::hop]


# --- run to failure -------------------------------------------------------------------------------


def read_run_to_failure(
    folder: Path | str, *, progress: Callable[[int, int], None] | None = None
) -> RunToFailure:
    """Read a FEMTO/PRONOSTIA bearing folder: every ``acc_NNNNN.csv`` and ``temp_NNNNN.csv``.

    Snapshots are ordered by file number. A snapshot's time is its first row's hour, minute, second
    and microsecond, in seconds from the first snapshot; a time earlier than the one before it means
    the clock passed midnight, and a day is added. Temperature rows (hour, minute, second, tenth,
    °C) get times on the same origin. Every acc file must have 6 columns and the same number of rows.

    ``progress(done, total)`` is called after each file, counting acc and temp files together.

    Raises :class:`RealDataError` naming the file for a missing folder, no acc files, an unreadable
    file, a wrong column count or a row count that differs from the first snapshot's.
    """
    path = _existing_folder(folder)
    acc_files = _numbered_files(path, _ACC_FILE)
    temp_files = _numbered_files(path, _TEMP_FILE)
    if not acc_files:
        raise RealDataError(path, "no acc_NNNNN.csv files: not a run-to-failure folder")
    _log_numbering_gaps(path, "acc", acc_files)
    total = len(acc_files) + len(temp_files)

    first = _read_table(acc_files[0][1], FEMTO_ACC_COLUMNS)
    samples = first.shape[0]
    snapshots = np.empty((len(acc_files), samples, len(FEMTO_CHANNELS)), dtype=np.float64)
    clock_s = np.empty(len(acc_files), dtype=np.float64)
    for index, (_, file) in enumerate(acc_files):
        table = first if index == 0 else _read_table(file, FEMTO_ACC_COLUMNS)
        if table.shape[0] != samples:
            raise RealDataError(
                file, f"has {table.shape[0]} rows; {acc_files[0][1].name} (the first snapshot) has {samples}"
            )
        snapshots[index] = table[:, 4:6]
        hour, minute, second, microsecond = table[0, :4]
        clock_s[index] = hour * 3600.0 + minute * 60.0 + second + microsecond * 1e-6
        if progress is not None:
            progress(index + 1, total)
    snapshot_times_s = _unwrap_days(clock_s)
    origin_s = snapshot_times_s[0]
    snapshot_times_s = snapshot_times_s - origin_s

    temperature_clock: list[np.ndarray] = []
    temperature_values: list[np.ndarray] = []
    for index, (_, file) in enumerate(temp_files):
        table = _read_table(file, FEMTO_TEMP_COLUMNS)
        temperature_clock.append(table[:, 0] * 3600.0 + table[:, 1] * 60.0 + table[:, 2] + table[:, 3] * 0.1)
        temperature_values.append(table[:, 4])
        if progress is not None:
            progress(len(acc_files) + index + 1, total)
    if temperature_clock:
        temperature_times_s = _unwrap_days(np.concatenate(temperature_clock)) - origin_s
        # Both logs start the same day unless one began just after midnight: bring the temperature log's
        # start within half a day of the first snapshot.
        temperature_times_s -= SECONDS_PER_DAY * np.round(temperature_times_s[0] / SECONDS_PER_DAY)
        temperature_c = np.concatenate(temperature_values)
        order = np.argsort(temperature_times_s, kind="stable")
        temperature_times_s, temperature_c = temperature_times_s[order], temperature_c[order]
    else:
        temperature_times_s = np.empty(0, dtype=np.float64)
        temperature_c = np.empty(0, dtype=np.float64)

    return RunToFailure(
        name=path.name,
        fs_hz=FEMTO_FS_HZ,
        snapshot_times_s=snapshot_times_s,
        snapshots_g=snapshots,
        channel_names=FEMTO_CHANNELS,
        temperature_times_s=temperature_times_s,
        temperature_c=temperature_c,
    )


def _numbered_files(folder: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    found = []
    for child in folder.iterdir():
        match = pattern.match(child.name)
        if match is not None and child.is_file():
            found.append((int(match[1]), child))
    return sorted(found)


def _log_numbering_gaps(folder: Path, kind: str, files: list[tuple[int, Path]]) -> None:
    numbers = [number for number, _ in files]
    missing = numbers[-1] - numbers[0] + 1 - len(numbers)
    if missing:
        log.warning("run_to_failure_gap folder=%s kind=%s missing_files=%d", folder, kind, missing)


def _read_table(file: Path, columns: int) -> np.ndarray:
    """Parse one headerless CSV of numbers with ``,`` or ``;`` (from its first line) into (rows, columns)."""
    try:
        text = file.read_bytes().decode("ascii")
    except UnicodeDecodeError as error:
        raise RealDataError(file, f"not ASCII text (byte {error.start})") from None
    except OSError as error:
        raise RealDataError(file, f"cannot be read: {error.strerror}") from error
    if not text.strip():
        raise RealDataError(file, "is empty")
    first_line = text.lstrip().split("\n", 1)[0]
    if ";" in first_line:
        separator = ";"
    elif "," in first_line:
        separator = ","
    else:
        raise RealDataError(
            file, f"first line has neither ',' nor ';' as separator: {first_line.strip()[:80]!r}"
        )
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=separator, ndmin=2, dtype=np.float64)
    except ValueError as error:
        raise RealDataError(file, f"not a table of numbers: {error}") from None
    if table.shape[1] != columns:
        raise RealDataError(file, f"has {table.shape[1]} columns; expected {columns}")
    if not np.isfinite(table).all():
        row = int(np.argwhere(~np.isfinite(table))[0, 0])
        raise RealDataError(file, f"row {row + 1} holds a non-finite value")
    return table


def _unwrap_days(clock_s: np.ndarray) -> np.ndarray:
    """Time of day (s) to continuous time: a day is added each time the clock goes back by over half a day."""
    back = np.diff(clock_s) < -SECONDS_PER_DAY / 2
    days = np.concatenate([[0.0], np.cumsum(back) * SECONDS_PER_DAY])
    return clock_s + days
