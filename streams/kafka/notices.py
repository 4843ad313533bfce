"""Ops notices in the Kafka runtime: feed-health transitions from the pollers and rejected
rule edits from the workers, published to the matches topic like any match, so the worker
owning the notice's rule delivers it through the normal pipeline (rendered, retried,
recorded, deduplicated).

Once per transition, several pollers or not: a feed is polled by one poller at a time (its
registry partition's owner), which decides the transition on the announced state stored in
the compacted feed-health topic (``monitor.health.settle_notice``) and makes that write
durable before it publishes the notice, so a poller that takes the feed over (after a
rebalance or a restart) knows it was announced. A crash in between loses the notice rather
than repeating it, as in the embedded runtime.

Once per rejected edit, several workers or not: every worker's reloader sees the edit and
publishes the same notice (its article id derives from the text), keyed by the same rule
id, so the partition's owner decides the second copy as ``same_article``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiokafka import AIOKafkaProducer

from newswatch.streams.alerts import Match
from newswatch.streams.kafka.client import KafkaSettings, reliable_producer
from newswatch.streams.kafka.topics import MATCHES, MatchMessage

# Feed notices are not deduplicated by window in the embedded runtime (decided once per
# transition). In Kafka the worker may read a record twice (a rebalance before its commit):
# the rule state keeps the notice this long, so a re-read is a ``same_article``.
REREAD_WINDOW = 600.0


class NoticePublisher:
    """Publishes ops notices to the matches topic and returns once Kafka acknowledged them.
    ``before`` is awaited first (the poller's: its feed-health writes acknowledged)."""

    def __init__(self, producer: AIOKafkaProducer, settings: KafkaSettings, *,
                 before: Callable[[], Awaitable[None]] | None = None) -> None:
        self._producer = producer
        self._topic = settings.topic(MATCHES)
        self._before = before

    async def __call__(self, notice: Match) -> None:
        if self._before is not None:
            await self._before()
        message = MatchMessage(replace(notice, dedup_window=max(notice.dedup_window,
                                                                REREAD_WINDOW)))
        written = await self._producer.send(self._topic, key=message.key(),
                                            value=message.to_bytes())
        await written  # raises if the broker did not take it


async def publish_notice(settings: KafkaSettings, notice: Match) -> None:
    """Publish one notice with a producer of its own (the worker's rule reloader runs on
    its own event loop, apart from faust's producer)."""
    producer = reliable_producer(settings)
    await producer.start()
    try:
        await NoticePublisher(producer, settings)(notice)
    finally:
        await producer.stop()
