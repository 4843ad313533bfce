"""Matcher benchmark: compiled index vs a naive loop over rules, on real articles.

    python bench/match_bench.py [--articles DIR] [--sizes 100,1000,10000] [--baseline-articles 40]

Reads French, English and Arabic articles (JSON lines) from ../shared/data/articles (not
copied into the repository), generates rule sets of each size (countries, 2-4 phrases and
1-3 people per rule, words drawn from the corpus so that some rules do match), and prints,
for each size: build time, articles/s on one core (first pass with a cold word cache, then
steady state), p50/p99 per article, peak traced memory of the build (traced separately),
and the same run through a naive baseline (a regex per phrase and rapidfuzz
``partial_ratio`` per name, looping over every rule) on a sample of articles.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from rapidfuzz import fuzz

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newswatch.core.article import Article
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import (
    AllOf,
    AnyOf,
    Countries,
    Group,
    People,
    Person,
    Phrases,
    Rule,
    RuleSet,
)
from newswatch.rules.text import normalize

DEFAULT_ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "articles"
FIRST = ["Mark", "Nasser", "Kaïs", "Abdelmadjid", "Ahmed", "Fatima", "John", "Marie", "Omar",
         "Aïcha", "Ibrahim", "Emmanuel", "Vladimir", "Joe", "Mohammed", "Youssef", "Salma"]
LAST = ["Esper", "Bourita", "Saïed", "Tebboune", "Attaf", "Diallo", "Traoré", "Macron",
        "Poutine", "Biden", "Ben Salman", "Amrani", "Haddad", "Benali", "Kagame", "Ruto"]


def load_articles(folder: Path) -> list[Article]:
    out = []
    for name in ("fr.jsonl", "en.jsonl", "ar.jsonl"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            out.append(Article(id=d["id"], feed=d.get("feed", ""), title=d.get("title", ""),
                               summary=d.get("summary", ""), content=d.get("content", ""),
                               language=d.get("language")))
    return out


def vocabulary(articles: list[Article], rng: random.Random) -> list[str]:
    """Frequent-but-not-stopword words of the corpus, for phrases that sometimes hit."""
    counts: Counter[str] = Counter()
    for a in articles[::5]:
        counts.update(w for w in normalize(a.content).split() if len(w) > 4)
    common = [w for w, _ in counts.most_common(3000)[200:]]
    rng.shuffle(common)
    return common


def generate_rules(n: int, words: list[str], rng: random.Random) -> RuleSet:
    codes = sorted(known_codes())
    rules = []
    for i in range(n):
        countries = Countries(Group(any=tuple(rng.sample(codes, 2))))
        phrases = Phrases(Group(any=tuple(
            " ".join(rng.sample(words, rng.choice((1, 2, 2, 3))))
            for _ in range(rng.randint(2, 4))
        )))
        people = People(Group(any=tuple(
            Person(f"{rng.choice(FIRST)} {rng.choice(LAST)}") for _ in range(rng.randint(1, 3))
        )))
        # "countries and (phrases or people)", the shape analysts write most
        rules.append(Rule(id=f"r{i}", title=f"Rule {i}",
                          condition=AllOf((countries, AnyOf((phrases, people))))))
    return RuleSet(tuple(rules))


class NaiveMatcher:
    """The baseline: for every rule, a regex per phrase and partial_ratio per name."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.rules = []
        for rule in ruleset.rules:
            phrases, people = [], []
            assert isinstance(rule.condition, AllOf)
            assert isinstance(rule.condition.children[1], AnyOf)
            for leaf in rule.condition.children[1].children:
                if isinstance(leaf, Phrases):
                    phrases = [re.compile(r"\b" + r"\W+(?:\w+\W+){0,3}?".join(
                        re.escape(w) for w in p.split()) + r"\b", re.I) for p in leaf.group.any]
                if isinstance(leaf, People):
                    people = [p.name for p in leaf.group.any]
            self.rules.append((rule.id, phrases, people))

    def match(self, article: Article) -> list[str]:
        text = f"{article.title}\n{article.summary}\n{article.content}"
        out = []
        for rule_id, phrases, people in self.rules:
            # countries are ignored here: that only makes the baseline faster
            if any(p.search(text) for p in phrases) or any(
                fuzz.partial_ratio(name, text, score_cutoff=90) for name in people
            ):
                out.append(rule_id)
        return out


def time_per_article(fn: object, articles: list[Article]) -> list[float]:
    times = []
    for a in articles:
        t = time.perf_counter()
        fn(a)  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--baseline-articles", type=int, default=40)
    args = ap.parse_args()
    rng = random.Random(7)
    articles = load_articles(args.articles)
    sizes_kb = statistics.mean(len(a.title) + len(a.summary) + len(a.content)
                               for a in articles) / 1000
    words = vocabulary(articles, rng)
    print(f"corpus: {len(articles)} articles (fr, en, ar), mean {sizes_kb:.1f} KB of text")
    print(f"{'rules':>6} {'build s':>8} {'build MB':>9} {'cold/s':>7} {'art/s':>7} {'p50 ms':>7}"
          f" {'p99 ms':>7} {'matches':>8} | {'naive art/s':>11} {'naive p50':>9} {'speed-up':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        ruleset = generate_rules(size, words, rng)
        t = time.perf_counter()
        matcher = Matcher(ruleset)
        build = time.perf_counter() - t
        tracemalloc.start()  # a second build, traced: tracing slows allocation down a lot
        Matcher(ruleset)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        # One pass warms the per-word cache (as a long-running monitor is), then measure.
        cold = time_per_article(matcher.match, articles)
        times = time_per_article(matcher.match, articles)
        found = sum(len(matcher.match(a)) for a in articles[:500])
        rate = len(articles) / sum(times)
        sample = rng.sample(articles, min(args.baseline_articles, len(articles)))
        naive = NaiveMatcher(ruleset)
        naive_times = time_per_article(naive.match, sample)
        naive_rate = len(sample) / sum(naive_times)
        cold_rate = len(articles) / sum(cold)
        print(f"{size:>6} {build:>8.2f} {peak:>9.1f} {cold_rate:>7.0f} {rate:>7.0f}"
              f" {pct(times, .5)*1e3:>7.2f}"
              f" {pct(times, .99)*1e3:>7.2f} {found:>8} | {naive_rate:>11.1f}"
              f" {pct(naive_times, .5)*1e3:>9.1f} {rate / naive_rate:>7.0f}x")


if __name__ == "__main__":
    main()
