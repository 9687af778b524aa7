"""Policy: which alerts become ERP work, at which priority, with which words. Pure functions.

The planner reads the notification, so its text says what was found, on which machine, how sure the
model is and why (the agent's evidence sentences), and which model said so.
"""

from __future__ import annotations

from plantwatch.contract import Record
from plantwatch.gateway.erp import NotificationRequest

SEVERITY_RANK = {"normal": 0, "warning": 1, "alarm": 2}

PRIORITY = {"alarm": "2", "warning": "3"}
"""Severity → SAP maintenance priority (1 very high, 2 high, 3 medium, 4 low). Very high is left to people:
a prediction asks for planned work, not for an emergency stop."""

FAILURE_WORDS = {
    "inner_race": "bearing inner race defect",
    "outer_race": "bearing outer race defect",
    "ball": "bearing rolling element defect",
    "cage": "bearing cage defect",
    "imbalance": "imbalance",
    "misalignment": "misalignment",
    "looseness": "mechanical looseness",
    "overheating": "overheating",
    "unknown": "abnormal vibration",
    "healthy": "no fault",
}


def document_severity(record: Record, *, create_on: str) -> str | None:
    """The severity with which ``record`` opens a document, or ``None`` if it opens none."""
    if not record.is_alert or SEVERITY_RANK[record.state] < SEVERITY_RANK[create_on]:
        return None
    return record.state


def notification_request(record: Record, *, correlation_id: str, severity: str) -> NotificationRequest:
    """The maintenance notification for the record that opened a document."""
    words = FAILURE_WORDS.get(record.failure_mode, record.failure_mode)
    lines = [
        f"plantwatch detected {words} on {record.asset} (site {record.site}).",
        f"Severity: {severity}. Confidence: {record.confidence:.0%}. Anomaly score {record.score:.2f}"
        f" (warning threshold {record.threshold:.2f}).",
        f"Measured {record.window.start} to {record.window.end} by agent {record.agent}.",
        "Evidence:",
        *(f"- {line}" for line in record.evidence),
        f"Model: {record.model.name} {record.model.version} (sha256 {record.model.sha256[:12]}).",
        f"Correlation id {correlation_id}; message {record.id}.",
    ]
    return NotificationRequest(
        correlation_id=correlation_id,
        asset=record.asset,
        failure_mode=record.failure_mode,
        severity=severity,
        priority=PRIORITY.get(severity, "3"),
        title=f"{record.asset}: {words}",
        long_text="\n".join(lines),
    )
