"""The Kafka runtime under failure, against the project's real Kafka broker: `newswatch
poll` and `newswatch worker` processes, a feed server that adds items as the test goes,
and the fake Slack API as the ledger (each article's token counted in the messages it
stored). The helpers here are shared with tests/test_kafka_scaling.py and
tests/test_kafka_storm.py (several workers).

- the broker stopped for 30 s and restarted on the same ports, data kept
  (`broker.sh restart`); the poller and the worker keep running and resume by themselves.

Prints "lost x of n, duplicated y".
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from newswatch.streams.kafka import topics
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_APP_TEST_TOKEN, SLACK_TEST_TOKEN, slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import BROKER_SH, REPO_ROOT, unique_name
from tests.test_kafka_runtime import drained

# One rule per word, one Slack channel per rule: the pipeline paces a channel at 1 msg/s,
# so 20 channels deliver 200 alerts in ~10 s.
WORDS = ("amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo",
         "jasper", "kelp", "lagoon", "marble", "nectar", "obsidian", "pebble", "quartz",
         "russet", "saffron", "tundra")
TOKEN = re.compile(r"q\d{2}x\d{3}")
PARTITIONS = 4


def token(feed: int, item: int) -> str:
    return f"q{feed:02d}x{item:03d}"


def item(feed: int, i: int) -> dict[str, str]:
    """Three words (too few for the title-similarity story check), no summary: every item
    is its own story, alerted once by the rule of its word."""
    word = WORDS[(feed * 7 + i) % len(WORDS)]
    t = token(feed, i)
    return {"title": f"{word} dispatch {t}", "link": f"https://news.example/{t}", "guid": t}


def write_config(tmp: Path, bootstrap: str, prefix: str, feeds: FeedServer,
                 slack: FakeSlackAPI, n_feeds: int, *, replication: int = 1) -> Path:
    rules = ["rules:"]
    for n, word in enumerate(WORDS):
        rules += [f"  - id: r{n:02d}-{word}", f"    title: {word} watch",
                  f"    phrases: [{word}]", f"    notify: [desk{n:02d}]",
                  "    dedup: {max_per_hour: 100000}"]
    (tmp / "rules.yaml").write_text("\n".join(rules) + "\n", encoding="utf-8")
    lines = ["rules: [rules.yaml]", "feeds:"]
    for f in range(n_feeds):
        lines += [f"  - name: feed{f:02d}", f"    url: {feeds.url(f'/f{f:02d}.xml')}",
                  "    interval: 10s", "    min_interval: 10s", "    max_interval: 10s"]
    lines.append("receivers:")
    for n in range(len(WORDS)):
        lines += [f"  desk{n:02d}:", "    slack:", f"      channel: '#desk{n:02d}'",
                  f"      base_url: {slack.base_url}"]
    lines += ["fetch:", f"  allow: ['{feeds.allow}']",
              "kafka:", f"  bootstrap: {bootstrap}", f"  topic_prefix: {prefix}",
              f"  partitions: {PARTITIONS}", f"  replication: {replication}",
              # well within the scenarios' waits (a record faust drops is re-driven in
              # time), beyond the stalls a kill or an election causes (10-20 s)
              "  redrive_after: 30s"]
    config = tmp / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


class Feeds:
    """``n`` feeds on a FeedServer; ``publish(k)`` makes the first ``k`` items of each
    feed visible (the feed grows as a real one does)."""

    def __init__(self, server: FeedServer, n: int) -> None:
        self.server = server
        self.n = n
        self.published = 0
        self.publish(0)

    def publish(self, k: int) -> None:
        self.published = k
        for f in range(self.n):
            # newest first, at most 50 items, as feeds usually are
            items = [item(f, i) for i in reversed(range(k))][:50]
            self.server.serve(f"/f{f:02d}.xml", rss(items))

    def expected(self) -> set[str]:
        return {token(f, i) for f in range(self.n) for i in range(self.published)}


def ledger(slack: FakeSlackAPI) -> Counter[str]:
    """How many Slack messages carry each article token."""
    seen: Counter[str] = Counter()
    for message in slack.messages:
        seen.update(set(TOKEN.findall(" ".join(message.texts()))))
    return seen


def report(name: str, slack: FakeSlackAPI, expected: set[str]) -> tuple[int, int]:
    seen = ledger(slack)
    lost = len(expected - set(seen))
    duplicated = sum(c - 1 for c in seen.values() if c > 1)
    print(f"\n{name}: lost {lost} of {len(expected)}, duplicated {duplicated}")
    return lost, duplicated


class Proc:
    """A `newswatch` subprocess with its own working directory and log file."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.name = name
        self.args = args
        self.dir = tmp / name
        self.dir.mkdir(exist_ok=True)
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        self.starts += 1
        self._log = (self.dir / f"run{self.starts}.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "newswatch", *self.args, cwd=self.dir,
            # the app-level token is used only by interactive receivers (Socket Mode)
            env={**os.environ, "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN,
                 "SLACK_APP_TOKEN": SLACK_APP_TEST_TOKEN, "PYTHONPATH": str(REPO_ROOT)},
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        proc = self.proc
        assert proc is not None
        if proc.returncode is None:
            proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        finally:
            if self._log is not None:
                self._log.close()
        return code

    def count_in_logs(self, text: str) -> int:
        """Lines containing ``text`` in the logs of every run of this process."""
        return sum(line.count(text) for log in self.dir.glob("run*.log")
                   for line in log.read_text("utf-8", "replace").splitlines())

    async def logged(self, text: str, timeout: float) -> None:
        """Wait until the log of the current run contains ``text`` (polled: the process
        writes it, nothing to await)."""
        log = self.dir / f"run{self.starts}.log"
        deadline = time.monotonic() + timeout
        while text not in log.read_text("utf-8", "replace"):
            assert time.monotonic() < deadline, f"{self.name} never logged {text!r}"
            await asyncio.sleep(0.2)

    def tail(self) -> str:
        text = (self.dir / f"run{self.starts}.log").read_bytes().decode("utf-8", "replace")
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-30:])


@asynccontextmanager
async def processes(*procs: Proc) -> AsyncIterator[None]:
    for p in procs:
        await p.start()
    try:
        yield
    except BaseException:
        for p in procs:
            print(p.tail())
        raise
    finally:
        for p in procs:
            if p.proc is not None and p.proc.returncode is None:
                await p.stop(signal.SIGKILL)


async def lag_report(bootstrap: str, prefix: str) -> str:
    """End offset and the worker group's committed offset of each articles/matches
    partition: says whether an alert is missing before or after Kafka."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        parts = [TopicPartition(f"{prefix}{t}", p) for t in topics.STREAMED
                 for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(parts)
        committed = await admin.list_consumer_group_offsets(prefix + topics.WORKER_APP)
        return ", ".join(
            f"{tp.topic.removeprefix(prefix)}[{tp.partition}] "
            f"{committed[tp].offset if tp in committed else None}/{ends[tp]}" for tp in parts)
    finally:
        await consumer.stop()
        await admin.close()


async def delivered(slack: FakeSlackAPI, expected: set[str], timeout: float,
                    bootstrap: str, prefix: str) -> None:
    """Wait (on the fake's change events) until every expected token reached Slack."""
    try:
        await slack.wait_until(lambda: expected <= set(ledger(slack)), timeout=timeout)
    except TimeoutError:
        missing = sorted(expected - set(ledger(slack)))
        raise AssertionError(f"{len(missing)} alert(s) missing, e.g. {missing[:10]}; "
                             f"committed/end: {await lag_report(bootstrap, prefix)}") from None


async def at_least(slack: FakeSlackAPI, n: int, timeout: float) -> None:
    await slack.wait_until(lambda: len(ledger(slack)) >= n, timeout=timeout)


# ------------------------------------------------------------------------------ tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A broker of its own (fixed ports) that the test may stop and restart."""
    name = unique_name("restart")
    env = {**os.environ, "PYTHON": sys.executable, "KAFKA_OWNER_PID": str(os.getpid()),
           "KAFKA_PORT": str(_free_port()), "KAFKA_CONTROLLER_PORT": str(_free_port())}
    started = subprocess.run(["bash", str(BROKER_SH), "start", name], env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        for cmd in ("stop", "clean"):
            subprocess.run(["bash", str(BROKER_SH), cmd, name], env=env,
                           capture_output=True, text=True, timeout=60, check=False)


async def broker(*args: str) -> str:
    env = {**os.environ, "PYTHON": sys.executable, "KAFKA_OWNER_PID": str(os.getpid())}
    proc = await asyncio.create_subprocess_exec(
        "bash", str(BROKER_SH), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().strip().splitlines()[-1] if out.strip() else ""


OUTAGE_S = 30.0


async def test_broker_stopped_30s_and_restarted(
    tmp_path: Path, own_broker: str, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    bootstrap = await broker("wait", own_broker)
    prefix = unique_name("nw") + "."
    async with FeedServer() as server:
        feeds = Feeds(server, 10)
        feeds.publish(3)
        config = str(write_config(tmp_path, bootstrap, prefix, server, slack_api, 10))
        worker = Proc(tmp_path, "worker", "worker", "--config", config)
        poller = Proc(tmp_path, "poller", "poll", "--config", config)
        async with processes(worker, poller):
            await delivered(slack_api, feeds.expected(), 120, bootstrap, prefix)
            await broker("stop", own_broker)
            feeds.publish(6)  # new items appear while the broker is down
            # The outage itself is the scenario: 30 s without a broker.
            await asyncio.sleep(OUTAGE_S)
            assert worker.proc is not None and worker.proc.returncode is None
            assert poller.proc is not None and poller.proc.returncode is None
            t0 = time.monotonic()
            assert await broker("restart", own_broker) == bootstrap
            feeds.publish(10)
            await delivered(slack_api, feeds.expected(), 180, bootstrap, prefix)
            print(f"\nbroker back: all alerts in {time.monotonic() - t0:.0f}s after restart")
            await drained(bootstrap, prefix, timeout=120)
            lost, duplicated = report("broker stopped 30 s", slack_api, feeds.expected())
            codes = [await p.stop() for p in (poller, worker)]
    assert (lost, duplicated) == (0, 0)
    assert codes == [0, 0]
