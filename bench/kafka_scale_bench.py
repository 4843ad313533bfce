"""Kafka runtime scaling benchmark: maximum sustained matching throughput, in articles per
second, of real `newswatch worker` processes with 1 and with 2 workers, under a CPU-heavy
rule set (10,000 generated rules), against a real broker.

    python bench/kafka_scale_bench.py --bootstrap 127.0.0.1:PORT [--rules 10000]
        [--articles 5000] [--workers 1,2] [--partitions 4] [--timeout 600]

Start a broker first: `bash deploy/kafka/broker.sh start bench` (prints the bootstrap).

Rules: bench/workload.py's realistic rules ("countries and (phrases or people)", people and
phrases that occur in the articles; ``--workload random`` for the earlier figures' rules),
written as YAML rule files (``match:`` form) and checked with the rule loader. By default
the two countries of each rule are required together (``all`` instead of ``any``): the
matcher does the same work per article but there are few matches, so what is measured is
the CPU of the match agent, not Slack's 1 msg/s per-channel pacing (``--any-country``
keeps either country: several matches per article). Every rule alerts one of
``--channels`` Slack receivers pointing at the in-process fake Slack API
(tests/fakes/slack_api.py, ``reconcile: false``).

Articles: real French, English and Arabic articles read from ../shared/data/articles (never
copied into the repository), cycled to ``--articles`` with unique ids (prefixed with a run
id) and spread evenly over the articles partitions.

Method, for each worker count, each with a fresh topic prefix: create the topics, start the
workers (logs in a temporary folder, their tail printed on failure), wait until the consumer
group ``<prefix>worker`` is Stable with every worker owning articles partitions, run a
warm-up (``--warmup`` articles, then a sentinel article per partition, waited for), then
produce every benchmark article as fast as possible followed by one sentinel article per
partition. A sentinel matches a dedicated rule; the broker timestamp of its match in the
matches topic (written by the match agent after every earlier article of that partition)
marks the end of the partition (record timestamps are set by the worker's producer when the
match agent sends the match; every process here reads the same clock). Reported:

- ``articles/s`` = articles / (last sentinel match - start of produce): the figure used for
  the ratio;
- the same from the worker group's committed offsets reaching the end offsets of the
  articles topic (polled every 0.2 s; faust commits every ~2.8 s, so this figure is low by
  up to ~3 s of elapsed time; nothing is subtracted);
- matches produced and Slack alerts received, when this script last saw the matches topic
  grow, and when the deliver agent's committed offsets caught up (bounded wait, 60 s);
- CPU used by each worker during the measurement (cores), articles per second of worker
  CPU, the whole machine's CPU use, and each worker's peak RSS (VmHWM).

Finally ``ratio 2 vs 1 = X.XXx (target >= 1.5x)``. The broker, the workers and this script
share the machine: read the figures with the machine CPU line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError
from workload import (
    DEFAULT_ARTICLES,
    Pool,
    load_articles,
    random_rules,
    realistic_rules,
    rule_yaml,
    vocabulary,
    write_watchlist,
)

from newswatch.core.article import Article
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.model import (
    AllOf,
    Countries,
    Group,
    Phrases,
    Rule,
    RuleSet,
)
from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics
from tests.fakes.slack_api import FakeSlackAPI

REPO = Path(__file__).resolve().parents[1]
TOKEN = "xoxb-test-token"
SENTINEL_RULE = "bench-sentinel"
SENTINEL_WORD = "zuqxawvoz"  # a made-up word: only sentinel articles contain it
POLL = 0.2  # seconds between looks at offsets and the matches topic
STOP_GRACE = 30.0  # seconds between SIGTERM and SIGKILL of a worker


# ------------------------------------------------------------------------------- rules


def strict_countries(ruleset: RuleSet) -> RuleSet:
    """match_bench's rules with both countries required (``all``) instead of either one:
    the same index and per-article work, far fewer matches."""

    def strict(rule: Rule) -> Rule:
        assert isinstance(rule.condition, AllOf)
        countries, rest = rule.condition.children
        assert isinstance(countries, Countries)
        group = Group(all=countries.group.all + countries.group.any)
        return dataclasses.replace(rule, condition=AllOf((Countries(group), rest)))

    return RuleSet(tuple(strict(r) for r in ruleset.rules), ruleset.aliases)


def sentinel_rule() -> Rule:
    return Rule(id=SENTINEL_RULE, title="benchmark sentinel",
                condition=AllOf((Phrases(Group(any=(SENTINEL_WORD,))),)))


def write_rules(folder: Path, ruleset: RuleSet, channels: int) -> list[Path]:
    """Rule files of at most 1,000 rules; rule i alerts receiver c<i % channels>; the
    sentinel rule alerts nobody (it only marks progress in the matches topic)."""
    entries = [rule_yaml(r, [f"c{i % channels}"]) for i, r in enumerate(ruleset.rules)]
    entries.append(rule_yaml(sentinel_rule(), []))
    return write_watchlist(folder, entries)


def check_rules(paths: Sequence[Path], ruleset: RuleSet, channels: int) -> None:
    """Load the files with the project's loader (as `rules check` and the worker do) and
    make sure they say exactly what the generated rules say."""
    sources = [(str(p), p.read_text(encoding="utf-8")) for p in paths]
    receivers = frozenset(f"c{i}" for i in range(channels))
    loaded = parse_rules(sources, known_codes=known_codes(), receivers=receivers)
    expected = [*ruleset.rules, sentinel_rule()]
    if len(loaded.rules) != len(expected):
        raise SystemExit(f"rule files hold {len(loaded.rules)} rules, not {len(expected)}")
    for got, want in zip(loaded.rules, expected, strict=True):
        if got.id != want.id or got.condition != want.condition:
            raise SystemExit(f"rule {want.id}: the YAML does not load as generated")


def write_config(folder: Path, rules: Path, bootstrap: str, prefix: str, partitions: int,
                 slack: FakeSlackAPI, channels: int) -> Path:
    receivers = {f"c{n}": {"slack": {"channel": f"#c{n}", "base_url": slack.base_url,
                                     "reconcile": False}}
                 for n in range(channels)}
    config = {"rules": [str(rules)], "feeds": [], "receivers": receivers,
              "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix,
                        "partitions": partitions}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- processes


def _proc_status(pid: int, key: str) -> int | None:
    """A kB figure of /proc/PID/status (VmHWM, VmRSS), None when unreadable."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this script dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Workers:
    """`newswatch worker` subprocesses; stopped (SIGTERM, SIGKILL after STOP_GRACE s) on
    exit from the ``async with`` block, whatever the reason. The wait does not block the
    event loop: the fake Slack API in this process keeps answering the stopping workers."""

    def __init__(self, count: int, config: Path, folder: Path) -> None:
        self.count = count
        self.config = config
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    async def __aenter__(self) -> Workers:
        # The workers run in the temporary folder (faust keeps its data folder in the
        # working directory): the repository goes on their path explicitly.
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "NEWSWATCH_LOG_FORMAT": "text",
               "PYTHONPATH": path}
        try:
            for k in range(self.count):
                log = self.folder / f"worker-{k}.log"
                self.logs.append(log)
                with log.open("wb") as out:
                    self.procs.append(subprocess.Popen(
                        [sys.executable, "-m", "newswatch", "worker", "--config",
                         str(self.config)],
                        cwd=self.folder, env=env, stdin=subprocess.DEVNULL, stdout=out,
                        stderr=subprocess.STDOUT, preexec_fn=_die_with_parent))
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.astop()
        finally:
            self.stop()  # if astop was cancelled: the blocking way

    def check_alive(self) -> None:
        for k, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise RunFailed(f"worker {k} exited with code {proc.returncode}")

    def print_logs(self) -> None:
        for k, log in enumerate(self.logs):
            print(f"--- worker {k} (pid {self.procs[k].pid}) log tail: {log}")
            print(tail(log))

    async def astop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        while any(p.poll() is None for p in self.procs) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class RunFailed(Exception):
    """A run that cannot give a figure (worker died, timeout)."""


# ------------------------------------------------------------------------------- kafka


@dataclass
class MatchesReader:
    """Reads the matches topic from the beginning (no group): counts matches, and keeps
    the broker timestamp of each sentinel's match, by article id."""

    consumer: AIOKafkaConsumer
    partitions: list[TopicPartition]
    sentinels: dict[str, float] = field(default_factory=dict)
    matches: int = 0
    last_growth: float = 0.0  # wall time the bench last saw new (non-sentinel) matches

    async def poll(self, timeout: float) -> None:
        batches = await self.consumer.getmany(*self.partitions,
                                              timeout_ms=int(timeout * 1000))
        for records in batches.values():
            for record in records:
                message = topics.decode_matches(record.key, record.value)
                if not isinstance(message, topics.MatchMessage):
                    continue  # a tick or a replay request, not a match
                if message.match.rule_id == SENTINEL_RULE:
                    self.sentinels[message.match.article.id] = record.timestamp / 1000
                else:
                    self.matches += 1
                    self.last_growth = time.time()


async def end_offsets(consumer: AIOKafkaConsumer,
                      tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    return dict(await consumer.end_offsets(tps))


async def committed(admin: AIOKafkaAdminClient, group: str,
                    tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    return {tp: offsets[tp].offset if tp in offsets else -1 for tp in tps}


async def group_members(admin: AIOKafkaAdminClient, group: str,
                        topic: str) -> tuple[str, dict[str, list[int]]]:
    """(state, member id → its partitions of ``topic``) of a consumer group; state
    "Unknown" while the broker has no coordinator for it yet."""
    try:
        responses = await admin.describe_consumer_groups([group])
    except KafkaError:  # e.g. GroupCoordinatorNotAvailable on a fresh broker
        return "Unknown", {}
    described = responses[0].to_object()["groups"][0]
    members: dict[str, list[int]] = {}
    for member in described["members"]:
        owned: list[int] = []
        with contextlib.suppress(Exception):  # an empty assignment while rebalancing
            decoded = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
            owned = sorted(tp.partition for tp in decoded.partitions() if tp.topic == topic)
        members[member["member_id"]] = owned
    return described["state"], members


def stable(state: str, members: dict[str, list[int]], workers: int, partitions: int) -> bool:
    """A group ready to measure: Stable, ``workers`` members, each owning partitions, all
    ``partitions`` of the topic owned."""
    owned = sorted(p for parts in members.values() for p in parts)
    return (state == "Stable" and len(members) == workers and all(members.values())
            and owned == list(range(partitions)))


def caught_up(done: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> bool:
    """Every partition's committed offset at its end (an empty partition has no commit)."""
    return all(ends[tp] == 0 or done.get(tp, -1) >= ends[tp] for tp in ends)


def offsets_table(articles_end: dict[TopicPartition, int],
                  articles_done: dict[TopicPartition, int],
                  matches_end: dict[TopicPartition, int],
                  matches_done: dict[TopicPartition, int]) -> str:
    lines = ["  topic     partition  committed        end   (committed -1: no commit yet)"]
    for name, ends, done in ((topics.ARTICLES, articles_end, articles_done),
                             (topics.MATCHES, matches_end, matches_done)):
        for tp in sorted(ends, key=lambda t: t.partition):
            lines.append(f"  {name:<9} {tp.partition:>9} {done.get(tp, -1):>10} "
                         f"{ends[tp]:>10}")
    return "\n".join(lines)


def article_value(article: Article, ident: str) -> bytes:
    copy = dataclasses.replace(article, id=ident, url=f"https://bench.example/{ident}")
    return topics.ArticleMessage(copy).to_bytes()


def sentinel_value(ident: str) -> bytes:
    article = Article(id=ident, feed="bench", title=f"{SENTINEL_WORD} {ident}")
    return topics.ArticleMessage(article).to_bytes()


async def produce(producer: AIOKafkaProducer, topic: str, partitions: int,
                  items: Sequence[tuple[str, bytes]]) -> None:
    """Send every (id, value) as fast as the producer batches them: item i to partition
    i % partitions, so each partition gets the same share (and its order is kept)."""
    futures = [await producer.send(topic, key=ident.encode(), value=value,
                                   partition=i % partitions)
               for i, (ident, value) in enumerate(items)]
    await asyncio.gather(*futures)


# ------------------------------------------------------------------------------- one run


@dataclass
class Result:
    workers: int
    rate: float = 0.0  # articles/s from the sentinels
    elapsed: float = 0.0
    committed_elapsed: float | None = None
    produce_s: float = 0.0
    matches: int = 0
    alerts: int = 0
    matches_last_growth: float | None = None
    delivery_drained: float | None = None
    cpu: list[float] = field(default_factory=list)
    machine_busy: float = 0.0
    rss_mb: list[float] = field(default_factory=list)
    assignment: dict[str, list[int]] = field(default_factory=dict)
    rebalanced: bool = False
    failure: str | None = None


@dataclass
class Bench:
    bootstrap: str
    partitions: int
    rules_dir: Path
    channels: int
    slack: FakeSlackAPI
    articles: list[Article]  # the corpus, cycled
    count: int
    warmup: int
    timeout: float
    startup_timeout: float
    workdir: Path


def cycled(bench: Bench, run: str, tag: str, count: int) -> Iterator[tuple[str, bytes]]:
    for i in range(count):
        article = bench.articles[i % len(bench.articles)]
        ident = f"{run}-{tag}-{i:06d}"
        yield ident, article_value(article, ident)


async def run_once(bench: Bench, workers: int) -> Result:
    result = Result(workers=workers)
    run = uuid.uuid4().hex[:10]
    prefix = f"scale-{run}."
    settings = KafkaSettings(bootstrap=bench.bootstrap, prefix=prefix,
                             partitions=bench.partitions)
    folder = bench.workdir / f"workers-{workers}-{run}"
    folder.mkdir()
    await ensure_topics(settings)
    config = write_config(folder, bench.rules_dir, bench.bootstrap, prefix, bench.partitions,
                          bench.slack, bench.channels)
    group = settings.topic(topics.WORKER_APP)
    articles_topic, matches_topic = settings.topic(topics.ARTICLES), settings.topic(topics.MATCHES)
    art_tps = [TopicPartition(articles_topic, p) for p in range(bench.partitions)]
    match_tps = [TopicPartition(matches_topic, p) for p in range(bench.partitions)]
    print(f"\n== workers={workers} prefix={prefix} (logs in {folder})", flush=True)

    # Prepared before the clock starts: the values of every article to produce.
    warm = list(cycled(bench, run, "warm", bench.warmup))
    items = list(cycled(bench, run, "bench", bench.count))
    warm_sentinels = [(f"{run}-warm-sentinel-{p}", sentinel_value(f"{run}-warm-sentinel-{p}"))
                      for p in range(bench.partitions)]
    end_sentinels = [(f"{run}-end-sentinel-{p}", sentinel_value(f"{run}-end-sentinel-{p}"))
                     for p in range(bench.partitions)]

    admin = AIOKafkaAdminClient(bootstrap_servers=bench.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=20,
                                max_batch_size=1 << 20, max_request_size=4 << 20)
    await admin.start()
    await consumer.start()
    await producer.start()
    reader = MatchesReader(consumer, match_tps)
    consumer.assign(match_tps)
    a_end: dict[TopicPartition, int] = {}
    a_done: dict[TopicPartition, int] = {}
    m_end: dict[TopicPartition, int] = {}
    m_done: dict[TopicPartition, int] = {}
    try:
        async with Workers(workers, config, folder) as procs:
            try:
                # 1. the group: Stable, every worker a member owning articles partitions
                t = time.monotonic()
                deadline = t + bench.startup_timeout
                while True:
                    procs.check_alive()
                    state, members = await group_members(admin, group, articles_topic)
                    if stable(state, members, workers, bench.partitions):
                        break
                    if time.monotonic() > deadline:
                        raise RunFailed(f"group {group} not ready: {state}, {members}")
                    await asyncio.sleep(0.5)
                result.assignment = members
                print(f"group Stable after {time.monotonic() - t:.1f}s; articles partitions: "
                      + "; ".join(f"member {k}: {parts}"
                                  for k, parts in enumerate(members.values())), flush=True)

                # 2. warm-up: some articles, then a sentinel per partition, waited for
                t = time.monotonic()
                await produce(producer, articles_topic, bench.partitions, warm)
                await produce(producer, articles_topic, bench.partitions, warm_sentinels)
                while len(reader.sentinels) < bench.partitions:
                    procs.check_alive()
                    if time.monotonic() > deadline:
                        raise RunFailed("warm-up sentinels not matched in time")
                    await reader.poll(POLL)
                print(f"warm-up: {len(warm)} articles + {bench.partitions} sentinels matched "
                      f"in {time.monotonic() - t:.1f}s", flush=True)

                # 3. the measurement
                a_base = await end_offsets(consumer, art_tps)
                matches_before = reader.matches
                alerts_before = len(bench.slack.calls_to("chat.postMessage"))
                cpu_before = [cpu_seconds(p.pid) or 0.0 for p in procs.procs]
                busy0, total0 = machine_cpu()
                t0 = time.time()
                await produce(producer, articles_topic, bench.partitions,
                              items + end_sentinels)
                result.produce_s = time.time() - t0
                print(f"produced {len(items)} articles + {bench.partitions} sentinels in "
                      f"{result.produce_s:.2f}s", flush=True)
                wanted = {ident for ident, _ in end_sentinels}
                deadline = time.monotonic() + bench.timeout
                cpu_after: list[float] = []
                while True:
                    procs.check_alive()
                    await reader.poll(POLL)
                    a_end = await end_offsets(consumer, art_tps)
                    a_done = await committed(admin, group, art_tps)
                    sentinels_seen = wanted <= reader.sentinels.keys()
                    if sentinels_seen and not cpu_after:
                        cpu_after = [cpu_seconds(p.pid) or 0.0 for p in procs.procs]
                        busy1, total1 = machine_cpu()
                        last = max(reader.sentinels[i] for i in wanted)
                        result.elapsed = last - t0
                        result.rate = len(items) / result.elapsed
                        result.cpu = [(b - a) / result.elapsed
                                      for a, b in zip(cpu_before, cpu_after, strict=True)]
                        result.machine_busy = (busy1 - busy0) / (total1 - total0)
                    if result.committed_elapsed is None and caught_up(a_done, a_end):
                        result.committed_elapsed = time.time() - t0
                    if sentinels_seen and result.committed_elapsed is not None:
                        break
                    if time.monotonic() > deadline:
                        m_end = await end_offsets(consumer, match_tps)
                        m_done = await committed(admin, group, match_tps)
                        processed = sum(max(0, a_done[tp] - a_base[tp]) for tp in art_tps)
                        missing = sorted(int(i.rsplit("-", 1)[1])
                                         for i in wanted - reader.sentinels.keys())
                        state, members = await group_members(admin, group, articles_topic)
                        raise RunFailed(
                            f"not finished after {bench.timeout:.0f}s: end sentinel not "
                            f"matched on articles partitions {missing}; {processed} of "
                            f"{len(items)} articles committed; group {state}, articles "
                            f"partitions per member {list(members.values())}\n"
                            + offsets_table(a_end, a_done, m_end, m_done))

                # 4. delivery: the deliver agent's offsets catch up (bounded wait)
                deadline = time.monotonic() + min(bench.timeout, 60.0)
                while time.monotonic() < deadline:
                    await reader.poll(POLL)
                    m_end = await end_offsets(consumer, match_tps)
                    m_done = await committed(admin, group, match_tps)
                    if caught_up(m_done, m_end):
                        result.delivery_drained = time.time() - t0
                        break
                else:
                    print("deliveries not drained within 60 s:\n"
                          + offsets_table(a_end, a_done, m_end, m_done))
                result.matches = reader.matches - matches_before
                if result.matches:
                    result.matches_last_growth = reader.last_growth - t0
                result.alerts = len(bench.slack.calls_to("chat.postMessage")) - alerts_before
                result.rss_mb = [(_proc_status(p.pid, "VmHWM") or 0) / 1024
                                 for p in procs.procs]
                state, members = await group_members(admin, group, articles_topic)
                result.rebalanced = members != result.assignment or state != "Stable"
            except RunFailed as error:
                result.failure = str(error)
                print(f"FAILED: {error}")
                procs.print_logs()
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()
    print_result(result, bench)
    return result


def print_result(r: Result, bench: Bench) -> None:
    if r.failure:
        print(f"workers={r.workers}: no figure ({r.failure.splitlines()[0]})")
        return
    committed_rate = (f"{bench.count / r.committed_elapsed:.1f} articles/s at "
                      f"{r.committed_elapsed:.1f}s" if r.committed_elapsed else "n/a")
    growth = (f"last grew at {r.matches_last_growth:.1f}s"
              if r.matches_last_growth is not None else "none")
    drained = (f"at {r.delivery_drained:.1f}s" if r.delivery_drained is not None
               else "not within 60 s")
    print(f"workers={r.workers}: {bench.count} articles matched in {r.elapsed:.2f}s "
          f"-> {r.rate:.1f} articles/s (sentinels)")
    print(f"  committed offsets at end: {committed_rate} (faust commits every ~2.8 s)")
    print(f"  matches produced {r.matches} ({growth}), Slack alerts {r.alerts}, "
          f"deliveries drained {drained}")
    print(f"  worker CPU during the run: {', '.join(f'{c:.2f}' for c in r.cpu)} cores; "
          f"machine busy {r.machine_busy * 100:.0f}% of {os.cpu_count()} CPUs; "
          f"peak RSS {', '.join(f'{m:.0f}' for m in r.rss_mb)} MB")
    if r.rebalanced:
        print("  WARNING: the group changed during the run (rebalance)")


# ----------------------------------------------------------------------------------- main


async def amain(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    counts = [int(w) for w in args.workers.split(",")]

    rng = random.Random(7)
    corpus = load_articles(args.corpus)
    if args.workload == "realistic":
        ruleset = realistic_rules(args.rules, Pool.of(corpus))
    else:
        ruleset = random_rules(args.rules, vocabulary(corpus, rng), rng)
    if not args.any_country:
        ruleset = strict_countries(ruleset)
    random.Random(11).shuffle(corpus)
    text_kb = statistics.mean(len(a.title) + len(a.summary) + len(a.content)
                              for a in corpus) / 1000
    json_kb = statistics.mean(len(article_value(a, "x" * 30)) for a in corpus) / 1000

    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = Path(tempfile.mkdtemp(prefix="kafka-scale-bench-"))
        else:
            workdir = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="kafka-scale-bench-")))
        rules_dir = workdir / "rules"
        t = time.monotonic()
        paths = write_rules(rules_dir, ruleset, args.channels)
        check_rules(paths, ruleset, args.channels)
        print(f"rules: {len(ruleset.rules)} {args.workload} (+1 sentinel) in {len(paths)} files, "
              f"loaded back and checked in {time.monotonic() - t:.1f}s; countries "
              f"{'any' if args.any_country else 'all'} of 2; {args.channels} Slack receivers")
        print(f"articles: {args.articles} per run (+{args.warmup} warm-up) cycled from "
              f"{len(corpus)} real articles (fr, en, ar); mean {text_kb:.1f} KB of text, "
              f"{json_kb:.1f} KB as JSON; {args.partitions} partitions")
        results: list[Result] = []
        async with FakeSlackAPI(token=TOKEN) as slack:
            bench = Bench(bootstrap=args.bootstrap, partitions=args.partitions,
                          rules_dir=rules_dir, channels=args.channels, slack=slack,
                          articles=corpus, count=args.articles,
                          warmup=args.warmup, timeout=args.timeout,
                          startup_timeout=args.startup_timeout, workdir=workdir)
            for n in counts:
                results.append(await run_once(bench, n))

    print("\n== summary (one broker, the workers and this script on one machine)")
    print(f"rules={args.rules} articles={args.articles} mean={text_kb:.1f}KB "
          f"partitions={args.partitions}")
    print(f"{'workers':>7} {'art/s':>8} {'elapsed s':>9} {'art/s (commits)':>15} "
          f"{'matches':>7} {'alerts':>6} {'CPU cores':>12} {'art/CPU-s':>9} {'machine':>7} "
          f"{'RSS MB':>10}")
    for r in results:
        if r.failure:
            print(f"{r.workers:>7} {'failed':>8}")
            continue
        committed_rate = (f"{args.articles / r.committed_elapsed:.1f}"
                          if r.committed_elapsed else "n/a")
        print(f"{r.workers:>7} {r.rate:>8.1f} {r.elapsed:>9.2f} {committed_rate:>15} "
              f"{r.matches:>7} {r.alerts:>6} {'+'.join(f'{c:.2f}' for c in r.cpu):>12} "
              f"{r.rate / max(sum(r.cpu), 1e-9):>9.0f} {r.machine_busy * 100:>6.0f}% "
              f"{'+'.join(f'{m:.0f}' for m in r.rss_mb):>10}")
    by_count = {r.workers: r for r in results if not r.failure}
    if 1 in by_count and 2 in by_count:
        ratio = by_count[2].rate / by_count[1].rate
        print(f"ratio 2 vs 1 = {ratio:.2f}x (target >= 1.5x)")
    elif 1 in counts and 2 in counts:
        print("ratio 2 vs 1 = n/a (a run failed)")
    return 1 if any(r.failure for r in results) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--rules", type=int, default=10000)
    parser.add_argument("--articles", type=int, default=5000, help="per run")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up articles per run")
    parser.add_argument("--workers", default="1,2", help="worker counts, one run each")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--channels", type=int, default=1000, help="Slack receivers")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds allowed for the measured drain of a run")
    parser.add_argument("--startup-timeout", type=float, default=300.0,
                        help="seconds allowed for the group to form and the warm-up")
    parser.add_argument("--any-country", action="store_true",
                        help="match_bench's rules as they are (about 3 matches per article)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_ARTICLES)
    parser.add_argument("--workload", choices=("realistic", "random"), default="realistic",
                        help="bench/workload.py's rules (random: the earlier figures')")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (configs, rules, worker logs)")
    args = parser.parse_args()
    try:
        sys.exit(asyncio.run(amain(args)))
    except asyncio.CancelledError:  # SIGTERM; the workers were stopped on the way out
        print("stopped by SIGTERM", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    main()
