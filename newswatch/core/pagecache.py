"""The embedded runtime's page cache: each article page's outcome, once per canonical URL.

``monitor/pages.py`` keeps the outcome of every page it fetched (the main text, or why
there is none) so that a page is never fetched twice (docs/full-text.md). Here it is the
state's ``pages`` table (schema version 4): one row per canonical URL with the time it was
fetched in a column of its own, so forgetting old pages is one indexed DELETE. (Version 3
kept the outcomes in the key-value table, where pruning by time meant parsing every
page's JSON: seconds of a stalled event loop for 50,000 pages.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from newswatch.core.archive import Rows

__all__ = ["PAGES_TABLE", "PAGE_TTL", "SqlitePageCache"]

# Seconds a page's outcome is kept (both runtimes). A page is wanted again only when its
# article comes again: a re-poll before the article was marked seen (a crash, a feed moving
# to another Kafka poller) or another feed carrying the same link, both within hours or
# days; feeds rarely list an item for more than a few weeks, and the seen ids outlive this.
PAGE_TTL = 30 * 86_400.0

# Version 4 of the state schema. ``page``: the Page JSON (monitor/pages.py); ``at``: when
# it was fetched (Unix seconds), copied from the JSON's ``at``. The few failures waiting
# for another attempt are found through a partial index on the JSON's ``retry_at``
# (created on open, so a version 4 file gains it without a migration).
PAGES_TABLE = """
CREATE TABLE IF NOT EXISTS pages (
    url  TEXT PRIMARY KEY,
    at   REAL NOT NULL,
    page TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pages_at ON pages (at);
CREATE INDEX IF NOT EXISTS pages_retry ON pages (json_extract(page, '$.retry_at'))
    WHERE json_extract(page, '$.retry_at') IS NOT NULL;
"""


class SqlitePageCache(MutableMapping[str, Any]):
    """Canonical URL → Page JSON over the state's ``pages`` table. As every state mapping,
    values are copied in and out: write a value back after changing it."""

    def __init__(self, conn: Rows) -> None:
        self._conn = conn

    def __getitem__(self, key: str) -> Any:
        rows = self._conn.rows("SELECT page FROM pages WHERE url = ?", (key,))
        if not rows:
            raise KeyError(key)
        return json.loads(rows[0][0])

    def __setitem__(self, key: str, value: Any) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        with self._conn.writing():
            self._conn.run("INSERT INTO pages (url, at, page) VALUES (?, ?, ?) ON CONFLICT "
                           "(url) DO UPDATE SET at = excluded.at, page = excluded.page",
                           (key, float(value.get("at") or 0.0), text))

    def __delitem__(self, key: str) -> None:
        with self._conn.writing():
            if not self._conn.run("DELETE FROM pages WHERE url = ?", (key,)):
                raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self._conn.rows("SELECT url FROM pages ORDER BY url")])

    def __len__(self) -> int:
        return int(self._conn.rows("SELECT count(*) FROM pages")[0][0])

    def __contains__(self, key: object) -> bool:
        return bool(self._conn.rows("SELECT 1 FROM pages WHERE url = ?", (key,)))

    def prune_older(self, before: float) -> int:
        """Delete the pages fetched before ``before`` (Unix seconds); how many."""
        with self._conn.writing():
            return self._conn.run("DELETE FROM pages WHERE at < ?", (before,))

    def due_retries(self, now: float) -> list[Any]:
        """The outcomes whose ``retry_at`` (Unix seconds) is ``now`` or before."""
        rows = self._conn.rows(
            "SELECT page FROM pages WHERE json_extract(page, '$.retry_at') IS NOT NULL "
            "AND json_extract(page, '$.retry_at') <= ?", (now,))
        return [json.loads(row[0]) for row in rows]
