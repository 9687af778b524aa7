"""A simulated rotating machine: vibration and temperature of a motor-driven machine and its faults.

Pure signal generation (no I/O, no clock): :func:`vibration_g` and :func:`temperature_c` take simulated
time in seconds and return physical values (the streamer turns them into sensor frames);
:func:`fault_windows` makes labelled training windows at a given severity without a time axis.

Physics (McFadden & Smith, "Model for the vibration produced by a single point defect in a rolling
element bearing", J. Sound Vib. 96(1), 1984; Randall & Antoni, "Rolling element bearing diagnostics —
A tutorial", Mech. Syst. Signal Process. 25, 2011):

* **outer race**: a defect on the stationary race, in the load zone, is struck by every rolling element:
  impacts at BPFO of constant amplitude;
* **inner race**: the defect turns with the shaft through the load zone, so impacts at BPFI are
  amplitude-modulated once per revolution: sidebands at ±1× around BPFI in the envelope spectrum;
* **ball**: a defect on a rolling element strikes both races once per ball revolution (impacts at 2×BSF,
  the inner-race strikes weaker), and the cage carries the ball through the load zone: modulation at FTF;
* every impact rings the structural resonance (one or two damped second-order resonators) and its time
  scatters by ±1.5 % of the period (the rolling elements slip: the signal is cyclostationary, not
  periodic);
* **imbalance** grows the 1× line, **misalignment** 2× (with some 1× and 3×), **looseness** a comb of
  harmonics up to 10× with half orders, plus a rattle once per revolution that excites the resonance;
* healthy: residual 1×/2× lines, broadband noise rising with load, a shaft speed that wanders slowly
  (supply frequency and process) and slightly within a snapshot, slip lowering the speed under load.

A fault starts at ``onset_s`` and reaches failure ``life_s`` later; its :func:`severity_curve` is
``progress²``, the accelerating growth seen in run-to-failure tests (e.g. FEMTO/PRONOSTIA). Degradation
also raises broadband noise and the bearing temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

FAULT_MODES: tuple[str, ...] = ("outer_race", "inner_race", "ball", "imbalance", "misalignment", "looseness")
"""What :class:`FaultSpec` and :func:`fault_windows` can simulate."""

BEARING_MODES: tuple[str, ...] = ("outer_race", "inner_race", "ball")

SLIP_AT_FULL_LOAD = 0.026
"""Relative speed drop of an induction motor from no load to full load (the CWRU test rig: 1797 rpm
at 0 hp, 1750 rpm at 2 hp, the motor's rating)."""

LOAD_NOISE_GAIN = 0.3
"""Broadband noise grows by this fraction from no load to full load (flow and process noise)."""

LOAD_IMPACT_GAIN = 0.25
"""Defect impacts grow by this fraction from no load to full load (more radial load in the contact)."""

LOAD_HEAT_GAIN = 0.5
"""The healthy operating temperature rise grows by this fraction from no load to full load."""

WEAR_NOISE_GAIN = 0.5
"""At failure, wear adds broadband noise of this fraction of ``noise_g`` (independent of the healthy noise)."""

ROLLING_SLIP = 0.015
"""Standard deviation of an impact's time as a fraction of the impact period: rolling elements slip by
1–2 % (Randall & Antoni 2011, section 2.1); it smears the defect harmonics but keeps the envelope lines."""

IMPACT_SCATTER = 0.1
"""Relative scatter of one bearing impact's amplitude (the contact is never struck the same way twice)."""

LOAD_ZONE_FLOOR = 0.2
"""A defect outside the load zone still gives this share of the full impact (preload, centrifugal force)."""

LOAD_ZONE_EXPONENT = 1.5
"""Load distribution in a ball bearing with a 180° load zone: q(θ) = cos(θ)^1.5 (Harris, Rolling Bearing
Analysis, Stribeck's load distribution with ε = 0.5); roller bearings would be 10/9."""

INNER_RACE_STRIKE = 0.6
"""A ball defect's strike on the inner race reaches the sensor weaker than its strike on the outer race
(one more interface on the transmission path); so the envelope shows BSF beside the dominant 2×BSF."""

LOOSENESS_IMPACT_SHARE = 0.3
"""The rattle of a loose machine, once per revolution, peaks at this share of ``impact_g_at_failure``."""

LOOSENESS_SCATTER = 0.3
"""Relative scatter of the rattle's amplitude: looseness is erratic."""

SPEED_WANDER_PERIODS_S = (10_007.0, 27_073.0, 82_301.0)
"""Slow speed wander over time: three incommensurate periods of about 3, 7.5 and 23 hours (supply
frequency and process drift), so snapshots 15 minutes apart see nearby speeds."""

SPEED_WANDER_PHASES = (0.3, 1.9, 4.2)

SPEED_JITTER = 0.25
"""A snapshot's own speed deviation, as a fraction of ``speed_variation`` (beside the slow wander)."""

WITHIN_SNAPSHOT_SPEED = 0.2
"""Speed fluctuation within one snapshot, as a fraction of ``speed_variation``, over 0.5–4 s periods."""

HALF_ORDERS = 20
"""Shaft lines are simulated at orders 0.5, 1, 1.5 … 10 of the running speed."""

CHUNK_ELEMENTS = 1 << 21
"""Windows are synthesised in chunks of about this many samples (bounded memory for large batches)."""

DEFAULT_IMPACT_G = 4.0
DEFAULT_SHAFT_G = 0.5


def _shaft_profile(lines: dict[float, float]) -> np.ndarray:
    """Amplitudes (relative) at half orders 0.5 … 10 from ``{order: amplitude}``."""
    profile = np.zeros(HALF_ORDERS)
    for order, amplitude in lines.items():
        profile[round(order * 2) - 1] = amplitude
    return profile


IMBALANCE_PROFILE = _shaft_profile({1.0: 1.0})
MISALIGNMENT_PROFILE = _shaft_profile({1.0: 0.5, 2.0: 1.0, 3.0: 0.3})
"""Misalignment: 2× dominant, with 1× and 3× (parallel and angular misalignment combined)."""
LOOSENESS_PROFILE = _shaft_profile(
    {k / 2: (1.0 if k % 2 == 0 else 0.4) / math.sqrt(max(k / 2, 1.0)) for k in range(1, HALF_ORDERS + 1)}
)
"""Looseness: harmonics 1…10× falling slowly, half orders 0.5…9.5× at 40 % (truncated, non-linear
response of a loose mount)."""

SHAFT_PROFILES = {
    "imbalance": IMBALANCE_PROFILE,
    "misalignment": MISALIGNMENT_PROFILE,
    "looseness": LOOSENESS_PROFILE,
}


def check_mode(mode: str) -> None:
    """Raise :class:`ValueError` unless ``mode`` is one of :data:`FAULT_MODES`."""
    if mode not in FAULT_MODES:
        raise ValueError(f"fault mode {mode!r} is not one of: {', '.join(FAULT_MODES)}")


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
        ``bsf`` is the ball spin frequency; a ball defect strikes the races at twice that.

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


BEARINGS: dict[str, BearingGeometry] = {
    # CWRU Bearing Data Center, drive end: 6205-2RS JEM SKF, ball 0.3126 in, pitch 1.537 in
    "SKF 6205": BearingGeometry(balls=9, ball_diameter_mm=7.94, pitch_diameter_mm=39.04),
    # CWRU Bearing Data Center, fan end: 6203-2RS JEM SKF, ball 0.2656 in, pitch 1.122 in
    "SKF 6203": BearingGeometry(balls=8, ball_diameter_mm=6.746, pitch_diameter_mm=28.50),
    # nominal catalogue dimensions (40 × 90 × 23 mm; 8 balls of 19/32 in)
    "SKF 6308": BearingGeometry(balls=8, ball_diameter_mm=15.081, pitch_diameter_mm=65.0),
    # spherical roller, 100 × 180 × 46 mm: pitch diameter from the bore and outside diameter; roller count
    # and diameter are estimates for a bearing of this section, not SKF data
    "SKF 22220 E": BearingGeometry(
        balls=18, ball_diameter_mm=22.0, pitch_diameter_mm=140.0, contact_angle_deg=10.0
    ),
    # FEMTO-ST PRONOSTIA run-to-failure bearings (Nectoux et al., IEEE PHM 2012): 13 rollers of 3.5 mm,
    # races 22.1 and 29.1 mm
    "PRONOSTIA": BearingGeometry(balls=13, ball_diameter_mm=3.5, pitch_diameter_mm=25.6),
    # IMS/NASA run-to-failure bearings (Qiu et al., J. Sound Vib. 289, 2006): 16 rollers of 0.331 in,
    # pitch 2.815 in, contact angle 15.17°
    "Rexnord ZA-2115": BearingGeometry(
        balls=16, ball_diameter_mm=8.407, pitch_diameter_mm=71.50, contact_angle_deg=15.17
    ),
}
"""Named bearings for simulated machines."""


@dataclass(frozen=True)
class MachineSpec:
    """What the simulated machine is like when healthy."""

    shaft_hz: float = 29.95
    """Shaft speed at no load (1797 rpm: the CWRU motor, a 4-pole motor on 60 Hz); see :attr:`running_hz`."""
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
    """Broadband measurement and process noise (RMS) at no load, in g."""
    ambient_c: float = 30.0
    operating_rise_c: float = 15.0
    """Bearing housing temperature above ambient when healthy and warm, at no load."""
    speed_variation: float = 0.003
    """Relative standard deviation of the shaft speed from snapshot to snapshot (slow wander)."""
    load: float = 0.0
    """Load 0 (none) … 1 (rated): raises noise, impacts and temperature a little, lowers speed by slip."""
    looseness_g: float = 0.0
    """Residual looseness: amplitude of the 1× member of the looseness comb of harmonics, in g."""
    resonance2_hz: float | None = None
    """An optional second structural resonance, also excited by impacts."""
    resonance2_damping: float = 0.05
    resonance2_gain: float = 0.5
    """Peak response of the second resonance relative to the first."""

    def __post_init__(self) -> None:
        problems = []
        if self.shaft_hz <= 0:
            problems.append(f"shaft_hz must be greater than 0, got {self.shaft_hz}")
        if not 0.0 <= self.load <= 1.0:
            problems.append(f"load must be within [0, 1], got {self.load}")
        if not 0.0 <= self.speed_variation < 0.1:
            problems.append(f"speed_variation must be within [0, 0.1), got {self.speed_variation}")
        for name in ("resonance_damping", "resonance2_damping"):
            if not 0.0 < getattr(self, name) < 1.0:
                problems.append(f"{name} must be within (0, 1), got {getattr(self, name)}")
        for name in ("imbalance_g", "misalignment_g", "noise_g", "looseness_g", "resonance2_gain"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        if problems:
            raise ValueError("MachineSpec: " + "; ".join(problems))

    @property
    def running_hz(self) -> float:
        """Mean shaft speed at this load: ``shaft_hz`` lowered by motor slip."""
        return self.shaft_hz * (1.0 - SLIP_AT_FULL_LOAD * self.load)


def severity_curve(progress: float | np.ndarray) -> float | np.ndarray:
    """Fault severity 0 (healthy) … 1 (failure) from degradation progress 0 … 1: ``progress²``.

    Accelerating growth, as in run-to-failure tests: a defect stays small for most of its life and grows
    fast near the end. Every amplitude that a fault adds, and its heat, is proportional to the severity.

    >>> severity_curve(0.5)
    0.25
    """
    if isinstance(progress, np.ndarray):
        return np.square(np.clip(progress, 0.0, 1.0))
    return min(1.0, max(0.0, float(progress))) ** 2


@dataclass(frozen=True)
class FaultSpec:
    """A fault (one of :data:`FAULT_MODES`) that appears at ``onset_s`` and reaches failure ``life_s`` later."""

    mode: str = "outer_race"
    onset_s: float = 86_400.0
    life_s: float = 172_800.0
    impact_g_at_failure: float = DEFAULT_IMPACT_G
    """Peak of one defect impact's ring-down at failure, in g (bearing faults; looseness rattles at
    :data:`LOOSENESS_IMPACT_SHARE` of it)."""
    heat_at_failure_c: float = 25.0
    shaft_g_at_failure: float = DEFAULT_SHAFT_G
    """Amplitude that imbalance, misalignment or looseness adds to its dominant shaft line at failure, in
    g (about ISO 10816 zone D, 11 mm/s RMS, at 30 Hz)."""

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.life_s <= 0:
            raise ValueError(f"FaultSpec: life_s must be greater than 0, got {self.life_s}")

    def progress(self, t_s: float) -> float:
        """Degradation 0 (healthy) … 1 (failure) at simulated time ``t_s``."""
        if t_s <= self.onset_s:
            return 0.0
        return min(1.0, (t_s - self.onset_s) / self.life_s)

    def severity(self, t_s: float) -> float:
        """Severity 0 … 1 at simulated time ``t_s``: :func:`severity_curve` of :meth:`progress`."""
        return float(severity_curve(self.progress(t_s)))


def speed_wander(t_s: float) -> float:
    """Slow relative speed deviation at simulated time ``t_s``, unit RMS (scaled by ``speed_variation``).

    Deterministic in time (supply frequency and process drift, common to the machines on one supply), so
    consecutive snapshots see a speed that wanders smoothly instead of jumping.
    """
    total = sum(
        math.sin(2 * math.pi * t_s / period + phase)
        for period, phase in zip(SPEED_WANDER_PERIODS_S, SPEED_WANDER_PHASES, strict=True)
    )
    return total * math.sqrt(2.0 / len(SPEED_WANDER_PERIODS_S))


def _resonator(spec: MachineSpec, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of the structure: one or two damped second-order resonators, unit peak impulse response."""
    nyquist = fs_hz / 2
    parts = [(spec.resonance_hz, spec.resonance_damping, 1.0)]
    if spec.resonance2_hz is not None:
        parts.append((spec.resonance2_hz, spec.resonance2_damping, spec.resonance2_gain))
    b_total, a_total = np.zeros(1), np.ones(1)
    for frequency_hz, damping, gain in parts:
        if not 0 < frequency_hz < 0.45 * fs_hz:
            raise ValueError(
                f"resonance {frequency_hz} Hz must be within (0, {0.45 * fs_hz:g}) Hz at fs {fs_hz:g} Hz "
                f"(Nyquist {nyquist:g} Hz)"
            )
        # impulse response r^n sin((n+1)ω): a damped oscillator at frequency_hz with peak ≈ 1
        omega = 2 * math.pi * frequency_hz / fs_hz
        radius = math.exp(-damping * omega)
        b = np.array([gain * math.sin(omega)])
        a = np.array([1.0, -2 * radius * math.cos(omega), radius**2])
        # parallel connection: B/A = B1/A1 + B2/A2 = (B1·A2 + B2·A1) / (A1·A2)
        b_total = np.polyadd(np.polymul(b_total, a), np.polymul(b, a_total))
        a_total = np.polymul(a_total, a)
    return b_total, a_total


def _ring_samples(spec: MachineSpec, fs_hz: float) -> int:
    """Samples for the slowest resonance to ring down to 1 %: impacts just before a window still ring in it."""
    decay_s = [math.log(100) / (spec.resonance_damping * 2 * math.pi * spec.resonance_hz)]
    if spec.resonance2_hz is not None:
        decay_s.append(math.log(100) / (spec.resonance2_damping * 2 * math.pi * spec.resonance2_hz))
    return min(4096, int(math.ceil(max(decay_s) * fs_hz)))


def _load_zone(angle_rad: np.ndarray) -> np.ndarray:
    """Relative impact strength of a defect at ``angle_rad`` from the centre of the load zone."""
    q = np.power(np.clip(np.cos(angle_rad), 0.0, None), LOAD_ZONE_EXPONENT)
    return LOAD_ZONE_FLOOR + (1.0 - LOAD_ZONE_FLOOR) * q


def _synthesise(
    spec: MachineSpec,
    mode: str | None,
    severity: np.ndarray,
    speed_hz: np.ndarray,
    *,
    samples: int,
    fs_hz: float,
    rng: np.random.Generator,
    impact_g: float,
    shaft_g: float,
) -> np.ndarray:
    """Acceleration in g, shape ``(windows, samples)``; one window per entry of ``severity``/``speed_hz``.

    Draws from ``rng`` in the same order whatever the severity, and draws nothing more when every
    severity is 0: a fault at severity 0 is exactly the healthy machine.
    """
    windows = speed_hz.size
    pad = _ring_samples(spec, fs_hz)
    t = (np.arange(pad + samples) - pad) / fs_hz
    # shaft revolutions since the window start: speed f·(1 + ε·sin(ωt + φ)) integrated
    epsilon = WITHIN_SNAPSHOT_SPEED * spec.speed_variation
    omega = 2 * np.pi / rng.uniform(0.5, 4.0, (windows, 1))
    phi = rng.uniform(0.0, 2 * np.pi, (windows, 1))
    start = rng.uniform(0.0, 1.0, (windows, 1))
    revs = start + speed_hz[:, None] * (t - epsilon / omega * (np.cos(omega * t + phi) - np.cos(phi)))

    # shaft lines at half orders, summed as Re Σ c_m z^m with z = e^{iπ·revs} (Horner's scheme)
    amplitude = np.zeros((windows, HALF_ORDERS))
    amplitude += spec.imbalance_g * IMBALANCE_PROFILE
    amplitude[:, 3] += spec.misalignment_g
    amplitude += spec.looseness_g * LOOSENESS_PROFILE
    if mode in SHAFT_PROFILES:
        amplitude += (shaft_g * severity)[:, None] * SHAFT_PROFILES[mode]
    coefficients = amplitude * np.exp(1j * rng.uniform(0.0, 2 * np.pi, (windows, HALF_ORDERS)))
    highest = int(np.flatnonzero(amplitude.any(axis=0)).max(initial=-1)) + 1
    x = np.zeros((windows, samples))
    if highest:
        z = np.exp(1j * np.pi * revs[:, pad:])
        total = np.broadcast_to(coefficients[:, highest - 1 : highest], z.shape).copy()
        for m in range(highest - 2, -1, -1):
            total *= z
            total += coefficients[:, m : m + 1]
        total *= z
        x += total.real

    noise_rms = np.hypot(
        spec.noise_g * (1.0 + LOAD_NOISE_GAIN * spec.load), WEAR_NOISE_GAIN * spec.noise_g * severity
    )
    x += noise_rms[:, None] * rng.standard_normal((windows, samples))

    if mode in (*BEARING_MODES, "looseness") and np.any(severity > 0):
        x += _impacts(spec, mode, severity, speed_hz, revs, pad=pad, fs_hz=fs_hz, rng=rng, impact_g=impact_g)
    return x


def _impacts(
    spec: MachineSpec,
    mode: str,
    severity: np.ndarray,
    speed_hz: np.ndarray,
    revs: np.ndarray,
    *,
    pad: int,
    fs_hz: float,
    rng: np.random.Generator,
    impact_g: float,
) -> np.ndarray:
    """The impacts of ``mode`` ringing the structure, shape ``(windows, samples)``."""
    windows, length = revs.shape
    orders = spec.bearing.defect_orders()
    per_rev = {"outer_race": orders["bpfo"], "inner_race": orders["bpfi"], "ball": 2 * orders["bsf"]}.get(
        mode, 1.0
    )
    # an impact whenever the rolling elements (or the loose part) pass the next position
    count = np.floor(per_rev * revs + rng.uniform(0.0, 1.0, (windows, 1)))
    rows, cols = np.nonzero(np.diff(count, axis=-1) > 0)
    cols = cols + 1
    at_revs = revs[rows, cols]
    odd = count[rows, cols] % 2 == 1
    period_samples = fs_hz / (per_rev * speed_hz[rows])
    cols = cols + np.round(rng.normal(0.0, ROLLING_SLIP, rows.size) * period_samples).astype(np.int64)

    base = impact_g * (1.0 + LOAD_IMPACT_GAIN * spec.load) * severity[rows]
    if mode == "looseness":
        strength = LOOSENESS_IMPACT_SHARE * (1.0 + LOOSENESS_SCATTER * rng.standard_normal(rows.size))
    else:
        strength = 1.0 + IMPACT_SCATTER * rng.standard_normal(rows.size)
        if mode == "inner_race":
            # the defect turns with the shaft through the load zone
            angle = 2 * np.pi * at_revs + rng.uniform(0.0, 2 * np.pi, windows)[rows]
            strength *= _load_zone(angle)
        elif mode == "ball":
            # the cage carries the ball through the load zone; every other strike is on the inner race
            angle = 2 * np.pi * orders["ftf"] * at_revs + rng.uniform(0.0, 2 * np.pi, windows)[rows]
            strength *= _load_zone(angle)
            strength *= np.where(odd, INNER_RACE_STRIKE, 1.0)
    keep = (cols >= 0) & (cols < length)
    impulses = np.bincount(
        rows[keep] * length + cols[keep],
        weights=(base * np.clip(strength, 0.0, None))[keep],
        minlength=windows * length,
    ).reshape(windows, length)
    b, a = _resonator(spec, fs_hz)
    return signal.lfilter(b, a, impulses, axis=-1)[:, pad:]


def vibration_g(
    spec: MachineSpec,
    fault: FaultSpec | None,
    *,
    t0_s: float,
    samples: int,
    fs_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Acceleration in g of ``samples`` samples at ``fs_hz`` starting at simulated time ``t0_s``.

    The shaft runs at :attr:`MachineSpec.running_hz` wandering by ``speed_variation`` over time
    (:func:`speed_wander`); the fault's severity is that at ``t0_s``.

    >>> x = vibration_g(MachineSpec(), None, t0_s=0.0, samples=4096, fs_hz=25600.0, rng=np.random.default_rng(1))
    >>> x.shape, round(float(np.sqrt(np.mean(x**2))), 2)
    ((4096,), 0.08)
    """
    deviation = speed_wander(t0_s) + SPEED_JITTER * float(rng.standard_normal())
    speed_hz = np.array([spec.running_hz * (1.0 + spec.speed_variation * deviation)])
    severity = np.array([fault.severity(t0_s) if fault is not None else 0.0])
    return _synthesise(
        spec,
        fault.mode if fault is not None else None,
        severity,
        speed_hz,
        samples=samples,
        fs_hz=fs_hz,
        rng=rng,
        impact_g=fault.impact_g_at_failure if fault is not None else DEFAULT_IMPACT_G,
        shaft_g=fault.shaft_g_at_failure if fault is not None else DEFAULT_SHAFT_G,
    )[0]


def fault_windows(
    spec: MachineSpec,
    mode: str | None,
    severity: float | np.ndarray,
    *,
    windows: int,
    samples: int,
    fs_hz: float,
    rng: np.random.Generator,
    impact_g_at_failure: float = DEFAULT_IMPACT_G,
    shaft_g_at_failure: float = DEFAULT_SHAFT_G,
) -> np.ndarray:
    """Labelled training windows: acceleration in g, shape ``(windows, samples)``, no time axis.

    ``mode`` is one of :data:`FAULT_MODES`, or ``None`` for the healthy machine; ``severity`` (0 … 1,
    see :func:`severity_curve`) is one number or one per window. Each window has its own shaft speed
    (``running_hz`` scattered by ``speed_variation``), phases, slip and noise. At severity 0 a fault is
    exactly the healthy machine for the same ``rng`` state. 10,000 windows of 4096 samples take 4–8 s
    on one core (chunks of :data:`CHUNK_ELEMENTS` samples, vectorised, ``lfilter`` along the last axis).

    >>> rng = np.random.default_rng(0)
    >>> x = fault_windows(MachineSpec(), "outer_race", 1.0, windows=3, samples=4096, fs_hz=25600.0, rng=rng)
    >>> x.shape
    (3, 4096)
    >>> bool(np.all(np.max(np.abs(x), axis=1) > 3.0))   # impacts ring up to impact_g_at_failure = 4 g
    True
    """
    if mode is not None:
        check_mode(mode)
    if windows < 0 or samples <= 0:
        raise ValueError(f"windows must be ≥ 0 and samples > 0, got windows={windows} samples={samples}")
    levels = np.broadcast_to(np.asarray(severity, dtype=np.float64), (windows,)).copy()
    if np.any((levels < 0) | (levels > 1)) or np.any(~np.isfinite(levels)):
        raise ValueError("severity must be within [0, 1]")
    if mode is None:
        levels[:] = 0.0
    result = np.empty((windows, samples))
    chunk = max(1, CHUNK_ELEMENTS // (samples + _ring_samples(spec, fs_hz)))
    for first in range(0, windows, chunk):
        part = slice(first, min(windows, first + chunk))
        count = part.stop - part.start
        speed_hz = spec.running_hz * (1.0 + spec.speed_variation * rng.standard_normal(count))
        result[part] = _synthesise(
            spec,
            mode,
            levels[part],
            speed_hz,
            samples=samples,
            fs_hz=fs_hz,
            rng=rng,
            impact_g=impact_g_at_failure,
            shaft_g=shaft_g_at_failure,
        )
    return result


def temperature_c(
    spec: MachineSpec, fault: FaultSpec | None, *, t_s: float, rng: np.random.Generator
) -> float:
    """Bearing housing temperature in °C at simulated time ``t_s``: ambient, operating rise (growing with
    load), the fault's heat (``heat_at_failure_c`` × severity) and 0.2 °C of sensor noise."""
    heat = fault.heat_at_failure_c * fault.severity(t_s) if fault is not None else 0.0
    rise = spec.operating_rise_c * (1.0 + LOAD_HEAT_GAIN * spec.load)
    return spec.ambient_c + rise + heat + 0.2 * float(rng.standard_normal())


def random_machine(
    rng: np.random.Generator,
    *,
    bearing: str | BearingGeometry | None = None,
    fs_hz: float = 25_600.0,
) -> MachineSpec:
    """A plausible random healthy machine, for training data variety.

    Shaft 10–60 Hz, a bearing from :data:`BEARINGS` (or the one given, by name or geometry), resonance
    1.5–6 kHz (kept ≤ 0.35·``fs_hz``) with damping 0.03–0.1 and, one time in two, a second resonance;
    imbalance, misalignment and noise ×0.5–2 of the defaults (log-uniform); load 0–1; speed variation
    0.1–0.6 %; a little residual looseness.

    >>> spec = random_machine(np.random.default_rng(3))
    >>> 10 <= spec.shaft_hz <= 60 and spec.bearing in BEARINGS.values() and spec.resonance_hz <= 0.35 * 25600
    True
    """
    if bearing is None:
        names = sorted(BEARINGS)
        geometry = BEARINGS[names[int(rng.integers(len(names)))]]
    elif isinstance(bearing, str):
        if bearing not in BEARINGS:
            raise ValueError(f"unknown bearing {bearing!r}; known: {', '.join(sorted(BEARINGS))}")
        geometry = BEARINGS[bearing]
    else:
        geometry = bearing
    base = MachineSpec()
    ceiling_hz = 0.35 * fs_hz

    def factor() -> float:
        return float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))

    resonance_hz = min(float(rng.uniform(1500.0, 6000.0)), ceiling_hz)
    second = rng.random() < 0.5
    resonance2_hz = min(resonance_hz * float(rng.uniform(1.3, 2.5)), 0.4 * fs_hz) if second else None
    return MachineSpec(
        shaft_hz=float(rng.uniform(10.0, 60.0)),
        bearing=geometry,
        resonance_hz=resonance_hz,
        resonance_damping=float(rng.uniform(0.03, 0.1)),
        imbalance_g=base.imbalance_g * factor(),
        misalignment_g=base.misalignment_g * factor(),
        noise_g=base.noise_g * factor(),
        ambient_c=float(rng.uniform(15.0, 40.0)),
        operating_rise_c=float(rng.uniform(8.0, 25.0)),
        speed_variation=float(rng.uniform(0.001, 0.006)),
        load=float(rng.uniform(0.0, 1.0)),
        looseness_g=float(rng.uniform(0.0, 0.01)),
        resonance2_hz=resonance2_hz,
        resonance2_damping=float(rng.uniform(0.03, 0.1)),
        resonance2_gain=float(rng.uniform(0.2, 0.8)),
    )
