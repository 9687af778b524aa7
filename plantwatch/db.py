"""The one SQLite opener: pragmas, integrity check and numbered migrations.

Both services keep their state in one SQLite file each (``agent.sqlite``, ``gateway.sqlite``), in WAL
mode. :func:`open_database` checks the file's integrity, applies the part's migrations that have not run
yet (each recorded in ``schema_migrations`` with its number and time) and returns the connection.
:func:`open_or_move_aside` does the same, but a file that is not a database or fails its integrity check is
renamed (with its ``-wal`` and ``-shm`` files) to ``<name>.corrupt-<UTC time>`` and a fresh one started:
the service keeps running and the old file stays for recovery.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plantwatch.log import event

log = logging.getLogger("plantwatch.db")

BUSY_TIMEOUT_MS = 5000
"""How long a writer waits for another connection's lock before SQLite reports it busy."""


class DatabaseError(Exception):
    """A state file that cannot be opened or fails its integrity check."""


def open_database(
    path: str | Path,
    migrations: Sequence[str],
    *,
    synchronous: str = "FULL",
    check_integrity: bool = True,
) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite file at ``path`` and bring its schema up to date.

    ``migrations[i]`` is the SQL script of migration number ``i + 1``; scripts already recorded in
    ``schema_migrations`` are skipped, so a list only ever grows. ``synchronous`` is SQLite's
    ``PRAGMA synchronous`` (``FULL`` makes a committed transaction survive a power cut in WAL mode;
    ``NORMAL`` survives a process crash but may lose the last transactions on power loss).
    The connection is in autocommit mode: callers group writes with ``with transaction(conn):``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if check_integrity:
            # "file is not a database" (garbage in the header) surfaces here as sqlite3.DatabaseError
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise DatabaseError(f"{path}: integrity check failed: {verdict}")
    except sqlite3.DatabaseError as error:
        conn.close()
        raise DatabaseError(f"{path}: not a usable SQLite database: {error}") from error
    except DatabaseError:
        conn.close()
        raise
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise DatabaseError(f"{path}: could not switch to WAL mode (got {mode})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT number FROM schema_migrations")}
    for number, script in enumerate(migrations, start=1):
        if number in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, time.time()))
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        event(log, logging.INFO, "migration_applied", file=path.name, number=number)
    return conn


@dataclass(frozen=True)
class MovedAside:
    """A corrupt state file that :func:`open_or_move_aside` renamed: where it went, and why."""

    path: Path
    reason: str


def open_or_move_aside(
    path: str | Path, migrations: Sequence[str], *, synchronous: str = "FULL"
) -> tuple[sqlite3.Connection, MovedAside | None]:
    """:func:`open_database`, but a corrupt file is moved aside (loudly) and a fresh one started.

    A service that stops on a corrupt state file stops monitoring the plant; one that deletes it destroys
    the evidence. So the file and its ``-wal``/``-shm`` companions are renamed to
    ``<name>.corrupt-<YYYYMMDDTHHMMSSZ>`` next to it, an ERROR line says so, and the caller learns where
    the old file went (to report it in its status and, where it can, salvage from it).
    """
    path = Path(path)
    try:
        return open_database(path, migrations, synchronous=synchronous), None
    except DatabaseError as error:
        reason = str(error)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            companion.rename(f"{target}{suffix}")
    event(log, logging.ERROR, "database_corrupt", file=path, moved_to=target, reason=reason)
    return open_database(path, migrations, synchronous=synchronous), MovedAside(target, reason)


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


class transaction:
    """``with transaction(conn):`` runs the block in one ``BEGIN IMMEDIATE`` … ``COMMIT``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
