"""The Kafka runtime's stored silences (streams/kafka/silences.py) on the project's real Kafka
broker: `newswatch silence add|list|expire --kafka` act on the compacted `silences` topic,
and a worker's copy of it, following the topic, sees an addition and an expiry as they are
written, and passes over a record that is no silence.

A Slack mute written by a worker and applied by another one is in tests/test_kafka_clicks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, producer_publish, reliable_producer
from newswatch.streams.kafka.silences import SilenceReplica
from newswatch.streams.silences import Silence, SilenceStore
from tests.kafka_fixtures import kafka_bootstrap, unique_name  # noqa: F401
from tests.scenario_clicks import eventually
from tests.test_end_to_end import newswatch


def write_config(tmp: Path, bootstrap: str, prefix: str) -> Path:
    (tmp / "rules.yaml").write_text(
        "rules:\n  - id: amber-watch\n    title: Amber watch\n    phrases: [amber]\n"
        "    notify: [desk]\n", encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        "rules: [rules.yaml]\nreceivers:\n  desk:\n    console: {}\n"
        "silences:\n  - rule: amber-watch\n    until: 2099-01-01\n    reason: from the config\n"
        f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n  partitions: 2\n",
        encoding="utf-8")
    return config


async def listed(config: Path, *flags: str) -> list[dict[str, Any]]:
    code, out, err = await newswatch("silence", "list", "--kafka", "--config", str(config),
                                     "--json", *flags)
    assert code == 0, err
    return [s for s in json.loads(out) if s["origin"] == "state"]


async def test_silences_added_and_expired_with_kafka_reach_a_worker_s_copy(
    tmp_path: Path, kafka_bootstrap: str,  # noqa: F811
) -> None:
    prefix = unique_name("silences") + "."
    config = write_config(tmp_path, kafka_bootstrap, prefix)
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=2)
    assert await listed(config) == []  # no topic yet: nothing stored, no error

    code, out, err = await newswatch("silence", "add", "--kafka", "--config", str(config),
                                     "--country", "ma", "--for", "2h", "--reason", "quiet")
    assert code == 0, err
    ident = out.split()[0]
    (added,) = await listed(config)
    assert (added["id"], added["country"], added["active"]) == (ident, "MA", True)

    copy = SilenceReplica(settings)  # what a worker keeps: followed for its whole life
    following = asyncio.create_task(copy.follow())

    async def in_force() -> list[Silence]:
        return SilenceStore(copy).all()

    producer = reliable_producer(settings)
    await producer.start()
    try:
        await asyncio.wait_for(copy.ready.wait(), timeout=30)
        assert [s.id for s in SilenceStore(copy).all()] == [ident]
        await producer_publish(producer)(settings.topic(topics.SILENCES), b"junk",
                                         b'{"not": "a silence"}')
        code, out, err = await newswatch("silence", "expire", "--kafka", "--config",
                                         str(config), ident)
        assert code == 0 and out.startswith(f"{ident} expired at"), err
        (expired,) = await eventually(
            in_force, lambda found: not found[0].active(added["created"] + 60), timeout=30)
        assert expired.id == ident and "junk" not in copy
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await producer.stop()

    assert await listed(config) == []  # the junk record is passed over
    (gone,) = await listed(config, "--all")
    assert (gone["id"], gone["active"]) == (ident, False)
    code, _, err = await newswatch("silence", "expire", "--kafka", "--config", str(config),
                                   "s-00000000")
    assert code == 1 and "no silence with id 's-00000000'" in err
    code, out, _ = await newswatch("silence", "list", "--kafka", "--config", str(config))
    assert "from the config" in out  # the config's silences are listed beside them
