"""What an alert becomes: the policy, approval and quality-hold rules, as SQL on ``gateway.sqlite``.

Every function here runs inside a transaction the caller (:class:`~plantwatch.gateway.store.GatewayStore`)
holds, so a decision, its document and its ledger row commit together with the record that caused them.

**Notifications** (one per site, asset and failure mode while open):

1. An alert for an asset and failure mode that already has an open document (shadow, awaiting approval,
   pending or open in the ERP) updates it: a repeat is counted and its note queued for the ERP at most once
   per ``update_interval_s``; a rise in severity raises the priority and goes out at once (``escalate``).
2. Otherwise an alert below ``create_on`` is only observed.
3. An asset in a planned maintenance window opens nothing (``suppress``).
4. **Debounce**: the first alert at or above ``create_on`` makes a candidate. The document opens when
   ``debounce_alerts`` alerts came, or when the asset is still at or above ``create_on`` (health records
   count) ``debounce_s`` of measurement time after the first; a record below ``create_on`` that was measured
   after the candidate's newest alert drops the candidate.
5. The approval mode (:func:`resolve_mode`: asset and failure mode, asset, failure mode, site, then the
   configured default) decides the new document's status: ``shadow`` (recorded, never sent),
   ``awaiting_approval`` (advisory: a planner approves or rejects) or ``pending`` (closed loop: the ERP
   worker creates it).
6. The correlation id comes from the abnormal **episode** (the alert's ``episode``: when the asset left
   normal) and the failure mode, so two gateways behind a shared subscription that each see part of the
   alerts ask the ERP for the same document. A document closed in the ERP during the same episode is
   followed by a new one (the next generation of the id); a rejected recommendation or a refused document
   keeps the episode quiet (replay a refused one from the dead letters).

**Quality holds**: an excursion is an abnormal episode of an asset, from when it left normal to the alert
that brought it back. Once an excursion reaches ``hold_on``, every production order / lot whose run on the
asset (from the MES's context messages: ``since`` until the next context) overlaps the excursion gets one
hold document: the intervals are half open, so a lot that ended exactly when the excursion began, or began
exactly when it ended, is not held. Lots announced later (a late MES message, a lot started during the
excursion) are held when they come. Holds follow the same approval modes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plantwatch.clock import parse_rfc3339, rfc3339
from plantwatch.contract import Record

if TYPE_CHECKING:
    from plantwatch.contract import ProductionContext

MODES = ("shadow", "advisory", "closed_loop")
SEVERITY_RANK = {"normal": 0, "warning": 1, "alarm": 2}
PRIORITY = {"alarm": "2", "warning": "3"}
"""Severity → ERP priority (1 very high … 4 low). Very high is left to people: a prediction asks for
planned work, not for an emergency stop."""
OPEN_STATUSES = ("shadow", "awaiting_approval", "pending", "open")
STATUS_OF_MODE = {"shadow": "shadow", "advisory": "awaiting_approval", "closed_loop": "pending"}
WILDCARD = "*"


@dataclass(frozen=True)
class Policy:
    """The rules of :mod:`plantwatch.gateway.workflow` (from ``[policy]``, ``[approval]``, ``[quality]``)."""

    create_on: str = "alarm"
    debounce_alerts: int = 2
    debounce_s: float = 300.0
    update_interval_s: float = 3600.0
    default_mode: str = "closed_loop"
    quality_holds: bool = True
    hold_on: str = "alarm"


def make_correlation_id(*parts: str) -> str:
    """A 20-character ERP correlation id ``PW[A-Z2-7]{18}`` from the parts that identify a document.

    SAP's ``MaintNotifExtReferenceNumber`` holds 20 upper-case characters, too few for a UUID, so the id
    is a hash: the same parts always give the same id, on any gateway.

    >>> make_correlation_id("plant1", "pump-7", "outer_race", "2026-11-23T08:00:00.000Z", "0")
    'PWKH2VKNVZ2TMQMCRBNY'
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return "PW" + base64.b32encode(digest).decode()[:18]


def resolve_mode(conn: sqlite3.Connection, site: str, asset: str, failure_mode: str, default: str) -> str:
    """The approval mode for a document: the most specific rule set by an administrator, else ``default``.

    Precedence: asset and failure mode, then asset, then failure mode, then the whole site.
    """
    row = conn.execute(
        "SELECT mode FROM approval_modes WHERE site = ? AND asset IN (?, '*') AND failure_mode IN (?, '*')"
        " ORDER BY asset = '*', failure_mode = '*' LIMIT 1",
        (site, asset, failure_mode),
    ).fetchone()
    return row[0] if row else default


def measured_at(record: Record) -> float:
    """When ``record`` was measured (epoch seconds of its ``ts``, the window's end)."""
    return parse_rfc3339(record.ts)


def episode_of(record: Record) -> str:
    """The record's abnormal episode: its ``episode`` field, or (agents before 1.2) its own window start."""
    return record.episode or record.window.start


class Workflow:
    """Decisions for one gateway: ``policy`` and the ERP backend's name (stored with each document)."""

    def __init__(self, policy: Policy, erp: str) -> None:
        self.policy = policy
        self.erp = erp
        self._candidates: set[tuple[str, str]] = set()

    def load(self, conn: sqlite3.Connection) -> None:
        """Read which assets have debounce candidates (health records look only at those)."""
        self._candidates = {(row[0], row[1]) for row in conn.execute("SELECT site, asset FROM candidates")}

    # --- records -------------------------------------------------------------------------------------

    def on_alert(self, conn: sqlite3.Connection, record: Record, now_s: float) -> list[str]:
        """Decide on an alert; the correlation ids of documents that became due for the ERP."""
        due: list[str] = []
        if self.policy.quality_holds:
            due += self._track_excursion(conn, record, now_s)
        site, asset, mode = record.site, record.asset, record.failure_mode
        when = measured_at(record)
        if record.state == "normal":
            self._drop_candidates(conn, site, asset, when, now_s, record)
            for (cid,) in conn.execute(
                "SELECT correlation_id FROM documents WHERE site = ? AND asset = ? AND kind = 'notification'"
                " AND status = 'shadow'",
                (site, asset),
            ).fetchall():
                conn.execute(
                    "UPDATE documents SET status = 'closed', closed_at = ?, updated_at = ? WHERE correlation_id = ?",
                    (now_s, now_s, cid),
                )
                self.ledger(
                    conn, now_s, "shadow_closed", record, correlation_id=cid, detail="asset back to normal"
                )
            self.ledger(conn, now_s, "observe", record)
            return due
        existing = conn.execute(
            "SELECT correlation_id, status, severity, priority, number, opened_at, last_update_at FROM documents"
            " WHERE site = ? AND asset = ? AND failure_mode = ? AND kind = 'notification'"
            " AND status IN ('shadow', 'awaiting_approval', 'pending', 'open')",
            (site, asset, mode),
        ).fetchone()
        if existing is not None:
            due += self._update(conn, record, existing, now_s)
            return due
        if SEVERITY_RANK[record.state] < SEVERITY_RANK[self.policy.create_on]:
            self.ledger(conn, now_s, "observe", record)
            return due
        window = self.maintenance_window(conn, site, asset, when)
        if window is not None:
            self.ledger(
                conn, now_s, "suppress", record, detail=f"planned maintenance #{window[0]}: {window[1]}"
            )
            return due
        conn.execute(
            "INSERT INTO candidates (site, asset, failure_mode, episode, first_measured, last_measured, alerts,"
            " severity, message_id) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
            " ON CONFLICT (site, asset, failure_mode) DO UPDATE SET alerts = alerts + 1,"
            " last_measured = max(last_measured, excluded.last_measured),"
            " severity = CASE WHEN excluded.severity = 'alarm' THEN 'alarm' ELSE severity END",
            (site, asset, mode, episode_of(record), when, when, record.state, record.id),
        )
        self._candidates.add((site, asset))
        candidate = self._candidate(conn, site, asset, mode)
        alerts, first = candidate["alerts"], candidate["first_measured"]
        if alerts >= self.policy.debounce_alerts or when - first >= self.policy.debounce_s:
            due += self._open(conn, candidate, record, now_s)
        else:
            self.ledger(
                conn,
                now_s,
                "debounce",
                record,
                detail=f"alert {alerts} of {self.policy.debounce_alerts}, or still at {self.policy.create_on}"
                f" at {rfc3339(first + self.policy.debounce_s)}",
            )
        return due

    def on_health(self, conn: sqlite3.Connection, record: Record, now_s: float) -> list[str]:
        """A health record ends or confirms a debounce candidate's persistence (only assets with one)."""
        if (record.site, record.asset) not in self._candidates:
            return []
        when = measured_at(record)
        if SEVERITY_RANK[record.state] < SEVERITY_RANK[self.policy.create_on]:
            self._drop_candidates(conn, record.site, record.asset, when, now_s, record)
            return []
        due: list[str] = []
        for candidate in conn.execute(
            "SELECT * FROM candidates WHERE site = ? AND asset = ?", (record.site, record.asset)
        ).fetchall():
            if when - candidate["first_measured"] >= self.policy.debounce_s:
                opening = conn.execute(
                    "SELECT payload FROM inbox WHERE message_id = ?", (candidate["message_id"],)
                ).fetchone()
                alert = _parse(opening[0]) if opening else record
                due += self._open(conn, candidate, alert, now_s, persisted_until=when)
        return due

    def _candidate(self, conn: sqlite3.Connection, site: str, asset: str, mode: str) -> sqlite3.Row:
        return conn.execute(
            "SELECT * FROM candidates WHERE site = ? AND asset = ? AND failure_mode = ?", (site, asset, mode)
        ).fetchone()

    def _drop_candidates(
        self, conn: sqlite3.Connection, site: str, asset: str, when: float, now_s: float, record: Record
    ) -> None:
        if (site, asset) not in self._candidates:
            return
        dropped = conn.execute(
            "DELETE FROM candidates WHERE site = ? AND asset = ? AND last_measured < ? RETURNING failure_mode",
            (site, asset, when),
        ).fetchall()
        for (mode,) in dropped:
            self.ledger(
                conn,
                now_s,
                "debounce_cleared",
                record,
                failure_mode=mode,
                detail=f"{record.state} at {record.ts} before the candidate became work",
            )
        if not conn.execute(
            "SELECT 1 FROM candidates WHERE site = ? AND asset = ?", (site, asset)
        ).fetchone():
            self._candidates.discard((site, asset))

    def _open(
        self,
        conn: sqlite3.Connection,
        candidate: sqlite3.Row,
        record: Record,
        now_s: float,
        *,
        persisted_until: float | None = None,
    ) -> list[str]:
        site, asset, mode = candidate["site"], candidate["asset"], candidate["failure_mode"]
        conn.execute(
            "DELETE FROM candidates WHERE site = ? AND asset = ? AND failure_mode = ?", (site, asset, mode)
        )
        if not conn.execute(
            "SELECT 1 FROM candidates WHERE site = ? AND asset = ?", (site, asset)
        ).fetchone():
            self._candidates.discard((site, asset))
        episode = candidate["episode"]
        for generation in range(1000):
            cid = make_correlation_id(site, asset, mode, episode, str(generation))
            row = conn.execute(
                "SELECT status, decided_by, decision_reason FROM documents WHERE correlation_id = ?", (cid,)
            ).fetchone()
            if row is None:
                break
            if row["status"] in ("rejected", "failed"):
                why = (
                    f"rejected by {row['decided_by']} for this episode: {row['decision_reason']}"
                    if row["status"] == "rejected"
                    else "the ERP refused this episode's document: replay it from the dead letters"
                )
                self.ledger(
                    conn, now_s, "suppress", record, failure_mode=mode, correlation_id=cid, detail=why
                )
                return []
            # closed (or a shadow closed at a return to normal): the fault came back, a new generation
        severity = candidate["severity"]
        approval = resolve_mode(conn, site, asset, mode, self.policy.default_mode)
        status = STATUS_OF_MODE[approval]
        conn.execute(
            "INSERT INTO documents (correlation_id, kind, site, asset, failure_mode, status, mode, severity,"
            " priority, episode, message_id, erp, opened_at, updated_at)"
            " VALUES (?, 'notification', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cid,
                site,
                asset,
                mode,
                status,
                approval,
                severity,
                PRIORITY[severity],
                episode,
                candidate["message_id"],
                self.erp,
                now_s,
                now_s,
            ),
        )
        why = (
            f"{candidate['alerts']} alerts"
            if persisted_until is None
            else f"still {self.policy.create_on} or worse {persisted_until - candidate['first_measured']:.0f} s"
            " after the first alert"
        )
        decision = {"shadow": "shadow", "advisory": "recommend", "closed_loop": "create"}[approval]
        self.ledger(
            conn,
            now_s,
            decision,
            record,
            failure_mode=mode,
            correlation_id=cid,
            mode=approval,
            priority=PRIORITY[severity],
            detail=why,
        )
        return [cid] if status == "pending" else []

    def _update(
        self, conn: sqlite3.Connection, record: Record, existing: sqlite3.Row, now_s: float
    ) -> list[str]:
        cid = existing["correlation_id"]
        escalate = SEVERITY_RANK[record.state] > SEVERITY_RANK[existing["severity"]]
        severity = record.state if escalate else existing["severity"]
        priority = min(existing["priority"], PRIORITY.get(record.state, existing["priority"]))
        note = (
            f"{record.ts}: {'rose to ' if escalate else 'again '}{record.state}, score {record.score:.2f}"
            f" (threshold {record.threshold:.2f}), confidence {record.confidence:.0%}"
            + "".join(f"\n- {line}" for line in record.evidence[:3])
        )
        due_at = None
        if existing["status"] == "open":
            last = existing["last_update_at"] or existing["opened_at"]
            due_at = now_s if escalate else max(now_s, last + self.policy.update_interval_s)
        conn.execute(
            "UPDATE documents SET repeats = repeats + 1, severity = ?, priority = ?, updated_at = ?,"
            " update_note = CASE WHEN update_note IS NULL THEN ? ELSE update_note || char(10) || ? END,"
            " update_due_at = CASE WHEN ? IS NULL THEN update_due_at"
            " WHEN update_due_at IS NULL THEN ? ELSE min(update_due_at, ?) END"
            " WHERE correlation_id = ?",
            (severity, priority, now_s, note, note, due_at, due_at, due_at, cid),
        )
        self.ledger(
            conn,
            now_s,
            "escalate" if escalate else "repeat",
            record,
            correlation_id=cid,
            erp_number=existing["number"],
            priority=priority,
        )
        return [cid] if due_at is not None and due_at <= now_s else []

    # --- maintenance windows -------------------------------------------------------------------------

    @staticmethod
    def maintenance_window(
        conn: sqlite3.Connection, site: str, asset: str, at_s: float
    ) -> tuple[int, str] | None:
        """The planned maintenance window (id, reason) covering ``asset`` at ``at_s``, if any."""
        row = conn.execute(
            "SELECT id, reason FROM maintenance_windows WHERE site = ? AND asset IN (?, '*')"
            " AND starts_at <= ? AND ? < ends_at ORDER BY id LIMIT 1",
            (site, asset, at_s, at_s),
        ).fetchone()
        return (row[0], row[1]) if row else None

    # --- production context and quality holds --------------------------------------------------------

    def on_context(self, conn: sqlite3.Connection, context: ProductionContext, now_s: float) -> list[str]:
        """Record which order / lot runs on an asset from when; hold it if an excursion covers it."""
        since = parse_rfc3339(context.since)
        inserted = conn.execute(
            "INSERT OR IGNORE INTO context_messages (context_id, received_at) VALUES (?, ?)",
            (context.id, now_s),
        ).rowcount
        if not inserted:
            return []
        newer = conn.execute(
            "SELECT 1 FROM production_context WHERE site = ? AND asset = ? AND since > ?",
            (context.site, context.asset, since),
        ).fetchone()
        if newer:
            # an older context delivered late: it ended where the next one began; keep what is known
            if (
                context.production_order is None
                or conn.execute(
                    "SELECT 1 FROM production_context WHERE site = ? AND asset = ? AND since = ?",
                    (context.site, context.asset, since),
                ).fetchone()
            ):
                return []
            following = conn.execute(
                "SELECT min(since) FROM production_context WHERE site = ? AND asset = ? AND since > ?",
                (context.site, context.asset, since),
            ).fetchone()[0]
            # the order before it ended when this one began
            conn.execute(
                "UPDATE production_context SET until = ? WHERE site = ? AND asset = ? AND since < ?"
                " AND (until IS NULL OR until > ?)",
                (since, context.site, context.asset, since, since),
            )
            until: float | None = following
        else:
            conn.execute(
                "UPDATE production_context SET until = ? WHERE site = ? AND asset = ? AND until IS NULL",
                (since, context.site, context.asset),
            )
            until = None
        if context.production_order is not None:
            conn.execute(
                "INSERT INTO production_context (site, asset, production_order, lot, material, plant,"
                " storage_location, quantity, unit, since, until, context_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, asset, since) DO NOTHING",
                (
                    context.site,
                    context.asset,
                    context.production_order,
                    context.lot,
                    context.material,
                    context.plant,
                    context.storage_location,
                    context.quantity,
                    context.unit,
                    since,
                    until,
                    context.id,
                ),
            )
        return (
            self._place_holds(conn, context.site, context.asset, now_s) if self.policy.quality_holds else []
        )

    def _track_excursion(self, conn: sqlite3.Connection, record: Record, now_s: float) -> list[str]:
        site, asset = record.site, record.asset
        current = conn.execute(
            "SELECT id, severity FROM excursions WHERE site = ? AND asset = ? AND ended_at IS NULL",
            (site, asset),
        ).fetchone()
        if record.state == "normal":
            if current is not None:
                conn.execute(
                    "UPDATE excursions SET ended_at = ?, end_message_id = ? WHERE id = ?",
                    (measured_at(record), record.id, current["id"]),
                )
                return self._place_holds(conn, site, asset, now_s)
            return []
        if current is None:
            episode = episode_of(record)
            conn.execute(
                "INSERT INTO excursions (site, asset, episode, failure_mode, severity, started_at, message_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, asset, episode) DO NOTHING",
                (site, asset, episode, record.failure_mode, record.state, parse_rfc3339(episode), record.id),
            )
        elif SEVERITY_RANK[record.state] > SEVERITY_RANK[current["severity"]]:
            conn.execute(
                "UPDATE excursions SET severity = ?, failure_mode = ?, message_id = ? WHERE id = ?",
                (record.state, record.failure_mode, record.id, current["id"]),
            )
        return self._place_holds(conn, site, asset, now_s)

    def _place_holds(self, conn: sqlite3.Connection, site: str, asset: str, now_s: float) -> list[str]:
        hold_rank = SEVERITY_RANK[self.policy.hold_on]
        due: list[str] = []
        rows = conn.execute(
            "SELECT e.id AS excursion, e.episode, e.failure_mode, e.severity, e.started_at, e.ended_at,"
            " e.message_id, c.production_order, c.lot, c.since, c.until"
            " FROM excursions e JOIN production_context c ON c.site = e.site AND c.asset = e.asset"
            " WHERE e.site = ? AND e.asset = ? AND c.since < coalesce(e.ended_at, 1e300)"
            " AND coalesce(c.until, 1e300) > e.started_at",
            (site, asset),
        ).fetchall()
        for row in rows:
            if SEVERITY_RANK[row["severity"]] < hold_rank:
                continue
            cid = make_correlation_id(
                "hold", site, asset, row["episode"], row["production_order"], row["lot"] or ""
            )
            if conn.execute("SELECT 1 FROM documents WHERE correlation_id = ?", (cid,)).fetchone():
                continue
            approval = resolve_mode(conn, site, asset, row["failure_mode"], self.policy.default_mode)
            status = STATUS_OF_MODE[approval]
            conn.execute(
                "INSERT INTO documents (correlation_id, kind, site, asset, failure_mode, status, mode, severity,"
                " priority, episode, message_id, erp, opened_at, updated_at, excursion_id, production_order, lot)"
                " VALUES (?, 'hold', ?, ?, ?, ?, ?, ?, '2', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    site,
                    asset,
                    row["failure_mode"],
                    status,
                    approval,
                    row["severity"],
                    row["episode"],
                    row["message_id"],
                    self.erp,
                    now_s,
                    now_s,
                    row["excursion"],
                    row["production_order"],
                    row["lot"],
                ),
            )
            opening = conn.execute(
                "SELECT payload FROM inbox WHERE message_id = ?", (row["message_id"],)
            ).fetchone()
            decision = {"shadow": "shadow_hold", "advisory": "recommend_hold", "closed_loop": "hold"}[
                approval
            ]
            end = "still running" if row["ended_at"] is None else rfc3339(row["ended_at"])
            self.ledger(
                conn,
                now_s,
                decision,
                _parse(opening[0]) if opening else None,
                kind="hold",
                site=site,
                asset=asset,
                failure_mode=row["failure_mode"],
                correlation_id=cid,
                mode=approval,
                detail=f"order {row['production_order']} lot {row['lot'] or '-'} ran"
                f" {rfc3339(row['since'])} – {'now' if row['until'] is None else rfc3339(row['until'])};"
                f" excursion {rfc3339(row['started_at'])} – {end}",
            )
            if status == "pending":
                due.append(cid)
        return due

    # --- the ledger ----------------------------------------------------------------------------------

    @staticmethod
    def ledger(
        conn: sqlite3.Connection,
        now_s: float,
        decision: str,
        record: Record | None,
        *,
        kind: str = "notification",
        site: str | None = None,
        asset: str | None = None,
        failure_mode: str | None = None,
        correlation_id: str | None = None,
        erp_number: str | None = None,
        mode: str | None = None,
        priority: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Append one decision to the ledger, with the record's prediction and evidence when there is one."""
        conn.execute(
            "INSERT INTO ledger (at, decision, kind, site, asset, failure_mode, state, message_id, agent, seq,"
            " measured_at, correlation_id, erp_number, score, threshold, confidence, model_name, model_version,"
            " model_sha256, evidence, features, mode, priority, actor, reason, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now_s,
                decision,
                kind,
                site or (record.site if record else None),
                asset or (record.asset if record else None),
                failure_mode or (record.failure_mode if record else None),
                record.state if record else None,
                record.id if record else None,
                record.agent if record else None,
                record.seq if record else None,
                record.ts if record else None,
                correlation_id,
                erp_number,
                record.score if record else None,
                record.threshold if record else None,
                record.confidence if record else None,
                record.model.name if record else None,
                record.model.version if record else None,
                record.model.sha256 if record else None,
                json.dumps(record.evidence) if record else None,
                json.dumps(record.features) if record else None,
                mode,
                priority,
                actor,
                reason,
                detail,
            ),
        )


def _parse(payload: str) -> Record:
    from plantwatch.contract import parse_record

    return parse_record(payload.encode())
