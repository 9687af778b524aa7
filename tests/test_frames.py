"""The sensor frame codec, and frames crossing a real pseudo-terminal from the simulator to the agent."""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from plantwatch.agent.frames import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    MAX_SAMPLES,
    SYNC_WORD,
    DecoderStats,
    Frame,
    FrameDecoder,
    FrameError,
    encode,
    frame_size,
)
from plantwatch.agent.serial_input import SerialInputError, SerialReader
from plantwatch.simulators.serial_link import PtyLink, PtyLinkError

F32_MAX = float(np.finfo(np.float32).max)
VIBRATION_SCALE = 16 / 32768  # simulator convention: ±16 g full scale
PAD = bytes(MAX_FRAME_SIZE)  # zeros hold no sync word: enough to settle any frame the decoder waits for


def make_frame(
    *, channel: int = 1, sequence: int = 0, count: int = 8, fill: int | None = None, **fields: object
) -> Frame:
    samples = np.full(count, fill, np.int16) if fill is not None else np.arange(count, dtype=np.int16) * 3 - 7
    values: dict[str, object] = {
        "channel": channel,
        "sequence": sequence,
        "timestamp_us": 1_700_000_000_000_000 + sequence * 20_000,
        "fs_hz": 25600,
        "scale": VIBRATION_SCALE,
        "samples": samples,
    }
    values.update(fields)
    return Frame(**values)  # type: ignore[arg-type]


def raw_frame(*, version: int = 1, count: int = 4, samples: bytes | None = None) -> bytes:
    """Frame bytes with any header values, and a CRC that matches them: only the header is wrong."""
    body = struct.pack("<BBHIQIf", version, 0, count, 0, 0, 25600, VIBRATION_SCALE)
    body += samples if samples is not None else bytes(2 * count)
    return SYNC_WORD + body + struct.pack("<I", zlib.crc32(body))


def decode_all(data: bytes) -> tuple[list[Frame], DecoderStats, int]:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    return frames, decoder.stats, decoder.buffered


# --- strategies ----------------------------------------------------------------------------------

frames_st = st.builds(
    Frame,
    channel=st.integers(0, 255),
    sequence=st.integers(0, 2**32 - 1),
    timestamp_us=st.integers(0, 2**64 - 1),
    fs_hz=st.integers(1, 2**32 - 1),
    scale=st.floats(min_value=0.0, max_value=F32_MAX, exclude_min=True, width=32),
    samples=hnp.arrays(np.int16, st.integers(1, MAX_SAMPLES)),
)

small_frames_st = st.builds(
    Frame,
    channel=st.integers(0, 255),
    sequence=st.integers(0, 2**32 - 1),
    timestamp_us=st.integers(0, 2**64 - 1),
    fs_hz=st.sampled_from([1, 25600, 51200]),
    scale=st.sampled_from([VIBRATION_SCALE, 0.01]),
    samples=hnp.arrays(np.int16, st.integers(1, 64)),
)


@st.composite
def garbage_st(draw: st.DrawFn) -> bytes:
    """Bytes that are no frame but look like parts of one: noise, sync words, plausible headers,
    truncated and corrupted frames."""
    pieces = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["noise", "sync", "header", "truncated", "corrupted"]))
        if kind == "noise":
            pieces.append(draw(st.binary(max_size=64)))
        elif kind == "sync":
            pieces.append(SYNC_WORD)
        elif kind == "header":
            pieces.append(encode(draw(small_frames_st))[:HEADER_SIZE])
        else:
            wire = encode(draw(small_frames_st))
            cut = draw(st.integers(1, len(wire) - 1))
            if kind == "truncated":
                pieces.append(wire[:cut])
            else:
                flipped = bytearray(wire)
                flipped[cut] ^= 1 << draw(st.integers(0, 7))
                pieces.append(bytes(flipped))
    return b"".join(pieces)


# --- layout --------------------------------------------------------------------------------------


def test_layout_matches_the_documented_bytes() -> None:
    frame = Frame(
        channel=2,
        sequence=0x01020304,
        timestamp_us=0x1122334455667788,
        fs_hz=25600,
        scale=0.5,
        samples=np.array([1, -1, 256], dtype=np.int16),
    )
    wire = encode(frame)
    assert wire.hex() == (
        "a55a5057" "01" "02" "0300" "04030201" "8877665544332211" "00640000" "0000003f"
        "0100" "ffff" "0001" "063b0b23"
    )  # fmt: skip
    assert len(wire) == frame_size(3) == 38
    assert struct.unpack("<I", wire[-4:])[0] == zlib.crc32(wire[4:-4])


def test_values_are_samples_times_scale_in_physical_units() -> None:
    frame = make_frame(samples=np.array([-32768, 0, 16384, 1], dtype=np.int16))
    values = frame.values()
    assert values.dtype == np.float64
    assert values.tolist() == [-16.0, 0.0, 8.0, 16 / 32768]


def test_scale_is_carried_as_float32_so_a_decoded_frame_equals_the_original() -> None:
    frame = make_frame(fs_hz=1, scale=0.01, count=1)  # temperature convention: 0.01 °C per count
    assert frame.scale == float(np.float32(0.01)) != 0.01
    assert decode_all(encode(frame))[0] == [frame]


def test_samples_are_read_only_and_the_callers_array_stays_writable() -> None:
    samples = np.zeros(4, np.int16)
    frame = make_frame(samples=samples)
    samples[0] = 5  # the caller's array is not frozen...
    decoded = decode_all(encode(make_frame()))[0][0]
    for array in (frame.samples, decoded.samples):
        with pytest.raises(ValueError):
            array[0] = 1  # ...but a frame's samples are


def test_frames_differing_only_in_samples_are_not_equal() -> None:
    assert make_frame() == make_frame()
    assert make_frame() != make_frame(fill=0)
    assert make_frame() != make_frame(count=9)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channel", 256),
        ("channel", -1),
        ("sequence", 2**32),
        ("timestamp_us", 2**64),
        ("timestamp_us", -1),
        ("fs_hz", 0),
        ("fs_hz", 2**32),
        ("scale", 0.0),
        ("scale", -1.0),
        ("scale", float("nan")),
        ("scale", float("inf")),
        ("scale", 1e39),  # finite, but not as a float32
        ("scale", 1e-50),  # rounds to 0 as a float32
        ("version", 2),
    ],
)
def test_encode_refuses_a_field_out_of_range_and_names_it(field: str, value: object) -> None:
    with pytest.raises(FrameError, match=field):
        encode(make_frame(**{field: value}))


@pytest.mark.parametrize("count", [0, MAX_SAMPLES + 1])
def test_encode_refuses_a_sample_count_out_of_range(count: int) -> None:
    with pytest.raises(FrameError, match="sample_count"):
        encode(make_frame(count=count))


def test_extreme_fields_encode_and_decode() -> None:
    frame = make_frame(channel=255, sequence=2**32 - 1, timestamp_us=2**64 - 1, fs_hz=2**32 - 1, count=4096)
    assert decode_all(encode(frame))[0] == [frame]


def test_samples_outside_int16_are_refused() -> None:
    with pytest.raises(FrameError, match="int16"):
        make_frame(samples=np.array([0, 40000]))
    with pytest.raises(FrameError, match="integers"):
        make_frame(samples=np.array([0.5]))


# --- round trips -----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(frames_st)
def test_any_valid_frame_round_trips(frame: Frame) -> None:
    wire = encode(frame)
    assert len(wire) == frame_size(frame.sample_count)
    frames, stats, buffered = decode_all(wire)
    assert frames == [frame]
    assert stats == DecoderStats(frames=1)
    assert buffered == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.one_of(small_frames_st, garbage_st()), max_size=8),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
)
def test_any_split_of_a_stream_gives_the_same_frames_and_counts(
    pieces: list[Frame | bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode(p) if isinstance(p, Frame) else p for p in pieces)
    whole_frames, whole_stats, whole_buffered = decode_all(stream)

    decoder = FrameDecoder()
    chunked: list[Frame] = []
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for start, end in zip(bounds, bounds[1:], strict=False):
        chunked += decoder.feed(stream[start:end])
        assert decoder.buffered < MAX_FRAME_SIZE
    assert chunked == whole_frames
    assert decoder.stats == whole_stats
    assert decoder.buffered == whole_buffered
    # every byte is in a frame, dropped, or still waiting
    decoded_bytes = sum(frame_size(f.sample_count) for f in whole_frames)
    assert decoded_bytes + whole_stats.bytes_dropped + whole_buffered == len(stream)
    assert whole_stats.frames == len(whole_frames)


@settings(max_examples=200, deadline=None)
@given(garbage=garbage_st(), frame=small_frames_st)
def test_a_good_frame_after_any_garbage_is_decoded(garbage: bytes, frame: Frame) -> None:
    frames, stats, _ = decode_all(garbage + encode(frame) + PAD)
    assert frames == [frame]
    assert stats.bytes_dropped >= len(garbage)


@settings(max_examples=200, deadline=None)
@given(first=small_frames_st, second=small_frames_st, data=st.data())
def test_any_single_bit_flip_loses_only_the_frame_it_hits(
    first: Frame, second: Frame, data: st.DataObject
) -> None:
    damaged = bytearray(encode(first))
    bit = data.draw(st.integers(0, 8 * len(damaged) - 1))
    damaged[bit // 8] ^= 1 << (bit % 8)
    frames, stats, _ = decode_all(bytes(damaged) + encode(second) + PAD)
    assert frames == [second]
    assert stats.crc_errors + stats.header_errors >= (0 if bit < 8 * len(SYNC_WORD) else 1)


# --- resynchronisation, exact counts -------------------------------------------------------------


def test_garbage_before_and_between_frames_is_dropped_and_counted() -> None:
    a, b = make_frame(sequence=1), make_frame(sequence=2)
    frames, stats, buffered = decode_all(b"\x00\xff junk" + encode(a) + b"more junk!" + encode(b))
    assert frames == [a, b]
    assert stats == DecoderStats(frames=2, bytes_dropped=7 + 10)
    assert buffered == 0


def test_a_truncated_frame_waits_for_its_end() -> None:
    frame = make_frame()
    wire = encode(frame)
    decoder = FrameDecoder()
    assert decoder.feed(wire[:-1]) == []
    assert decoder.buffered == len(wire) - 1
    assert decoder.feed(wire[-1:]) == [frame]
    assert decoder.stats == DecoderStats(frames=1)


def test_a_frame_cut_short_by_a_sensor_restart_does_not_hide_the_next_frame() -> None:
    cut, good = encode(make_frame(sequence=1, count=100)), make_frame(sequence=0)
    frames, stats, _ = decode_all(cut[:60] + encode(good) + PAD)
    assert frames == [good]
    assert stats.crc_errors == 1
    assert stats.bytes_dropped == 60 + len(PAD) - 3


def test_a_flipped_sample_bit_is_a_crc_error_and_the_next_frame_is_decoded() -> None:
    bad, good = bytearray(encode(make_frame(sequence=1))), make_frame(sequence=2)
    bad[HEADER_SIZE + 3] ^= 0x10
    frames, stats, buffered = decode_all(bytes(bad) + encode(good))
    assert frames == [good]
    assert stats == DecoderStats(frames=1, bytes_dropped=len(bad), crc_errors=1)
    assert buffered == 0


def test_a_damaged_crc_field_is_a_crc_error() -> None:
    bad = bytearray(encode(make_frame()))
    bad[-1] ^= 0x80
    frames, stats, _ = decode_all(bytes(bad))
    assert frames == []
    assert stats.crc_errors == 1


def test_a_fake_sync_word_inside_garbage_is_skipped() -> None:
    good = make_frame()
    garbage = b"abc" + SYNC_WORD + b"\x01\x00\x08\x00" + b"z" * 30  # plausible start, then nonsense
    frames, stats, _ = decode_all(garbage + encode(good) + PAD)
    assert frames == [good]
    assert stats.header_errors + stats.crc_errors == 1


def test_a_sync_word_split_across_feeds_is_found() -> None:
    frame = make_frame()
    decoder = FrameDecoder()
    wire = b"noise" + encode(frame)
    assert decoder.feed(wire[:7]) == []  # ends with the first two bytes of the sync word
    assert decoder.buffered == len(SYNC_WORD) - 1  # kept: they may start a sync word
    assert decoder.feed(wire[7:]) == [frame]


def test_a_wrong_version_is_a_header_error_even_with_a_matching_crc() -> None:
    bad, good = raw_frame(version=2), make_frame()
    frames, stats, buffered = decode_all(bad + encode(good))
    assert frames == [good]
    assert stats == DecoderStats(frames=1, bytes_dropped=len(bad), header_errors=1)
    assert buffered == 0


@pytest.mark.parametrize("count", [0, MAX_SAMPLES + 1, 0xFFFF])
def test_a_sample_count_out_of_range_is_refused_before_its_body_arrives(count: int) -> None:
    bad_header = raw_frame(count=count, samples=b"")[:HEADER_SIZE]
    good = make_frame()
    decoder = FrameDecoder()
    # no padding: the good frame comes out at once, the decoder does not wait for the claimed body
    assert decoder.feed(bad_header + encode(good)) == [good]
    assert decoder.stats == DecoderStats(frames=1, bytes_dropped=HEADER_SIZE, header_errors=1)


def test_a_header_is_judged_as_soon_as_it_is_complete() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(raw_frame(version=9)[: HEADER_SIZE - 1]) == []
    assert decoder.stats.header_errors == 0
    decoder.feed(raw_frame(version=9)[HEADER_SIZE - 1 : HEADER_SIZE])
    assert decoder.stats.header_errors == 1


def test_pure_garbage_does_not_grow_the_buffer() -> None:
    decoder = FrameDecoder()
    rng = np.random.default_rng(7)
    fed = 0
    for _ in range(500):
        chunk = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes().replace(SYNC_WORD, b"")
        fed += len(chunk)
        assert decoder.feed(chunk) == []
        assert decoder.buffered <= len(SYNC_WORD) - 1
    assert decoder.stats.bytes_dropped == fed - decoder.buffered


def test_false_headers_never_hold_more_than_one_frame_of_bytes() -> None:
    decoder = FrameDecoder()
    false_start = SYNC_WORD + struct.pack("<BBHIQIf", 1, 0, MAX_SAMPLES, 0, 0, 25600, 1.0)
    for _ in range(50):
        decoder.feed(false_start + bytes(1000))
        assert decoder.buffered < MAX_FRAME_SIZE


# --- simulator pty → agent serial reader ---------------------------------------------------------


def read_until(reader: SerialReader, count: int, deadline_s: float = 10.0) -> list[Frame]:
    received: list[Frame] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < count and time.monotonic() < deadline:
        received += reader.read_frames()
    return received


def test_frames_cross_a_pty_unchanged_when_the_pty_buffer_overflows(tmp_path: os.PathLike[str]) -> None:
    rng = np.random.default_rng(3)
    frames = [
        make_frame(channel=i % 4, sequence=i // 4, samples=rng.integers(-32768, 32768, 512, dtype=np.int16))
        for i in range(400)
    ]
    noise = b"\x00line noise"
    stream = noise + b"".join(encode(f) for f in frames)  # ~420 kB, a hundred times the pty buffer
    errors: list[BaseException] = []

    with PtyLink(link_path=f"{tmp_path}/sensor") as link:

        def write() -> None:
            try:
                for start in range(0, len(stream), 3000):  # chunks that do not align with frames
                    link.write(stream[start : start + 3000])
            except BaseException as exc:
                errors.append(exc)

        with SerialReader(str(link.link_path), timeout_s=0.05) as reader:
            writer = threading.Thread(target=write)
            writer.start()
            received = read_until(reader, len(frames))
            writer.join(timeout=10)
            assert not writer.is_alive()
            assert errors == []
            assert received == frames
            assert reader.stats == DecoderStats(frames=len(frames), bytes_dropped=len(noise))


def test_the_reader_raises_closed_once_the_simulator_closes_the_pty() -> None:
    link = PtyLink()
    reader = SerialReader(link.port_path, timeout_s=0.05)
    try:
        frame = make_frame()
        link.write(encode(frame))
        assert read_until(reader, 1) == [frame]
        link.close()
        for _ in range(2):  # and it keeps saying so
            with pytest.raises(SerialInputError, match="closed") as caught:
                reader.read_frames()
            assert link.port_path in str(caught.value)
    finally:
        reader.close()
        link.close()


def test_close_from_another_thread_wakes_a_blocked_read() -> None:
    with PtyLink() as link:
        reader = SerialReader(link.port_path, timeout_s=30.0)
        outcome: list[object] = []

        def read() -> None:
            try:
                outcome.append(reader.read_frames())
            except SerialInputError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=read)
        thread.start()
        started = time.monotonic()
        reader.close()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert time.monotonic() - started < 5  # not the 30 s read timeout
        assert len(outcome) == 1
        with pytest.raises(SerialInputError, match="closed"):
            reader.read_frames()


def test_the_reader_names_a_port_it_cannot_open(tmp_path: os.PathLike[str]) -> None:
    missing = f"{tmp_path}/no-such-tty"
    with pytest.raises(SerialInputError, match="no-such-tty") as caught:
        SerialReader(missing)
    assert caught.value.port == missing


def test_a_second_reader_cannot_open_a_port_in_use() -> None:
    with (
        PtyLink() as link,
        SerialReader(link.port_path),
        pytest.raises(SerialInputError, match=link.port_path),
    ):
        SerialReader(link.port_path)


def test_a_write_nobody_reads_fails_loudly_instead_of_dropping() -> None:
    with PtyLink(write_timeout_s=0.2) as link:
        started = time.monotonic()
        with pytest.raises(PtyLinkError, match=r"wrote \d+ of 1000000 bytes"):
            link.write(bytes(1_000_000))
        assert time.monotonic() - started < 5
        assert link.pending() > 0


def test_drain_reports_when_the_reader_has_read_everything() -> None:
    with PtyLink() as link, SerialReader(link.port_path, timeout_s=0.05) as reader:
        frame = make_frame()
        link.write(encode(frame))
        deadline = time.monotonic() + 5  # the kernel queues written bytes for the reader a moment later
        while link.pending() == 0 and time.monotonic() < deadline:
            pass
        assert link.pending() == frame_size(8)
        assert link.drain(timeout_s=0.05) is False
        assert read_until(reader, 1) == [frame]
        assert link.drain(timeout_s=5) is True


def test_the_link_symlink_is_replaced_when_stale_and_removed_on_close(tmp_path: os.PathLike[str]) -> None:
    path = f"{tmp_path}/sensor"
    os.symlink("/dev/pts/nonexistent", path)
    link = PtyLink(link_path=path)
    assert os.readlink(path) == link.port_path
    link.close()
    assert not os.path.lexists(path)
    link.close()  # idempotent
    with pytest.raises(PtyLinkError, match="closed"):
        link.write(b"x")


def test_the_link_refuses_to_replace_a_regular_file(tmp_path: os.PathLike[str]) -> None:
    path = f"{tmp_path}/sensor"
    with open(path, "w") as file:
        file.write("config\n")
    with pytest.raises(PtyLinkError, match="not a symlink"):
        PtyLink(link_path=path)
    with open(path) as file:
        assert file.read() == "config\n"
