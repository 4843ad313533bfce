"""The Kafka runtime's audit trail: every delivery decision of every worker, a record of the
``decisions`` topic (key: rule id; value: the ``Decision`` as JSON), kept ``archive.days``
like the articles. ``newswatch rules stats --kafka`` counts a rule's volumes from it, as
the embedded runtime's from the state's ``decisions`` table.

A worker logs each decision and hands it to its producer without waiting (a decision is
logged inside the deliver agent's event, which must not wait on the cluster for a record
no alert depends on); the producer sends it with the event's other records. A worker
that dies may lose the decisions of its last moments from the topic, never from its log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from newswatch.core.state import Decision
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, read_topic

__all__ = ["DecisionTopic", "read_decisions"]

log = logging.getLogger("newswatch.delivery")


class DecisionTopic:
    """A ``DecisionLog`` that publishes each decision with ``send`` (which returns once the
    record is in the producer's buffer)."""

    def __init__(self, settings: KafkaSettings,
                 send: Callable[[str, bytes, bytes | None], Awaitable[None]]) -> None:
        self._topic = settings.topic(topics.DECISIONS)
        self._send = send
        self._pending: set[asyncio.Task[None]] = set()

    def log_decision(self, d: Decision) -> None:
        task = asyncio.ensure_future(self._publish(d))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait for the decisions handed to the producer so far."""
        if self._pending:
            await asyncio.gather(*list(self._pending))

    async def _publish(self, d: Decision) -> None:
        try:
            await self._send(self._topic, d.rule_id.encode(),
                             json.dumps(asdict(d), ensure_ascii=False).encode())
        except Exception as error:  # the log line has it; the alert does not depend on it
            log.warning("decision of %s for %s not published: %r", d.rule_id, d.article,
                        error)


def decision_from_json(data: dict[str, Any]) -> Decision:
    return Decision(at=float(data["at"]), rule_id=str(data["rule_id"]),
                    article=str(data["article"]), title=str(data.get("title", "")),
                    receiver=str(data["receiver"]), verdict=str(data["verdict"]),
                    reason=str(data.get("reason", "")), result=str(data["result"]),
                    ref=None if data.get("ref") is None else str(data["ref"]),
                    story=None if data.get("story") is None else str(data["story"]))


async def read_decisions(settings: KafkaSettings, since: float) -> list[Decision]:
    """The decisions made at or after ``since`` (Unix seconds), oldest first (none before
    any worker ran). KafkaError when the cluster cannot be read."""
    found: list[Decision] = []
    async for record in read_topic(settings, settings.topic(topics.DECISIONS), since=since):
        try:
            decision = decision_from_json(json.loads(record.value or b"null"))
        except (KeyError, TypeError, ValueError) as error:
            log.warning("decisions topic: a record that is no decision (%r): ignored", error)
            continue
        if decision.at >= since:
            found.append(decision)
    return sorted(found, key=lambda d: d.at)
