"""The Kafka runtime end to end: `newswatch poll` and `newswatch worker` as real processes
against the project's real Kafka broker, a local feed server and a Slack-API server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from newswatch.streams.kafka import topics
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_TEST_TOKEN, slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import unique_name

SEED = Path(__file__).parent / "data" / "seed_fr.txt"
TITLE = "Le Maroc et les États-Unis signent un accord de coopération militaire"
RULES = """
rules:
  - id: us-maghreb-military
    title: US military agreements in the Maghreb
    countries: {all: [US, MA]}
    phrases: ["accord militaire"]
    people: ["Mark Esper"]
    notify: [desk]
"""


def write_config(tmp: Path, bootstrap: str, prefix: str, feeds: FeedServer,
                 slack: FakeSlackAPI) -> Path:
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"rules: [rules.yaml]\nfeeds:\n  - name: seed\n    url: {feeds.url('/a.xml')}\n"
        f"receivers:\n  desk:\n    slack:\n      channel: '#maghreb'\n"
        f"      base_url: {slack.base_url}\n"
        f"fetch:\n  allow: ['{feeds.allow}']\n"
        f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n  partitions: 2\n",
        encoding="utf-8")
    return config


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "newswatch", *args,
        env={**os.environ, "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise


async def drained(bootstrap: str, prefix: str, names: Sequence[str] = topics.STREAMED,
                  timeout: float = 60) -> None:
    """Wait until the worker group of ``prefix`` has committed every message of the topics
    ``names`` (lag 0; by default the topics its agents stream)."""
    group = prefix + topics.WORKER_APP
    streamed = [prefix + name for name in names]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in streamed
                 for p in (consumer.partitions_for_topic(t) or set())]
        deadline = time.monotonic() + timeout
        while True:
            ends = await consumer.end_offsets(parts)
            committed = await admin.list_consumer_group_offsets(group)
            lag = {tp: ends[tp] - (committed[tp].offset if tp in committed else 0)
                   for tp in parts}
            if all(v <= 0 for v in lag.values()):
                return
            assert time.monotonic() < deadline, f"consumer lag stays {lag}"
            await asyncio.sleep(0.2)  # offsets have no change notification to await
    finally:
        await consumer.stop()
        await admin.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def kafka_status(config: Path, timeout: float = 30) -> list[dict[str, object]]:
    """`newswatch status --kafka --json`, once the poller's health record has landed."""
    deadline = time.monotonic() + timeout
    while True:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "newswatch", "status", "--kafka", "--json",
            "--config", str(config), stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        rows: list[dict[str, object]] = json.loads(out)
        if all(r["status"] != "never_polled" for r in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)  # the health write is asynchronous to the alert


async def worker_metrics(http: aiohttp.ClientSession, port: int, wanted: str,
                         timeout: float = 30) -> str:
    """The worker's /metrics, once it exposes ``wanted`` (the partition gauges appear with
    the stall guard's first round, every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        if wanted in text or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.5)


async def test_seed_article_goes_poller_kafka_worker_to_one_slack_alert(
    tmp_path: Path, kafka_bootstrap: str, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    prefix = unique_name("nw") + "."
    async with FeedServer() as feeds:
        item = {"title": TITLE, "link": "https://news.example/maroc-usa", "guid": "seed-1",
                "description": SEED.read_text(encoding="utf-8")}
        feeds.serve("/a.xml", rss([item]))
        config = write_config(tmp_path, kafka_bootstrap, prefix, feeds, slack_api)
        port = free_port()
        worker_config = tmp_path / "worker.yaml"  # its own health port
        worker_config.write_text(config.read_text(encoding="utf-8")
                                 + f"metrics:\n  port: {port}\n", encoding="utf-8")
        worker = await start("worker", "--config", str(worker_config))
        poller = await start("poll", "--config", str(config))
        try:
            await slack_api.wait_for_calls(1, timeout=120)
            await drained(kafka_bootstrap, prefix)
            posted = slack_api.calls_to("chat.postMessage")
            assert len(posted) == 1
            assert "Mark Esper" in json.dumps(posted[0].payload, ensure_ascii=False)
            async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{port}/healthz"
            ) as live:
                assert live.status == 200, await live.text()
                assert "event loop lag" in await live.text()
                exposition = await worker_metrics(http, port, "newswatch_consumer_lag{")
            lag = f'newswatch_consumer_lag{{partition="0",topic="{prefix}{topics.ARTICLES}"}}'
            assert f"{lag} 0.0" in exposition
            assert 'newswatch_deliveries_total{receiver="desk",result="sent"} 1.0' \
                in exposition
            assert "newswatch_articles_matched_total 1.0" in exposition
            assert "process_resident_memory_bytes" in exposition
            rows = await kafka_status(config)
            assert [(r["feed"], r["status"], r["articles_seen"]) for r in rows] == [
                ("seed", "ok", 1)]
        finally:
            codes = (await stop(poller), await stop(worker))
        assert codes == (0, 0)
