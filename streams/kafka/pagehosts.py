"""Politeness across pollers: every page of a site is fetched by one poller
(docs/full-text.md, "In the Kafka runtime").

A page's host belongs to one partition of the feeds registry (``page_partition``), so to the
one poller the group assigned that partition. That poller fetches the host's pages, one at
a time and ``pages.host_delay`` apart, and reads its robots.txt. A poller whose feed links
to a page of a host it does not own publishes its teaser at once and hands the page over:

1. once the teaser is published, it writes a request (the article's JSON) to the
   ``pages`` topic, in the host's partition, under
   ``request<US><article id><US><canonical URL>`` (``request_key``);
2. the owner of that partition follows its partitions of the topic (``serve``): when it
   gains a partition it first reads it to the end, then handles each request still there,
   then each new one as it comes;
3. handling: the page through the owner's page fetcher (its cache, robots.txt, host lock,
   retries), then the article published again with its body when there is one, as a
   late page's;
4. then the request is deleted (a tombstone): a request whose handling failed stays and
   is handled again ``retry_after`` seconds later (while this poller still owns its
   partition); one whose owner stopped meanwhile is handled by the partition's next
   owner.

Every record of the ``pages`` topic, outcomes included, is written to its host's
partition, so a URL's records stay in order in one partition.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from yarl import URL

from newswatch.core.article import Article, canonical_url
from newswatch.streams.kafka.client import KafkaSettings, feed_partition, stop_quietly
from newswatch.streams.kafka.topics import PAGES

log = logging.getLogger("newswatch.pages")

REQUEST = "request\x1f"
POLL_MS = 1000  # most milliseconds one read of the owned partitions waits
RETRY_AFTER = 60.0  # seconds before a request whose handling failed is handled again


def page_partition(url: str, partitions: int) -> int:
    """The partition of the feeds registry (and of the ``pages`` topic) that owns the host
    of ``url`` (with its port: the unit of politeness of ``monitor/pages.py``), or of the
    page a ``request_key`` names."""
    page = URL(url.rsplit("\x1f", 1)[-1] if url.startswith(REQUEST) else url)
    return feed_partition(f"{(page.host or '').lower()}:{page.port}", partitions)


def request_key(article: Article) -> str:
    return f"{REQUEST}{article.id}\x1f{canonical_url(article.url)}"


class PageHosts:
    """This poller's side of the hand-over (module docstring). ``owned``: the registry
    partitions this poller owns now; ``generation``: a number that changes whenever they
    may have; ``producer``: started, reliable (``reliable_producer``); ``retry_after``:
    seconds before a request whose handling failed is handled again."""

    def __init__(self, settings: KafkaSettings, producer: AIOKafkaProducer, *,
                 owned: Callable[[], frozenset[int]], generation: Callable[[], int],
                 retry_after: float = RETRY_AFTER) -> None:
        self._settings = settings
        self._retry_after = retry_after
        self._producer = producer
        self._owned = owned
        self._generation = generation
        self._topic = settings.topic(PAGES)
        self._handling: dict[str, asyncio.Task[None]] = {}

    def owns(self, url: str) -> bool:
        return page_partition(url, self._settings.partitions) in self._owned()

    async def hand_over(self, article: Article) -> None:
        """Write the request for ``article``'s page (of a host this poller does not own)
        for the poller that owns it; returns once Kafka has it."""
        value = {"request": True, "url": article.url, "feed": article.feed,
                 "article": article.to_json()}
        await self._write(request_key(article), value)
        log.info("feed %s: page %s handed to the poller of its site", article.feed,
                 article.url, extra={"feed": article.feed})

    async def serve(self, handle: Callable[[Article], Awaitable[None]]) -> None:
        """Handle the requests of the partitions this poller owns with ``handle`` (fetch
        the page, deliver the body; it raises when it could not) until cancelled; the
        requests handled are deleted. Reads again from the start whenever the owned
        partitions change."""
        consumer = AIOKafkaConsumer(**self._settings.client_options(),
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            while True:
                await self._serve_generation(consumer, handle)
        finally:
            for task in list(self._handling.values()):
                task.cancel()
            await asyncio.gather(*self._handling.values(), return_exceptions=True)
            await stop_quietly(consumer)

    async def _serve_generation(self, consumer: AIOKafkaConsumer,
                                handle: Callable[[Article], Awaitable[None]]) -> None:
        """Steps 2-4 for one assignment: returns when it changes."""
        generation = self._generation()
        assigned = [TopicPartition(self._topic, p) for p in sorted(self._owned())]
        consumer.assign(assigned)
        if not assigned:
            while self._generation() == generation:
                await asyncio.sleep(POLL_MS / 1000)
            return
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        backlog: dict[str, dict[str, Any]] | None = {}  # None once read to the end
        while self._generation() == generation:
            batches = await consumer.getmany(*assigned, timeout_ms=POLL_MS)
            for records in batches.values():
                for record in records:
                    key = record.key.decode("utf-8", "replace") if record.key else ""
                    if not key.startswith(REQUEST):
                        continue
                    value = _request(record.value)
                    if backlog is None:
                        if value is not None:
                            self._start(key, value, handle)
                    elif value is None:
                        backlog.pop(key, None)
                    else:
                        backlog[key] = value
            if backlog is not None and all(
                    [await consumer.position(tp) >= ends[tp] for tp in assigned]):
                for key, value in backlog.items():
                    self._start(key, value, handle)
                backlog = None

    def _start(self, key: str, value: dict[str, Any],
               handle: Callable[[Article], Awaitable[None]]) -> None:
        if key in self._handling:
            return
        task = asyncio.create_task(self._handle(key, value, handle))
        self._handling[key] = task
        task.add_done_callback(lambda _: self._handling.pop(key, None))

    async def _handle(self, key: str, value: dict[str, Any],
                      handle: Callable[[Article], Awaitable[None]]) -> None:
        """Handle one request until it succeeds (``retry_after`` seconds between tries,
        while this poller owns its partition), then delete it."""
        try:
            article = Article.from_json(value["article"])
        except (KeyError, TypeError, ValueError):
            log.warning("pages topic: request %r unreadable: deleted", key[:120])
            await self._write(key, None)
            return
        while True:
            try:
                await handle(article)
                break
            except Exception:  # kept, and handled again later
                log.exception("feed %s: page %s handed over: not handled; again in %.0fs",
                              article.feed, article.url, self._retry_after,
                              extra={"feed": article.feed})
            await asyncio.sleep(self._retry_after)
            if not self.owns(key):
                return  # the partition moved: its new owner reads the request
        await self._write(key, None)

    async def _write(self, key: str, value: dict[str, Any] | None) -> None:
        payload = None if value is None else json.dumps(value, ensure_ascii=False).encode()
        await self._producer.send_and_wait(
            self._topic, key=key.encode(), value=payload,
            partition=page_partition(key, self._settings.partitions))


def _request(value: bytes | None) -> dict[str, Any] | None:
    """A request record's value (None: a tombstone, or not a request)."""
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("request") else None
