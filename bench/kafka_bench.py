"""Kafka runtime benchmark: end-to-end latency from handing an article to the runtime as
the poller does (``KafkaRuntime.take``: ledger entry, then the articles topic) until the
Slack-API server (tests/fakes/slack_api.py, in this process) receives the alert, with real
`newswatch worker` processes against a real broker.

    python bench/kafka_bench.py --bootstrap 127.0.0.1:PORT [--workers 1] [--rate 50]
                                [--seconds 30]

Start a broker first: `bash deploy/kafka/broker.sh start bench` (prints the bootstrap).
Each article matches exactly one of ``--channels`` rules, each rule alerting its own Slack
channel, so the pipeline's 1 msg/s per-channel pacing is not what is measured as long as
rate < channels. Prints p50/p99/max latency and the delivered rate, then where the time
goes: p50/p99 of each stage, from stamps the run leaves behind (all on this machine's
clock):

- ``publish``: ``take`` called → it returned (ledger entry and article acknowledged);
- ``consume+match``: → the match agent recorded the match pending (the ledger entry's
  ``at``), so it includes the wait for the consumer's fetch;
- ``matches acked``: → the article marked done (its ledger tombstone's timestamp,
  written once Kafka acknowledged the matches);
- ``decide``: → the worker logged the decision (its log line's time);
- ``send``: → the Slack API received the post.

Then, for each worker, the full garbage collections it logged (bench/gctrace, put on the
workers' PYTHONPATH): each one stops the worker's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka.admin import AIOKafkaAdminClient

from bench.kafka_scale_bench import group_members, stable
from newswatch.core.article import Article
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import (
    KafkaSettings,
    ensure_topics,
    producer_publish,
    read_topic,
    reliable_producer,
)
from newswatch.streams.kafka.ledger import Pending
from newswatch.streams.kafka.runtime import KafkaRuntime
from tests.fakes.slack_api import FakeSlackAPI

TOKEN = "xoxb-test-token"
LETTERS = "bcdfghjklmnpqrstvwxz"
GC_TRACE = Path(__file__).resolve().parent / "gctrace"  # on the workers' PYTHONPATH
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

    def __init__(self, slack: FakeSlackAPI, sent: dict[str, float], first: int = 0, *,
                 offset: float = 0.0) -> None:
        """``offset`` turns the fake's stamps (``time.monotonic``) into the clock of
        ``sent``: ``time.time() - time.monotonic()`` for Unix times."""
        self.slack = slack
        self.sent = sent
        self.offset = offset
        self.seen: dict[str, list[float]] = {}  # id -> arrival time of each post
        self._scanned = first

    def scan(self) -> int:
        calls = self.slack.calls[self._scanned:]
        self._scanned += len(calls)
        for call in calls:
            if call.method == "chat.postMessage":
                for ident in set(IDENT.findall(json.dumps(call.payload))):
                    if ident in self.sent:
                        self.seen.setdefault(ident, []).append(call.at + self.offset)
        return len(self.seen)

    async def wait(self, total: int, timeout: float) -> bool:
        """Until every one of ``total`` ids arrived; False on timeout."""
        try:
            await self.slack.wait_until(lambda: self.scan() >= total, timeout=timeout)
            return True
        except TimeoutError:
            self.scan()
            return False

    def first(self) -> dict[str, float]:
        """Each id's first post (on the clock of ``sent``)."""
        return {i: min(t) for i, t in self.seen.items()}

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
                         "PYTHONPATH": os.pathsep.join(filter(None, [
                             str(Path(__file__).resolve().parents[1]), str(GC_TRACE),
                             os.environ.get("PYTHONPATH")]))},
                    stdout=subprocess.DEVNULL, stderr=(tmp / f"worker{n}.log").open("wb"))
                for n in range(args.workers)
            ]
            settings = KafkaSettings(bootstrap=args.bootstrap, prefix=prefix,
                                     partitions=args.partitions)
            producer = reliable_producer(settings)  # the poller's
            await producer.start()
            try:
                sent: dict[str, float] = {}
                taken: dict[str, float] = {}
                runtime = KafkaRuntime(settings, producer_publish(producer))

                async def publish(i: int) -> None:
                    article = bench_article(i, args.channels)
                    sent[article.id] = time.time()
                    await runtime.take([article])
                    taken[article.id] = time.time()

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
                t0 = time.time()
                for i in range(1, total + 1):
                    delay = t0 + (i - 1) / args.rate - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)  # the offered rate is the experiment
                    await publish(i)
                offered = total / (time.time() - t0)

                arrivals = Arrivals(slack, sent, first, offset=time.time() - time.monotonic())
                if not await arrivals.wait(total, timeout=args.seconds * 2 + 30):
                    print("not sustained: not every alert arrived within "
                          f"{args.seconds * 2 + 30:.0f}s of the start")
                print(f"workers={args.workers} offered={offered:.1f}/s "
                      f"{arrivals.summary(total, t0)}")
                posted = arrivals.first()
                decided = decision_times(tmp)
                pending, done = await ledger_stamps(settings)
                print(stage_table(sent, [("publish", taken), ("consume+match", pending),
                                         ("matches acked", done), ("decide", decided),
                                         ("send", posted)]))
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
                for log in sorted(tmp.glob("worker*.log")):
                    print(f"{log.stem}: {full_collections(log.read_text('utf-8', 'replace'))}")
                print(f"worker logs: {logs.count('stalled: committed')} stalled-partition "
                      f"re-reads, {logs.count('dropped before any agent')} dropped-record "
                      f"re-reads, {logs.count('Traceback')} tracebacks, "
                      f"{logs.count('retry')} retries")
                if args.keep_logs:
                    Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
                    for p in tmp.glob("worker*.log"):
                        shutil.move(p, Path(args.keep_logs) / p.name)


def stage_table(start: dict[str, float], stages: list[tuple[str, dict[str, float]]]) -> str:
    """p50/p99 (ms) of each stage: from the previous stamp of an article to this one."""
    lines = [f"{'stage':<16}{'p50':>8}{'p99':>8}  articles"]
    previous = start
    for name, stamps in stages:
        spans = sorted((stamps[i] - previous[i]) * 1000 for i in stamps if i in previous)
        if len(spans) >= 2:
            q = statistics.quantiles(spans, n=100)
            lines.append(f"{name:<16}{q[49]:>6.0f}ms{q[98]:>6.0f}ms  {len(spans)}")
        else:
            lines.append(f"{name:<16}{'-':>8}{'-':>8}  {len(spans)}")
        previous = stamps
    return "\n".join(lines)


# faust's log format: "[2026-12-06 20:22:04,409] [pid] [INFO] decision rule=… article=<url>"
DECISION = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]? .*decision "
                      r"rule=\S+ article=\S*?(b\d{6}) verdict=send", re.M)


def full_collections(log: str) -> str:
    """The full garbage collections a worker logged (bench/gctrace), as a summary."""
    pauses = sorted(int(ms) for ms in re.findall(r"gc: full collection (\d+) ms", log))
    if not pauses:
        return "no full collection of 10 ms or more"
    return (f"{len(pauses)} full collections of 10 ms or more, p50 "
            f"{pauses[len(pauses) // 2]} ms, max {pauses[-1]} ms (the event loop stops)")


def decision_times(tmp: Path) -> dict[str, float]:
    """When each article's first send decision was logged (the log's local time, ms)."""
    out: dict[str, float] = {}
    for log in tmp.glob("worker*.log"):
        for m in DECISION.finditer(log.read_text("utf-8", "replace")):
            at = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(
                m.group(2)) / 1000
            out[m.group(3)] = min(at, out.get(m.group(3), at))
    return out


async def ledger_stamps(settings: KafkaSettings) -> tuple[dict[str, float], dict[str, float]]:
    """From the ledger topic: when each article's match was recorded pending (the entry's
    ``at``) and when the article was marked done (the tombstone's timestamp)."""
    pending: dict[str, float] = {}
    done: dict[str, float] = {}
    async for record in read_topic(settings, settings.topic(topics.LEDGER)):
        key = (record.key or b"").decode()
        if key.startswith("match/") and record.value is not None:
            ident = key.rsplit("/", 1)[1]
            pending.setdefault(ident, Pending.from_bytes(record.value).at)
        elif key.startswith("article/") and record.value is None:
            done.setdefault(key.split("/", 1)[1], record.timestamp / 1000)
    return pending, done


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
