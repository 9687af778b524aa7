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
- ``sequence_gaps``: every gap confirmed by a drained agent status (``kind = 'gap'``: seqs ``first`` …
  ``last``, ``missing`` of them) and every reset (``kind = 'reset'``: ``first`` is the seq the agent
  restarted at, ``last`` the highest seen before, ``missing`` the seqs still open then, lost with it).

Messages are taken in batches (:meth:`GatewayStore.take`): one transaction for everything the broker has
delivered so far, so a backlog of thousands of health records a second costs one commit per batch. The
connection is shared by the receiver and the ERP worker threads; a lock keeps their transactions apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from plantwatch.clock import parse_rfc3339
from plantwatch.contract import Record, parse_record
from plantwatch.db import open_database, transaction
from plantwatch.gateway.sequence import AgentSequence, Arrival, Confirmation, Observation

HEALTH_RETENTION_S = 86400.0
"""Default time a health record's id is kept to recognise a copy: a copy comes within minutes (a resend
after a reconnect), a day covers a gateway that was down over night."""

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
]


def correlation_id(message_id: str) -> str:
    """The ERP correlation id of a document opened by message ``message_id``: 20 characters ``PW[A-Z2-7]{18}``.

    SAP's ``MaintNotifExtReferenceNumber`` holds 20 upper-case characters, too few for a UUID, so the id
    is a hash of the opening message's id: the same message always gives the same correlation id.

    >>> correlation_id("018f3e2a-0000-7000-8000-000000000000")
    'PWY7HIPTBKBEGFZXINHL'
    """
    digest = hashlib.sha256(message_id.encode()).digest()
    return "PW" + base64.b32encode(digest).decode()[:18]


@dataclass(frozen=True)
class Document:
    """A row of ``documents``."""

    correlation_id: str
    site: str
    asset: str
    failure_mode: str
    status: str
    severity: str
    message_id: str
    erp: str
    number: str | None
    attempts: int
    next_attempt_at: float
    last_error: str | None


@dataclass(frozen=True)
class RecordIn:
    """A valid health record or alert to take; ``open_document_as`` as in :meth:`GatewayStore.accept`."""

    record: Record
    open_document_as: str | None = None


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

    @property
    def drained(self) -> bool:
        """True when the agent had nothing left to send up to ``last_seq``."""
        return self.buffered_records == 0 and self.last_seq is not None


@dataclass(frozen=True)
class DeadLetter:
    """A payload that cannot be used, with the reason, to keep in the batch's transaction."""

    source: str
    topic: str | None
    payload: bytes | None
    reason: str


Incoming = RecordIn | AgentStatus | DeadLetter


@dataclass(frozen=True)
class RecordTaken:
    """What became of a record: a ``duplicate`` (nothing else happened), or accepted with what its seq
    meant (``observation``) and the document it opened, if any."""

    record: Record
    duplicate: bool
    observation: Observation | None = None
    document: Document | None = None


@dataclass(frozen=True)
class StatusTaken:
    """What an agent status confirmed: ``None`` when it was not drained or the agent is not tracked yet."""

    status: AgentStatus
    confirmation: Confirmation | None = None


Taken = RecordTaken | StatusTaken | None


class GatewayStore:
    """Plain functions over ``gateway.sqlite``, grouped by the connection they share.

    ``health_retention_s`` is how long a health record's id is kept to recognise a copy of it.
    """

    def __init__(self, path: str | Path, *, health_retention_s: float = HEALTH_RETENTION_S) -> None:
        self.conn: sqlite3.Connection = open_database(path, MIGRATIONS, synchronous="FULL")
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

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self.conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self.conn) as conn:
            yield conn

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

    def accept(
        self, record: Record, *, now_s: float, open_document_as: str | None, erp: str
    ) -> tuple[bool, Document | None]:
        """Take one record (a batch of one, see :meth:`take`).

        Returns ``(False, None)`` for a duplicate (nothing else happens). ``open_document_as`` is the
        severity with which to open a document for the alert's asset and failure mode if none is open;
        ``None`` records the alert without opening one. Returns the new pending document, if one was opened.
        """
        (taken,) = self.take([RecordIn(record, open_document_as)], now_s=now_s, erp=erp)
        assert isinstance(taken, RecordTaken)
        return not taken.duplicate, taken.document

    def take(self, items: Sequence[Incoming], *, now_s: float, erp: str) -> list[Taken]:
        """Store a batch of received messages in one transaction, in order; what became of each.

        - an alert goes into the inbox (a known id is a duplicate), with its decision in the ledger and
          perhaps a pending document for ``erp``;
        - a health record's id goes into ``received`` (a known id is a duplicate);
        - every record that is not a duplicate updates ``asset_latest`` and its agent's sequence account
          (a reset is recorded in ``sequence_gaps``);
        - a drained agent status confirms its agent's missing seqs as gaps (recorded in ``sequence_gaps``);
        - a dead letter is kept (its item's result is ``None``).

        Nothing is changed, in the file or in memory, unless the whole batch commits.
        """
        with self._lock:
            return self._take(items, now_s, erp)

    def _take(self, items: Sequence[Incoming], now_s: float, erp: str) -> list[Taken]:
        touched: dict[tuple[str, str], AgentSequence] = {}
        results: list[Taken] = []
        prune = now_s - self._pruned_at >= PRUNE_INTERVAL_S
        with self._write() as conn:
            for item in items:
                if isinstance(item, RecordIn):
                    results.append(self._take_record(conn, item, touched, now_s, erp))
                elif isinstance(item, AgentStatus):
                    results.append(self._take_status(conn, item, touched, now_s))
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
        if prune:
            self._pruned_at = now_s
        self._sequences.update(touched)
        self._summarise(results, touched)
        return results

    def _take_record(
        self,
        conn: sqlite3.Connection,
        item: RecordIn,
        touched: dict[tuple[str, str], AgentSequence],
        now_s: float,
        erp: str,
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
        conn.execute(
            "INSERT INTO asset_latest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, asset) DO UPDATE SET"
            " agent = excluded.agent, state = excluded.state, score = excluded.score,"
            " failure_mode = excluded.failure_mode, seq = excluded.seq, message_id = excluded.message_id,"
            " measured_at = excluded.measured_at, received_at = excluded.received_at"
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
                parse_rfc3339(record.ts),
                now_s,
            ),
        )
        document = self._decide(conn, item, now_s, erp) if record.is_alert else None
        return RecordTaken(record, duplicate=False, observation=observation, document=document)

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

    def _decide(self, conn: sqlite3.Connection, item: RecordIn, now_s: float, erp: str) -> Document | None:
        # an alert's decision: observe, repeat (a document is open) or create (a pending document)
        record = item.record
        opened: Document | None = None
        existing = self._open_document(conn, record.site, record.asset, record.failure_mode)
        if item.open_document_as is None:
            decision = "observe"
        elif existing is not None:
            decision = "repeat"
        else:
            cid = correlation_id(record.id)
            conn.execute(
                "INSERT INTO documents (correlation_id, site, asset, failure_mode, status, severity, message_id,"
                " erp, opened_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (
                    cid,
                    record.site,
                    record.asset,
                    record.failure_mode,
                    item.open_document_as,
                    record.id,
                    erp,
                    now_s,
                    now_s,
                ),
            )
            opened = self._document(conn, cid)
            decision = "create"
        self._ledger(
            conn,
            now_s,
            decision,
            record,
            correlation_id=opened.correlation_id if opened else existing.correlation_id if existing else None,
            erp_number=existing.number if existing and not opened else None,
        )
        return opened

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

    # --- documents -----------------------------------------------------------------------------------

    @staticmethod
    def _open_document(conn: sqlite3.Connection, site: str, asset: str, failure_mode: str) -> Document | None:
        row = conn.execute(
            "SELECT correlation_id FROM documents WHERE site = ? AND asset = ? AND failure_mode = ?"
            " AND status IN ('pending', 'open')",
            (site, asset, failure_mode),
        ).fetchone()
        return GatewayStore._document(conn, row[0]) if row else None

    @staticmethod
    def _document(conn: sqlite3.Connection, cid: str) -> Document:
        row = conn.execute(
            "SELECT correlation_id, site, asset, failure_mode, status, severity, message_id, erp, number, attempts,"
            " next_attempt_at, last_error FROM documents WHERE correlation_id = ?",
            (cid,),
        ).fetchone()
        return Document(*row)

    def due_documents(self, now_s: float) -> list[Document]:
        """Pending documents whose next attempt is due."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT correlation_id FROM documents WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY opened_at",
                (now_s,),
            ).fetchall()
            return [self._document(self.conn, row[0]) for row in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending document is due, or ``None``."""
        with self._lock:
            return self.conn.execute(
                "SELECT min(next_attempt_at) FROM documents WHERE status = 'pending'"
            ).fetchone()[0]

    def opening_record(self, document: Document) -> Record:
        """The record that opened ``document`` (from the inbox)."""
        with self._lock:
            return self._record(self.conn, document.message_id)

    def document_created(
        self, document: Document, *, number: str, found_existing: bool, now_s: float
    ) -> None:
        """The ERP has the document: store its number and write the ledger."""
        with self._write() as conn:
            conn.execute(
                "UPDATE documents SET status = 'open', number = ?, attempts = attempts + 1, last_error = NULL,"
                " updated_at = ? WHERE correlation_id = ?",
                (number, now_s, document.correlation_id),
            )
            record = self._record(conn, document.message_id)
            self._ledger(
                conn,
                now_s,
                "erp_created" if not found_existing else "erp_found_existing",
                record,
                correlation_id=document.correlation_id,
                erp_number=number,
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
                "INSERT INTO dead_letters (received_at, source, topic, payload, reason) VALUES (?, 'erp', ?, ?, ?)",
                (now_s, document.correlation_id, payload.encode(), error),
            )
            record = self._record(conn, document.message_id)
            self._ledger(
                conn, now_s, "erp_refused", record, correlation_id=document.correlation_id, detail=error
            )

    @staticmethod
    def _record(conn: sqlite3.Connection, message_id: str) -> Record:
        payload = conn.execute("SELECT payload FROM inbox WHERE message_id = ?", (message_id,)).fetchone()[0]
        return parse_record(payload.encode())

    # --- ledger --------------------------------------------------------------------------------------

    @staticmethod
    def _ledger(
        conn: sqlite3.Connection,
        now_s: float,
        decision: str,
        record: Record,
        *,
        correlation_id: str | None = None,
        erp_number: str | None = None,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO ledger (at, decision, site, asset, failure_mode, state, message_id, correlation_id, erp_number,"
            " score, confidence, model, evidence, features, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now_s,
                decision,
                record.site,
                record.asset,
                record.failure_mode,
                record.state,
                record.id,
                correlation_id,
                erp_number,
                record.score,
                record.confidence,
                json.dumps(asdict(record.model)),
                json.dumps(record.evidence),
                json.dumps(record.features),
                detail,
            ),
        )

    def ledger(self) -> list[dict[str, object]]:
        """The whole ledger, oldest first."""
        with self._lock:
            return [dict(row) for row in self.conn.execute("SELECT * FROM ledger ORDER BY id")]

    def documents(self) -> list[Document]:
        """All documents, oldest first."""
        with self._lock:
            rows = self.conn.execute("SELECT correlation_id FROM documents ORDER BY opened_at").fetchall()
            return [self._document(self.conn, row[0]) for row in rows]
