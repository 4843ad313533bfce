"""State of the embedded runtime: one SQLite file in WAL mode.

Everything stateful sits behind small interfaces so the Kafka runtime can swap the storage:
keyed state is a ``MutableMapping[str, JSON]`` (``Database.mapping(space)``; a faust Table
in the Kafka runtime), and the audit trail is ``Database.log_decision`` / ``decisions``.

Durability: ``synchronous=FULL`` so a committed alert record survives a power cut, not only
a process crash; every mapping write is its own transaction. ``busy_timeout`` absorbs a
second process (``status``, ``alerts``) reading while the monitor writes.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newswatch.core.errors import StateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    space TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       REAL NOT NULL,
    rule_id  TEXT NOT NULL,
    article  TEXT NOT NULL,
    title    TEXT NOT NULL,
    receiver TEXT NOT NULL,
    verdict  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    result   TEXT NOT NULL,
    ref      TEXT,
    story    TEXT
);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at);
CREATE TABLE IF NOT EXISTS fetches (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    feed     TEXT NOT NULL,
    at       REAL NOT NULL,
    status   INTEGER,
    latency  REAL,
    new      INTEGER NOT NULL,
    error    TEXT
);
CREATE INDEX IF NOT EXISTS fetches_feed ON fetches (feed, at);
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """One line of the audit trail: what delivery decided for a match and a receiver.
    ``at`` is a Unix time in seconds."""

    at: float
    rule_id: str
    article: str
    title: str
    receiver: str
    verdict: str
    reason: str
    result: str
    ref: str | None = None
    story: str | None = None


@dataclass(frozen=True, slots=True)
class FetchEvent:
    """One fetch of one feed; ``latency`` in seconds, ``status`` the HTTP status if any."""

    feed: str
    at: float
    status: int | None
    latency: float | None
    new: int
    error: str | None


class SqliteMapping(MutableMapping[str, Any]):
    """A JSON-valued mapping stored in one ``space`` of the kv table.

    Values are copied in and out (JSON), so callers must write a value back after changing
    it — the same discipline a faust Table needs.
    """

    def __init__(self, conn: sqlite3.Connection, space: str) -> None:
        self._conn = conn
        self._space = space

    def __getitem__(self, key: str) -> Any:
        row = self._conn.execute(
            "SELECT value FROM kv WHERE space = ? AND key = ?", (self._space, key)
        ).fetchone()
        if row is None:
            raise KeyError(key)
        return json.loads(row[0])

    def __setitem__(self, key: str, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        with _writing(self._conn):
            self._conn.execute(
                "INSERT INTO kv (space, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                (self._space, key, data),
            )

    def __delitem__(self, key: str) -> None:
        with _writing(self._conn):
            cur = self._conn.execute(
                "DELETE FROM kv WHERE space = ? AND key = ?", (self._space, key)
            )
        if cur.rowcount == 0:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        rows = self._conn.execute(
            "SELECT key FROM kv WHERE space = ? ORDER BY key", (self._space,)
        ).fetchall()
        return iter([r[0] for r in rows])

    def __len__(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM kv WHERE space = ?", (self._space,))
        return int(row.fetchone()[0])

    def __contains__(self, key: object) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM kv WHERE space = ? AND key = ?", (self._space, key)
        ).fetchone()
        return row is not None

    def prune_older(self, before: float) -> int:
        """Delete the keys whose value is a number (a time) below ``before``."""
        with _writing(self._conn):
            cur = self._conn.execute(
                "DELETE FROM kv WHERE space = ? AND typeof(json(value)) IS NOT NULL "
                "AND json_type(value) IN ('integer', 'real') AND CAST(value AS REAL) < ?",
                (self._space, before),
            )
        return int(cur.rowcount)

    def set_many(self, items: dict[str, Any]) -> None:
        """Write several keys in one transaction (one fsync instead of many)."""
        rows = [
            (self._space, k, json.dumps(v, ensure_ascii=False, separators=(",", ":")))
            for k, v in items.items()
        ]
        with _writing(self._conn):
            self._conn.executemany(
                "INSERT INTO kv (space, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                rows,
            )


class _writing:
    """Context manager: one write transaction, errors turned into StateError."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as error:
                self._conn.execute("ROLLBACK")
                raise StateError(f"cannot write state: {error}") from error
        else:
            self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StateError(f"cannot write state: {exc}") from exc


class Database:
    """The SQLite state file. Open with ``Database.open(path)``; close with ``close()``."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Database:
        location = str(path)
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"file:{Path(location).resolve()}?mode=ro", uri=True, isolation_level=None
                )
            else:
                Path(location).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(location, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 5000")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.executescript(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
                if "story" not in columns:  # state files written before story ids
                    conn.execute("ALTER TABLE decisions ADD COLUMN story TEXT")
        except sqlite3.Error as error:
            raise StateError(f"{location}: cannot open state database: {error}") from error
        return cls(conn, location)

    def close(self) -> None:
        self._conn.close()

    def mapping(self, space: str) -> SqliteMapping:
        return SqliteMapping(self._conn, space)

    def pragma(self, name: str) -> Any:
        return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    def integrity_ok(self) -> bool:
        return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # ---------------------------------------------------------------- audit trail
    def log_decision(self, d: Decision) -> None:
        with _writing(self._conn):
            self._conn.execute(
                "INSERT INTO decisions (at, rule_id, article, title, receiver, verdict, reason,"
                " result, ref, story) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (d.at, d.rule_id, d.article, d.title, d.receiver, d.verdict, d.reason,
                 d.result, d.ref, d.story),
            )

    def decisions(self, limit: int = 50) -> list[Decision]:
        """The most recent decisions, newest first."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(decisions)")}
        story = "story" if "story" in columns else "NULL"  # a read-only, older file
        rows = self._conn.execute(
            "SELECT at, rule_id, article, title, receiver, verdict, reason, result, ref, "
            f"{story} FROM decisions ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [Decision(*row) for row in rows]

    # ---------------------------------------------------------------- fetch log
    def log_fetch(self, e: FetchEvent, *, keep: int = 100) -> None:
        with _writing(self._conn):
            self._conn.execute(
                "INSERT INTO fetches (feed, at, status, latency, new, error) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (e.feed, e.at, e.status, e.latency, e.new, e.error),
            )
            self._conn.execute(
                "DELETE FROM fetches WHERE feed = ? AND id NOT IN "
                "(SELECT id FROM fetches WHERE feed = ? ORDER BY id DESC LIMIT ?)",
                (e.feed, e.feed, keep),
            )

    def fetches(self, feed: str, limit: int = 20) -> list[FetchEvent]:
        rows = self._conn.execute(
            "SELECT feed, at, status, latency, new, error FROM fetches WHERE feed = ? "
            "ORDER BY id DESC LIMIT ?",
            (feed, limit),
        ).fetchall()
        return [FetchEvent(*row) for row in rows]


class RuntimeLock:
    """An exclusive lock on ``<state>.lock`` held by the one process that writes the
    delivery state (``newswatch run``, or ``dlq replay`` when nothing runs). The kernel
    releases it when the process dies, even by ``kill -9``."""

    def __init__(self, state_path: str | Path) -> None:
        self.path = Path(f"{state_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid written by the holder (for messages), or '?'."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def now() -> float:
    """Wall-clock Unix time in seconds (the one place state code reads the clock)."""
    return time.time()
