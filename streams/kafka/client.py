"""Kafka plumbing shared by the poller and the worker: client settings, topic creation,
the article producer, reading compacted topics, and feed ownership.

The topics and the messages they carry are defined in ``newswatch.streams.kafka.topics``.
Producers that must not lose articles use ``acks="all"`` and ``enable_idempotence=True``
(aiokafka's defaults are weaker; docs/reliability.md item 2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError as KafkaError  # re-exported: the CLI catches it
from aiokafka.structs import ConsumerRecord

from newswatch.core.config import Config
from newswatch.core.pagecache import PAGE_TTL
from newswatch.streams.kafka import topics

COMPACTED = {"cleanup.policy": "compact"}
# The ledger is read from its first offset at every rebalance: roll segments often so the
# cleaner keeps it to the entries still pending (and tombstones for 10 minutes, so a
# reader that saw an entry also sees it done).
LEDGER_CONFIG = {**COMPACTED, "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1",
                 "delete.retention.ms": "600000"}
# The page cache: compacted (one outcome per URL) and deleted after PAGE_TTL, so the
# outcomes of pages no poller prunes (a feed removed, its poller gone) do not stay for ever;
# segments roll daily so the deletion follows within a day.
PAGES_CONFIG = {"cleanup.policy": "compact,delete", "retention.ms": str(int(PAGE_TTL * 1000)),
                "segment.ms": "86400000"}


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach the cluster and shape the topics. ``sasl_password`` comes from the
    environment (KAFKA_SASL_PASSWORD), never from the config file."""

    bootstrap: str = "127.0.0.1:9092"
    prefix: str = "newswatch."
    partitions: int = 6
    replication: int = 1
    client_id: str = "newswatch"
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    archive_days: int = 0  # the articles topic's retention at creation (0: the broker's)

    def topic(self, name: str) -> str:
        """The full name of a topic or group named in ``newswatch.streams.kafka.topics``."""
        return f"{self.prefix}{name}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments common to every aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.sasl_mechanism:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return options


def kafka_settings(config: Config, environ: Mapping[str, str] = os.environ) -> KafkaSettings:
    """The settings of the config's ``kafka:``, the SASL password from
    ``KAFKA_SASL_PASSWORD`` in ``environ`` (the process environment by default)."""
    k = config.kafka
    return KafkaSettings(
        bootstrap=k.bootstrap,
        prefix=k.topic_prefix,
        partitions=k.partitions,
        replication=k.replication,
        client_id=k.client_id,
        security_protocol=k.security_protocol,
        sasl_mechanism=k.sasl_mechanism,
        sasl_username=k.sasl_username,
        sasl_password=environ.get("KAFKA_SASL_PASSWORD") or None,
        ssl_cafile=k.ssl_cafile,
        archive_days=config.archive.days,
    )


def archive_retention_ms(days: int) -> int:
    """The articles topic's ``retention.ms`` that keeps ``days`` days of archive."""
    return days * 86_400_000


def topic_specs(settings: KafkaSettings) -> list[NewTopic]:
    """Every topic of ``topics.ALL``: ``partitions`` and ``replication`` of the settings,
    compacted for ``topics.COMPACTED``; the articles topic, which is the archive, and the
    decisions topic (the audit trail) keep ``archive_days`` days."""
    p, r = settings.partitions, settings.replication

    def configs(name: str) -> dict[str, str]:
        if name == topics.LEDGER:
            return LEDGER_CONFIG
        if name == topics.PAGES:
            return PAGES_CONFIG
        if name in (topics.ARTICLES, topics.DECISIONS) and settings.archive_days > 0:
            return {"retention.ms": str(archive_retention_ms(settings.archive_days))}
        return COMPACTED if name in topics.COMPACTED else {}

    return [NewTopic(settings.topic(name), p, r, topic_configs=configs(name))
            for name in topics.ALL]


_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(settings: KafkaSettings, *, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (idempotent), then wait until the broker's
    metadata shows every partition with a leader: CreateTopics returns when the controller
    committed the topic, a moment before produce and metadata requests see it."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        specs = topic_specs(settings)
        existing = set(await admin.list_topics())
        missing = [t for t in specs if t.name not in existing]
        if missing:
            response = await admin.create_topics(missing)
            errors = [
                e for e in response.to_object()["topic_errors"]
                if e["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if errors:
                raise KafkaError(f"cannot create topics: {errors}")
        await wait_for_topics(admin, {t.name: t.num_partitions for t in specs}, timeout)
    finally:
        await admin.close()


async def wait_for_topics(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], timeout: float = 30.0
) -> None:
    """Wait until the broker's metadata shows each topic with (at least) the given number
    of partitions, every one with a leader; KafkaError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(list(partitions))
        ready = {
            t["topic"]
            for t in described
            if t["error_code"] == 0
            and len(t["partitions"]) >= partitions[t["topic"]]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
        }
        if ready == set(partitions):
            return
        if time.monotonic() > deadline:
            late = sorted(set(partitions) - ready)
            raise KafkaError(f"topics not ready after {timeout:.0f}s: {late}")
        await asyncio.sleep(0.05)  # metadata propagation has no event to wait on


def feed_partition(feed: str, partitions: int) -> int:
    """The registry partition owning a feed: stable across processes and restarts."""
    return zlib.crc32(feed.encode("utf-8")) % partitions


def reliable_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    """A producer that loses nothing it acknowledged: acks from all in-sync replicas, and
    idempotence so a retried batch is not written twice."""
    return AIOKafkaProducer(
        **settings.client_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


# Writes one record (topic full name, key, value; a None value is a tombstone) and returns
# once Kafka acknowledged it; raises when the broker did not take it. Each process passes
# its own producer's: ``producer_publish`` here, faust's in the worker.
Publish = Callable[[str, bytes, bytes | None], Awaitable[None]]


def producer_publish(producer: AIOKafkaProducer) -> Publish:
    """``Publish`` over an aiokafka producer (a ``reliable_producer``, started)."""

    async def publish(topic: str, key: bytes, value: bytes | None) -> None:
        written = await producer.send(topic, key=key, value=value)
        await written  # raises if the broker did not take it

    return publish


async def topic_partitions(settings: KafkaSettings, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (a full name); none when it does not exist."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for t in described if t["error_code"] == 0
                  for p in t["partitions"])


async def stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer. aiokafka 0.14 lets the CancelledError of its own internal task
    escape from stop() when the consumer is stopped soon after it started; only a
    cancellation of *our* task may propagate."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def keep_following(follow: Callable[[], Awaitable[None]], *, what: str,
                         logger: logging.Logger, after: float,
                         on_failure: Callable[[], None] = lambda: None) -> None:
    """Run ``follow`` (a process's reading of a topic) again and again until cancelled:
    when it fails (trouble with the cluster), log a warning naming ``what``, call
    ``on_failure`` (forget what was read: it is read again from the first offset) and
    start over ``after`` seconds later."""
    while True:
        try:
            await follow()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning("%s stopped (%r); starting over in %.0fs", what, error, after)
            on_failure()
            await asyncio.sleep(after)


async def follow_topic(settings: KafkaSettings, topic: str,
                       apply: Callable[[bytes | None, bytes | None], None],
                       ready: asyncio.Event, *, recheck: float) -> None:
    """Read ``topic`` (a full name) from its first offset, handing each record's key and
    value to ``apply`` in offset order, and keep reading what comes, until cancelled;
    ``ready`` is set once the end offsets seen at the start are reached. A topic that does
    not exist yet: ``ready`` set, and the call returns after ``recheck`` seconds (run it
    again, with ``keep_following``)."""
    partitions = await topic_partitions(settings, topic)
    if not partitions:
        ready.set()
        await asyncio.sleep(recheck)
        return
    assigned = [TopicPartition(topic, p) for p in partitions]
    consumer = AIOKafkaConsumer(**settings.client_options(), enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    try:
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while True:
            batches = await consumer.getmany(*assigned, timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    apply(record.key, record.value)
            if not ready.is_set() and all(
                    [await consumer.position(tp) >= ends[tp] for tp in assigned]):
                ready.set()
    finally:
        await stop_quietly(consumer)


async def read_topic(settings: KafkaSettings, topic: str, *, since: float | None = None
                     ) -> AsyncIterator[ConsumerRecord]:
    """Every record of ``topic`` (a full name) from its first offset (with ``since``: its
    first record at or after that Unix time, by the broker's time index) to the end
    offsets seen when reading starts, in offset order within each partition; nothing when
    the topic does not exist. Reads without a consumer group (commits nothing)."""
    assigned = [TopicPartition(topic, p) for p in await topic_partitions(settings, topic)]
    if not assigned:
        return
    consumer = AIOKafkaConsumer(
        **settings.client_options(), enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends: Mapping[TopicPartition, int] = await consumer.end_offsets(assigned)
        if since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(since * 1000) for tp in assigned})
            for tp in assigned:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        remaining = {tp for tp in assigned if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await stop_quietly(consumer)


async def read_compacted(
    settings: KafkaSettings, name: str, *, key: Callable[[bytes], str] = bytes.decode,
    keep: Callable[[Any], bool] | None = None,
) -> dict[str, Any]:
    """The latest value per key of a compacted topic (a tombstone removes the key); keys
    decoded with ``key`` (UTF-8 text by default), values as JSON. With ``keep``, only the
    keys whose latest value it keeps (filtered while reading: memory holds those only)."""
    latest: dict[str, Any] = {}
    async for record in read_topic(settings, settings.topic(name)):
        if record.key is None:
            continue
        ident = key(record.key)
        value = None if record.value is None else json.loads(record.value)
        if value is None or (keep is not None and not keep(value)):
            latest.pop(ident, None)
        else:
            latest[ident] = value
    return latest


class FeedOwnership:
    """Which feeds this poller owns, decided by Kafka's group coordinator.

    Every poller joins the consumer group ``<prefix>pollers`` on the ``feeds`` registry
    topic. The partitions it is assigned are the feeds it polls (``feed_partition``); when
    a poller dies or joins, the group rebalances and its feeds move. ``run()`` keeps the
    membership alive (aiokafka heartbeats, plus a poll loop within max.poll.interval).
    """

    def __init__(self, settings: KafkaSettings, *, session_timeout_ms: int = 10000) -> None:
        self._settings = settings
        self._owned: frozenset[int] = frozenset()
        self._consumer = AIOKafkaConsumer(
            **settings.client_options(),
            group_id=settings.topic(topics.POLLER_GROUP),
            enable_auto_commit=False,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 5, 100),
        )
        self.generation = 0

    def owns(self, feed: str) -> bool:
        return feed_partition(feed, self._settings.partitions) in self._owned

    @property
    def partitions(self) -> frozenset[int]:
        return self._owned

    async def start(self) -> None:
        from aiokafka.abc import ConsumerRebalanceListener

        ownership = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                ownership._owned = frozenset()

            async def on_partitions_assigned(self, assigned: Any) -> None:
                ownership._owned = frozenset(tp.partition for tp in assigned)
                ownership.generation += 1

        await self._consumer.start()
        self._consumer.subscribe([self._settings.topic(topics.FEEDS)], listener=Listener())

    async def tick(self) -> None:
        """Keep the group membership alive; call at least every few seconds."""
        await self._consumer.getmany(timeout_ms=200)

    async def stop(self) -> None:
        await stop_quietly(self._consumer)  # leaves the group: its feeds move at once
