"""The gateway's SQLite state: inbox, dead letters, ERP documents and the audit ledger.

- ``inbox``: every record accepted, keyed by its message id; a second copy of an id is a duplicate and
  is dropped.
- ``dead_letters``: payloads that break the contract and ERP refusals, with the reason; nothing is lost.
- ``documents``: one row per ERP document plantwatch asked for, keyed by its correlation id; at most one
  open (pending or created) per site, asset and failure mode.
- ``ledger``: every decision with its evidence, the model that made the prediction and the ERP number.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from plantwatch.contract import Record, parse_record
from plantwatch.db import open_database, transaction

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


class GatewayStore:
    """Plain functions over ``gateway.sqlite``, grouped by the connection they share."""

    def __init__(self, path: str | Path) -> None:
        self.conn: sqlite3.Connection = open_database(path, MIGRATIONS, synchronous="FULL")

    def close(self) -> None:
        """Close the database."""
        self.conn.close()

    # --- inbox and dead letters ----------------------------------------------------------------------

    def dead_letter(
        self, *, source: str, topic: str | None, payload: bytes | None, reason: str, now_s: float
    ) -> None:
        """Keep a payload that cannot be used, with the reason."""
        with transaction(self.conn) as conn:
            conn.execute(
                "INSERT INTO dead_letters (received_at, source, topic, payload, reason) VALUES (?, ?, ?, ?, ?)",
                (now_s, source, topic, payload, reason),
            )

    def dead_letter_count(self) -> int:
        """How many dead letters are kept."""
        return self.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]

    def accept(
        self, record: Record, *, now_s: float, open_document_as: str | None, erp: str
    ) -> tuple[bool, Document | None]:
        """Take ``record`` into the inbox and record the decision, in one transaction.

        Returns ``(False, None)`` for a duplicate (nothing else happens). ``open_document_as`` is the
        severity with which to open a document for the record's asset and failure mode if none is open;
        ``None`` records the alert without opening one. Returns the new pending document, if one was opened.
        """
        with transaction(self.conn) as conn:
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
            if not inserted:
                return False, None
            opened: Document | None = None
            existing = self._open_document(conn, record.site, record.asset, record.failure_mode)
            if open_document_as is None:
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
                        open_document_as,
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
                correlation_id=opened.correlation_id
                if opened
                else existing.correlation_id
                if existing
                else None,
                erp_number=existing.number if existing and not opened else None,
            )
            return True, opened

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
        rows = self.conn.execute(
            "SELECT correlation_id FROM documents WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY opened_at",
            (now_s,),
        ).fetchall()
        return [self._document(self.conn, row[0]) for row in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending document is due, or ``None``."""
        return self.conn.execute(
            "SELECT min(next_attempt_at) FROM documents WHERE status = 'pending'"
        ).fetchone()[0]

    def opening_record(self, document: Document) -> Record:
        """The record that opened ``document`` (from the inbox)."""
        return self._record(self.conn, document.message_id)

    def document_created(
        self, document: Document, *, number: str, found_existing: bool, now_s: float
    ) -> None:
        """The ERP has the document: store its number and write the ledger."""
        with transaction(self.conn) as conn:
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
        with transaction(self.conn) as conn:
            conn.execute(
                "UPDATE documents SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, updated_at = ?"
                " WHERE correlation_id = ?",
                (error, next_attempt_at, now_s, document.correlation_id),
            )

    def document_failed(self, document: Document, *, error: str, now_s: float) -> None:
        """The ERP refused the document: mark it failed, keep a dead letter and write the ledger."""
        with transaction(self.conn) as conn:
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
        return [dict(row) for row in self.conn.execute("SELECT * FROM ledger ORDER BY id")]

    def documents(self) -> list[Document]:
        """All documents, oldest first."""
        rows = self.conn.execute("SELECT correlation_id FROM documents ORDER BY opened_at").fetchall()
        return [self._document(self.conn, row[0]) for row in rows]
