"""Ops notices in the Kafka runtime, against the project's real Kafka broker, with real
`newswatch poll` / `newswatch worker` processes and the fake Slack API as the ops receiver
(issue 13; KafkaRuntime.notify in streams/kafka/runtime.py):

a feed failing 3 times in a row: exactly 1 "failing" notice; recovering: exactly 1
"recovered" notice, with 2 pollers and the one polling the feed killed -9 in between (the
other takes the feed over, with the announced state from the feed-health topic). About
1.5 min, mostly the feed's failure backoff.

The same notices with nothing killed, and a broken watchlist edit with 2 workers running,
are shared scenarios of both runtimes (tests/test_scenarios.py).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from newswatch.streams.kafka.client import KafkaSettings, ensure_topics
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_TEST_TOKEN
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import unique_name
from tests.test_kafka_cluster import Proc, processes
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


async def test_one_ops_notice_per_feed_transition_with_its_poller_killed_between(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    failing, recovered = await feed_scenario(tmp_path / "feed", kafka_bootstrap)
    print(f"\nfeed: {failing} failing, {recovered} recovered notice(s), its poller killed "
          f"-9 in between")
    assert (failing, recovered) == (1, 1)
