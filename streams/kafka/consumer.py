"""The worker's repairs to faust's consumer, and the at-least-once protocol they implement.

The protocol, from a poller's article to an alert, as the worker runs it:

1. **Published.** A poller produces each new article to ``articles`` with ``acks=all`` and
   idempotence (``client.reliable_producer``), and advances the feed's cursor only once
   Kafka acknowledged every article of the poll: an article not acknowledged is fetched
   and published again.
2. **Read from the committed offset.** On every assignment and whenever faust re-seeks,
   each stream partition (``articles``, ``matches``) is read from the worker group's
   committed offset; a partition never committed is read from its first offset, and
   faust's own bookkeeping starts there too (``RepairedConsumerThread.seek_to_committed``,
   ``RepairedConsumer.perform_seek``; aiokafka left such a partition at the fetcher's
   position, past records faust had dropped, faust-streaming#629).
3. **Matched, matches acknowledged.** The match agent sends each match of an article to
   ``matches`` (keyed by rule id) and waits until Kafka acknowledged every one before the
   article's event ends: faust's flush before a commit gives up after 0.1 s without
   progress and could leave them buffered behind a committed article.
4. **Decided, then sent.** The deliver agent writes the decision and its outbox items to
   the rule's row of the ``dedup`` table (its changelog) before the first send, sends
   inline, and writes the outcome (sent with its receipt, or dead-lettered). Maintenance
   (``TickMessage``: due digests and the outbox; a requested replay) runs as events of the
   same topic and partition, so it writes the table from inside an event too.
5. **Acknowledged.** An event is acknowledged when its agent has finished with it and
   takes the next one, and only an event an agent took (faust marks it ``tracked``): an
   event a stream skipped unprocessed (fetched before a rebalance, flow stopped) is never
   acknowledged (``RepairedConsumer.ack``). An agent that fails on an event sends it to
   ``alerts-dlq`` and waits for Kafka's acknowledgement of that first, so a poison event is
   acknowledged only once it is kept.
6. **Committed.** Every 2.8 s and at a rebalance, faust commits, per partition, the offset
   after the longest run of acknowledged records starting at the committed offset
   (``_new_offset``). Never past a record not acknowledged: not when the record at the
   committed offset itself is not (faust let that one through), and not over offsets faust
   never delivered, which it would count as a "gap" meant for compacted topics
   (``RepairedConsumer._add_gap`` only logs). Auto-commit is off.
7. **Read again**, from the first record not known processed:
   a. records missing between the last one read and the one fetched (faust dropped a
      fetched batch in a rebalance and the fetcher moved on): the partition is read again
      from the first one missing (``RepairedConsumer.getmany``);
   b. a partition with lag, no event of its topic in flight and a committed offset that has
      not moved for ``STALL_AFTER`` seconds (an unacknowledged record the commit cannot
      pass): again from its committed offset (``guard_round``, ``stallguard.StallGuard``);
   c. after a rebalance or a crash, the partition's next owner reads from the committed
      offset: what was processed but not yet committed is processed again.
8. **Re-reads are harmless.** A re-read article gives the same matches; a re-read match is
   decided again against the rule's state (``same_article``: nothing is sent); an outbox
   item a crash left pending is sent by the owner on the rule's next tick. What remains,
   after a kill -9 only: a decision whose table write was still in faust's producer buffer
   is made again by the next owner, and an alert whose "sent" write was is sent again
   (0–3 alerts twice per run, docs/kafka.md "Guarantees").
9. **Fenced.** A worker frozen past its session (another member owns its partitions now)
   exits before its next send or table write (``fence.FreezeFence``), so steps 4–5 never
   run for a partition the worker no longer owns.

The repairs read and override faust and aiokafka internals; ``PRIVATE_API`` lists every
one, and ``tests/test_kafka_canary.py`` checks them on the installed versions (pinned in
pyproject.toml). ``check_private_api`` runs the same check when the worker starts.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiokafka
import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import Message

from newswatch.core.metrics import Metrics
from newswatch.streams.kafka.stallguard import Progress, StallGuard

log = logging.getLogger("newswatch.worker")

GUARD_EVERY = 5.0  # seconds between stalled-partition checks
# Longer than faust's commit interval (2.8 s) plus a slow delivery; a stall costs at most
# this much latency on the partition concerned.
STALL_AFTER = 20.0


# ------------------------------------------------------------------- the private API used


@dataclass(frozen=True, slots=True)
class Private:
    """One faust or aiokafka member the repairs depend on. ``owner`` names what holds it
    (a key of ``api_owners``); ``params``, for a method the repairs override or call with
    arguments, are its parameter names after ``self`` as the installed version declares
    them (an override silently stops being called, or is called wrongly, when they change)."""

    owner: str
    name: str
    use: str
    params: tuple[str, ...] | None = None


PRIVATE_API: tuple[Private, ...] = (
    # faust's aiokafka consumer thread (RepairedConsumerThread)
    Private("AIOKafkaConsumerThread", "seek_to_committed", "overridden: never-committed "
            "partitions start at their first offset", ()),
    Private("AIOKafkaConsumerThread", "_ensure_consumer", "called: the aiokafka consumer", ()),
    Private("AIOKafkaConsumerThread", "call_thread", "called: runs a coroutine in the "
            "consumer's thread", ("fun", "args", "kwargs")),
    Private("AIOKafkaConsumerThread", "__init__", "called by _new_consumer_thread",
            ("consumer", "kwargs")),
    # faust's consumer (RepairedConsumer)
    Private("Consumer", "_new_consumer_thread", "overridden: builds the repaired thread", ()),
    Private("Consumer", "seek_to_committed", "overridden: notes where partitions start", ()),
    Private("Consumer", "perform_seek", "overridden: faust's offsets set from the start", ()),
    Private("Consumer", "getmany", "overridden: missing records read again", ("timeout",)),
    Private("Consumer", "_add_gap", "overridden: a gap is never counted as processed",
            ("tp", "offset_from", "offset_to")),
    Private("Consumer", "_new_offset", "overridden: no commit past an unacked head", ("tp",)),
    Private("Consumer", "ack", "overridden: only events an agent took", ("message",)),
    Private("Consumer", "assignment", "called by the stall guard", ()),
    Private("Consumer", "highwaters", "called by the stall guard", ("partitions",)),
    Private("consumer", "_committed_offset", "read and written: tp → committed offset"),
    Private("consumer", "_read_offset", "read and written: tp → last offset read"),
    Private("consumer", "_acked", "read: tp → offsets acked, not yet committed"),
    Private("consumer", "_unacked_messages", "read by the stall guard: events in flight"),
    Private("consumer", "_thread", "read: the consumer thread (RepairedConsumerThread)"),
    Private("consumer", "flow_active", "read by the stall guard: flow stopped"),
    Private("consumer", "transport", "read: where the rewinds are counted"),
    Private("consumer", "app", "read: the app (its topics)"),
    Private("consumer", "loop", "read by _new_consumer_thread"),
    Private("consumer", "beacon", "read by _new_consumer_thread"),
    Private("Message", "tracked", "read by ack: an agent took the event"),
    Private("Message", "offset", "read by getmany"),
    Private("Message", "tp", "read by the stall guard"),
    # faust's transport and app
    Private("Transport", "Consumer", "replaced: the consumer class the transport builds"),
    Private("app", "transport", "replaced by build_app: the repaired transport"),
    Private("app", "consumer", "read by the stall guard"),
    Private("app", "rebalancing", "read by the stall guard"),
    Private("app.topics", "acks_enabled_for", "called: a stream topic (acked events)",
            ("topic",)),
    # aiokafka's consumer, in the consumer thread
    Private("AIOKafkaConsumer", "seek_to_committed", "called: committed offsets, None for "
            "a partition never committed", ("partitions",)),
    Private("AIOKafkaConsumer", "beginning_offsets", "called: first offsets", ("partitions",)),
    Private("AIOKafkaConsumer", "seek", "called: explicit seeks", ("partition", "offset")),
)


def api_owners(app: faust.App) -> dict[str, object]:
    """What holds each member of ``PRIVATE_API`` in the installed faust and aiokafka: the
    classes the repairs subclass (methods are looked up there, so an override cannot hide
    a removal), and ``app``'s own consumer and topics (attributes faust sets per instance)."""
    return {
        "AIOKafkaConsumerThread": faust_aiokafka.AIOKafkaConsumerThread,
        "Consumer": faust_aiokafka.Consumer,
        "consumer": app.consumer,
        "Message": Message,
        "Transport": faust_aiokafka.Transport,
        "app": app,
        "app.topics": app.topics,
        "AIOKafkaConsumer": aiokafka.AIOKafkaConsumer,
    }


def _params(member: Any) -> tuple[str, ...] | None:
    try:
        signature = inspect.signature(member)
    except (TypeError, ValueError):
        return None
    return tuple(p for p in signature.parameters if p != "self")


def missing_private_api(owners: Mapping[str, object],
                        table: tuple[Private, ...] = PRIVATE_API) -> list[str]:
    """One line per member of ``table`` that ``owners`` lacks or declares with other
    parameters, naming it, e.g. ``Consumer._add_gap (overridden: …): missing``."""
    problems: list[str] = []
    for p in table:
        where = f"{p.owner}.{p.name} ({p.use})"
        owner = owners.get(p.owner)
        if owner is None or not hasattr(owner, p.name):
            problems.append(f"{where}: missing")
        elif p.params is not None and (found := _params(getattr(owner, p.name))) != p.params:
            problems.append(f"{where}: parameters are now {found}, not {p.params}")
    return problems


def check_private_api(owners: Mapping[str, object]) -> None:
    """Raise RuntimeError naming every member of ``PRIVATE_API`` that ``owners`` (the
    installed faust and aiokafka: ``api_owners(app)``) lack or declare otherwise: without
    them the repairs would not run, and alerts could be lost."""
    problems = missing_private_api(owners)
    if problems:
        raise RuntimeError("faust/aiokafka changed under the worker's consumer repairs "
                           "(streams/kafka/consumer.py): " + "; ".join(problems))


# ------------------------------------------------------------------------------ repairs


class RepairedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread, with partitions that were never committed sought
    to their first record whenever faust seeks "to the committed offsets", and a
    ``rewind`` for the stall guard (protocol step 2).

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


class RepairedConsumer(faust_aiokafka.Consumer):
    """faust's consumer, never committing past a record no agent processed (protocol
    steps 2, 5, 6 and 7a).

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

    def _new_consumer_thread(self) -> RepairedConsumerThread:
        return RepairedConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
        thread: RepairedConsumerThread = self._thread  # type: ignore[assignment]
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
                thread: RepairedConsumerThread = self._thread  # type: ignore[assignment]
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


class RepairedTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport, building the ``RepairedConsumer``."""

    Consumer = RepairedConsumer
    metrics: Metrics | None = None  # where the consumer counts its rewinds


# -------------------------------------------------------------------------- stall guard


async def guard_round(app: faust.App, guard: StallGuard[Any], streamed: set[str],
                      metrics: Metrics | None) -> None:
    """One stall-guard round (protocol step 7b): snapshot the stream partitions, rewind
    the stalled ones, publish lag and commit age. faust keeps what is needed in private
    attributes (committed offsets, events in flight, read offsets); they are read only
    here and in the repairs above."""
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
