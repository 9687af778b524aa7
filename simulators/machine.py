"""A simulated rotating machine: vibration and temperature of a motor-driven pump with a bearing defect.

Pure signal generation (no I/O, no clock): :func:`vibration_g` and :func:`temperature_c` take simulated
time in seconds and return physical values; the streamer turns them into sensor frames.

Physics (McFadden & Smith, "Model for the vibration produced by a single point defect in a rolling
element bearing", J. Sound Vib. 96(1), 1984): a localised outer-race defect is struck by each rolling
element, once every 1/BPFO seconds; each impact excites a structural resonance that rings down
exponentially. The shaft adds 1× (imbalance) and 2× (misalignment) lines, the process adds broadband noise.
The defect starts at ``onset_s`` and grows to failure over ``life_s`` (amplitude ∝ progress², the
accelerating growth seen in run-to-failure tests); the bearing runs hotter as it degrades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling-element bearing geometry; defaults are an SKF 6205-2RS deep-groove bearing."""

    balls: int = 9
    ball_diameter_mm: float = 7.94
    pitch_diameter_mm: float = 39.04
    contact_angle_deg: float = 0.0

    def defect_orders(self) -> dict[str, float]:
        """Defect frequencies as multiples of shaft speed (orders): ``bpfo``, ``bpfi``, ``bsf``, ``ftf``.

        Standard kinematic formulas (e.g. Randall & Antoni, Mech. Syst. Signal Process. 25, 2011, eq. 1-4).
        >>> {k: round(v, 3) for k, v in BearingGeometry().defect_orders().items()}
        {'bpfo': 3.585, 'bpfi': 5.415, 'bsf': 2.357, 'ftf': 0.398}
        """
        ratio = (
            self.ball_diameter_mm / self.pitch_diameter_mm * math.cos(math.radians(self.contact_angle_deg))
        )
        return {
            "bpfo": self.balls / 2 * (1 - ratio),
            "bpfi": self.balls / 2 * (1 + ratio),
            "bsf": self.pitch_diameter_mm / (2 * self.ball_diameter_mm) * (1 - ratio**2),
            "ftf": 0.5 * (1 - ratio),
        }


@dataclass(frozen=True)
class MachineSpec:
    """What the simulated machine is like when healthy."""

    shaft_hz: float = 29.95
    """Shaft speed (1797 rpm, a 4-pole motor near full load)."""
    bearing: BearingGeometry = field(default_factory=BearingGeometry)
    resonance_hz: float = 3600.0
    """Structural resonance excited by bearing impacts (housing/sensor mount)."""
    resonance_damping: float = 0.05
    """Damping ratio of that resonance."""
    imbalance_g: float = 0.08
    """1× amplitude from residual imbalance, in g."""
    misalignment_g: float = 0.03
    """2× amplitude, in g."""
    noise_g: float = 0.05
    """Broadband measurement and process noise (RMS), in g."""
    ambient_c: float = 30.0
    operating_rise_c: float = 15.0
    """Bearing housing temperature above ambient when healthy and warm."""


@dataclass(frozen=True)
class FaultSpec:
    """A bearing defect that appears at ``onset_s`` and reaches failure ``life_s`` later."""

    mode: str = "outer_race"
    onset_s: float = 86_400.0
    life_s: float = 172_800.0
    impact_g_at_failure: float = 4.0
    """Peak of one defect impact's ring-down at failure, in g."""
    heat_at_failure_c: float = 25.0

    def progress(self, t_s: float) -> float:
        """Degradation 0 (healthy) … 1 (failure) at simulated time ``t_s``."""
        if t_s <= self.onset_s:
            return 0.0
        return min(1.0, (t_s - self.onset_s) / self.life_s)


def vibration_g(
    spec: MachineSpec,
    fault: FaultSpec | None,
    *,
    t0_s: float,
    samples: int,
    fs_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Acceleration in g of ``samples`` samples at ``fs_hz`` starting at simulated time ``t0_s``."""
    t = t0_s + np.arange(samples) / fs_hz
    speed_hz = spec.shaft_hz * (1 + 0.002 * rng.standard_normal())
    phase = rng.uniform(0, 2 * np.pi, size=2)
    x = spec.imbalance_g * np.sin(2 * np.pi * speed_hz * t + phase[0])
    x += spec.misalignment_g * np.sin(2 * np.pi * 2 * speed_hz * t + phase[1])
    x += spec.noise_g * rng.standard_normal(samples)
    severity = fault.progress(t0_s) ** 2 if fault is not None else 0.0
    if severity > 0:
        assert fault is not None
        x += _defect_impacts(spec, fault, speed_hz, severity, samples, fs_hz, rng)
        x += 0.5 * severity * spec.noise_g * rng.standard_normal(samples)
    return x


def _defect_impacts(
    spec: MachineSpec,
    fault: FaultSpec,
    speed_hz: float,
    severity: float,
    samples: int,
    fs_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    orders = spec.bearing.defect_orders()
    order = {"outer_race": "bpfo", "inner_race": "bpfi", "ball": "bsf"}.get(fault.mode, "bpfo")
    rate_hz = orders[order] * speed_hz
    # impact times with 1 % random slip of the rolling elements (Randall & Antoni 2011)
    period = 1.0 / rate_hz
    count = int(samples / fs_hz / period) + 2
    times = rng.uniform(0, period) + np.arange(count) * period + rng.normal(0, 0.01 * period, count)
    index = np.round(times * fs_hz).astype(np.int64)
    index = index[(index >= 0) & (index < samples)]
    impulses = np.zeros(samples)
    amplitude = np.full(index.size, fault.impact_g_at_failure * severity)
    if fault.mode == "inner_race":
        # the defect passes through the load zone once per revolution
        amplitude *= 0.6 + 0.4 * np.cos(2 * np.pi * speed_hz * index / fs_hz)
    np.add.at(impulses, index, amplitude)
    # second-order resonator: b/a of a damped oscillator at resonance_hz, unit peak response
    omega = 2 * np.pi * spec.resonance_hz / fs_hz
    radius = math.exp(-spec.resonance_damping * omega)
    b = [math.sin(omega)]
    a = [1.0, -2 * radius * math.cos(omega), radius**2]
    return signal.lfilter(b, a, impulses)


def temperature_c(
    spec: MachineSpec, fault: FaultSpec | None, *, t_s: float, rng: np.random.Generator
) -> float:
    """Bearing housing temperature in °C at simulated time ``t_s``."""
    heat = fault.heat_at_failure_c * fault.progress(t_s) ** 3 if fault is not None else 0.0
    return spec.ambient_c + spec.operating_rise_c + heat + 0.2 * float(rng.standard_normal())
