"""A fleet of simulated assets: different machines and bearings, each on its own sensor channels.

The streamer sends every asset of a fleet on its channels; :func:`agent_asset_tables` renders the same
fleet as the agent's ``[[assets]]`` tables, so a demo's agent configuration and its simulator cannot
disagree about channels, speeds or bearings.

>>> fleet = default_fleet()
>>> [(a.asset_id, a.vibration_channel, a.fault.mode if a.fault else "healthy") for a in fleet]
[('pump-7', 0, 'outer_race'), ('fan-2', 2, 'healthy'), ('compressor-4', 4, 'healthy')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plantwatch.config import check_name
from plantwatch.simulators.machine import BEARINGS, BearingGeometry, FaultSpec, MachineSpec

PUMP_FAULT = FaultSpec(mode="outer_race")
"""The default fleet's fault: an outer-race defect on pump-7 from day 1, failure on day 3."""

ORDER_DECIMALS = 4
"""Speeds and defect orders go into the agent's configuration with this many decimals: 0.01 % of a line's
frequency, far inside the agent's ±2 % search band."""


@dataclass(frozen=True)
class FleetAsset:
    """One simulated asset: its machine, its fault (``None``: healthy) and its sensor channels."""

    asset_id: str
    machine: MachineSpec
    fault: FaultSpec | None
    vibration_channel: int
    temperature_channel: int
    description: str = ""
    """What it is, in a planner's words (e.g. ``"pump motor, SKF 6205"``)."""

    def __post_init__(self) -> None:
        verdict = check_name(self.asset_id)
        if verdict is not True:
            raise ValueError(f"asset id {self.asset_id!r} {verdict}")
        for name in ("vibration_channel", "temperature_channel"):
            channel = getattr(self, name)
            if not 0 <= channel <= 255:
                raise ValueError(
                    f"asset {self.asset_id}: {name} must be a channel number 0..255, got {channel}"
                )
        if self.vibration_channel == self.temperature_channel:
            raise ValueError(f"asset {self.asset_id}: vibration_channel and temperature_channel must differ")


def check_fleet(fleet: Sequence[FleetAsset]) -> None:
    """Raise :class:`ValueError` for an empty fleet, a repeated asset id or a channel used twice."""
    if not fleet:
        raise ValueError("a fleet needs at least one asset")
    ids = [asset.asset_id for asset in fleet]
    repeated = sorted({asset_id for asset_id in ids if ids.count(asset_id) > 1})
    if repeated:
        raise ValueError(f"asset ids must be unique; repeated: {', '.join(repeated)}")
    owner: dict[int, str] = {}
    for asset in fleet:
        for channel in (asset.vibration_channel, asset.temperature_channel):
            if channel in owner:
                raise ValueError(f"channel {channel} is used by both {owner[channel]} and {asset.asset_id}")
            owner[channel] = asset.asset_id


def bearing_name(geometry: BearingGeometry) -> str | None:
    """The name of ``geometry`` in :data:`~plantwatch.simulators.machine.BEARINGS`, or ``None``."""
    return next((name for name, known in BEARINGS.items() if known == geometry), None)


def default_fleet(*, fault: FaultSpec | None = PUMP_FAULT) -> tuple[FleetAsset, ...]:
    """Three assets of a line: pump-7 with ``fault`` (channels 0/1), fan-2 and compressor-4, healthy.

    * pump-7: the CWRU motor (SKF 6205 at 29.95 Hz, no load), the machine of the single-asset demo;
    * fan-2: a belt-driven fan on spherical roller bearings (SKF 22220 E), 16.5 Hz, speed wandering more
      (belt slip), a low structural resonance (2.4 kHz) with a second one; channels 2/3;
    * compressor-4: a 2-pole motor (50 Hz supply) on an SKF 6308 at 80 % load, 4.8 kHz resonance;
      channels 4/5.

    The healthy assets' overall levels (1×, 2×, noise at their load) stay within the range of healthy
    machines the shipped anomaly model was trained on; their speeds, bearings and resonances differ.
    """
    return (
        FleetAsset(
            asset_id="pump-7",
            machine=MachineSpec(),
            fault=fault,
            vibration_channel=0,
            temperature_channel=1,
            description="pump motor, SKF 6205",
        ),
        FleetAsset(
            asset_id="fan-2",
            machine=MachineSpec(
                shaft_hz=16.5,
                bearing=BEARINGS["SKF 22220 E"],
                resonance_hz=2400.0,
                resonance_damping=0.06,
                resonance2_hz=5200.0,
                resonance2_gain=0.4,
                imbalance_g=0.1,
                misalignment_g=0.025,
                noise_g=0.045,
                load=0.5,
                speed_variation=0.005,
                looseness_g=0.004,
                ambient_c=28.0,
                operating_rise_c=12.0,
            ),
            fault=None,
            vibration_channel=2,
            temperature_channel=3,
            description="belt-driven fan, SKF 22220 E",
        ),
        FleetAsset(
            asset_id="compressor-4",
            machine=MachineSpec(
                shaft_hz=49.9,
                bearing=BEARINGS["SKF 6308"],
                resonance_hz=4800.0,
                resonance_damping=0.04,
                imbalance_g=0.065,
                misalignment_g=0.04,
                noise_g=0.04,
                load=0.8,
                speed_variation=0.002,
                ambient_c=32.0,
                operating_rise_c=18.0,
            ),
            fault=None,
            vibration_channel=4,
            temperature_channel=5,
            description="compressor motor, SKF 6308",
        ),
    )


def agent_asset_tables(fleet: Sequence[FleetAsset]) -> str:
    """The agent's ``[[assets]]`` TOML tables for ``fleet`` (see ``agent/config.py``).

    Each asset's ``shaft_hz`` is its machine's mean running speed (slip at its load included); its
    ``[assets.bearing]`` holds the bearing's defect orders.

    >>> print(agent_asset_tables(default_fleet()[:1]))
    [[assets]]
    id = "pump-7"
    vibration_channel = 0
    temperature_channel = 1
    shaft_hz = 29.9500
    [assets.bearing]
    bpfo = 3.5848
    bpfi = 5.4152
    bsf = 2.3567
    ftf = 0.3983
    <BLANKLINE>
    """
    check_fleet(fleet)
    tables = []
    for asset in fleet:
        orders = asset.machine.bearing.defect_orders()
        lines = [
            "[[assets]]",
            f'id = "{asset.asset_id}"',
            f"vibration_channel = {asset.vibration_channel}",
            f"temperature_channel = {asset.temperature_channel}",
            f"shaft_hz = {asset.machine.running_hz:.{ORDER_DECIMALS}f}",
            "[assets.bearing]",
            *(f"{name} = {orders[name]:.{ORDER_DECIMALS}f}" for name in ("bpfo", "bpfi", "bsf", "ftf")),
        ]
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)
