"""Polling benchmark: the real Poller and Fetcher against thousands of local feeds.

    python bench/poll_bench.py [--feeds 1000,10000] [--state memory|sqlite|both]
                               [--hosts 50] [--concurrency 20] [--cycles 2]

A feed server runs in a child process (pinned to the second core when there is one) on
``--hosts`` loopback addresses (127.0.0.1 … 127.0.0.N, one port each: the fetcher's
per-host limit of 2 applies per host, as with real publishers). It serves realistic bodies:
every feed file in ../shared/data/feeds that parses to at least one article (read from
there, not copied), feed i getting file i mod n, gzip-compressed when asked. Each body has
an ETag; in every measured cycle 20 % of the feeds change (a new item is inserted, so the
body and ETag change) and the other 80 % answer 304 to the poller's If-None-Match.

The poller process (pinned to the first core) polls every feed once per cycle with
``Poller.poll_all``; the sink only counts articles (the matcher has its own benchmark).
Cycle 0 is the cold start (every feed new: 200, parsed in full); cycles 1.. are measured.
State is either in memory (dicts: the poller's own cost) or a temporary SQLite file in WAL
mode with synchronous=FULL, exactly as ``newswatch run`` keeps it (an fsync per write).

Reported per cycle: wall seconds, feeds/s, CPU seconds of the poller process (user+sys from
``resource.getrusage``, parse threads included) and per 1,000 feeds, the share of one core
this would take if the cycle were spread over 5 minutes, changed feeds and changed feeds
parsed per second (changed feeds / cycle wall time: a floor, the 304s share that time), and
the process's peak RSS (``ru_maxrss``). A last "changed-only" cycle (every feed changed)
gives the parse-bound rate.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newswatch.core.article import Article
from newswatch.core.config import FeedConfig
from newswatch.core.errors import ParseError
from newswatch.core.state import Database, FetchEvent
from newswatch.monitor.feedparse import parse_feed
from newswatch.monitor.fetch import Fetcher, FetchLimits
from newswatch.monitor.poller import Poller

DEFAULT_FEEDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "feeds"
CHANGE_EVERY = 5  # one feed in five changes per cycle: 20 % changed, 80 % 304
ALL_CHANGED = -1  # cycle value telling the server that every feed changed


# ------------------------------------------------------------------------------ corpus


def load_bodies(folder: Path) -> list[bytes]:
    """Every feed file that parses to at least one article and has an item or entry to
    insert a new one before."""
    bodies = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix == ".md":
            continue
        data = path.read_bytes()
        if _insert_point(data) is None:
            continue
        try:
            parsed = parse_feed(data, feed="probe", headers={}, language=None)
            changed = parse_feed(variant(data, 0, 1), feed="probe", headers={}, language=None)
        except ParseError:
            continue
        if (parsed.articles and len(changed.articles) > len(parsed.articles)) or (
                len(parsed.articles) == 200 and changed.articles[0].title.startswith("Bench")):
            bodies.append(data)
    return bodies


def _insert_point(data: bytes) -> tuple[int, bytes] | None:
    for tag, kind in ((b"<item>", b"item"), (b"<item ", b"item"), (b"<entry>", b"entry"),
                      (b"<entry ", b"entry")):
        at = data.find(tag)
        if at >= 0:
            return at, kind
    return None


def variant(base: bytes, feed: int, version: int) -> bytes:
    """``base`` with one new item/entry (unique to feed and version) before the first."""
    if version == 0:
        return base
    point = _insert_point(base)
    assert point is not None
    at, kind = point
    ident = f"bench-{feed}-{version}"
    if kind == b"item":
        new = (f"<item><title>Bench update {feed}.{version}</title>"
               f"<link>https://bench.example/{feed}/{version}</link>"
               f'<guid isPermaLink="false">{ident}</guid>'
               f"<description>Update {version} of feed {feed}: a new article.</description>"
               f"<pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate></item>")
    else:
        new = (f"<entry><title>Bench update {feed}.{version}</title><id>{ident}</id>"
               f'<link href="https://bench.example/{feed}/{version}"/>'
               f"<updated>2024-01-01T00:00:00Z</updated>"
               f"<summary>Update {version} of feed {feed}: a new article.</summary></entry>")
    return base[:at] + new.encode() + base[at:]


def version_of(feed: int, cycle: int) -> int:
    """Feed ``feed`` changes in cycle ``cycle`` when (feed + cycle) % CHANGE_EVERY == 0."""
    return (cycle + feed % CHANGE_EVERY) // CHANGE_EVERY


# ------------------------------------------------------------------------------ server


def serve(
    folder: str, hosts: int, cycle: Synchronized[int], ready: Any, core: int | None
) -> None:
    """Child process: the feed server. Sends its ports through ``ready``."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    from aiohttp import web

    bodies = load_bodies(Path(folder))
    bumped: dict[int, int] = {}  # feed → version when the server was told "all changed"

    def current(feed: int) -> int:
        value = cycle.value
        if value == ALL_CHANGED:
            return bumped.setdefault(feed, 10_000 + version_of(feed, 10))
        return version_of(feed, value)

    async def handle(request: web.Request) -> web.Response:
        feed = int(request.match_info["feed"])
        version = current(feed)
        etag = f'"{feed}-{version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        body = variant(bodies[feed % len(bodies)], feed, version)
        headers = {"ETag": etag, "Content-Type": "application/xml"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/f/{feed}.xml", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ports = []
        for h in range(hosts):
            site = web.TCPSite(runner, f"127.0.0.{h + 1}", 0, backlog=1024)
            await site.start()
            ports.append(runner.addresses[-1][1])
        ready.send((len(bodies), ports))
        await asyncio.Event().wait()

    asyncio.run(main())


# ------------------------------------------------------------------------------ poller


class Count:
    """Sink and poll metrics in one: counts articles and poll results."""

    def __init__(self) -> None:
        self.articles = 0
        self.results: Counter[str] = Counter()

    async def __call__(self, articles: Sequence[Article]) -> None:
        self.articles += len(articles)

    def observe_poll(
        self, *, result: str, error_kind: str | None, latency: float, new: int, lag: float
    ) -> None:
        self.results[result if error_kind is None else f"{result}:{error_kind}"] += 1

    def set_feed_statuses(self, counts: Mapping[str, int]) -> None:
        pass


class NullLog:
    def log_fetch(self, e: FetchEvent, *, keep: int = 100) -> None:
        pass


@dataclass
class Row:
    feeds: int
    state: str
    cycle: str
    wall: float
    cpu: float
    changed: int
    results: Counter[str]
    articles: int
    rss_mb: float

    def line(self) -> str:
        per_k = self.cpu / self.feeds * 1000
        core = self.cpu / 300 * 100
        changed_rate = self.changed / self.wall if self.wall else 0.0
        return (f"| {self.feeds:,} | {self.state} | {self.cycle} | {self.wall:.1f} | "
                f"{self.feeds / self.wall:,.0f} | {self.cpu:.1f} | {per_k:.2f} | {core:.1f} % |"
                f" {self.changed:,} | {changed_rate:,.0f} | {self.rss_mb:.0f} |")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def bench(
    n: int, state: str, hosts: list[tuple[str, int]], cycle: Synchronized[int],
    concurrency: int, cycles: int,
) -> list[Row]:
    feeds = [FeedConfig(f"f{i}", f"http://{hosts[i % len(hosts)][0]}:"
                        f"{hosts[i % len(hosts)][1]}/f/{i}.xml", interval=300.0)
             for i in range(n)]
    allow = [f"{h}:{p}" for h, p in hosts]
    count = Count()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db: Database | None = None
        if state == "sqlite":
            db = Database.open(Path(tmp) / "state.db")
            health: Any = db.mapping("health")
            seen: Any = db.mapping("seen")
            entries: Any = db.mapping("entries")
            log: Any = db
        else:
            health, seen, entries, log = {}, {}, {}, NullLog()
        limits = FetchLimits(concurrency=concurrency)
        async with Fetcher(limits, allow=allow) as fetcher:
            poller = Poller(feeds, fetcher, health=health, seen=seen, entries=entries,
                            fetch_log=log, sink=count, metrics=count)
            plan = [(k, str(k)) for k in range(cycles + 1)] + [(ALL_CHANGED, "all changed")]
            for value, label in plan:
                cycle.value = value
                count.results.clear()
                articles = count.articles
                cpu, wall = cpu_seconds(), time.perf_counter()
                await poller.poll_all()
                wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
                changed = count.results["ok"] + count.results["unchanged"]
                rows.append(Row(n, state, "0 (cold)" if value == 0 else label, wall, cpu,
                                changed, Counter(count.results), count.articles - articles,
                                peak_rss_mb()))
                print(rows[-1].line(), dict(count.results), f"articles={rows[-1].articles}",
                      file=sys.stderr, flush=True)
        if db is not None:
            db.close()
    return rows


def run_one(n: int, state: str, hosts: list[tuple[str, int]], cycle: Synchronized[int],
            concurrency: int, cycles: int, out: Any) -> None:
    """Child process per (size, state), so each peak RSS is its own."""
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})
    out.send(asyncio.run(bench(n, state, hosts, cycle, concurrency, cycles)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", default="1000,10000")
    parser.add_argument("--state", choices=["memory", "sqlite", "both"], default="both")
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=20,
                        help="the fetcher's global limit (default: the product default)")
    parser.add_argument("--cycles", type=int, default=2, help="measured cycles after cycle 0")
    parser.add_argument("--data", type=Path, default=DEFAULT_FEEDS)
    args = parser.parse_args()

    ctx = multiprocessing.get_context("fork")
    cycle: Synchronized[int] = ctx.Value("i", 0)  # type: ignore[assignment]
    receive, send = ctx.Pipe(duplex=False)
    two_cores = len(os.sched_getaffinity(0)) > 1
    server = ctx.Process(target=serve, args=(str(args.data), args.hosts, cycle, send,
                                             1 if two_cores else None), daemon=True)
    server.start()
    try:
        n_bodies, ports = receive.recv()
        hosts = [(f"127.0.0.{h + 1}", port) for h, port in enumerate(ports)]
        print(f"{n_bodies} feed bodies from {args.data}; {args.hosts} hosts; "
              f"concurrency {args.concurrency}; cores: {os.cpu_count()}", file=sys.stderr)
        print("| feeds | state | cycle | wall s | feeds/s | CPU s | CPU s/1k feeds | "
              "core at 5-min cycle | changed | changed/s | peak RSS MB |")
        print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        states = ["memory", "sqlite"] if args.state == "both" else [args.state]
        for n in (int(x) for x in args.feeds.split(",")):
            for state in states:
                back, forth = ctx.Pipe(duplex=False)
                child = ctx.Process(target=run_one, args=(n, state, hosts, cycle,
                                                          args.concurrency, args.cycles, forth))
                child.start()
                rows: list[Row] = back.recv()
                child.join()
                for row in rows:
                    print(row.line(), flush=True)
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
