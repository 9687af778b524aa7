"""The gateway's configuration (``gateway.toml``), validated completely before the gateway starts.

Example::

    site = "plant1"
    gateway_id = "gw1"
    state_dir = "/var/lib/plantwatch-gateway"

    [mqtt]
    host = "broker.plant1.local"
    port = 8883
    username = "gateway-plant1"     # password: $CREDENTIALS_DIRECTORY/mqtt-password
    tls_ca_file = "/etc/plantwatch/ca.pem"

    [erp]
    kind = "sap"
    base_url = "https://s4.example.com"
    user = "PLANTWATCH"             # password: $CREDENTIALS_DIRECTORY/erp-password

    [inbox]
    health_retention_s = 86400      # keep health record ids a day to drop copies resent after a reconnect
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from plantwatch.agent.config import MqttSettings
from plantwatch.config import check_log_level, check_name, check_positive


@dataclass(frozen=True)
class ErpSettings:
    """Which ERP receives documents; the password is a secret (``erp-password`` / ``PLANTWATCH_ERP_PASSWORD``)."""

    kind: Literal["sap"] = "sap"
    base_url: str = field(
        default="http://127.0.0.1:8080",
        metadata={
            "check": lambda v: v.startswith(("http://", "https://")) or "must start with http:// or https://"
        },
    )
    user: str = "PLANTWATCH"
    timeout_s: float = field(default=10.0, metadata={"check": check_positive})
    notification_type: str = field(
        default="M2", metadata={"check": lambda v: len(v) <= 2 or "at most 2 characters"}
    )
    retry_initial_s: float = field(default=1.0, metadata={"check": check_positive})
    retry_max_s: float = field(default=300.0, metadata={"check": check_positive})


@dataclass(frozen=True)
class PolicySettings:
    """When an alert becomes ERP work."""

    create_on: Literal["warning", "alarm"] = "alarm"
    """The lowest state that opens a maintenance notification."""


@dataclass(frozen=True)
class InboxSettings:
    """How received records are kept."""

    health_retention_s: float = field(default=86400.0, metadata={"check": check_positive})
    """How long (s) a health record's id is kept to recognise a copy of it; alerts are kept for good.

    A copy comes when an agent resends after a reconnect, before the broker's acknowledgement reached it:
    within minutes, or after the agent's own outage. Health records are too many to keep like alerts."""


@dataclass(frozen=True)
class GatewaySettings:
    """The whole ``gateway.toml``."""

    site: str = field(metadata={"check": check_name})
    gateway_id: str = field(metadata={"check": check_name})
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    erp: ErpSettings = field(default_factory=ErpSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    inbox: InboxSettings = field(default_factory=InboxSettings)
    state_dir: str = "/var/lib/plantwatch-gateway"
    status_interval_s: float = field(default=30.0, metadata={"check": check_positive})
    log_level: str = field(default="INFO", metadata={"check": check_log_level})
