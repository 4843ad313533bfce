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
* each canonical URL is fetched at most once: the outcome, success or failure, is kept in
  ``cache`` (a state mapping, keyed by the canonical URL) and returned on every later
  call, also after a restart; concurrent calls for one URL share one fetch.

Failure kinds are the fetch error kinds (``newswatch.core.errors.FetchErrorKind``) plus
``not_an_article`` and ``extract`` (``ExtractError``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.robotparser import RobotFileParser

from yarl import URL

from newswatch.core.article import canonical_url
from newswatch.core.errors import FeedError, FetchError, FetchErrorKind
from newswatch.monitor.extract import Extracted, Extractor, extract_article, trafilatura_extractor
from newswatch.monitor.fetch import FetchResult

log = logging.getLogger("newswatch.pages")

ROBOTS_AGENT = "newswatch"  # the product token of monitor/fetch.py's USER_AGENT
ROBOTS_TTL = 86_400.0  # seconds a host's robots.txt is trusted
ROBOTS_RETRY = 3_600.0  # seconds before asking again a host whose robots.txt failed
_ROBOTS_CAP = 512 * 1024  # bytes of robots.txt read (Google reads 500 KiB)


class Fetcher(Protocol):
    async def fetch(self, url: str) -> FetchResult: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page's outcome: ``extracted`` on success, else ``error_kind`` (a
    FetchErrorKind value) and ``error``; ``seconds``: fetch and extraction time (0 when
    read from the cache); ``cached``: read from the cache."""

    url: str
    extracted: Extracted | None = None
    error_kind: str | None = None
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        found = self.extracted
        return {"url": self.url, "error_kind": self.error_kind, "error": self.error,
                "seconds": round(self.seconds, 4),
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
                   cached=True)


@dataclass(slots=True)
class _Host:
    lock: asyncio.Lock
    last: float = -1e18  # monotonic time of the last fetch started
    robots: RobotFileParser | None = None
    robots_error: FetchError | None = None
    robots_at: float = -1e18


class PageFetcher:
    """Fetches article pages through ``fetcher`` (module docstring). ``cache``: canonical
    URL → ``Page`` JSON (the state's ``pages`` mapping; a dict in tests). ``host_delay``:
    seconds between two fetches from one host. ``clock``: monotonic seconds."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        cache: MutableMapping[str, Any],
        host_delay: float = 1.0,
        extractor: Extractor = trafilatura_extractor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetcher = fetcher
        self._cache = cache
        self._delay = host_delay
        self._extractor = extractor
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._inflight: dict[str, asyncio.Future[Page]] = {}

    async def page(self, url: str) -> Page:
        """The page at ``url``, fetched and extracted once per canonical URL."""
        key = canonical_url(url)
        stored = self._cache.get(key)
        if stored is not None:
            return Page.from_json(stored)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            page = await self._fetch_and_extract(key)
            self._cache[key] = page.to_json()
            future.set_result(page)
            return page
        except BaseException as error:  # cancelled: the next caller tries again
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            del self._inflight[key]

    async def _fetch_and_extract(self, url: str) -> Page:
        started = time.perf_counter()
        try:
            host = self._host(url)
            async with host.lock:
                await self._allowed(url, host)
                result = await self._polite_fetch(url, host)
            extracted = await asyncio.to_thread(
                extract_article, result.body, result.headers, result.final_url,
                extractor=self._extractor)
        except FeedError as error:
            log.info("page %s: %s", url, error)
            return Page(url, error_kind=str(error.kind), error=getattr(error, "message", None)
                        or str(error), seconds=time.perf_counter() - started)
        return Page(url, extracted=extracted, seconds=time.perf_counter() - started)

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
