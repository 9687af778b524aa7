"""The simulated sensor: machines' signals as framed binary records on a serial port (a pty).

Like a multi-channel condition-monitoring sensor hub, it takes a **snapshot** every
``snapshot_interval_s`` of simulated time: for every asset in turn, ``snapshot_samples`` of acceleration
at ``fs_hz`` on the asset's vibration channel (frames of ``frame_samples``), then one temperature reading
on its temperature channel. One machine (``machine``, ``fault``, the two channels) or a fleet
(:mod:`plantwatch.simulators.fleet`).
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
from plantwatch.simulators.fleet import FleetAsset, check_fleet
from plantwatch.simulators.machine import FaultSpec, MachineSpec, temperature_c, vibration_g

log = logging.getLogger("plantwatch.simulators.streamer")

VIBRATION_SCALE_G = 16.0 / 32768.0
TEMPERATURE_SCALE_C = 0.01

SINGLE_ASSET_ID = "pump-7"
"""The asset id of a one-machine stream (the demo's pump)."""


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
    fleet: tuple[FleetAsset, ...] = ()
    """Assets to stream, each on its own channels; when given, ``machine``, ``fault`` and the two
    channel settings are not used."""

    def __post_init__(self) -> None:
        if self.fleet:
            check_fleet(self.fleet)

    def assets(self) -> tuple[FleetAsset, ...]:
        """What is streamed: the fleet, or the one machine as asset :data:`SINGLE_ASSET_ID`."""
        if self.fleet:
            return self.fleet
        return (
            FleetAsset(
                asset_id=SINGLE_ASSET_ID,
                machine=self.machine,
                fault=self.fault,
                vibration_channel=self.vibration_channel,
                temperature_channel=self.temperature_channel,
            ),
        )

    def degradation(self, t_s: float) -> float:
        """The most advanced fault's progress (0 … 1) at simulated time ``t_s``; 0 for a healthy fleet."""
        return max((a.fault.progress(t_s) for a in self.assets() if a.fault is not None), default=0.0)


def snapshot_frames(
    settings: StreamSettings, index: int, rng: np.random.Generator, sequences: dict[int, int]
) -> list[Frame]:
    """The frames of snapshot ``index``: for each asset, its vibration frames, then its temperature frame."""
    frames: list[Frame] = []
    for asset in settings.assets():
        frames.extend(_asset_frames(settings, asset, index, rng, sequences))
    return frames


def _asset_frames(
    settings: StreamSettings,
    asset: FleetAsset,
    index: int,
    rng: np.random.Generator,
    sequences: dict[int, int],
) -> list[Frame]:
    t_s = index * settings.snapshot_interval_s
    stamp_us = int(round((settings.start_epoch_s + t_s) * 1e6))
    accel = vibration_g(
        asset.machine,
        asset.fault,
        t0_s=t_s,
        samples=settings.snapshot_samples,
        fs_hz=settings.fs_hz,
        rng=rng,
    )
    counts = np.clip(np.round(accel / VIBRATION_SCALE_G), -32768, 32767).astype(np.int16)
    frames = []
    for offset in range(0, counts.size, settings.frame_samples):
        chunk = counts[offset : offset + settings.frame_samples]
        channel = asset.vibration_channel
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
    celsius = temperature_c(asset.machine, asset.fault, t_s=t_s, rng=rng)
    channel = asset.temperature_channel
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

    ``progress(snapshot, snapshots, degradation)`` is called after each snapshot (degradation: the most
    advanced fault's progress, 0 … 1).
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
            progress(index + 1, snapshots, settings.degradation(index * settings.snapshot_interval_s))
    event(log, logging.INFO, "stream_done", snapshots=snapshots, assets=len(settings.assets()), frames=sent)
    return sent
