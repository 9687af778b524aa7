"""What the planner's web page reads: the fleet, one asset, the agents, the recommendations.

Read-only queries over :class:`~plantwatch.gateway.store.GatewayStore` (``asset_latest``,
``asset_history``, ``asset_spectrum``, ``agent_status``, ``documents``, ``inbox``), each returning
JSON-ready dicts in the shapes ``gateway/web/static`` draws (README, "The planner's web page"). Times a
person reads are RFC 3339 text; the fleet is sorted worst first: alarm, warning, normal, then by how far
the score is above its threshold.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from plantwatch.clock import rfc3339
from plantwatch.gateway.store import GatewayStore, NotFound

PAGE_LIMIT_MAX = 500
"""Most assets one fleet request returns."""
HISTORY_POINTS = 500
"""Most points of an asset's score history one request returns (thinned evenly, changes of state kept)."""
HISTORY_SCAN = 20_000
"""Newest history points read before thinning."""
ZONES = {1: "A", 2: "B", 3: "C", 4: "D"}

_FLEET_COLUMNS = (
    "l.site, l.asset, l.agent, l.state, l.score, l.threshold, l.failure_mode, l.confidence, l.iso_zone,"
    " l.velocity_mm_s, l.measured_at, l.received_at, l.trend, a.state AS agent_state,"
    " json_extract(a.summary, '$.buffered_records') AS buffered_records,"
    " json_extract(a.summary, '$.buffer_percent') AS buffer_percent"
)
_FLEET_FROM = "asset_latest l LEFT JOIN agent_status a ON a.site = l.site AND a.agent = l.agent"
_WORST_FIRST = (
    "CASE l.state WHEN 'alarm' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,"
    " CASE WHEN l.threshold > 0 THEN l.score / l.threshold ELSE l.score END DESC, l.site, l.asset"
)


def _time(epoch_s: float | None) -> str | None:
    return rfc3339(epoch_s) if epoch_s is not None else None


def _row(row: sqlite3.Row, *, trend: bool = True) -> dict[str, Any]:
    """A fleet row as the page shows it."""
    zone = row["iso_zone"]
    result: dict[str, Any] = {
        "site": row["site"],
        "asset": row["asset"],
        "agent": row["agent"],
        "state": row["state"],
        "score": row["score"],
        "threshold": row["threshold"],
        "failure_mode": row["failure_mode"],
        "confidence": row["confidence"],
        "iso_zone": ZONES.get(int(zone)) if zone is not None and math.isfinite(zone) else None,
        "velocity_mm_s": row["velocity_mm_s"],
        "measured_at": _time(row["measured_at"]),
        "received_at": _time(row["received_at"]),
        "agent_state": row["agent_state"] or "unknown",
        "buffered_records": row["buffered_records"],
        "buffer_percent": row["buffer_percent"],
    }
    if trend:
        result["trend"] = json.loads(row["trend"])
    return result


def _filters(
    site: str | None, state: str | None, failure_mode: str | None, q: str | None
) -> tuple[str, list[Any]]:
    where, params = ["1"], []
    for column, value in (("l.site", site), ("l.state", state), ("l.failure_mode", failure_mode)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if q:
        where.append("l.asset LIKE ? ESCAPE '\\'")
        params.append("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    return " AND ".join(where), params


def fleet(
    store: GatewayStore,
    *,
    site: str | None = None,
    state: str | None = None,
    failure_mode: str | None = None,
    q: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """One page of the fleet, worst first, with the counts per state (under every filter but the state)."""
    limit = max(1, min(limit, PAGE_LIMIT_MAX))
    offset = max(0, offset)
    where, params = _filters(site, state, failure_mode, q)
    unstated, unstated_params = _filters(site, None, failure_mode, q)
    with store.reading() as conn:
        rows = conn.execute(
            f"SELECT {_FLEET_COLUMNS} FROM {_FLEET_FROM} WHERE {where} ORDER BY {_WORST_FIRST} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        total = conn.execute(f"SELECT count(*) FROM asset_latest l WHERE {where}", params).fetchone()[0]
        counts = dict(
            conn.execute(
                f"SELECT l.state, count(*) FROM asset_latest l WHERE {unstated} GROUP BY 1", unstated_params
            ).fetchall()
        )
        sites = [r[0] for r in conn.execute("SELECT DISTINCT site FROM asset_latest ORDER BY 1")]
        modes = [r[0] for r in conn.execute("SELECT DISTINCT failure_mode FROM asset_latest ORDER BY 1")]
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "counts": {name: counts.get(name, 0) for name in ("normal", "warning", "alarm")},
        "sites": sites,
        "failure_modes": modes,
        "assets": [_row(row) for row in rows],
    }


def fleet_row(store: GatewayStore, site: str, asset: str) -> dict[str, Any] | None:
    """One asset's fleet row without its trend (the live update), or ``None``."""
    with store.reading() as conn:
        row = conn.execute(
            f"SELECT {_FLEET_COLUMNS} FROM {_FLEET_FROM} WHERE l.site = ? AND l.asset = ?", (site, asset)
        ).fetchone()
    return _row(row, trend=False) if row is not None else None


def _summary(conn: sqlite3.Connection, site: str, agent: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT summary FROM agent_status WHERE site = ? AND agent = ?", (site, agent)
    ).fetchone()
    return json.loads(row[0]) if row else {}


def _thin(points: list[dict[str, Any]], most: int) -> list[dict[str, Any]]:
    """At most about ``most`` points, evenly spaced, keeping every change of state."""
    if len(points) <= most:
        return points
    step = math.ceil(len(points) / most)
    kept = [
        point
        for i, point in enumerate(points)
        if i % step == 0 or i == len(points) - 1 or point["state"] != points[i - 1]["state"]
    ]
    return kept


def asset_detail(store: GatewayStore, site: str, asset: str) -> dict[str, Any]:
    """Everything the asset page draws (:class:`NotFound` for an asset no record named)."""
    with store.reading() as conn:
        row = conn.execute(
            f"SELECT {_FLEET_COLUMNS} FROM {_FLEET_FROM} WHERE l.site = ? AND l.asset = ?", (site, asset)
        ).fetchone()
        if row is None:
            raise NotFound(f"no asset {asset!r} at site {site!r}")
        history = [
            {
                "t": rfc3339(measured_at),
                "score": score,
                "threshold": threshold,
                "state": state,
                "features": json.loads(features),
            }
            for measured_at, score, threshold, state, features in reversed(
                conn.execute(
                    "SELECT measured_at, score, threshold, state, features FROM asset_history"
                    " WHERE site = ? AND asset = ? ORDER BY measured_at DESC LIMIT ?",
                    (site, asset, HISTORY_SCAN),
                ).fetchall()
            )
        ]
        spectrum_row = conn.execute(
            "SELECT measured_at, message_id, snapshot FROM asset_spectrum WHERE site = ? AND asset = ?",
            (site, asset),
        ).fetchone()
        alerts = [
            json.loads(payload)
            for (payload,) in conn.execute(
                "SELECT payload FROM inbox WHERE site = ? AND asset = ? ORDER BY received_at DESC LIMIT 10",
                (site, asset),
            )
        ]
        documents = [
            dict(r)
            for r in conn.execute(
                "SELECT * FROM documents WHERE site = ? AND asset = ? ORDER BY opened_at DESC LIMIT 50",
                (site, asset),
            )
        ]
        summary = _summary(conn, site, row["agent"])
    assets = summary.get("assets")
    agent_view = assets.get(asset) if isinstance(assets, dict) else None
    agent_view = agent_view if isinstance(agent_view, dict) else {}
    baseline = dict(agent_view.get("baseline") or {})
    if "velocity_rms_mm_s" in baseline:
        baseline["velocity_mm_s"] = baseline["velocity_rms_mm_s"]
    explained = next((alert for alert in alerts if alert.get("evidence")), None)
    latest_alert = alerts[0] if alerts else None
    judged_by = latest_alert or {}
    spectrum = None
    if spectrum_row is not None:
        spectrum = {
            "measured_at": rfc3339(spectrum_row[0]),
            "message_id": spectrum_row[1],
            **json.loads(spectrum_row[2]),
        }
    return {
        "latest": _row(row),
        "thresholds": {
            "warning": row["threshold"],
            "alarm": agent_view.get("alarm_threshold"),
        },
        "history": _thin(history, HISTORY_POINTS),
        "baseline": baseline,
        "spectrum": spectrum,
        "evidence": explained["evidence"] if explained else [],
        "evidence_at": explained["ts"] if explained else None,
        "documents": documents,
        "model": judged_by.get("model") or _model_ref(summary.get("model")),
        "classifier": judged_by.get("classifier") or _model_ref(summary.get("classifier")),
        "drift": {
            name: agent_view[name] for name in ("drift", "drift_feature", "drifting") if name in agent_view
        }
        or None,
    }


def _model_ref(model: object) -> dict[str, Any] | None:
    if not isinstance(model, dict):
        return None
    return {name: model.get(name) for name in ("name", "version", "sha256")}


def _agent(site: str, agent: str, state: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "site": site,
        "agent": agent,
        "state": state,
        "status_at": summary.get("ts"),
        "buffered_records": summary.get("buffered_records"),
        "buffer_percent": summary.get("buffer_percent"),
        "model": summary.get("model"),
        "classifier": summary.get("classifier"),
        "assets": summary.get("assets") or {},
    }


def agents(store: GatewayStore) -> list[dict[str, Any]]:
    """Every agent that sent a status: state, buffer, models with their evaluation, drift per asset."""
    with store.reading() as conn:
        rows = conn.execute(
            "SELECT site, agent, state, summary FROM agent_status ORDER BY site, agent"
        ).fetchall()
    return [_agent(site, agent, state, json.loads(summary)) for site, agent, state, summary in rows]


def agent(store: GatewayStore, site: str, name: str) -> dict[str, Any] | None:
    """One agent's row of :func:`agents` (the live update), or ``None``."""
    with store.reading() as conn:
        row = conn.execute(
            "SELECT state, summary FROM agent_status WHERE site = ? AND agent = ?", (site, name)
        ).fetchone()
    return _agent(site, name, row[0], json.loads(row[1])) if row else None


def recommendations(store: GatewayStore) -> list[dict[str, Any]]:
    """Documents awaiting approval, oldest first, each with the alert that opened it (``record``)."""
    documents = store.documents(status="awaiting_approval")
    with store.reading() as conn:
        payloads = {
            message_id: payload
            for message_id, payload in conn.execute(
                "SELECT message_id, payload FROM inbox WHERE message_id IN (SELECT message_id FROM documents"
                " WHERE status = 'awaiting_approval')"
            )
        }
    return [
        {**document.as_dict(), "record": json.loads(payloads[document.message_id])}
        if document.message_id in payloads
        else {**document.as_dict(), "record": None}
        for document in documents
    ]
