"""The poller: fetch each feed when due, turn new items into articles, hand them on.

Order of one poll, chosen so that nothing is lost: fetch → parse → drop already-seen items
→ ``await sink(new)`` → only then mark them seen and store the feed's cursor (ETag,
Last-Modified, body hash). If the sink fails (or the process dies), the next poll offers the
same articles again; the delivery stage's dedup absorbs the repeat.

After every poll the feed's health is stored first, then a change of what ops should know
(``newswatch.monitor.health.settle_notice``: failing, stale, disabled, recovered) is handed to
``on_transition`` and awaited. Storing first means a crash can lose a notice (between two
statements, with no await in between) but never repeat one for every poll.

A permanent redirect replaces the stored URL only through ``after_success``: the fetcher has
policy-checked every hop, and the poll must have produced a usable answer from the new URL
(a parse failure or a blocked hop leaves the stored URL as it was).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from newswatch.core.article import Article
from newswatch.core.config import FeedConfig
from newswatch.core.errors import FeedError, StateError
from newswatch.core.state import FetchEvent
from newswatch.monitor.feedparse import parse_feed
from newswatch.monitor.fetch import FetchResult
from newswatch.monitor.health import (
    FeedHealth,
    Pace,
    Success,
    Transition,
    after_failure,
    after_success,
    rebase,
    settle_notice,
)

log = logging.getLogger("newswatch.poller")

SEEN_TTL = 90 * 86400.0  # forget seen ids after 90 days (feeds rarely re-publish older items)
PRUNE_EVERY = 6 * 3600.0
INTERNAL_RETRY = 60.0  # seconds before retrying a poll that failed for a reason not the feed's
MAX_IN_FLIGHT = 100  # polls (fetch + parse + sink) at once: bounds bodies held in memory


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


class PollMetrics(Protocol):
    """Where the poller reports (``newswatch.core.metrics.Metrics`` implements it)."""

    def observe_poll(
        self, *, result: str, error_kind: str | None, latency: float, new: int, lag: float
    ) -> None: ...

    def set_feed_statuses(self, counts: Mapping[str, int]) -> None: ...


TransitionHandler = Callable[[Transition], Awaitable[None]]


def pace_of(feed: FeedConfig) -> Pace:
    return Pace.of(feed.interval, feed.min_interval, feed.max_interval)


class Poller:
    """Polls a set of feeds. State: ``health`` (feed → FeedHealth JSON), ``seen``
    ("feed\\x1fid" → first-seen time) and ``entries`` (feed → digests of the raw entries
    whose articles were handed on, so unchanged entries of a changed feed are not parsed
    again; in memory unless given) mappings, plus a fetch log.

    The poller is the only writer of ``health``; it keeps each feed's next poll time and
    status in memory (read once, on first use), so finding due feeds costs no state reads.

    ``owns``, when given, says which feeds this poller polls (the Kafka runtime's share of
    the feeds); ``due`` and ``poll_all`` skip the others.

    ``max_in_flight`` bounds the polls under way: parsing is slower than fetching, and
    without the bound a cold start of 10,000 feeds would hold every fetched body in memory
    while it waits for the parser. (The fetcher's own limits, per host and in total, apply
    inside; a poll waiting for its host's slot holds one of these, so keep this well above
    the fetcher's ``concurrency``.)
    """

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
        on_transition: TransitionHandler | None = None,
        metrics: PollMetrics | None = None,
        entries: MutableMapping[str, Any] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.feeds = tuple(feeds)
        self._fetcher = fetcher
        self._health = health
        self._seen = seen
        self._fetch_log = fetch_log
        self._sink = sink
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_transition = on_transition
        self._metrics = metrics
        self._entries: MutableMapping[str, Any] = entries if entries is not None else {}
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._owns = owns
        self._next: dict[str, float] | None = None
        self._status: dict[str, str] = {}

    def health(self, feed: FeedConfig) -> FeedHealth:
        data = self._health.get(feed.name)
        stored = FeedHealth.from_json(data) if data else FeedHealth(feed=feed.name)
        return rebase(stored, feed.url)

    def _index(self) -> dict[str, float]:
        if self._next is None:
            self._next = {}
            for feed in self.feeds:
                h = self.health(feed)
                self._next[feed.name] = h.next_poll
                self._status[feed.name] = h.status
            self._report_statuses()
        return self._next

    def reload_schedule(self) -> None:
        """Re-read next poll times and statuses from ``health`` on next use: call it when
        another process may have written it (the Kafka runtime, after a reassignment)."""
        self._next = None

    def _report_statuses(self) -> None:
        if self._metrics is not None:
            self._metrics.set_feed_statuses(Counter(self._status.values()))

    async def poll(self, feed: FeedConfig) -> FeedHealth:
        """Poll one feed now; returns (and stores) its new health. Never raises FeedError."""
        async with self._in_flight:
            return await self._poll(feed)

    async def _poll(self, feed: FeedConfig) -> FeedHealth:
        index = self._index()
        before = self.health(feed)
        pace = pace_of(feed)
        url = before.url or feed.url
        started = self._clock()
        lag = started - before.next_poll if before.polls and math.isfinite(before.next_poll) \
            else 0.0
        monotonic = time.monotonic()
        new_count = 0
        result_kind = "error"
        try:
            result = await self._fetcher.fetch(
                url,
                etag=before.etag,
                last_modified=before.last_modified,
                previous_hash=before.content_hash,
            )
            feed_hint: float | None = None
            if result.has_new_content:
                new_count, feed_hint = await self._take(feed, result)
            result_kind = ("not_modified" if result.not_modified
                           else "unchanged" if result.unchanged else "ok")
            after = after_success(
                before,
                Success(
                    new_articles=new_count,
                    status=result.status,
                    latency=time.monotonic() - monotonic,
                    etag=result.etag,
                    last_modified=result.last_modified,
                    content_hash=result.content_hash,
                    not_modified=result.not_modified,
                    unchanged=result.unchanged,
                    max_age=result.cache_max_age_s,
                    feed_hint=feed_hint,
                    moved_to=result.permanent_redirect_to,
                ),
                now=self._clock(),
                pace=pace,
                rng=self._rng,
            )
            error_text = None
        except FeedError as error:
            new_count = 0
            after = after_failure(
                before, error, now=self._clock(), pace=pace, rng=self._rng,
                latency=time.monotonic() - monotonic,
            )
            error_text = str(error)
            log.warning("feed %s: %s", feed.name, error, extra={"feed": feed.name})
        except Exception as error:
            # Not the feed's fault (the sink failed, or a bug): keep the cursor so the same
            # articles are offered again, and retry soon rather than hammering every tick.
            if isinstance(error, StateError):  # one line: the runtime stops on it
                log.error("feed %s: poll not recorded: %s", feed.name, error,
                          extra={"feed": feed.name})
            else:
                log.exception("feed %s: poll failed", feed.name, extra={"feed": feed.name})
            new_count = 0
            result_kind = "internal"
            after = replace(before, last_attempt=started,
                            next_poll=self._clock() + min(feed.interval, INTERNAL_RETRY))
            error_text = f"internal: {error!r}"
        after, transition = settle_notice(after, self._clock())
        index[feed.name] = after.next_poll  # first: a failing state write must not make
        self._health[feed.name] = after.to_json()  # the run loop retry every tick
        self._fetch_log.log_fetch(
            FetchEvent(feed.name, started, after.last_status, after.latency, new_count, error_text)
        )
        if self._metrics is not None:
            self._metrics.observe_poll(
                result=result_kind, error_kind=after.error_kind if result_kind == "error"
                else None, latency=time.monotonic() - monotonic, new=new_count, lag=lag,
            )
        if self._status.get(feed.name) != after.status:
            self._status[feed.name] = after.status
            self._report_statuses()
        if transition is not None:
            log.info("feed %s: %s -> %s", feed.name, transition.old, transition.new,
                     extra={"feed": feed.name})
            if self._on_transition is not None:
                try:
                    await self._on_transition(transition)
                except Exception:
                    log.exception("feed %s: notice failed", feed.name, extra={"feed": feed.name})
        return after

    async def _take(self, feed: FeedConfig, result: FetchResult) -> tuple[int, float | None]:
        """Parse, hand new articles to the sink, mark them seen. Returns (new articles, the
        feed's ttl / update period in seconds)."""
        # feedparser is pure Python and a huge feed takes seconds: off the event loop.
        known = self._entries.get(feed.name) or ()
        parsed = await asyncio.to_thread(
            parse_feed, result.body, feed=feed.name, headers=result.headers,
            language=feed.language, known=frozenset(known),
        )
        hints = [h for h in (parsed.ttl_s, parsed.update_period_s) if h]
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
            log.info("feed %s: %d new article(s) handed on: %s", feed.name, len(fresh),
                     " ".join(a.id for a in fresh), extra={"feed": feed.name})
            now = self._clock()
            marks = {f"{feed.name}\x1f{a.id}": now for a in fresh}
            set_many = getattr(self._seen, "set_many", None)
            if set_many is not None:
                set_many(marks)
            else:
                self._seen.update(marks)
        # only now (the articles are handed on and marked seen) may their entries be skipped
        if list(parsed.entry_keys) != list(known):
            self._entries[feed.name] = list(parsed.entry_keys)
        return len(fresh), float(max(hints)) if hints else None

    def _mine(self, feed: FeedConfig) -> bool:
        return self._owns is None or self._owns(feed.name)

    def due(self, now: float) -> list[FeedConfig]:
        index = self._index()
        return [f for f in self.feeds if index.get(f.name, 0.0) <= now and self._mine(f)]

    async def poll_all(self) -> list[FeedHealth]:
        """Poll every feed once, concurrently (the fetcher bounds concurrency), except the
        disabled ones (410 Gone), which stay disabled until their configured URL changes."""
        index = self._index()
        feeds = [f for f in self.feeds
                 if math.isfinite(index.get(f.name, 0.0)) and self._mine(f)]
        return list(await asyncio.gather(*(self.poll(f) for f in feeds)))

    def forget_old(self, now: float) -> int:
        """Drop seen ids first seen more than SEEN_TTL ago, when the store can do it
        cheaply (SQLite: one DELETE); returns how many were dropped."""
        prune = getattr(self._seen, "prune_older", None)
        if prune is None:
            return 0
        dropped: int = prune(now - SEEN_TTL)
        if dropped:
            log.info("forgot %d seen article id(s) older than %.0f days", dropped,
                     SEEN_TTL / 86400)
        return dropped

    async def run(self, stop: asyncio.Event, *, tick: float = 1.0) -> None:
        """Poll feeds as they fall due until ``stop`` is set; in-flight polls finish."""
        running: dict[str, asyncio.Task[FeedHealth]] = {}
        next_prune = 0.0
        try:
            while not stop.is_set():
                now = self._clock()
                if now >= next_prune:
                    self.forget_old(now)
                    next_prune = now + PRUNE_EVERY
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
