"""Full text in the Kafka runtime (issue 19 item 4) on the project's real broker: `newswatch
poll` fetches the pages of its feeds, and the article event carries the page's body.

One feed whose entry holds only a title. Its page, built like a news site's around a body
of the project's own text, is held by the local server past the poller's page deadline
(1 s), so the article goes teaser first, body second:

- the teaser is published at once and alerts the rule its title satisfies;
- once the page is released, the article is published again with its body: the rule only
  the body satisfies alerts, quoting the body; the title rule's second match is silent
  (same article);
- both versions are in the articles topic, and the ledger's entries of both end done;
- after a restart of the poller, a second entry linking the same page (with a tracking
  parameter) is published with its body from the page cache (the `pages` topic): the page
  is not fetched again;
- ``status --kafka --feed`` shows the feed's pages (fetched, late, from the cache).

Nothing waits on a clock: each step waits for the event it needs (a request reaching the
page server, an alert, a record in a topic).
"""

from __future__ import annotations

import gzip
import json
import signal
from pathlib import Path
from typing import Any

from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    ensure_topics,
    read_compacted,
    read_topic,
)
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_TEST_TOKEN
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.story_texts import ONYX_EN, RELATED_EN
from tests.kafka_fixtures import kafka_bootstrap, unique_name, wait_for_stable_group  # noqa: F401
from tests.test_end_to_end import newswatch
from tests.test_full_text_state import PAGE, PAGE_BODY, write_config
from tests.test_kafka_cluster import Proc, processes
from tests.test_kafka_runtime import drained
from tests.test_scenarios import eventually

MIB = 1024 * 1024


def entry(guid: str, link: str) -> dict[str, str]:
    return {"title": ONYX_EN.title, "guid": guid, "link": link}


async def published(settings: KafkaSettings) -> list[Article]:
    """Every article record of the articles topic, in offset order per partition."""
    return [topics.ArticleMessage.from_bytes(r.value).article
            async for r in read_topic(settings, settings.topic(topics.ARTICLES))]


def top_level(slack: FakeSlackAPI, title: str) -> list[str]:
    return [" ".join(m.texts()) for m in slack.messages
            if m.thread_ts is None and title in " ".join(m.texts())]


async def test_a_late_page_is_published_after_its_teaser_and_its_page_is_cached(
    tmp_path: Path, kafka_bootstrap: str  # noqa: F811
) -> None:
    prefix = unique_name("fulltext") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=2)
    await ensure_topics(settings)
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as slack, FeedServer() as feeds:
        feeds.page(PAGE, PAGE_BODY)
        feeds.hold(PAGE)
        feeds.serve("/h.xml", rss([entry("h1", feeds.url(PAGE))]))
        config = str(write_config(
            tmp_path, feeds, slack, f"kafka:\n  bootstrap: {kafka_bootstrap}\n"
            f"  topic_prefix: {prefix}\n  partitions: 2\n"))
        worker = Proc(tmp_path, "worker", "worker", "--config", config)
        poller = Proc(tmp_path, "poller", "poll", "--config", config)
        async with processes(worker):
            await wait_for_stable_group(kafka_bootstrap, prefix + topics.WORKER_APP,
                                        prefix + topics.MATCHES, members=1)
            async with processes(poller):
                await feeds.asked_for(PAGE)
                # the page is held: the teaser alone alerts, past the 1 s deadline
                await slack.wait_until(lambda: top_level(slack, "Harbour watch"), timeout=90)
                assert not top_level(slack, "Onyx watch")
                feeds.release(PAGE)
                await slack.wait_until(lambda: top_level(slack, "Onyx watch"), timeout=90)
                assert await poller.stop(signal.SIGTERM) == 0
                # restarted: a second entry links the same page (a tracking parameter)
                feeds.serve("/h.xml", rss([entry("h1", feeds.url(PAGE)),
                                           entry("h2", feeds.url(PAGE) + "?utm_source=rss")]))
                await poller.start()
                articles = await eventually(
                    lambda: published(settings),
                    lambda found: len({a.id for a in found}) == 2, timeout=90)
                await drained(kafka_bootstrap, prefix, timeout=90)
                ledger = await eventually(lambda: read_compacted(settings, topics.LEDGER),
                                          lambda pending: not pending, timeout=90)
                rows = await eventually(lambda: status(config), cached_once, timeout=30)
                cache = await read_compacted(settings, topics.PAGES)
    by_id: dict[str, list[Article]] = {}
    for article in articles:  # one article's records are in one partition, in order
        by_id.setdefault(article.id, []).append(article)
    (versions,) = [v for v in by_id.values() if len(v) == 2]
    assert [bool(a.body) for a in versions] == [False, True]  # teaser, then body
    assert "onyx accord" in versions[1].body and ONYX_EN.paragraphs[0] in versions[1].body
    assert not any(title in versions[1].body for title in RELATED_EN)
    ((again,),) = [v for v in by_id.values() if len(v) == 1]
    assert again.body == versions[1].body  # from the page cache
    assert feeds.hits[PAGE] == 1
    assert ledger == {}
    # one alert per rule: the title's rule on the teaser, the body's rule quoting the body
    assert len(top_level(slack, "Harbour watch")) == 1
    (onyx,) = top_level(slack, "Onyx watch")
    assert "five-year agreement" in onyx
    (page,) = cache.values()
    assert page["feed"] == "harbour" and "onyx accord" in page["text"]
    assert rows[0]["pages"] == {
        "fetched": 1, "ok": 1, "success_rate": 1.0, "failures": {}, "late": 1, "cached": 1,
        "retried": 0, "handed": 0,
        "median_extract_s": rows[0]["pages"]["median_extract_s"],
        "median_page_s": rows[0]["pages"]["median_page_s"]}
    assert rows[0]["pages"]["median_extract_s"] > 0


async def test_failing_pages_are_classified_their_teasers_published_and_a_503_tried_again(
    tmp_path: Path, kafka_bootstrap: str  # noqa: F811
) -> None:
    """The page failures of issue 19's acceptance, in the Kafka runtime: a page redirecting
    to a private address, a path robots.txt disallows, a page that never ends, a 50 MB
    page (gzip), a page whose site answers 503 once. Every teaser is published at once;
    each failure is classified and counted for the feed, which stays ok; the failures
    that may pass are
    tried again (``pages.retry: [1s]``) and the 503 page, answering then, publishes its
    article again with its body, whose rule alerts."""
    prefix = unique_name("pagefail") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=2)
    await ensure_topics(settings)
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as slack, FeedServer() as feeds:
        feeds.serve("/robots.txt", b"User-agent: *\nDisallow: /private/\n",
                    {"Content-Type": "text/plain"})
        feeds.redirect("/inside.html", "http://10.0.0.1/admin")
        feeds.page("/private/page.html", PAGE_BODY)
        feeds.never_ending("/endless.html")
        feeds.page("/down.html", PAGE_BODY)
        feeds.fail_first("/down.html", 503)
        feeds.page("/huge.html", gzip.compress(b" " * (50 * MIB), 1),
                   {"Content-Encoding": "gzip"})  # 50 MB once decompressed
        links = ["/inside.html", "/private/page.html", "/endless.html", "/down.html",
                 "/huge.html"]
        feeds.serve("/h.xml", rss([entry(f"p{n}", feeds.url(path))
                                   for n, path in enumerate(links)]))
        config = str(write_config(
            tmp_path, feeds, slack, f"kafka:\n  bootstrap: {kafka_bootstrap}\n"
            f"  topic_prefix: {prefix}\n  partitions: 2\n",
            fetch_timeout="3s", retry="[1s]"))
        worker = Proc(tmp_path, "worker", "worker", "--config", config)
        poller = Proc(tmp_path, "poller", "poll", "--config", config)
        async with processes(worker):
            await wait_for_stable_group(kafka_bootstrap, prefix + topics.WORKER_APP,
                                        prefix + topics.MATCHES, members=1)
            async with processes(poller):
                await slack.wait_until(lambda: top_level(slack, "Onyx watch"), timeout=90)
                rows = await eventually(lambda: status(config), lambda r: bool(
                    r[0].get("pages")) and r[0]["pages"]["retried"] == 2, timeout=60)
                articles = await eventually(
                    lambda: published(settings), lambda found: len(found) == 6, timeout=60)
                await drained(kafka_bootstrap, prefix, timeout=90)
                cache = await read_compacted(settings, topics.PAGES)
    pages = rows[0]["pages"]
    assert pages["failures"] == {"blocked": 2, "http_5xx": 1, "timeout": 2, "too_large": 1}
    assert (pages["ok"], pages["fetched"], pages["retried"]) == (1, 7, 2)
    assert rows[0]["status"] == "ok"
    assert sorted(str(a.guid).rsplit("/", 1)[-1] for a in articles if not a.body) == [
        "p0", "p1", "p2", "p3", "p4"]
    (full,) = [a for a in articles if a.body]
    assert full.url.endswith("/down.html") and "onyx accord" in full.body
    assert feeds.hits["/private/page.html"] == 0 and feeds.hits["/robots.txt"] == 1
    assert feeds.hits["/down.html"] == 2 and feeds.hits["/endless.html"] == 2
    by_url = {page["url"].rsplit("/", 1)[-1]: page for page in cache.values()}
    assert by_url["down.html"]["attempts"] == 2 and by_url["down.html"]["text"]
    assert by_url["endless.html"]["error_kind"] == "timeout"
    assert all(page.get("retry_at") is None for page in cache.values())
    assert len(top_level(slack, "Onyx watch")) == 1


async def status(config: str) -> list[dict[str, Any]]:
    code, out, err = await newswatch("status", "--kafka", "--feed", "harbour", "--json",
                                     "--config", config)
    assert code in (0, 1), err
    return list(json.loads(out))


def cached_once(rows: list[dict[str, Any]]) -> bool:
    pages = rows[0].get("pages")
    return bool(pages) and pages["cached"] == 1
