"""The Kafka runtime's archive is its articles topic (issue 17): kept ``archive.days`` days
from creation, checked by ``config check --kafka``, and read by time for ``rules backtest
--kafka`` and ``search --kafka``, with the same results as the embedded archive of the same
articles."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from newswatch.core.archive import DAY, Archive, ArchivedArticle
from newswatch.core.state import Database
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.archive import KafkaArchive
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics, reliable_producer
from tests.kafka_fixtures import kafka_admin, kafka_bootstrap, unique_name  # noqa: F401
from tests.test_backtest import a_week, write_setup
from tests.test_cli import newswatch


async def publish_at(settings: KafkaSettings, items: Sequence[ArchivedArticle],
                     extra: Sequence[tuple[bytes, bytes, float]] = ()) -> None:
    """Each item as a poller publishes it, at its ``seen_at``; then ``extra`` raw records
    (key, value, time)."""
    producer = reliable_producer(settings)
    await producer.start()
    try:
        topic = settings.topic(topics.ARTICLES)
        for item in items:
            message = topics.ArticleMessage(item.article)
            await producer.send_and_wait(topic, message.to_bytes(), key=message.key(),
                                         timestamp_ms=round(item.seen_at * 1000))
        for key, value, at in extra:
            await producer.send_and_wait(topic, value, key=key, timestamp_ms=round(at * 1000))
    finally:
        await producer.stop()


async def retention(bootstrap: str, topic: str) -> int:
    async with kafka_admin(bootstrap) as admin:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": None})])
    (resource,) = response.to_object()["resources"]
    return int(next(e["config_value"] for e in resource["config_entries"]
                    if e["config_names"] == "retention.ms"))


def kafka_config(tmp_path: Path, bootstrap: str, prefix: str, days: int = 30) -> None:
    """Point the setup's config at the cluster (``write_setup`` wrote the rest)."""
    config = tmp_path / "config.yaml"
    base = config.read_text(encoding="utf-8").split("archive:")[0]
    config.write_text(base + f"archive: {{days: {days}}}\n"
                      + f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n"
                      + "  partitions: 3\n", encoding="utf-8")


def test_the_articles_topic_keeps_archive_days_and_config_check_says_when_it_does_not(
    tmp_path: Path, kafka_bootstrap: str,  # noqa: F811
) -> None:
    write_setup(tmp_path)
    prefix = unique_name("retention") + "."
    kafka_config(tmp_path, kafka_bootstrap, prefix, days=30)
    config = str(tmp_path / "config.yaml")
    done = newswatch("config", "check", "--kafka", "--config", config, cwd=tmp_path)
    assert done.returncode == 1 and "does not exist yet" in done.stdout, done.stdout

    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=3,
                             archive_days=7)
    asyncio.run(ensure_topics(settings))
    assert asyncio.run(retention(kafka_bootstrap, prefix + topics.ARTICLES)) == 7 * 86_400_000
    done = newswatch("config", "check", "--kafka", "--config", config, cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "archive.days is 30 but the topic" in done.stdout and "keeps articles 7 day(s)" \
        in done.stdout and "retention.ms=2592000000" in done.stdout

    kafka_config(tmp_path, kafka_bootstrap, prefix, days=7)
    done = newswatch("config", "check", "--kafka", "--config", config, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_check_kafka_names_a_cluster_that_does_not_answer(tmp_path: Path) -> None:
    write_setup(tmp_path)
    kafka_config(tmp_path, "127.0.0.1:9", "nowhere.")
    done = newswatch("config", "check", "--kafka", "--config", str(tmp_path / "config.yaml"),
                     cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "kafka: cannot read the cluster at 127.0.0.1:9" in done.stdout


@pytest.fixture
def both_archives(tmp_path: Path, kafka_bootstrap: str  # noqa: F811
                  ) -> tuple[Path, Path, list[str]]:
    """The week of tests/test_backtest.py in the state's archive and on a fresh articles
    topic, where one article is also re-published (a re-drive) and one record is no
    article: (config, edited rules, the week's --since/--until)."""
    config, edited, week = write_setup(tmp_path)
    prefix = unique_name("archive") + "."
    kafka_config(tmp_path, kafka_bootstrap, prefix)
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=3,
                             archive_days=30)
    asyncio.run(ensure_topics(settings))
    items = a_week_of(tmp_path)
    redrive = items[3]
    asyncio.run(publish_at(settings, items, extra=[
        (redrive.article.id.encode(), topics.ArticleMessage(redrive.article).to_bytes(),
         redrive.seen_at + 60),
        (b"junk", b"not an article", items[-1].seen_at)]))
    return config, edited, week


def a_week_of(tmp_path: Path) -> list[ArchivedArticle]:
    """The items ``write_setup`` archived in ``tmp_path``'s state (read back)."""
    db = Database.open(tmp_path / "state.db", readonly=True)
    try:
        return list(Archive(db.archive(), 30).read(0))
    finally:
        db.close()


def test_rules_backtest_kafka_gives_what_the_embedded_archive_gives(
    tmp_path: Path, both_archives: tuple[Path, Path, list[str]],
) -> None:
    config, edited, week = both_archives
    embedded = newswatch("rules", "backtest", str(edited), "--config", str(config), "--json",
                         *week, cwd=tmp_path)
    kafka = newswatch("rules", "backtest", str(edited), "--config", str(config), "--json",
                      "--kafka", *week, cwd=tmp_path)
    assert embedded.returncode == 0 and kafka.returncode == 0, embedded.stderr + kafka.stderr
    report = json.loads(kafka.stdout)
    assert report == json.loads(embedded.stdout)
    assert report["articles"] == 31  # the re-published article and the junk record: passed over
    gained = {d["rule"]: d["gained"] for d in report["diff"]}
    assert len(gained["us-maghreb-military"]) == 1


def test_search_kafka_gives_what_the_embedded_archive_gives(
    tmp_path: Path, both_archives: tuple[Path, Path, list[str]],
) -> None:
    config, _, _ = both_archives
    query = 'phrases: ["accord militaire"], countries: {all: [US, MA]}'
    embedded = newswatch("search", query, "--config", str(config), "--json", "--since", "8d",
                         cwd=tmp_path)
    kafka = newswatch("search", query, "--config", str(config), "--json", "--since", "8d",
                      "--kafka", cwd=tmp_path)
    assert embedded.returncode == 0 and kafka.returncode == 0, embedded.stderr + kafka.stderr
    assert json.loads(kafka.stdout) == json.loads(embedded.stdout)
    assert len(json.loads(kafka.stdout)) == 3


def test_reading_by_time_starts_and_stops_at_the_partitions_offsets_for_those_times(
    kafka_bootstrap: str,  # noqa: F811
) -> None:
    prefix = unique_name("bytime") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=3,
                             archive_days=30)
    asyncio.run(ensure_topics(settings))
    items = a_week(time.time())
    asyncio.run(publish_at(settings, items))
    archive = KafkaArchive(settings, 30)
    since, until = items[3].seen_at, items[10].seen_at  # Algeria to the 7th zircon story
    read = list(archive.read(since, until))
    assert read == items[3:10]
    assert list(archive.read(0)) == sorted(items, key=lambda i: (i.seen_at, i.article.id))
    assert archive.count(since, until) >= len(read)
    assert list(archive.read(items[-1].seen_at + DAY)) == []
