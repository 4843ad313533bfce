"""The Kafka runtime scaled out, against the project's real Kafka broker: two `newswatch
worker` and two `newswatch poll` processes sharing 20 feeds (4 partitions per topic).

- one worker stopped (SIGTERM) mid-stream: its partitions move, 200 alerts, none lost or
  doubled;
- a worker killed -9 and restarted ten times at random points while 500 articles stream
  in, and a poller killed -9 once: lost = 0, duplicated <= kills;
- (the rebalance storm is in tests/test_kafka_storm.py.)

Each prints "lost x of n, duplicated y" and how many partitions the workers' repairs to
faust read again (streams/kafka/consumer.py: a stalled partition, or records faust dropped
before any agent saw them).
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import pytest

from tests.fakes.feed_server import FeedServer
from tests.fakes.fixtures import slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import unique_name
from tests.test_kafka_cluster import (
    Feeds,
    Proc,
    at_least,
    delivered,
    processes,
    report,
    write_config,
)
from tests.test_kafka_runtime import drained

# The heaviest Kafka scenarios run one after another, never side by side (pyproject addopts).
pytestmark = pytest.mark.xdist_group("kafka-failures")


def rewinds(*workers: Proc) -> str:
    """What the workers' repairs to faust read again (streams/kafka/consumer.py), and
    what the completion ledger had to re-drive (streams/kafka/ledger.py)."""
    stalled = sum(w.count_in_logs("stalled: committed") for w in workers)
    dropped = sum(w.count_in_logs("were dropped before any agent saw them") for w in workers)
    redriven = sum(w.count_in_logs(" re-drove ") for w in workers)
    return (f"partitions read again: {stalled} stalled, {dropped} with records faust "
            f"dropped; ledger re-drives: {redriven}")


async def test_two_workers_two_pollers_one_worker_stopped_mid_stream(
    tmp_path: Path, kafka_bootstrap: str, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    prefix = unique_name("nw") + "."
    async with FeedServer() as server:
        feeds = Feeds(server, 20)
        feeds.publish(4)
        config = str(write_config(tmp_path, kafka_bootstrap, prefix, server, slack_api, 20))
        workers = [Proc(tmp_path, f"worker{n}", "worker", "--config", config) for n in (1, 2)]
        pollers = [Proc(tmp_path, f"poller{n}", "poll", "--config", config) for n in (1, 2)]
        async with processes(*workers, *pollers):
            await at_least(slack_api, 40, timeout=120)
            assert await workers[1].stop() == 0  # its partitions move to worker1
            feeds.publish(10)
            await delivered(slack_api, feeds.expected(), 120, kafka_bootstrap, prefix)
            await drained(kafka_bootstrap, prefix)
            lost, duplicated = report("two workers, one stopped", slack_api, feeds.expected())
            print(rewinds(*workers))
            codes = [await p.stop() for p in (pollers[0], pollers[1], workers[0])]
    assert (lost, duplicated) == (0, 0)
    assert codes == [0, 0, 0]


# Each kill -9 stalls the worker group for its session timeout (10 s): ~2.5 min in all.
KILLS = 10


async def test_workers_and_poller_killed(
    tmp_path: Path, kafka_bootstrap: str, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    """500 articles (20 feeds growing to 25 items) while a worker is killed -9 and
    restarted KILLS times at random points, and one poller is killed -9 once."""
    prefix = unique_name("nw") + "."
    rng = random.Random(20261129)
    async with FeedServer() as server:
        feeds = Feeds(server, 20)
        feeds.publish(1)
        config = str(write_config(tmp_path, kafka_bootstrap, prefix, server, slack_api, 20))
        victim = Proc(tmp_path, "victim", "worker", "--config", config)
        steady = Proc(tmp_path, "steady", "worker", "--config", config)
        pollers = [Proc(tmp_path, f"poller{n}", "poll", "--config", config) for n in (1, 2)]
        async with processes(victim, steady, *pollers):
            await at_least(slack_api, 10, timeout=120)
            for kill in range(KILLS):
                feeds.publish(min(25, 1 + (kill + 1) * 24 // KILLS))
                await asyncio.sleep(rng.uniform(1.0, 6.0))  # a random point in the stream
                await victim.stop(signal.SIGKILL)
                if kill == KILLS // 2:
                    await pollers[1].stop(signal.SIGKILL)  # its feeds move to poller1
                await victim.start()
            feeds.publish(25)
            await delivered(slack_api, feeds.expected(), 120, kafka_bootstrap, prefix)
            await drained(kafka_bootstrap, prefix, timeout=120)
            lost, duplicated = report(f"worker killed -9 x{KILLS}, poller killed -9 x1",
                                      slack_api, feeds.expected())
            print(rewinds(victim, steady))
            codes = [await p.stop() for p in (pollers[0], victim, steady)]
    assert lost == 0
    assert duplicated <= KILLS
    assert codes == [0, 0, 0]

