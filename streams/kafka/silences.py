"""The Kafka runtime's stored silences: the compacted topic ``silences`` (silence id →
``Silence`` JSON), read whole by every worker.

A mute clicked in Slack is stored by the worker owning the alert's rule, and
``newswatch silence add|expire --kafka`` store theirs from any machine; a silence may cover
matches of any rule (a country, a person, a feed), and so any worker's. So every worker
keeps a copy of the whole topic (:class:`SilenceReplica`): ``follow`` reads it from its
first offset and then every new record as it comes, and the worker's ``SilenceStore``
reads that copy for every match, beside the config's silences.

Writes go through the same mapping: ``replica[id] = json`` is queued (and read back at
once), ``flush`` publishes what is queued and returns once Kafka acknowledged it. A write
that fails is dropped from the copy, so the copy never shows a silence Kafka does not
have. The click handler awaits ``flush`` before it records the click
(``ClickHandler(durable=…)``): a click recorded is a mute kept.

A worker that starts waits (at most ``READY_WITHIN`` seconds) until its copy has read the
topic to the end before it delivers anything, so a silence stored before it started is in
force for its first match. Between workers, a silence reaches the others within the time
to read one record: the worker that stored a mute is the one that delivers its rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    Publish,
    ensure_topics,
    follow_topic,
    keep_following,
    producer_publish,
    read_compacted,
    reliable_producer,
)
from newswatch.streams.silences import Silence

__all__ = ["READY_WITHIN", "SilenceReplica", "stored_silences"]

log = logging.getLogger("newswatch.silences")

READY_WITHIN = 30.0  # seconds a starting worker waits for the silences before delivering
RESTART_AFTER = 5.0  # seconds before a follower that failed starts over
RECHECK = 10.0  # seconds between looks for a silences topic that does not exist yet
_DELETED = object()  # a queued tombstone


class SilenceReplica(MutableMapping[str, Any]):
    """The silences topic as a mapping (id → silence JSON), for ``SilenceStore``: reads
    from this process's copy, writes queued until ``flush`` (see the module docstring).
    ``publish`` is the process's producer (none: read only)."""

    def __init__(self, settings: KafkaSettings, publish: Publish | None = None) -> None:
        self._settings = settings
        self._topic = settings.topic(topics.SILENCES)
        self._publish = publish
        self._copy: dict[str, Any] = {}
        self._queued: dict[str, Any] = {}
        self.ready = asyncio.Event()  # the copy has read the topic to its end once

    # ------------------------------------------------------------------ the mapping

    def __getitem__(self, key: str) -> Any:
        value = self._queued.get(key, self._copy.get(key, _DELETED))
        if value is _DELETED:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        merged = {**self._copy, **self._queued}
        return iter([k for k, v in merged.items() if v is not _DELETED])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, key: str, value: Any) -> None:
        self._queued[key] = value

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when there is none
        self._queued[key] = _DELETED

    # ------------------------------------------------------------------ Kafka

    async def flush(self) -> None:
        """Publish the queued writes; returns once Kafka acknowledged every one. On
        failure they are dropped (the copy shows what Kafka has) and the error raised."""
        queued, self._queued = self._queued, {}
        if not queued:
            return
        if self._publish is None:
            raise RuntimeError("SilenceReplica.flush without a producer")
        await asyncio.gather(*(self._publish(
            self._topic, key.encode(),
            None if value is _DELETED else json.dumps(value, ensure_ascii=False).encode())
            for key, value in queued.items()))
        for key, value in queued.items():
            self._apply(key, None if value is _DELETED else value)

    def _apply(self, key: str, value: Any) -> None:
        if value is None:
            self._copy.pop(key, None)
            return
        try:
            Silence.from_json(value)  # one bad record must not break every decision
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            log.warning("silences topic: record %r is not a silence (%r): ignored",
                        key[:80], error)
            return
        self._copy[key] = value

    def apply_record(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic, in offset order."""
        if key is None:
            return
        ident = key.decode("utf-8", "replace")
        try:
            self._apply(ident, None if value is None else json.loads(value))
        except ValueError as error:
            log.warning("silences topic: record %r is not JSON (%s): ignored",
                        ident[:80], error)

    async def load(self) -> None:
        """Read the topic once, to its current end (a command's view)."""
        for key, value in (await read_compacted(self._settings, topics.SILENCES)).items():
            self._apply(key, value)
        self.ready.set()

    async def follow(self) -> None:
        """Keep the copy up to date until cancelled (a worker's task); trouble with the
        cluster is logged, and reading starts over from the first offset."""
        await keep_following(self._follow, what="following the silences topic", logger=log,
                             after=RESTART_AFTER)

    async def _follow(self) -> None:
        await follow_topic(self._settings, self._topic, self.apply_record, self.ready,
                           recheck=RECHECK)


@asynccontextmanager
async def stored_silences(settings: KafkaSettings, *,
                          write: bool = False) -> AsyncIterator[SilenceReplica]:
    """The silences topic read to its end, for a command; with ``write``, what was
    written to it is published (and acknowledged) when the block ends without error."""
    if not write:
        replica = SilenceReplica(settings)
        await replica.load()
        yield replica
        return
    await ensure_topics(settings)  # a cluster that never ran a worker has no topic yet
    producer = reliable_producer(settings)
    await producer.start()
    try:
        replica = SilenceReplica(settings, producer_publish(producer))
        await replica.load()
        yield replica
        await replica.flush()
    finally:
        await producer.stop()
