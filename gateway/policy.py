"""The words of ERP documents: what the planner and the quality engineer read. Pure functions.

A notification's text says what was found, on which machine, how sure the model is and why (the agent's
evidence sentences), and which model said so. A hold's text says which lot, why, and over which window.
Which alerts become documents is decided in :mod:`plantwatch.gateway.workflow`.
"""

from __future__ import annotations

from typing import Any

from plantwatch.clock import rfc3339
from plantwatch.contract import Record
from plantwatch.gateway.erp import HoldRequest, NotificationRequest

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


def notification_request(
    record: Record, *, correlation_id: str, severity: str, priority: str
) -> NotificationRequest:
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
        priority=priority,
        title=f"{record.asset}: {words}",
        long_text="\n".join(lines),
    )


def hold_request(
    record: Record,
    *,
    correlation_id: str,
    context: dict[str, Any],
    excursion: dict[str, Any],
) -> HoldRequest:
    """The quality hold of one lot (a ``production_context`` row) made during ``excursion``."""
    words = FAILURE_WORDS.get(excursion["failure_mode"], excursion["failure_mode"])
    ended = "still running" if excursion["ended_at"] is None else f"until {rfc3339(excursion['ended_at'])}"
    ran_until = "now" if context["until"] is None else rfc3339(context["until"])
    order, lot = context["production_order"], context["lot"]
    lines = [
        f"plantwatch holds {'lot ' + lot if lot else 'the output'} of production order {order}: made on"
        f" {record.asset} (site {record.site}) while it was out of its normal state.",
        f"Excursion: {excursion['severity']} ({words}) from {rfc3339(excursion['started_at'])} {ended}.",
        f"The order ran on {record.asset} from {rfc3339(context['since'])} to {ran_until}.",
        "Evidence at the alarm:",
        *(f"- {line}" for line in record.evidence),
        f"Model: {record.model.name} {record.model.version} (sha256 {record.model.sha256[:12]}).",
        f"Correlation id {correlation_id}; message {record.id}.",
    ]
    return HoldRequest(
        correlation_id=correlation_id,
        asset=record.asset,
        production_order=order,
        lot=lot,
        material=context["material"],
        title=f"Hold {order}{' / ' + lot if lot else ''}: {record.asset} {words}",
        long_text="\n".join(lines),
        plant=context["plant"],
        storage_location=context["storage_location"],
        quantity=context["quantity"],
        unit=context["unit"],
    )
