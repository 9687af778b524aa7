"""The gateway's SQLite state: inbox, dead letters, ERP documents and the audit ledger.

- ``inbox``: every record accepted, keyed by its message id; a second copy of an id is a duplicate and
  is dropped.
- ``dead_letters``: payloads that break the contract and ERP refusals, with the reason; nothing is lost.
- ``documents``: one row per ERP document plantwatch asked for, keyed by its correlation id; at most one
  open (pending or created) per site, asset and failure mode.
- ``ledger``: every decision with its evidence, the model that made the prediction and the ERP number.
- ``received``: the ids of health records (too many for the inbox) for ``health_retention_s``, so that a
  copy resent after a reconnect is dropped; pruned at most once every :data:`PRUNE_INTERVAL_S`.
- ``asset_latest``: per asset, the newest record's state, score and failure mode (by measurement time, so
  a backlog of older health records arriving behind an alert does not overwrite it).
- ``agent_sequence``: per agent, which seqs arrived (:class:`~plantwatch.gateway.sequence.AgentSequence`:
  ``contiguous`` and the JSON of the runs above it), also held in memory and written in the same
  transaction as the records that changed it.
- ``asset_history``: per asset, a point (state, score, key features) at most every :data:`HISTORY_STEP_S` of
  measurement time, and one for every alert and change of state; kept :data:`HISTORY_RETENTION_S`.
  ``asset_latest.trend`` holds the newest :data:`TREND_POINTS` scores of it for the fleet page.
- ``asset_spectrum``: per asset, the newest spectrum snapshot an agent sent (contract 1.3).
- ``agent_status``: per agent, what its newest status says (online/offline, buffer, models, drift).
- ``sessions``: the web page's logged-in sessions (hashes of their tokens).
- ``sequence_gaps``: every gap confirmed by a drained agent status (``kind = 'gap'``: seqs ``first`` …
  ``last``, ``missing`` of them) and every reset (``kind = 'reset'``: ``first`` is the seq the agent
  restarted at, ``last`` the highest seen before, ``missing`` the seqs still open then, lost with it).

Messages are taken in batches (:meth:`GatewayStore.take`): one transaction for everything the broker has
delivered so far, so a backlog of thousands of health records a second costs one commit per batch. The
connection is shared by the receiver and the ERP worker threads; a lock keeps their transactions apart.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from plantwatch.clock import parse_rfc3339
from plantwatch.contract import ProductionContext, Record, parse_record
from plantwatch.db import open_database, transaction
from plantwatch.gateway.sequence import AgentSequence, Arrival, Confirmation, Observation
from plantwatch.gateway.workflow import MODES, Policy, Workflow

HEALTH_RETENTION_S = 86400.0
"""Default time a health record's id is kept to recognise a copy: a copy comes within minutes (a resend
after a reconnect), a day covers a gateway that was down over night."""

HISTORY_STEP_S = 60.0
"""Measurement time between two points of an asset's score history (alerts and changes of state add more)."""
HISTORY_RETENTION_S = 30 * 86400.0
"""How long (by arrival) a point of the score history is kept."""
TREND_POINTS = 24
"""Scores in the fleet page's trend of an asset."""
HISTORY_FEATURES = {
    "velocity_mm_s": "velocity_rms_mm_s",
    "rms_g": "rms_g",
    "kurtosis": "kurtosis",
    "crest_factor": "crest_factor",
    "env_bpfo_g": "env_bpfo_g",
    "env_bpfi_g": "env_bpfi_g",
    "env_bsf_g": "env_bsf_g",
    "env_ftf_g": "env_ftf_g",
    "temperature_c": "temperature_c",
}
"""The features kept in the score history (name there → the record's feature name)."""

PRUNE_INTERVAL_S = 60.0
"""Expired health ids are deleted at most this often: one DELETE a minute, not one per batch."""

MIGRATIONS = [
    """
    CREATE TABLE inbox (
        message_id TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        agent TEXT NOT NULL,
        asset TEXT NOT NULL,
        seq INTEGER NOT NULL,
        schema TEXT NOT NULL,
        received_at REAL NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at REAL NOT NULL,
        source TEXT NOT NULL,
        topic TEXT,
        payload BLOB,
        reason TEXT NOT NULL
    );
    CREATE TABLE documents (
        correlation_id TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'open', 'failed', 'closed')),
        severity TEXT NOT NULL,
        message_id TEXT NOT NULL REFERENCES inbox (message_id),
        erp TEXT NOT NULL,
        number TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        opened_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX one_open_document ON documents (site, asset, failure_mode)
        WHERE status IN ('pending', 'open');
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        decision TEXT NOT NULL,
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        state TEXT,
        message_id TEXT,
        correlation_id TEXT,
        erp_number TEXT,
        score REAL,
        confidence REAL,
        model TEXT,
        evidence TEXT,
        features TEXT,
        detail TEXT
    )
    """,
    """
    CREATE TABLE received (
        message_id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        seq INTEGER NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE INDEX received_by_time ON received (received_at);
    CREATE TABLE asset_latest (
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        agent TEXT NOT NULL,
        state TEXT NOT NULL,
        score REAL NOT NULL,
        failure_mode TEXT NOT NULL,
        seq INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        measured_at REAL NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (site, asset)
    );
    CREATE TABLE agent_sequence (
        site TEXT NOT NULL,
        agent TEXT NOT NULL,
        contiguous INTEGER NOT NULL,
        ranges TEXT NOT NULL,
        newest_id TEXT NOT NULL,
        records_thinned INTEGER,
        updated_at REAL NOT NULL,
        PRIMARY KEY (site, agent)
    );
    CREATE TABLE sequence_gaps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        agent TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('gap', 'reset')),
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        missing INTEGER NOT NULL,
        thinned_by_agent INTEGER,
        detected_at REAL NOT NULL
    )
    """,
    # 3: approval modes, debounce, quality holds, feedback, users; documents and ledger rebuilt wider
    """
    CREATE TABLE documents_v3 (
        correlation_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'notification' CHECK (kind IN ('notification', 'hold')),
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('shadow', 'awaiting_approval', 'rejected', 'pending', 'open', 'failed', 'closed')),
        mode TEXT NOT NULL DEFAULT 'closed_loop' CHECK (mode IN ('shadow', 'advisory', 'closed_loop')),
        severity TEXT NOT NULL,
        priority TEXT NOT NULL DEFAULT '3',
        episode TEXT,
        message_id TEXT NOT NULL REFERENCES inbox (message_id),
        erp TEXT NOT NULL,
        number TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        opened_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        repeats INTEGER NOT NULL DEFAULT 0,
        update_note TEXT,
        update_due_at REAL,
        last_update_at REAL,
        erp_priority TEXT,
        decided_by TEXT,
        decided_at REAL,
        decision_reason TEXT,
        excursion_id INTEGER,
        production_order TEXT,
        lot TEXT,
        outcome TEXT,
        closed_at REAL,
        checked_at REAL
    );
    INSERT INTO documents_v3 (correlation_id, site, asset, failure_mode, status, severity, priority, message_id, erp,
        number, attempts, next_attempt_at, last_error, opened_at, updated_at)
        SELECT correlation_id, site, asset, failure_mode, status, severity,
            CASE severity WHEN 'alarm' THEN '2' ELSE '3' END, message_id, erp, number, attempts, next_attempt_at,
            last_error, opened_at, updated_at FROM documents;
    DROP TABLE documents;
    ALTER TABLE documents_v3 RENAME TO documents;
    CREATE UNIQUE INDEX one_open_document ON documents (site, asset, failure_mode)
        WHERE kind = 'notification' AND status IN ('shadow', 'awaiting_approval', 'pending', 'open');
    CREATE INDEX documents_by_status ON documents (status, next_attempt_at);
    CREATE TABLE ledger_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        decision TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'notification',
        site TEXT,
        asset TEXT,
        failure_mode TEXT,
        state TEXT,
        message_id TEXT,
        agent TEXT,
        seq INTEGER,
        measured_at TEXT,
        correlation_id TEXT,
        erp_number TEXT,
        score REAL,
        threshold REAL,
        confidence REAL,
        model_name TEXT,
        model_version TEXT,
        model_sha256 TEXT,
        evidence TEXT,
        features TEXT,
        mode TEXT,
        priority TEXT,
        actor TEXT,
        reason TEXT,
        detail TEXT
    );
    INSERT INTO ledger_v3 (id, at, decision, site, asset, failure_mode, state, message_id, correlation_id, erp_number,
        score, confidence, model_name, model_version, model_sha256, evidence, features, detail)
        SELECT id, at, decision, site, asset, failure_mode, state, message_id, correlation_id, erp_number, score,
            confidence, json_extract(model, '$.name'), json_extract(model, '$.version'),
            json_extract(model, '$.sha256'), evidence, features, detail FROM ledger;
    DROP TABLE ledger;
    ALTER TABLE ledger_v3 RENAME TO ledger;
    CREATE INDEX ledger_by_asset ON ledger (site, asset, at);
    CREATE INDEX ledger_by_time ON ledger (at);
    ALTER TABLE dead_letters ADD COLUMN correlation_id TEXT;
    ALTER TABLE dead_letters ADD COLUMN replayed_at REAL;
    ALTER TABLE dead_letters ADD COLUMN replayed_by TEXT;
    UPDATE dead_letters SET correlation_id = topic, topic = NULL WHERE source = 'erp';
    CREATE TABLE candidates (
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        episode TEXT NOT NULL,
        first_measured REAL NOT NULL,
        last_measured REAL NOT NULL,
        alerts INTEGER NOT NULL,
        severity TEXT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (site, asset, failure_mode)
    );
    CREATE TABLE approval_modes (
        site TEXT NOT NULL,
        asset TEXT NOT NULL DEFAULT '*',
        failure_mode TEXT NOT NULL DEFAULT '*',
        mode TEXT NOT NULL CHECK (mode IN ('shadow', 'advisory', 'closed_loop')),
        set_by TEXT NOT NULL,
        set_at REAL NOT NULL,
        PRIMARY KEY (site, asset, failure_mode)
    );
    CREATE TABLE maintenance_windows (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE context_messages (
        context_id TEXT PRIMARY KEY,
        received_at REAL NOT NULL
    );
    CREATE TABLE production_context (
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        since REAL NOT NULL,
        until REAL,
        production_order TEXT NOT NULL,
        lot TEXT,
        material TEXT,
        plant TEXT,
        storage_location TEXT,
        quantity REAL,
        unit TEXT,
        context_id TEXT NOT NULL,
        PRIMARY KEY (site, asset, since)
    );
    CREATE TABLE excursions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        episode TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        severity TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        message_id TEXT NOT NULL,
        end_message_id TEXT,
        UNIQUE (site, asset, episode)
    );
    CREATE TABLE feedback (
        correlation_id TEXT PRIMARY KEY REFERENCES documents (correlation_id),
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        label TEXT,
        erp_number TEXT NOT NULL,
        closed_at REAL NOT NULL,
        message_id TEXT NOT NULL
    );
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'planner', 'administrator')),
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    )
    """,
    # 4: what the planner's web page shows: score history, the latest spectrum, agent statuses, sessions
    """
    ALTER TABLE asset_latest ADD COLUMN threshold REAL;
    ALTER TABLE asset_latest ADD COLUMN confidence REAL;
    ALTER TABLE asset_latest ADD COLUMN iso_zone REAL;
    ALTER TABLE asset_latest ADD COLUMN velocity_mm_s REAL;
    ALTER TABLE asset_latest ADD COLUMN trend TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX asset_latest_by_state ON asset_latest (site, state);
    CREATE INDEX inbox_by_asset ON inbox (site, asset, received_at);
    CREATE INDEX documents_by_asset ON documents (site, asset, opened_at);
    CREATE TABLE asset_history (
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        measured_at REAL NOT NULL,
        received_at REAL NOT NULL,
        state TEXT NOT NULL,
        score REAL NOT NULL,
        threshold REAL NOT NULL,
        features TEXT NOT NULL
    );
    CREATE INDEX asset_history_by_asset ON asset_history (site, asset, measured_at);
    CREATE INDEX asset_history_by_time ON asset_history (received_at);
    CREATE TABLE asset_spectrum (
        site TEXT NOT NULL,
        asset TEXT NOT NULL,
        measured_at REAL NOT NULL,
        message_id TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        PRIMARY KEY (site, asset)
    );
    CREATE TABLE agent_status (
        site TEXT NOT NULL,
        agent TEXT NOT NULL,
        state TEXT NOT NULL,
        received_at REAL NOT NULL,
        summary TEXT NOT NULL,
        PRIMARY KEY (site, agent)
    );
    CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        seen_at REAL NOT NULL
    )
    """,
]


@dataclass(frozen=True)
class Document:
    """A row of ``documents`` (the columns the worker, the API and the tests use)."""

    correlation_id: str
    kind: str
    site: str
    asset: str
    failure_mode: str
    status: str
    mode: str
    severity: str
    priority: str
    message_id: str
    erp: str
    number: str | None
    attempts: int
    next_attempt_at: float
    last_error: str | None
    opened_at: float
    repeats: int
    update_note: str | None
    erp_priority: str | None
    production_order: str | None
    lot: str | None
    decided_by: str | None
    decision_reason: str | None
    outcome: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Document:
        """The document of a ``SELECT * FROM documents`` row."""
        return cls(**{name: row[name] for name in DOCUMENT_FIELDS})

    def as_dict(self) -> dict[str, object]:
        """The document as a JSON-ready dict."""
        return asdict(self)


DOCUMENT_FIELDS = tuple(Document.__dataclass_fields__)


class NotFound(LookupError):
    """No such document, dead letter or user."""


class Conflict(ValueError):
    """The request does not fit the thing's current state (e.g. approving a document twice)."""


@dataclass(frozen=True)
class RecordIn:
    """A valid health record or alert to take."""

    record: Record


@dataclass(frozen=True)
class AgentStatus:
    """What the gateway uses of an agent's status; a field the status does not carry is ``None``.

    ``last_seq`` is the last seq the agent had given out when it computed the status, ``buffered_records``
    how many of its records the broker had not yet acknowledged then, ``records_thinned`` how many it has
    thinned in all.
    """

    site: str
    agent: str
    last_seq: int | None = None
    buffered_records: int | None = None
    records_thinned: int | None = None
    summary: dict[str, object] | None = None
    """What the web page shows of it (state, time, buffer, models, per-asset drift); kept per agent."""
    retained: bool = False
    """Delivered as the broker's retained message on (re)subscription: shown, but confirms no gaps (it may
    come ahead of records still queued for the gateway's session)."""

    @property
    def drained(self) -> bool:
        """True when the agent had nothing left to send up to ``last_seq`` (a live status only)."""
        return self.buffered_records == 0 and self.last_seq is not None and not self.retained


@dataclass(frozen=True)
class DeadLetter:
    """A payload that cannot be used, with the reason, to keep in the batch's transaction."""

    source: str
    topic: str | None
    payload: bytes | None
    reason: str


@dataclass(frozen=True)
class ContextIn:
    """A production context message from the MES."""

    context: ProductionContext


Incoming = RecordIn | AgentStatus | DeadLetter | ContextIn


@dataclass(frozen=True)
class RecordTaken:
    """What became of a record: a ``duplicate`` (nothing else happened), or accepted with what its seq
    meant (``observation``) and the correlation ids of documents that became due for the ERP (``due``)."""

    record: Record
    duplicate: bool
    observation: Observation | None = None
    due: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContextTaken:
    """What a production context message did: the hold documents that became due."""

    context: ProductionContext
    due: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusTaken:
    """What an agent status confirmed: ``None`` when it was not drained or the agent is not tracked yet."""

    status: AgentStatus
    confirmation: Confirmation | None = None


Taken = RecordTaken | StatusTaken | ContextTaken | None


class GatewayStore:
    """Plain functions over ``gateway.sqlite``, grouped by the connection they share.

    ``health_retention_s`` is how long a health record's id is kept to recognise a copy of it; ``policy``
    the rules that turn alerts into documents for the ERP backend named ``erp``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        health_retention_s: float = HEALTH_RETENTION_S,
        policy: Policy | None = None,
        erp: str = "erp",
    ) -> None:
        self.conn: sqlite3.Connection = open_database(path, MIGRATIONS, synchronous="FULL")
        self.workflow = Workflow(policy or Policy(), erp)
        self.workflow.load(self.conn)
        self.health_retention_s = health_retention_s
        # the receiver and the ERP worker run in different executor threads on this one connection
        self._lock = threading.RLock()
        self._pruned_at = -math.inf
        self._sequences: dict[tuple[str, str], AgentSequence] = {}
        for row in self.conn.execute(
            "SELECT site, agent, contiguous, ranges, newest_id, records_thinned FROM agent_sequence"
        ):
            self._sequences[(row[0], row[1])] = AgentSequence(
                row[2], AgentSequence.ranges_from_json(row[3]), row[4], row[5]
            )
        # summaries for the status, replaced (never changed) after each commit: readers in other threads
        self._missing: dict[tuple[str, str], int] = {
            (row[0], row[1]): row[2]
            for row in self.conn.execute("SELECT site, agent, sum(missing) FROM sequence_gaps GROUP BY 1, 2")
        }
        self._open_holes = {key: account.open_holes for key, account in self._sequences.items()}
        # per asset: (measured_at, state) of its newest history point and its trend, as committed
        self._history: dict[tuple[str, str], tuple[float, str, tuple[float, ...]]] = {}
        for row in self.conn.execute(
            "SELECT l.site, l.asset, max(h.measured_at), l.state, l.trend FROM asset_latest l"
            " JOIN asset_history h ON h.site = l.site AND h.asset = l.asset GROUP BY 1, 2"
        ):
            self._history[(row[0], row[1])] = (row[2], row[3], tuple(json.loads(row[4])))
        self._batch_history: dict[tuple[str, str], tuple[float, str, tuple[float, ...]]] = {}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self.conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self.conn) as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for queries (:mod:`~plantwatch.gateway.views`), while no other thread uses it."""
        with self._lock:
            yield self.conn

    def writing(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """The connection inside a transaction, while no other thread uses it."""
        return self._write()

    # --- inbox and dead letters ----------------------------------------------------------------------

    def dead_letter(
        self, *, source: str, topic: str | None, payload: bytes | None, reason: str, now_s: float
    ) -> None:
        """Keep a payload that cannot be used, with the reason."""
        with self._write() as conn:
            self._dead_letter(conn, DeadLetter(source, topic, payload, reason), now_s)

    @staticmethod
    def _dead_letter(conn: sqlite3.Connection, letter: DeadLetter, now_s: float) -> None:
        conn.execute(
            "INSERT INTO dead_letters (received_at, source, topic, payload, reason) VALUES (?, ?, ?, ?, ?)",
            (now_s, letter.source, letter.topic, letter.payload, letter.reason),
        )

    def dead_letter_count(self) -> int:
        """How many dead letters are kept."""
        with self._lock:
            return self.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]

    def accept(self, record: Record, *, now_s: float) -> RecordTaken:
        """Take one record (a batch of one, see :meth:`take`)."""
        (taken,) = self.take([RecordIn(record)], now_s=now_s)
        assert isinstance(taken, RecordTaken)
        return taken

    def take(self, items: Sequence[Incoming], *, now_s: float) -> list[Taken]:
        """Store a batch of received messages in one transaction, in order; what became of each.

        - an alert goes into the inbox (a known id is a duplicate), with its decision
          (:mod:`~plantwatch.gateway.workflow`) in the ledger and perhaps a document;
        - a production context updates which lot runs where, and perhaps holds lots;
        - a health record's id goes into ``received`` (a known id is a duplicate);
        - every record that is not a duplicate updates ``asset_latest`` and its agent's sequence account
          (a reset is recorded in ``sequence_gaps``);
        - a drained agent status confirms its agent's missing seqs as gaps (recorded in ``sequence_gaps``);
        - a dead letter is kept (its item's result is ``None``).

        Nothing is changed, in the file or in memory, unless the whole batch commits.
        """
        with self._lock:
            return self._take(items, now_s)

    def _take(self, items: Sequence[Incoming], now_s: float) -> list[Taken]:
        touched: dict[tuple[str, str], AgentSequence] = {}
        results: list[Taken] = []
        prune = now_s - self._pruned_at >= PRUNE_INTERVAL_S
        self._batch_history = {}
        with self._write() as conn:
            for item in items:
                if isinstance(item, RecordIn):
                    results.append(self._take_record(conn, item, touched, now_s))
                elif isinstance(item, AgentStatus):
                    results.append(self._take_status(conn, item, touched, now_s))
                elif isinstance(item, ContextIn):
                    due = self.workflow.on_context(conn, item.context, now_s)
                    results.append(ContextTaken(item.context, tuple(due)))
                else:
                    self._dead_letter(conn, item, now_s)
                    results.append(None)
            for (site, agent), account in touched.items():
                conn.execute(
                    "INSERT OR REPLACE INTO agent_sequence VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        site,
                        agent,
                        account.contiguous,
                        account.ranges_json(),
                        account.newest_id,
                        account.records_thinned,
                        now_s,
                    ),
                )
            if prune:
                conn.execute("DELETE FROM received WHERE received_at < ?", (now_s - self.health_retention_s,))
                conn.execute(
                    "DELETE FROM asset_history WHERE received_at < ?", (now_s - HISTORY_RETENTION_S,)
                )
        if prune:
            self._pruned_at = now_s
        self._sequences.update(touched)
        self._history.update(self._batch_history)
        self._summarise(results, touched)
        return results

    def _take_record(
        self,
        conn: sqlite3.Connection,
        item: RecordIn,
        touched: dict[tuple[str, str], AgentSequence],
        now_s: float,
    ) -> RecordTaken:
        record = item.record
        if record.is_alert:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.site,
                    record.agent,
                    record.asset,
                    record.seq,
                    record.schema,
                    now_s,
                    record.to_json(),
                ),
            ).rowcount
        else:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO received VALUES (?, ?, ?, ?, ?, ?)",
                (record.id, record.agent, record.site, record.asset, record.seq, now_s),
            ).rowcount
        if not inserted:
            return RecordTaken(record, duplicate=True)
        observation = self._observe(conn, record, touched, now_s)
        measured_at = parse_rfc3339(record.ts)
        conn.execute(
            "INSERT INTO asset_latest (site, asset, agent, state, score, failure_mode, seq, message_id, measured_at,"
            " received_at, threshold, confidence, iso_zone, velocity_mm_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?) ON CONFLICT (site, asset) DO UPDATE SET"
            " agent = excluded.agent, state = excluded.state, score = excluded.score,"
            " failure_mode = excluded.failure_mode, seq = excluded.seq, message_id = excluded.message_id,"
            " measured_at = excluded.measured_at, received_at = excluded.received_at,"
            " threshold = excluded.threshold, confidence = excluded.confidence, iso_zone = excluded.iso_zone,"
            " velocity_mm_s = excluded.velocity_mm_s"
            " WHERE excluded.measured_at >= asset_latest.measured_at",
            (
                record.site,
                record.asset,
                record.agent,
                record.state,
                record.score,
                record.failure_mode,
                record.seq,
                record.id,
                measured_at,
                now_s,
                record.threshold,
                record.confidence,
                record.features.get("iso_zone"),
                record.features.get("velocity_rms_mm_s"),
            ),
        )
        self._add_history(conn, record, measured_at, now_s)
        if record.spectrum is not None:
            conn.execute(
                "INSERT INTO asset_spectrum VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, asset) DO UPDATE SET"
                " measured_at = excluded.measured_at, message_id = excluded.message_id,"
                " snapshot = excluded.snapshot WHERE excluded.measured_at >= asset_spectrum.measured_at",
                (
                    record.site,
                    record.asset,
                    measured_at,
                    record.id,
                    json.dumps(record.spectrum.as_dict(), separators=(",", ":")),
                ),
            )
        if record.is_alert:
            due = self.workflow.on_alert(conn, record, now_s)
        else:
            due = self.workflow.on_health(conn, record, now_s)
        return RecordTaken(record, duplicate=False, observation=observation, due=tuple(due))

    def _add_history(
        self, conn: sqlite3.Connection, record: Record, measured_at: float, now_s: float
    ) -> None:
        """A point of the asset's score history: every alert and change of state, else one per step."""
        key = (record.site, record.asset)
        last = self._batch_history.get(key) or self._history.get(key)
        if last is not None:
            last_at, last_state, trend = last
            if measured_at < last_at and not record.is_alert:
                return  # an older health record of a backlog: the history has this stretch already
            if not record.is_alert and record.state == last_state and measured_at - last_at < HISTORY_STEP_S:
                return
        else:
            trend = ()
        features = {
            name: record.features[source]
            for name, source in HISTORY_FEATURES.items()
            if source in record.features
        }
        conn.execute(
            "INSERT INTO asset_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.site,
                record.asset,
                measured_at,
                now_s,
                record.state,
                record.score,
                record.threshold,
                json.dumps(features, separators=(",", ":")),
            ),
        )
        if last is None or measured_at >= last[0]:
            trend = (*trend, record.score)[-TREND_POINTS:]
            conn.execute(
                "UPDATE asset_latest SET trend = ? WHERE site = ? AND asset = ?",
                (json.dumps(trend), record.site, record.asset),
            )
            self._batch_history[key] = (measured_at, record.state, trend)

    def _account(
        self, key: tuple[str, str], touched: dict[tuple[str, str], AgentSequence]
    ) -> AgentSequence | None:
        # the batch changes a copy; the committed account is replaced only after COMMIT
        if key not in touched:
            stored = self._sequences.get(key)
            if stored is None:
                return None
            touched[key] = stored.copy()
        return touched[key]

    def _observe(
        self,
        conn: sqlite3.Connection,
        record: Record,
        touched: dict[tuple[str, str], AgentSequence],
        now_s: float,
    ) -> Observation:
        key = (record.site, record.agent)
        account = self._account(key, touched)
        if account is None:
            touched[key] = AgentSequence.start(seq=record.seq, message_id=record.id)
            return Observation(Arrival.NEW)
        observation = account.observe(record.seq, record.id)
        if observation.arrival is Arrival.RESET:
            conn.execute(
                "INSERT INTO sequence_gaps (site, agent, kind, first, last, missing, detected_at)"
                " VALUES (?, ?, 'reset', ?, ?, ?, ?)",
                (
                    record.site,
                    record.agent,
                    record.seq,
                    observation.previous_highest,
                    observation.abandoned,
                    now_s,
                ),
            )
        return observation

    def _take_status(
        self,
        conn: sqlite3.Connection,
        status: AgentStatus,
        touched: dict[tuple[str, str], AgentSequence],
        now_s: float,
    ) -> StatusTaken:
        if status.summary is not None:
            conn.execute(
                "INSERT INTO agent_status VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, agent) DO UPDATE SET"
                " state = excluded.state, received_at = excluded.received_at, summary = excluded.summary",
                (
                    status.site,
                    status.agent,
                    str(status.summary.get("state") or "unknown"),
                    now_s,
                    json.dumps(status.summary, separators=(",", ":")),
                ),
            )
        if not status.drained:
            return StatusTaken(status)
        account = self._account((status.site, status.agent), touched)
        if account is None:
            return StatusTaken(status)  # tracking starts with the agent's first record
        assert status.last_seq is not None
        confirmation = account.confirm(status.last_seq, status.records_thinned)
        for gap in confirmation.gaps:
            conn.execute(
                "INSERT INTO sequence_gaps (site, agent, kind, first, last, missing, thinned_by_agent, detected_at)"
                " VALUES (?, ?, 'gap', ?, ?, ?, ?, ?)",
                (status.site, status.agent, gap.first, gap.last, gap.missing, confirmation.thinned, now_s),
            )
        return StatusTaken(status, confirmation)

    def _summarise(self, results: list[Taken], touched: dict[tuple[str, str], AgentSequence]) -> None:
        missing = dict(self._missing)
        for taken in results:
            if isinstance(taken, StatusTaken) and taken.confirmation is not None:
                key = (taken.status.site, taken.status.agent)
                missing[key] = missing.get(key, 0) + taken.confirmation.missing
            elif isinstance(taken, RecordTaken) and taken.observation and taken.observation.abandoned:
                key = (taken.record.site, taken.record.agent)
                missing[key] = missing.get(key, 0) + taken.observation.abandoned
        open_holes = dict(self._open_holes)
        open_holes.update((key, account.open_holes) for key, account in touched.items())
        self._missing, self._open_holes = missing, open_holes

    # --- sequences and latest state ------------------------------------------------------------------

    def account(self, site: str, agent: str) -> AgentSequence | None:
        """A copy of ``agent``'s sequence account, or ``None`` if none of its records came yet."""
        account = self._sequences.get((site, agent))
        return account.copy() if account is not None else None

    def sequence_gaps(self, site: str) -> dict[str, int]:
        """Per agent of ``site``: how many of its seqs were declared missing in all, by drained statuses and
        as open holes abandoned at a reset (agents with none left out)."""
        return {agent: count for (at, agent), count in self._missing.items() if at == site and count}

    def open_holes(self, site: str) -> dict[str, int]:
        """Per agent of ``site``: how many seqs are missing but may still come (agents with none left out)."""
        return {agent: count for (at, agent), count in self._open_holes.items() if at == site and count}

    def gaps(self) -> list[dict[str, object]]:
        """Every row of ``sequence_gaps``, oldest first."""
        with self._lock:
            return [dict(row) for row in self.conn.execute("SELECT * FROM sequence_gaps ORDER BY id")]

    def asset_latest(self) -> list[dict[str, object]]:
        """The newest record's state per asset, by site and asset."""
        with self._lock:
            return [dict(row) for row in self.conn.execute("SELECT * FROM asset_latest ORDER BY site, asset")]

    # --- documents: the ERP worker's side ----------------------------------------------------------

    def _document(self, conn: sqlite3.Connection, cid: str) -> Document:
        row = conn.execute("SELECT * FROM documents WHERE correlation_id = ?", (cid,)).fetchone()
        if row is None:
            raise NotFound(f"no document with correlation id {cid}")
        return Document.from_row(row)

    def document(self, cid: str) -> Document:
        """The document with correlation id ``cid`` (:class:`NotFound` if none)."""
        with self._lock:
            return self._document(self.conn, cid)

    def documents(self, *, status: str | None = None, kind: str | None = None) -> list[Document]:
        """Documents, oldest first, optionally only of one ``status`` and ``kind``."""
        query, params = "SELECT * FROM documents WHERE 1", []
        if status is not None:
            query, params = query + " AND status = ?", [*params, status]
        if kind is not None:
            query, params = query + " AND kind = ?", [*params, kind]
        with self._lock:
            return [
                Document.from_row(row) for row in self.conn.execute(query + " ORDER BY opened_at", params)
            ]

    def due_documents(self, now_s: float) -> list[Document]:
        """Documents to create in the ERP now (pending, next attempt due), oldest first."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT * FROM documents WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY opened_at",
                (now_s,),
            ).fetchall()
            return [Document.from_row(row) for row in rows]

    def due_updates(self, now_s: float) -> list[Document]:
        """Open notifications with an update (repeats, a higher priority) due for the ERP."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT * FROM documents WHERE status = 'open' AND kind = 'notification'"
                " AND update_due_at <= ? ORDER BY update_due_at",
                (now_s,),
            ).fetchall()
            return [Document.from_row(row) for row in rows]

    def due_feedback(self, now_s: float, interval_s: float) -> list[Document]:
        """Open notifications not read back from the ERP for ``interval_s``."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT * FROM documents WHERE status = 'open' AND kind = 'notification'"
                " AND coalesce(checked_at, opened_at) <= ? ORDER BY coalesce(checked_at, opened_at)",
                (now_s - interval_s,),
            ).fetchall()
            return [Document.from_row(row) for row in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending document or update is due, or ``None``."""
        with self._lock:
            row = self.conn.execute(
                "SELECT min(next_attempt_at) FROM documents WHERE status = 'pending'"
                " UNION ALL SELECT min(update_due_at) FROM documents WHERE status = 'open'"
            ).fetchall()
            times = [value for (value,) in row if value is not None]
            return min(times) if times else None

    def opening_record(self, document: Document) -> Record:
        """The record that opened ``document`` (from the inbox)."""
        with self._lock:
            return self._record(self.conn, document.message_id)

    def production_context(self, document: Document) -> dict[str, object] | None:
        """The MES context row of a hold document's production order and lot."""
        with self._lock:
            row = self.conn.execute(
                "SELECT * FROM production_context WHERE site = ? AND asset = ? AND production_order = ?"
                " AND coalesce(lot, '') = coalesce(?, '') ORDER BY since DESC LIMIT 1",
                (document.site, document.asset, document.production_order, document.lot),
            ).fetchone()
            return dict(row) if row else None

    def excursion(self, document: Document) -> dict[str, object] | None:
        """The excursion a hold document belongs to."""
        with self._lock:
            row = self.conn.execute(
                "SELECT e.* FROM excursions e JOIN documents d ON d.excursion_id = e.id WHERE d.correlation_id = ?",
                (document.correlation_id,),
            ).fetchone()
            return dict(row) if row else None

    def document_created(
        self, document: Document, *, number: str, found_existing: bool, now_s: float
    ) -> None:
        """The ERP has the document: store its number and write the ledger."""
        with self._write() as conn:
            conn.execute(
                "UPDATE documents SET status = 'open', number = ?, attempts = attempts + 1, last_error = NULL,"
                " erp_priority = priority, updated_at = ?,"
                " update_due_at = CASE WHEN priority < ? THEN ? ELSE update_due_at END"
                " WHERE correlation_id = ?",
                (number, now_s, document.priority, now_s, document.correlation_id),
            )
            self.workflow.ledger(
                conn,
                now_s,
                "erp_found_existing" if found_existing else "erp_created",
                self._record(conn, document.message_id),
                kind=document.kind,
                failure_mode=document.failure_mode,
                correlation_id=document.correlation_id,
                erp_number=number,
                mode=document.mode,
                priority=document.priority,
                actor=document.decided_by,
                detail=None
                if document.kind == "notification"
                else f"order {document.production_order} lot {document.lot or '-'}",
            )

    def document_retry(self, document: Document, *, error: str, next_attempt_at: float, now_s: float) -> None:
        """An attempt failed in a way worth retrying."""
        with self._write() as conn:
            conn.execute(
                "UPDATE documents SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, updated_at = ?"
                " WHERE correlation_id = ?",
                (error, next_attempt_at, now_s, document.correlation_id),
            )

    def document_failed(self, document: Document, *, error: str, now_s: float) -> None:
        """The ERP refused the document: mark it failed, keep a dead letter and write the ledger."""
        with self._write() as conn:
            conn.execute(
                "UPDATE documents SET status = 'failed', attempts = attempts + 1, last_error = ?, updated_at = ?"
                " WHERE correlation_id = ?",
                (error, now_s, document.correlation_id),
            )
            payload = conn.execute(
                "SELECT payload FROM inbox WHERE message_id = ?", (document.message_id,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO dead_letters (received_at, source, topic, payload, reason, correlation_id)"
                " VALUES (?, 'erp', NULL, ?, ?, ?)",
                (now_s, payload.encode(), error, document.correlation_id),
            )
            self.workflow.ledger(
                conn,
                now_s,
                "erp_refused",
                self._record(conn, document.message_id),
                kind=document.kind,
                failure_mode=document.failure_mode,
                correlation_id=document.correlation_id,
                mode=document.mode,
                detail=error,
            )

    def update_sent(self, document: Document, *, note: str | None, priority: str, now_s: float) -> None:
        """The ERP took an update: forget the note that went out (newer ones stay queued)."""
        with self._write() as conn:
            current = conn.execute(
                "SELECT update_note FROM documents WHERE correlation_id = ?", (document.correlation_id,)
            ).fetchone()[0]
            rest = (
                current[len(note) :].lstrip("\n") if current and note and current.startswith(note) else None
            )
            conn.execute(
                "UPDATE documents SET erp_priority = ?, update_note = ?, last_update_at = ?, updated_at = ?,"
                " update_due_at = CASE WHEN ? IS NULL THEN NULL ELSE ? END WHERE correlation_id = ?",
                (
                    priority,
                    rest or None,
                    now_s,
                    now_s,
                    rest,
                    now_s + self.workflow.policy.update_interval_s,
                    document.correlation_id,
                ),
            )
            self.workflow.ledger(
                conn,
                now_s,
                "erp_updated",
                None,
                site=document.site,
                asset=document.asset,
                failure_mode=document.failure_mode,
                correlation_id=document.correlation_id,
                erp_number=document.number,
                priority=priority,
                detail=note,
            )

    def update_retry(self, document: Document, *, error: str, next_attempt_at: float) -> None:
        """An update failed and is worth retrying later."""
        with self._write() as conn:
            conn.execute(
                "UPDATE documents SET update_due_at = ?, last_error = ? WHERE correlation_id = ?",
                (next_attempt_at, error, document.correlation_id),
            )

    def feedback_read(self, document: Document, *, status: str, outcome: str | None, now_s: float) -> bool:
        """What the ERP says of an open notification; a completed one closes with its label. True if closed."""
        with self._write() as conn:
            if status != "completed":
                conn.execute(
                    "UPDATE documents SET checked_at = ? WHERE correlation_id = ?",
                    (now_s, document.correlation_id),
                )
                return False
            conn.execute(
                "UPDATE documents SET status = 'closed', outcome = ?, closed_at = ?, checked_at = ?, updated_at = ?"
                " WHERE correlation_id = ?",
                (outcome, now_s, now_s, now_s, document.correlation_id),
            )
            conn.execute(
                "INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    document.correlation_id,
                    document.site,
                    document.asset,
                    document.failure_mode,
                    outcome,
                    document.number,
                    now_s,
                    document.message_id,
                ),
            )
            self.workflow.ledger(
                conn,
                now_s,
                "erp_closed",
                self._record(conn, document.message_id),
                correlation_id=document.correlation_id,
                erp_number=document.number,
                detail=f"label: {outcome or 'none given'}",
            )
            return True

    def feedback(self) -> list[dict[str, object]]:
        """The labels read back from closed documents, with the opening record's features and model."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT f.*, i.payload FROM feedback f JOIN inbox i ON i.message_id = f.message_id ORDER BY closed_at"
            ).fetchall()
        result = []
        for row in rows:
            item = {key: row[key] for key in row.keys() if key != "payload"}  # noqa: SIM118 - a Row iterates values
            record = parse_record(row["payload"].encode())
            item.update(
                features=record.features,
                model={
                    "name": record.model.name,
                    "version": record.model.version,
                    "sha256": record.model.sha256,
                },
                measured_at=record.ts,
            )
            result.append(item)
        return result

    @staticmethod
    def _record(conn: sqlite3.Connection, message_id: str) -> Record:
        payload = conn.execute("SELECT payload FROM inbox WHERE message_id = ?", (message_id,)).fetchone()[0]
        return parse_record(payload.encode())

    # --- approvals, modes, maintenance windows ------------------------------------------------------

    def decide(self, cid: str, *, approve: bool, user: str, reason: str, now_s: float) -> Document:
        """A planner's answer to a recommendation: approved (pending for the ERP) or rejected."""
        with self._write() as conn:
            document = self._document(conn, cid)
            if document.status != "awaiting_approval":
                raise Conflict(f"document {cid} is {document.status}, not awaiting approval")
            conn.execute(
                "UPDATE documents SET status = ?, decided_by = ?, decided_at = ?, decision_reason = ?,"
                " next_attempt_at = ?, updated_at = ? WHERE correlation_id = ?",
                ("pending" if approve else "rejected", user, now_s, reason, now_s, now_s, cid),
            )
            self.workflow.ledger(
                conn,
                now_s,
                "approved" if approve else "rejected",
                self._record(conn, document.message_id),
                kind=document.kind,
                failure_mode=document.failure_mode,
                correlation_id=cid,
                mode=document.mode,
                priority=document.priority,
                actor=user,
                reason=reason,
            )
            return self._document(conn, cid)

    def set_mode(
        self, *, site: str, asset: str, failure_mode: str, mode: str, user: str, now_s: float
    ) -> None:
        """An administrator sets the approval mode for a site, an asset, a failure mode or both."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO approval_modes VALUES (?, ?, ?, ?, ?, ?)",
                (site, asset, failure_mode, mode, user, now_s),
            )
            self.workflow.ledger(
                conn,
                now_s,
                "mode_changed",
                None,
                site=site,
                asset=asset,
                failure_mode=failure_mode,
                mode=mode,
                actor=user,
            )

    def modes(self) -> list[dict[str, object]]:
        """The approval mode rules set by administrators."""
        with self._lock:
            return [
                dict(row) for row in self.conn.execute("SELECT * FROM approval_modes ORDER BY site, asset")
            ]

    def add_maintenance_window(
        self, *, site: str, asset: str, starts_at: float, ends_at: float, reason: str, user: str, now_s: float
    ) -> int:
        """Plan maintenance on ``asset`` (or ``*``): alerts measured in ``[starts_at, ends_at)`` open nothing."""
        if ends_at <= starts_at:
            raise ValueError("a maintenance window must end after it starts")
        with self._write() as conn:
            window = conn.execute(
                "INSERT INTO maintenance_windows (site, asset, starts_at, ends_at, reason, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (site, asset, starts_at, ends_at, reason, user, now_s),
            ).lastrowid
            self.workflow.ledger(
                conn,
                now_s,
                "maintenance_planned",
                None,
                site=site,
                asset=asset,
                actor=user,
                reason=reason,
                detail=f"window #{window}: {starts_at} – {ends_at}",
            )
            assert window is not None
            return window

    def maintenance_windows(self) -> list[dict[str, object]]:
        """Every planned maintenance window."""
        with self._lock:
            return [
                dict(row) for row in self.conn.execute("SELECT * FROM maintenance_windows ORDER BY starts_at")
            ]

    def refused(self, *, user: str, action: str, detail: str, now_s: float) -> None:
        """Record an action refused for lack of a role (the ledger keeps who tried)."""
        with self._write() as conn:
            self.workflow.ledger(conn, now_s, "refused", None, actor=user, reason=action, detail=detail)

    # --- dead letters ---------------------------------------------------------------------------------

    def dead_letters(self, *, include_replayed: bool = False) -> list[dict[str, object]]:
        """Dead letters with their reason (payloads as text where they are UTF-8)."""
        query = "SELECT * FROM dead_letters" + ("" if include_replayed else " WHERE replayed_at IS NULL")
        with self._lock:
            rows = self.conn.execute(query + " ORDER BY id").fetchall()
        result = []
        for row in rows:
            item = dict(row)
            payload = item.get("payload")
            if isinstance(payload, bytes):
                item["payload"] = payload.decode("utf-8", errors="replace")
            result.append(item)
        return result

    def replay(self, letter_id: int, *, user: str, now_s: float) -> dict[str, object]:
        """Take a dead letter back: an ERP refusal's document is pending again; an MQTT payload is returned
        (``topic``, ``payload``) for the caller to take again. The letter is marked replayed."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
            if row is None:
                raise NotFound(f"no dead letter #{letter_id}")
            if row["replayed_at"] is not None:
                raise Conflict(f"dead letter #{letter_id} was replayed by {row['replayed_by']} already")
            conn.execute(
                "UPDATE dead_letters SET replayed_at = ?, replayed_by = ? WHERE id = ?",
                (now_s, user, letter_id),
            )
            cid = row["correlation_id"]
            if row["source"] == "erp" and cid is not None:
                document = self._document(conn, cid)
                if document.status == "failed":
                    conn.execute(
                        "UPDATE documents SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?"
                        " WHERE correlation_id = ?",
                        (now_s, now_s, cid),
                    )
            self.workflow.ledger(
                conn,
                now_s,
                "replay",
                None,
                correlation_id=cid,
                actor=user,
                detail=f"dead letter #{letter_id} ({row['source']}): {row['reason']}",
            )
            return {
                "source": row["source"],
                "topic": row["topic"],
                "payload": row["payload"],
                "correlation_id": cid,
            }

    # --- users ---------------------------------------------------------------------------------------

    def put_user(self, name: str, *, role: str, password_hash: str, now_s: float) -> None:
        """Add a user or change its role and password."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,"
                " disabled = 0",
                (name, role, password_hash, now_s),
            )
            self.workflow.ledger(conn, now_s, "user_changed", None, actor=name, detail=f"role {role}")

    def user(self, name: str) -> tuple[str, str] | None:
        """``(role, password_hash)`` of an enabled user, or None."""
        with self._lock:
            row = self.conn.execute(
                "SELECT role, password_hash FROM users WHERE name = ? AND NOT disabled", (name,)
            ).fetchone()
            return (row[0], row[1]) if row else None

    def users(self) -> list[dict[str, object]]:
        """Users and roles (no password hashes)."""
        with self._lock:
            return [
                dict(row) for row in self.conn.execute("SELECT name, role, created_at, disabled FROM users")
            ]

    # --- ledger ---------------------------------------------------------------------------------------

    def ledger(
        self,
        *,
        asset: str | None = None,
        decision: str | None = None,
        actor: str | None = None,
        since_s: float | None = None,
        until_s: float | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[dict[str, object]]:
        """Ledger rows, oldest (or newest) first, filtered by asset, decision, user and time
        ``[since_s, until_s)``, ``limit`` of them after the first ``offset``."""
        query, params = "SELECT * FROM ledger WHERE 1", []
        for column, value in (("asset", asset), ("decision", decision), ("actor", actor)):
            if value is not None:
                query, params = f"{query} AND {column} = ?", [*params, value]
        if since_s is not None:
            query, params = query + " AND at >= ?", [*params, since_s]
        if until_s is not None:
            query, params = query + " AND at < ?", [*params, until_s]
        query += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None or offset:
            query, params = query + " LIMIT ? OFFSET ?", [*params, -1 if limit is None else limit, offset]
        with self._lock:
            return [dict(row) for row in self.conn.execute(query, params)]

    def counts(self) -> dict[str, int]:
        """Documents per status and kind (``"open"``, ``"hold:pending"`` …) and dead letters not replayed."""
        with self._lock:
            result = {
                (status if kind == "notification" else f"hold:{status}"): count
                for kind, status, count in self.conn.execute(
                    "SELECT kind, status, count(*) FROM documents GROUP BY 1, 2"
                )
            }
            result["dead_letters"] = self.conn.execute(
                "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL"
            ).fetchone()[0]
            return result
