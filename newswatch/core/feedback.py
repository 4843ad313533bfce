"""Analysts' feedback on alerts: one record per click on an alert's buttons (issue 18).

A record says who clicked what on which alert, when, and what the alert showed; the
decision of what a click does is ``newswatch.streams.feedback``'s. The embedded runtime
keeps records in the state's ``feedback`` table (``SqliteFeedback``, created by the state's
schema migrations, version 3), the Kafka runtime in the worker's faust table ``feedback``
(``MappingFeedback``); ``FeedbackStore`` is what a runtime's store offers.

Times are Unix seconds. ``key`` identifies the click itself (Slack sends an unacknowledged
envelope again): a record whose key is stored already is not stored twice.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import asdict, astuple, dataclass, fields
from typing import Any, Protocol

from newswatch.core.archive import Rows

__all__ = ["FeedbackRecord", "FeedbackStore", "MappingFeedback", "SqliteFeedback"]

_LINES = 5  # feedback lines one alert message shows (the newest)


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One click on an alert. ``action`` is ``useful``, ``not_relevant``, ``mute_story`` or
    ``mute_rule``; ``channel``/``ts`` locate the alert message; ``title`` and ``evidence``
    are what the alert showed; ``line`` is the answer shown under it; ``silence`` the id of
    the silence a mute created or extended."""

    key: str
    at: float
    action: str
    user_id: str
    user_name: str
    rule_id: str
    story: str
    article: str
    receiver: str
    channel: str | None
    ts: str | None
    title: str
    evidence: str
    line: str
    silence: str | None = None


_COLUMNS = tuple(f.name for f in fields(FeedbackRecord))


class FeedbackStore(Protocol):
    """Where feedback records live."""

    def add(self, record: FeedbackRecord) -> bool:
        """Store ``record``; False (and nothing stored) when its key is stored already."""
        ...

    def lines(self, channel: str, ts: str) -> list[str]:
        """The answer lines of the newest clicks on one alert message, oldest first, each
        once."""
        ...


class SqliteFeedback:
    """``FeedbackStore`` over the state's ``feedback`` table."""

    def __init__(self, conn: Rows) -> None:
        self._conn = conn

    def add(self, record: FeedbackRecord) -> bool:
        with self._conn.writing():
            return self._conn.run(
                f"INSERT OR IGNORE INTO feedback ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _COLUMNS)})", astuple(record)) == 1

    def lines(self, channel: str, ts: str) -> list[str]:
        rows = self._conn.rows(
            "SELECT line, max(id) AS last FROM feedback WHERE channel = ? AND ts = ? "
            "GROUP BY line ORDER BY last DESC LIMIT ?", (channel, ts, _LINES))
        return [str(row[0]) for row in reversed(rows)]

    def records(self, since: float = 0.0) -> Iterator[FeedbackRecord]:
        """The records at or after ``since``, oldest first (none in a file from before
        version 3 opened read-only)."""
        if not self._conn.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'feedback'"):
            return iter(())
        rows = self._conn.rows(f"SELECT {', '.join(_COLUMNS)} FROM feedback WHERE at >= ? "
                               "ORDER BY id", (since,))
        return iter([FeedbackRecord(*row) for row in rows])


class MappingFeedback:
    """``FeedbackStore`` over a mapping: a dict in tests, the Kafka worker's faust table
    ``feedback`` (whose changelog keeps it). Two kinds of keys:

    - ``click/<click key>`` → the record's fields (JSON): one per click, the record itself;
    - ``lines/<channel>/<ts>`` → the answer lines of that alert message, as ``lines``
      returns them: kept beside the records so that re-rendering an alert reads one key
      instead of scanning every record.

    The mapping may be given later (``bind``): the notifiers that read the lines are built
    before the worker's table exists. Unbound, there are no lines, and ``add`` raises."""

    def __init__(self, mapping: MutableMapping[str, Any] | None = None) -> None:
        self._mapping = mapping

    def bind(self, mapping: MutableMapping[str, Any]) -> None:
        """Keep the records in ``mapping`` from now on."""
        self._mapping = mapping

    def add(self, record: FeedbackRecord) -> bool:
        if self._mapping is None:
            raise RuntimeError("MappingFeedback.add before bind: no table to record in")
        key = f"click/{record.key}"
        if key in self._mapping:
            return False
        # The record first: should the lines' write be lost, the click is still recorded
        # once (a record without its line shows one answer fewer, never a false one).
        self._mapping[key] = asdict(record)
        if record.channel is not None and record.ts is not None:
            where = f"lines/{record.channel}/{record.ts}"
            kept = [line for line in self._mapping.get(where) or [] if line != record.line]
            self._mapping[where] = [*kept, record.line][-_LINES:]
        return True

    def lines(self, channel: str, ts: str) -> list[str]:
        if self._mapping is None:
            return []
        return [str(line) for line in self._mapping.get(f"lines/{channel}/{ts}") or []]

    def records(self) -> Iterator[FeedbackRecord]:
        """Every record, in no particular order."""
        if self._mapping is None:
            return iter(())
        names = set(_COLUMNS)
        return iter([FeedbackRecord(**{k: v for k, v in value.items() if k in names})
                     for key, value in list(self._mapping.items())
                     if key.startswith("click/") and isinstance(value, dict)])
