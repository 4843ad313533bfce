"""Teaser first, page second: matching an article on its page's main text without ever
holding up the feed's alerts (docs/full-text.md).

For each new article of a feed whose ``full_text`` setting wants its page
(``FeedConfig.wants_page``: ``auto`` and a short entry, or ``always``):

* the page (``monitor/pages.py``) is awaited up to ``deadline`` seconds; when it comes in
  time the article is delivered once, with its ``body``;
* otherwise the article is delivered at once on its own text (the teaser), and again with
  its body when the page arrives: delivery's dedup makes the second match of a rule that
  already alerted silent (same article), and a rule only the body satisfies alerts then;
* a page that fails (any kind) leaves the teaser's delivery as the only one, and says so
  in the log.

Articles that need no page are delivered first, without waiting, and the pages of one
batch are awaited side by side, so one slow site delays no other alert by more than
``deadline``. ``take`` returns once every article has been delivered at least on its
teaser (the poller then marks them seen); late bodies are delivered by background tasks
(``drain`` waits for them, ``close`` cancels them: a body that arrives after a restart is
not matched again, its teaser was).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from newswatch.core.article import Article
from newswatch.core.config import Config, FeedConfig
from newswatch.core.state import Database
from newswatch.monitor.fetch import Fetcher
from newswatch.monitor.pages import Page, PageFetcher

log = logging.getLogger("newswatch.fulltext")

Deliver = Callable[[Article], Awaitable[None]]


class PageSource(Protocol):
    async def page(self, url: str) -> Page: ...


@dataclass
class FeedPages:
    """What the pages of one feed gave since the start: outcomes by kind (``ok`` or a
    FetchErrorKind value), late arrivals (after the deadline) and extraction seconds of
    the pages fetched (cache hits excluded)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    late: int = 0
    seconds: list[float] = field(default_factory=list)


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
    feeds by name; ``deadline``: seconds an article waits for its page."""

    def __init__(self, pages: PageSource, feeds: Mapping[str, FeedConfig], *,
                 deadline: float) -> None:
        self._pages = pages
        self._feeds = feeds
        self._deadline = deadline
        self._late: set[asyncio.Task[None]] = set()
        self.stats: dict[str, FeedPages] = {}

    @classmethod
    def for_config(cls, config: Config, fetcher: Fetcher, db: Database) -> FullText | None:
        """The stage the config describes over the feeds' fetcher, its page cache in the
        state's ``pages`` mapping; None when no feed ever wants a page."""
        if all(feed.full_text == "never" for feed in config.feeds):
            return None
        pages = PageFetcher(fetcher, cache=db.mapping("pages"),
                            host_delay=config.pages.host_delay)
        return cls(pages, {f.name: f for f in config.feeds}, deadline=config.pages.deadline)

    def wants(self, article: Article) -> bool:
        feed = self._feeds.get(article.feed)
        return bool(article.url) and feed is not None and feed.wants_page(own_words(article))

    async def take(self, articles: Sequence[Article], deliver: Deliver) -> None:
        """Deliver every article, each at least on its teaser (module docstring)."""
        waiting = [a for a in articles if self.wants(a)]
        later = {id(a) for a in waiting}
        for article in articles:
            if id(article) not in later:
                await deliver(article)
        if waiting:
            await asyncio.gather(*(self._one(a, deliver) for a in waiting))

    async def _one(self, article: Article, deliver: Deliver) -> None:
        fetching = asyncio.ensure_future(self._pages.page(article.url))
        done, _ = await asyncio.wait({fetching}, timeout=self._deadline)
        if fetching in done:
            page = fetching.result()
            self._count(article, page, late=False)
            await deliver(with_page(article, page))
            return
        log.info("feed %s: page of %s not there after %g s: matched on the feed's text",
                 article.feed, article.url, self._deadline, extra={"feed": article.feed})
        await deliver(article)
        task = asyncio.create_task(self._late_body(article, fetching, deliver))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _late_body(self, article: Article, fetching: asyncio.Future[Page],
                         deliver: Deliver) -> None:
        try:
            page = await fetching
            self._count(article, page, late=True)
            if page.extracted is not None:
                await deliver(with_page(article, page))
        except asyncio.CancelledError:
            fetching.cancel()
            raise
        except Exception:  # the teaser was delivered; a late failure loses only the body
            log.exception("feed %s: late page of %s not delivered", article.feed,
                          article.url, extra={"feed": article.feed})

    def _count(self, article: Article, page: Page, *, late: bool) -> None:
        stats = self.stats.setdefault(article.feed, FeedPages())
        stats.outcomes[page.error_kind or "ok"] += 1
        stats.late += late
        if not page.cached:
            stats.seconds.append(page.seconds)
        if page.error_kind is not None:
            log.warning("feed %s: page %s failed (%s: %s): matched on the feed's own text",
                        article.feed, article.url, page.error_kind, page.error,
                        extra={"feed": article.feed})

    async def drain(self) -> None:
        """Wait until every late page has been delivered (or has failed)."""
        while self._late:
            await asyncio.gather(*list(self._late), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the late pages still awaited (their teasers were delivered)."""
        for task in list(self._late):
            task.cancel()
        await asyncio.gather(*list(self._late), return_exceptions=True)
