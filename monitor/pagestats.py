"""What a feed's article pages gave: outcomes by kind, late arrivals, times (pure).

One ``PageStats`` per feed, kept beside the feed's health (docs/full-text.md): the embedded
runtime's state mapping ``page-stats``, the Kafka runtime's feed-health topic under the key
``<feed>/pages``. ``newswatch status --feed`` shows the success rate and the median
extraction time from it. This module imports nothing heavy (no extraction library), so the
status command reads it without loading trafilatura.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SAMPLES", "PageStats", "page_stats_key"]

#: Times kept per feed for the medians: the most recent pages only, so the record stays
#: small (it is written back after every page) and the median follows the site's present.
SAMPLES = 100


def page_stats_key(feed: str) -> str:
    """The key of a feed's page stats in the Kafka runtime's feed-health topic, beside the
    feed's own record (a feed name holds no ``/``: it cannot be another feed's key)."""
    return f"{feed}/pages"


@dataclass
class PageStats:
    """A feed's pages since counting began. ``outcomes``: pages fetched (not read from the
    cache) by outcome, ``ok`` or a failure kind (a ``FetchErrorKind`` value); ``cached``:
    pages found in the page cache; ``late``: pages that arrived after the deadline (their
    article was matched on its teaser first); ``retried``: the fetches among ``outcomes``
    that tried a failed page again (monitor/pages.py); ``handed``: pages handed to the
    Kafka poller that fetches their site's pages (counted there in its own feeds' only);
    ``seconds``: fetch plus extraction, and
    ``extract``: extraction alone, in seconds, of the last ``SAMPLES`` pages fetched."""

    outcomes: Counter[str] = field(default_factory=Counter)
    cached: int = 0
    late: int = 0
    retried: int = 0
    handed: int = 0
    seconds: list[float] = field(default_factory=list)
    extract: list[float] = field(default_factory=list)

    def record(self, kind: str | None, *, cached: bool, late: bool, seconds: float,
               extract: float, retry: bool = False) -> None:
        """Count one page: ``kind`` None for a page extracted, else its failure kind;
        ``extract`` is 0 for a page that failed before extraction; ``retry``: a failed
        page fetched again (not late: its article was delivered long before)."""
        self.late += late
        self.retried += retry
        if cached:
            self.cached += 1
            return
        self.outcomes[kind or "ok"] += 1
        self.seconds = [*self.seconds, round(seconds, 4)][-SAMPLES:]
        if kind is None:
            self.extract = [*self.extract, round(extract, 4)][-SAMPLES:]

    @property
    def fetched(self) -> int:
        return sum(self.outcomes.values())

    @property
    def success_rate(self) -> float | None:
        """Share of the pages fetched whose text was extracted (None before the first)."""
        return self.outcomes["ok"] / self.fetched if self.fetched else None

    @property
    def median_extract(self) -> float | None:
        """Median extraction time of the recent pages extracted, in seconds."""
        return statistics.median(self.extract) if self.extract else None

    @property
    def median_seconds(self) -> float | None:
        """Median fetch-plus-extraction time of the recent pages fetched, in seconds."""
        return statistics.median(self.seconds) if self.seconds else None

    def to_json(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "cached": self.cached, "late": self.late,
                "retried": self.retried, "handed": self.handed, "seconds": list(self.seconds),
                "extract": list(self.extract)}

    @classmethod
    def from_json(cls, data: Any) -> PageStats:
        """The stats of a stored record; empty ones for None or anything not a record."""
        if not isinstance(data, dict):
            return cls()
        return cls(outcomes=Counter({str(k): int(v) for k, v in
                                     dict(data.get("outcomes") or {}).items()}),
                   cached=int(data.get("cached") or 0), late=int(data.get("late") or 0),
                   retried=int(data.get("retried") or 0), handed=int(data.get("handed") or 0),
                   seconds=[float(s) for s in data.get("seconds") or ()][-SAMPLES:],
                   extract=[float(s) for s in data.get("extract") or ()][-SAMPLES:])

    def summary(self) -> dict[str, Any]:
        """The ``pages`` object of ``status --feed --json`` (docs/feeds.md)."""
        rate, extract, seconds = self.success_rate, self.median_extract, self.median_seconds
        return {"fetched": self.fetched, "ok": self.outcomes["ok"],
                "success_rate": round(rate, 3) if rate is not None else None,
                "failures": {k: v for k, v in sorted(self.outcomes.items()) if k != "ok"},
                "late": self.late, "cached": self.cached, "retried": self.retried,
                "handed": self.handed,
                "median_extract_s": round(extract, 4) if extract is not None else None,
                "median_page_s": round(seconds, 4) if seconds is not None else None}
