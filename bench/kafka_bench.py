"""Kafka runtime benchmark: end-to-end latency from producing an article to the articles
topic until the Slack-API server (tests/fakes/slack_api.py, in this process) receives the
alert, with real `newswatch worker` processes against a real broker.

    python bench/kafka_bench.py --bootstrap 127.0.0.1:PORT [--workers 1] [--rate 50]
                                [--seconds 30]

Start a broker first: `bash deploy/kafka/broker.sh start bench` (prints the bootstrap).
Each article matches exactly one of ``--channels`` rules, each rule alerting its own Slack
channel, so the pipeline's 1 msg/s per-channel pacing is not what is measured as long as
rate < channels. Prints p50/p99/max latency and the delivered rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from bench.kafka_scale_bench import group_members, stable
from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics
from tests.fakes.slack_api import FakeSlackAPI

TOKEN = "xoxb-test-token"
LETTERS = "bcdfghjklmnpqrstvwxz"
IDENT = re.compile(r"\bb\d{6}\b")  # not inside a hex delivery id


def word(n: int) -> str:
    """A distinct made-up word per rule (no country or common-word collisions)."""
    if not 0 <= n < len(LETTERS) ** 3:
        raise ValueError(f"at most {len(LETTERS) ** 3} distinct rule words")
    return "zu" + LETTERS[n // 400 % 20] + LETTERS[n // 20 % 20] + "a" + LETTERS[n % 20] + "o"


class Arrivals:
    """The posts the fake Slack API received for each benchmark article id (``sent``: id ->
    time it was handed to the system), scanned incrementally: this process also serves
    the Slack API, so its own CPU is part of the setup."""

    def __init__(self, slack: FakeSlackAPI, sent: dict[str, float], first: int = 0) -> None:
        self.slack = slack
        self.sent = sent
        self.seen: dict[str, list[float]] = {}  # id -> arrival time of each post
        self._scanned = first

    def scan(self) -> int:
        calls = self.slack.calls[self._scanned:]
        self._scanned += len(calls)
        for call in calls:
            if call.method == "chat.postMessage":
                for ident in set(IDENT.findall(json.dumps(call.payload))):
                    if ident in self.sent:
                        self.seen.setdefault(ident, []).append(call.at)
        return len(self.seen)

    async def wait(self, total: int, timeout: float) -> bool:
        """Until every one of ``total`` ids arrived; False on timeout."""
        try:
            await self.slack.wait_until(lambda: self.scan() >= total, timeout=timeout)
            return True
        except TimeoutError:
            self.scan()
            return False

    def summary(self, total: int, t0: float) -> str:
        """alerted, delivered rate since ``t0``, p50/p99/max latency of each id's first
        post, and the posts beyond the first."""
        latencies = sorted((min(t) - self.sent[i]) * 1000 for i, t in self.seen.items())
        span = max(min(t) for t in self.seen.values()) - t0
        q = statistics.quantiles(latencies, n=100)
        duplicated = sum(len(t) - 1 for t in self.seen.values())
        return (f"alerted={len(self.seen)} of {total} "
                f"delivered={len(latencies) / span:.1f}/s p50={q[49]:.0f}ms "
                f"p99={q[98]:.0f}ms max={latencies[-1]:.0f}ms duplicated={duplicated}")


def bench_article(i: int, channels: int) -> Article:
    """Benchmark article ``i``: its title matches exactly the rule of ``word(i % channels)``."""
    ident = f"b{i:06d}"
    return Article(id=ident, feed="bench", title=f"{word(i % channels)} dispatch {ident}",
                   url=f"https://bench.example/{ident}")


def write_config(tmp: Path, bootstrap: str, prefix: str, slack: FakeSlackAPI,
                 channels: int, partitions: int) -> Path:
    rules = ["rules:"]
    for n in range(channels):
        rules += [f"  - id: r{n}", f"    title: rule {n}", f"    phrases: [{word(n)}]",
                  f"    notify: [c{n}]", "    dedup: {max_per_hour: 1000000}"]
    (tmp / "rules.yaml").write_text("\n".join(rules) + "\n", encoding="utf-8")
    lines = ["rules: [rules.yaml]", "feeds: []", "receivers:"]
    for n in range(channels):
        lines += [f"  c{n}:", "    slack:", f"      channel: '#c{n}'",
                  f"      base_url: {slack.base_url}", "      reconcile: false"]
    lines += ["kafka:", f"  bootstrap: {bootstrap}", f"  topic_prefix: {prefix}",
              f"  partitions: {partitions}"]
    config = tmp / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50.0, help="articles per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--keep-logs", metavar="DIR", help="move the worker logs there")
    args = parser.parse_args()

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    async with FakeSlackAPI(token=TOKEN) as slack:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            config = write_config(tmp, args.bootstrap, prefix, slack, args.channels,
                                  args.partitions)
            await ensure_topics(KafkaSettings(bootstrap=args.bootstrap, prefix=prefix,
                                              partitions=args.partitions))
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "newswatch", "worker", "--config", str(config)],
                    cwd=tmp, env={**os.environ, "SLACK_BOT_TOKEN": TOKEN,
                         "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                    stdout=subprocess.DEVNULL, stderr=(tmp / f"worker{n}.log").open("wb"))
                for n in range(args.workers)
            ]
            producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all",
                                        enable_idempotence=True, linger_ms=0)
            await producer.start()
            try:
                sent: dict[str, float] = {}

                async def publish(i: int) -> None:
                    article = bench_article(i, args.channels)
                    sent[article.id] = time.monotonic()
                    await producer.send_and_wait(
                        prefix + topics.ARTICLES, key=article.id.encode(),
                        value=topics.ArticleMessage(article).to_bytes())

                # every worker in the group and owning partitions first: a worker joining
                # late rebalances the group mid-measurement (a ~1.5 s pause in the p99)
                await wait_stable(args.bootstrap, prefix + topics.WORKER_APP,
                                  prefix + topics.ARTICLES, args.workers, args.partitions)
                # warm-up: one article, wait until the workers deliver it
                await publish(0)
                await slack.wait_for_calls(1, timeout=120)
                sent.clear()
                first = len(slack.calls)
                total = int(args.rate * args.seconds)
                t0 = time.monotonic()
                for i in range(1, total + 1):
                    delay = t0 + (i - 1) / args.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)  # the offered rate is the experiment
                    await publish(i)
                offered = total / (time.monotonic() - t0)

                arrivals = Arrivals(slack, sent, first)
                if not await arrivals.wait(total, timeout=args.seconds * 2 + 30):
                    print("not sustained: not every alert arrived within "
                          f"{args.seconds * 2 + 30:.0f}s of the start")
                print(f"workers={args.workers} offered={offered:.1f}/s "
                      f"{arrivals.summary(total, t0)}")
            finally:
                await producer.stop()
                for w in workers:
                    w.terminate()
                for w in workers:
                    try:
                        w.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        w.kill()
                logs = " ".join(p.read_text("utf-8", "replace") for p in tmp.glob("worker*.log"))
                print(f"worker logs: {logs.count('stalled: committed')} stalled-partition "
                      f"re-reads, {logs.count('dropped before any agent')} dropped-record "
                      f"re-reads, {logs.count('Traceback')} tracebacks, "
                      f"{logs.count('retry')} retries")
                if args.keep_logs:
                    for p in tmp.glob("worker*.log"):
                        p.rename(Path(args.keep_logs) / p.name)
                        w.wait()


async def wait_stable(bootstrap: str, group: str, topic: str, workers: int,
                      partitions: int, timeout: float = 120) -> None:
    """Until the group is Stable, with ``workers`` members sharing every partition of
    ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            state, members = await group_members(admin, group, topic)
            if stable(state, members, workers, partitions):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"group {group} not ready: {state}, {members}")
            await asyncio.sleep(0.5)  # group membership has no event to wait on
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
