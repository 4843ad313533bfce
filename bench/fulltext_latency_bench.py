"""The latency full text adds per alert, against the no-full-text baseline, in one run.

    python bench/fulltext_latency_bench.py [--sites 8] [--per-poll 5] [--polls 4]
                                           [--rules 1000] [--articles ../shared/data/articles]

``sites`` local page servers (each its own host, on 127.0.0.1, all in a child process, so
that serving costs the measured process nothing) serve news-like pages
(tests/fakes/news_pages.py: menus, cookie banner, related lists, comments; three layouts,
Arabic right-to-left, a legacy encoding) around the bodies of real articles
(../shared/data/articles, French, English and Arabic, read from there). One feed per site;
each poll hands ``per-poll`` new title-only entries of every feed to the full-text stage
(``streams/fulltext.py``) through the real fetcher, page fetcher (robots.txt, one fetch per
host at a time, ``host_delay`` apart) and extractor, and each version of an article it
hands on (teaser or body) is matched against ``rules`` realistic rules
(bench/workload.py). The polls of every feed start together; the next round starts once
the previous one's pages have all come. A first round, not counted, fetches each site's
robots.txt (kept a day, so not part of a steady state). Rounds are ``host_delay`` apart,
as a feed's polls are minutes apart: a round's first page does not wait for the last one
of the round before.

An alert's latency: from the poll handing its articles on to the end of matching the
version that alerts (the moment delivery decides; sending is the same in every row).
Rows, with p50 and p99 and what they add to the baseline's:

- ``no full text``: ``full_text: never``, the teaser matched at once (the baseline);
- ``body, no delay``: ``host_delay: 0s``, deadline 30 s: fetch + extraction + matching
  the body;
- ``body, delay 1 s``: the default politeness (``host_delay: 1s``, deadline 30 s): a
  poll's pages of one site come one a second;
- ``teaser, late``/``body, late``: ``pages.deadline: 1s`` with ``host_delay: 1s``: the
  articles whose page is not there after 1 s alert on their teaser at the deadline, then
  on the body when it comes (``teaser, late`` counts those articles only).

Pages whose main text extraction gives up on (trafilatura with ``favor_precision`` on a
few short pages, docs/full-text.md) alert on their teaser alone, as in production; the
body rows leave them out and the last line counts them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import commit, cpu_model
from workload import DEFAULT_ARTICLES, Pool, load_articles, realistic_rules

from newswatch.core.article import Article
from newswatch.core.config import FeedConfig
from newswatch.monitor.fetch import Fetcher
from newswatch.monitor.pages import PageFetcher
from newswatch.rules.matcher import Matcher
from newswatch.streams.fulltext import FullText
from tests.fakes.feed_server import FeedServer
from tests.fakes.news_pages import Story, build_page, paragraphs_of

LANGUAGES = ("fr", "en", "ar")


def stories(folder: Path, count: int) -> list[Story]:
    """``count`` real articles of 80 words or more, the three languages in turn."""
    rows = {lang: [r for r in map(json.loads, (folder / f"{lang}.jsonl").read_text(
        encoding="utf-8").splitlines()) if len(r["content"].split()) >= 80]
        for lang in LANGUAGES}
    return [Story(row["title"], paragraphs_of(row["content"]), lang,
                  "2020-10-02T10:00:00+00:00")
            for n in range(count) for lang in [LANGUAGES[n % 3]]
            for row in [rows[lang][n // 3]]]


class Run:
    """One row's measurements: seconds per matched version, by kind (teaser, body)."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.handed: dict[str, float] = {}
        self.teaser: dict[str, float] = {}
        self.body: dict[str, float] = {}

    async def sink(self, articles: Sequence[Article]) -> None:
        for article in articles:
            self.matcher.match(article)
            took = time.perf_counter() - self.handed[article.id]
            (self.body if article.body else self.teaser)[article.id] = took


def serve_sites(count: int, folder: Path, conn: Connection) -> None:
    """The child process: ``count`` sites serving the pages of 99 stories at ``/a/N.html``;
    sends their ports on ``conn``, then serves until the parent sends anything."""

    async def serve() -> None:
        told = stories(folder, 99)
        async with contextlib.AsyncExitStack() as stack:
            sites = [await stack.enter_async_context(FeedServer()) for _ in range(count)]
            for site in sites:
                for n, story in enumerate(told):
                    site.page(f"/a/{n}.html", build_page(
                        story, related=[s.title for s in (told[n + 1:] + told)[:7]],
                        layout=n % 3).body)
            conn.send([site.port for site in sites])
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(serve())


async def run(ports: list[int], titles: list[str], matcher: Matcher, *,
              mode: str, host_delay: float, deadline: float, per_poll: int,
              polls: int) -> Run:
    """Every round of one row; the measurements of the rounds after the first."""
    sites = [f"http://127.0.0.1:{port}" for port in ports]
    feeds = {f"site{i}": FeedConfig(f"site{i}", f"{site}/feed.xml", full_text=mode)
             for i, site in enumerate(sites)}
    async with Fetcher(allow=[f"127.0.0.1:{port}" for port in ports]) as fetcher:
        pages = PageFetcher(fetcher, cache={}, host_delay=host_delay)
        stage = FullText(pages, feeds, deadline=deadline)
        measured = Run(matcher)
        for round_ in range(polls + 1):
            current = Run(matcher) if round_ == 0 else measured
            batches = [[Article(id=f"{mode}-{host_delay}-{deadline}-{round_}-{i}-{k}",
                                feed=f"site{i}", title=titles[(round_ * per_poll + k) % 99],
                                url=f"{site}/a/{(round_ * per_poll + k) % 99}.html"
                                    f"?r={mode}{host_delay}{deadline}{round_}")
                        for k in range(per_poll)] for i, site in enumerate(sites)]
            for batch in batches:
                for article in batch:
                    current.handed[article.id] = time.perf_counter()
            await asyncio.gather(*(stage.take(b, current.sink) for b in batches))
            await stage.drain()
            # polls of a feed are minutes apart: a round's first page never waits for the
            # previous round's last one
            await asyncio.sleep(host_delay)
    return measured


def row(name: str, values: Sequence[float], base: tuple[float, float] | None) -> str:
    if len(values) < 2:
        return f"{name:<17}{len(values):>7}"
    p50, p99 = statistics.median(values), statistics.quantiles(values, n=100)[98]
    added = "" if base is None else \
        f"   +{(p50 - base[0]) * 1000:8.1f} ms +{(p99 - base[1]) * 1000:8.1f} ms"
    return f"{name:<17}{len(values):>7} {p50 * 1000:9.1f} ms {p99 * 1000:9.1f} ms{added}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--per-poll", type=int, default=5)
    parser.add_argument("--polls", type=int, default=4)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES)
    args = parser.parse_args()
    logging.getLogger("newswatch").setLevel(logging.ERROR)  # failed pages are counted, not told
    corpus = load_articles(args.articles)
    matcher = Matcher(realistic_rules(args.rules, Pool.of(corpus)))
    titles = [s.title for s in stories(args.articles, 99)]
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve_sites, args=(args.sites, args.articles, child))
    server.start()
    try:
        ports = parent.recv()
        common = {"per_poll": args.per_poll, "polls": args.polls}
        base = await run(ports, titles, matcher, mode="never", host_delay=0.0,
                         deadline=30.0, **common)
        fast = await run(ports, titles, matcher, mode="always", host_delay=0.0,
                         deadline=30.0, **common)
        polite = await run(ports, titles, matcher, mode="always", host_delay=1.0,
                           deadline=30.0, **common)
        late = await run(ports, titles, matcher, mode="always", host_delay=1.0,
                         deadline=1.0, **common)
    finally:
        parent.send(None)
        server.join()
    print(f"{args.sites} sites x {args.per_poll} title-only entries per poll x {args.polls} "
          f"polls; {args.rules} realistic rules")
    print(f"{'alert':<17}{'count':>7} {'p50':>12} {'p99':>12}   {'added p50':>11} "
          f"{'added p99':>11}")
    b = list(base.teaser.values())
    reference = (statistics.median(b), statistics.quantiles(b, n=100)[98])
    print(row("no full text", b, None))
    print(row("body, no delay", list(fast.body.values()), reference))
    print(row("body, delay 1 s", list(polite.body.values()), reference))
    # a teaser handed on alone: its page late (a body follows) or failed (none does)
    print(row("teaser, late", [t for i, t in late.teaser.items() if i in late.body],
              reference))
    print(row("body, late", list(late.body.values()), reference))
    print(f"pages without main text (their article alerts on its teaser alone): "
          f"{len(fast.teaser)} of {len(base.teaser)}")
    print(f"one process: {cpu_model()}; commit {commit()}")


if __name__ == "__main__":
    asyncio.run(main())
