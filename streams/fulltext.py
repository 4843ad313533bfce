"""Teaser first, page second: matching an article on its page's main text without ever
holding up the feed's alerts (docs/full-text.md).

For each new article of a feed whose ``full_text`` setting wants its page
(``FeedConfig.wants_page``: ``auto`` and a short entry, or ``always``):

* the page (``monitor/pages.py``) is awaited up to ``deadline`` seconds; when it comes in
  time the article is delivered once, with its ``body``;
* otherwise the article is delivered at once on its own text (the teaser), and again with
  its body when the page arrives: delivery's dedup makes the second match of a rule that
  already alerted silent (same article), and a rule only the body satisfies alerts then;
* a page that fails leaves the teaser's delivery as the only one, and says so in the
  log; when the failure may pass (the site down or slow, ``monitor/pages.py``'s
  ``RETRIED_KINDS``), ``retry_due`` (called by the runtime's loop) fetches the page again
  later and delivers the article with its body then.

Articles that need no page are delivered first, in one batch, without waiting, and the
pages of one batch are awaited side by side, so one slow site delays no other alert by
more than ``deadline``. ``take`` returns once every article has been delivered at least on
its teaser (the poller then marks them seen); late bodies are delivered by background
tasks (``drain`` waits for them, ``close`` cancels them: a body that arrives after a
restart is not matched again, its teaser was).

"Delivered" is the runtime's sink: the embedded runtime matches and delivers in process;
the Kafka poller publishes to the articles topic (the body as a second record of the same
article, docs/kafka.md). Each page's outcome is counted per feed in ``stats``
(``monitor/pagestats.py``), written back after every page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from newswatch.core.article import Article
from newswatch.core.config import Config, FeedConfig
from newswatch.monitor.fetch import Fetcher
from newswatch.monitor.pages import Page, PageFetcher
from newswatch.monitor.pagestats import PageStats

log = logging.getLogger("newswatch.fulltext")

#: Where articles go: returns once every one of them is delivered (matched and decided in
#: the embedded runtime, acknowledged by Kafka in the Kafka poller).
Sink = Callable[[Sequence[Article]], Awaitable[None]]


RETRY_CHECK_EVERY = 60.0  # most seconds between two looks for failed pages due again


class PageSource(Protocol):
    async def page(self, url: str, *, feed: str = "",
                   article: dict[str, Any] | None = None) -> Page: ...

    def due(self) -> list[Page]: ...

    async def retry(self, failed: Page) -> Page: ...

    def store(self, page: Page) -> None: ...


class HandOver(Protocol):
    """Where the Kafka poller sends the pages of sites it does not fetch
    (``streams/kafka/pagehosts.py``)."""

    def owns(self, url: str) -> bool: ...

    async def hand_over(self, article: Article) -> None: ...


def own_words(article: Article) -> int:
    """Words of the feed entry's own text: title, summary and content."""
    return sum(len(t.split()) for t in (article.title, article.summary, article.content))


def with_page(article: Article, page: Page) -> Article:
    """``article`` with its page's main text as ``body``; the page's language and date fill
    in only what the feed did not give."""
    found = page.extracted
    if found is None:
        return article
    return replace(article, body=found.text, language=article.language or found.language,
                   published=article.published or found.published)


class FullText:
    """The full-text stage of a runtime (module docstring). ``feeds``: the configured
    feeds by name; ``deadline``: seconds an article waits for its page; ``stats``: feed
    name → ``PageStats`` JSON (a dict when not given); ``retry_every``: seconds between
    two looks for failed pages due again; ``clock``: monotonic seconds. In the Kafka
    runtime, ``hand_over`` gives the pages of the sites this poller does not own to the
    poller that fetches them (their teasers go at once) and ``counts`` says whose page
    counters this poller keeps (its own feeds')."""

    def __init__(self, pages: PageSource, feeds: Mapping[str, FeedConfig], *,
                 deadline: float, stats: MutableMapping[str, Any] | None = None,
                 retry_every: float = RETRY_CHECK_EVERY,
                 clock: Callable[[], float] = time.monotonic,
                 hand_over: HandOver | None = None,
                 counts: Callable[[str], bool] = lambda feed: True) -> None:
        self._pages = pages
        self._hand_over = hand_over
        self._counts = counts
        self._retry_every = retry_every
        self._clock = clock
        self._checked_at: float | None = None
        self._retrying = False
        self._feeds = feeds
        self._deadline = deadline
        self._late: set[asyncio.Task[None]] = set()
        self._stats: MutableMapping[str, Any] = stats if stats is not None else {}

    @classmethod
    def for_config(cls, config: Config, fetcher: Fetcher, *, cache: MutableMapping[str, Any],
                   stats: MutableMapping[str, Any],
                   counts: Callable[[str], bool] = lambda feed: True,
                   hand_over: HandOver | None = None) -> FullText | None:
        """The stage the config describes over the feeds' fetcher, with the runtime's page
        cache and page stats (and, in the Kafka poller, ``counts`` and ``hand_over``);
        None when no feed ever wants a page."""
        if all(feed.full_text == "never" for feed in config.feeds):
            return None
        pages = PageFetcher(fetcher, cache=cache, host_delay=config.pages.host_delay,
                            retry=config.pages.retry)
        return cls(pages, {f.name: f for f in config.feeds}, deadline=config.pages.deadline,
                   stats=stats, retry_every=min((RETRY_CHECK_EVERY, *config.pages.retry)),
                   counts=counts, hand_over=hand_over)

    def page_stats(self, feed: str) -> PageStats:
        """What ``feed``'s pages gave so far (as stored)."""
        return PageStats.from_json(self._stats.get(feed))

    def wants(self, article: Article) -> bool:
        feed = self._feeds.get(article.feed)
        return bool(article.url) and feed is not None and feed.wants_page(own_words(article))

    async def take(self, articles: Sequence[Article], deliver: Sink) -> None:
        """Deliver every article, each at least on its teaser (module docstring)."""
        hand_over = self._hand_over
        wanted = [a for a in articles if self.wants(a)]
        handed = [] if hand_over is None else [a for a in wanted if not hand_over.owns(a.url)]
        later = {id(a) for a in wanted} - {id(a) for a in handed}
        waiting = [a for a in wanted if id(a) in later]
        at_once = [a for a in articles if id(a) not in later]
        if at_once:  # the handed articles' teasers first: their bodies come after
            await deliver(at_once)
        if hand_over is not None:
            for article in handed:
                await self._hand(article, hand_over)
        if waiting:
            await asyncio.gather(*(self._one(a, deliver) for a in waiting))

    async def _hand(self, article: Article, hand_over: HandOver) -> None:
        await hand_over.hand_over(article)
        stats = self.page_stats(article.feed)
        stats.handed += 1
        self._store_stats(article.feed, stats)

    async def serve_request(self, article: Article, deliver: Sink) -> None:
        """The page of an article another poller handed over (its teaser delivered
        there): fetched here, the article delivered with its body when there is one; a
        failure that may pass is tried again here (``retry_due``)."""
        page = await self._pages.page(article.url, feed=article.feed,
                                      article=article.to_json())
        self._count(article, page, late=True)
        if page.extracted is not None:
            await deliver([with_page(article, page)])

    async def _one(self, article: Article, deliver: Sink) -> None:
        fetching = asyncio.ensure_future(
            self._pages.page(article.url, feed=article.feed, article=article.to_json()))
        done, _ = await asyncio.wait({fetching}, timeout=self._deadline)
        if fetching in done:
            page = fetching.result()
            self._count(article, page, late=False)
            await deliver([with_page(article, page)])
            return
        log.info("feed %s: page of %s not there after %g s: matched on the feed's text",
                 article.feed, article.url, self._deadline, extra={"feed": article.feed})
        await deliver([article])
        task = asyncio.create_task(self._late_body(article, fetching, deliver))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _late_body(self, article: Article, fetching: asyncio.Future[Page],
                         deliver: Sink) -> None:
        try:
            page = await fetching
            self._count(article, page, late=True)
            if page.extracted is not None:
                await deliver([with_page(article, page)])
        except asyncio.CancelledError:
            fetching.cancel()
            raise
        except Exception:  # the teaser was delivered; a late failure loses only the body
            log.exception("feed %s: late page of %s not delivered", article.feed,
                          article.url, extra={"feed": article.feed})

    def _count(self, article: Article, page: Page, *, late: bool, retry: bool = False
               ) -> None:
        if self._counts(article.feed):
            stats = self.page_stats(article.feed)
            stats.record(page.error_kind, cached=page.cached, late=late, seconds=page.seconds,
                         extract=page.extract_seconds, retry=retry)
            self._store_stats(article.feed, stats)
        if page.error_kind is not None:
            again = ("" if page.retry_at is None else
                     f"; tried again in {max(0.0, page.retry_at - page.at) / 60:.0f} min")
            log.warning("feed %s: page %s failed (%s: %s): matched on the feed's own text%s",
                        article.feed, article.url, page.error_kind, page.error, again,
                        extra={"feed": article.feed})

    def start_retries(self, deliver: Sink) -> None:
        """``retry_due`` in the background (``drain`` waits for it, ``close`` cancels
        it): a runtime's loop calls this on every round."""
        if not self._time_to_look():
            return
        task = asyncio.create_task(self._retry_logged(deliver))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    def _time_to_look(self) -> bool:
        """Whether ``retry_every`` seconds passed since the last look (and none runs)."""
        return not self._retrying and (self._checked_at is None
                                       or self._clock() - self._checked_at >= self._retry_every)

    async def _retry_logged(self, deliver: Sink) -> None:
        try:
            await self.retry_due(deliver)
        except Exception:  # delivery failed (the runtime says why): due again next round
            log.exception("failed pages not tried again this round")

    def _store_stats(self, feed: str, stats: PageStats) -> None:
        try:
            self._stats[feed] = stats.to_json()
        except Exception:  # the counters are for `status`: never worth an alert
            log.exception("feed %s: page counters not stored", feed, extra={"feed": feed})

    async def retry_due(self, deliver: Sink, *, force: bool = False) -> int:
        """Fetch again the failed pages whose retry is due, side by side (each host's
        politeness holds), and deliver each article whose page now has a text, with its
        body; at most once every ``retry_every`` seconds unless ``force``. Returns
        how many pages were tried."""
        if self._retrying or not (force or self._time_to_look()):
            return 0
        self._checked_at, self._retrying = self._clock(), True
        try:
            due = self._pages.due()
            outcomes = await asyncio.gather(*(self._retry(page, deliver) for page in due),
                                            return_exceptions=True)
            for outcome in outcomes:  # every page tried; then the first failure, if any
                if isinstance(outcome, BaseException):
                    raise outcome
            return len(due)
        finally:
            self._retrying = False

    async def _retry(self, failed: Page, deliver: Sink) -> None:
        """One failed page again; its outcome stored only after the article's body was
        delivered (a failed delivery leaves the retry due for the next round)."""
        try:
            article = Article.from_json(failed.article or {})
        except (KeyError, TypeError, ValueError):  # cannot happen with our own JSON
            log.exception("page %s: stored article unreadable: not tried again", failed.url)
            self._pages.store(replace(failed, retry_at=None, article=None))
            return
        page = await self._pages.retry(failed)
        self._count(article, page, late=False, retry=True)
        if page.extracted is not None:
            log.info("feed %s: page %s had a text at attempt %d: matched on its body",
                     article.feed, article.url, page.attempts, extra={"feed": article.feed})
            await deliver([with_page(article, page)])
        self._pages.store(page)

    async def drain(self) -> None:
        """Wait until every late page has been delivered (or has failed)."""
        while self._late:
            await asyncio.gather(*list(self._late), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the late pages still awaited (their teasers were delivered)."""
        for task in list(self._late):
            task.cancel()
        await asyncio.gather(*list(self._late), return_exceptions=True)
