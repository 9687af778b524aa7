"""The sensor frame codec: bytes on the serial line to :class:`Frame` and back (pure, no I/O).

The layout is documented in ``frames.md`` next to this file. In short, little-endian::

    sync "\\xa5\\x5aPW" | version u8 | channel u8 | sample_count u16 | sequence u32 | timestamp_us u64
    | fs_hz u32 | scale f32 | samples int16 x sample_count | crc u32 (CRC-32 of version..samples)

:class:`FrameDecoder` takes the byte stream in chunks of any size, finds the sync word, checks each
header before waiting for its body and each body against its CRC, and resynchronises after garbage
without losing a good frame that follows it. What it throws away is counted in :class:`DecoderStats`.

>>> import numpy as np
>>> frame = Frame(channel=3, sequence=7, timestamp_us=1_700_000_000_000_000, fs_hz=25600,
...               scale=16 / 32768, samples=np.array([0, 2048, -32768], dtype=np.int16))
>>> wire = encode(frame)
>>> len(wire)
38
>>> decoder = FrameDecoder()
>>> decoder.feed(b"noise" + wire[:10]) + decoder.feed(wire[10:]) == [frame]
True
>>> frame.values().tolist()
[0.0, 1.0, -16.0]
>>> decoder.stats
DecoderStats(frames=1, bytes_dropped=5, crc_errors=0, header_errors=0)
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

SYNC_WORD = b"\xa5\x5aPW"
"""First four bytes of every frame. Its bytes do not overlap themselves, so skipping past a false sync
word can never skip into the sync word of a real frame."""

VERSION = 1
"""The only frame version this codec reads and writes."""

MAX_SAMPLES = 4096
"""Largest ``sample_count`` in a frame; it bounds the bytes the decoder buffers while it waits."""

HEADER_SIZE = 28
"""Bytes before the samples: sync word through scale."""

CRC_SIZE = 4

MAX_FRAME_SIZE = HEADER_SIZE + 2 * MAX_SAMPLES + CRC_SIZE
"""8224 bytes: the most the decoder ever keeps between two calls of :meth:`FrameDecoder.feed`."""

_HEADER = struct.Struct("<4sBBHIQIf")
_FIELDS = struct.Struct("<BBHIQIf")  # the header after the sync word
_CRC = struct.Struct("<I")
_F32 = struct.Struct("<f")
_SAMPLE_DTYPE = np.dtype("<i2")
_SYNC_TAIL = len(SYNC_WORD) - 1  # bytes kept at the end of garbage: they may start a sync word

assert _HEADER.size == HEADER_SIZE


class FrameError(ValueError):
    """A frame that cannot be encoded; the message names the field and the problem."""


def frame_size(sample_count: int) -> int:
    """Bytes on the wire of a frame with ``sample_count`` samples (header, samples and CRC)."""
    return HEADER_SIZE + 2 * sample_count + CRC_SIZE


def _as_f32(value: float) -> float:
    """``value`` rounded to the nearest float32, as the wire carries it (unchanged if it does not fit)."""
    try:
        return float(_F32.unpack(_F32.pack(value))[0])
    except (OverflowError, struct.error, TypeError):
        return value


def _as_samples(samples: Any) -> np.ndarray:
    """A read-only one-dimensional little-endian int16 array holding ``samples``."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise FrameError(f"samples: must be one-dimensional, got shape {array.shape}")
    if array.dtype != _SAMPLE_DTYPE:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise FrameError(f"samples: must be integers, got dtype {array.dtype}")
        if array.size and (array.min() < -32768 or array.max() > 32767):
            raise FrameError("samples: values outside the int16 range -32768..32767")
        array = array.astype(_SAMPLE_DTYPE)
    else:
        array = array.view()  # our own view: making it read-only leaves the caller's array alone
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Frame:
    """One record from a sensor: ``sample_count`` consecutive samples of one channel.

    ``samples`` is stored as a read-only int16 array and ``scale`` is rounded to float32, exactly as the
    wire carries them, so a frame compares equal to its own decoded copy. Two frames are equal when all
    fields and all samples are equal.
    """

    channel: int
    """Sensor channel, 0..255."""
    sequence: int
    """Per-channel frame counter, 0..2**32-1, wraps; a gap means frames were lost."""
    timestamp_us: int
    """Time of the first sample, in µs since the Unix epoch, on the sensor's clock."""
    fs_hz: int
    """Sample rate in Hz (e.g. 25600 for vibration, 1 for temperature)."""
    scale: float
    """Physical units per count (g per count for vibration, °C per count for temperature)."""
    samples: np.ndarray
    """Raw samples in counts, int16."""
    version: int = VERSION
    """Frame format version; only :data:`VERSION` is encoded and decoded."""

    def __post_init__(self) -> None:
        samples = self.samples
        if not (
            type(samples) is np.ndarray
            and samples.dtype == _SAMPLE_DTYPE
            and samples.ndim == 1
            and not samples.flags.writeable
        ):
            object.__setattr__(self, "samples", _as_samples(samples))
        object.__setattr__(self, "scale", _as_f32(self.scale))

    @property
    def sample_count(self) -> int:
        """Number of samples in the frame."""
        return int(self.samples.shape[0])

    def values(self) -> np.ndarray:
        """The samples in physical units (``samples * scale``; g or °C), float64."""
        values = self.samples.astype(np.float64)
        values *= self.scale
        return values

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.channel == other.channel
            and self.sequence == other.sequence
            and self.timestamp_us == other.timestamp_us
            and self.fs_hz == other.fs_hz
            and self.scale == other.scale
            and self.version == other.version
            and np.array_equal(self.samples, other.samples)
        )

    __hash__ = None  # type: ignore[assignment]  # holds an array: equal frames need not be one object


def _check_int(name: str, value: object, low: int, high: int) -> int:
    try:
        number = operator.index(value)  # type: ignore[call-overload]
    except TypeError:
        raise FrameError(f"{name}: must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise FrameError(f"{name}: {number} is outside {low}..{high}")
    return number


def encode(frame: Frame) -> bytes:
    """The bytes of ``frame`` on the wire, ``frame_size(frame.sample_count)`` long.

    Raises :class:`FrameError` naming the field when a field does not fit the format: ``version`` other
    than 1, ``channel`` outside 0..255, 1..4096 samples, ``sequence`` outside u32, ``timestamp_us``
    outside u64, ``fs_hz`` outside 1..2**32-1, ``scale`` not a finite positive float32.
    """
    _check_int("version", frame.version, VERSION, VERSION)
    channel = _check_int("channel", frame.channel, 0, 0xFF)
    count = _check_int("sample_count", frame.sample_count, 1, MAX_SAMPLES)
    sequence = _check_int("sequence", frame.sequence, 0, 0xFFFF_FFFF)
    timestamp_us = _check_int("timestamp_us", frame.timestamp_us, 0, 0xFFFF_FFFF_FFFF_FFFF)
    fs_hz = _check_int("fs_hz", frame.fs_hz, 1, 0xFFFF_FFFF)
    scale = frame.scale
    if not isinstance(scale, float | int) or not math.isfinite(scale) or scale <= 0:
        raise FrameError(f"scale: must be a finite number > 0, got {scale!r}")
    try:
        header = _HEADER.pack(SYNC_WORD, VERSION, channel, count, sequence, timestamp_us, fs_hz, scale)
    except OverflowError:
        raise FrameError(f"scale: {scale!r} does not fit a float32") from None
    if _F32.unpack_from(header, 24)[0] <= 0:
        raise FrameError(f"scale: {scale!r} rounds to zero as a float32")
    body = header + frame.samples.astype(_SAMPLE_DTYPE, copy=False).tobytes()
    return body + _CRC.pack(zlib.crc32(memoryview(body)[len(SYNC_WORD) :]))


def _header_ok(version: int, count: int, fs_hz: int, scale: float) -> bool:
    """Whether a header can start a frame (checked before waiting for the body)."""
    return version == VERSION and 1 <= count <= MAX_SAMPLES and fs_hz >= 1 and 0 < scale < math.inf


@dataclass
class DecoderStats:
    """What a :class:`FrameDecoder` has seen so far; counters only grow.

    Every byte fed is either in a decoded frame, counted in ``bytes_dropped``, or still buffered.
    """

    frames: int = 0
    """Good frames decoded."""
    bytes_dropped: int = 0
    """Bytes thrown away: garbage between frames, false sync words, the sync words of bad frames."""
    crc_errors: int = 0
    """Frames with a plausible header whose CRC did not match (their sync word is dropped, then rescanned)."""
    header_errors: int = 0
    """Sync words followed by an impossible header (wrong version, sample_count outside 1..4096,
    ``fs_hz`` 0, scale not finite and positive); one byte is dropped and the stream rescanned."""


class FrameDecoder:
    """Turns a byte stream, fed in chunks of any size, into frames.

    The decoder keeps at most :data:`MAX_FRAME_SIZE` bytes between calls, whatever it is fed, and
    never loses a good frame that follows garbage. It is not thread-safe: feed it from one thread.

    >>> decoder = FrameDecoder()
    >>> decoder.feed(b"\\x00" * 100_000)
    []
    >>> decoder.buffered, decoder.stats.bytes_dropped
    (3, 99997)
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._stats = DecoderStats()

    @property
    def stats(self) -> DecoderStats:
        """A copy of the counters (safe to hand to another thread)."""
        return dataclasses.replace(self._stats)

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not fully arrived yet (at most :data:`MAX_FRAME_SIZE`)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add ``data`` to the stream; return the frames completed by it, in stream order."""
        buffer = self._buffer
        buffer += data
        stats = self._stats
        frames: list[Frame] = []
        size = len(buffer)
        position = 0
        with memoryview(buffer) as view:
            while True:
                start = buffer.find(SYNC_WORD, position)
                if start < 0:
                    # Keep only what may be the beginning of a sync word: garbage never grows memory.
                    keep_from = max(position, size - _SYNC_TAIL)
                    stats.bytes_dropped += keep_from - position
                    position = keep_from
                    break
                stats.bytes_dropped += start - position
                position = start
                if size - position < HEADER_SIZE:
                    break
                version, channel, count, sequence, timestamp_us, fs_hz, scale = _FIELDS.unpack_from(
                    buffer, position + len(SYNC_WORD)
                )
                if not _header_ok(version, count, fs_hz, scale):
                    stats.header_errors += 1
                    stats.bytes_dropped += 1
                    position += 1
                    continue
                samples_end = position + HEADER_SIZE + 2 * count
                end = samples_end + CRC_SIZE
                if end > size:
                    break
                (crc,) = _CRC.unpack_from(buffer, samples_end)
                if zlib.crc32(view[position + len(SYNC_WORD) : samples_end]) != crc:
                    stats.crc_errors += 1
                    stats.bytes_dropped += len(SYNC_WORD)
                    position += len(SYNC_WORD)
                    continue
                samples = np.frombuffer(buffer, _SAMPLE_DTYPE, count, position + HEADER_SIZE).copy()
                samples.flags.writeable = False
                frames.append(Frame(channel, sequence, timestamp_us, fs_hz, scale, samples, version))
                position = end
        stats.frames += len(frames)
        del buffer[:position]
        return frames
