"""The outbox: every result the agent produces, in SQLite, before anything is sent.

The outbox is the source of truth (DESIGN.md, data path step 6). :meth:`Outbox.append` gives each record
its sequence number and stores it in one transaction; :meth:`Outbox.next_batch` hands the publisher
alerts first (the priority lane), then health records, each in the order they were made;
:meth:`Outbox.remove` deletes a record only after the broker acknowledged it.
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from plantwatch.contract import Record
from plantwatch.db import open_database, transaction

T = TypeVar("T")

ALERT_PRIORITY = 0
HEALTH_PRIORITY = 1

MIGRATIONS = [
    """
    CREATE TABLE outbox (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        asset TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('health', 'alert')),
        priority INTEGER NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX outbox_lane ON outbox (priority, position);
    CREATE TABLE sequence (agent TEXT PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE TABLE baseline (
        asset TEXT PRIMARY KEY,
        windows INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        sums TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE asset_state (asset TEXT PRIMARY KEY, memory TEXT NOT NULL, updated_at REAL NOT NULL)
    """,
    # 2: the baseline becomes the asset's learned normal (medians, spreads, threshold, drift) as one JSON
    # document; running sums of the first version cannot be converted, so those assets commission again
    """
    DROP TABLE baseline;
    CREATE TABLE baseline (asset TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE recommission (asset TEXT PRIMARY KEY, requested_at REAL NOT NULL)
    """,
]


def _serialised(method: Callable[..., T]) -> Callable[..., T]:
    """Run ``method`` holding the outbox's lock (one SQLite connection shared by executor threads)."""

    @functools.wraps(method)
    def locked(self: Outbox, *args: Any, **kwargs: Any) -> T:
        with self.lock:
            return method(self, *args, **kwargs)

    return locked


@dataclass(frozen=True)
class AssetUpdate:
    """An asset's decision memory and baseline (JSON texts) to store with its records."""

    asset: str
    memory: str
    baseline: str


@dataclass(frozen=True)
class Pending:
    """A stored record waiting for the broker."""

    position: int
    message_id: str
    kind: str
    topic: str
    payload: bytes


class Outbox:
    """The agent's SQLite state: outbox, sequence counter, baselines and decision memory."""

    def __init__(self, path: str | Path, *, agent: str) -> None:
        # FULL: a record reported as stored survives a power cut, not only a crash.
        self.conn: sqlite3.Connection = open_database(path, MIGRATIONS, synchronous="FULL")
        self.agent = agent
        # the analysis and the publisher call from different executor threads; one connection, one writer
        self.lock = threading.RLock()

    @_serialised
    def append(
        self,
        drafts: Sequence[tuple[Record, str]],
        *,
        now_s: float,
        assets: Sequence[AssetUpdate] = (),
    ) -> list[Record]:
        """Store records (``(record, topic)`` with any ``seq``) in one transaction, numbering them.

        The same transaction stores the assets' decision memory and baselines, so a restart resumes from
        exactly the state that produced the last stored record. Returns the records with their sequence
        numbers.
        """
        stored: list[Record] = []
        with transaction(self.conn) as conn:
            row = conn.execute("SELECT seq FROM sequence WHERE agent = ?", (self.agent,)).fetchone()
            seq = row[0] if row else 0
            rows = []
            for record, topic in drafts:
                seq += 1
                record = dataclasses.replace(record, seq=seq)
                stored.append(record)
                kind = "alert" if record.is_alert else "health"
                priority = ALERT_PRIORITY if record.is_alert else HEALTH_PRIORITY
                rows.append(
                    (record.id, record.asset, kind, priority, topic, record.to_json().encode(), now_s)
                )
            conn.executemany(
                "INSERT INTO outbox (message_id, asset, kind, priority, topic, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute(
                "INSERT INTO sequence (agent, seq) VALUES (?, ?) ON CONFLICT (agent) DO UPDATE SET seq = excluded.seq",
                (self.agent, seq),
            )
            for update in assets:
                self._save_asset(conn, update, now_s)
        return stored

    @_serialised
    def next_batch(self, limit: int) -> list[Pending]:
        """Up to ``limit`` records to send next: alerts first, then health records, oldest first."""
        rows = self.conn.execute(
            "SELECT position, message_id, kind, topic, payload FROM outbox ORDER BY priority, position LIMIT ?",
            (limit,),
        ).fetchall()
        return [Pending(row[0], row[1], row[2], row[3], bytes(row[4])) for row in rows]

    @_serialised
    def remove(self, positions: Sequence[int]) -> None:
        """Delete acknowledged records."""
        if positions:
            with transaction(self.conn) as conn:
                conn.executemany("DELETE FROM outbox WHERE position = ?", [(p,) for p in positions])

    @_serialised
    def level(self) -> tuple[int, float | None]:
        """``(records waiting, creation time of the oldest or None)``."""
        count, oldest = self.conn.execute("SELECT count(*), min(created_at) FROM outbox").fetchone()
        return count, oldest

    @_serialised
    def last_seq(self) -> int:
        """The last sequence number given out (0 if none)."""
        row = self.conn.execute("SELECT seq FROM sequence WHERE agent = ?", (self.agent,)).fetchone()
        return row[0] if row else 0

    # --- per-asset memory ---------------------------------------------------------------------------

    @_serialised
    def load_asset(self, asset: str) -> tuple[str | None, str | None]:
        """``(memory JSON or None, baseline JSON or None)`` of ``asset``."""
        memory = self.conn.execute("SELECT memory FROM asset_state WHERE asset = ?", (asset,)).fetchone()
        baseline = self.conn.execute("SELECT state FROM baseline WHERE asset = ?", (asset,)).fetchone()
        return (memory[0] if memory else None, baseline[0] if baseline else None)

    @staticmethod
    def _save_asset(conn: sqlite3.Connection, update: AssetUpdate, now_s: float) -> None:
        conn.execute(
            "INSERT INTO asset_state VALUES (?, ?, ?) ON CONFLICT (asset) DO UPDATE SET memory = excluded.memory,"
            " updated_at = excluded.updated_at",
            (update.asset, update.memory, now_s),
        )
        conn.execute(
            "INSERT INTO baseline VALUES (?, ?, ?) ON CONFLICT (asset) DO UPDATE SET"
            " state = excluded.state, updated_at = excluded.updated_at",
            (update.asset, update.baseline, now_s),
        )

    @_serialised
    def request_recommission(self, asset: str, now_s: float) -> None:
        """Ask the running (or next) agent to learn ``asset``'s normal again."""
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO recommission VALUES (?, ?) ON CONFLICT (asset) DO UPDATE SET"
                " requested_at = excluded.requested_at",
                (asset, now_s),
            )

    @_serialised
    def take_recommission_requests(self) -> list[str]:
        """The assets whose recommissioning was requested, removing the requests."""
        with transaction(self.conn):
            rows = self.conn.execute("SELECT asset FROM recommission ORDER BY requested_at").fetchall()
            self.conn.execute("DELETE FROM recommission")
        return [row[0] for row in rows]

    @_serialised
    def close(self) -> None:
        """Close the database."""
        self.conn.close()
