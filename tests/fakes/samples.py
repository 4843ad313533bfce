"""Sample articles and matches for renderer and notifier tests.

``sample_match()`` is a French article about an "accord militaire" between Morocco and
France with two pieces of evidence (the phrase in the summary, the country in the title).
Overrides replace the article's title/summary/url/feed; evidence spans are recomputed from
the overridden text when the phrase or the country is still present in it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from newswatch.core.article import Article, Field, article_id
from newswatch.rules.evidence import Evidence
from newswatch.streams.alerts import Match, Severity

TITLE = "Le Maroc et la France signent un accord militaire à Rabat"
SUMMARY = (
    "Rabat — Le Maroc et la France ont signé mardi un accord militaire portant sur la "
    "formation des officiers, l'échange de renseignements et des exercices conjoints en "
    "Méditerranée. Le texte, présenté comme « historique » par les deux ministres, doit "
    "encore être ratifié par les parlements. Selon des sources diplomatiques, "
    "l'accord militaire prévoit aussi la livraison d'hélicoptères d'ici 2027."
)
URL = "https://news.example.org/afrique/2024/05/maroc-france-accord-militaire?id=42&lang=fr"
FEED = "Le Journal d'Exemple"
PUBLISHED = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


def _phrase_evidence(field: Field, text: str, phrase: str) -> Evidence | None:
    start = text.casefold().find(phrase.casefold())
    if start == -1 or len(text.casefold()) != len(text):
        return None
    end = start + len(phrase)
    return Evidence(
        clause="phrase",
        term=phrase,
        field=field,
        start=start,
        end=end,
        text=text[start:end],
        matched=phrase.casefold(),
    )


def _country_evidence(field: Field, text: str, name: str, code: str) -> Evidence | None:
    start = text.find(name)
    if start == -1:
        return None
    return Evidence(
        clause="country",
        term=code,
        field=field,
        start=start,
        end=start + len(name),
        text=name,
        matched=name.casefold(),
    )


def sample_article(
    *,
    title: str = TITLE,
    summary: str = SUMMARY,
    url: str = URL,
    feed: str = FEED,
    published: datetime | None = PUBLISHED,
    content: str = "",
) -> Article:
    return Article(
        id=article_id(feed, guid=None, link=url, title=title, published=None),
        feed=feed,
        title=title,
        url=url,
        summary=summary,
        content=content,
        language="fr",
        published=published,
    )


def sample_match(
    *,
    title: str = TITLE,
    summary: str = SUMMARY,
    url: str = URL,
    feed: str = FEED,
    published: datetime | None = PUBLISHED,
    content: str = "",
    rule_title: str = "Accords militaires au Maghreb",
    rule_id: str = "maghreb-military",
    severity: Severity = "high",
    evidence: tuple[Evidence, ...] | None = None,
) -> Match:
    """A Match for tests; ``evidence=None`` derives it from the text (see module doc)."""
    article = sample_article(
        title=title, summary=summary, url=url, feed=feed, published=published, content=content
    )
    if evidence is None:
        found = [
            _phrase_evidence("summary", summary, "accord militaire"),
            _country_evidence("title", title, "Maroc", "MA"),
        ]
        evidence = tuple(e for e in found if e is not None)
    return Match(
        rule_id=rule_id,
        title=rule_title,
        severity=severity,
        receivers=("slack-alerts", "email-desk"),
        article=article,
        evidence=evidence,
    )
