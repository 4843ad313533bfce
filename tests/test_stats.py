"""``newswatch.streams.stats`` alone: the counting, the ratings and the exclude scoring, on
records built here (the end-to-end check is tests/test_rules_stats.py)."""

from __future__ import annotations

import math

from newswatch.core.article import Article
from newswatch.core.feedback import FeedbackRecord
from newswatch.core.state import Decision
from newswatch.streams.stats import alert_terms, exclude_candidates, rule_stats
from tests.test_matcher import matcher

RULES = """
rules:
  - id: r
    title: Military agreements
    phrases: ["accord militaire"]
  - id: quiet
    title: Never
    phrases: ["sous-marin"]
"""


def doc(*terms: str) -> frozenset[str]:
    return frozenset(terms)


def test_a_term_in_every_not_relevant_alert_and_no_useful_one_comes_first() -> None:
    bad = [doc("football", "rabat"), doc("football", "stade"), doc("football", "rabat")]
    good = [doc("rabat", "defense"), doc("rabat")]
    (first, *rest) = exclude_candidates(bad, good)
    assert (first.term, first.not_relevant, first.useful) == ("football", 3, 0)
    # ln(3.5/0.5) − ln(0.5/2.5): the smoothed log-odds ratio of the module docstring
    assert math.isclose(first.score, math.log(7) - math.log(0.2))
    # rabat is as common among the useful alerts: no candidate; stade is in one alert only
    assert [c.term for c in rest] == []


def test_nothing_is_suggested_without_not_relevant_alerts_and_one_alert_is_enough() -> None:
    assert exclude_candidates([], [doc("football")]) == []
    (only,) = exclude_candidates([doc("football")], [doc("rabat")])
    assert only.term == "football"


def test_a_phrase_is_kept_only_when_it_says_more_than_its_words() -> None:
    bad = [doc("coupe", "monde", "coupe monde"), doc("coupe", "monde", "coupe monde")]
    good = [doc("coupe", "monde")]  # the words alone are in a useful alert: the phrase is not
    assert [c.term for c in exclude_candidates(bad, good)] == ["coupe monde"]
    same = exclude_candidates(bad, [])  # nothing to tell them apart: the words suffice
    assert [c.term for c in same] == ["coupe", "monde"]


def test_alert_terms_drop_stop_words_numbers_and_the_rules_own_words() -> None:
    article = Article(id="a", feed="f", title="Le grand stade de football et l'accord militaire",
                      content="The 2024 final. في الملعب مع الجمهور")
    terms = alert_terms(article, own=frozenset({"accord", "militaire"}))
    assert {"grand", "stade", "grand stade", "football", "final", "الملعب", "الجمهور"} <= terms
    assert "stade football" not in terms  # not adjacent: "de" stood between
    assert not terms & {"le", "de", "et", "the", "2024", "في", "مع", "accord", "militaire"}
    assert "football accord" not in terms  # "accord" is the rule's
    assert "final الملعب" not in terms  # not the same sentence


def decision(at: float, rule: str, article: str, verdict: str, result: str,
             story: str | None = "s1", receiver: str = "desk",
             ref: str | None = None) -> Decision:
    return Decision(at, rule, article, "t", receiver, verdict, "why", result, ref, story)


def rating(at: float, action: str, article: str, user: str = "U1",
           rule: str = "r") -> FeedbackRecord:
    return FeedbackRecord(key=f"{user}{at}{action}", at=at, action=action, user_id=user,
                          user_name="u", rule_id=rule, story="s", article=article,
                          receiver="desk", channel="C1", ts="1.1", title="t", evidence="e",
                          line="l")


def test_rule_stats_counts_each_decision_once_and_each_analysts_newest_rating() -> None:
    m = matcher(RULES)
    a1 = Article(id="a1", feed="wire", title="Un accord militaire pour le football",
                 url="https://x.example/1")
    a2 = Article(id="a2", feed="wire", title="Un accord militaire et la défense")
    decisions = [
        decision(1, "r", a1.key, "send", "pending"), decision(2, "r", a1.key, "send", "sent"),
        decision(3, "r", a2.key, "same_story", "pending"),
        decision(4, "r", "k3", "throttled", "digest", story=None),
        decision(5, "r", "k3", "throttled", "sent:digest", ref="m1"),
        decision(6, "r", "k4", "silenced", "skipped"),
        decision(7, "gone", "k5", "send", "pending"),  # a rule since removed
    ]
    feedback = [rating(10, "useful", "a1"), rating(11, "not_relevant", "a1"),  # changed mind
                rating(12, "useful", "a2", user="U2"), rating(13, "mute_story", "a1")]
    articles = {a.id: a for a in (a1, a2)} | {a.key: a for a in (a1, a2)}
    report = rule_stats(m.rules, decisions, feedback, articles, m)
    r, quiet = report.rules
    assert (r.matches, r.alerts, r.replies, r.digested, r.digests, r.silenced) \
        == (4, 1, 1, 1, 1, 1)
    assert (r.useful, r.not_relevant, r.muted, r.precision) == (1, 1, 1, 0.5)
    assert r.feeds == {"wire": 2}  # k3 and k4 are not archived
    assert [c.term for c in r.excludes] == ["football"]
    assert quiet.precision is None and report.never_matched == ["quiet"]
    assert report.one_feed == ["r"]
