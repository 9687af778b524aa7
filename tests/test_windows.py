"""Windowing: exact window starts and values on a ramp, restarts at gaps, frames of any size."""

from __future__ import annotations

import numpy as np
import pytest

from plantwatch.agent.windows import WindowBatch, Windower

FS_HZ = 1000.0  # one sample a millisecond: sample i of a stream is at T0_US + 1000 i
T0_US = 1_700_000_000_000_000
US_PER_SAMPLE = 1000


def feed(
    windower: Windower,
    sizes: list[int],
    *,
    channel: int = 0,
    first_sequence: int = 0,
    first_sample: int = 0,
) -> list[WindowBatch]:
    """Feed a ramp (sample i has value i) in frames of ``sizes``; the batches that came out."""
    batches = []
    sample = first_sample
    for k, size in enumerate(sizes):
        values = np.arange(sample, sample + size, dtype=np.float64)
        batch = windower.add(channel, first_sequence + k, T0_US + sample * US_PER_SAMPLE, FS_HZ, values)
        if batch is not None:
            batches.append(batch)
        sample += size
    return batches


def rows(batches: list[WindowBatch]) -> tuple[np.ndarray, np.ndarray]:
    """All windows and their starts, in order."""
    if not batches:
        return np.empty((0, 0)), np.empty(0, dtype=np.int64)
    return np.concatenate([b.data for b in batches]), np.concatenate([b.start_us for b in batches])


def test_half_overlap_cuts_exact_windows_from_a_ramp_across_frames() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    assert windower.hop_samples == 8
    batches = feed(windower, [10] * 6)  # 60 samples
    data, starts = rows(batches)
    expected_first = [0, 8, 16, 24, 32, 40]  # every start whose window ends by sample 60
    assert data.shape == (len(expected_first), 16)
    for row, first in zip(data, expected_first, strict=True):
        assert np.array_equal(row, np.arange(first, first + 16))
    assert np.array_equal(starts, [T0_US + first * US_PER_SAMPLE for first in expected_first])
    assert windower.gaps == 0
    # which frame completed which windows: the frame ending at sample 20 completes [0, 16), the one ending
    # at 30 completes [8, 24), the one ending at 40 completes [16, 32) and [24, 40) ...
    assert [b.data[:, 0].tolist() for b in batches] == [[0], [8], [16, 24], [32], [40]]
    assert all(b.channel == 0 and b.fs_hz == FS_HZ for b in batches)


def test_frames_of_different_sizes_give_the_same_windows_as_one_long_frame() -> None:
    sizes = [5, 13, 1, 40, 7, 16, 3, 29, 2]  # 116 samples
    pieces = rows(feed(Windower(window_samples=16, overlap=0.5), sizes))
    whole = rows(feed(Windower(window_samples=16, overlap=0.5), [sum(sizes)]))
    assert np.array_equal(pieces[0], whole[0])
    assert np.array_equal(pieces[1], whole[1])
    assert pieces[0].shape == (13, 16)  # starts 0, 8, ..., 96


@pytest.mark.parametrize(("overlap", "hop"), [(0.0, 32), (0.25, 24), (0.75, 8)])
def test_hop_follows_the_overlap(overlap: float, hop: int) -> None:
    windower = Windower(window_samples=32, overlap=overlap)
    data, starts = rows(feed(windower, [50, 50]))
    expected_first = list(range(0, 100 - 32 + 1, hop))
    assert data[:, 0].tolist() == expected_first
    assert np.array_equal(starts, [T0_US + first * US_PER_SAMPLE for first in expected_first])


def test_a_sequence_gap_restarts_the_window_and_is_counted() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    before = feed(windower, [10, 10])  # samples 0..19, sequences 0, 1
    # sequence 3 follows 1 (frame 2 lost); its timestamp follows on as if nothing was lost
    after = feed(windower, [10, 10], first_sequence=3, first_sample=20)
    assert windower.gaps == 1
    data, starts = rows(before + after)
    # windows [0, 16) before the gap, then from sample 20 afresh: [20, 36) once 16 samples are there
    assert data[:, 0].tolist() == [0, 20]
    assert starts.tolist() == [T0_US, T0_US + 20 * US_PER_SAMPLE]
    for row in data:
        assert np.array_equal(row, np.arange(row[0], row[0] + 16))  # no window spans the gap


def test_a_timestamp_jump_restarts_the_window_even_with_contiguous_sequences() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    feed(windower, [12])  # samples 0..11, sequence 0
    # sequence 1 follows on, but its timestamp is 1 s late: the sensor lost samples or reset its clock
    batch = windower.add(0, 1, T0_US + (12 + 1000) * US_PER_SAMPLE, FS_HZ, np.arange(100, 116.0))
    assert windower.gaps == 1
    assert batch is not None
    assert np.array_equal(batch.data, [np.arange(100, 116.0)])
    assert batch.start_us.tolist() == [T0_US + 1012 * US_PER_SAMPLE]


def test_timestamp_jitter_within_tolerance_is_not_a_gap() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    windower.add(0, 0, T0_US, FS_HZ, np.arange(10.0))
    batch = windower.add(0, 1, T0_US + 10 * US_PER_SAMPLE + 1500, FS_HZ, np.arange(10.0, 20.0))  # 1.5 samples
    assert windower.gaps == 0
    assert batch is not None and np.array_equal(batch.data[0], np.arange(16.0))


def test_a_gap_is_counted_even_when_the_buffer_was_just_emptied() -> None:
    # without overlap every full window consumes the buffer; a gap right after must still count
    windower = Windower(window_samples=16, overlap=0.0)
    feed(windower, [16, 16])
    feed(windower, [16], first_sequence=5, first_sample=100)
    assert windower.gaps == 1


def test_the_first_frame_of_a_channel_is_not_a_gap() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    feed(windower, [4], channel=0)
    feed(windower, [4], channel=1, first_sequence=77)
    assert windower.gaps == 0


def test_the_sequence_number_wraps_around_without_a_gap() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    windower.add(0, (1 << 32) - 1, T0_US, FS_HZ, np.arange(8.0))  # the last 32-bit sequence number
    batch = windower.add(0, 0, T0_US + 8 * US_PER_SAMPLE, FS_HZ, np.arange(8.0, 16.0))
    assert windower.gaps == 0
    assert batch is not None and np.array_equal(batch.data[0], np.arange(16.0))


def test_a_sample_rate_change_restarts_the_window() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    windower.add(0, 0, T0_US, FS_HZ, np.arange(12.0))
    batch = windower.add(0, 1, T0_US + 12 * US_PER_SAMPLE, 2 * FS_HZ, np.arange(16.0))
    assert windower.gaps == 1
    assert batch is not None and batch.fs_hz == 2 * FS_HZ
    assert np.array_equal(batch.data, [np.arange(16.0)])


def test_channels_are_windowed_independently() -> None:
    windower = Windower(window_samples=16, overlap=0.5)
    out = []
    for k in range(3):
        for channel in (0, 1):
            values = np.arange(8 * k, 8 * k + 8, dtype=np.float64) + 1000 * channel
            batch = windower.add(channel, k, T0_US + 8 * k * US_PER_SAMPLE, FS_HZ, values)
            if batch is not None:
                out.append(batch)
    assert [(b.channel, b.data[:, 0].tolist()) for b in out] == [(0, [0]), (1, [1000]), (0, [8]), (1, [1008])]
    assert windower.gaps == 0


def test_window_starts_do_not_drift_when_a_hop_is_not_a_whole_number_of_microseconds() -> None:
    fs_hz = 48000.0  # a hop of 8 samples is 166.67 µs, a frame of 100 samples 2083.33 µs
    windower = Windower(window_samples=16, overlap=0.5)
    frame = 100
    starts = []
    for k in range(2000):
        timestamp_us = T0_US + int(round(k * frame * 1e6 / fs_hz))
        batch = windower.add(0, k, timestamp_us, fs_hz, np.zeros(frame))
        if batch is not None:
            starts.extend(batch.start_us.tolist())
    assert windower.gaps == 0
    first_sample = np.arange(len(starts)) * 8
    expected = T0_US + first_sample * 1e6 / fs_hz
    assert np.max(np.abs(np.asarray(starts) - expected)) <= 1.0


@pytest.mark.parametrize(("window_samples", "overlap"), [(8, 0.5), (4096, 1.0), (4096, -0.1)])
def test_unusable_window_settings_are_refused(window_samples: int, overlap: float) -> None:
    with pytest.raises(ValueError, match="window_samples"):
        Windower(window_samples=window_samples, overlap=overlap)
