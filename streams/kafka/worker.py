"""The Kafka runtime's stream processors: the only module that imports faust.

Two agents run the same core as the embedded runtime:

- ``match``: articles topic → ``Matcher.match`` → matches topic, keyed by rule id.
- ``deliver``: matches topic → ``Pipeline.deliver``, with the per-rule dedup state in the
  faust Table ``dedup`` (changelog-backed; keyed by rule id, so co-partitioned with the
  matches topic) and dead letters in the Table ``dead-letters``.

faust acks an event whose agent raised (docs/reliability.md item 3), so both agents catch every
failure and send the event to the dead-letter topic with the reason: a poison message never
stalls a partition and is never silently dropped. Deliveries left pending by a crash are
resumed by a timer that sends a resume marker for each such rule through the matches topic,
so the resumed delivery runs inside an event of the right partition, as faust requires for
table writes.

faust's consumer is repaired here for rebalances (``_ConsumerThread``, ``_Consumer`` and
``stallguard``; docs/scaling.md, "Stalled partitions"): a partition never committed
is re-read from its start when faust re-seeks, an event a stream skipped unprocessed is
never acked (so never committed), records the fetcher moved past without faust delivering
them are read again instead of being committed as a "gap", the match agent waits for
Kafka's acknowledgement of an article's matches before the article's event ends, and a
partition that stalls anyway (lag, an idle agent, a committed offset that does not move for
``STALL_AFTER`` seconds) is read again from its committed offset. Re-reads are safe because
delivery is deduplicated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from newswatch.core.article import Article
from newswatch.core.metrics import MeteredAudit, Metrics
from newswatch.core.state import Decision
from newswatch.rules.matcher import Matcher
from newswatch.streams.alerts import Match
from newswatch.streams.embedded import to_match
from newswatch.streams.kafka.client import KafkaSettings
from newswatch.streams.kafka.fence import FencedMapping
from newswatch.streams.kafka.stallguard import Progress, StallGuard
from newswatch.streams.notifiers import Notifier
from newswatch.streams.pipeline import Pipeline

log = logging.getLogger("newswatch.worker")

RESUME_EVERY = 10.0  # seconds between scans for deliveries left pending
# faust's defaults (60 s session, 3 s heartbeat) leave a crashed worker's partitions
# unprocessed for a minute, and a worker restarted within that minute waits for the whole
# group to time the dead member out: 10 s bounds the stall after a kill -9.
SESSION_TIMEOUT = 10.0
HEARTBEAT_INTERVAL = 1.0
# A worker frozen longer than this may have been replaced in the group: it must not send
# or write state any more (streams/kafka/fence.py). Below the session timeout, by two heartbeats.
FENCE_LIMIT = SESSION_TIMEOUT - 2 * HEARTBEAT_INTERVAL
_RESUME = b'{"resume": true}'
GUARD_EVERY = 5.0  # seconds between stalled-partition checks
# Longer than faust's commit interval (2.8 s) plus a slow delivery; a stall costs at most
# this much latency on the partition concerned.
STALL_AFTER = 20.0


class _LogDecisions:
    """The audit trail of the Kafka runtime: one structured log line per decision."""

    def log_decision(self, d: Decision) -> None:
        log.info(
            "decision rule=%s article=%s verdict=%s receiver=%s result=%s reason=%s",
            d.rule_id, d.article, d.verdict, d.receiver, d.result, d.reason,
            extra={"rule_id": d.rule_id, "article_id": d.article, "verdict": d.verdict,
                   "receiver": d.receiver},
        )


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread, with partitions that were never committed sought
    to their first record whenever faust seeks "to the committed offsets", and a
    ``rewind`` for the stall guard.

    faust drops fetched records in several places (a rebalance starts while a batch is
    handed out, flow stopped, a generation change) and relies on seeking to the committed
    offset to read them again. aiokafka's ``seek_to_committed`` leaves a partition without
    a committed offset (or committed at 0) where the fetcher stopped, so its dropped
    records were never read: the partition looked consumed, nothing was acked, the group
    never committed it, and its alerts were lost (measured: 1 run in 5 of two workers with
    kills; faust-streaming#629 shows the symptom). Reading such a partition from its start
    is what ``auto_offset_reset=earliest`` promises.
    """

    async def seek_to_committed(self) -> Mapping[Any, int]:
        return await self.call_thread(self._seek_to_committed_or_first)  # type: ignore[no-any-return]

    async def _seek_to_committed_or_first(self) -> Mapping[Any, int]:
        """Returns where each partition now starts: its committed offset, or its first
        offset when it was never committed."""
        consumer = self._ensure_consumer()
        committed = dict(await consumer.seek_to_committed())
        never = [tp for tp, offset in committed.items() if offset is None or offset <= 0]
        if never:
            committed.update(await self._seek_to_first(consumer, never))
        return committed

    @staticmethod
    async def _seek_to_first(consumer: Any, partitions: list[Any]) -> Mapping[Any, int]:
        # An explicit seek, not seek_to_beginning: that one leaves the position unset
        # until an offset reset completes, and faust's livelock check, reading the
        # position meanwhile, crashes the consumer (an assertion in aiokafka).
        firsts: Mapping[Any, int] = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, firsts[tp])
        return firsts

    async def first_offset(self, tp: Any) -> int:
        """The oldest offset of ``tp`` the broker still has."""
        return await self.call_thread(self._first_offset, tp)  # type: ignore[no-any-return]

    async def _first_offset(self, tp: Any) -> int:
        partition = TopicPartition(tp.topic, tp.partition)
        firsts = await self._ensure_consumer().beginning_offsets([partition])
        return int(firsts[partition])

    async def rewind(self, tp: Any, offset: int | None) -> None:
        """Read ``tp`` again from ``offset`` (its first record when None), in the
        consumer's own thread as aiokafka requires."""
        await self.call_thread(self._rewind, tp, offset)

    async def _rewind(self, tp: Any, offset: int | None) -> None:
        consumer = self._ensure_consumer()
        partition = TopicPartition(tp.topic, tp.partition)  # aiokafka's own type only
        if offset is None:
            await self._seek_to_first(consumer, [partition])
        else:
            consumer.seek(partition, offset)


class _Consumer(faust_aiokafka.Consumer):
    """faust's consumer, never committing past a record no agent processed.

    faust drops fetched records in several places and, when a later record of the
    partition arrives, treats the offsets it never delivered as a "gap" (meant for
    compacted and transactional topics) and commits past them: alerts lost with every
    offset committed (measured: 24 of 200 in one run of two workers, one stopped). Our
    stream topics have no gaps (neither compacted nor transactional), so here:

    - ``_read_offset`` always means the last record read (faust sets it to the committed
      offset, the next to read, after a seek), and a record that does not follow it
      makes the partition be read again from the one missing, instead of a gap;
    - a gap is never counted as processed, and a commit never passes a record at the head
      of the partition that was not acked (faust lets one such record through).
    """

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    _starts: dict[Any, int]  # where each partition starts, from the last seek

    async def seek_to_committed(self) -> Mapping[Any, int]:
        self._starts = dict(await super().seek_to_committed())
        return self._starts

    async def perform_seek(self) -> None:
        """faust's seek, then each stream partition's committed offset taken as where it
        starts now (its first offset when never committed: faust leaves it unknown, and
        then commits from the lowest offset acked, past any record before it that was
        dropped), and its read offset as the record before."""
        self._starts = {}
        await super().perform_seek()
        for tp, start in self._starts.items():
            if self.app.topics.acks_enabled_for(tp.topic) and start is not None:
                self._committed_offset[tp] = start
                self._read_offset[tp] = _last_before(start)

    async def read_again(self, tp: Any, offset: int | None) -> None:
        """Read ``tp`` again from ``offset`` (its first record when None) and count it in
        ``newswatch_partition_rewinds_total``."""
        thread: _ConsumerThread = self._thread  # type: ignore[assignment]
        await thread.rewind(tp, offset)
        self._read_offset[tp] = _last_before(offset)
        metrics: Metrics | None = getattr(self.transport, "metrics", None)
        if metrics is not None:
            metrics.observe_rewind(tp.topic)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        broken: set[Any] = set()
        async for tp, message in super().getmany(timeout):
            if tp in broken:
                continue  # the rest of this batch comes again after the rewind
            last = self._read_offset.get(tp)
            if (last is not None and message.offset > last + 1
                    and self.app.topics.acks_enabled_for(tp.topic)):
                thread: _ConsumerThread = self._thread  # type: ignore[assignment]
                start = max(last + 1, await thread.first_offset(tp))
                if start > last + 1:  # retention deleted them before any worker read them
                    log.error("partition %s[%d]: records %d..%d are gone from the broker "
                              "(retention); their articles or matches are lost", tp.topic,
                              tp.partition, last + 1, start - 1)
                    self._read_offset[tp] = start - 1
                    self._committed_offset[tp] = start
                if message.offset > start:
                    broken.add(tp)
                    log.warning("partition %s[%d]: records %d..%d were dropped before any "
                                "agent saw them; reading them again", tp.topic, tp.partition,
                                start, message.offset - 1)
                    await self.read_again(tp, start)
                    continue
            yield tp, message

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        log.warning("partition %s[%d]: offsets %d..%d skipped; not committing past them",
                    tp.topic, tp.partition, offset_from, offset_to)

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            return None  # the record at the committed offset is not processed yet
        return super()._new_offset(tp)

    def ack(self, message: Any) -> bool:
        """Ack only events an agent took (faust marks those ``tracked``).

        A stream skips an event fetched before a rebalance (its generation is over, or
        flow is suspended) and acks it unprocessed; committed, that offset is lost for the
        next owner of the partition (measured: 1 alert in 100 across 12 runs of two
        workers with kills). Left unacked, it is a gap the commit cannot pass: the event
        is read again after the next seek or by the stall guard, and dedup makes the
        re-read harmless."""
        if not message.tracked:
            return False
        return bool(super().ack(message))


def _last_before(offset: int | None) -> int | None:
    """The read offset (last record read) of a partition about to be read from ``offset``;
    None lets the first record fetched through, whatever its offset."""
    return offset - 1 if offset else None


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    metrics: Metrics | None = None  # where the consumer counts its rewinds


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


def build_app(
    settings: KafkaSettings,
    *,
    matcher: Callable[[], Matcher],
    notifiers: Mapping[str, Notifier],
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
    stall_after: float = STALL_AFTER,
    fence: Callable[[], None] | None = None,
) -> faust.App:
    """The worker app. Start it with ``run_worker``. With ``metrics``, the agents count
    matches, decisions and dead letters, and the stall guard sets lag and commit age.
    ``fence`` (``FreezeFence.check``) is called before every send and every table write."""
    app = faust.App(
        f"{settings.prefix}worker",
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=_broker_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,  # faust declares its changelog and assignor topics
        producer_acks=-1,
        broker_session_timeout=SESSION_TIMEOUT,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    transport = _Transport(app.conf.broker_consumer, app)
    transport.metrics = metrics
    app.transport = transport
    articles = app.topic(settings.topic("articles"), partitions=settings.partitions)
    matches = app.topic(settings.topic("matches"), partitions=settings.partitions)
    dlq = app.topic(settings.topic("alerts-dlq"), partitions=settings.partitions)
    # JSON keys and values: rule ids come back as str after a changelog recovery.
    json_schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
    dedup = app.Table("dedup", default=None, partitions=settings.partitions,
                      schema=json_schema)
    dead = app.Table("dead-letters", default=None, partitions=settings.partitions,
                     schema=json_schema)
    # inline: faust tables may only be written inside the event being processed, so
    # deliveries finish before the agent takes the next event.
    audit: Any = _LogDecisions() if metrics is None else MeteredAudit(_LogDecisions(), metrics)
    state: MutableMapping[str, Any] = dedup
    dead_letters: MutableMapping[str, Any] = dead
    if fence is not None:
        state, dead_letters = FencedMapping(dedup, fence), FencedMapping(dead, fence)
    pipeline = Pipeline(notifiers=notifiers, state=state, dlq=dead_letters, audit=audit,
                        clock=clock, inline=True, fence=fence)

    async def dead_letter(key: bytes | None, value: bytes | None, stage: str,
                          error: BaseException) -> None:
        record = {"stage": stage, "reason": type(error).__name__, "message": str(error)[:2000],
                  "at": clock(), "event": (value or b"").decode("utf-8", "replace")[:100_000]}
        await (await dlq.send(key=key, value=json.dumps(record).encode()))
        log.error("%s: event sent to the dead-letter topic: %r", stage, error)
        if metrics is not None:
            metrics.observe_dead_letter(stage)

    @app.agent(articles)
    async def match(stream: Any) -> None:
        async for event in stream.events():
            try:
                article = Article.from_json(json.loads(event.value))
                started = time.perf_counter()
                found_all = matcher().match(article)
                if metrics is not None:
                    metrics.observe_match(seconds=time.perf_counter() - started,
                                          matches=len(found_all))
                # Kafka must have every match before the article event ends (and may be
                # committed): faust's flush-before-commit gives up after 0.1 s without
                # progress, leaving matches in its producer buffer, and a worker that
                # then stops or dies would lose them with the article committed.
                sent = []
                for found in found_all:
                    m = to_match(found, article)
                    sent.append(await matches.send(key=m.rule_id.encode(),
                                                   value=json.dumps(m.to_json()).encode()))
                for written in sent:
                    await written
            except Exception as error:
                await dead_letter(event.key, event.value, "match", error)

    @app.agent(matches)
    async def deliver(stream: Any) -> None:
        async for event in stream.events():
            try:
                data = json.loads(event.value)
                if data.get("resume"):
                    await pipeline.resume_rule(event.key.decode())
                elif data.get("replay"):  # from `newswatch dlq replay --kafka`
                    for outcome in await pipeline.replay([str(i) for i in data["replay"]]):
                        log.info("dead letter %s: replay %s", outcome.id, outcome.outcome)
                else:
                    await pipeline.deliver(Match.from_json(data))
            except Exception as error:
                await dead_letter(event.key, event.value, "deliver", error)

    @app.timer(interval=RESUME_EVERY)  # type: ignore[untyped-decorator]
    async def resume_pending() -> None:
        for rule_id in list(dedup.keys()):
            if Pipeline.has_pending(dedup.get(rule_id) or {}):
                await matches.send(key=str(rule_id).encode(), value=_RESUME)

    @app.on_before_shutdown.connect
    async def close_notifiers(sender: Any, /, *_: Any, **__: Any) -> None:
        """The consumer has stopped, so no delivery is running: close the receivers'
        HTTP sessions and SMTP connections."""
        for notifier in notifiers.values():
            await notifier.aclose()

    guard: StallGuard[Any] = StallGuard(after=stall_after)
    streamed = {articles.get_topic_name(), matches.get_topic_name()}

    @app.timer(interval=GUARD_EVERY)  # type: ignore[untyped-decorator]
    async def guard_partitions() -> None:
        try:
            await _guard(app, guard, streamed, metrics)
        except Exception as error:  # the guard must never stop the worker
            log.warning("stalled-partition check failed: %r", error)

    return app


async def _guard(app: faust.App, guard: StallGuard[Any], streamed: set[str],
                 metrics: Metrics | None) -> None:
    """One stall-guard round: snapshot the stream partitions, rewind the stalled ones,
    publish lag and commit age. faust keeps what is needed in private attributes
    (committed offsets, events in flight, read offsets); they are read only here."""
    consumer: Any = app.consumer
    if app.rebalancing or not consumer.flow_active:
        guard.reset()
        return
    tps = [tp for tp in consumer.assignment() if tp.topic in streamed]
    ends = await asyncio.wait_for(consumer.highwaters(*tps), GUARD_EVERY) if tps else {}
    snapshot = {tp: Progress(int(ends[tp]), consumer._committed_offset.get(tp))
                for tp in tps if tp in ends}
    in_flight = {m.tp.topic for m in list(consumer._unacked_messages)}
    for tp in guard.check(snapshot, lambda tp: tp.topic in in_flight):
        p = snapshot[tp]
        log.warning("partition %s[%d] stalled: committed %s, end %d, idle for %.0fs; "
                    "reading it again from its committed offset", tp.topic, tp.partition,
                    p.committed, p.end, guard.after)
        await consumer.read_again(tp, p.committed)
    if metrics is not None:
        metrics.set_partitions({(tp.topic, tp.partition): (p.lag, guard.commit_age(tp))
                                for tp, p in snapshot.items()})


def run_worker(
    app: faust.App, *, loglevel: str = "info", loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Run the worker until SIGINT/SIGTERM (blocks), on ``loop`` when given."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, loop=loop)
    worker.execute_from_commandline()
