"""The Kafka runtime's commands: ``newswatch poll`` and ``newswatch worker``, and the
Kafka side of ``newswatch status``. Part of the composition root (see newswatch/cli/main.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newswatch.core.config import Config
    from newswatch.streams.kafka.client import KafkaSettings

log = logging.getLogger("newswatch.poll")

OWNERSHIP_TICK = 1.0  # seconds between group heartbeats-by-poll of the feed registry


def kafka_settings(config: Config) -> KafkaSettings:
    """Cluster settings from the config, the SASL password from KAFKA_SASL_PASSWORD."""
    from newswatch.streams.kafka.client import KafkaSettings

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


async def poll_forever(config: Config, *, stop: asyncio.Event, metrics: Any = None) -> None:
    """Poll the feeds this process owns and publish new articles to Kafka until ``stop``."""
    from newswatch.monitor.fetch import Fetcher, FetchLimits
    from newswatch.monitor.poller import Poller
    from newswatch.streams.kafka.client import (
        ArticleProducer,
        FeedOwnership,
        ensure_topics,
        reliable_producer,
    )
    from newswatch.streams.kafka.feed_state import KafkaFeedState

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
            owns=ownership.owns, metrics=metrics,
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


def _health(config: Config, loop: asyncio.AbstractEventLoop | None,
            registry: Any = None) -> Any:
    """With ``metrics:`` in the config, serve /healthz (event loop, when given), /readyz
    (Kafka reachable) and /metrics (``registry``, else process metrics) on the metrics port;
    returns a closer."""
    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

    from newswatch.core import health_http

    if config.metrics is None:
        return lambda: None
    if registry is None:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    watchdog = health_http.LoopWatchdog(loop).start() if loop is not None else None
    live: dict[str, health_http.Check] = (
        {"loop": watchdog.check} if watchdog is not None
        else {"process": lambda: (True, "health thread answering")})
    server = health_http.serve(port=config.metrics.port, host=config.metrics.host, live=live,
                               registry=registry,
                               ready={"kafka": health_http.kafka_reachable(
                                   config.kafka.bootstrap)})
    log.info("health on http://%s:%d/healthz and /readyz", config.metrics.host, server.port)

    def close() -> None:
        server.close()
        if watchdog is not None:
            watchdog.stop()

    return close


def run_poll(config: Config) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        metrics = None
        if config.metrics is not None:
            from prometheus_client import CollectorRegistry

            from newswatch.core.metrics import Metrics

            metrics = Metrics(CollectorRegistry())
        close_health = _health(config, loop, metrics.registry if metrics else None)
        try:
            await poll_forever(config, stop=stop, metrics=metrics)
        finally:
            close_health()

    asyncio.run(main())
    return 0


def watch_rules_in_thread(config: Config, build_matcher: Any) -> Any:
    """Hot reload for the worker: a ``RuleReloader`` (same rules as ``newswatch run``: quiet
    for 1 s, then load; a rejected edit keeps the previous rules and is logged) on its own
    event loop in a daemon thread, so faust's loop is never blocked by a rule compile. The
    worker reads ``reloader.current`` for every article."""
    import threading

    from newswatch.streams.reload import RuleReloader

    reloader = RuleReloader(config.rules, build_matcher(), build=build_matcher, status={})

    def watch() -> None:
        asyncio.run(reloader.run(asyncio.Event()))

    threading.Thread(target=watch, name="newswatch-rule-reload", daemon=True).start()
    return reloader


EXIT_FROZEN = 75  # EX_TEMPFAIL: restart me (systemd Restart=on-failure, Kubernetes)


def exit_frozen(seconds: float) -> None:
    """The worker was frozen long enough to have been replaced in its group: exit before
    it sends or writes anything (streams/kafka/fence.py); its supervisor starts it again."""
    log.critical("worker frozen for %.1fs, longer than its group session allows: exiting "
                 "(code %d) so that nothing it had in hand is sent twice", seconds, EXIT_FROZEN)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_FROZEN)


def run_worker(config: Config, *, build_matcher: Any, notifiers: Any) -> int:
    """Start the faust worker (blocks until SIGINT/SIGTERM)."""
    from newswatch.streams.kafka import worker as kafka_worker
    from newswatch.streams.kafka.client import ensure_topics

    settings = kafka_settings(config)
    asyncio.run(ensure_topics(settings))
    reloader = watch_rules_in_thread(config, build_matcher)
    metrics = None
    if config.metrics is not None:
        from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

        from newswatch.core.metrics import Metrics

        metrics = Metrics(CollectorRegistry())
        ProcessCollector(registry=metrics.registry)
        PlatformCollector(registry=metrics.registry)
    from newswatch.streams.kafka.fence import FreezeFence

    fence = FreezeFence(limit=kafka_worker.FENCE_LIMIT, on_frozen=exit_frozen).start()
    app = kafka_worker.build_app(settings, matcher=lambda: reloader.current, notifiers=notifiers,
                              metrics=metrics, fence=fence.check)
    # faust runs on the loop we give it, so the same loop-stall watchdog as `run` and `poll`
    # backs /healthz (a stall appears only once the loop runs: probes need an initial delay
    # covering table recovery).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    close_health = _health(config, loop, metrics.registry if metrics else None)
    try:
        kafka_worker.run_worker(app, loop=loop)
    finally:
        close_health()
    return 0


async def kafka_health(config: Config) -> dict[str, Any]:
    """The latest health record of every feed, from the compacted feed-health topic."""
    from newswatch.streams.kafka.client import read_compacted

    return await read_compacted(kafka_settings(config), "feed-health")
