"""The fast matcher agrees with the reference implementation of the contract.

tests/reference_matcher.py evaluates every rule on every article the slow, obvious way.
Both run over real news with 1,000 realistic rules (bench/workload.py: people who occur,
officials in Latin and Arabic script, phrases that occur, the regions desks follow), a
fifth of them varied to reach every part of the contract (fields, near, exact and prefix
phrases, `all` groups, `not`, exclude, capitals, languages, feeds, name scores). Rule ids
and evidence must be identical, article by article.

The articles are the real news feeds of tests/data/news (English and Urdu). The same check
over the real French, English and Arabic articles of ../shared/data/articles, which are
read only by benchmarks, is ``python bench/reference_check.py``.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.workload import Pool, realistic_rules
from newswatch.core.article import FIELDS, Article
from newswatch.monitor.feedparse import parse_feed
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import (
    AllOf,
    AnyOf,
    Condition,
    Countries,
    Group,
    Not,
    People,
    Person,
    Phrases,
    Rule,
    RuleSet,
)
from tests.reference_matcher import ReferenceMatcher

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "tests" / "data" / "news"


def news_articles() -> list[Article]:
    out: list[Article] = []
    for path in sorted(NEWS.glob("*.*")):
        if path.suffix != ".md":
            parsed = parse_feed(path.read_bytes(), feed=path.stem, headers={}, language=None)
            out.extend(parsed.articles)
    return out


def vary(rule: Rule, rng: random.Random) -> Rule:
    """The rule with one or two options of the contract changed."""
    condition = rule.condition
    assert isinstance(condition, AllOf)
    countries, either = condition.children
    assert isinstance(countries, Countries) and isinstance(either, AnyOf)
    phrases, people = either.children
    assert isinstance(phrases, Phrases) and isinstance(people, People)
    changes: dict[str, object] = {}
    for choice in rng.sample(range(10), 2):
        if choice == 0:
            changes["fields"] = tuple(rng.sample(FIELDS, rng.randint(1, 2)))
        elif choice == 1:
            changes["near"] = rng.choice((0, 1, 6))
        elif choice == 2:  # exact and prefix phrases
            words = phrases.group.any
            changed = ("=" + words[0], *(w.split()[0][:5] + "* " + w.split()[-1]
                                         for w in words[1:]))
            phrases = Phrases(Group(any=changed))
        elif choice == 3:
            countries = Countries(Group(all=countries.group.any[:1], any=countries.group.any[1:]))
        elif choice == 4:
            changes["capitals"] = True
        elif choice == 5:
            changes["exclude"] = (phrases.group.any[-1],)
        elif choice == 6:
            changes["languages"] = frozenset(rng.sample(("fr", "en", "ar", "ur"), 2))
        elif choice == 7:
            changes["feeds"] = frozenset({rng.choice(("guardian", "urdu_bbc", "bbc-afrique"))})
        elif choice == 8:
            people = People(Group(any=tuple(
                dataclasses.replace(p, min_score=rng.choice((75.0, 85.0, 100.0)))
                for p in people.group.any)))
        else:
            changes["condition"] = AllOf((countries, Not(phrases), people))
    tree: Condition = changes.pop("condition", None) or AllOf(  # type: ignore[assignment]
        (countries, AnyOf((phrases, people))))
    return dataclasses.replace(rule, condition=tree, **changes)  # type: ignore[arg-type]


def watchlist(articles: Sequence[Article], minimum: int) -> RuleSet:
    rng = random.Random(5)
    rules = realistic_rules(1000, Pool.of(articles, minimum)).rules
    varied = [vary(r, rng) if i % 5 == 0 else r for i, r in enumerate(rules)]
    people = [Rule(id="one-word-person", title="one word",  # a name without a surname
                   condition=People(Group(any=(Person("Trump"), Person("Modi")))))]
    return RuleSet((*varied, *people), aliases={"GB": ("Blighty",), "MA": ("Royaume chérifien",)})


def compare(ruleset: RuleSet, articles: Sequence[Article]) -> Counter[str]:
    """Clause kinds of the evidence both found; fails at the first article they disagree on."""
    fast, reference = Matcher(ruleset), ReferenceMatcher(ruleset)
    seen: Counter[str] = Counter()
    for article in articles:
        got = [(m.rule.id, m.evidence) for m in fast.match(article)]
        want = reference.match(article)
        assert [r for r, _ in got] == [r for r, _ in want], article.id
        for (rule_id, evidence), (_, expected) in zip(got, want, strict=True):
            assert evidence == expected, (article.id, rule_id)
            seen.update(e.clause for e in evidence)
        seen["matches"] += len(got)
    return seen


def test_the_fast_matcher_agrees_with_the_reference_on_real_news_feeds() -> None:
    articles = news_articles()
    assert len(articles) >= 100
    seen = compare(watchlist(articles, minimum=1), articles)
    # not vacuous: rules matched, with every kind of evidence
    assert seen["matches"] >= 50, seen
    assert min(seen[k] for k in ("country", "phrase", "person")) >= 10, seen
