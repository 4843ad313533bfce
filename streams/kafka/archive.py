"""The Kafka runtime's article archive: the articles topic itself (issue 17; no second copy).

Every article a poller hands on is a record of the articles topic, which the workers match.
Its retention is set from ``archive.days`` when ``ensure_topics`` creates it
(``KafkaSettings.archive_days``) and checked by ``newswatch config check --kafka``
(``retention_problem``), so the topic holds what the embedded runtime's ``archive`` table
would. ``KafkaArchive`` reads it by time for ``rules backtest --kafka`` and ``search
--kafka``, as ``newswatch.core.archive.Archive`` reads the SQLite state:

1. The partitions' first offsets at ``since`` and at ``until`` come from the broker's time
   index (ListOffsets by timestamp, "offsets for times"); nothing before them is fetched.
2. Each partition is read from its first to its last offset, and the partitions are merged
   by record time (the producer's create time, Unix milliseconds), then article id: the
   order in which the embedded archive replays the same articles.
3. A record outside [since, until) (a poller's clock off by some seconds), a record that is
   not an article, and an article id read before (a re-drive through the ledger, a poller
   retrying a publish) are passed over: an article is replayed once, at its first record —
   except the version with its page's body published after its teaser (full text,
   docs/full-text.md), replayed too, at its own record, as the workers matched it (the
   embedded archive replaces the teaser instead; both replays give the same alerts, as
   delivery's dedup makes the body's repeat of a teaser's match silent).

Memory is bounded: one fetch batch per partition, and the ids read (about 100 bytes each,
twice for an article read with its body).
"""

from __future__ import annotations

import asyncio
import heapq
import math
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

from newswatch.core.archive import ArchivedArticle
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaError,
    KafkaSettings,
    archive_retention_ms,
    stop_quietly,
    topic_partitions,
)

__all__ = ["KafkaArchive", "retention_problem"]

_BATCH = 500  # records fetched per partition at a time
_QUEUE = 1000  # articles read ahead of the consumer of ``KafkaArchive.read``
_STALLED = 30.0  # seconds a partition may give nothing before reading fails


async def retention_problem(settings: KafkaSettings, days: int) -> str | None:
    """Why the articles topic cannot hold ``days`` days of archive (missing, or a shorter
    ``retention.ms``), or None. Raises KafkaError when the cluster does not answer."""
    name = settings.topic(topics.ARTICLES)
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        if name not in await admin.list_topics():
            return (f"the topic '{name}' does not exist yet (`newswatch poll` or `newswatch "
                    "worker` creates it)")
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": None})])
    finally:
        await admin.close()
    entries = [entry for response in described
               for resource in response.to_object()["resources"]
               for entry in resource["config_entries"]
               if entry["config_names"] == "retention.ms"]
    if not entries or days <= 0:
        return None
    kept = int(entries[0]["config_value"])
    if kept < 0 or kept >= archive_retention_ms(days):  # -1: kept for ever
        return None
    return (f"archive.days is {days} but the topic '{name}' keeps articles {kept / 86_400_000:g} "
            f"day(s) (retention.ms={kept}): raise it to {archive_retention_ms(days)} with "
            f"kafka-configs.sh --alter --entity-type topics --entity-name {name} "
            f"--add-config retention.ms={archive_retention_ms(days)}")


@dataclass
class _Partition:
    """One partition being read: the records fetched and not yet merged, the next offset to
    fetch and the offset to stop before."""

    tp: TopicPartition
    next: int
    stop: int
    fetched: deque[ConsumerRecord]

    @property
    def exhausted(self) -> bool:
        return not self.fetched and self.next >= self.stop


class KafkaArchive:
    """The articles topic read as an archive (``newswatch.core.archive.Archive``'s reading
    side). ``read`` is a plain iterator: the reading runs on an event loop of its own in a
    thread, so the callers (the backtest, search) are the same for both runtimes."""

    def __init__(self, settings: KafkaSettings, days: int) -> None:
        self._settings = settings
        self.days = days

    def read(self, since: float, until: float = math.inf) -> Iterator[ArchivedArticle]:
        """The articles first published in [since, until) (Unix seconds), oldest first, each
        once. KafkaError when the cluster cannot be read."""
        items: queue.Queue[ArchivedArticle | BaseException | None] = queue.Queue(_QUEUE)
        stop = threading.Event()

        def put(item: ArchivedArticle | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        async def pump() -> None:
            try:
                async for item in self.stream(since, until):
                    if not put(item):
                        return
            except BaseException as error:  # handed to the reader, raised there
                put(error)
                return
            put(None)

        thread = threading.Thread(target=asyncio.run, args=(pump(),),
                                  name="newswatch-archive-read", daemon=True)
        thread.start()
        try:
            while (item := items.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    def count(self, since: float, until: float = math.inf) -> int:
        """The records between the partitions' offsets at ``since`` and ``until``: an upper
        bound of the articles ``read`` gives (re-published ids are counted again)."""
        return asyncio.run(self._count(since, until))

    async def _count(self, since: float, until: float) -> int:
        consumer, parts = await self._open(since, until)
        try:
            return sum(p.stop - p.next for p in parts)
        finally:
            await stop_quietly(consumer)

    async def stream(self, since: float, until: float = math.inf
                     ) -> AsyncIterator[ArchivedArticle]:
        """``read`` on the caller's event loop."""
        consumer, parts = await self._open(since, until)
        try:
            async for item in self._merge(consumer, parts, since, until):
                yield item
        finally:
            await stop_quietly(consumer)

    async def _open(self, since: float, until: float
                    ) -> tuple[AIOKafkaConsumer, list[_Partition]]:
        """A consumer (no group: it commits nothing) and each partition's offsets to read."""
        name = self._settings.topic(topics.ARTICLES)
        assigned = [TopicPartition(name, p)
                    for p in await topic_partitions(self._settings, name)]
        consumer = AIOKafkaConsumer(**self._settings.client_options(),
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(assigned) if assigned else {}
            starts = await _offsets_at(consumer, assigned, since, ends)
            stops = await _offsets_at(consumer, assigned, until, ends)
        except BaseException:
            await stop_quietly(consumer)
            raise
        parts = [_Partition(tp, starts[tp], stops[tp], deque()) for tp in assigned
                 if starts[tp] < stops[tp]]
        consumer.assign([p.tp for p in parts])
        for p in parts:
            consumer.seek(p.tp, p.next)
        return consumer, parts

    async def _merge(self, consumer: AIOKafkaConsumer, parts: list[_Partition],
                     since: float, until: float) -> AsyncIterator[ArchivedArticle]:
        seen: set[str] = set()
        bodies: set[str] = set()  # ids read with their page's body
        heads: list[tuple[int, bytes, int, ConsumerRecord]] = []
        for index, part in enumerate(parts):
            await _push_head(consumer, part, index, heads)
        since_ms, until_ms = since * 1000, until * 1000
        while heads:
            _, _, index, record = heapq.heappop(heads)
            await _push_head(consumer, parts[index], index, heads)
            if not since_ms <= record.timestamp < until_ms:
                continue
            try:
                article = topics.ArticleMessage.from_bytes(record.value).article
            except topics.MessageError:
                continue  # the workers dead-lettered it when it came
            if article.id in seen and (not article.body or article.id in bodies):
                continue
            seen.add(article.id)
            if article.body:
                bodies.add(article.id)
            yield ArchivedArticle(article, record.timestamp / 1000)


async def _offsets_at(consumer: AIOKafkaConsumer, assigned: list[TopicPartition],
                      at: float, ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Each partition's first offset whose record time is ``at`` or later (its end offset
    when there is none)."""
    if not assigned:
        return {}
    if at == math.inf:
        return dict(ends)
    if at <= 0:
        return dict(await consumer.beginning_offsets(assigned))
    found = await consumer.offsets_for_times({tp: int(at * 1000) for tp in assigned})
    return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in assigned}


async def _push_head(consumer: AIOKafkaConsumer, part: _Partition, index: int,
                     heads: list[tuple[int, bytes, int, ConsumerRecord]]) -> None:
    """Put the partition's next record on the merge heap, fetching a batch when needed;
    KafkaError when the partition gives nothing for ``_STALLED`` seconds."""
    deadline = time.monotonic() + _STALLED
    while not part.fetched and part.next < part.stop:
        batches = await consumer.getmany(part.tp, timeout_ms=1000, max_records=_BATCH)
        for record in batches.get(part.tp, ()):
            if record.offset < part.stop:
                part.fetched.append(record)
        position = await consumer.position(part.tp)
        if position > part.next:
            deadline = time.monotonic() + _STALLED
        part.next = position
        if time.monotonic() > deadline:
            raise KafkaError(f"{part.tp.topic}[{part.tp.partition}]: nothing read at offset "
                             f"{part.next} for {_STALLED:.0f} s (its end is {part.stop})")
    if part.fetched:
        record = part.fetched.popleft()
        heapq.heappush(heads, (record.timestamp, record.key or b"", index, record))
