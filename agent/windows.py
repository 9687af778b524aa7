"""Per-channel windowing: frames in, batches of fixed-length overlapping windows out.

A channel's samples are appended to a buffer; every full window (``window_samples`` long, advancing by
``hop_samples``) is cut out as one row of a ``(windows, samples)`` array. A gap in the stream (a sequence
number or a timestamp that does not follow on) restarts the buffer, so no window spans a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GAP_TOLERANCE_SAMPLES = 2
"""Timestamp slack, in samples, before two frames count as not contiguous (sensor clock jitter)."""


@dataclass(frozen=True)
class WindowBatch:
    """Windows cut from one channel: ``data[i]`` starts at ``start_us[i]`` (sensor clock, µs)."""

    channel: int
    fs_hz: float
    data: np.ndarray
    start_us: np.ndarray


@dataclass
class _ChannelBuffer:
    fs_hz: float = 0.0
    samples: np.ndarray = field(default_factory=lambda: np.empty(0))
    start_us: int = 0
    offset_samples: int = 0
    """Samples consumed since ``start_us``: starts are computed from it, so rounding never accumulates."""
    next_sequence: int | None = None
    next_timestamp_us: int | None = None


class Windower:
    """Cuts overlapping windows from a stream of frames, channel by channel."""

    def __init__(self, *, window_samples: int = 4096, overlap: float = 0.5) -> None:
        if window_samples < 16 or not 0.0 <= overlap < 1.0:
            raise ValueError("window_samples must be ≥ 16 and overlap within [0, 1)")
        self.window_samples = window_samples
        self.hop_samples = max(1, int(round(window_samples * (1 - overlap))))
        self._buffers: dict[int, _ChannelBuffer] = {}
        self.gaps = 0
        """Restarts of a channel's stream after its first frame (lost frames, clock jumps, rate changes)."""

    def add(
        self, channel: int, sequence: int, timestamp_us: int, fs_hz: float, values: np.ndarray
    ) -> WindowBatch | None:
        """Append one frame's ``values`` (physical units); return the windows it completed, if any."""
        buffer = self._buffers.setdefault(channel, _ChannelBuffer())
        contiguous = (
            buffer.next_sequence == sequence
            and buffer.fs_hz == fs_hz
            and buffer.next_timestamp_us is not None
            and abs(timestamp_us - buffer.next_timestamp_us) <= GAP_TOLERANCE_SAMPLES * 1e6 / fs_hz
        )
        if not contiguous:
            if buffer.next_sequence is not None:
                self.gaps += 1
            buffer.samples = np.asarray(values, dtype=np.float64)
            buffer.start_us = timestamp_us
            buffer.offset_samples = 0
            buffer.fs_hz = fs_hz
        else:
            buffer.samples = np.concatenate([buffer.samples, values])
        buffer.next_sequence = (sequence + 1) % (1 << 32)
        buffer.next_timestamp_us = timestamp_us + int(round(len(values) * 1e6 / fs_hz))
        count = (
            0
            if buffer.samples.size < self.window_samples
            else 1 + (buffer.samples.size - self.window_samples) // self.hop_samples
        )
        if count == 0:
            return None
        index = np.arange(count)[:, None] * self.hop_samples + np.arange(self.window_samples)[None, :]
        data = buffer.samples[index]
        first = buffer.offset_samples + np.arange(count) * self.hop_samples
        starts = buffer.start_us + np.round(first * 1e6 / fs_hz).astype(np.int64)
        consumed = count * self.hop_samples
        buffer.samples = buffer.samples[consumed:]
        buffer.offset_samples += consumed
        return WindowBatch(channel=channel, fs_hz=fs_hz, data=data, start_us=starts)
