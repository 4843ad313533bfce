"""Blind-rule warnings in the Kafka worker (streams/blindwatch.py does the checking).

Every worker follows the feed-health topic (``FeedStatuses``). Its tick timer looks at
the rules every ``BLIND_SCAN_EVERY`` seconds (``wants``): those its local table holds and
those with a ``feeds:`` key, whose check would change what their state says was
announced; each gets a ``TickMessage``, and the deliver agent of the worker owning the
rule's partition runs the check there (``check``), where the rule's state may be
written. Its notice goes out through the matches topic like every ops notice. Nothing is
judged before the feed-health topic was read to its end (a blind rule would look
recovered). A rule told blind is in the rules-status topic under ``blind/<rule id>``
until it sees again, for ``newswatch status --kafka``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from newswatch.rules.matcher import Matcher
from newswatch.streams.blindwatch import BlindWatch
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, Publish
from newswatch.streams.kafka.feed_state import FeedStatuses
from newswatch.streams.kafka.runtime import KafkaRuntime
from newswatch.streams.pipeline import Pipeline

log = logging.getLogger("newswatch.blindness")

BLIND_KEY = "blind/"  # then the rule id: the rules-status topic's record of a blind rule


class WorkerBlindness:
    """The worker's blind-rule checks. ``rows`` lists the rule ids of its local table;
    ``ops`` is the config's ops receiver (None: changes are logged and kept only)."""

    def __init__(self, settings: KafkaSettings, publish: Publish, *,
                 matcher: Callable[[], Matcher], pipeline: Pipeline,
                 rows: Callable[[], Iterable[str]], ops: str | None,
                 clock: Callable[[], float]) -> None:
        self.statuses = FeedStatuses(settings)
        self._matcher = matcher
        self._pipeline = pipeline
        self._rows = rows
        notices = KafkaRuntime(settings, publish, clock=clock)
        status_topic = settings.topic(topics.RULES_STATUS)

        async def show(rule_id: str, shown: dict[str, Any] | None) -> None:
            await publish(status_topic, f"{BLIND_KEY}{rule_id}".encode(),
                          None if shown is None else json.dumps(shown).encode())

        self._watch = BlindWatch(state=pipeline.rule_state, save=pipeline.save_activity,
                                 statuses=self.statuses.statuses, notify=notices.notify,
                                 receiver=ops, show=show, clock=clock)

    def wants(self, now: float) -> list[str]:
        """The rules whose check would change their state, as this worker sees them."""
        if not self.statuses.ready.is_set():
            return []
        statuses = self.statuses.statuses(now)
        rows = set(self._rows())
        return [rule.id for rule in self._matcher().rules
                if (rule.id in rows or rule.feeds is not None) and self._watch.changed(
                    rule, self._pipeline.rule_state(rule.id) if rule.id in rows else None,
                    now, statuses)]

    async def check(self, rule_id: str) -> None:
        """Check ``rule_id`` (in the deliver agent of its partition's owner)."""
        if not self.statuses.ready.is_set():
            return
        for rule in self._matcher().rules:
            if rule.id == rule_id:
                await self._watch.check(rule)
                return
