"""Full text on real parts: a feed server on 127.0.0.1 whose entries hold only titles, and
article pages built like real news sites around the project's own texts; the real fetcher
(private-address guard, caps, deadline), page fetcher, extractor, poller and matcher.

No mocks, no sleeps: each test awaits the poll and the late pages it started."""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from newswatch.core.article import Article
from newswatch.core.config import FeedConfig
from newswatch.monitor.fetch import Fetcher, FetchLimits
from newswatch.monitor.pages import PageFetcher
from newswatch.monitor.poller import Poller
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher, RuleMatch
from newswatch.streams.fulltext import FullText
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import slack_api, smtp_sink  # noqa: F401
from tests.fakes.news_pages import build_page
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.story_texts import MILITARY_AR, MILITARY_FR, RAIN_FR, RELATED_AR, RELATED_FR
from tests.test_end_to_end import RULES, newswatch, write_config
from tests.test_polling import FetchLog

MIB = 1024 * 1024
TEASER = "Le Maroc et les États-Unis signent un accord militaire, annonce Mark Esper"
ROBOTS = b"User-agent: *\nDisallow: /admin/\n\nUser-agent: newswatch\nDisallow: /private/\n"


def serve_failures(server: FeedServer) -> dict[str, str]:
    """Pages that fail, by path, with the kind each must be classified as."""
    server.redirect("/moved.html", "http://10.0.0.1/inside.html")  # refused, never connected
    server.page("/huge.html", gzip.compress(b" " * (50 * MIB), 1), {"Content-Encoding": "gzip"})
    server.never_ending("/endless.html")
    server.page("/private/memo.html", build_page(MILITARY_FR, related=RELATED_FR).body)
    server.serve("/report.pdf", b"%PDF-1.4 " * 100, {"Content-Type": "application/pdf"})
    return {"/moved.html": "blocked", "/huge.html": "too_large", "/endless.html": "timeout",
            "/private/memo.html": "blocked", "/report.pdf": "not_an_article"}


async def test_page_failures_are_classified_and_each_url_is_fetched_once() -> None:
    async with FeedServer() as server:
        server.serve("/robots.txt", ROBOTS, {"Content-Type": "text/plain"})
        expected = serve_failures(server)
        server.page("/fr/accord.html", build_page(MILITARY_FR, related=RELATED_FR).body)
        expected["/fr/accord.html"] = "ok"
        limits = FetchLimits(total=2.0, max_bytes=MIB)
        async with Fetcher(limits, allow=[server.allow]) as fetcher:
            pages = PageFetcher(fetcher, cache={}, host_delay=0.0)
            first = {path: await pages.page(server.url(path)) for path in expected}
            hits = Counter(server.hits)
            again = {path: await pages.page(server.url(path) + "?utm_source=rss")
                     for path in expected}
    assert {p: page.error_kind or "ok" for p, page in first.items()} == expected
    assert "robots.txt" in (first["/private/memo.html"].error or "")
    assert "not a public address" in (first["/moved.html"].error or "")
    assert server.hits == hits  # the same canonical URLs: nothing fetched again
    assert server.hits["/robots.txt"] == 1 and server.hits["/private/memo.html"] == 0
    assert all(page.cached for page in again.values())
    assert again["/fr/accord.html"].extracted == first["/fr/accord.html"].extracted


def feed_items(server: FeedServer) -> list[dict[str, str]]:
    """Title-only entries: three articles whose page holds the story, four whose page
    fails (their title alone satisfies the seed rule)."""
    pages = {"/fr/accord.html": build_page(MILITARY_FR, related=RELATED_FR, layout=0),
             "/fr/pluies.html": build_page(RAIN_FR, related=RELATED_FR, layout=2),
             "/ar/ittifaq.html": build_page(MILITARY_AR, related=RELATED_AR, layout=2)}
    for path, page in pages.items():
        server.page(path, page.body)
    titles = {"/fr/accord.html": MILITARY_FR.title, "/fr/pluies.html": RAIN_FR.title,
              "/ar/ittifaq.html": MILITARY_AR.title}
    failing = serve_failures(server)
    return ([{"title": titles[p], "link": server.url(p), "guid": p} for p in pages]
            + [{"title": TEASER, "link": server.url(p), "guid": p} for p in failing])


async def test_title_only_entries_match_on_their_page_and_failing_pages_on_their_title(
    tmp_path: Path
) -> None:
    matcher = Matcher(parse_rules([("rules.yaml", RULES)], known_codes=known_codes()))
    delivered: dict[str, list[tuple[Article, list[RuleMatch]]]] = defaultdict(list)

    async def deliver(article: Article) -> None:
        delivered[urlsplit(article.url).path].append((article, matcher.match(article)))

    async with FeedServer() as server:
        server.serve("/robots.txt", ROBOTS, {"Content-Type": "text/plain"})
        server.serve("/feed.xml", rss(feed_items(server)))
        feed = FeedConfig("wire", server.url("/feed.xml"), language="fr")
        async with Fetcher(FetchLimits(total=2.0, max_bytes=MIB), allow=[server.allow]) as fetcher:
            full_text = FullText(PageFetcher(fetcher, cache={}, host_delay=0.0),
                                 {"wire": feed}, deadline=30.0)
            poller = Poller([feed], fetcher, health={}, seen={}, fetch_log=FetchLog(),
                            sink=lambda articles: full_text.take(articles, deliver))
            health = await poller.poll(feed)
            await full_text.drain()

    assert health.status == "ok" and health.error_kind is None
    assert full_text.stats["wire"].outcomes == Counter(
        {"ok": 3, "blocked": 2, "too_large": 1, "timeout": 1, "not_an_article": 1})
    # the seed rule matched the French article on its page: every piece of evidence in
    # the body, inside the story's paragraphs, none from the page's chrome
    ((article, matches),) = delivered["/fr/accord.html"]
    assert [m.rule.id for m in matches] == ["us-maghreb-military"]
    story = "\n".join(MILITARY_FR.paragraphs)
    for evidence in matches[0].evidence:
        assert evidence.field == "body"
        assert article.body[evidence.start:evidence.end] == evidence.text
        assert evidence.text in story
    assert not any(title in article.body for title in RELATED_FR)
    # a related list naming the rule's terms does not make an unrelated page match
    ((article, matches),) = delivered["/fr/pluies.html"]
    assert matches == [] and article.body.startswith(RAIN_FR.paragraphs[0][:40])
    ((article, _),) = delivered["/ar/ittifaq.html"]
    assert MILITARY_AR.paragraphs[0] in article.body  # windows-1256, right to left
    # every failing page: the teaser alone delivered, and it matched
    for path in serve_failures(FeedServer()):
        ((article, matches),) = delivered[path]
        assert article.body == "" and [m.rule.id for m in matches] == ["us-maghreb-military"]


async def test_a_page_later_than_the_deadline_matches_the_teaser_first_then_the_body() -> None:
    """deadline 0: the teaser is delivered before the page comes, the body after it."""
    matcher = Matcher(parse_rules([("rules.yaml", RULES)], known_codes=known_codes()))
    order: list[tuple[str, list[str]]] = []

    async def deliver(article: Article) -> None:
        order.append(("body" if article.body else "teaser",
                      [m.rule.id for m in matcher.match(article)]))

    async with FeedServer() as server:
        server.page("/fr/accord.html", build_page(MILITARY_FR, related=RELATED_FR).body)
        feed = FeedConfig("wire", server.url("/feed.xml"), language="fr")
        article = Article(id="a1", feed="wire", title=MILITARY_FR.title, language="fr",
                          url=server.url("/fr/accord.html"))
        async with Fetcher(allow=[server.allow]) as fetcher:
            full_text = FullText(PageFetcher(fetcher, cache={}, host_delay=0.0),
                                 {"wire": feed}, deadline=0.0)
            await full_text.take([article], deliver)
            await full_text.drain()
    assert order == [("teaser", []), ("body", ["us-maghreb-military"])]
    assert full_text.stats["wire"].late == 1


async def test_newswatch_run_alerts_once_on_a_title_only_entry_with_the_page_quoted(
    tmp_path: Path, slack_api: FakeSlackAPI, smtp_sink: SMTPSink  # noqa: F811
) -> None:
    """The real CLI: the entry's title names none of the rule's terms, the page does; one
    Slack alert quoting the page, the feed healthy, and nothing fetched again next run."""
    async with FeedServer() as feeds:
        feeds.page("/fr/accord.html", build_page(MILITARY_FR, related=RELATED_FR).body)
        feeds.serve("/a.xml", rss([{"title": MILITARY_FR.title, "guid": "accord-1",
                                    "link": feeds.url("/fr/accord.html")}]))
        config = write_config(tmp_path, feeds, slack_api, smtp_sink, ["/a.xml"])
        with config.open("a", encoding="utf-8") as text:
            text.write("pages: {host_delay: 0s}\n")
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert "with their page: 1" in err
        (posted,) = slack_api.calls_to("chat.postMessage")
        shown = json.dumps(posted.payload, ensure_ascii=False)
        assert "Mark Esper" in shown and MILITARY_FR.title in shown
        assert not any(title in shown for title in RELATED_FR)
        code, _, err = await newswatch("run", "--once", "--config", str(config))
        assert code == 0, err
        assert feeds.hits["/fr/accord.html"] == 1 and feeds.hits["/robots.txt"] == 1
        assert len(slack_api.calls_to("chat.postMessage")) == 1
        code, out, _ = await newswatch("status", "--config", str(config), "--json")
        assert code == 0 and json.loads(out)[0]["status"] == "ok"
