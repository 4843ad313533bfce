"""The worker's stall guard against the real broker, with the faust app in this process:
a partition faust stopped consuming (records fetched and dropped, nothing acked, so the
committed offset never moves) is read again from its committed offset, and its alert is
delivered once. Also checks the started worker's consumer never auto-commits (A6)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from faust.types import TP
from prometheus_client import CollectorRegistry

from monitor.article import Article
from monitor.cli import compile_rules
from monitor.kafka import KafkaSettings, ensure_topics
from monitor.metrics import Metrics
from streams.kafka_app import build_app
from tests.fakes.notifiers import RecordingNotifier
from tests.kafka_fixtures import unique_name

RULES = """
rules:
  - id: zephyr
    title: Zephyr watch
    phrases: [zephyr]
    notify: [desk]
"""


async def until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_partition_faust_stopped_reading_is_read_again(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=unique_name("stall") + ".",
                             partitions=1)
    await ensure_topics(settings)
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    matcher = compile_rules([tmp_path / "rules.yaml"], None)
    desk = RecordingNotifier("desk", time.time, min_interval=0)
    metrics = Metrics(CollectorRegistry())
    app = build_app(settings, matcher=lambda: matcher, notifiers={"desk": desk},
                    metrics=metrics, stall_after=2.0)
    await app.start()
    try:
        articles = TP(settings.topic("articles"), 0)
        await until(lambda: articles in app.consumer.assignment()
                    and app.tables.recovery.completed.is_set(), timeout=60)
        # reliability.md A6: the worker commits only what its agents processed
        assert app.consumer._thread._consumer._enable_auto_commit is False
        # The state a rebalance can leave behind: faust believes it has read the
        # partition past its end, so it drops every record it fetches, unacked.
        app.consumer._read_offset[articles] = 10**9
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            article = Article(id="z1", feed="f", title="A zephyr over the harbour",
                              url="https://news.example/z1")
            await producer.send_and_wait(articles.topic, key=b"z1",
                                         value=json.dumps(article.to_json()).encode())
        finally:
            await producer.stop()
        await until(lambda: desk.sent, timeout=60)
        rewinds = metrics.registry.get_sample_value(
            "newswatch_partition_rewinds_total", {"topic": articles.topic})
        assert rewinds is not None and rewinds >= 1
        assert [s.title for s in desk.sent] == ["A zephyr over the harbour"]
    finally:
        await app.stop()
