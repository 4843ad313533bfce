"""Politeness across Kafka pollers (issue 19 item 1, docs/full-text.md "In the Kafka
runtime"): two `newswatch poll` processes on the project's real broker, each owning one of
the two feeds, whose title-only entries all link to pages of one site. The site answers
slowly, so two fetches at once would overlap there; it sees one at a time, robots.txt once,
each page once: the poller that does not own the site hands its pages to the one that
does, which publishes those articles again with their bodies. `status --kafka --feed`
counts the pages handed over.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    ensure_topics,
    feed_partition,
    read_compacted,
    reliable_producer,
)
from newswatch.streams.kafka.pagehosts import PageHosts, page_partition
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.news_pages import build_page
from tests.fakes.story_texts import ONYX_EN, RELATED_EN
from tests.kafka_fixtures import kafka_bootstrap, unique_name, wait_for_stable_group  # noqa: F401
from tests.test_end_to_end import newswatch
from tests.test_kafka_cluster import Proc, processes
from tests.test_kafka_full_text import published
from tests.test_scenarios import eventually

FEEDS = ("north", "inland")  # registry partitions 0 and 1 of 2
PAGES_PER_FEED = 3
SLOW = 0.3  # seconds the site takes to answer a page


def write_config(tmp: Path, feeds: FeedServer, site: FeedServer, bootstrap: str,
                 prefix: str) -> str:
    (tmp / "rules.yaml").write_text(
        "rules:\n  - {id: onyx, title: Onyx, phrases: [onyx accord]}\n", encoding="utf-8")
    config = tmp / "config.yaml"
    feed_lines = "".join(f"  - name: {name}\n    url: {feeds.url(f'/{name}.xml')}\n"
                         f"    interval: 10s\n    min_interval: 10s\n" for name in FEEDS)
    config.write_text(
        f"state: ./state.db\nrules: [rules.yaml]\nfeeds:\n{feed_lines}"
        f"receivers:\n  desk:\n    console: {{}}\n"
        f"fetch:\n  allow: ['{feeds.allow}', '{site.allow}']\n  timeout: 60s\n"
        f"pages: {{deadline: 1s, host_delay: 0s}}\n"
        f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n  partitions: 2\n",
        encoding="utf-8")
    return str(config)


async def feed_status(config: str, feed: str) -> dict[str, Any]:
    code, out, err = await newswatch("status", "--kafka", "--feed", feed, "--json",
                                     "--config", config)
    assert code in (0, 1), err
    return dict(json.loads(out)[0])


async def test_two_pollers_fetch_one_site_one_page_at_a_time(
    tmp_path: Path, kafka_bootstrap: str  # noqa: F811
) -> None:
    assert [feed_partition(name, 2) for name in FEEDS] == [0, 1]
    prefix = unique_name("hosts") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=2)
    await ensure_topics(settings)
    body = build_page(ONYX_EN, related=RELATED_EN).body
    async with FeedServer() as feeds, FeedServer() as site:
        site.serve("/robots.txt", b"User-agent: *\nDisallow: /private/\n",
                   {"Content-Type": "text/plain"})
        site.slow("/robots.txt", SLOW)
        links: dict[str, list[str]] = {}
        for name in FEEDS:
            feeds.serve(f"/{name}.xml", rss([]))  # empty until both pollers are in
            links[name] = [f"/{name}/{n}.html" for n in range(PAGES_PER_FEED)]
            for path in links[name]:
                site.page(path, body)
                site.slow(path, SLOW)
        config = write_config(tmp_path, feeds, site, kafka_bootstrap, prefix)
        pollers = [Proc(tmp_path, f"poller{n}", "poll", "--config", config) for n in (1, 2)]
        async with processes(*pollers):
            await wait_for_stable_group(kafka_bootstrap, prefix + topics.POLLER_GROUP,
                                        prefix + topics.FEEDS, members=2)
            for name in FEEDS:
                feeds.serve(f"/{name}.xml", rss([
                    {"title": ONYX_EN.title, "guid": f"{name}{n}", "link": site.url(path)}
                    for n, path in enumerate(links[name])]))
            articles = await eventually(
                lambda: published(settings),
                lambda found: sum(bool(a.body) for a in found) == 2 * PAGES_PER_FEED,
                timeout=120)
            handing = FEEDS[1 - page_partition(site.url("/"), 2)]  # not the site's owner
            status = await eventually(lambda: feed_status(config, handing),
                                      lambda row: bool(row.get("pages")), timeout=30)
            cache = await read_compacted(settings, topics.PAGES)
    assert site.most_in_flight == 1
    assert site.hits["/robots.txt"] == 1
    assert all(site.hits[path] == 1 for paths in links.values() for path in paths)
    bodies = [a for a in articles if a.body]
    assert sorted(a.url.rsplit("/", 2)[-2] for a in bodies) == sorted(
        [*[FEEDS[0]] * PAGES_PER_FEED, *[FEEDS[1]] * PAGES_PER_FEED])
    assert all("onyx accord" in a.body for a in bodies)
    assert status["pages"]["handed"] == PAGES_PER_FEED
    assert status["pages"]["fetched"] == 0  # its pages were fetched by the other poller
    assert not [key for key in cache if key.startswith("request")]  # every request done
    assert len([key for key in cache if not key.startswith("request")]) == 2 * PAGES_PER_FEED


async def serve_until(settings: KafkaSettings, hosts: PageHosts,
                      handle: Callable[[Article], Awaitable[None]], done: asyncio.Event,
                      pages: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Serve the requests with ``hosts`` until ``done`` is set and the ``pages`` topic
    holds what ``pages`` accepts; then stop serving. The topic's records."""
    serving = asyncio.create_task(hosts.serve(handle))
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
        found: dict[str, Any] = await eventually(
            lambda: read_compacted(settings, topics.PAGES), pages, timeout=60)
        return found
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


@asynccontextmanager
async def page_topics(bootstrap: str, name: str
                      ) -> AsyncIterator[tuple[KafkaSettings, AIOKafkaProducer]]:
    """Fresh topics of two partitions under a prefix of their own, and a started producer."""
    settings = KafkaSettings(bootstrap=bootstrap, prefix=unique_name(name) + ".", partitions=2)
    await ensure_topics(settings)
    producer = reliable_producer(settings)
    await producer.start()
    try:
        yield settings, producer
    finally:
        await producer.stop()


async def test_a_request_left_by_a_stopped_or_failing_owner_is_handled_by_the_next(
    kafka_bootstrap: str  # noqa: F811
) -> None:
    """Steps 1-4 of streams/kafka/pagehosts.py on the real broker, in process: requests
    written while no poller serves the site's partition wait in the topic; an owner that
    fails on one leaves it there; the next owner handles it, and each request handled is
    deleted."""
    every = frozenset({0, 1})
    async with page_topics(kafka_bootstrap, "handover") as (settings, producer):
        feed_side = PageHosts(settings, producer, owned=lambda: frozenset(),
                              generation=lambda: 1)  # owns no site
        articles = [Article(id=f"a{n}", feed="north", title="t",
                            url=f"https://site{n}.example/page.html") for n in range(4)]
        for article in articles:
            assert not feed_side.owns(article.url)
            await feed_side.hand_over(article)

        handled: list[str] = []
        done = asyncio.Event()

        async def failing_on_a2(article: Article) -> None:
            if article.id == "a2":
                raise OSError("the owner's delivery failed")
            handled.append(article.id)
            if len(handled) == 3:
                done.set()

        first = PageHosts(settings, producer, owned=lambda: every, generation=lambda: 1)
        waiting = await serve_until(settings, first, failing_on_a2, done,
                                    lambda found: len(found) == 1)  # a0, a1, a3 deleted

        second_done = asyncio.Event()
        again: list[str] = []

        async def handle(article: Article) -> None:
            again.append(article.id)
            second_done.set()

        second = PageHosts(settings, producer, owned=lambda: every, generation=lambda: 1)
        left = await serve_until(settings, second, handle, second_done,
                                 lambda found: not found)
    assert sorted(handled) == ["a0", "a1", "a3"]
    assert [value["article"]["id"] for value in waiting.values()] == ["a2"]
    assert again == ["a2"] and left == {}


async def test_a_request_whose_handling_failed_is_handled_again_by_the_same_owner(
    kafka_bootstrap: str  # noqa: F811
) -> None:
    every = frozenset({0, 1})
    tries: list[str] = []
    handled = asyncio.Event()
    async with page_topics(kafka_bootstrap, "handagain") as (settings, producer):
        await PageHosts(settings, producer, owned=lambda: frozenset(),
                        generation=lambda: 1).hand_over(
            Article(id="once", feed="north", title="t", url="https://site.example/a.html"))

        async def fails_once(article: Article) -> None:
            tries.append(article.id)
            if len(tries) == 1:
                raise OSError("the owner's delivery failed")
            handled.set()

        owner = PageHosts(settings, producer, owned=lambda: every, generation=lambda: 1,
                          retry_after=0.2)
        left = await serve_until(settings, owner, fails_once, handled,
                                 lambda found: not found)
    assert tries == ["once", "once"] and left == {}
