"""The completion ledger: no alert depends on faust's offset bookkeeping being right.

faust commits a partition's offsets from its own bookkeeping of acknowledged records;
each hole found in it so far (docs/kafka.md, "How the consumer repairs were found") let a
record be committed without its agent ever seeing it, and the alert behind it was lost
with nothing to show for it. The ledger is a record of work outstanding, kept apart from
that bookkeeping, in the compacted topic ``ledger``:

1. ``KafkaRuntime.take`` (the poller) writes ``article/<article id>`` *pending*, with the
   article message, and publishes the article; it returns once Kafka acknowledged both,
   and only then does the poller mark the article seen (a crash before: it is polled and
   published again).
2. The match agent, for an article: writes ``match/<rule id>/<article id>`` pending for
   each match and publishes the matches; once Kafka acknowledged all of them, it marks the
   article *done* (a tombstone). A crash before that leaves the article pending: it is
   re-driven, matched again, and its matches recorded again.
3. The deliver agent, once ``Pipeline.deliver`` returned for a match (decided, and in the
   Kafka runtime sent: it runs inline), marks the match done.
4. An agent that dead-letters an event marks it done too: the dead-letter topic has it.
   A click on an alert's buttons (``KafkaRuntime.click``, in the poller holding the Slack
   socket) is guarded the same way: ``click/<rule id>/<click key>`` pending with the click
   message, published to the matches topic, marked done by the deliver agent once applied.
5. The ``Reconciler`` of each worker follows its share of the ledger's partitions (its own
   consumer group, so each entry is watched by one worker) from their first offset. An
   entry still pending ``redrive_after`` seconds after it was written (or re-driven) is
   published again to its topic, with a warning naming the id and the stage that dropped
   it, and the ``newswatch_kafka_redrives_total`` metric. A partition it gains (a
   rebalance, a restart) is read again from its first offset, so what the previous
   watcher left pending is found; its entries are re-driven only once it is read to its
   end (an old entry's tombstone may be further on).

Re-drives are silent downstream: a re-published article matches again and its matches are
``same_article`` to the dedup state when they were delivered; a re-published match too; a
re-published click is known by its key and applied once. A
crash between two steps leaves an entry pending, so the worst case is a re-drive, never a
loss. Every re-drive points at a hole: a crash, or a record faust dropped.

Full text (docs/full-text.md): an article whose page came late is published twice, on its
teaser and then with its ``body``, under the same record key. The two are two pieces of
work, each with its own entries: ``article/<id>`` and ``article/<id>/body``,
``match/<rule>/<id>`` and ``match/<rule>/<id>/body`` (an article published once, its page
in time, carries its body and uses the ``/body`` keys). With one key, the teaser's
tombstone could land after the body's pending entry and erase it, and a body record faust
dropped would never be re-driven. Downstream the body's matches of rules the teaser
already alerted are ``same_article``, silent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    Publish,
    keep_following,
    stop_quietly,
)

log = logging.getLogger("newswatch.ledger")

REDRIVE_AFTER = 60.0  # seconds an entry may stay pending before it is re-driven
CHECK_EVERY = 2.0  # seconds between the reconciler's scans
RESTART_AFTER = 5.0  # seconds before a reconciler that failed starts over

LedgerStage = Literal["match", "deliver"]  # the stage an entry waits for


_BODY = "/body"  # the suffix of the entries of an article's version with its page's body


def article_key(article_id: str, *, body: bool = False) -> bytes:
    """The entry of an article's publication: its teaser, or (``body``) its version with
    the page's main text."""
    return f"article/{article_id}{_BODY if body else ''}".encode()


def match_key(rule_id: str, article_id: str, *, body: bool = False) -> bytes:
    """The entry of a match, of the article's teaser or (``body``) of its body version."""
    return f"match/{rule_id}/{article_id}{_BODY if body else ''}".encode()


def click_key(rule_id: str, click: str) -> bytes:
    return f"click/{rule_id}/{click}".encode()


@dataclass(frozen=True, slots=True)
class Pending:
    """Work outstanding: the record ``value`` with ``key`` on topic ``topic`` (a name of
    ``topics``), waiting for ``stage`` since ``at`` (Unix time)."""

    stage: LedgerStage
    at: float
    topic: str
    key: bytes
    value: bytes

    def to_bytes(self) -> bytes:
        return json.dumps({"kind": "pending", "stage": self.stage, "at": self.at,
                           "topic": self.topic, "key": self.key.decode(),
                           "value": self.value.decode()}, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Pending:
        """Raises ValueError for anything but a pending entry."""
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != "pending":
            raise ValueError("not a ledger entry")
        stage = data["stage"]
        if stage not in ("match", "deliver"):
            raise ValueError(f"unknown stage {stage!r}")
        return cls(stage=stage, at=float(data["at"]), topic=str(data["topic"]),
                   key=str(data["key"]).encode(), value=str(data["value"]).encode())


def pending_article(message: topics.ArticleMessage, at: float) -> tuple[bytes, Pending]:
    """The ledger key and entry of an article published for the match stage."""
    return article_key(message.article.id, body=bool(message.article.body)), Pending(
        stage="match", at=at, topic=topics.ARTICLES, key=message.key(),
        value=message.to_bytes())


def pending_match(message: topics.MatchMessage, at: float) -> tuple[bytes, Pending]:
    """The ledger key and entry of a match published for the deliver stage."""
    m = message.match
    return match_key(m.rule_id, m.article.id, body=bool(m.article.body)), Pending(
        stage="deliver", at=at, topic=topics.MATCHES, key=message.key(),
        value=message.to_bytes())


def pending_click(message: topics.ClickMessage, at: float) -> tuple[bytes, Pending]:
    """The ledger key and entry of a click published for the deliver stage."""
    c = message.click
    return click_key(c.alert.rule_id, c.key), Pending(
        stage="deliver", at=at, topic=topics.MATCHES, key=message.key(),
        value=message.to_bytes())


class Ledger:
    """Writes the ledger: ``pending`` through ``publish``, which returns once Kafka
    acknowledged it (the record it guards is published only then); ``done`` through
    ``mark`` (by default ``publish``): the worker's hands the tombstone to faust's
    producer without waiting, as a lost one only costs a silent re-drive."""

    def __init__(self, settings: KafkaSettings, publish: Publish, *,
                 mark: Publish | None = None) -> None:
        self._topic = settings.topic(topics.LEDGER)
        self._publish = publish
        self._mark = mark or publish

    async def pending(self, entries: Iterable[tuple[bytes, Pending]]) -> None:
        await asyncio.gather(*(self._publish(self._topic, key, entry.to_bytes())
                               for key, entry in entries))

    async def done(self, keys: Iterable[bytes]) -> None:
        await asyncio.gather(*(self._mark(self._topic, key, None) for key in keys))


class RedriveMetrics(Protocol):
    def observe_redrive(self, stage: str) -> None: ...


class Outstanding:
    """The pending entries of the partitions one reconciler watches (pure: fed records,
    asked what is due). An entry is parsed only when it is due: most are done within
    milliseconds, and the reconciler reads every one of them."""

    def __init__(self, *, after: float = REDRIVE_AFTER) -> None:
        self.after = after
        self._entries: dict[tuple[int, bytes], bytes] = {}  # the pending records' values
        self._since: dict[tuple[int, bytes], float] = {}  # written or last re-driven

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget everything (the partitions are read again from their first offset)."""
        self._entries.clear()
        self._since.clear()

    def apply(self, partition: int, key: bytes, value: bytes | None, at: float) -> None:
        """One ledger record, in partition order: a pending entry written at ``at`` (its
        timestamp, Unix seconds), or a tombstone."""
        ident = (partition, key)
        if value is None:
            self._entries.pop(ident, None)
            self._since.pop(ident, None)
        else:
            self._entries[ident] = value
            self._since[ident] = at

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions no longer watched here (revoked)."""
        gone = set(partitions)
        for ident in [i for i in self._entries if i[0] in gone]:
            self._entries.pop(ident)
            self._since.pop(ident, None)

    def due(self, now: float, partitions: set[int] | None = None
            ) -> list[tuple[bytes, Pending]]:
        """Entries (of ``partitions`` only, when given) pending ``after`` seconds since
        written or last re-driven; each is counted as re-driven at ``now``. A record that
        is not an entry is dropped."""
        out = []
        for ident in [i for i, since in self._since.items() if now - since >= self.after
                      and (partitions is None or i[0] in partitions)]:
            try:
                entry = Pending.from_bytes(self._entries[ident])
            except (ValueError, KeyError, TypeError) as error:
                log.warning("ledger record %r is not an entry (%s): ignored", ident[1], error)
                self._entries.pop(ident)
                self._since.pop(ident)
                continue
            self._since[ident] = now
            out.append((ident[1], entry))
        return out


class Reconciler:
    """Step 5 of the protocol above, for one worker: follows its share of the ledger and
    re-publishes what stays pending. ``run`` until cancelled."""

    def __init__(self, settings: KafkaSettings, publish: Publish, *,
                 after: float = REDRIVE_AFTER, metrics: RedriveMetrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._publish = publish
        self._metrics = metrics
        self._clock = clock
        self.outstanding = Outstanding(after=after)
        self.redriven = 0

    async def run(self) -> None:
        """Follow the ledger until cancelled; trouble with the cluster is logged and the
        reconciler starts over (its partitions are read again from their first offset)."""
        await keep_following(self._follow, what="ledger reconciler", logger=log,
                             after=RESTART_AFTER, on_failure=self.outstanding.clear)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            **self._settings.client_options(),
            group_id=self._settings.topic(topics.LEDGER_GROUP),
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000)
        listener = _Rewind(consumer, self.outstanding)
        consumer.subscribe([self._settings.topic(topics.LEDGER)], listener=listener)
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=int(CHECK_EVERY * 1000))
                for tp, records in batches.items():
                    for record in records:
                        if record.key is not None:
                            self.outstanding.apply(tp.partition, record.key, record.value,
                                                   record.timestamp / 1000)
                await self.redrive_due(await _caught_up(consumer))
        finally:
            await stop_quietly(consumer)

    async def redrive_due(self, partitions: set[int] | None = None) -> int:
        """Re-publish every entry due (of ``partitions`` only, when given); returns how
        many."""
        due = self.outstanding.due(self._clock(), partitions)
        for key, entry in due:
            await self._publish(self._settings.topic(entry.topic), entry.key, entry.value)
            self.redriven += 1
            log.warning("re-drove %s: pending for the %s stage %.0fs", key.decode(),
                        entry.stage, self._clock() - entry.at,
                        extra={"ledger_key": key.decode(), "stage": entry.stage})
            if self._metrics is not None:
                self._metrics.observe_redrive(entry.stage)
        return len(due)


async def _caught_up(consumer: AIOKafkaConsumer) -> set[int]:
    """The assigned partitions read up to their end. Only their entries may be re-driven:
    in a partition still being read (after a rebalance, from its first offset), an old
    pending entry's tombstone may be in the records not read yet."""
    done = set()
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is not None and await consumer.position(tp) >= end:
            done.add(tp.partition)
    return done


class _Rewind(ConsumerRebalanceListener):  # type: ignore[misc]
    """Reads every partition gained from its first offset (nothing is committed: the
    pending entries are rebuilt from the compacted topic), forgets those revoked."""

    def __init__(self, consumer: AIOKafkaConsumer, outstanding: Outstanding) -> None:
        self._consumer = consumer
        self._outstanding = outstanding

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._outstanding.forget(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if assigned:
            await self._consumer.seek_to_beginning(*assigned)
