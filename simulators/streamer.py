"""The simulated sensor: a machine's signals as framed binary records on a serial port (a pty).

Like a wireless or USB condition-monitoring sensor, it takes a **snapshot** every
``snapshot_interval_s`` of simulated time: ``snapshot_samples`` of acceleration at ``fs_hz`` on the
vibration channel (frames of ``frame_samples``) and one temperature reading on the temperature channel.
Simulated time runs ``speed`` times faster than the wall clock (0: as fast as the reader takes them), so
days of degradation replay in seconds; frame timestamps carry the simulated time.

Scales (the simulator's convention, carried in every frame): vibration ±16 g full scale, i.e.
16/32768 g per count; temperature 0.01 °C per count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from plantwatch.agent.frames import Frame, encode
from plantwatch.log import event
from plantwatch.simulators.machine import FaultSpec, MachineSpec, temperature_c, vibration_g

log = logging.getLogger("plantwatch.simulators.streamer")

VIBRATION_SCALE_G = 16.0 / 32768.0
TEMPERATURE_SCALE_C = 0.01


@dataclass(frozen=True)
class StreamSettings:
    """What the simulated sensor sends and how fast."""

    start_epoch_s: float
    duration_s: float = 3 * 86_400.0
    snapshot_interval_s: float = 900.0
    snapshot_samples: int = 16_384
    frame_samples: int = 1024
    fs_hz: int = 25_600
    vibration_channel: int = 0
    temperature_channel: int = 1
    speed: float = 0.0
    seed: int = 1
    machine: MachineSpec = field(default_factory=MachineSpec)
    fault: FaultSpec | None = field(default_factory=FaultSpec)


def snapshot_frames(
    settings: StreamSettings, index: int, rng: np.random.Generator, sequences: dict[int, int]
) -> list[Frame]:
    """The frames of snapshot ``index`` (vibration frames, then one temperature frame)."""
    t_s = index * settings.snapshot_interval_s
    stamp_us = int(round((settings.start_epoch_s + t_s) * 1e6))
    accel = vibration_g(
        settings.machine,
        settings.fault,
        t0_s=t_s,
        samples=settings.snapshot_samples,
        fs_hz=settings.fs_hz,
        rng=rng,
    )
    counts = np.clip(np.round(accel / VIBRATION_SCALE_G), -32768, 32767).astype(np.int16)
    frames = []
    for offset in range(0, counts.size, settings.frame_samples):
        chunk = counts[offset : offset + settings.frame_samples]
        channel = settings.vibration_channel
        frames.append(
            Frame(
                channel=channel,
                sequence=sequences.get(channel, 0),
                timestamp_us=stamp_us + int(round(offset * 1e6 / settings.fs_hz)),
                fs_hz=settings.fs_hz,
                scale=VIBRATION_SCALE_G,
                samples=chunk,
            )
        )
        sequences[channel] = (sequences.get(channel, 0) + 1) % (1 << 32)
    celsius = temperature_c(settings.machine, settings.fault, t_s=t_s, rng=rng)
    channel = settings.temperature_channel
    frames.append(
        Frame(
            channel=channel,
            sequence=sequences.get(channel, 0),
            timestamp_us=stamp_us,
            fs_hz=1,
            scale=TEMPERATURE_SCALE_C,
            samples=np.array([round(celsius / TEMPERATURE_SCALE_C)], dtype=np.int16),
        )
    )
    sequences[channel] = (sequences.get(channel, 0) + 1) % (1 << 32)
    return frames


def stream(
    settings: StreamSettings,
    write: Callable[[bytes], None],
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> int:
    """Send every snapshot of the simulated run through ``write``; returns the number of frames sent.

    ``progress(snapshot, snapshots, degradation)`` is called after each snapshot.
    """
    rng = np.random.default_rng(settings.seed)
    sequences: dict[int, int] = {}
    snapshots = int(settings.duration_s // settings.snapshot_interval_s) + 1
    started = time.monotonic()
    sent = 0
    for index in range(snapshots):
        if settings.speed > 0:
            # pace simulated time against the wall clock; this is a rate, not a wait for a condition
            due = started + index * settings.snapshot_interval_s / settings.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frames = snapshot_frames(settings, index, rng, sequences)
        write(b"".join(encode(frame) for frame in frames))
        sent += len(frames)
        if progress is not None:
            t_s = index * settings.snapshot_interval_s
            progress(index + 1, snapshots, settings.fault.progress(t_s) if settings.fault else 0.0)
    event(log, logging.INFO, "stream_done", snapshots=snapshots, frames=sent)
    return sent
