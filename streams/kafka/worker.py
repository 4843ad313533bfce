"""The Kafka runtime's worker: a faust app running the same core as the embedded runtime.

Two agents:

- ``match``: articles topic → ``Matcher.match`` → matches topic, keyed by rule id.
- ``deliver``: matches topic → ``Pipeline``, with the per-rule dedup state in the faust
  Table ``dedup`` (changelog-backed; keyed by rule id, so co-partitioned with the matches
  topic) and dead letters in the Table ``dead-letters``.

faust acks an event whose agent raised (docs/reliability.md item 3), so both agents catch every
failure and send the event to the dead-letter topic with the reason: a poison message never
stalls a partition and is never silently dropped.

Clicks on alert buttons (``ClickMessage``, from the poller holding the Slack socket) are
applied by the same agent, in the worker owning the rule's partition, with the same
``ClickHandler`` as the embedded runtime: the record in the faust Table ``feedback``
(co-partitioned like ``dedup``, so a re-rendered alert keeps its answer lines), a mute in
the compacted ``silences`` topic, which every worker reads whole for its decisions
(``newswatch.streams.kafka.silences``).

Maintenance runs per rule, in the worker owning the rule's partition: a timer sends a
``TickMessage`` through the matches topic for each rule with a digest due or an outbox that
stays full (``newswatch.streams.kafka.ticks``), and the deliver agent runs
``Pipeline.tick_rule`` for it, inside the event, as faust requires for table writes: due
digests are sealed and sent, deliveries a crashed or replaced worker left pending are sent.

The app runs on faust's consumer as repaired in ``newswatch.streams.kafka.consumer``, which
also states the at-least-once protocol the agents take part in, and a stall guard round
every ``GUARD_EVERY`` seconds. Topics and messages: ``newswatch.streams.kafka.topics``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import faust

from newswatch.core.feedback import MappingFeedback
from newswatch.core.logs import take_over_logging
from newswatch.core.metrics import MeteredAudit, Metrics
from newswatch.core.state import Decision
from newswatch.rules.matcher import Matcher
from newswatch.streams.feedback import MuteDurations
from newswatch.streams.interactive import ClickHandler
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.blind import WorkerBlindness
from newswatch.streams.kafka.client import KafkaSettings, Publish
from newswatch.streams.kafka.consumer import (
    GUARD_EVERY,
    STALL_AFTER,
    RepairedTransport,
    api_owners,
    check_private_api,
    guard_round,
)
from newswatch.streams.kafka.decisions import DecisionTopic
from newswatch.streams.kafka.fence import FencedMapping
from newswatch.streams.kafka.ledger import (
    REDRIVE_AFTER,
    Ledger,
    Reconciler,
    article_key,
    click_key,
    match_key,
    pending_match,
)
from newswatch.streams.kafka.runtime import KafkaRuntime
from newswatch.streams.kafka.silences import READY_WITHIN, SilenceReplica
from newswatch.streams.kafka.stallguard import StallGuard
from newswatch.streams.kafka.ticks import TICK_EVERY
from newswatch.streams.kafka.topics import (
    ArticleMessage,
    ClickMessage,
    MatchesMessage,
    MatchMessage,
    PoisonRecord,
    ReplayMessage,
    ResumeMessage,
    Stage,
    TickMessage,
    decode_matches,
)
from newswatch.streams.matching import Matching
from newswatch.streams.notifiers import Notifier
from newswatch.streams.pipeline import Pipeline
from newswatch.streams.receivers import slack_answers
from newswatch.streams.silences import Silence, SilenceStore

log = logging.getLogger("newswatch.worker")

# faust's defaults (60 s session, 3 s heartbeat) leave a crashed worker's partitions
# unprocessed for a minute, and a worker restarted within that minute waits for the whole
# group to time the dead member out: 10 s bounds the stall after a kill -9.
SESSION_TIMEOUT = 10.0
HEARTBEAT_INTERVAL = 1.0
# A worker frozen longer than this may have been replaced in the group: it must not send
# or write state any more (streams/kafka/fence.py). Below the session timeout, by two heartbeats.
FENCE_LIMIT = SESSION_TIMEOUT - 2 * HEARTBEAT_INTERVAL


class _LogDecisions:
    """The audit trail of the Kafka runtime: one structured log line per decision, and a
    record of the decisions topic (streams/kafka/decisions.py)."""

    def __init__(self, topic: DecisionTopic) -> None:
        self._topic = topic

    def log_decision(self, d: Decision) -> None:
        self._topic.log_decision(d)
        log.info(
            "decision rule=%s article=%s verdict=%s receiver=%s result=%s reason=%s",
            d.rule_id, d.article, d.verdict, d.receiver, d.result, d.reason,
            # not article_id: that key holds the article's id in every line, and this is
            # its URL (the delivery stage's own line carries the id)
            extra={"rule_id": d.rule_id, "verdict": d.verdict, "receiver": d.receiver},
        )


def _broker_credentials(settings: KafkaSettings) -> Any:
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=settings.client_options().get("ssl_context"),
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(settings.client_options()["ssl_context"])
    return None


def _faust_app(settings: KafkaSettings, metrics: Metrics | None) -> faust.App:
    """The faust app of the worker group, on the repaired consumer."""
    app = faust.App(
        settings.topic(topics.WORKER_APP),
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=_broker_credentials(settings),
        store="memory://",
        # faust makes a folder for table files even with the memory store: not in the
        # directory the worker was started from
        datadir=str(Path(tempfile.gettempdir())
                    / f"newswatch-faust-{settings.topic(topics.WORKER_APP)}"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,  # faust declares its changelog and assignor topics
        # No standby copies: a standby applies every write of the other workers' rule
        # states (each a whole state) and doubles the heap the collector walks, for a
        # faster hand-over only within a running worker (the memory store reads the
        # changelog again at every start anyway). docs/performance.md, "Where the time goes".
        table_standby_replicas=0,
        producer_acks=-1,
        broker_session_timeout=SESSION_TIMEOUT,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    transport = RepairedTransport(app.conf.broker_consumer, app)
    transport.metrics = metrics
    app.transport = transport
    return app


def build_app(
    settings: KafkaSettings,
    *,
    matcher: Callable[[], Matcher],
    notifiers: Mapping[str, Notifier],
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
    stall_after: float = STALL_AFTER,
    fence: Callable[[], None] | None = None,
    silences: Sequence[Silence] = (),
    mutes: Callable[[str], MuteDurations] = lambda receiver: MuteDurations(),
    feedback: MappingFeedback | None = None,
    redrive_after: float = REDRIVE_AFTER,
    ops: str | None = None,
) -> faust.App:
    """The worker app. Start it with ``run_worker``. With ``metrics``, the agents count
    matches, decisions and dead letters, and the stall guard sets lag and commit age.
    ``fence`` (``FreezeFence.check``) is called before every send and every table write;
    ``silences`` are the config's (the stored ones are read from the silences topic);
    ``mutes`` gives a receiver's mute durations; ``feedback`` is bound to the worker's
    feedback table (the notifiers read an alert's answer lines from it); the ledger's
    reconciler re-drives what stays pending ``redrive_after`` seconds; ``ops`` (the
    config's ops receiver) is told when a rule goes blind or sees again."""
    app = _faust_app(settings, metrics)
    articles = app.topic(settings.topic(topics.ARTICLES), partitions=settings.partitions)
    matches = app.topic(settings.topic(topics.MATCHES), partitions=settings.partitions)
    # JSON keys and values: rule ids come back as str after a changelog recovery.
    json_schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
    # Rule states as JSON text (DeliveryStore's ``encoded``): the same changelog records
    # as with JSON values, but the table's copies are bytes the collector never walks.
    dedup = app.Table(topics.DEDUP_TABLE, default=None, partitions=settings.partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="raw"))
    dead = app.Table(topics.DEAD_LETTERS_TABLE, default=None, partitions=settings.partitions,
                     schema=json_schema)
    publish = _faust_publish(app)
    stored = SilenceReplica(settings, publish)
    in_force = SilenceStore(stored, silences)
    decisions = DecisionTopic(settings, _faust_publish(app, wait=False))
    pipeline = _pipeline(dedup, dead, notifiers, metrics=metrics, clock=clock, fence=fence,
                         silences=in_force.active, decisions=decisions)
    blindness = WorkerBlindness(settings, publish, matcher=matcher, pipeline=pipeline,
                                rows=lambda: [str(key) for key in list(dedup.keys())],
                                ops=ops, clock=clock)
    feedback = feedback if feedback is not None else MappingFeedback()
    feedback.bind(_fenced(app.Table(topics.FEEDBACK_TABLE, default=None,
                                    partitions=settings.partitions, schema=json_schema), fence))
    agents = _Agents(
        matching=Matching(matcher, metrics),
        pipeline=pipeline,
        clicks=ClickHandler(
            rule_exists=lambda rule_id: any(r.id == rule_id for r in matcher().rules),
            mutes=mutes, silences=in_force, feedback=feedback,
            answers=slack_answers(notifiers), clock=clock, durable=stored.flush),
        silences_read=stored.ready, blindness=blindness,
        ledger=Ledger(settings, publish, mark=_faust_publish(app, wait=False)),
        matches=matches,
        dlq=app.topic(settings.topic(topics.ALERTS_DLQ), partitions=settings.partitions),
        clock=clock, metrics=metrics)

    _add_agents(app, agents, articles, matches, notifiers)
    _add_followers(app, Reconciler(settings, publish, after=redrive_after, metrics=metrics,
                                   clock=clock), stored, blindness)
    _add_tick_timer(app, KafkaRuntime(
        settings, publish,
        rules=lambda: [(str(key), pipeline.rule_state(str(key))) for key in list(dedup.keys())],
        clock=clock, blind=blindness.wants))
    _add_guard_timer(app, StallGuard(after=stall_after),
                     {articles.get_topic_name(), matches.get_topic_name()}, metrics)
    return app


def _add_agents(app: faust.App, agents: _Agents, articles: Any, matches: Any,
                notifiers: Mapping[str, Notifier]) -> None:
    """The ``match`` agent on ``articles``, the ``deliver`` agent on ``matches`` (faust
    topics), and the receivers closed once they have stopped."""

    @app.agent(articles)
    async def match(stream: Any) -> None:
        async for event in stream.events():
            await agents.match(event.key, event.value)

    @app.agent(matches)
    async def deliver(stream: Any) -> None:
        async for event in stream.events():
            await agents.deliver(event.key, event.value)

    @app.on_before_shutdown.connect
    async def close_notifiers(sender: Any, /, *_: Any, **__: Any) -> None:
        """The consumer has stopped, so no delivery is running: close the receivers'
        HTTP sessions and SMTP connections."""
        for notifier in notifiers.values():
            await notifier.aclose()


def _add_followers(app: faust.App, reconciler: Reconciler, silences: SilenceReplica,
                   blindness: WorkerBlindness) -> None:
    """The worker's readers of compacted topics, for its whole life: the ledger's
    reconciler (step 5 of its protocol), the stored silences, read whole and followed
    (a mute clicked in Slack is stored by the worker owning its rule, and holds in all),
    and the feeds' health (for the blind-rule warnings)."""

    @app.task  # type: ignore[untyped-decorator]
    async def reconcile() -> None:
        await reconciler.run()

    @app.task  # type: ignore[untyped-decorator]
    async def follow_silences() -> None:
        await silences.follow()

    @app.task  # type: ignore[untyped-decorator]
    async def follow_feed_health() -> None:
        await blindness.statuses.follow()


def _fenced(table: MutableMapping[str, Any],
            fence: Callable[[], None] | None) -> MutableMapping[str, Any]:
    return table if fence is None else FencedMapping(table, fence)


def _pipeline(
    dedup: MutableMapping[str, Any], dead: MutableMapping[str, Any],
    notifiers: Mapping[str, Notifier], *, metrics: Metrics | None,
    clock: Callable[[], float], fence: Callable[[], None] | None,
    silences: Callable[[float], Sequence[Silence]] | None, decisions: DecisionTopic,
) -> Pipeline:
    """The delivery pipeline over the worker's tables. Inline: faust tables may only be
    written inside the event being processed, so deliveries finish before the agent takes
    the next event."""
    logged = _LogDecisions(decisions)
    audit: Any = logged if metrics is None else MeteredAudit(logged, metrics)
    state, dead_letters = _fenced(dedup, fence), _fenced(dead, fence)
    return Pipeline(notifiers=notifiers, state=state, dlq=dead_letters, audit=audit,
                    silences=silences, clock=clock, inline=True, fence=fence,
                    encoded_state=True)


class _Agents:
    """What the two agents do with each event: the ``match`` agent's articles and the
    ``deliver`` agent's matches topic, with the ledger's steps 2 to 4
    (``newswatch.streams.kafka.ledger``). faust acks an event whose agent raised, so every
    failure goes to the dead-letter topic with its reason."""

    def __init__(self, *, matching: Matching, pipeline: Pipeline, clicks: ClickHandler,
                 silences_read: asyncio.Event, blindness: WorkerBlindness, ledger: Ledger,
                 matches: Any, dlq: Any, clock: Callable[[], float],
                 metrics: Metrics | None) -> None:
        self._matching = matching
        self._blindness = blindness
        self._pipeline = pipeline
        self._clicks = clicks
        self._silences_read = silences_read
        self._waited = False
        self._ledger = ledger
        self._matches = matches  # faust topics
        self._dlq = dlq
        self._clock = clock
        self._metrics = metrics

    async def match(self, key: bytes | None, value: bytes | None) -> None:
        article = None
        try:
            article = ArticleMessage.from_bytes(value).article
            found = [MatchMessage(m) for m in self._matching(article)]
            # Kafka must have every match before the article event ends (and may be
            # committed): faust's flush-before-commit gives up after 0.1 s without
            # progress, leaving matches in its producer buffer, and a worker that then
            # stops or dies would lose them with the article committed. The matches are
            # in the producer's buffer while their ledger entries are written.
            sent = [await self._matches.send(key=m.key(), value=m.to_bytes()) for m in found]
            await self._ledger.pending(pending_match(m, self._clock()) for m in found)
            for written in sent:
                await written
        except Exception as error:
            await self._dead_letter(key, value, "match", error)
        if article is not None:
            await self._done(article_key(article.id, body=bool(article.body)))
        elif key is not None:  # poison: which version it was is unknown, both are done
            ident = key.decode("utf-8", "replace")
            await self._done(article_key(ident), article_key(ident, body=True))

    async def deliver(self, key: bytes | None, value: bytes | None) -> None:
        if not self._waited:
            await self._wait_for_silences()
        message: MatchesMessage | None = None
        try:
            message = decode_matches(key, value)
            await _handle(self._pipeline, self._clicks, self._blindness, message)
        except Exception as error:
            await self._dead_letter(key, value, "deliver", error)
        if isinstance(message, MatchMessage):
            found = message.match
            await self._done(match_key(found.rule_id, found.article.id,
                                       body=bool(found.article.body)))
        elif isinstance(message, ClickMessage):
            await self._done(click_key(message.click.alert.rule_id, message.click.key))

    async def _wait_for_silences(self) -> None:
        """Before the first delivery: the stored silences read, so that one stored before
        this worker started holds for its first match (a cluster that does not answer
        within ``READY_WITHIN`` seconds: delivered meanwhile, and logged)."""
        self._waited = True
        try:
            await asyncio.wait_for(self._silences_read.wait(), READY_WITHIN)
        except TimeoutError:
            log.warning("the silences topic was not read within %.0fs: delivering "
                        "meanwhile; stored silences apply once read", READY_WITHIN)

    async def _dead_letter(self, key: bytes | None, value: bytes | None, stage: Stage,
                           error: BaseException) -> None:
        record = PoisonRecord.of(stage, error, value, at=self._clock())
        await (await self._dlq.send(key=key, value=record.to_bytes()))
        log.error("%s: event sent to the dead-letter topic: %r", stage, error)
        if self._metrics is not None:
            self._metrics.observe_dead_letter(stage)

    async def _done(self, *keys: bytes) -> None:
        """Mark ledger entries done; a failure only costs a silent re-drive later."""
        try:
            await self._ledger.done(keys)
        except Exception as error:
            log.warning("ledger: cannot mark %s done (%r); it will be re-driven",
                        " ".join(k.decode() for k in keys), error)


async def _handle(pipeline: Pipeline, clicks: ClickHandler, blindness: WorkerBlindness,
                  message: MatchesMessage) -> None:
    """One event of the matches topic, in the worker owning its rule's table partition."""
    match message:
        case MatchMessage(match=found):
            await pipeline.deliver(found)
        case TickMessage(rule_id=rule_id):
            await blindness.check(rule_id)
            sent = await pipeline.tick_rule(rule_id)
            log.debug("rule %s: tick, %d item(s) in the outbox", rule_id, sent)
        case ResumeMessage(rule_id=rule_id):  # written by workers before the tick
            await pipeline.resume_rule(rule_id)
        case ReplayMessage(ids=ids):  # from `newswatch dlq replay --kafka`
            for outcome in await pipeline.replay(ids):
                log.info("dead letter %s: replay %s", outcome.id, outcome.outcome)
        case ClickMessage(click=click):  # from the poller holding the Slack socket
            await clicks(click)


def _faust_publish(app: faust.App, *, wait: bool = True) -> Publish:
    """``Publish`` over faust's own producer (the worker's records go out in order with
    its table writes); ``wait=False`` returns once the record is in the producer's buffer,
    without Kafka's acknowledgement."""

    async def publish(topic: str, key: bytes, value: bytes | None) -> None:
        written = await app.send(topic, key=key, value=value)
        if wait:
            await written

    return publish


def _add_tick_timer(app: faust.App, runtime: KafkaRuntime) -> None:
    """``runtime.tick`` every ``TICK_EVERY`` seconds: a ``TickMessage`` through the
    matches topic for each rule of the local table that is due;
    the tick runs in the deliver agent of the partition's owner, where the table may be
    written (docs/kafka.md, "Maintenance ticks")."""

    @app.timer(interval=TICK_EVERY)  # type: ignore[untyped-decorator]
    async def tick_rules() -> None:
        try:
            await runtime.tick()
        except Exception as error:  # a failed round is retried by the next one
            log.warning("tick round failed: %r", error)


def _add_guard_timer(app: faust.App, guard: StallGuard[Any], streamed: set[str],
                     metrics: Metrics | None) -> None:
    """A stall-guard round every ``GUARD_EVERY`` seconds (``consumer.guard_round``)."""

    @app.timer(interval=GUARD_EVERY)  # type: ignore[untyped-decorator]
    async def guard_partitions() -> None:
        try:
            await guard_round(app, guard, streamed, metrics)
        except Exception as error:  # the guard must never stop the worker
            log.warning("stalled-partition check failed: %r", error)


class _Worker(faust.Worker):
    """faust's worker, logging like every other ``newswatch`` command (JSON lines, or text
    lines with control characters escaped): faust replaces the root logger's handlers with
    its own when it starts, and ``on_setup_root_logger`` is its hook for that moment. faust's
    own hook also starts a progress spinner, which writes cursor escapes even off a
    terminal: none here."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        take_over_logging(sys.stderr, verbose=level <= logging.DEBUG)


def run_worker(
    app: faust.App, *, loglevel: str = "info", loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Run the worker until SIGINT/SIGTERM (blocks), on ``loop`` when given. RuntimeError
    before it starts when faust or aiokafka lack a member the consumer repairs need."""
    worker = _Worker(app, loglevel=loglevel, quiet=True, loop=loop)
    # Here, not in build_app: the check builds the app's consumer, which binds it to the
    # event loop of the moment, and the worker's loop is only set now.
    check_private_api(api_owners(app))
    worker.execute_from_commandline()
