"""People across scripts and spellings (issue 20): recall on real officials' spellings,
false matches on lookalikes and on real articles, against the matcher of an earlier commit.

    python bench/people_bench.py [--rev 8d3345a] [--articles ../shared/data/articles]
                                 [--list-added]

The officials are bench/data/officials.yaml: real people of the region, each with the form
a desk writes (``name``), other Latin spellings the press uses, the usual Arabic spelling
and, for some, a longer official form; pairs of different people whose names are close;
common Arabic words that are names too.

- **Recall**: one rule per official, written once (its ``name``, Latin script, no alias),
  or written in Arabic (its ``arabic``); every other spelling is put in a French, an English
  and an Arabic sentence; the share found, by kind of spelling.
- **Lookalikes**: a rule for one of a pair, a sentence naming the other; the false matches.
- **Real articles**: every official as a rule over the real French, English and Arabic
  articles; the matches each matcher finds, and those the current one adds (with
  ``--list-added``, each listed to be checked by hand; docs/performance.md has the verdicts).

The earlier matcher is the rules package of ``--rev`` loaded beside the current one
(bench/match_ab.py). Machine and commit are printed first.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import commit, cpu_model
from match_ab import old_package
from workload import DEFAULT_ARTICLES, load_articles

from newswatch.core.article import Article
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher

DATA = Path(__file__).resolve().parent / "data" / "officials.yaml"
SENTENCES = {
    "fr": "Le président {} a reçu mardi une délégation venue de Paris.",
    "en": "{} said on Tuesday that the talks would resume next week.",
    "ar": "استقبل {} يوم الثلاثاء وفدا رسميا في العاصمة.",
}
BASELINE = "8d3345a"  # the matcher before issue 20


def slug(name: str, n: int) -> str:
    return f"p{n:03d}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]


def rules_yaml(people: Sequence[tuple[str, str]]) -> str:
    """One rule per (id, name) as a desk writes it."""
    return yaml.safe_dump({"rules": [{"id": ident, "title": name, "people": [name]}
                                     for ident, name in people]}, allow_unicode=True)


class Matchers:
    """The current matcher and the one of ``rev``, over the same rule texts."""

    def __init__(self, rev: str, folder: Path) -> None:
        old_loader, old_matcher, _ = old_package(rev, folder)
        self._new = (parse_rules, Matcher)
        self._old = (old_loader.parse_rules, old_matcher.Matcher)

    def build(self, text: str) -> tuple[Any, Any]:
        pairs = []
        for parse, matcher in (self._old, self._new):
            pairs.append(matcher(parse([("rules.yaml", text)], known_codes=known_codes())))
        return pairs[0], pairs[1]


def article(text: str, language: str, ident: str = "x") -> Article:
    return Article(id=ident, feed="bench", title=text, url=f"https://bench.example/{ident}",
                   language=language)


def found(matcher: Any, text: str, language: str, rule_id: str) -> bool:
    return any(m.rule.id == rule_id for m in matcher.match(article(text, language)))


def recall(matchers: Matchers, people: list[dict[str, Any]]) -> None:
    written = [(slug(p["name"], n), p["name"]) for n, p in enumerate(people)]
    in_arabic = [(slug(p["name"], n), p["arabic"]) for n, p in enumerate(people)]
    for label, rules, kinds in (
            ("rule in Latin script", written, ("latin", "long", "arabic")),
            ("rule in Arabic script", in_arabic, ("name", "latin", "long"))):
        old, new = matchers.build(rules_yaml(rules))
        counts: Counter[tuple[str, str]] = Counter()
        totals: Counter[str] = Counter()
        for (ident, _), person in zip(rules, people, strict=True):
            for kind in kinds:
                spellings = person.get(kind) or []
                for spelling in [spellings] if isinstance(spellings, str) else spellings:
                    languages = ("ar",) if kind == "arabic" else ("fr", "en")
                    for language in languages:
                        text = SENTENCES[language].format(spelling)
                        totals[kind] += 1
                        counts["old", kind] += found(old, text, language, ident)
                        counts["new", kind] += found(new, text, language, ident)
        print(f"\nrecall, {label} ({len(rules)} people), sentences found / written:")
        for kind in kinds:
            before, now = (counts[when, kind] / totals[kind] for when in ("old", "new"))
            print(f"  {kind:<8} {totals[kind]:>5}   before {before:>6.1%}   now {now:>6.1%}")


def lookalikes(matchers: Matchers, pairs: list[list[str]]) -> None:
    rules = [(f"l{n:03d}", a) for n, (a, _) in enumerate(pairs)]
    old, new = matchers.build(rules_yaml(rules))
    false_old = false_new = tried = 0
    wrong = []
    for (ident, name), (_, other) in zip(rules, pairs, strict=True):
        for language in ("fr", "en"):
            text = SENTENCES[language].format(other)
            tried += 1
            false_old += found(old, text, language, ident)
            hit = found(new, text, language, ident)
            false_new += hit
            if hit:
                wrong.append(f"{other} taken for {name}")
    print(f"\nlookalikes: {len(pairs)} pairs, {tried} sentences naming the other person: "
          f"false matches before {false_old}, now {false_new}")
    for line in sorted(set(wrong)):
        print(f"  {line}")


def real_articles(matchers: Matchers, people: list[dict[str, Any]], articles: list[Article],
                  list_added: bool) -> None:
    rules = [(slug(p["name"], n), p["name"]) for n, p in enumerate(people)]
    old, new = matchers.build(rules_yaml(rules))
    before: set[tuple[str, str]] = set()
    after: dict[tuple[str, str], str] = {}
    timings = {"old": 0.0, "new": 0.0}
    for a in articles:
        started = time.process_time()
        before.update((a.id, m.rule.id) for m in old.match(a))
        timings["old"] += time.process_time() - started
        started = time.process_time()
        for m in new.match(a):
            after[a.id, m.rule.id] = "; ".join(e.explain() for e in m.evidence)
        timings["new"] += time.process_time() - started
    added = sorted(set(after) - before)
    lost = sorted(before - set(after))
    languages = Counter(a.language for a in articles)
    print(f"\nreal articles: {len(articles)} ({dict(languages)}), {len(rules)} officials as "
          f"rules: matches before {len(before)}, now {len(after)}; added {len(added)} "
          f"({len(added) / len(articles) * 1000:.1f} per 1,000 articles), lost {len(lost)}")
    print(f"  matching CPU: before {len(articles) / timings['old']:,.0f} articles/s, now "
          f"{len(articles) / timings['new']:,.0f} articles/s")
    by_id = {a.id: a for a in articles}
    if list_added:
        for ident, rule in added:
            print(f"  + {rule} | {by_id[ident].language} | {after[ident, rule][:160]}")
    for ident, rule in lost:
        print(f"  - {rule} | {by_id[ident].language} | {by_id[ident].title[:100]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default=BASELINE)
    ap.add_argument("--articles", type=Path, default=DEFAULT_ARTICLES)
    ap.add_argument("--list-added", action="store_true")
    args = ap.parse_args()
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    people, pairs = data["people"], data["lookalikes"]
    print(f"commit {commit()}, {cpu_model()}; {len(people)} officials, {len(pairs)} "
          f"lookalike pairs; the matcher before: {args.rev}")
    with tempfile.TemporaryDirectory(prefix="people-bench-") as tmp:
        matchers = Matchers(args.rev, Path(tmp))
        recall(matchers, people)
        lookalikes(matchers, pairs)
        real_articles(matchers, people, load_articles(args.articles), args.list_added)


if __name__ == "__main__":
    main()
