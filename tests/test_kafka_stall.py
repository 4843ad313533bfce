"""The worker's repairs to faust's consumer against the real broker, with the faust app in
this process (streams/kafka/consumer.py, docs/scaling.md "Stalled partitions"):

- the stall guard: a partition faust stopped consuming (records fetched and dropped,
  nothing acked, so the committed offset never moves) is read again from its committed
  offset, and its alert is delivered once;
- records the fetcher moved past without faust delivering them are read again, never
  committed as a "gap";
- the started worker's consumer never auto-commits (A6)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import faust
from aiokafka import AIOKafkaProducer, TopicPartition
from faust.types import TP
from prometheus_client import CollectorRegistry

from newswatch.core.article import Article
from newswatch.core.metrics import Metrics
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics
from newswatch.streams.kafka.worker import build_app
from newswatch.streams.reload import compile_rules
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


@dataclass
class Worker:
    app: faust.App
    articles: TP
    desk: RecordingNotifier
    metrics: Metrics
    bootstrap: str

    async def publish(self, *titles: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            for title in titles:
                ident = title.split()[-1]
                article = Article(id=ident, feed="f", title=title,
                                  url=f"https://news.example/{ident}")
                message = topics.ArticleMessage(article)
                await producer.send_and_wait(self.articles.topic, key=message.key(),
                                             value=message.to_bytes())
        finally:
            await producer.stop()

    def alerted(self) -> list[str]:
        return [s.title for s in self.desk.sent]


@asynccontextmanager
async def worker(tmp_path: Path, bootstrap: str, stall_after: float) -> AsyncIterator[Worker]:
    """A worker app on a one-partition topic set, started, its articles partition assigned."""
    settings = KafkaSettings(bootstrap=bootstrap, prefix=unique_name("stall") + ".",
                             partitions=1)
    await ensure_topics(settings)
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    matcher = compile_rules([tmp_path / "rules.yaml"], None)
    desk = RecordingNotifier("desk", time.time, min_interval=0)
    metrics = Metrics(CollectorRegistry())
    app = build_app(settings, matcher=lambda: matcher, notifiers={"desk": desk},
                    metrics=metrics, stall_after=stall_after)
    await app.start()
    try:
        articles = TP(settings.topic(topics.ARTICLES), 0)
        await until(lambda: articles in app.consumer.assignment()
                    and app.tables.recovery.completed.is_set(), timeout=60)
        yield Worker(app, articles, desk, metrics, bootstrap)
    finally:
        await app.stop()


async def test_a_partition_faust_stopped_reading_is_read_again(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    async with worker(tmp_path, kafka_bootstrap, stall_after=2.0) as w:
        # docs/reliability.md A6: the worker commits only what its agents processed
        assert w.app.consumer._thread._consumer._enable_auto_commit is False
        # The state a rebalance can leave behind: faust believes it has read the
        # partition past its end, so it drops every record it fetches, unacked.
        w.app.consumer._read_offset[w.articles] = 10**9
        await w.publish("A zephyr over the harbour z1")
        await until(lambda: w.desk.sent, timeout=60)
        rewinds = w.metrics.registry.get_sample_value(
            "newswatch_partition_rewinds_total", {"topic": w.articles.topic})
        assert rewinds is not None and rewinds >= 1
        assert w.alerted() == ["A zephyr over the harbour z1"]


async def test_records_the_fetcher_moved_past_are_read_again_not_committed(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """faust commits past offsets it never delivered (its "gap", meant for compacted
    topics): here the fetch position jumps over two records behind faust's back, as it
    does when faust drops a fetched batch in a rebalance."""
    async with worker(tmp_path, kafka_bootstrap, stall_after=600.0) as w:
        await w.publish("zephyr report z1")
        await until(lambda: w.alerted() == ["zephyr report z1"], timeout=60)
        thread = w.app.consumer._thread
        tp = TopicPartition(w.articles.topic, 0)

        async def pause() -> None:
            thread._ensure_consumer().pause(tp)

        async def skip_two_and_resume() -> None:
            consumer = thread._ensure_consumer()
            consumer.seek(tp, 3)  # offsets 1 and 2 never reach faust
            consumer.resume(tp)

        await thread.call_thread(pause)
        await w.publish("zephyr report z2", "zephyr report z3", "zephyr report z4")
        await thread.call_thread(skip_two_and_resume)
        await until(lambda: len(w.alerted()) >= 4, timeout=60)
        assert sorted(w.alerted()) == [f"zephyr report z{n}" for n in (1, 2, 3, 4)]
        assert w.metrics.registry.get_sample_value(
            "newswatch_partition_rewinds_total", {"topic": w.articles.topic}) == 1
        # nothing committed past an unprocessed record: the committed offset reaches
        # the end only through z2 and z3. The last record is acked after its alert
        # may already be out, so commit until it is (a CI run beside load saw 3).

        async def committed() -> int:
            return int(await thread._ensure_consumer().committed(tp))

        deadline = time.monotonic() + 60
        offsets: list[int] = []
        while not offsets or offsets[-1] < 4:
            assert time.monotonic() < deadline, f"committed offsets seen: {offsets}"
            await w.app.consumer.commit()
            offsets.append(await thread.call_thread(committed))
            await asyncio.sleep(0.1)
        assert offsets[-1] == 4
