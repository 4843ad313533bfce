"""A failed article page is tried again when its failure may pass (docs/full-text.md,
"Pages that fail"): the site down, slow or rate-limiting. The article, matched on its
teaser when the page failed, is matched again with its body once the page answers; a page
that keeps failing is given up after the last delay; a failure about the page itself (gone,
too large, refused by robots.txt) is final at once. Real HTTP server on 127.0.0.1, the
state's pages table and a plain mapping (the Kafka poller's, in memory) alike."""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from newswatch.core.article import Article
from newswatch.core.config import DEFAULT_PAGE_RETRY, FeedConfig
from newswatch.core.state import Database
from newswatch.monitor.fetch import Fetcher, FetchLimits
from newswatch.monitor.pages import PageFetcher
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher
from newswatch.streams.fulltext import FullText
from tests.fakes.clock import ManualTime
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import slack_api  # noqa: F401
from tests.fakes.news_pages import build_page
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.story_texts import ONYX_EN, RELATED_EN
from tests.scenario_clicks import eventually
from tests.test_end_to_end import newswatch
from tests.test_full_text_state import alerts, write_config

PAGE = "/port/talks.html"
RULES = """\
rules:
  - id: onyx-watch
    title: Onyx watch
    phrases: ["onyx accord"]
    notify: [desk]
"""
PAGE_BODY = build_page(ONYX_EN, related=RELATED_EN).body
MATCHER = Matcher(parse_rules([("rules.yaml", RULES)], known_codes=known_codes()))


@contextmanager
def caches(tmp_path: Path) -> Iterator[list[tuple[str, MutableMapping[str, Any]]]]:
    db = Database.open(tmp_path / "state.db")
    try:
        yield [("sqlite", db.pages()), ("dict", {})]
    finally:
        db.close()


class Desk:
    """The runtime's sink: each delivered article with the rules it matches."""

    def __init__(self) -> None:
        self.delivered: list[tuple[Article, list[str]]] = []

    async def __call__(self, articles: Sequence[Article]) -> None:
        self.delivered.extend((a, [m.rule.id for m in MATCHER.match(a)]) for a in articles)


def teaser(server: FeedServer, path: str = PAGE) -> Article:
    return Article(id=f"onyx{path}", feed="wire", title=ONYX_EN.title, url=server.url(path))


def full_text(server: FeedServer, fetcher: Fetcher, cache: MutableMapping[str, Any],
              wall: ManualTime) -> FullText:
    return FullText(PageFetcher(fetcher, cache=cache, host_delay=0.0, wall=wall),
                    {"wire": FeedConfig("wire", server.url("/f.xml"))}, deadline=30.0)


async def test_a_page_that_answered_503_is_tried_again_and_its_article_matched_on_the_body(
    tmp_path: Path
) -> None:
    with caches(tmp_path) as stores:
        for name, cache in stores:
            wall, desk = ManualTime(), Desk()
            async with FeedServer() as server, Fetcher(allow=[server.allow]) as fetcher:
                server.page(PAGE, PAGE_BODY)
                server.fail_first(PAGE, 503)  # down once, then up
                stage = full_text(server, fetcher, cache, wall)
                await stage.take([teaser(server)], desk)
                assert [(a.body, rules) for a, rules in desk.delivered] == [("", [])], name
                key = next(iter(cache))
                stored = cache[key]
                assert (stored["error_kind"], stored["attempts"]) == ("http_5xx", 1), name
                assert stored["retry_at"] == wall.now + DEFAULT_PAGE_RETRY[0], name
                assert stored["article"]["id"] == f"onyx{PAGE}", name

                assert await stage.retry_due(desk, force=True) == 0, name  # not due yet
                wall.now += DEFAULT_PAGE_RETRY[0]
                assert await stage.retry_due(desk, force=True) == 1, name
                assert await stage.retry_due(desk, force=True) == 0, name  # done: final

            (_, teaser_rules), (article, rules) = desk.delivered
            assert teaser_rules == [], name
            assert rules == ["onyx-watch"] and "onyx accord" in article.body.lower(), name
            assert article.id == f"onyx{PAGE}" and server.hits[PAGE] == 2, name
            final = cache[key]
            assert final["error_kind"] is None and final["attempts"] == 2, name
            assert "retry_at" not in final and "article" not in final, name
            stats = stage.page_stats("wire")
            assert (stats.outcomes["http_5xx"], stats.outcomes["ok"], stats.retried) == (
                1, 1, 1), name


async def test_a_page_that_keeps_failing_is_given_up_after_the_last_delay(
    tmp_path: Path
) -> None:
    with caches(tmp_path) as stores:
        for name, cache in stores:
            wall, desk = ManualTime(), Desk()
            async with FeedServer() as server, Fetcher(
                    FetchLimits(total=1.0), allow=[server.allow]) as fetcher:
                server.never_ending(PAGE)  # a timeout, every time
                stage = full_text(server, fetcher, cache, wall)
                await stage.take([teaser(server)], desk)
                for delay in DEFAULT_PAGE_RETRY:
                    wall.now += delay
                    assert await stage.retry_due(desk, force=True) == 1, name
                wall.now += 10 * DEFAULT_PAGE_RETRY[-1]
                assert await stage.retry_due(desk, force=True) == 0, name
            final = next(iter(cache.values()))
            assert final["error_kind"] == "timeout", name
            assert final["attempts"] == len(DEFAULT_PAGE_RETRY) + 1, name
            assert final.get("retry_at") is None and final.get("article") is None, name
            assert server.hits[PAGE] == len(DEFAULT_PAGE_RETRY) + 1, name
            assert [a.body for a, _ in desk.delivered] == [""], name  # the teaser only
            assert stage.page_stats("wire").retried == len(DEFAULT_PAGE_RETRY), name


@pytest.mark.parametrize("path, kind", [("/gone.html", "http_4xx"),
                                        ("/private/page.html", "blocked"),
                                        ("/huge.html", "too_large")])
async def test_a_failure_about_the_page_itself_is_final_at_once(path: str, kind: str) -> None:
    wall, desk, cache = ManualTime(), Desk(), {}  # type: ignore[var-annotated]
    async with FeedServer() as server, Fetcher(
            FetchLimits(max_bytes=50_000), allow=[server.allow]) as fetcher:
        server.serve("/robots.txt", b"User-agent: *\nDisallow: /private/\n",
                     {"Content-Type": "text/plain"})
        server.page("/private/page.html", PAGE_BODY)
        server.page("/huge.html", b"<html><body>" + b"<p>news</p>" * 10_000)
        stage = full_text(server, fetcher, cache, wall)
        await stage.take([teaser(server, path)], desk)
        wall.now += 100 * DEFAULT_PAGE_RETRY[-1]
        assert await stage.retry_due(desk, force=True) == 0
    stored = next(iter(cache.values()))
    assert stored["error_kind"] == kind and stored.get("retry_at") is None
    assert [a.body for a, _ in desk.delivered] == [""]


async def test_a_body_whose_delivery_fails_leaves_the_retry_due(tmp_path: Path) -> None:
    """Recorded only after the body was delivered: a sink that fails (the state, Kafka)
    leaves the stored failure due, and the next round delivers the body."""
    with caches(tmp_path) as stores:
        for name, cache in stores:
            wall, desk = ManualTime(), Desk()
            async with FeedServer() as server, Fetcher(allow=[server.allow]) as fetcher:
                server.page(PAGE, PAGE_BODY)
                server.fail_first(PAGE, 503)  # down once, then up
                stage = full_text(server, fetcher, cache, wall)
                await stage.take([teaser(server)], desk)
                wall.now += DEFAULT_PAGE_RETRY[0]

                async def broken(articles: Sequence[Article]) -> None:
                    raise OSError("the sink is down")

                with pytest.raises(OSError):
                    await stage.retry_due(broken, force=True)
                assert next(iter(cache.values()))["error_kind"] == "http_5xx", name
                assert await stage.retry_due(desk, force=True) == 1, name
            assert [rules for _, rules in desk.delivered] == [[], ["onyx-watch"]], name
            assert next(iter(cache.values()))["error_kind"] is None, name


async def test_newswatch_run_once_tries_a_failed_page_again_on_a_later_run(
    tmp_path: Path, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    """The embedded runtime, through the CLI: the first `run --once` alerts on the teaser
    while the page answers 503; a later run, once the retry delay (``pages.retry: [1s]``)
    has passed, fetches the page and alerts the rule its body satisfies, quoting it;
    `status --feed` counts the page tried again."""
    async with FeedServer() as feeds:
        feeds.page(PAGE, PAGE_BODY)
        feeds.fail_first(PAGE, 503)
        feeds.serve("/h.xml", rss([{"title": ONYX_EN.title, "guid": "h1",
                                    "link": feeds.url(PAGE)}]))
        config = str(write_config(tmp_path, feeds, slack_api, retry="[1s]"))
        code, _, err = await newswatch("run", "--once", "--config", config)
        assert code == 0, err
        assert alerts(slack_api, "Harbour watch") and not alerts(slack_api, "Onyx watch")

        async def run_once() -> list[str]:
            code, _, err = await newswatch("run", "--once", "--config", config)
            assert code == 0, err
            return alerts(slack_api, "Onyx watch")

        (onyx,) = await eventually(run_once, bool, timeout=60)
        code, out, err = await newswatch("status", "--feed", "harbour", "--json",
                                         "--config", config)
        assert code == 0, err
    assert "five-year agreement" in onyx
    assert len(alerts(slack_api, "Harbour watch")) == 1
    assert feeds.hits[PAGE] == 2
    pages = json.loads(out)[0]["pages"]
    assert (pages["failures"], pages["ok"], pages["retried"]) == ({"http_5xx": 1}, 1, 1)


async def test_pages_of_sites_another_poller_owns_are_handed_over_after_their_teasers() -> None:
    """The full-text stage with a hand-over (the Kafka poller's, streams/kafka/pagehosts.py,
    here a fake): a page of a site this poller does not own is never fetched here; its
    article's teaser is delivered first, then the page handed over and counted; a page of
    an owned site is fetched as before."""
    events: list[tuple[str, str, bool]] = []

    class Handing:
        def owns(self, url: str) -> bool:
            return url.endswith("/local.html")

        async def hand_over(self, article: Article) -> None:
            events.append(("handed", article.id, False))

    async def deliver(articles: Sequence[Article]) -> None:
        events.extend(("delivered", a.id, bool(a.body)) for a in articles)

    async with FeedServer() as server, Fetcher(allow=[server.allow]) as fetcher:
        for path in ("/local.html", "/remote.html"):
            server.page(path, PAGE_BODY)
        stage = FullText(PageFetcher(fetcher, cache={}, host_delay=0.0),
                         {"wire": FeedConfig("wire", server.url("/f.xml"))}, deadline=30.0,
                         hand_over=Handing())
        await stage.take([teaser(server, "/remote.html"), teaser(server, "/local.html")],
                         deliver)
    assert events == [("delivered", "onyx/remote.html", False),
                      ("handed", "onyx/remote.html", False),
                      ("delivered", "onyx/local.html", True)]
    assert (server.hits["/remote.html"], server.hits["/local.html"]) == (0, 1)
    stats = stage.page_stats("wire")
    assert (stats.handed, stats.fetched) == (1, 1)
