"""``newswatch rules stats --kafka`` on the real broker: the decisions and clicks of
tests/test_rules_stats.py as the Kafka workers keep them (the decisions topic; the
``feedback`` table's changelog topic, JSON keys and values) and their articles on the
articles topic give the same report as the state file. (The worker applying clicks into
that table is tests/test_kafka_clicks.py; the worker publishing its decisions,
tests/test_scenarios.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiokafka.admin import NewTopic

from newswatch.core.archive import Archive
from newswatch.core.config import load_config
from newswatch.core.feedback import MappingFeedback
from newswatch.core.state import Database
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    ensure_topics,
    producer_publish,
    reliable_producer,
)
from newswatch.streams.kafka.decisions import DecisionTopic
from tests.fakes.fixtures import slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import (  # noqa: F401
    create_topics,
    kafka_admin,
    kafka_bootstrap,
    unique_name,
)
from tests.test_kafka_archive import publish_at
from tests.test_rules_stats import alerts_rated, by_rule, stats
from tests.test_slack_e2e import newswatch


async def publish_table(settings: KafkaSettings, table: dict[str, object]) -> None:
    """``table`` written to the feedback changelog as faust writes a table: JSON key,
    JSON value."""
    name = settings.topic(topics.changelog(topics.FEEDBACK_TABLE))
    async with kafka_admin(settings.bootstrap) as admin:
        await create_topics(admin, NewTopic(name, settings.partitions, 1))
    producer = reliable_producer(settings)
    await producer.start()
    try:
        for key, value in table.items():
            await producer.send_and_wait(name, json.dumps(value).encode(),
                                         key=json.dumps(key).encode())
    finally:
        await producer.stop()


async def test_rules_stats_kafka_reads_the_clicks_and_articles_topics(
    tmp_path: Path, slack_api: FakeSlackAPI, kafka_bootstrap: str,  # noqa: F811
) -> None:
    config = await alerts_rated(tmp_path, slack_api)
    embedded = await stats(config)

    loaded = load_config(config)
    db = Database.open(loaded.state, readonly=True)
    try:
        decisions = db.decisions(10_000)
        archived = list(Archive(db.archive(), 30).read(0))
        table: dict[str, object] = {}
        worker_table = MappingFeedback(table)
        for record in db.feedback().records():
            worker_table.add(record)
    finally:
        db.close()
    prefix = unique_name("stats") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=3,
                             archive_days=30)
    await ensure_topics(settings)
    await publish_at(settings, archived)
    await publish_table(settings, table)
    producer = reliable_producer(settings)
    await producer.start()
    try:
        topic = DecisionTopic(settings, producer_publish(producer))
        for decision in reversed(decisions):  # the state lists the newest first
            topic.log_decision(decision)
        await topic.flush()
    finally:
        await producer.stop()
    with config.open("a", encoding="utf-8") as out:
        out.write(f"kafka:\n  bootstrap: {kafka_bootstrap}\n  topic_prefix: {prefix}\n"
                  "  partitions: 3\n")

    code, out, err = await newswatch("rules", "stats", "--config", str(config), "--kafka",
                                     "--json")
    assert code == 0, err
    report = json.loads(out)
    del report["since"], embedded["since"]  # when each command ran
    assert report == embedded  # the whole report, volumes included
    assert by_rule(report)["maghreb-military"]["suggested_excludes"][0]["term"] == "football"
    assert by_rule(report)["maghreb-military"]["alerts"] > 0
    code, kafka_text, err = await newswatch("rules", "stats", "--config", str(config),
                                            "--kafka")
    assert code == 0, err
    code, state_text, err = await newswatch("rules", "stats", "--config", str(config))
    assert kafka_text.split("\n")[1:] == state_text.split("\n")[1:]  # but the span's start
    assert "precision 40%" in kafka_text


def test_an_unreachable_cluster_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    (tmp_path / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    config.write_text("state: ./state.db\nrules: [rules.yaml]\nfeeds: []\nreceivers: {}\n"
                      "kafka:\n  bootstrap: 127.0.0.1:1\n", encoding="utf-8")
    code, _, err = asyncio.run(newswatch("rules", "stats", "--config", str(config),
                                         "--kafka"))
    assert code == 2 and "kafka: 127.0.0.1:1" in err
