"""The runtime contract (``newswatch.streams.runtime``) over Kafka.

Its obligations are spread over processes, each reaching the others through a topic; this
class is what every process calls, with a ``Publish`` port for its own producer:

- ``take`` (``newswatch poll``'s sink) records the articles pending in the completion
  ledger (``newswatch.streams.kafka.ledger``), then publishes them to the articles topic; the
  workers' match agent matches them (``newswatch.streams.matching``) and publishes each
  match to the matches topic keyed by rule id, where the deliver agent of the worker
  owning that partition runs the pipeline (``newswatch.streams.kafka.worker``).
- ``notify`` publishes an ops notice to the matches topic like a match, so the worker
  owning the notice's rule delivers it through the normal pipeline (rendered, retried,
  recorded, deduplicated):

  - a feed-health transition, once per transition however many pollers: a feed is polled
    by one poller at a time (its registry partition's owner), which decides the transition
    on the announced state stored in the compacted feed-health topic
    (``monitor.health.settle_notice``) and makes that write durable before it publishes
    the notice (``before_notice``), so a poller that takes the feed over (a rebalance, a
    restart) knows it was announced. A crash in between loses the notice rather than
    repeating it, as in the embedded runtime;
  - a rejected rule edit, once per edit however many workers: every worker's reloader
    sees the edit and publishes the same notice (its article id derives from the text),
    keyed by the same rule id, so the partition's owner decides the second copy as
    ``same_article``.
- ``tick`` (the worker's timer) publishes a ``TickMessage`` for each rule of the worker's
  table with a digest due or a pending outbox (``newswatch.streams.kafka.ticks``); the
  owner's deliver agent runs ``Pipeline.tick_rule`` for it. Requested dead-letter replays
  travel as ``ReplayMessage`` from ``newswatch dlq replay --kafka`` to the same agent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from newswatch.core.article import Article
from newswatch.streams.alerts import Match
from newswatch.streams.feedback import Click
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    Publish,
    producer_publish,
    reliable_producer,
)
from newswatch.streams.kafka.ledger import Ledger, pending_article, pending_click
from newswatch.streams.kafka.ticks import BlindPlanner, TickPlanner
from newswatch.streams.rulestate import RuleState
from newswatch.streams.runtime import Runtime

# Feed notices are not deduplicated by window in the embedded runtime (decided once per
# transition). In Kafka the worker may read a record twice (a rebalance before its commit):
# the rule state keeps the notice this long, so a re-read is a ``same_article``.
REREAD_WINDOW = 600.0

RuleRows = Callable[[], Iterable[tuple[str, RuleState | None]]]


class KafkaRuntime(Runtime):
    """The contract over Kafka for one process. ``rules`` lists the (rule id, delivery
    state) rows of the worker's local table for ``tick`` (a poller has none: it ticks nothing);
    ``before_notice`` is awaited before each notice is published (the poller's: its
    feed-health writes acknowledged, so a notice is never announced twice); ``blind``
    gives the rules whose blindness check would change their state, on the worker's view
    (``BlindWatch.changed``), which ``tick`` ticks too (``BlindPlanner``)."""

    def __init__(
        self, settings: KafkaSettings, publish: Publish, *,
        rules: RuleRows = lambda: (),
        before_notice: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        blind: Callable[[float], Iterable[str]] | None = None,
    ) -> None:
        self._settings = settings
        self._publish = publish
        self._rules = rules
        self._before_notice = before_notice
        self._clock = clock
        self._planner = TickPlanner()
        self._blind = blind
        self._blind_planner = BlindPlanner()
        self._ledger = Ledger(settings, publish)

    async def take(self, articles: Sequence[Article]) -> None:
        """Record the articles pending in the ledger and publish them; returns once Kafka
        acknowledged every one (``newswatch.streams.kafka.ledger``, step 1)."""
        topic = self._settings.topic(topics.ARTICLES)
        messages = [topics.ArticleMessage(a) for a in articles]
        now = self._clock()
        await asyncio.gather(
            self._ledger.pending(pending_article(m, now) for m in messages),
            *(self._publish(topic, m.key(), m.to_bytes()) for m in messages))

    async def notify(self, notice: Match) -> None:
        """Publish an ops notice to the matches topic, kept ``REREAD_WINDOW`` seconds in
        its rule's state so that a re-read record is not delivered twice."""
        if self._before_notice is not None:
            await self._before_notice()
        message = topics.MatchMessage(replace(
            notice, dedup_window=max(notice.dedup_window, REREAD_WINDOW)))
        await self._publish(self._settings.topic(topics.MATCHES), message.key(),
                            message.to_bytes())

    async def click(self, click: Click) -> None:
        """Record the click pending in the ledger and publish it to the matches topic,
        keyed by its rule id; returns once Kafka acknowledged both (the worker owning the
        rule applies it, once however often it is re-driven)."""
        message = topics.ClickMessage(click)
        await asyncio.gather(
            self._ledger.pending([pending_click(message, self._clock())]),
            self._publish(self._settings.topic(topics.MATCHES), message.key(),
                          message.to_bytes()))

    async def tick(self) -> None:
        """Publish a tick for each rule of ``rules`` the planner says is due, and for
        each rule whose blindness wants checking."""
        now = self._clock()
        due = self._planner.due(self._rules(), now)
        if self._blind is not None:
            due += [r for r in self._blind_planner.due(self._blind, now) if r not in due]
        for rule_id in due:
            message = topics.TickMessage(rule_id)
            await self._publish(self._settings.topic(topics.MATCHES), message.key(),
                                message.to_bytes())


async def publish_notice(settings: KafkaSettings, notice: Match) -> None:
    """Publish one notice with a producer of its own (the worker's rule reloader runs on
    its own event loop, apart from faust's producer)."""
    producer = reliable_producer(settings)
    await producer.start()
    try:
        await KafkaRuntime(settings, producer_publish(producer)).notify(notice)
    finally:
        await producer.stop()


async def publish_rules_status(settings: KafkaSettings, state: Mapping[str, Any]) -> None:
    """Publish the workers' rule set state (``RuleReloader``'s ``rules`` entry) to the
    compacted rules-status topic, with a producer of its own."""
    producer = reliable_producer(settings)
    await producer.start()
    try:
        await producer_publish(producer)(settings.topic(topics.RULES_STATUS), b"rules",
                                         json.dumps(dict(state)).encode())
    finally:
        await producer.stop()
