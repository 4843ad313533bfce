"""Throttle and digest in the Kafka runtime with a worker killed, against the project's
real Kafka broker: two `newswatch worker` processes, one rule with `dedup: {max_per_hour:
20, digest_interval: 1m}`, 25 matching articles (each its own story) published to the
articles topic, and the fake Slack API as the receiver (issue 13).

The worker owning the rule is killed -9 right after the 20th alert: the other one takes
the partition over and the digest still arrives exactly once, within 1 m + 10 s of its
first entry (the digest's Slack ts, stamped by the fake server, against the entries' times
in the worker's state: the dedup table's changelog), with every article alerted or in it.
About 1.5 min, mostly the digest interval.

With both workers running, the same rule is a shared scenario of both runtimes
(tests/test_scenarios.py)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    ensure_topics,
    producer_publish,
    read_compacted,
    read_topic,
    reliable_producer,
)
from newswatch.streams.kafka.runtime import KafkaRuntime
from newswatch.streams.rulestate import RuleState
from tests.fakes.fixtures import SLACK_TEST_TOKEN
from tests.fakes.slack_api import FakeSlackAPI, StoredMessage
from tests.fakes.stories import distinct_title
from tests.kafka_fixtures import unique_name, wait_for_stable_group
from tests.test_kafka_cluster import Proc, processes
from tests.test_kafka_runtime import drained

RULE = "zircon-watch"
PER_HOUR = 20
ARTICLES = 25
INTERVAL = 60.0  # digest_interval: 1m
LATE_BY = 10.0  # the digest is due INTERVAL after its first entry, and sent within this
TOKEN = re.compile(r"zq\d{3}")
PARTITIONS = 4


def token(n: int) -> str:
    return f"zq{n:03d}"


def write_config(tmp: Path, bootstrap: str, prefix: str, slack: FakeSlackAPI) -> Path:
    (tmp / "rules.yaml").write_text(
        f"rules:\n  - id: {RULE}\n    title: Zircon watch\n    phrases: [zircon]\n"
        f"    notify: [desk]\n"
        f"    dedup: {{max_per_hour: {PER_HOUR}, digest_interval: 1m}}\n", encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"rules: [rules.yaml]\nfeeds: []\n"
        f"receivers:\n  desk:\n    slack:\n      channel: '#desk'\n"
        f"      base_url: {slack.base_url}\n"
        f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n"
        f"  partitions: {PARTITIONS}\n", encoding="utf-8")
    return config


def articles() -> list[Article]:
    """Distinct stories (titles far apart, no lead to compare): each one alert or entry."""
    return [Article(id=token(n), feed="wire", title=f"zircon {distinct_title(n)} {token(n)}",
                    url=f"https://news.example/{token(n)}") for n in range(ARTICLES)]


def tokens(message: StoredMessage) -> set[str]:
    """The articles a message is about (a title and its link both carry the token)."""
    return set(TOKEN.findall(" ".join(message.texts())))


def is_digest(message: StoredMessage) -> bool:
    return any("digest of" in text for text in message.texts())


@dataclass
class Outcome:
    alerts: list[StoredMessage]
    digests: list[StoredMessage]
    first_entry: float  # the worker's time of the sent digest's first entry
    entries: int


async def settled(settings: KafkaSettings, timeout: float = 60.0) -> RuleState:
    """The rule's delivery state once nothing is left to send: no open digest, an empty
    outbox (read from the dedup table's changelog; it has no change event to wait on)."""
    async with asyncio.timeout(timeout):
        while True:
            table = await read_compacted(settings, topics.changelog(topics.DEDUP_TABLE),
                                         key=lambda raw: raw.decode().strip('"'))
            state = RuleState.from_json(table.get(RULE) or {})
            if table.get(RULE) and not state.outbox and not state.digests:
                return state
            await asyncio.sleep(0.5)


async def sent_digest_entries(settings: KafkaSettings, ident: str) -> list[float]:
    """The entry times of the digest item ``ident`` as the worker wrote it (pending) in the
    changelog, before sending it."""
    async for record in read_topic(settings, settings.topic(
            topics.changelog(topics.DEDUP_TABLE))):
        if record.value is None:
            continue
        item = RuleState.from_json(json.loads(record.value)).outbox.get(ident)
        if item is not None and item.digest is not None:
            return [e.at for e in item.digest.entries]
    raise AssertionError(f"digest {ident} is not in the changelog")


async def publish(settings: KafkaSettings, items: list[Article]) -> None:
    producer = reliable_producer(settings)
    await producer.start()
    try:
        await KafkaRuntime(settings, producer_publish(producer)).take(items)
    finally:
        await producer.stop()


async def scenario(tmp: Path, bootstrap: str) -> Outcome:
    """Two workers, 25 articles; the worker that sent the alerts is killed -9 right after
    the 20th. Returns once the rule's state is settled and every event
    processed (then nothing is left that could send a second digest)."""
    tmp.mkdir()
    prefix = unique_name("digest") + "."
    settings = KafkaSettings(bootstrap=bootstrap, prefix=prefix, partitions=PARTITIONS)
    await ensure_topics(settings)
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as slack:
        config = str(write_config(tmp, bootstrap, prefix, slack))
        workers = [Proc(tmp, f"worker{n}", "worker", "--config", config) for n in (1, 2)]
        async with processes(*workers):
            await wait_for_stable_group(bootstrap, prefix + topics.WORKER_APP,
                                        prefix + topics.MATCHES, members=2)
            await publish(settings, articles())

            def alerts() -> list[StoredMessage]:
                return [m for m in slack.messages if not is_digest(m)]

            await slack.wait_until(lambda: len(alerts()) >= PER_HOUR, timeout=120)
            (owner,) = [w for w in workers if w.count_in_logs("result=sent reason=")]
            assert await owner.stop(signal.SIGKILL) == -signal.SIGKILL
            await slack.wait_until(lambda: any(map(is_digest, slack.messages)),
                                   timeout=INTERVAL + 60)
            await settled(settings)
            await drained(bootstrap, prefix)
            digests = [m for m in slack.messages if is_digest(m)]
            ident = digests[0].payload["metadata"]["event_payload"]["id"]
            entries = await sent_digest_entries(settings, ident)
            return Outcome(alerts(), digests, min(entries), len(entries))


def check(outcome: Outcome) -> None:
    alerted = [t for m in outcome.alerts for t in tokens(m)]  # one per alert message
    (digest,) = outcome.digests  # exactly one digest
    in_digest = tokens(digest)
    late = float(digest.ts) - outcome.first_entry
    print(f"\nworker killed -9: "
          f"{len(outcome.alerts)} alerts ({len(set(alerted))} articles), 1 digest of "
          f"{len(in_digest)}, sent {late:.1f}s after its first entry")
    assert len(set(alerted)) == PER_HOUR
    assert sorted(set(alerted) | set(in_digest)) == [token(n) for n in range(ARTICLES)]
    assert not set(alerted) & set(in_digest)
    assert len(in_digest) == outcome.entries == ARTICLES - PER_HOUR
    assert INTERVAL <= late <= INTERVAL + LATE_BY
    # Killed, the alert in flight can go twice in one window only: its send reached Slack
    # before its pending write reached the changelog, so the next owner decides the
    # re-read match afresh. (When the pending write landed and only the "sent" write was
    # lost, the next owner's tick looks the item up and finds it: docs/kafka.md,
    # "Guarantees".)
    assert len(alerted) <= PER_HOUR + 1


async def test_throttled_matches_reach_one_digest_even_when_a_worker_is_killed(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    check(await scenario(tmp_path / "killed", kafka_bootstrap))
