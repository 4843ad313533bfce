"""Ops notices in the Kafka runtime, against the project's real Kafka broker, with real
`newswatch poll` / `newswatch worker` processes and the fake Slack API as the ops receiver
(issue 13; KafkaRuntime.notify in streams/kafka/runtime.py):

- a feed failing 3 times in a row: exactly 1 "failing" notice; recovering: exactly 1
  "recovered" notice, with 2 pollers and the one polling the feed killed -9 in between
  (the other takes the feed over, with the announced state from the feed-health topic);
- a broken watchlist edit with 2 workers running: exactly 1 ops notice (each worker's
  reloader reports it; the worker owning the notice's rule deduplicates), and the previous
  rules keep matching.

The two scenarios run side by side (~1.5 min, mostly the feed's failure backoff).
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics, read_topic
from newswatch.streams.kafka.topics import MatchMessage, decode_matches
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_TEST_TOKEN
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import unique_name, wait_for_stable_group
from tests.test_kafka_cluster import Proc, processes
from tests.test_kafka_digest import publish
from tests.test_kafka_runtime import drained

PARTITIONS = 2
RULES = ("rules:\n  - id: amber-watch\n    title: Amber watch\n    phrases: [amber]\n"
         "    notify: [desk]\n")
BROKEN = RULES + "    colour: blue\n"  # an unknown key: the edit is rejected


def write_config(tmp: Path, bootstrap: str, prefix: str, slack: FakeSlackAPI,
                 feeds: str = "feeds: []\n") -> Path:
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"rules: [rules.yaml]\n{feeds}ops: ops\nreceivers:\n"
        f"  desk:\n    slack:\n      channel: '#desk'\n      base_url: {slack.base_url}\n"
        f"  ops:\n    slack:\n      channel: '#ops'\n      base_url: {slack.base_url}\n"
        f"kafka:\n  bootstrap: {bootstrap}\n  topic_prefix: {prefix}\n"
        f"  partitions: {PARTITIONS}\n", encoding="utf-8")
    return config


def count(slack: FakeSlackAPI, text: str) -> int:
    """Slack messages whose text contains ``text``."""
    return sum(1 for m in slack.messages if any(text in t for t in m.texts()))


def assigned(poller: Proc) -> str:
    """The feeds the poller's current run was last assigned ("" before any)."""
    log = (poller.dir / f"run{poller.starts}.log").read_text("utf-8", "replace")
    found = re.findall(r"feeds assigned to this poller: ([\w, -]*)", log)
    return found[-1].strip() if found else ""


async def feed_scenario(tmp: Path, bootstrap: str) -> tuple[int, int]:
    """(failing notices, recovered notices) once the worker processed everything."""
    tmp.mkdir()
    prefix = unique_name("notice") + "."
    await ensure_topics(KafkaSettings(bootstrap=bootstrap, prefix=prefix,
                                      partitions=PARTITIONS))
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as slack, FeedServer() as server:
        feeds = (f"feeds:\n  - name: flaky\n    url: {server.url('/flaky.xml')}\n"
                 f"    interval: 10s\n    min_interval: 10s\nfetch:\n"
                 f"  allow: ['{server.allow}']\n")  # not served yet: 404, a failure
        config = str(write_config(tmp, bootstrap, prefix, slack, feeds))
        worker = Proc(tmp, "worker", "worker", "--config", config)
        pollers = [Proc(tmp, f"poller{n}", "poll", "--config", config) for n in (1, 2)]
        async with processes(worker, *pollers):
            await slack.wait_until(lambda: count(slack, "Feed flaky is failing") >= 1,
                                   timeout=150)
            (owner,) = [p for p in pollers if assigned(p) == "flaky"]
            assert await owner.stop(signal.SIGKILL) == -signal.SIGKILL
            server.serve("/flaky.xml", rss([{"title": "amber dawn", "guid": "a1",
                                             "link": "https://news.example/a1"}]))
            await slack.wait_until(lambda: count(slack, "Feed flaky recovered") >= 1,
                                   timeout=150)
            await drained(bootstrap, prefix)  # every notice published is processed
            return count(slack, "Feed flaky is failing"), count(slack, "Feed flaky recovered")


async def rejections_published(settings: KafkaSettings, n: int, timeout: float) -> None:
    """Wait until ``n`` rejection notices are on the matches topic (the topic has no
    change event to wait on)."""
    async with asyncio.timeout(timeout):
        while True:
            found = [m async for r in read_topic(settings, settings.topic(topics.MATCHES))
                     if isinstance(m := decode_matches(r.key, r.value), MatchMessage)
                     and m.match.rule_id == "newswatch-rules-rejected"]
            if len(found) >= n:
                return
            await asyncio.sleep(0.5)


async def reload_scenario(tmp: Path, bootstrap: str) -> tuple[int, int]:
    """(rejection notices, alerts) after a broken edit with two workers running."""
    tmp.mkdir()
    prefix = unique_name("reload") + "."
    settings = KafkaSettings(bootstrap=bootstrap, prefix=prefix, partitions=PARTITIONS)
    await ensure_topics(settings)
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as slack:
        config = str(write_config(tmp, bootstrap, prefix, slack))
        workers = [Proc(tmp, f"worker{n}", "worker", "--config", config) for n in (1, 2)]
        async with processes(*workers):
            await wait_for_stable_group(bootstrap, prefix + topics.WORKER_APP,
                                        prefix + topics.MATCHES, members=2)
            (tmp / "rules.yaml").write_text(BROKEN, encoding="utf-8")
            await slack.wait_until(lambda: count(slack, "Rule reload rejected") >= 1,
                                   timeout=60)
            await rejections_published(settings, 2, timeout=60)  # one per worker
            await publish(settings, [Article(id="b1", feed="wire", title="amber sunrise",
                                             url="https://news.example/b1")])
            await slack.wait_until(lambda: count(slack, "amber sunrise") >= 1, timeout=60)
            await drained(bootstrap, prefix)
            return count(slack, "Rule reload rejected"), count(slack, "amber sunrise")


async def test_one_ops_notice_per_feed_transition_and_per_rejected_edit(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    (failing, recovered), (rejected, alerts) = await asyncio.gather(
        feed_scenario(tmp_path / "feed", kafka_bootstrap),
        reload_scenario(tmp_path / "reload", kafka_bootstrap))
    print(f"\nfeed: {failing} failing, {recovered} recovered notice(s), its poller killed "
          f"-9 in between; broken edit, 2 workers: {rejected} notice(s), {alerts} alert(s)")
    assert (failing, recovered) == (1, 1)
    assert (rejected, alerts) == (1, 1)
