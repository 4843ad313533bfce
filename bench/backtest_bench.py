"""Rule backtest over a month of archive: 30 days × 5,000 articles a day replayed through
1,000 realistic rules (issue 17's target: under 2 minutes on one core, memory bounded).

    python bench/backtest_bench.py [--days 30] [--per-day 5000] [--rules 1000]

An archive is built in a temporary state file from the real French, English and Arabic
articles of ../shared/data/articles, cycled with fresh ids and spread evenly over the days
(building it is not timed). Then, on one core, the whole span is replayed through the
realistic watchlist of bench/workload.py (every rule alerting one Slack-like stand-in)
with ``Backtest`` as ``newswatch rules backtest`` runs it: read and decompress, match,
decide. The baseline, measured in the same run, is reading and decompressing the same
archive without matching: the floor the replay cannot go under.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import commit, cpu_model
from workload import Pool, load_articles, realistic_rules

from newswatch.core.archive import DAY, Archive
from newswatch.core.state import Database
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import RuleSet
from newswatch.streams.backtest import Backtest


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=5000)
    ap.add_argument("--rules", type=int, default=1000)
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})
    print(f"commit {commit()} · {cpu_model()} · {os.cpu_count()} CPUs; replay on one core")
    real = load_articles()
    ruleset = realistic_rules(args.rules, Pool.of(real))
    ruleset = RuleSet(rules=tuple(replace(r, notify=("desk",)) for r in ruleset.rules),
                      aliases=ruleset.aliases)
    matcher = Matcher(ruleset)
    total = args.days * args.per_day
    start = time.time() - args.days * DAY
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(Path(tmp) / "state.db")
        clock = [start]
        archive = Archive(db.archive(), args.days + 1, clock=lambda: clock[0])
        step = DAY / args.per_day
        batch = 50
        for n in range(0, total, batch):
            clock[0] = start + n * step
            archive.keep([replace(real[(n + k) % len(real)], id=f"b{n + k}")
                          for k in range(min(batch, total - n))])
        size = sum(p.stat().st_size for p in Path(tmp).glob("state.db*")) / 1e6
        print(f"archive: {total:,} articles over {args.days} days, {size:,.0f} MB")

        rss = peak_rss_mb()
        started = time.process_time()
        read = sum(1 for _ in archive.read(start))
        floor = time.process_time() - started
        print(f"baseline, read and decompress only: {floor:.1f} s CPU "
              f"({read / floor:,.0f} articles/s)")

        backtest = Backtest(matcher, {"desk": True})
        started = time.process_time()
        wall = time.perf_counter()
        outcomes = asyncio.run(backtest.replay(archive.read(start)))
        cpu = time.process_time() - started
        wall = time.perf_counter() - wall
        db.close()
    alerts = sum(len(o.alerts) for o in outcomes.values())
    matches = sum(o.matches for o in outcomes.values())
    print(f"replay through {args.rules:,} rules: {cpu:.1f} s CPU, {wall:.1f} s wall "
          f"({total / cpu:,.0f} articles/s); {matches:,} matches, {alerts:,} alerts; "
          f"peak RSS +{peak_rss_mb() - rss:,.0f} MB (total {peak_rss_mb():,.0f} MB)")
    print(f"target: {args.days} days × {args.per_day:,} a day in under 120 s: "
          f"{'met' if wall < 120 else 'NOT met'}")


if __name__ == "__main__":
    main()
