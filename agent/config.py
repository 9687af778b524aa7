"""The agent's configuration (``agent.toml``), validated completely before the agent starts.

Example::

    site = "plant1"
    agent_id = "gw-line3"
    state_dir = "/var/lib/plantwatch-agent"
    snapshot_interval_s = 600       # a spectrum snapshot on a health record this often (alerts: always)

    [serial]
    port = "/dev/ttyUSB0"

    [mqtt]
    host = "broker.plant1.local"
    port = 8883
    username = "gw-line3"          # the password comes from $CREDENTIALS_DIRECTORY/mqtt-password
    tls_ca_file = "/etc/plantwatch/ca.pem"

    [outbox]
    disk_budget_mb = 512           # health records are thinned near it; alerts are never dropped
    drain_rate_per_s = 5000        # health records a second after an outage (alerts always first)

    [[assets]]
    id = "pump-7"
    vibration_channel = 0
    temperature_channel = 1
    shaft_hz = 29.95
    [assets.bearing]               # defect frequencies as orders of shaft speed (SKF 6205 shown)
    bpfo = 3.585
    bpfi = 5.415
    bsf = 2.357
    ftf = 0.398
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plantwatch.agent.outbox import BufferBudget
from plantwatch.config import check_log_level, check_name, check_port, check_positive, secret
from plantwatch.mqtt import BrokerSettings, TLSParameters


def _check_fraction(value: float) -> bool | str:
    return 0.0 <= value < 1.0 or "must be within [0, 1)"


def _check_channel(value: int) -> bool | str:
    return 0 <= value <= 255 or "must be a channel number 0..255"


def _check_window(value: int) -> bool | str:
    return (value >= 256 and value & (value - 1) == 0) or "must be a power of two ≥ 256"


def _check_machine_class(value: str) -> bool | str:
    from plantwatch.agent.features import ISO_ZONE_LIMITS_MM_S

    return value in ISO_ZONE_LIMITS_MM_S or f"must be one of {', '.join(ISO_ZONE_LIMITS_MM_S)}"


def _check_band(value: list[float]) -> bool | str:
    return (len(value) == 2 and 0 < value[0] < value[1]) or "must be [low_hz, high_hz] with 0 < low < high"


@dataclass(frozen=True)
class SerialSettings:
    """The sensor's serial port."""

    port: str
    baudrate: int = field(default=921_600, metadata={"check": check_positive})
    reopen_delay_s: float = field(default=1.0, metadata={"check": check_positive})


@dataclass(frozen=True)
class MqttSettings:
    """The broker; the password is a secret (``mqtt-password`` credential or ``PLANTWATCH_MQTT_PASSWORD``)."""

    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata={"check": check_port})
    username: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    keepalive_s: int = field(default=30, metadata={"check": check_positive})
    max_in_flight: int = field(default=100, metadata={"check": lambda v: 0 < v <= 1000 or "must be 1..1000"})

    def broker_settings(self, client_id: str, *, persistent_session: bool = False) -> BrokerSettings:
        """Connection settings for this table, with the password from the ``mqtt-password`` credential or
        ``PLANTWATCH_MQTT_PASSWORD`` (never from the TOML)."""
        tls = (
            TLSParameters(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
            if self.tls_ca_file
            else None
        )
        return BrokerSettings(
            host=self.host,
            port=self.port,
            client_id=client_id,
            username=self.username,
            password=secret("mqtt-password", env="PLANTWATCH_MQTT_PASSWORD"),
            keepalive_s=self.keepalive_s,
            tls=tls,
            persistent_session=persistent_session,
        )


@dataclass(frozen=True)
class OutboxSettings:
    """The store-and-forward buffer (``agent.sqlite``): its disk budget and how fast a backlog drains."""

    disk_budget_mb: float = field(default=512.0, metadata={"check": lambda v: v >= 1 or "must be at least 1"})
    """Disk the outbox may use, in MB (10^6 bytes), write-ahead log included."""
    thin_at_percent: float = field(
        default=80.0, metadata={"check": lambda v: 0 < v <= 100 or "must be within (0, 100]"}
    )
    """Buffer level at which health records start being thinned (and the status raises its alarm)."""
    thin_to_percent: float = field(
        default=60.0, metadata={"check": lambda v: 0 < v < 100 or "must be within (0, 100)"}
    )
    """Buffer level that thinning brings the buffer down to."""
    keep_one_in: int = field(default=4, metadata={"check": lambda v: v >= 2 or "must be at least 2"})
    """Each thinning pass keeps one in this many of an asset's oldest health records."""
    drain_rate_per_s: float = field(
        default=5000.0, metadata={"check": lambda v: v >= 0 or "must be 0 (unlimited) or more"}
    )
    """Health records sent per second at most (alerts are not limited); 0 for no limit."""

    def __post_init__(self) -> None:
        if self.thin_to_percent >= self.thin_at_percent:
            raise ValueError("thin_to_percent must be below thin_at_percent")

    def budget(self) -> BufferBudget:
        """The outbox's :class:`~plantwatch.agent.outbox.BufferBudget`."""
        return BufferBudget(
            budget_bytes=int(self.disk_budget_mb * 1e6),
            thin_at=self.thin_at_percent / 100,
            thin_to=self.thin_to_percent / 100,
            keep_one_in=self.keep_one_in,
        )


@dataclass(frozen=True)
class BearingSettings:
    """Bearing defect frequencies as orders of shaft speed; defaults: SKF 6205."""

    bpfo: float = field(default=3.585, metadata={"check": check_positive})
    bpfi: float = field(default=5.415, metadata={"check": check_positive})
    bsf: float = field(default=2.357, metadata={"check": check_positive})
    ftf: float = field(default=0.398, metadata={"check": check_positive})

    def orders(self) -> dict[str, float]:
        """``{"bpfo": …, "bpfi": …, "bsf": …, "ftf": …}``."""
        return {"bpfo": self.bpfo, "bpfi": self.bpfi, "bsf": self.bsf, "ftf": self.ftf}


@dataclass(frozen=True)
class AssetSettings:
    """One monitored machine and the sensor channels that watch it."""

    id: str = field(metadata={"check": check_name})
    vibration_channel: int = field(metadata={"check": _check_channel})
    shaft_hz: float = field(metadata={"check": check_positive})
    temperature_channel: int | None = field(default=None, metadata={"check": _check_channel})
    bearing: BearingSettings = field(default_factory=BearingSettings)
    warning_threshold: float | None = field(default=None, metadata={"check": check_positive})
    """Anomaly score for a warning; default: the model's calibrated threshold."""
    alarm_factor: float = field(default=3.0, metadata={"check": lambda v: v > 1 or "must be greater than 1"})
    """Alarm threshold as a multiple of the warning threshold."""
    persistence: int = field(default=3, metadata={"check": check_positive})
    clear_windows: int = field(default=6, metadata={"check": check_positive})
    commissioning_windows: int = field(default=40, metadata={"check": check_positive})
    """Windows the asset's baseline is learned from when it is first seen."""
    alarm_repeat_s: float = field(default=3600.0, metadata={"check": check_positive})
    overheating_c: float = 90.0
    machine_class: str = field(default="II", metadata={"check": _check_machine_class})
    """ISO 10816 / 20816 class or group for the velocity zone: I, II, III, IV (10816-1) or
    group1-rigid, group1-flexible, group2-rigid, group2-flexible (10816-3 / 20816-3)."""
    estimate_speed: bool = False
    """Estimate each window's shaft speed from its 1× line near ``shaft_hz`` (for variable-speed drives)."""
    envelope_band_hz: list[float] = field(
        default_factory=lambda: [2000.0, 8000.0], metadata={"check": _check_band}
    )
    """Band-pass before the envelope (Hz): around the structural resonances bearing impacts excite."""

    def __post_init__(self) -> None:
        if self.temperature_channel is not None and self.temperature_channel == self.vibration_channel:
            raise ValueError(f"asset {self.id}: temperature_channel and vibration_channel must differ")


@dataclass(frozen=True)
class AgentSettings:
    """The whole ``agent.toml``."""

    site: str = field(metadata={"check": check_name})
    agent_id: str = field(metadata={"check": check_name})
    serial: SerialSettings
    assets: list[AssetSettings]
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    state_dir: str = "/var/lib/plantwatch-agent"
    model_dir: str | None = None
    """Folder of model files and manifests; default: the models shipped with plantwatch."""
    model: str = "anomaly-ae"
    classifier: str | None = "fault-classifier"
    """The fault classifier's name in the registry; empty to name faults from envelope lines only."""
    window_samples: int = field(default=4096, metadata={"check": _check_window})
    overlap: float = field(default=0.5, metadata={"check": _check_fraction})
    status_interval_s: float = field(default=30.0, metadata={"check": check_positive})
    snapshot_interval_s: float = field(
        default=600.0, metadata={"check": lambda v: v >= 0 or "must be 0 or more"}
    )
    """A health record carries a spectrum snapshot at most this often (measurement time); alerts always do;
    0: only alerts."""
    log_level: str = field(default="INFO", metadata={"check": check_log_level})

    def __post_init__(self) -> None:
        if not self.assets:
            raise ValueError("at least one [[assets]] table is needed")
        seen: dict[int, str] = {}
        for asset in self.assets:
            for channel in (asset.vibration_channel, asset.temperature_channel):
                if channel is None:
                    continue
                if channel in seen:
                    raise ValueError(f"channel {channel} is used by both {seen[channel]} and {asset.id}")
                seen[channel] = asset.id
        ids = [asset.id for asset in self.assets]
        if len(set(ids)) != len(ids):
            raise ValueError("asset ids must be unique")
