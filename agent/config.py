"""The agent's configuration (``agent.toml``), validated completely before the agent starts.

Example::

    site = "plant1"
    agent_id = "gw-line3"
    state_dir = "/var/lib/plantwatch-agent"

    [serial]
    port = "/dev/ttyUSB0"

    [mqtt]
    host = "broker.plant1.local"
    port = 8883
    username = "gw-line3"          # the password comes from $CREDENTIALS_DIRECTORY/mqtt-password
    tls_ca_file = "/etc/plantwatch/ca.pem"

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

from plantwatch.config import check_log_level, check_name, check_port, check_positive


def _check_fraction(value: float) -> bool | str:
    return 0.0 <= value < 1.0 or "must be within [0, 1)"


def _check_channel(value: int) -> bool | str:
    return 0 <= value <= 255 or "must be a channel number 0..255"


def _check_window(value: int) -> bool | str:
    return (value >= 256 and value & (value - 1) == 0) or "must be a power of two ≥ 256"


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
    state_dir: str = "/var/lib/plantwatch-agent"
    model_dir: str | None = None
    """Folder of model files and manifests; default: the models shipped with plantwatch."""
    model: str = "anomaly-ae"
    window_samples: int = field(default=4096, metadata={"check": _check_window})
    overlap: float = field(default=0.5, metadata={"check": _check_fraction})
    status_interval_s: float = field(default=30.0, metadata={"check": check_positive})
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
