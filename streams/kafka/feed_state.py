"""Poller state in the Kafka runtime: feed health, seen ids and article pages in compacted
topics.

A poller that takes over a feed after a rebalance reads the feed's last health and seen
ids from the compacted ``feed-health`` and ``feed-state`` topics, so it neither loses the
cursor nor re-publishes what the previous owner already published (and if it does, after a
crash between the produce and the state write, delivery dedup absorbs the repeat).

Full text (docs/full-text.md) adds two things beside them:

- ``pages``: the page cache (canonical URL → the page's outcome, ``monitor/pages.py``) in
  the compacted ``pages`` topic, so a page is not fetched again after a restart or by the
  poller a feed moves to. A poller holds in memory only the outcomes of its own feeds'
  pages (each outcome names the feed that asked for it) from the last ``PAGE_TTL``.
- ``page_stats``: each feed's page counters (``monitor/pagestats.py``) in the feed-health
  topic under ``<feed>/pages``, read by ``newswatch status --kafka --feed``.

The mappings are in memory, loaded with ``load()``; every write is also produced to the
topic (in order per key: one partition per key, idempotent producer). ``flush()`` waits for
the writes in flight.

Workers follow the feed-health topic too (``FeedStatuses``): the blind-rule warnings
(streams/blindwatch.py) need every feed's status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from aiokafka import AIOKafkaProducer

from newswatch.core.pagecache import PAGE_TTL
from newswatch.monitor.pagestats import page_stats_key
from newswatch.streams.blindwatch import feed_statuses
from newswatch.streams.kafka.client import (
    KafkaSettings,
    follow_topic,
    keep_following,
    read_compacted,
)
from newswatch.streams.kafka.pagehosts import page_partition
from newswatch.streams.kafka.topics import FEED_HEALTH, FEED_STATE, PAGES

log = logging.getLogger("newswatch.feeds")

RESTART_AFTER = 5.0  # seconds before a follower that failed starts over
RECHECK = 10.0  # seconds between looks for a feed-health topic that does not exist yet
SEEN_PER_FEED = 2000  # ids remembered per feed; feeds list far fewer items at a time


class _TopicBacked(MutableMapping[str, Any]):
    def __init__(self, owner: KafkaFeedState, topic: str) -> None:
        self._owner = owner
        self._topic = topic
        self.data: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._owner.publish(self._topic, key, value, partition=self._partition(key))

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self._owner.publish(self._topic, key, None, partition=self._partition(key))

    def _partition(self, key: str) -> int | None:
        """Where ``key``'s records go; None: by the key's hash."""
        return None

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class _PageStatsView(MutableMapping[str, Any]):
    """Feed name → page counters, stored in the feed-health mapping under ``<feed>/pages``."""

    def __init__(self, health: _TopicBacked) -> None:
        self._health = health

    def __getitem__(self, feed: str) -> Any:
        return self._health[page_stats_key(feed)]

    def __setitem__(self, feed: str, value: Any) -> None:
        self._health[page_stats_key(feed)] = value

    def __delitem__(self, feed: str) -> None:
        del self._health[page_stats_key(feed)]

    def __iter__(self) -> Iterator[str]:
        suffix = page_stats_key("")
        return iter([k.removesuffix(suffix) for k in self._health.data if k.endswith(suffix)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _PageCache(_TopicBacked):
    """The page cache over the ``pages`` topic (``monitor/pages.py``'s ``cache``); each
    outcome written to its host's partition (``streams/kafka/pagehosts.py``)."""

    def _partition(self, key: str) -> int:
        return page_partition(key, self._owner.partitions)

    def prune_older(self, before: float) -> int:
        """Forget (and tombstone) the outcomes fetched before ``before`` (Unix seconds)."""
        old = [url for url, page in self.data.items() if float(page.get("at") or 0) < before]
        for url in old:
            del self[url]
        return len(old)


class _SeenView(MutableMapping[str, Any]):
    """The poller's flat "feed\\x1fid" → time view over per-feed records of seen ids."""

    def __init__(self, store: _TopicBacked) -> None:
        self._store = store

    @staticmethod
    def _split(key: str) -> tuple[str, str]:
        feed, _, ident = key.partition("\x1f")
        return feed, ident

    def __getitem__(self, key: str) -> Any:
        feed, ident = self._split(key)
        return self._store.data.get(feed, {}).get("seen", {})[ident]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        feed, ident = self._split(key)
        return ident in self._store.data.get(feed, {}).get("seen", {})

    def __setitem__(self, key: str, value: Any) -> None:
        self.set_many({key: value})

    def set_many(self, items: dict[str, Any]) -> None:
        by_feed: dict[str, dict[str, Any]] = {}
        for key, value in items.items():
            feed, ident = self._split(key)
            by_feed.setdefault(feed, {})[ident] = value
        for feed, marks in by_feed.items():
            record = dict(self._store.data.get(feed, {}))
            seen = {**record.get("seen", {}), **marks}
            if len(seen) > SEEN_PER_FEED:  # keep the newest ids
                seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-SEEN_PER_FEED:])
            record["seen"] = seen
            self._store[feed] = record  # one write per feed per poll

    def __delitem__(self, key: str) -> None:
        feed, ident = self._split(key)
        record = dict(self._store.data.get(feed, {}))
        seen = dict(record.get("seen", {}))
        del seen[ident]
        record["seen"] = seen
        self._store[feed] = record

    def __iter__(self) -> Iterator[str]:
        for feed, record in self._store.data.items():
            for ident in record.get("seen", {}):
                yield f"{feed}\x1f{ident}"

    def __len__(self) -> int:
        return sum(len(r.get("seen", {})) for r in self._store.data.values())


class KafkaFeedState:
    """``health`` and ``seen`` mappings for the Poller, ``pages`` and ``page_stats`` for the
    full-text stage, persisted in compacted topics. ``owns``: whether this poller polls a
    feed; ``owns_page``: whether it fetches the pages of a URL's host (it keeps the cached
    pages of both only); ``clock``: Unix seconds."""

    def __init__(self, settings: KafkaSettings, producer: AIOKafkaProducer, *,
                 owns: Callable[[str], bool] = lambda feed: True,
                 owns_page: Callable[[str], bool] = lambda url: False,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._producer = producer
        self._owns = owns
        self._owns_page = owns_page
        self._clock = clock
        self._pending: set[asyncio.Future[Any]] = set()
        self.health = _TopicBacked(self, settings.topic(FEED_HEALTH))
        self._state = _TopicBacked(self, settings.topic(FEED_STATE))
        self.seen = _SeenView(self._state)
        self.pages = _PageCache(self, settings.topic(PAGES))
        self.page_stats = _PageStatsView(self.health)

    @property
    def partitions(self) -> int:
        return self._settings.partitions

    def publish(self, topic: str, key: str, value: Any, *, partition: int | None = None
                ) -> None:
        payload = None if value is None else json.dumps(value, ensure_ascii=False).encode()
        task = asyncio.ensure_future(
            self._producer.send_and_wait(topic, key=key.encode(), value=payload,
                                         partition=partition)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def load(self) -> None:
        """Read the latest health and state of every feed, and the cached pages of the
        feeds this poller owns and of the sites whose pages it fetches (after start or a
        rebalance)."""
        await self.flush()
        self.health.data = await read_compacted(self._settings, FEED_HEALTH)
        self._state.data = await read_compacted(self._settings, FEED_STATE)
        since = self._clock() - PAGE_TTL

        def mine(page: Any) -> bool:  # an outcome (not a request) of a page of ours
            return (isinstance(page, dict) and not page.get("request")
                    and (self._owns(str(page.get("feed") or ""))
                         or self._owns_page(str(page.get("url") or "")))
                    and float(page.get("at") or 0) >= since)

        self.pages.data = await read_compacted(self._settings, PAGES, keep=mine)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending))


class FeedStatuses:
    """The feed-health topic as a worker follows it: every feed's latest health record,
    and their statuses at a given time. ``ready`` is set once the topic was read to the
    end it had when reading started: before that, the statuses are incomplete and must
    not be judged by (a blind rule would look recovered)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._health: dict[str, Any] = {}
        self.ready = asyncio.Event()

    def apply_record(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic, in offset order."""
        if key is None:
            return
        feed = key.decode("utf-8", "replace")
        try:
            self._health[feed] = json.loads(value) if value is not None else None
        except ValueError:
            log.warning("feed-health topic: record %r is not JSON: ignored", feed[:80])
        if self._health.get(feed) is None:
            self._health.pop(feed, None)

    def statuses(self, now: float) -> dict[str, str]:
        """Each feed's status at ``now`` (Unix seconds)."""
        return feed_statuses(self._health, now)

    async def follow(self) -> None:
        """Keep the copy up to date until cancelled (a worker's task); trouble with the
        cluster is logged, and reading starts over from the first offset."""
        await keep_following(
            lambda: follow_topic(self._settings, self._settings.topic(FEED_HEALTH),
                                 self.apply_record, self.ready, recheck=RECHECK),
            what="following the feed-health topic", logger=log, after=RESTART_AFTER,
            on_failure=self._forget)

    def _forget(self) -> None:
        """Reading starts over: incomplete until the end is reached again."""
        self._health.clear()
        self.ready.clear()
