"""The Kafka runtime's commands: ``newswatch poll`` and ``newswatch worker``, and the
Kafka side of ``newswatch status``. Part of the composition root (see monitor/cli.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.kafka import KafkaSettings

log = logging.getLogger("newswatch.poll")

OWNERSHIP_TICK = 1.0  # seconds between group heartbeats-by-poll of the feed registry


def kafka_settings(config: Config) -> KafkaSettings:
    """Cluster settings from the config, the SASL password from KAFKA_SASL_PASSWORD."""
    from monitor.kafka import KafkaSettings

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
        sasl_password=os.environ.get("KAFKA_SASL_PASSWORD") or None,
        ssl_cafile=k.ssl_cafile,
    )


class _NoFetchLog:
    """The Kafka runtime keeps no per-fetch history (health carries the last result)."""

    def log_fetch(self, e: Any, *, keep: int = 100) -> None:
        return None


async def poll_forever(config: Config, *, stop: asyncio.Event) -> None:
    """Poll the feeds this process owns and publish new articles to Kafka until ``stop``."""
    from monitor.fetch import Fetcher, FetchLimits
    from monitor.kafka import ArticleProducer, FeedOwnership, ensure_topics, reliable_producer
    from monitor.kafka_state import KafkaFeedState
    from monitor.poller import Poller

    settings = kafka_settings(config)
    await ensure_topics(settings)
    producer = reliable_producer(settings)
    await producer.start()
    ownership = FeedOwnership(settings)
    fetcher = Fetcher(limits=FetchLimits(total=config.fetch.timeout,
                                         max_bytes=config.fetch.max_bytes),
                      allow=config.fetch.allow)
    state = KafkaFeedState(settings, producer)
    try:
        await ownership.start()
        await state.load()
        poller = Poller(
            config.feeds, fetcher, health=state.health, seen=state.seen,
            fetch_log=_NoFetchLog(), sink=ArticleProducer(producer, settings.topic("articles")),
            owns=ownership.owns,
        )
        polling = asyncio.create_task(poller.run(stop))
        generation = ownership.generation
        log.info("polling: %d feed(s) configured; waiting for the group to assign feeds",
                 len(config.feeds))
        while not stop.is_set():
            await ownership.tick()
            if ownership.generation != generation:
                generation = ownership.generation
                await state.load()  # another poller may have polled these feeds
                poller.reload_schedule()
                owned = [f.name for f in config.feeds if ownership.owns(f.name)]
                log.info("feeds assigned to this poller: %s", ", ".join(owned) or "none")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=OWNERSHIP_TICK)
        await polling
    finally:
        await state.flush()
        await ownership.stop()
        await fetcher.close()
        await producer.stop()


def run_poll(config: Config) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await poll_forever(config, stop=stop)

    asyncio.run(main())
    return 0


def run_worker(config: Config, *, build_matcher: Any, notifiers: Any) -> int:
    """Start the faust worker (blocks until SIGINT/SIGTERM)."""
    from monitor.kafka import ensure_topics
    from streams import kafka_app

    settings = kafka_settings(config)
    asyncio.run(ensure_topics(settings))
    matcher = build_matcher()
    app = kafka_app.build_app(settings, matcher=lambda: matcher, notifiers=notifiers)
    kafka_app.run_worker(app)
    return 0


async def kafka_health(config: Config) -> dict[str, Any]:
    """The latest health record of every feed, from the compacted feed-health topic."""
    from monitor.kafka import read_compacted

    return await read_compacted(kafka_settings(config), "feed-health")
