"""A 3-node KRaft cluster (deploy/kafka/broker.sh start NAME --brokers 3): topics at
replication 3 and min.insync.replicas 2 keep every acknowledged write when the broker that
leads a partition, or the active controller, is killed -9 under load, and the node comes
back into the in-sync replicas after a restart. And newswatch on it (a poller, two
workers, 200 articles streaming): the node leading the articles and matches partitions,
or the active controller, killed -9 and restarted mid-stream: lost 0, duplicated 0.

The module starts and stops its own cluster (next to the single broker of the other Kafka
tests), so it runs the same in CI and on a laptop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from newswatch.streams.kafka import topics
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
from tests.test_kafka_scaling import rewinds

# The heaviest Kafka scenarios run one after another, never side by side (pyproject addopts).
pytestmark = pytest.mark.xdist_group("kafka-failures")


BROKER_SH = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "broker.sh"
NODES = 3
MESSAGES = 200
# Generous bounds for waiting on events (an election takes the broker session timeout,
# ~9 s); they only turn a hang into a failure.
WAIT_S = 120.0


@dataclass(frozen=True)
class Cluster:
    name: str
    bootstrap: str

    def broker_sh(self, command: str, node: int | None = None) -> str:
        """Run ``broker.sh COMMAND NAME[.node]``; returns its last line of output."""
        target = self.name if node is None else f"{self.name}.{node}"
        done = subprocess.run(["bash", str(BROKER_SH), command, target], check=True,
                              capture_output=True, text=True, env=_env(), timeout=WAIT_S)
        lines = done.stdout.strip().splitlines()
        return lines[-1] if lines else ""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "KAFKA_OWNER_PID": str(os.getpid())}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    name = f"trio-{os.getpid()}"
    started = subprocess.run(["bash", str(BROKER_SH), "start", name, "--brokers", str(NODES)],
                             capture_output=True, text=True, env=_env(), timeout=180)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield Cluster(name, started.stdout.strip().splitlines()[-1])
    finally:
        for command in ("stop", "clean"):
            subprocess.run(["bash", str(BROKER_SH), command, name], capture_output=True,
                           env=_env(), timeout=120)


@asynccontextmanager
async def admin_of(cluster: Cluster) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partitions_of(cluster: Cluster, topic: str) -> list[dict[str, Any]]:
    async with admin_of(cluster) as admin:
        (described,) = await admin.describe_topics([topic])
    return sorted(described["partitions"], key=lambda p: p["partition"])


async def in_sync_everywhere(cluster: Cluster, topic: str) -> None:
    """Wait until every partition of ``topic`` has all its replicas in sync again."""
    while True:
        try:
            partitions = await partitions_of(cluster, topic)
        except Exception:  # a node coming back may answer metadata partially
            partitions = []
        if partitions and all(len(p["isr"]) == NODES for p in partitions):
            return
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Crash:
    """Where the producer pauses: after ``after`` acknowledged writes it sets ``reached``
    and sends the rest once ``done`` is set (the node is dead by then)."""

    after: int
    reached: asyncio.Event
    done: asyncio.Event


async def produce(cluster: Cluster, topic: str, values: range, crash: Crash) -> None:
    """Send ``values`` one by one (acks=all, idempotent), each acknowledged before the
    next, pausing for the crash."""
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all",
                                enable_idempotence=True, request_timeout_ms=30_000)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, key=f"k{value % 7}".encode(),
                                         value=str(value).encode())
            if value + 1 == crash.after:
                crash.reached.set()
                await crash.done.wait()
    finally:
        await producer.stop()


async def read_all(cluster: Cluster, topic: str, count: int) -> list[int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=cluster.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None, isolation_level="read_committed")
    await consumer.start()
    try:
        values: list[int] = []
        while len(values) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            values += [int(r.value) for batch in batches.values() for r in batch]
        extra = await consumer.getmany(timeout_ms=1000)  # nothing more than was sent
        values += [int(r.value) for batch in extra.values() for r in batch]
        return values
    finally:
        await consumer.stop()


async def create_topic(cluster: Cluster, topic: str) -> list[dict[str, Any]]:
    """Create ``topic`` (3 partitions, one replica per node) and return its partitions once
    each has a leader. Use these: another node's metadata may not list the topic yet (a
    second lookup found no partition in a CI run with other work beside it)."""
    async with admin_of(cluster) as admin:
        # min.insync.replicas comes from the cluster's default (2)
        await admin.create_topics([NewTopic(topic, 3, NODES)])
    while True:
        try:
            partitions = await partitions_of(cluster, topic)
        except Exception:
            partitions = []
        if len(partitions) == 3 and all(p["leader"] >= 0 for p in partitions):
            return partitions
        await asyncio.sleep(0.2)


async def test_cluster_replicates_three_ways_with_two_in_sync(cluster: Cluster) -> None:
    topic = unique_name("replicated")
    async with asyncio.timeout(WAIT_S):
        partitions = await create_topic(cluster, topic)
        async with admin_of(cluster) as admin:
            described = await admin.describe_cluster()
            responses = await admin.describe_configs([ConfigResource(
                ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})])
    (resource,) = responses[0].to_object()["resources"]
    entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    assert len(described["brokers"]) == NODES
    assert all(sorted(p["replicas"]) == [1, 2, 3] for p in partitions), partitions
    assert entries["min.insync.replicas"] == "2"


@pytest.mark.parametrize("victim", ["partition leader", "active controller"])
async def test_a_node_killed_under_load_loses_no_acknowledged_write(
    cluster: Cluster, victim: str
) -> None:
    topic = unique_name("crash")
    async with asyncio.timeout(3 * WAIT_S):
        partitions = await create_topic(cluster, topic)
        if victim == "partition leader":
            node = partitions[0]["leader"]
        else:
            node = int(cluster.broker_sh("controller"))
        crash = Crash(MESSAGES // 2, asyncio.Event(), asyncio.Event())
        sending = asyncio.create_task(produce(cluster, topic, range(MESSAGES), crash))
        await crash.reached.wait()
        await asyncio.to_thread(cluster.broker_sh, "kill", node)
        crash.done.set()
        await sending  # every write after the kill was acknowledged by the survivors
        values = await read_all(cluster, topic, MESSAGES)
        if victim == "active controller":
            assert int(cluster.broker_sh("controller")) != node  # a new one was elected
        await asyncio.to_thread(cluster.broker_sh, "restart", node)
        await in_sync_everywhere(cluster, topic)
    print(f"\n{victim} (node {node}) killed after {MESSAGES // 2} of {MESSAGES} writes: "
          f"read back {len(values)}, distinct {len(set(values))}")
    assert sorted(values) == list(range(MESSAGES))  # lost 0, duplicated 0


@pytest.mark.parametrize("victim", ["partition leader", "active controller"])
async def test_newswatch_loses_and_doubles_no_alert_when_a_node_dies(
    cluster: Cluster, victim: str, tmp_path: Path, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    prefix = unique_name("trio") + "."
    async with FeedServer() as server:
        feeds = Feeds(server, 10)
        feeds.publish(8)  # 80 articles now, 120 more once the node is dead
        config = str(write_config(tmp_path, cluster.bootstrap, prefix, server, slack_api, 10,
                                  replication=NODES))
        workers = [Proc(tmp_path, f"worker{n}", "worker", "--config", config) for n in (1, 2)]
        poller = Proc(tmp_path, "poller", "poll", "--config", config)
        async with processes(*workers, poller):
            for w in workers:
                await w.logged("Worker ready", timeout=WAIT_S)
            await at_least(slack_api, 30, timeout=WAIT_S)
            if victim == "partition leader":
                leaders = [p["leader"] for t in (topics.ARTICLES, topics.MATCHES)
                           for p in await partitions_of(cluster, prefix + t)]
                node = max(set(leaders), key=leaders.count)  # leads the most of them
            else:
                node = int(cluster.broker_sh("controller"))
            await asyncio.to_thread(cluster.broker_sh, "kill", node)
            feeds.publish(20)
            await at_least(slack_api, 120, timeout=WAIT_S)
            await asyncio.to_thread(cluster.broker_sh, "restart", node)
            await delivered(slack_api, feeds.expected(), 180, cluster.bootstrap, prefix)
            await drained(cluster.bootstrap, prefix, timeout=WAIT_S)
            lost, duplicated = report(f"{victim} (node {node}) killed -9 mid-stream, then "
                                      "restarted", slack_api, feeds.expected())
            print(rewinds(*workers))
            codes = [await p.stop() for p in (poller, *workers)]
    assert (lost, duplicated) == (0, 0)
    assert codes == [0, 0, 0]
