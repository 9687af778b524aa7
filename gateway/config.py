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
    kind = "tryton"                 # or "sap", "webhook"
    base_url = "https://erp.plant1.local:8000"
    database = "plant1"             # Tryton's database
    user = "plantwatch"             # password: $CREDENTIALS_DIRECTORY/erp-password

    [policy]
    create_on = "alarm"             # the lowest state that opens a work order
    debounce_alerts = 2             # … after this many alerts, or
    debounce_s = 300                # … once it persisted this long (measurement time)

    [approval]
    mode = "advisory"               # shadow | advisory | closed_loop; per asset/failure mode: the API

    [api]                           # the planner's web page and the HTTP API, on one port
    listen = "127.0.0.1"
    port = 8470
    tls_cert = "/etc/plantwatch/gateway.pem"   # HTTPS (both or neither); session cookies become Secure
    tls_key = "/etc/plantwatch/gateway.key"
    secure_cookies = false          # true behind a proxy that speaks TLS for the gateway

    [inbox]
    health_retention_s = 86400      # keep health record ids a day to drop copies resent after a reconnect
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal

from plantwatch.agent.config import MqttSettings
from plantwatch.config import check_log_level, check_name, check_positive
from plantwatch.gateway.workflow import Policy


@dataclass(frozen=True)
class ErpSettings:
    """Which ERP receives documents; the password (Tryton, SAP) or signing secret (webhook) is a secret
    (``erp-password`` / ``PLANTWATCH_ERP_PASSWORD``)."""

    kind: Literal["tryton", "sap", "webhook"] = "tryton"
    base_url: str = field(
        default="http://127.0.0.1:8000",
        metadata={
            "check": lambda v: v.startswith(("http://", "https://")) or "must start with http:// or https://"
        },
    )
    database: str = "plantwatch"
    """Tryton only: the database name (never ``rpc``)."""
    user: str = "plantwatch"
    timeout_s: float = field(default=10.0, metadata={"check": check_positive})
    notification_type: str = field(
        default="M2", metadata={"check": lambda v: len(v) <= 2 or "at most 2 characters"}
    )
    """SAP only: the maintenance notification type."""
    hold_method: Literal["goods_movement", "batch_restriction"] = "goods_movement"
    """SAP only: how a lot is held (blocked stock by movement type 344, or a restricted batch)."""
    create_order: bool = False
    """SAP only: also create a PM01 maintenance order from each notification."""
    retry_initial_s: float = field(default=1.0, metadata={"check": check_positive})
    retry_max_s: float = field(default=300.0, metadata={"check": check_positive})
    breaker_failures: int = field(default=5, metadata={"check": check_positive})
    """Consecutive failures (ERP down, busy) after which calls stop for ``breaker_reset_s``."""
    breaker_reset_s: float = field(default=30.0, metadata={"check": check_positive})
    feedback_interval_s: float = field(default=300.0, metadata={"check": check_positive})
    """How often each open work order is read back for its status and the planner's outcome."""


@dataclass(frozen=True)
class PolicySettings:
    """When an alert becomes ERP work (see :mod:`plantwatch.gateway.workflow`)."""

    create_on: Literal["warning", "alarm"] = "alarm"
    """The lowest state that opens a maintenance notification."""
    debounce_alerts: int = field(default=2, metadata={"check": check_positive})
    """Alerts at or above ``create_on`` after which a document opens …"""
    debounce_s: float = field(default=300.0, metadata={"check": lambda v: v >= 0 or "must be 0 or more"})
    """… or how long (measurement time) the state must persist at or above ``create_on``."""
    update_interval_s: float = field(default=3600.0, metadata={"check": check_positive})
    """Repeats reach an open document in the ERP at most this often; a rise in severity goes at once."""


@dataclass(frozen=True)
class ApprovalSettings:
    """The site's default approval mode (administrators set asset and failure-mode rules over the API)."""

    mode: Literal["shadow", "advisory", "closed_loop"] = "closed_loop"


@dataclass(frozen=True)
class QualitySettings:
    """Quality holds on lots made during an excursion."""

    holds: bool = True
    hold_on: Literal["warning", "alarm"] = "alarm"
    """The state an excursion must reach before its lots are held (the whole excursion is the window)."""


@dataclass(frozen=True)
class ApiSettings:
    """The web page and the HTTP API (approvals, modes, ledger, dead letters); port 0 turns both off."""

    listen: str = "127.0.0.1"
    port: int = field(default=8470, metadata={"check": lambda v: 0 <= v <= 65535 or "must be 0..65535"})
    tls_cert: str = ""
    tls_key: str = ""
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together (both or neither)")

    def tls_context(self) -> ssl.SSLContext | None:
        """The server's TLS context, or ``None`` for plain HTTP."""
        if not self.tls_cert:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


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
    approval: ApprovalSettings = field(default_factory=ApprovalSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    inbox: InboxSettings = field(default_factory=InboxSettings)
    state_dir: str = "/var/lib/plantwatch-gateway"
    shared_group: str = field(default="", metadata={"check": lambda v: not v or check_name(v)})
    """Several gateways of one site that set the same group share the work (an MQTT 5 shared
    subscription): each record goes to one of them. Empty: this gateway takes everything."""
    status_interval_s: float = field(default=30.0, metadata={"check": check_positive})
    log_level: str = field(default="INFO", metadata={"check": check_log_level})


def workflow_policy(settings: GatewaySettings) -> Policy:
    """The workflow's rules from the configuration."""
    return Policy(
        create_on=settings.policy.create_on,
        debounce_alerts=settings.policy.debounce_alerts,
        debounce_s=settings.policy.debounce_s,
        update_interval_s=settings.policy.update_interval_s,
        default_mode=settings.approval.mode,
        quality_holds=settings.quality.holds,
        hold_on=settings.quality.hold_on,
    )
