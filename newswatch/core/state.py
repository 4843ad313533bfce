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
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newswatch.core.archive import SqliteArchive
from newswatch.core.errors import StateError
from newswatch.core.feedback import SqliteFeedback
from newswatch.core.pagecache import PAGES_TABLE, SqlitePageCache

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


#: The kv space of each feed's page counters (``monitor/pagestats.py``), beside ``health``.
PAGE_STATS = "page-stats"
#: The kv space of the rules ops were told are blind (``streams/blindwatch.py``), for
#: ``status``: rule id → {"since", "reasons"}.
BLIND_RULES = "blind-rules"

SCHEMA_VERSION = 4  # PRAGMA user_version of a state file this version writes

# Version 2: the article archive (newswatch.core.archive); the body is the article's JSON,
# zlib-compressed.
_ARCHIVE = """
CREATE TABLE IF NOT EXISTS archive (
    id        TEXT PRIMARY KEY,
    seen_at   REAL NOT NULL,
    feed      TEXT NOT NULL,
    language  TEXT,
    published REAL,
    url       TEXT NOT NULL,
    body      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS archive_seen ON archive (seen_at, id);
"""

# Version 3: analysts' clicks on alert buttons (newswatch.core.feedback), one row each;
# ``key`` identifies the click, so a click Slack sends twice is stored once.
_FEEDBACK = """
CREATE TABLE IF NOT EXISTS feedback (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    key       TEXT NOT NULL UNIQUE,
    at        REAL NOT NULL,
    action    TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    user_name TEXT NOT NULL,
    rule_id   TEXT NOT NULL,
    story     TEXT NOT NULL,
    article   TEXT NOT NULL,
    receiver  TEXT NOT NULL,
    channel   TEXT,
    ts        TEXT,
    title     TEXT NOT NULL,
    evidence  TEXT NOT NULL,
    line      TEXT NOT NULL,
    silence   TEXT
);
CREATE INDEX IF NOT EXISTS feedback_rule ON feedback (rule_id, at);
CREATE INDEX IF NOT EXISTS feedback_message ON feedback (channel, ts);
"""


# Version 4: the page cache (newswatch.core.pagecache) in a table of its own, indexed by
# fetch time; the outcomes version 3 kept in the kv space ``pages`` move there, counted as
# fetched at the migration (they had no time).
_PAGES_MOVE = ("INSERT OR IGNORE INTO pages (url, at, page) SELECT key, "
               "coalesce(json_extract(value, '$.at'), ?), value FROM kv WHERE space = 'pages'")


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a state file from schema ``version`` to ``SCHEMA_VERSION``, one step at a time
    (each idempotent: a file from before versions may be at any of them)."""
    if version < 1:  # before versions: the tables, then the story column of decisions
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
        if "story" not in columns:
            conn.execute("ALTER TABLE decisions ADD COLUMN story TEXT")
    if version < 2:
        conn.executescript(_ARCHIVE)
    if version < 3:
        conn.executescript(_FEEDBACK)
    if version < 4:
        conn.executescript(PAGES_TABLE)
        conn.execute(_PAGES_MOVE, (time.time(),))
        conn.execute("DELETE FROM kv WHERE space = 'pages'")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class _Connection:
    """The connection to one state file. Every SQLite error (a corrupt file, a full disk, a
    read-only file system, a lock held too long) becomes a ``StateError`` naming the file."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run ``sql``; all its rows."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise self.error("cannot read state", error) from error

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement that writes (inside ``writing``); the rows it changed."""
        try:
            return int(self._conn.execute(sql, params).rowcount)
        except sqlite3.Error as error:
            raise self.error("cannot write state", error) from error

    def run_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as error:
            raise self.error("cannot write state", error) from error

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction. A failed COMMIT (a full disk) leaves nothing written and
        raises the StateError: SQLite may already have rolled back, so the rollback here
        only runs while a transaction is open, and its own failure never hides the first."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise self.error("cannot write state", error) from error
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException as failure:
            if self._conn.in_transaction:
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            if isinstance(failure, sqlite3.Error):
                raise self.error("cannot write state", failure) from failure
            raise

    def error(self, doing: str, error: sqlite3.Error) -> StateError:
        return StateError(f"{self.path}: {doing}: {error}")

    def copy_to(self, target: Path) -> str:
        """SQLite's online backup into the new file ``target`` (consistent while another
        process writes), then the copy's integrity check: ``"ok"`` or what it found. On any
        failure a StateError naming both files, and no partial copy is left behind."""
        try:
            copy = sqlite3.connect(target)
            try:
                self._conn.backup(copy)
                return str(copy.execute("PRAGMA integrity_check").fetchone()[0])
            finally:
                copy.close()
        except (sqlite3.Error, OSError) as error:
            with suppress(OSError):
                target.unlink()  # ours: the caller refuses a target that exists
            raise StateError(f"{self.path}: cannot back up to {target}: {error}") from error

    def close(self) -> None:
        self._conn.close()


class SqliteMapping(MutableMapping[str, Any]):
    """A JSON-valued mapping stored in one ``space`` of the kv table.

    Values are copied in and out (JSON), so callers must write a value back after changing
    it — the same discipline a faust Table needs.
    """

    def __init__(self, conn: _Connection, space: str) -> None:
        self._conn = conn
        self._space = space

    def __getitem__(self, key: str) -> Any:
        rows = self._conn.rows("SELECT value FROM kv WHERE space = ? AND key = ?",
                               (self._space, key))
        if not rows:
            raise KeyError(key)
        try:
            return json.loads(rows[0][0])
        except ValueError as error:
            raise StateError(f"{self._conn.path}: {self._space}/{key} is not JSON "
                             f"({error})") from error

    def __setitem__(self, key: str, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        with self._conn.writing():
            self._conn.run(
                "INSERT INTO kv (space, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                (self._space, key, data),
            )

    def __delitem__(self, key: str) -> None:
        with self._conn.writing():
            changed = self._conn.run("DELETE FROM kv WHERE space = ? AND key = ?",
                                     (self._space, key))
        if changed == 0:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        rows = self._conn.rows("SELECT key FROM kv WHERE space = ? ORDER BY key",
                               (self._space,))
        return iter([r[0] for r in rows])

    def __len__(self) -> int:
        return int(self._conn.rows("SELECT COUNT(*) FROM kv WHERE space = ?",
                                   (self._space,))[0][0])

    def __contains__(self, key: object) -> bool:
        return bool(self._conn.rows("SELECT 1 FROM kv WHERE space = ? AND key = ?",
                                    (self._space, key)))

    def prune_older(self, before: float) -> int:
        """Delete the keys whose value is a number (a time) below ``before``."""
        with self._conn.writing():
            return self._conn.run(
                "DELETE FROM kv WHERE space = ? AND typeof(json(value)) IS NOT NULL "
                "AND json_type(value) IN ('integer', 'real') AND CAST(value AS REAL) < ?",
                (self._space, before),
            )

    def set_many(self, items: dict[str, Any]) -> None:
        """Write several keys in one transaction (one fsync instead of many)."""
        rows = [
            (self._space, k, json.dumps(v, ensure_ascii=False, separators=(",", ":")))
            for k, v in items.items()
        ]
        with self._conn.writing():
            self._conn.run_many(
                "INSERT INTO kv (space, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                rows,
            )


class Database:
    """The SQLite state file. Open with ``Database.open(path)``; close with ``close()``."""

    def __init__(self, conn: _Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Database:
        """Open (``readonly``: without creating or migrating anything) and check the
        schema version. StateError, naming the file, when it cannot be opened, is not a
        state file, or was written by a newer newswatch."""
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
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                conn.close()
                raise StateError(
                    f"{location}: written by a newer newswatch (state schema {version}; this "
                    f"version reads up to {SCHEMA_VERSION}): upgrade newswatch, or restore a "
                    "backup made by this version")
            if readonly and not conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'"
            ).fetchone():
                conn.close()
                raise StateError(f"{location}: not a newswatch state file (empty, or "
                                 "written by something else)")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                if version < SCHEMA_VERSION:
                    _migrate(conn, version)
        except (sqlite3.Error, OSError, RuntimeError) as error:
            # RuntimeError: a symlink loop in the path (Path.resolve)
            raise StateError(f"{location}: cannot open state database: {error}") from error
        return cls(_Connection(conn, location), location)

    def close(self) -> None:
        self._conn.close()

    def mapping(self, space: str) -> SqliteMapping:
        return SqliteMapping(self._conn, space)

    def archive(self) -> SqliteArchive:
        """The article archive's table (newswatch.core.archive)."""
        return SqliteArchive(self._conn)

    def pages(self) -> SqlitePageCache:
        """The page cache of full text (newswatch.core.pagecache)."""
        return SqlitePageCache(self._conn)

    def feedback(self) -> SqliteFeedback:
        """Analysts' clicks on alert buttons (newswatch.core.feedback)."""
        return SqliteFeedback(self._conn)

    def pragma(self, name: str) -> Any:
        """``PRAGMA name`` (or ``name = value``): its value, None for a setting."""
        rows = self._conn.rows(f"PRAGMA {name}")
        return rows[0][0] if rows else None

    def backup(self, target: Path) -> str:
        """Copy this state into the new file ``target`` (``_Connection.copy_to``)."""
        return self._conn.copy_to(target)

    def integrity_ok(self) -> bool:
        return bool(self._conn.rows("PRAGMA integrity_check")[0][0] == "ok")

    # ---------------------------------------------------------------- audit trail
    def log_decision(self, d: Decision) -> None:
        with self._conn.writing():
            self._conn.run(
                "INSERT INTO decisions (at, rule_id, article, title, receiver, verdict, reason,"
                " result, ref, story) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (d.at, d.rule_id, d.article, d.title, d.receiver, d.verdict, d.reason,
                 d.result, d.ref, d.story),
            )

    def decisions(self, limit: int = 50, *, since: float | None = None) -> list[Decision]:
        """The most recent decisions (at or after ``since`` when given), newest first."""
        columns = {row[1] for row in self._conn.rows("PRAGMA table_info(decisions)")}
        story = "story" if "story" in columns else "NULL"  # a read-only, older file
        rows = self._conn.rows(
            "SELECT at, rule_id, article, title, receiver, verdict, reason, result, ref, "
            f"{story} FROM decisions WHERE at >= ? ORDER BY id DESC LIMIT ?",
            (-1e308 if since is None else since, limit),
        )
        return [Decision(*row) for row in rows]

    # ---------------------------------------------------------------- fetch log
    def log_fetch(self, e: FetchEvent, *, keep: int = 100) -> None:
        with self._conn.writing():
            self._conn.run(
                "INSERT INTO fetches (feed, at, status, latency, new, error) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (e.feed, e.at, e.status, e.latency, e.new, e.error),
            )
            self._conn.run(
                "DELETE FROM fetches WHERE feed = ? AND id NOT IN "
                "(SELECT id FROM fetches WHERE feed = ? ORDER BY id DESC LIMIT ?)",
                (e.feed, e.feed, keep),
            )

    def fetches(self, feed: str, limit: int = 20) -> list[FetchEvent]:
        rows = self._conn.rows(
            "SELECT feed, at, status, latency, new, error FROM fetches WHERE feed = ? "
            "ORDER BY id DESC LIMIT ?",
            (feed, limit),
        )
        return [FetchEvent(*row) for row in rows]


class RuntimeLock:
    """An exclusive lock on ``<state>.lock`` held by the one process that writes the
    delivery state (``newswatch run``, or ``dlq replay`` when nothing runs). The kernel
    releases it when the process dies, even by ``kill -9``."""

    def __init__(self, state_path: str | Path) -> None:
        self.path = Path(f"{state_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it.
        StateError when the lock file cannot be created (a read-only file system)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StateError(f"{self.path}: cannot create the state's lock file: "
                             f"{error.strerror or error}") from error
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
