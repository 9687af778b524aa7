"""The outbox: every result the agent produces, in SQLite, before anything is sent.

The outbox is the source of truth (DESIGN.md, data path step 6). :meth:`Outbox.append` gives each record
its sequence number and stores it in one transaction; :meth:`Outbox.next_batch` hands the publisher
alerts first (the priority lane), then health records, each lane in the order the records were made;
:meth:`Outbox.remove` deletes a record only after the broker acknowledged it.

Durability, matched to the promise:

- A transaction that stores an **alert** commits with ``synchronous=FULL``: in WAL mode the commit
  fsyncs the log, so an alert reported as stored survives ``kill -9`` *and* a power cut.
- A transaction of **health records only** commits with ``synchronous=NORMAL``: it survives the process
  being killed (the data is in the operating system's cache) but the last ones may vanish in a power cut.
  The outbox never lets such a record leave unsynced: before it hands the publisher records stored since
  the last fsync, it fsyncs the log (:meth:`next_batch`). So a record the gateway has seen is never lost
  and its sequence number never reused; a power cut can only take records nobody has seen yet.
- Deletions after PUBACK commit with ``NORMAL``: one lost in a power cut sends a record again, and the
  gateway drops the copy by its id.

Disk budget: with a :class:`BufferBudget`, the database's pages in use are kept under the budget (minus
room for the write-ahead log, capped by ``journal_size_limit``). When they pass ``thin_at`` of it, routine
health records are thinned until they are under ``thin_to``: each pass keeps one in ``keep_one_in`` of the
oldest half of each asset's health records (so history grows sparser with age), and when the oldest half
is already that sparse, the oldest health records go outright. Alerts are never dropped; a buffer that
alerts alone fill grows past its budget and says so.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from plantwatch.contract import Record
from plantwatch.db import MovedAside, open_database, open_or_move_aside, transaction
from plantwatch.log import event

log = logging.getLogger("plantwatch.agent.outbox")

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
    # 3: counters that outlive restarts (records thinned under the disk budget)
    """
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)
    """,
]

WAL_LIMIT_BYTES = 4_000_000
"""Largest write-ahead log kept between checkpoints (and the room the budget leaves for it); a small
budget gets an eighth of itself instead."""


def _salvage_seq(moved: MovedAside, agent: str) -> int | None:
    """The last sequence number in a corrupt file moved aside, if that part can still be read."""
    try:
        conn = sqlite3.connect(f"file:{moved.path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT seq FROM sequence WHERE agent = ?", (agent,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as error:
        event(log, logging.WARNING, "sequence_not_salvaged", file=moved.path, reason=error)
        return None
    return int(row[0]) if row else None


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


@dataclass(frozen=True)
class BufferBudget:
    """How much disk the outbox may use, and how it thins health records to stay inside it."""

    budget_bytes: int
    thin_at: float = 0.8
    """Fraction of the budget at which thinning starts (and the status raises its buffer alarm)."""
    thin_to: float = 0.6
    """Fraction of the budget thinning brings the buffer down to."""
    keep_one_in: int = 4
    """Each thinning pass keeps one in this many of the oldest health records of each asset."""

    def __post_init__(self) -> None:
        if not 0 < self.thin_to < self.thin_at <= 1:
            raise ValueError("need 0 < thin_to < thin_at <= 1")
        if self.keep_one_in < 2:
            raise ValueError("keep_one_in must be at least 2")

    @property
    def wal_bytes(self) -> int:
        """Room left for the write-ahead log."""
        return min(WAL_LIMIT_BYTES, self.budget_bytes // 8)

    @property
    def data_bytes(self) -> int:
        """The budget of the database's pages in use."""
        return self.budget_bytes - self.wal_bytes


@dataclass(frozen=True)
class BufferLevel:
    """What the outbox holds: reported in the agent's status and logs."""

    records: int
    alerts: int
    oldest_created_at: float | None
    last_seq: int
    used_bytes: int
    budget_bytes: int | None
    records_thinned: int
    alarm: bool = False
    """Near the limit: thinning started and the backlog has not yet drained to half the thinning target."""

    @property
    def percent(self) -> float | None:
        """Pages in use as a percentage of the data budget (``None`` without a budget)."""
        if self.budget_bytes is None:
            return None
        return 100.0 * self.used_bytes / self.budget_bytes


class Outbox:
    """The agent's SQLite state: outbox, sequence counter, baselines and decision memory.

    ``budget`` bounds the disk it uses (:class:`BufferBudget`; ``None``: unbounded). A file that fails its
    integrity check is moved aside and a fresh one started (:attr:`moved_aside` says where it went); the
    sequence counter is salvaged from it when it can still be read, so numbers are never given out twice.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        agent: str,
        budget: BufferBudget | None = None,
        move_aside_corrupt: bool = True,
    ) -> None:
        self.path = Path(path)
        if move_aside_corrupt:
            self.conn, self.moved_aside = open_or_move_aside(self.path, MIGRATIONS, synchronous="FULL")
        else:  # a second process (a command) must not move the running agent's file
            self.conn, self.moved_aside = open_database(self.path, MIGRATIONS, synchronous="FULL"), None
        self._synchronous = "FULL"
        self.agent = agent
        self.budget = budget
        # the analysis and the publisher call from different executor threads; one connection, one writer
        self.lock = threading.RLock()
        self._unsynced = False
        self._near_limit = False
        self._page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        if budget is not None:
            self.conn.execute(f"PRAGMA journal_size_limit = {budget.wal_bytes}")
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {max(16, budget.wal_bytes // self._page_size)}")
            self._near_limit = self._used_bytes() >= budget.thin_to * budget.data_bytes
        self.salvaged_seq: int | None = None
        if self.moved_aside is not None:
            self.salvaged_seq = _salvage_seq(self.moved_aside, agent)
            if self.salvaged_seq:
                with transaction(self.conn) as conn:
                    conn.execute("INSERT INTO sequence VALUES (?, ?)", (agent, self.salvaged_seq))
            event(
                log,
                logging.ERROR,
                "outbox_started_fresh",
                moved_to=self.moved_aside.path,
                sequence_continues_after=self.salvaged_seq or 0,
            )

    def _set_synchronous(self, mode: str) -> None:
        if mode != self._synchronous:
            self.conn.execute(f"PRAGMA synchronous = {mode}")
            self._synchronous = mode

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
        numbers. With an alert among them the commit is fsynced before this returns (see the module's
        notes on durability). Thins health records afterwards if the disk budget requires it.
        """
        stored: list[Record] = []
        alerts = False
        rows = []
        seq = self._last_seq()
        for record, topic in drafts:
            seq += 1
            record = dataclasses.replace(record, seq=seq)
            stored.append(record)
            alert = record.is_alert
            alerts = alerts or alert
            rows.append(
                (
                    record.id,
                    record.asset,
                    "alert" if alert else "health",
                    ALERT_PRIORITY if alert else HEALTH_PRIORITY,
                    topic,
                    record.to_json().encode(),
                    now_s,
                )
            )
        self._set_synchronous("FULL" if alerts else "NORMAL")
        with transaction(self.conn) as conn:
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
        self._unsynced = self._unsynced or not alerts
        if self.budget is not None:
            self._keep_within_budget()
        return stored

    @_serialised
    def next_batch(
        self,
        limit: int,
        *,
        after_alert: int = 0,
        after_health: int = 0,
        health_limit: int | None = None,
    ) -> list[Pending]:
        """Up to ``limit`` records to send next: alerts first, then health records, each oldest first.

        ``after_alert`` / ``after_health``: positions already handed out in each lane (records still in
        flight are not handed out twice); ``health_limit`` caps the health records (the drain rate).
        Records stored since the last fsync are made durable first, so nothing unsynced ever leaves.
        """
        if self._unsynced:
            self._sync_log()
        query = (
            "SELECT position, message_id, kind, topic, payload FROM outbox"
            " WHERE priority = ? AND position > ? ORDER BY position LIMIT ?"
        )
        rows = self.conn.execute(query, (ALERT_PRIORITY, after_alert, limit)).fetchall()
        room = limit - len(rows)
        if health_limit is not None:
            room = min(room, health_limit)
        if room > 0:
            rows += self.conn.execute(query, (HEALTH_PRIORITY, after_health, room)).fetchall()
        return [Pending(row[0], row[1], row[2], row[3], bytes(row[4])) for row in rows]

    def _sync_log(self) -> None:
        # NORMAL commits are in the write-ahead log (or, once checkpointed, fsynced into the file):
        # flushing the log makes every one of them durable.
        for name in (f"{self.path}-wal", str(self.path)):
            try:
                descriptor = os.open(name, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            break
        self._unsynced = False

    @_serialised
    def remove(self, positions: Sequence[int]) -> None:
        """Delete acknowledged records."""
        if positions:
            self._set_synchronous("NORMAL")
            with transaction(self.conn) as conn:
                conn.executemany("DELETE FROM outbox WHERE position = ?", [(p,) for p in positions])
            if self._near_limit:
                self._keep_within_budget()  # the drain may clear the alarm

    @_serialised
    def level(self) -> BufferLevel:
        """How many records wait (and how many are alerts), the oldest one's creation time, the last
        sequence number, the pages in use against the budget and the records thinned so far."""
        count = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        # the oldest record is the first of a lane (positions grow with time): two index look-ups, not a
        # scan of the whole backlog
        firsts = [
            row[0]
            for lane in (ALERT_PRIORITY, HEALTH_PRIORITY)
            for row in self.conn.execute(
                "SELECT created_at FROM outbox WHERE priority = ? ORDER BY position LIMIT 1", (lane,)
            )
        ]
        oldest = min(firsts) if firsts else None
        alerts = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE priority = ?", (ALERT_PRIORITY,)
        ).fetchone()[0]
        return BufferLevel(
            records=count,
            alerts=alerts,
            oldest_created_at=oldest,
            last_seq=self._last_seq(),
            used_bytes=self._used_bytes(),
            budget_bytes=self.budget.data_bytes if self.budget else None,
            records_thinned=self._counter("records_thinned"),
            alarm=self._near_limit,
        )

    @_serialised
    def last_seq(self) -> int:
        """The last sequence number given out (0 if none)."""
        return self._last_seq()

    def _last_seq(self) -> int:
        row = self.conn.execute("SELECT seq FROM sequence WHERE agent = ?", (self.agent,)).fetchone()
        return row[0] if row else 0

    def _counter(self, name: str) -> int:
        row = self.conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    # --- the disk budget ----------------------------------------------------------------------------

    def _used_bytes(self) -> int:
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self._page_size

    def _keep_within_budget(self) -> None:
        assert self.budget is not None
        budget = self.budget
        used = self._used_bytes()
        # hysteresis: the alarm rises where thinning starts and clears once the backlog has drained to
        # half of where thinning leaves it (thinning itself must not clear it)
        if used >= budget.thin_at * budget.data_bytes:
            near = True
        elif used < budget.thin_to * budget.data_bytes / 2:
            near = False
        else:
            near = self._near_limit
        if near != self._near_limit:
            self._near_limit = near
            event(
                log,
                logging.WARNING if near else logging.INFO,
                "buffer_near_limit" if near else "buffer_below_limit",
                used_mb=round(used / 1e6, 3),
                budget_mb=round(budget.data_bytes / 1e6, 3),
            )
        if used >= budget.thin_at * budget.data_bytes:
            self._thin(int(budget.thin_to * budget.data_bytes))

    def _thin(self, target_bytes: int) -> None:
        """Delete health records until the pages in use are under ``target_bytes`` (never an alert)."""
        assert self.budget is not None
        keep = self.budget.keep_one_in
        removed = passes = 0
        self._set_synchronous("NORMAL")
        while (used := self._used_bytes()) > target_bytes:
            health = self.conn.execute(
                "SELECT count(*) FROM outbox WHERE priority = ?", (HEALTH_PRIORITY,)
            ).fetchone()[0]
            if health == 0:
                event(
                    log,
                    logging.ERROR,
                    "buffer_full_of_alerts",
                    used_mb=round(used / 1e6, 3),
                    budget_mb=round(self.budget.data_bytes / 1e6, 3),
                    note="alerts are never dropped: the buffer grows past its budget",
                )
                break
            cutoff = self.conn.execute(
                "SELECT position FROM outbox WHERE priority = ? ORDER BY position LIMIT 1 OFFSET ?",
                (HEALTH_PRIORITY, health // 2),
            ).fetchone()[0]
            with transaction(self.conn) as conn:
                # one in ``keep`` of each asset's oldest health records stays
                deleted = conn.execute(
                    "DELETE FROM outbox WHERE position IN (SELECT position FROM (SELECT position,"
                    " row_number() OVER (PARTITION BY asset ORDER BY position) AS n FROM outbox"
                    " WHERE priority = ? AND position <= ?) WHERE n % ? != 0)",
                    (HEALTH_PRIORITY, cutoff, keep),
                ).rowcount
                if deleted == 0:
                    # already one in ``keep``: the oldest go, as many as the excess needs
                    records = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
                    excess = math.ceil((used - target_bytes) / max(1, used / max(1, records)))
                    deleted = conn.execute(
                        "DELETE FROM outbox WHERE position IN (SELECT position FROM outbox WHERE priority = ?"
                        " ORDER BY position LIMIT ?)",
                        (HEALTH_PRIORITY, max(1, excess)),
                    ).rowcount
                conn.execute(
                    "INSERT INTO counters VALUES ('records_thinned', ?) ON CONFLICT (name) DO UPDATE SET"
                    " value = value + excluded.value",
                    (deleted,),
                )
            removed += deleted
            passes += 1
        if removed:
            event(
                log,
                logging.WARNING,
                "buffer_thinned",
                removed=removed,
                passes=passes,
                used_mb=round(self._used_bytes() / 1e6, 3),
                budget_mb=round(self.budget.data_bytes / 1e6, 3),
                thinned_total=self._counter("records_thinned"),
            )

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
