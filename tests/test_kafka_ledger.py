"""The completion ledger on the project's real Kafka broker (issue 14;
streams/kafka/ledger.py): a record faust never hands to an agent is re-driven, and
delivered once.

A `newswatch worker` with ``redrive_after: 5s``; three articles published as the poller
publishes them; and two records "dropped" the way faust's bookkeeping drops them: an
article and a match recorded pending in the ledger but never seen by an agent (here: never
published). The worker's reconciler publishes both again: every article is alerted exactly
once, the two re-drives are logged with their ids and stages and counted in
``newswatch_kafka_redrives_total``, and the ledger ends empty.
"""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from newswatch.core.article import Article
from newswatch.streams.alerts import Match
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    ensure_topics,
    producer_publish,
    read_compacted,
    reliable_producer,
)
from newswatch.streams.kafka.ledger import Ledger, pending_article, pending_match
from newswatch.streams.kafka.runtime import KafkaRuntime
from tests.fakes.fixtures import SLACK_TEST_TOKEN
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import unique_name, wait_for_stable_group
from tests.test_kafka_cluster import Proc, processes
from tests.test_kafka_runtime import drained, free_port, worker_metrics
from tests.test_scenarios import eventually

RULE = "amber-watch"
TOKEN = re.compile(r"\bamber (a\d|dropped-[am])\b")


def amber(ident: str) -> Article:
    return Article(id=ident, feed="wire", title=f"amber {ident}",
                   url=f"https://news.example/{ident}")


def write_config(tmp: Path, bootstrap: str, prefix: str, slack: FakeSlackAPI,
                 port: int) -> Path:
    (tmp / "rules.yaml").write_text(
        f"rules:\n  - id: {RULE}\n    title: Amber watch\n    phrases: [amber]\n"
        f"    notify: [desk]\n", encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"rules: [rules.yaml]\nfeeds: []\nreceivers:\n  desk:\n    slack:\n"
        f"      channel: '#desk'\n      base_url: {slack.base_url}\n"
        f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n  partitions: 2\n"
        f"  redrive_after: 5s\nmetrics:\n  port: {port}\n", encoding="utf-8")
    return config


async def test_records_no_agent_saw_are_redriven_and_alerted_once(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    prefix = unique_name("ledger") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=2)
    await ensure_topics(settings)
    port = free_port()
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as slack:
        config = str(write_config(tmp_path, kafka_bootstrap, prefix, slack, port))
        worker = Proc(tmp_path, "worker", "worker", "--config", config)
        async with processes(worker):
            await wait_for_stable_group(kafka_bootstrap, prefix + topics.WORKER_APP,
                                        prefix + topics.MATCHES, members=1)
            producer = reliable_producer(settings)
            await producer.start()
            try:
                publish = producer_publish(producer)
                await KafkaRuntime(settings, publish).take([amber(f"a{n}") for n in range(3)])
                ledger = Ledger(settings, publish)
                lost_match = Match(rule_id=RULE, title="Amber watch", severity="medium",
                                   receivers=("desk",), article=amber("dropped-m"),
                                   evidence=())
                await ledger.pending([
                    pending_article(topics.ArticleMessage(amber("dropped-a")), at=0.0),
                    pending_match(topics.MatchMessage(lost_match), at=0.0)])
            finally:
                await producer.stop()
            await slack.wait_until(lambda: len(slack.messages) >= 5, timeout=90)
            await drained(kafka_bootstrap, prefix)
            pending = await eventually(
                lambda: read_compacted(settings, topics.LEDGER), lambda p: not p, timeout=60)
            async with aiohttp.ClientSession() as http:
                metrics = await worker_metrics(http, port, "newswatch_kafka_redrives_total")
        alerted = sorted(t for m in slack.messages
                         for t in set(TOKEN.findall(" ".join(m.texts()))))
    redrives = [line for line in (worker.dir / "run1.log").read_text().splitlines()
                if "re-drove" in line]
    print(f"\nalerts: {alerted}; re-drives: {len(redrives)}")
    assert alerted == ["a0", "a1", "a2", "dropped-a", "dropped-m"]
    assert len(redrives) == 2
    assert any("article/dropped-a: pending for the match stage" in r for r in redrives)
    assert any(f"match/{RULE}/dropped-m: pending for the deliver stage" in r
               for r in redrives)
    assert pending == {}
    assert 'newswatch_kafka_redrives_total{stage="match"} 1.0' in metrics
    assert 'newswatch_kafka_redrives_total{stage="deliver"} 1.0' in metrics
