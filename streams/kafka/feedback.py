"""The Kafka runtime's click records read back, for ``newswatch rules stats --kafka``: the
worker's faust table ``feedback`` lives in its changelog topic
(``<prefix>worker-feedback-changelog``, docs/slack.md), whose keys are JSON strings
(``click/<key>`` for a record, ``lines/…`` for an alert's answer lines)."""

from __future__ import annotations

import json

from newswatch.core.feedback import FeedbackRecord, MappingFeedback
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, read_compacted

__all__ = ["feedback_records"]


def _json_key(raw: bytes) -> str:
    return str(json.loads(raw))


async def feedback_records(settings: KafkaSettings, since: float) -> list[FeedbackRecord]:
    """The click records applied at or after ``since``, oldest first (none before any
    worker ran). KafkaError when the cluster cannot be read."""
    table = await read_compacted(settings, topics.changelog(topics.FEEDBACK_TABLE),
                                 key=_json_key)
    found = MappingFeedback(table).records()
    return sorted((r for r in found if r.at >= since), key=lambda r: (r.at, r.key))
