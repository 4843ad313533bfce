"""The article's ``body`` (the main text of its page, docs/full-text.md): stored and read
back, matched by default, named in a rule's ``fields:``, and where evidence points."""

from __future__ import annotations

from newswatch.core.article import Article
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher

RULES = """
rules:
  - id: seed
    title: US military agreements with Morocco
    countries: {all: [US, MA]}
    phrases: ["accord militaire"]
    people: ["Mark Esper"]
  - id: teaser-only
    title: the same, in the feed's own text only
    countries: {all: [US, MA]}
    phrases: ["accord militaire"]
    fields: [title, summary, content]
  - id: page-only
    title: the same, in the page only
    phrases: ["accord militaire"]
    fields: [body]
"""

BODY = ("Le Maroc et les États-Unis ont conclu jeudi un accord militaire de dix ans. "
        "Le secrétaire américain à la Défense, Mark Esper, était à Rabat.")


def matcher() -> Matcher:
    return Matcher(parse_rules([("rules.yaml", RULES)], known_codes=known_codes()))


def test_old_json_without_a_body_reads_and_a_body_round_trips() -> None:
    old = {"id": "a1", "feed": "f", "title": "T", "url": "", "summary": "", "content": "c",
           "language": "fr", "published": None, "guid": None, "extra": {}}
    article = Article.from_json(old)
    assert article.body == ""
    assert article.to_json() == old  # nothing added for an article without a page
    fetched = Article(id="a1", feed="f", title="T", body=BODY)
    assert Article.from_json(fetched.to_json()) == fetched


def test_the_body_is_matched_by_default_and_evidence_points_into_it() -> None:
    article = Article(id="a1", feed="f", title="Rabat et Washington resserrent leurs liens",
                      language="fr", body=BODY)
    found = {m.rule.id: m for m in matcher().match(article)}
    assert set(found) == {"seed", "page-only"}  # not teaser-only: its fields exclude body
    for evidence in found["seed"].evidence:
        assert evidence.field == "body"
        assert BODY[evidence.start:evidence.end] == evidence.text
    assert {e.text for e in found["seed"].evidence} >= {"accord militaire", "Mark Esper"}


def test_a_rule_limited_to_the_body_ignores_the_teaser() -> None:
    teaser = Article(id="a2", feed="f", title="Le Maroc et les États-Unis : accord militaire",
                     language="fr")
    assert [m.rule.id for m in matcher().match(teaser)] == ["teaser-only"]
