"""`newswatch dlq list|replay --kafka` against the project's real Kafka broker: a real
`newswatch worker` process, the fake Slack Web API refusing for good (channel_not_found)
and then accepting, and a poison article on the articles topic."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer

from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics
from newswatch.streams.kafka.dlq import Poison, delivery_dead_letters, poison_events
from tests.fakes.fixtures import SLACK_TEST_TOKEN, slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import unique_name
from tests.test_end_to_end import newswatch
from tests.test_kafka_runtime import RULES, SEED, TITLE, drained, stop

T = TypeVar("T")
POISON = b'{"id": "broken", "title": "cut off mid-'  # invalid JSON: the match agent fails


def write_config(tmp: Path, bootstrap: str, prefix: str, slack: FakeSlackAPI) -> Path:
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"rules: [rules.yaml]\n"
        f"receivers:\n  desk:\n    slack:\n      channel: '#maghreb'\n"
        f"      base_url: {slack.base_url}\n"
        f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n  partitions: 2\n",
        encoding="utf-8")
    return config


@asynccontextmanager
async def worker(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A `newswatch worker` process (faust keeps its data directory in the log's folder);
    its log is printed if the test fails."""
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "newswatch", "worker", "--config", str(config),
            env={**os.environ, "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN}, cwd=log.parent,
            stdout=asyncio.subprocess.DEVNULL, stderr=sink)
        try:
            yield proc
        except BaseException:
            print(log.read_text(encoding="utf-8", errors="replace")[-20_000:])
            raise
        finally:
            code = await stop(proc)
        assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-5_000:]


async def eventually(read: Callable[[], Awaitable[T]], done: Callable[[T], bool],
                     timeout: float = 60) -> T:
    """``read()`` until ``done`` holds; the last value when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)  # a topic has no change notification to await


async def listing(config: Path) -> list[dict[str, Any]]:
    code, out, err = await newswatch("dlq", "list", "--kafka", "--config", str(config),
                                     "--json")
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


async def test_kafka_dead_letters_are_listed_replayed_once_and_poison_republished(
    tmp_path: Path, kafka_bootstrap: str, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    prefix = unique_name("nw") + "."
    settings = KafkaSettings(bootstrap=kafka_bootstrap, prefix=prefix, partitions=2)
    config = write_config(tmp_path, kafka_bootstrap, prefix, slack_api)
    await ensure_topics(settings)
    slack_api.script("chat.postMessage", ok=False, error="channel_not_found", times=50)
    article = Article(id="seed-1", feed="seed", title=TITLE,
                      url="https://news.example/maroc-usa",
                      content=SEED.read_text(encoding="utf-8"), language="fr")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        seed = topics.ArticleMessage(article)
        await producer.send_and_wait(settings.topic(topics.ARTICLES), key=seed.key(),
                                     value=seed.to_bytes())
        await producer.send_and_wait(settings.topic(topics.ARTICLES), key=b"broken",
                                     value=POISON)
    finally:
        await producer.stop()

    async with worker(config, tmp_path / "worker.log"):
        await slack_api.wait_for_calls(1, timeout=90)  # the refused alert

        async def both() -> tuple[dict[str, dict[str, Any]], list[Poison]]:
            return await delivery_dead_letters(settings), await poison_events(settings)

        letters, poison = await eventually(both, lambda v: bool(v[0]) and bool(v[1]))
        assert len(letters) == 1 and len(poison) == 1, (letters, poison)
        rows = await listing(config)
        assert [r["kind"] for r in rows] == ["delivery", "poison"]
        delivery, bad = rows
        assert (delivery["receiver"], delivery["reason"], delivery["item_kind"],
                delivery["state"], delivery["rule_id"]) == (
            "desk", "channel_not_found", "alert", "dead", "us-maghreb-military")
        assert delivery["title"] == TITLE and "match" not in delivery
        assert (bad["stage"], bad["reason"], bad["key"]) == ("match", "JSONDecodeError",
                                                              "broken")
        assert bad["id"].startswith("poison:") and bad["excerpt"] == POISON.decode()
        code, out, err = await newswatch("dlq", "list", "--kafka", "--config", str(config))
        assert code == 0, err
        assert delivery["id"] in out and "channel_not_found" in out and bad["id"] in out
        assert "aiokafka" not in err  # a one-shot command does not log the client's chatter

        # The channel is fixed: replaying twice delivers once.
        refused = len(slack_api.calls_to("chat.postMessage"))
        assert refused == 1 and slack_api.messages == []
        assert slack_api.unscript("chat.postMessage") == 49
        for _ in range(2):
            code, out, err = await newswatch("dlq", "replay", "--kafka", "--config",
                                             str(config), "--all")
            assert code == 0, err
            assert out in ("", f"{delivery['id']}: requested; a worker replays it "
                               "through dedup\n"), out
        await slack_api.wait_until(lambda: len(slack_api.messages) >= 1, timeout=30)
        letters = await eventually(lambda: delivery_dead_letters(settings),
                                   lambda v: not v)
        assert letters == {}
        await drained(kafka_bootstrap, prefix, [topics.MATCHES])
        assert len(slack_api.messages) == 1
        assert "Mark Esper" in json.dumps(slack_api.messages[0].payload, ensure_ascii=False)
        assert [r["kind"] for r in await listing(config)] == ["poison"]

        # The poison article goes back to the articles topic, and (still poison) comes back.
        code, out, err = await newswatch("dlq", "replay", "--kafka", "--config", str(config),
                                         "--id", bad["id"], "--id", "poison:9:999",
                                         "--id", "nope")
        assert code == 1, err
        assert out.splitlines() == [f"{bad['id']}: re-published to {prefix}{topics.ARTICLES}",
                                    "poison:9:999: not found", "nope: not found"]
        poison = await eventually(lambda: poison_events(settings), lambda v: len(v) >= 2)
        assert len(poison) == 2 and poison[1].id != bad["id"]
        assert (poison[1].key, poison[1].event, poison[1].stage) == (
            b"broken", POISON.decode(), "match")
        assert len(slack_api.messages) == 1
