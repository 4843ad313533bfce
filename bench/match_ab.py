"""The matcher at an earlier commit against the working tree, taking turns in one process.

    python bench/match_ab.py REV [--rules 1000] [--workload realistic|random]

A speed ratio that a busy machine does not distort: the rules package of ``REV`` (matcher,
tokeniser, loader, gazetteer; copied from git into a temporary package) and the current one
load the same YAML rules (bench/workload.py) and match the same real articles, 100 at a
time in turn, first with empty per-word caches (cold), then warm (steady). Prints articles
per second of process CPU time for both, the ratios, and whether both found the same rule
ids on every 10th article. ``REV`` runs as Python source; the working tree as installed
(compiled with mypyc unless built with ``NEWSWATCH_PURE=1``, setup.py): the header says which.
"""

from __future__ import annotations

import argparse
import importlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import matcher_build
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
from newswatch.core.heap import settle
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher

ROOT = Path(__file__).resolve().parents[1]


def old_package(rev: str, folder: Path) -> Any:
    """The rules package of ``rev`` as the importable package ``oldrules``."""
    package = folder / "oldrules"
    package.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "rules/"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout
            text = text.replace("newswatch.rules.", "oldrules.")
            (package / Path(name).name).write_text(text, encoding="utf-8")
    (package / "data").symlink_to(ROOT / "rules" / "data")
    sys.path.insert(0, str(folder))
    return (importlib.import_module("oldrules.loader"), importlib.import_module("oldrules.matcher"),
            importlib.import_module("oldrules.gazetteer"))


def cpu_seconds(matcher: Any, articles: Sequence[Article]) -> float:
    started = time.process_time()
    for article in articles:
        matcher.match(article)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to compare with, e.g. HEAD~3")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--workload", choices=("realistic", "random"), default="realistic")
    parser.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES)
    args = parser.parse_args()
    articles = load_articles(args.articles)
    if args.workload == "realistic":
        ruleset = realistic_rules(args.rules, Pool.of(articles))
    else:
        ruleset = random_rules(args.rules, vocabulary(articles, random.Random(7)),
                               random.Random(7))
    with tempfile.TemporaryDirectory(prefix="match-ab-") as tmp:
        paths = write_watchlist(Path(tmp) / "rules", [rule_yaml(r) for r in ruleset.rules])
        sources = [(str(p), p.read_text(encoding="utf-8")) for p in paths]
        loader, matcher, gazetteer = old_package(args.rev, Path(tmp))
        old = matcher.Matcher(loader.parse_rules(sources, known_codes=gazetteer.known_codes(),
                                                 receivers=None))
        new = Matcher(parse_rules(sources, known_codes=known_codes(), receivers=None))
        settle()  # both indexes out of the collector's passes, as the runtimes do
        times = {"cold": [0.0, 0.0], "steady": [0.0, 0.0]}
        for phase in ("cold", "steady"):
            for start in range(0, len(articles), 100):
                chunk = articles[start:start + 100]
                times[phase][0] += cpu_seconds(old, chunk)
                times[phase][1] += cpu_seconds(new, chunk)
        same = all([m.rule.id for m in old.match(a)] == [m.rule.id for m in new.match(a)]
                    for a in articles[::10])
    n = len(articles)
    print(f"{args.workload}, {args.rules} rules, {n} articles, {args.rev} (Python source) vs"
          f" working tree ({matcher_build()}):")
    for phase, (was, now) in times.items():
        print(f"  {phase:<6} {n / was:>6.0f} -> {n / now:>6.0f} articles/s ({was / now:.2f}x)")
    print(f"  same rule ids on every 10th article: {same}")


if __name__ == "__main__":
    main()
