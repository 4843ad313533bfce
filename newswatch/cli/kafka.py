"""The Kafka runtime's commands: ``newswatch poll`` (fetch this process's share of the feeds
and publish new articles; the poller owning partition 0 of the feeds registry also takes
the clicks on alert buttons) and ``newswatch worker`` (the faust worker: match and
deliver, and apply clicks); plus the Kafka side of ``status --kafka``.

``newswatch.streams.kafka`` needs the optional ``kafka`` extra (aiokafka, faust): it is
imported inside the functions that use it, so every other command works without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from newswatch.cli.options import Commands, Context, add_command
from newswatch.cli.reload_notice import reload_reporter
from newswatch.cli.serving import new_metrics, serve_health, settle_heap, stop_on_signals
from newswatch.core import health_http
from newswatch.core.article import Article
from newswatch.core.config import Config
from newswatch.core.feedback import MappingFeedback
from newswatch.core.metrics import Metrics
from newswatch.core.state import FetchEvent
from newswatch.rules.matcher import Matcher
from newswatch.streams.alerts import Match
from newswatch.streams.interactive import ClickSource, HeldClickSource
from newswatch.streams.notices import rejection_notifier, transition_notifier
from newswatch.streams.reload import RuleReloader, compile_rules
from newswatch.streams.runtime import Runtime
from newswatch.streams.silences import configured_silences

if TYPE_CHECKING:  # imported lazily at run time: the Kafka extra, the network stack
    from newswatch.monitor.fetch import Fetcher
    from newswatch.monitor.poller import Poller
    from newswatch.streams.fulltext import FullText
    from newswatch.streams.kafka.feed_state import KafkaFeedState

log = logging.getLogger("newswatch.poll")

OWNERSHIP_TICK = 1.0  # seconds between group heartbeats-by-poll of the feed registry
# The poller that owns this partition of the feeds registry holds the Slack Socket Mode
# connection: one poller at a time, chosen by Kafka's group coordinator, and another one as
# soon as that poller stops or dies (docs/kafka.md, "Clicks on alert buttons").
CLICKS_PARTITION = 0
EXIT_FROZEN = 75  # EX_TEMPFAIL: restart me (systemd Restart=on-failure, Kubernetes)


def add_commands(commands: Commands) -> None:
    """Add ``poll`` and ``worker``."""
    poll = add_command(commands, "poll",
                       help="Kafka runtime: poll this process's share of the feeds")
    poll.set_defaults(handler=poll_command)
    worker = add_command(commands, "worker",
                         help="Kafka runtime: match and deliver (faust worker)")
    worker.set_defaults(handler=worker_command)


def poll_command(args: argparse.Namespace, context: Context) -> int:
    """Poll until SIGINT/SIGTERM, serving health and metrics when the config asks. Exit 2
    before anything starts when a Slack receiver is interactive and ``SLACK_APP_TOKEN``
    is missing (this poller may have to hold the socket)."""
    config = context.config(args)
    from newswatch.streams.receivers import slack_socket  # lazy: the network stack

    clicks = slack_socket(config, context.environ)

    async def run() -> None:
        stop = stop_on_signals()
        metrics = new_metrics(config)
        close_health = serve_health(config, metrics, loop=asyncio.get_running_loop(),
                                    ready=_kafka_ready(config))
        settle_heap()
        try:
            await poll_forever(config, stop=stop, metrics=metrics, environ=context.environ,
                               clicks=clicks)
        finally:
            close_health()

    asyncio.run(run())
    return 0


def worker_command(args: argparse.Namespace, context: Context) -> int:
    """Check the rules (exit 2 before faust starts), then run the worker until a signal."""
    config = context.config(args)
    receivers = frozenset(config.receivers)
    compile_rules(config.rules, receivers)  # fail fast, exit 2, before starting faust
    return run_worker(config, lambda: compile_rules(config.rules, receivers), context.environ)


class _NoFetchLog:
    """The Kafka runtime keeps no per-fetch history (health carries the last result)."""

    def log_fetch(self, e: FetchEvent, *, keep: int = 100) -> None:
        return None


async def poll_forever(config: Config, *, stop: asyncio.Event, metrics: Metrics | None = None,
                       environ: Mapping[str, str] = os.environ,
                       clicks: ClickSource | None = None) -> None:
    """Poll the feeds this process owns and publish new articles to Kafka until ``stop``;
    feed-health transitions become ops notices for the workers to deliver. With full text,
    this poller fetches its feeds' pages and publishes an article's body with it, or after
    its teaser when the page is late (docs/full-text.md). ``clicks`` (the Slack socket)
    runs while this poller owns ``CLICKS_PARTITION`` of the feeds registry, each click
    published for the worker owning its rule (``KafkaRuntime.click``)."""
    # lazy: the Kafka extra, and the network stack (aiohttp, feedparser): ~170 ms start-up
    from newswatch.monitor.fetch import Fetcher
    from newswatch.streams.fulltext import FullText
    from newswatch.streams.kafka.client import (
        FeedOwnership,
        ensure_topics,
        kafka_settings,
        keep_following,
        producer_publish,
        reliable_producer,
    )
    from newswatch.streams.kafka.feed_state import KafkaFeedState
    from newswatch.streams.kafka.pagehosts import PageHosts
    from newswatch.streams.kafka.runtime import KafkaRuntime

    settings = kafka_settings(config, environ)
    await ensure_topics(settings)
    producer = reliable_producer(settings)
    await producer.start()
    fetcher = Fetcher.for_config(config.fetch)
    ownership = FeedOwnership(settings)
    hosts = PageHosts(settings, producer, owned=lambda: ownership.partitions,
                      generation=lambda: ownership.generation)
    state = KafkaFeedState(settings, producer, owns=ownership.owns, owns_page=hosts.owns)
    share = _Share(ownership, state)
    # the announced feed state durable before each notice: never announced twice
    runtime = KafkaRuntime(settings, producer_publish(producer), before_notice=state.flush)
    # each site's pages fetched by one poller, the site's owner: the others hand them over
    full_text = FullText.for_config(config, fetcher, cache=state.pages, stats=state.page_stats,
                                    counts=share.owns, hand_over=hosts)
    serving: asyncio.Task[None] | None = None
    if full_text is not None:
        text_stage = full_text
        serving = asyncio.create_task(keep_following(
            lambda: hosts.serve(lambda article: text_stage.serve_request(article, runtime.take)),
            what="serving the pages handed over", logger=log, after=5.0))
    held = HeldClickSource(clicks, runtime.click) if clicks is not None else None
    try:
        await share.ownership.start()
        await state.load()
        poller = _poller(config, fetcher, state, share, runtime, full_text, metrics)
        polling = asyncio.create_task(poller.run(stop))
        log.info("polling: %d feed(s) configured; waiting for the group to assign feeds",
                 len(config.feeds))
        while not stop.is_set():
            await share.follow(poller, config)
            if held is not None:
                await held.hold(CLICKS_PARTITION in share.ownership.partitions)
            if full_text is not None:  # this poller's feeds' failed pages, when due
                full_text.start_retries(runtime.take)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=OWNERSHIP_TICK)
        await polling
    finally:
        if serving is not None:  # requests being handled stay for the next owner
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        if full_text is not None:  # late pages dropped: their teasers were published
            await full_text.close()
        if held is not None:
            await held.release()
        await state.flush()
        await share.ownership.stop()
        await fetcher.close()
        await producer.stop()


def _poller(config: Config, fetcher: Fetcher, state: KafkaFeedState, share: _Share,
            runtime: Runtime, full_text: FullText | None, metrics: Metrics | None) -> Poller:
    """The Poller of ``newswatch poll`` over the feed state in Kafka, publishing through
    ``runtime``; its articles go through the full-text stage first when there is one."""
    from newswatch.monitor.poller import Poller  # lazy: the network stack

    async def take(articles: Sequence[Article]) -> None:
        if full_text is None:
            await runtime.take(articles)
        else:
            await full_text.take(articles, runtime.take)

    return Poller(
        config.feeds, fetcher, health=state.health, seen=state.seen,
        fetch_log=_NoFetchLog(), sink=take, owns=share.owns, metrics=metrics,
        on_transition=transition_notifier(
            runtime.notify, config.ops,
            metrics.observe_notice if metrics is not None else None),
    )


class _Share:
    """This poller's share of the feeds: what the group assigned, once its feed state is
    loaded. Polled before, with the previous owner's health unknown, a feed would announce
    again what that owner announced."""

    def __init__(self, ownership: Any, state: Any) -> None:
        self.ownership = ownership  # FeedOwnership, KafkaFeedState: the Kafka extra
        self._state = state
        self._loaded = ownership.generation  # the assignment whose state is loaded

    def owns(self, feed: str) -> bool:
        return bool(self._loaded == self.ownership.generation and self.ownership.owns(feed))

    async def follow(self, poller: Any, config: Config) -> None:
        """Keep the group membership alive; after a reassignment, load the feed state
        (another poller may have polled these feeds) before polling them."""
        await self.ownership.tick()
        generation = self.ownership.generation
        if generation != self._loaded:
            await self._state.load()
            poller.reload_schedule()
            self._loaded = generation
            owned = [f.name for f in config.feeds if self.ownership.owns(f.name)]
            log.info("feeds assigned to this poller: %s", ", ".join(owned) or "none")


def _kafka_ready(config: Config) -> dict[str, health_http.Check]:
    """/readyz of the Kafka commands: the cluster answers."""
    return {"kafka": health_http.kafka_reachable(config.kafka.bootstrap)}


def watch_rules_in_thread(
    reloader: RuleReloader, started: Callable[[], Awaitable[None]] | None = None,
) -> RuleReloader:
    """Hot reload for the worker: ``reloader`` (quiet for 1 s, then load, as in ``newswatch
    run``) runs on its own event loop in a daemon thread, after ``started``, so faust's
    loop is never blocked by a rule compile or a reload's replay. The worker reads
    ``reloader.current`` for every article."""

    async def watch() -> None:
        if started is not None:
            await started()
        await reloader.run(asyncio.Event())

    threading.Thread(target=asyncio.run, args=(watch(),), name="newswatch-rule-reload",
                     daemon=True).start()
    return reloader


def worker_reloader(config: Config, build_matcher: Callable[[], Matcher],
                    environ: Mapping[str, str]) -> RuleReloader:
    """The worker's rule reloader, watching in its thread: a rejected edit and an accepted
    one (with its difference over the last day of the articles topic) are ops notices, and
    the rule set's state is published to the rules-status topic for ``status --kafka``
    (at start and after every reload). Every worker of the group does the same; the
    notices are deduplicated by the owner of their partition."""
    from newswatch.streams.kafka.client import KafkaError, kafka_settings  # the Kafka extra
    from newswatch.streams.kafka.runtime import publish_notice, publish_rules_status

    settings = kafka_settings(config, environ)
    status: dict[str, Any] = {}

    async def notify(notice: Match) -> None:
        await publish_notice(settings, notice)

    async def record() -> None:
        try:
            await publish_rules_status(settings, status.get("rules", {}))
        except (KafkaError, OSError) as error:  # the rules are in force; `status` lacks them
            log.warning("cannot publish the rule set's status: %s", error)

    rejected = rejection_notifier(notify, config.ops)
    reporter = reload_reporter(config, notify, kafka=True, environ=environ)

    async def on_rejected(text: str) -> None:
        await rejected(text)
        await record()

    async def on_reloaded(before: Matcher, after: Matcher) -> str | None:
        summary = await reporter(before, after) if reporter is not None else None
        status["rules"] = {**status.get("rules", {}), "difference": summary}
        await record()
        return summary

    reloader = RuleReloader(config.rules, build_matcher(), build=build_matcher, status=status,
                            on_rejected=on_rejected, on_reloaded=on_reloaded)
    return watch_rules_in_thread(reloader, started=record)


def exit_frozen(seconds: float) -> None:
    """The worker was frozen long enough to have been replaced in its group: exit before
    it sends or writes anything (streams/kafka/fence.py); its supervisor starts it again."""
    log.critical("worker frozen for %.1fs, longer than its group session allows: exiting "
                 "(code %d) so that nothing it had in hand is sent twice", seconds, EXIT_FROZEN)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_FROZEN)


def run_worker(config: Config, build_matcher: Callable[[], Matcher],
               environ: Mapping[str, str] = os.environ) -> int:
    """Start the faust worker (blocks until SIGINT/SIGTERM)."""
    # lazy: the Kafka extra, and the network stack (aiohttp, slack_sdk): ~170 ms start-up
    from newswatch.streams.kafka import worker as kafka_worker
    from newswatch.streams.kafka.client import ensure_topics, kafka_settings
    from newswatch.streams.kafka.fence import FreezeFence
    from newswatch.streams.receivers import build_notifiers, mute_durations

    # The answers to clicks an alert keeps when its source count is updated come from the
    # worker's feedback table, bound to it by build_app.
    feedback = MappingFeedback()
    notifiers = build_notifiers(config, environ, feedback=feedback.lines)
    settings = kafka_settings(config, environ)
    asyncio.run(ensure_topics(settings))
    reloader = worker_reloader(config, build_matcher, environ)
    metrics = new_metrics(config, process=True)
    fence = FreezeFence(limit=kafka_worker.FENCE_LIMIT, on_frozen=exit_frozen).start()
    app = kafka_worker.build_app(settings, matcher=lambda: reloader.current, notifiers=notifiers,
                                 metrics=metrics, fence=fence.check,
                                 silences=configured_silences(config.silences),
                                 mutes=mute_durations(config), feedback=feedback,
                                 redrive_after=config.kafka.redrive_after, ops=config.ops)
    # faust runs on the loop we give it, so the same loop-stall watchdog as `run` and `poll`
    # backs /healthz (a stall appears only once the loop runs: probes need an initial delay
    # covering table recovery).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    close_health = serve_health(config, metrics, loop=loop, ready=_kafka_ready(config))
    settle_heap()
    try:
        kafka_worker.run_worker(app, loop=loop)
    finally:
        close_health()
    return 0


async def kafka_status(config: Config, environ: Mapping[str, str] = os.environ
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The latest health record of every feed (the compacted feed-health topic) and the
    workers' rule set state (the rules-status topic; empty before a worker started), with
    the rules told blind under ``blind``."""
    from newswatch.streams.kafka.blind import BLIND_KEY
    from newswatch.streams.kafka.client import kafka_settings, read_compacted  # Kafka extra
    from newswatch.streams.kafka.topics import FEED_HEALTH, RULES_STATUS

    settings = kafka_settings(config, environ)
    health = await read_compacted(settings, FEED_HEALTH)
    rules = await read_compacted(settings, RULES_STATUS)
    blind = {key.removeprefix(BLIND_KEY): value for key, value in rules.items()
             if key.startswith(BLIND_KEY)}
    return health, {**dict(rules.get("rules") or {}), "blind": blind}
