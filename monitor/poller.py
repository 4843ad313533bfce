"""The poller: fetch each feed when due, turn new items into articles, hand them on.

Order of one poll, chosen so that nothing is lost: fetch → parse → drop already-seen items
→ ``await sink(new)`` → only then mark them seen and store the feed's cursor (ETag,
Last-Modified, body hash). If the sink fails (or the process dies), the next poll offers the
same articles again; the delivery stage's dedup absorbs the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from monitor.article import Article
from monitor.config import FeedConfig
from monitor.errors import FeedError
from monitor.feedparse import parse_feed
from monitor.fetch import FetchResult
from monitor.health import FeedHealth, Success, after_failure, after_success
from monitor.state import FetchEvent

log = logging.getLogger("newswatch.poller")

SEEN_TTL = 90 * 86400.0  # forget seen ids after 90 days (feeds rarely re-publish older items)


class Fetcher(Protocol):
    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        previous_hash: str | None = None,
    ) -> FetchResult: ...


class ArticleSink(Protocol):
    """Receives the new articles of one poll; returns once they are safely handed on."""

    async def __call__(self, articles: Sequence[Article]) -> None: ...


class FetchLog(Protocol):
    def log_fetch(self, e: FetchEvent, *, keep: int = 100) -> None: ...


class Poller:
    """Polls a set of feeds. State: ``health`` (feed → FeedHealth JSON) and ``seen``
    ("feed\\x1fid" → first-seen time) mappings, plus a fetch log."""

    def __init__(
        self,
        feeds: Sequence[FeedConfig],
        fetcher: Fetcher,
        *,
        health: MutableMapping[str, Any],
        seen: MutableMapping[str, Any],
        fetch_log: FetchLog,
        sink: ArticleSink,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_health: Callable[[FeedHealth, FeedHealth], None] | None = None,
    ) -> None:
        self.feeds = tuple(feeds)
        self._fetcher = fetcher
        self._health = health
        self._seen = seen
        self._fetch_log = fetch_log
        self._sink = sink
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_health = on_health

    def health(self, feed: FeedConfig) -> FeedHealth:
        data = self._health.get(feed.name)
        return FeedHealth.from_json(data) if data else FeedHealth(feed=feed.name)

    async def poll(self, feed: FeedConfig) -> FeedHealth:
        """Poll one feed now; returns (and stores) its new health. Never raises FeedError."""
        before = self.health(feed)
        url = before.url or feed.url
        started = self._clock()
        monotonic = time.monotonic()
        new_count = 0
        try:
            result = await self._fetcher.fetch(
                url,
                etag=before.etag,
                last_modified=before.last_modified,
                previous_hash=before.content_hash,
            )
            if not (result.not_modified or result.unchanged):
                new_count = await self._take(feed, result)
            after = after_success(
                before,
                Success(
                    new_articles=new_count,
                    status=result.status,
                    latency=time.monotonic() - monotonic,
                    etag=result.etag,
                    last_modified=result.last_modified,
                    content_hash=result.content_hash,
                    not_modified=result.not_modified or result.unchanged,
                    delay_hint=result.cache_max_age_s,
                    moved_to=result.permanent_redirect_to,
                ),
                now=self._clock(),
                interval=feed.interval,
                rng=self._rng,
            )
            error_text = None
        except FeedError as error:
            after = after_failure(
                before, error, now=self._clock(), interval=feed.interval, rng=self._rng,
                latency=time.monotonic() - monotonic,
            )
            error_text = str(error)
            log.warning("feed %s: %s", feed.name, error, extra={"feed": feed.name})
        except Exception as error:
            # Not the feed's fault (the sink failed, or a bug): keep the cursor so the same
            # articles are offered again, and retry soon rather than hammering every tick.
            log.exception("feed %s: poll failed", feed.name, extra={"feed": feed.name})
            after = replace(before, last_attempt=started,
                            next_poll=self._clock() + min(feed.interval, 60.0))
            error_text = f"internal: {error!r}"
        self._health[feed.name] = after.to_json()
        self._fetch_log.log_fetch(
            FetchEvent(feed.name, started, after.last_status, after.latency, new_count, error_text)
        )
        if self._on_health is not None:
            self._on_health(before, after)
        return after

    async def _take(self, feed: FeedConfig, result: FetchResult) -> int:
        # feedparser is pure Python and a huge feed takes seconds: off the event loop.
        parsed = await asyncio.to_thread(
            parse_feed, result.body, feed=feed.name, headers=result.headers,
            language=feed.language,
        )
        fresh: list[Article] = []
        ids: set[str] = set()
        for article in parsed.articles:
            key = f"{feed.name}\x1f{article.id}"
            if article.id in ids or key in self._seen:
                continue
            ids.add(article.id)
            fresh.append(article)
        if fresh:
            await self._sink(fresh)
            now = self._clock()
            marks = {f"{feed.name}\x1f{a.id}": now for a in fresh}
            set_many = getattr(self._seen, "set_many", None)
            if set_many is not None:
                set_many(marks)
            else:
                self._seen.update(marks)
        return len(fresh)

    def due(self, now: float) -> list[FeedConfig]:
        return [f for f in self.feeds if self.health(f).next_poll <= now]

    async def poll_all(self) -> list[FeedHealth]:
        """Poll every feed once, concurrently (the fetcher bounds concurrency)."""
        return list(await asyncio.gather(*(self.poll(f) for f in self.feeds)))

    async def run(self, stop: asyncio.Event, *, tick: float = 1.0) -> None:
        """Poll feeds as they fall due until ``stop`` is set; in-flight polls finish."""
        running: dict[str, asyncio.Task[FeedHealth]] = {}
        try:
            while not stop.is_set():
                now = self._clock()
                for feed in self.due(now):
                    if feed.name not in running:
                        running[feed.name] = asyncio.create_task(self.poll(feed))
                for name, task in list(running.items()):
                    if task.done():
                        del running[name]
                        if not task.cancelled() and task.exception() is not None:
                            log.error("feed %s: poll crashed: %r", name, task.exception())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=tick)
        finally:
            if running:
                await asyncio.gather(*running.values(), return_exceptions=True)
