"""The article archive: every article handed to matching, kept compressed for a number of
days, so that `rules backtest` and `search` can replay what was already seen (issue 17).

``Archive`` is the policy (what is kept, for how long, when to prune); the storage behind
it is an ``ArchiveStore``. The embedded runtime's store is a table of the SQLite state
(``SqliteArchive``); one row per article id, the first time it was handed on.

Times are Unix seconds. An article is stored as its JSON (``Article.to_json``) compressed
with zlib: it comes from the parser already cleaned, so nothing is normalised again here,
and reading it back gives the same ``Article`` that was matched.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from newswatch.core.article import Article

__all__ = ["DAY", "Archive", "ArchiveReader", "ArchiveStore", "ArchivedArticle", "SqliteArchive",
           "pack", "unpack"]

DAY = 86_400.0
_READ_BATCH = 500  # rows per query while streaming the archive


@dataclass(frozen=True, slots=True)
class ArchivedArticle:
    """An archived article and when it was handed to matching (Unix seconds)."""

    article: Article
    seen_at: float


class ArchiveStore(Protocol):
    """Where archived articles live."""

    def add(self, items: Sequence[ArchivedArticle]) -> int:
        """Store the items whose article id is not stored yet; the number stored."""
        ...

    def read(self, since: float, until: float) -> Iterator[ArchivedArticle]:
        """The items seen in [since, until), oldest first, streamed."""
        ...

    def prune(self, before: float) -> int:
        """Delete the items seen before ``before``; the number deleted."""
        ...

    def count(self, since: float = -math.inf, until: float = math.inf) -> int:
        """The number of items seen in [since, until)."""
        ...


class ArchiveReader(Protocol):
    """The reading side of an archive, whichever the runtime: ``Archive`` over the SQLite
    state, the Kafka articles topic (``newswatch.streams.kafka.archive.KafkaArchive``)."""

    def read(self, since: float, until: float = math.inf) -> Iterator[ArchivedArticle]:
        """The articles seen in [since, until), oldest first (then by id), each once."""
        ...

    def count(self, since: float, until: float = math.inf) -> int:
        """How many articles ``read`` gives (at most: the Kafka topic may hold an article
        more than once)."""
        ...


class Archive:
    """Keeps every article handed to matching for ``days`` days (``days`` > 0), pruning
    what is older at most once a day (and at the first ``keep``)."""

    def __init__(self, store: ArchiveStore, days: int,
                 clock: Callable[[], float] = time.time) -> None:
        if days <= 0:
            raise ValueError("an archive keeps articles for at least one day")
        self._store = store
        self.days = days
        self._clock = clock
        self._pruned_at: float | None = None

    def keep(self, articles: Sequence[Article]) -> int:
        """Archive ``articles`` as seen now; the number not archived before."""
        now = self._clock()
        added = self._store.add([ArchivedArticle(a, now) for a in articles])
        if self._pruned_at is None or now - self._pruned_at >= DAY:
            self._store.prune(now - self.days * DAY)
            self._pruned_at = now
        return added

    def read(self, since: float, until: float = math.inf) -> Iterator[ArchivedArticle]:
        """The archived articles seen in [since, until), oldest first."""
        return self._store.read(since, until)

    def count(self, since: float, until: float = math.inf) -> int:
        """How many articles were seen in [since, until)."""
        return self._store.count(since, until)


def pack(article: Article) -> bytes:
    """The article's JSON, zlib-compressed."""
    text = json.dumps(article.to_json(), ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(text.encode("utf-8"), 6)


def unpack(blob: bytes) -> Article:
    return Article.from_json(json.loads(zlib.decompress(blob)))


class Rows(Protocol):
    """What ``SqliteArchive`` needs of a state connection (``newswatch.core.state``): reads,
    writes inside one transaction, every SQLite error a StateError."""

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int: ...

    def writing(self) -> AbstractContextManager[None]: ...


class SqliteArchive:
    """``ArchiveStore`` over the state's ``archive`` table (created by the state's schema
    migrations)."""

    def __init__(self, conn: Rows) -> None:
        self._conn = conn

    def add(self, items: Sequence[ArchivedArticle]) -> int:
        if not items:
            return 0
        added = 0
        with self._conn.writing():
            for item in items:
                a = item.article
                added += self._conn.run(
                    "INSERT OR IGNORE INTO archive (id, seen_at, feed, language, published, "
                    "url, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (a.id, item.seen_at, a.feed, a.language,
                     a.published.timestamp() if a.published else None, a.url, pack(a)))
        return added

    def read(self, since: float, until: float) -> Iterator[ArchivedArticle]:
        # keyset pagination on (seen_at, id): one bounded batch in memory at a time
        after: tuple[float, str] = (since, "")  # ids are never empty: seen_at >= since
        while True:
            rows = self._conn.rows(
                "SELECT seen_at, id, body FROM archive WHERE (seen_at, id) > (?, ?) "
                "AND seen_at < ? ORDER BY seen_at, id LIMIT ?",
                (*after, until, _READ_BATCH))
            for seen_at, _, body in rows:
                yield ArchivedArticle(unpack(body), float(seen_at))
            if len(rows) < _READ_BATCH:
                return
            after = (float(rows[-1][0]), str(rows[-1][1]))

    def prune(self, before: float) -> int:
        with self._conn.writing():
            return self._conn.run("DELETE FROM archive WHERE seen_at < ?", (before,))

    def count(self, since: float = -math.inf, until: float = math.inf) -> int:
        return int(self._conn.rows("SELECT count(*) FROM archive WHERE seen_at >= ? AND "
                                   "seen_at < ?", (since, until))[0][0])

