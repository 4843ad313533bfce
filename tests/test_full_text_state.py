"""Full text and the embedded runtime's state: robots.txt that cannot be had, the page
cache pruned and migrated, the archive and ``status --feed`` after a page came late.

Real parts only: pages served on 127.0.0.1 by ``FeedServer``, the real fetcher and page
fetcher, SQLite state files, the ``newswatch`` CLI as a process. No sleeps: a held page is
released once the alert it must follow has arrived; time moves through a manual clock."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from newswatch.core.article import Article
from newswatch.core.config import FeedConfig
from newswatch.core.pagecache import PAGE_TTL
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
from tests.test_end_to_end import newswatch

DAY = 86_400.0
PAGE = "/port/talks.html"
RULES = """\
rules:
  - id: harbour-watch
    title: Harbour watch
    phrases: ["harbour talks"]
    notify: [desk]
  - id: onyx-watch
    title: Onyx watch
    phrases: ["onyx accord"]
    notify: [desk]
"""
PAGE_BODY = build_page(ONYX_EN, related=RELATED_EN).body


async def test_a_robots_txt_that_answers_5xx_or_never_ends_keeps_its_pages_unfetched() -> None:
    """RFC 9309: a robots.txt that cannot be had disallows its host; each page fails with
    the robots.txt fetch's own kind, the host is asked once, the teasers still match."""
    matcher = Matcher(parse_rules([("rules.yaml", RULES)], known_codes=known_codes()))
    delivered: list[tuple[Article, list[str]]] = []

    async def deliver(articles: Sequence[Article]) -> None:
        delivered.extend((a, [m.rule.id for m in matcher.match(a)]) for a in articles)

    async with FeedServer() as down, FeedServer() as slow:
        down.status("/robots.txt", 503)
        slow.never_ending("/robots.txt")
        articles = [Article(id=f"{name}-{path}", feed="wire", title=ONYX_EN.title,
                            url=server.url(path))
                    for name, server in (("down", down), ("slow", slow))
                    for path in ("/a.html", "/b.html")]
        for server in (down, slow):
            for path in ("/a.html", "/b.html"):
                server.page(path, PAGE_BODY)
        limits = FetchLimits(total=1.0)
        async with Fetcher(limits, allow=[down.allow, slow.allow]) as fetcher:
            full_text = FullText(PageFetcher(fetcher, cache={}, host_delay=0.0),
                                 {"wire": FeedConfig("wire", down.url("/f.xml"))},
                                 deadline=30.0)
            await full_text.take(articles, deliver)
    assert full_text.page_stats("wire").outcomes == Counter({"http_5xx": 2, "timeout": 2})
    for server in (down, slow):
        assert server.hits["/robots.txt"] == 1
        assert server.hits["/a.html"] == server.hits["/b.html"] == 0
    assert sorted(a.id for a, _ in delivered) == sorted(a.id for a in articles)
    assert all(a.body == "" and rules == ["harbour-watch"] for a, rules in delivered)


async def test_two_articles_with_one_page_fetch_it_once_and_count_it_once() -> None:
    """The same page linked twice in one poll (a tracking parameter on one link): one
    fetch, shared; counted as fetched once and read from the cache once."""
    delivered: list[Article] = []

    async def deliver(articles: Sequence[Article]) -> None:
        delivered.extend(articles)

    async with FeedServer() as server, Fetcher(allow=[server.allow]) as fetcher:
        server.page(PAGE, PAGE_BODY)
        full_text = FullText(PageFetcher(fetcher, cache={}, host_delay=0.0),
                             {"wire": FeedConfig("wire", server.url("/f.xml"))}, deadline=30.0)
        await full_text.take([Article(id=str(n), feed="wire", title=ONYX_EN.title, url=link)
                              for n, link in enumerate((server.url(PAGE),
                                                        server.url(PAGE) + "?utm_source=x"))],
                             deliver)
    stats = full_text.page_stats("wire")
    assert (stats.fetched, stats.cached, server.hits[PAGE]) == (1, 1, 1)
    assert [bool(a.body) for a in delivered] == [True, True]


async def test_page_outcomes_older_than_30_days_are_forgotten_then_fetched_again(
    tmp_path: Path
) -> None:
    """The state's pages table and a plain mapping (the Kafka poller's, in memory) alike:
    kept 30 days, pruned at most once a day, then the page is fetched again."""
    wall = ManualTime()
    db = Database.open(tmp_path / "state.db")
    try:
        async with FeedServer() as server, Fetcher(allow=[server.allow]) as fetcher:
            for path, cache in (("/sqlite.html", db.pages()), ("/dict.html", {})):
                server.page(path, PAGE_BODY)
                pages = PageFetcher(fetcher, cache=cache, host_delay=0.0, wall=wall)
                start = wall.now
                assert not (await pages.page(server.url(path), feed="wire")).cached
                wall.now = start + PAGE_TTL - DAY  # a day short of the limit
                assert (await pages.page(server.url(path))).cached
                wall.now = start + PAGE_TTL + DAY
                again = await pages.page(server.url(path))
                assert not again.cached and again.at == wall.now
                assert server.hits[path] == 2 and len(cache) == 1
    finally:
        db.close()


def test_a_version_3_state_moves_its_cached_pages_into_the_pages_table(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    db = Database.open(path)
    db.close()
    page = {"url": "https://news.example/a", "text": "the onyx accord", "error_kind": None}
    with sqlite3.connect(path) as conn:  # as version 3 left it: outcomes in the kv table
        conn.execute("DROP TABLE pages")
        conn.execute("INSERT INTO kv (space, key, value) VALUES ('pages', ?, ?)",
                     ("https://news.example/a", json.dumps(page)))
        conn.execute("PRAGMA user_version = 3")
    db = Database.open(path)
    try:
        assert dict(db.pages()) == {"https://news.example/a": page}
        assert db.mapping("pages").get("https://news.example/a") is None
        assert db.pages().prune_older(0.0) == 0  # counted as fetched at the migration
    finally:
        db.close()


def write_config(tmp: Path, feeds: FeedServer, slack: FakeSlackAPI, extra: str = "", *,
                 fetch_timeout: str = "120s", retry: str = "[5m, 30m, 2h]") -> Path:
    """One feed, ``harbour`` (``/h.xml``), polled every 10 s; pages wait 1 s (``extra``:
    more top-level keys, the Kafka runtime's); ``retry``: ``pages.retry``."""
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"state: ./state.db\nrules: [rules.yaml]\n"
        f"feeds:\n  - name: harbour\n    url: {feeds.url('/h.xml')}\n"
        f"    interval: 10s\n    min_interval: 10s\n"
        f"receivers:\n  desk:\n    slack:\n      channel: '#desk'\n"
        f"      base_url: {slack.base_url}\n"
        # the held page is answered long after its 1 s deadline: within the fetch timeout
        f"fetch:\n  allow: ['{feeds.allow}']\n  timeout: {fetch_timeout}\n"
        f"pages: {{deadline: 1s, host_delay: 0s, retry: {retry}}}\n{extra}", encoding="utf-8")
    return config


def alerts(slack: FakeSlackAPI, title: str) -> list[str]:
    return [" ".join(m.texts()) for m in slack.messages if title in " ".join(m.texts())]


async def test_newswatch_run_with_a_late_page_archives_its_body_and_status_shows_the_pages(
    tmp_path: Path, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    """Teaser first (its alert), then the body (the body's alert); the archive keeps the
    version with the body (``search`` finds the article by a phrase of its body), and
    ``status --feed`` shows the page late, extracted, and its times."""
    async with FeedServer() as feeds:
        feeds.page(PAGE, PAGE_BODY)
        feeds.hold(PAGE)
        feeds.serve("/h.xml", rss([{"title": ONYX_EN.title, "guid": "h1",
                                    "link": feeds.url(PAGE)}]))
        config = str(write_config(tmp_path, feeds, slack_api))
        running = asyncio.create_task(newswatch("run", "--once", "--config", config))
        await feeds.asked_for(PAGE)
        await slack_api.wait_until(lambda: alerts(slack_api, "Harbour watch"), timeout=60)
        assert not alerts(slack_api, "Onyx watch")
        feeds.release(PAGE)
        code, _, err = await running
        assert code == 0, err
        assert "with their page: 1" in err
        code, found, err = await newswatch("search", 'phrases: ["onyx accord"]', "--json",
                                           "--config", config)
        assert code == 0, err
        code, out, err = await newswatch("status", "--feed", "harbour", "--json",
                                         "--config", config)
        assert code == 0, err
        code, text, err = await newswatch("status", "--feed", "harbour", "--config", config)
        assert code == 0, err
    assert len(alerts(slack_api, "Harbour watch")) == 1
    (onyx,) = alerts(slack_api, "Onyx watch")
    assert "five-year agreement" in onyx
    ((result,),) = [json.loads(found)]
    assert result["title"] == ONYX_EN.title and "onyx accord" in " ".join(result["why"])
    pages = json.loads(out)[0]["pages"]
    assert {k: pages[k] for k in ("fetched", "ok", "success_rate", "failures", "late",
                                  "cached")} == {"fetched": 1, "ok": 1, "success_rate": 1.0,
                                                 "failures": {}, "late": 1, "cached": 0}
    assert 0 < pages["median_extract_s"] <= pages["median_page_s"]
    assert "pages of harbour: 1 fetched, 100% ok, median extraction" in text
    assert feeds.hits[PAGE] == 1
