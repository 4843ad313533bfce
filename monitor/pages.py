"""Article pages fetched politely, once each, and their main text extracted.

``PageFetcher.page(url)`` returns a ``Page``: the extracted text (``monitor/extract.py``)
or the failure's kind, never an exception for anything the page or its server does. The
page goes through the feeds' own ``Fetcher`` (monitor/fetch.py): private-address guard on
every hop, redirects checked, one total deadline, body cap after decompression (gzip and
brotli bombs included), an honest User-Agent naming the project. On top of it:

* robots.txt: fetched once per host (scheme, host and port) through the same fetcher and
  kept ``ROBOTS_TTL`` seconds; a path it disallows for ``newswatch`` is not fetched
  (kind ``blocked``). As RFC 9309 says: a robots.txt answering 4xx allows everything; one
  that cannot be had (5xx, timeout, refused connection) disallows the host for
  ``ROBOTS_RETRY`` seconds, its pages failing with that fetch's kind.
* one page fetch at a time per host, at least ``host_delay`` seconds apart (robots.txt
  fetches included);
* each canonical URL is fetched once: the outcome, success or failure, is kept in
  ``cache`` (keyed by the canonical URL: the embedded state's ``pages`` table, the Kafka
  poller's ``pages`` topic) and returned on every later call, also after a restart;
  concurrent calls for one URL share one fetch. Outcomes older than ``keep`` seconds
  (``PAGE_TTL``, 30 days) are forgotten, once a day (``prune``);
* except that a failure that may pass (``RETRIED_KINDS``: the site down, slow or
  rate-limiting) is tried again, ``retry`` seconds after each failed attempt: the
  outcome keeps the asking article and ``retry_at``; ``due`` lists the outcomes whose
  time has come, ``retry`` fetches one again and ``store`` keeps the new outcome once the
  caller has delivered the article's body.

Failure kinds are the fetch error kinds (``newswatch.core.errors.FetchErrorKind``) plus
``not_an_article`` and ``extract`` (``ExtractError``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol
from urllib.robotparser import RobotFileParser

from yarl import URL

from newswatch.core.article import canonical_url
from newswatch.core.config import DEFAULT_PAGE_RETRY
from newswatch.core.errors import FeedError, FetchError, FetchErrorKind
from newswatch.core.pagecache import PAGE_TTL
from newswatch.monitor.extract import Extracted, Extractor, extract_article, trafilatura_extractor
from newswatch.monitor.fetch import FetchResult

log = logging.getLogger("newswatch.pages")

ROBOTS_AGENT = "newswatch"  # the product token of monitor/fetch.py's USER_AGENT
ROBOTS_TTL = 86_400.0  # seconds a host's robots.txt is trusted
ROBOTS_RETRY = 3_600.0  # seconds before asking again a host whose robots.txt failed
_ROBOTS_CAP = 512 * 1024  # bytes of robots.txt read (Google reads 500 KiB)
PRUNE_EVERY = 86_400.0  # seconds between two prunes of the page cache
# The failures that may pass: the site down, slow or asking to slow down. The others say
# something about the page itself (gone, too large, not an article, refused by robots.txt
# or by the private-address guard) and would fail again.
RETRIED_KINDS = frozenset({FetchErrorKind.DNS, FetchErrorKind.CONNECT,
                           FetchErrorKind.TIMEOUT, FetchErrorKind.HTTP_5XX,
                           FetchErrorKind.RATE_LIMITED})


class Fetcher(Protocol):
    async def fetch(self, url: str) -> FetchResult: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page's outcome: ``extracted`` on success, else ``error_kind`` (a
    FetchErrorKind value) and ``error``; ``seconds``: fetch and extraction time, of which
    ``extract_seconds`` extraction (as measured when fetched); ``cached``: read from the
    cache; ``at``: when it was fetched (Unix seconds); ``feed``: the feed whose article
    asked for it first (the Kafka poller keeps the pages of its own feeds); ``attempts``:
    fetches made so far; ``retry_at`` (Unix seconds): when to try again a failure that
    may pass, None when the outcome is final; ``article``: while a retry is pending, the
    JSON of the article whose body the page is (``Article.to_json``)."""

    url: str
    extracted: Extracted | None = None
    error_kind: str | None = None
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False
    at: float = 0.0
    feed: str = ""
    extract_seconds: float = 0.0
    attempts: int = 1
    retry_at: float | None = None
    article: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        found = self.extracted
        retry = ({"attempts": self.attempts, "retry_at": self.retry_at, "article": self.article}
                 if self.retry_at is not None else {"attempts": self.attempts})
        return {"url": self.url, "at": self.at, "feed": self.feed, **retry,
                "error_kind": self.error_kind, "error": self.error,
                "seconds": round(self.seconds, 4),
                "extract_seconds": round(self.extract_seconds, 4),
                "text": found.text if found else None,
                "language": found.language if found else None,
                "published": found.published.isoformat() if found and found.published
                else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Page:
        extracted = None
        if data.get("text") is not None:
            published = data.get("published")
            extracted = Extracted(str(data["text"]), data.get("language"),
                                  datetime.fromisoformat(published) if published else None)
        return cls(url=str(data["url"]), extracted=extracted, error_kind=data.get("error_kind"),
                   error=data.get("error"), seconds=float(data.get("seconds") or 0.0),
                   cached=True, at=float(data.get("at") or 0.0), feed=str(data.get("feed") or ""),
                   extract_seconds=float(data.get("extract_seconds") or 0.0),
                   attempts=int(data.get("attempts") or 1),
                   retry_at=None if data.get("retry_at") is None else float(data["retry_at"]),
                   article=data.get("article"))


@dataclass(slots=True)
class _Host:
    lock: asyncio.Lock
    last: float = -1e18  # monotonic time of the last fetch started
    robots: RobotFileParser | None = None
    robots_error: FetchError | None = None
    robots_at: float = -1e18


class PageFetcher:
    """Fetches article pages through ``fetcher`` (module docstring). ``cache``: canonical
    URL → ``Page`` JSON (the state's ``pages`` table, the Kafka poller's topic-backed
    mapping; a dict in tests); when it has ``prune_older(before)`` (Unix seconds: delete
    the outcomes fetched before; returns how many), pruning uses it, else it walks the
    mapping; likewise ``due_retries(now)`` (the outcomes whose ``retry_at`` has come) for
    ``due``. ``host_delay``: seconds between two fetches from one host; ``keep``: seconds
    an outcome is kept; ``retry``: seconds after each failed attempt before the next.
    ``clock``: monotonic seconds; ``wall``: Unix seconds."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        cache: MutableMapping[str, Any],
        host_delay: float = 1.0,
        extractor: Extractor = trafilatura_extractor,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        keep: float = PAGE_TTL,
        retry: Sequence[float] = DEFAULT_PAGE_RETRY,
    ) -> None:
        self._retry = tuple(retry)
        self._fetcher = fetcher
        self._cache = cache
        self._delay = host_delay
        self._extractor = extractor
        self._clock = clock
        self._wall = wall
        self._keep = keep
        self._pruned_at: float | None = None
        self._hosts: dict[str, _Host] = {}
        self._inflight: dict[str, asyncio.Future[Page]] = {}

    def prune(self) -> int:
        """Forget the outcomes fetched more than ``keep`` seconds ago (and those stored
        without a time, by the version before times); returns how many."""
        self._pruned_at = now = self._wall()
        before = now - self._keep
        prune_older = getattr(self._cache, "prune_older", None)
        if prune_older is not None:
            dropped = int(prune_older(before))
        else:
            old = [key for key, value in list(self._cache.items())
                   if float(value.get("at") or 0.0) < before]
            for key in old:
                del self._cache[key]
            dropped = len(old)
        if dropped:
            log.info("forgot %d article page(s) fetched more than %.0f days ago", dropped,
                     self._keep / 86_400)
        return dropped

    async def page(self, url: str, *, feed: str = "",
                   article: dict[str, Any] | None = None) -> Page:
        """The page at ``url``, fetched and extracted once per canonical URL (tried
        again later only through ``retry``); ``feed``: the feed whose article asks and
        ``article`` that article's JSON (kept with the outcome, the article while a retry
        is pending)."""
        if self._pruned_at is None or self._wall() - self._pruned_at >= PRUNE_EVERY:
            self.prune()
        key = canonical_url(url)
        stored = self._cache.get(key)
        if stored is not None:
            return Page.from_json(stored)
        running = self._inflight.get(key)
        if running is not None:  # another article with this URL: its fetch is this one's
            return replace(await asyncio.shield(running), cached=True)
        future: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            page = self._schedule(await self._fetch_and_extract(key, feed), article)
            self._cache[key] = page.to_json()
            future.set_result(page)
            return page
        except BaseException as error:  # cancelled: the next caller tries again
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            del self._inflight[key]

    def due(self) -> list[Page]:
        """The stored failures whose next attempt is due, oldest first."""
        now = self._wall()
        due_retries = getattr(self._cache, "due_retries", None)
        found = (due_retries(now) if due_retries is not None else
                 [v for v in self._cache.values()
                  if v.get("retry_at") is not None and float(v["retry_at"]) <= now])
        pages = [Page.from_json(value) for value in found]
        return sorted(pages, key=lambda page: (page.retry_at or 0.0, page.url))

    async def retry(self, failed: Page) -> Page:
        """Fetch a failed page (from ``due``) again: the new outcome, with its next
        attempt or final, not stored yet: ``store`` it once the article's body is
        delivered, so that a delivery that fails leaves the retry due."""
        fetched = await self._fetch_and_extract(failed.url, failed.feed)
        return self._schedule(replace(fetched, attempts=failed.attempts + 1), failed.article)

    def store(self, page: Page) -> None:
        """Keep ``page`` as its URL's outcome (a ``retry``'s, once acted on)."""
        self._cache[page.url] = page.to_json()

    def _schedule(self, page: Page, article: dict[str, Any] | None) -> Page:
        """``page`` with its next attempt set when it failed in a way that may pass and
        attempts are left (the article kept for it), else final."""
        if (page.error_kind in RETRIED_KINDS and page.attempts <= len(self._retry)
                and article is not None):
            return replace(page, retry_at=page.at + self._retry[page.attempts - 1],
                           article=article)
        return replace(page, retry_at=None, article=None)

    async def _fetch_and_extract(self, url: str, feed: str) -> Page:
        started = time.perf_counter()
        at = self._wall()
        try:
            host = self._host(url)
            async with host.lock:
                await self._allowed(url, host)
                result = await self._polite_fetch(url, host)
            extracted, extract_seconds = await asyncio.to_thread(
                self._timed_extract, result)
        except FeedError as error:
            log.info("page %s: %s", url, error)
            return Page(url, error_kind=str(error.kind), error=getattr(error, "message", None)
                        or str(error), seconds=time.perf_counter() - started, at=at, feed=feed)
        return Page(url, extracted=extracted, seconds=time.perf_counter() - started, at=at,
                    feed=feed, extract_seconds=extract_seconds)

    def _timed_extract(self, result: FetchResult) -> tuple[Extracted, float]:
        """Extraction and its seconds, timed in the worker thread (not the wait for one)."""
        started = time.perf_counter()
        extracted = extract_article(result.body, result.headers, result.final_url,
                                    extractor=self._extractor)
        return extracted, time.perf_counter() - started

    def _host(self, url: str) -> _Host:
        target = URL(url)
        name = f"{target.scheme}://{target.raw_host}:{target.port}"
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(asyncio.Lock())
        return host

    async def _polite_fetch(self, url: str, host: _Host) -> FetchResult:
        """Fetch under the host's lock, at least ``host_delay`` after the previous one."""
        wait = host.last + self._delay - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)
        host.last = self._clock()
        return await self._fetcher.fetch(url)

    async def _allowed(self, url: str, host: _Host) -> None:
        """Raise FetchError(BLOCKED) when the host's robots.txt disallows ``url``."""
        if self._clock() - host.robots_at >= ROBOTS_TTL:
            host.robots, host.robots_error = await self._robots(url, host)
            host.robots_at = self._clock()
            if host.robots_error is not None:  # ask again sooner than a day
                host.robots_at -= ROBOTS_TTL - ROBOTS_RETRY
        if host.robots_error is not None:
            raise host.robots_error
        if host.robots is not None and not host.robots.can_fetch(ROBOTS_AGENT, url):
            raise FetchError(FetchErrorKind.BLOCKED, "robots.txt disallows this page")

    async def _robots(
        self, url: str, host: _Host
    ) -> tuple[RobotFileParser | None, FetchError | None]:
        """The host's robots.txt rules (None: no rules), or why the host is off limits (the
        robots.txt fetch's own failure kind: dns, timeout, http_5xx …)."""
        robots_url = str(URL(url).with_path("/robots.txt").with_query(None).with_fragment(None))
        try:
            result = await self._polite_fetch(robots_url, host)
        except FetchError as error:
            if error.kind is FetchErrorKind.HTTP_4XX:
                return None, None  # no robots.txt: everything allowed
            return None, FetchError(
                error.kind, f"robots.txt could not be read ({error.message}): host skipped "
                f"for {ROBOTS_RETRY / 3600:g} h", status=error.status)
        rules = RobotFileParser(robots_url)
        rules.parse(result.body[:_ROBOTS_CAP].decode("utf-8", "replace").splitlines())
        return rules, None
