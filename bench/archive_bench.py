"""The article archive of the embedded runtime: state-file bytes per 10,000 real articles,
and how fast articles are kept and read back (issue 17).

    python bench/archive_bench.py [--articles 10000] [--batch 20]

Real French, English and Arabic articles from ../shared/data/articles, cycled with fresh
ids to ``--articles``, are kept in a new state file in batches of ``--batch`` (a poll of a
feed hands on a few new articles at a time; each batch is one transaction with
``synchronous=FULL``, as under ``newswatch run``), then read back in full, oldest first.
The baseline is the articles' JSON as the archive stores it, uncompressed: what the file
would hold without compression.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import commit, cpu_model
from workload import load_articles

from newswatch.core.archive import Archive
from newswatch.core.state import Database


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args()
    print(f"commit {commit()} · {cpu_model()} · {os.cpu_count()} CPUs")
    real = load_articles()
    articles = [replace(real[n % len(real)], id=f"bench-{n}") for n in range(args.articles)]
    raw = sum(len(json.dumps(a.to_json(), ensure_ascii=False).encode()) for a in articles)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        db = Database.open(path)
        empty = _size(path)
        archive = Archive(db.archive(), 30)
        started = time.perf_counter()
        for start in range(0, len(articles), args.batch):
            archive.keep(articles[start:start + args.batch])
        kept = time.perf_counter() - started
        db.pragma("wal_checkpoint(TRUNCATE)")
        size = _size(path) - empty
        started = time.perf_counter()
        read = sum(1 for _ in archive.read(0))
        reading = time.perf_counter() - started
        db.close()
    per10k = 10_000 / len(articles)
    print(f"{len(articles):,} articles (mean {raw / len(articles) / 1024:.1f} KB of JSON), "
          f"batches of {args.batch}")
    print(f"state file: +{size / 1e6 * per10k:.1f} MB per 10,000 articles "
          f"({size / len(articles) / 1024:.2f} KB each); uncompressed JSON baseline "
          f"{raw / 1e6 * per10k:.1f} MB ({raw / size:.1f}x larger)")
    print(f"keep: {len(articles) / kept:,.0f} articles/s; read back: {read / reading:,.0f} "
          f"articles/s ({read:,} read)")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


if __name__ == "__main__":
    main()
