"""Dead letters of the Kafka runtime, read and replayed from any machine
(``newswatch dlq list|replay --kafka``).

Two kinds:

- *Delivery* dead letters: alerts a receiver refused for good (or kept failing for an
  hour). The worker keeps them in its faust Table ``dead-letters`` (the same entries as the
  embedded runtime's ``dlq``); the table is the latest value per key of its changelog topic
  (``topics.changelog(topics.DEAD_LETTERS_TABLE)``, JSON keys and values; a tombstone
  removes the key). Only the worker writes the table, so a replay is a *request*: a
  ``ReplayMessage`` on the matches topic, keyed by the entries' rule id. It lands on the
  partition whose table partition holds the entries (faust writes a table's changelog to
  the partition of the event being processed, and every event of a rule is keyed by its
  id), and the worker replays them through the rule's dedup state: an alert the receiver
  meanwhile got is not sent again, so requesting twice delivers once.
- *Poison* events: events an agent could not process (invalid JSON, a bug), on the
  ``alerts-dlq`` topic as a ``PoisonRecord`` with the event's own key;
  their id is ``poison:<partition>:<offset>``. Replaying one re-publishes the event with its
  key to its source topic (stage ``match`` → articles, ``deliver`` → matches), where it
  goes through matching and dedup again. The topic is a log: an entry stays (until the
  topic's retention) after its replay, and an event that is still poison comes back as a
  new entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newswatch.core.printable import one_line
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    read_compacted,
    read_topic,
    reliable_producer,
)
from newswatch.streams.kafka.topics import MessageError, PoisonRecord, ReplayMessage

POISON_PREFIX = "poison:"
EXCERPT = 80  # characters of a poison event shown by `dlq list`


@dataclass(frozen=True, slots=True)
class Poison:
    """One record of the ``alerts-dlq`` topic. ``event`` is the event as the worker kept
    it: decoded as UTF-8 (invalid bytes replaced) and cut at 100,000 characters."""

    id: str
    key: bytes | None
    stage: str
    reason: str
    message: str
    at: float
    event: str

    def excerpt(self) -> str:
        """The event's first characters, control characters shown as escapes."""
        return one_line(self.event[:EXCERPT]) + ("…" if len(self.event) > EXCERPT else "")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What ``replay`` did with one id: ``found`` is False for an unknown id (or a poison
    event whose stage names no source topic)."""

    id: str
    found: bool
    outcome: str


def poison_id(partition: int, offset: int) -> str:
    return f"{POISON_PREFIX}{partition}:{offset}"


def _json_key(raw: bytes) -> str:
    return str(json.loads(raw))


async def delivery_dead_letters(settings: KafkaSettings) -> dict[str, dict[str, Any]]:
    """The worker's delivery dead letters, id → entry (empty before any worker ran)."""
    return await read_compacted(settings, topics.changelog(topics.DEAD_LETTERS_TABLE),
                                key=_json_key)


def _poison(ident: str, key: bytes | None, value: bytes | None) -> Poison:
    try:
        record = PoisonRecord.from_bytes(value)
        return Poison(id=ident, key=key, stage=record.stage, reason=record.reason,
                      message=record.message, at=record.at, event=record.event)
    except MessageError as error:  # not written by a worker: shown, not replayed
        return Poison(id=ident, key=key, stage="", reason="unreadable dead-letter record",
                      message=str(error), at=0.0,
                      event=(value or b"").decode("utf-8", "replace"))


async def poison_events(settings: KafkaSettings) -> list[Poison]:
    """Every record of the ``alerts-dlq`` topic, oldest first."""
    found = [_poison(poison_id(r.partition, r.offset), r.key, r.value)
             async for r in read_topic(settings, settings.topic(topics.ALERTS_DLQ))]
    return sorted(found, key=lambda p: p.at)


async def replay(settings: KafkaSettings, ids: Sequence[str] | None) -> list[ReplayResult]:
    """Request the replay of delivery dead letters and re-publish poison events; ``ids``
    None means every delivery dead letter (poison events only by id: they stay on their
    topic, so replaying all of them each time would multiply the ones still poison).
    Returns one result per id, in order; everything is acknowledged by all in-sync
    replicas when it returns."""
    entries = await delivery_dead_letters(settings)
    if ids is None:
        wanted = [e for e, _ in sorted(entries.items(), key=lambda kv: float(kv[1]["at"]))]
    else:
        wanted = list(dict.fromkeys(ids))
    poison: dict[str, Poison] = {}
    if any(i.startswith(POISON_PREFIX) for i in wanted):
        poison = {p.id: p for p in await poison_events(settings)}
    results: dict[str, ReplayResult] = {}
    sends: list[tuple[str, bytes | None, bytes]] = []  # topic, key, value
    by_rule: dict[str, list[str]] = {}
    for ident in wanted:
        if ident in entries:
            by_rule.setdefault(str(entries[ident]["rule_id"]), []).append(ident)
            results[ident] = ReplayResult(ident, True, "requested; a worker replays it "
                                          "through dedup")
        elif (event := poison.get(ident)) is not None:
            source = topics.SOURCE_TOPICS.get(event.stage)
            if source is None:
                results[ident] = ReplayResult(ident, False, "not replayable: unknown stage "
                                              f"{event.stage!r}")
                continue
            topic = settings.topic(source)
            sends.append((topic, event.key, event.event.encode("utf-8")))
            results[ident] = ReplayResult(ident, True, f"re-published to {topic}")
        else:
            results[ident] = ReplayResult(ident, False, "not found")
    matches = settings.topic(topics.MATCHES)
    requests = [ReplayMessage(rule_id, tuple(idents)) for rule_id, idents in by_rule.items()]
    sends += [(matches, m.key(), m.to_bytes()) for m in requests]
    if sends:
        producer = reliable_producer(settings)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=key, value=value)
                       for topic, key, value in sends]
            for future in futures:
                await future  # raises if the broker did not take it
        finally:
            await producer.stop()
    return [results[i] for i in wanted]
