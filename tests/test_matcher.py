"""The matcher against the contract's Semantics section, sentence by sentence.

Each behaviour has a positive and a negative case, in French, English and Arabic where it
applies. Rules are written in YAML exactly as ops would write them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newswatch.core.article import Article
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher, RuleMatch
from newswatch.rules.text import tokenize

SEED = Path(__file__).parent / "data" / "seed_fr.txt"


def matcher(yaml_text: str) -> Matcher:
    return Matcher(parse_rules([("rules.yaml", yaml_text)], known_codes=known_codes()))


def rule(body: str, extra: str = "") -> Matcher:
    """One rule 'r' with the given clause lines (indented by the caller as YAML)."""
    return matcher(f"{extra}rules:\n  - id: r\n    title: T\n{body}")


def article(
    title: str = "", content: str = "", *, summary: str = "", feed: str = "f",
    language: str | None = None,
) -> Article:
    return Article(id="a", feed=feed, title=title, summary=summary, content=content,
                   language=language)


def hits(m: Matcher, text: str, **kw: object) -> list[RuleMatch]:
    return m.match(article(content=text, **kw))  # type: ignore[arg-type]


def matches(m: Matcher, text: str, **kw: object) -> bool:
    return bool(hits(m, text, **kw))


# --------------------------------------------------------------------------- groups


def test_plain_list_group_needs_any_item() -> None:
    m = rule("    countries: [MA, DZ]\n")
    assert matches(m, "Visite en Algérie.")
    assert not matches(m, "Visite en Tunisie.")


def test_all_group_needs_every_item() -> None:
    m = rule("    countries: {all: [MA, US]}\n")
    assert matches(m, "Le Maroc et les États-Unis.")
    assert not matches(m, "Le Maroc et la France.")


def test_all_and_any_together() -> None:
    m = rule("    countries: {all: [US], any: [MA, DZ, TN]}\n")
    assert matches(m, "The United States and Tunisia signed.")
    assert not matches(m, "The United States and France signed.")
    assert not matches(m, "Tunisia and Algeria signed.")


def test_every_listed_group_must_hold() -> None:
    m = rule("    countries: [MA]\n    phrases: [accord militaire]\n")
    assert matches(m, "Le Maroc signe un accord militaire.")
    assert not matches(m, "Le Maroc signe un accord commercial.")
    assert not matches(m, "La France signe un accord militaire.")


def test_exclude_vetoes() -> None:
    m = rule("    countries: [MA]\n    exclude: [match amical]\n")
    assert matches(m, "Le Maroc reçoit une délégation.")
    assert not matches(m, "Le Maroc prépare un match amical.")


def test_advanced_tree_with_not() -> None:
    m = rule(
        "    match:\n"
        "      all:\n"
        "        - countries: [MA]\n"
        "        - any:\n"
        "            - phrases: [accord militaire]\n"
        "            - people: [Mark Esper]\n"
        "        - not: {phrases: [football]}\n"
    )
    assert matches(m, "Mark Esper au Maroc.")
    assert matches(m, "Le Maroc signe un accord militaire.")
    assert not matches(m, "Le Maroc, Mark Esper et le football.")
    assert not matches(m, "Le Maroc reçoit une délégation.")


def test_a_rule_made_only_of_not_is_evaluated_for_every_article() -> None:
    m = rule("    match: {not: {phrases: [football]}}\n")
    assert matches(m, "Rien à voir.")
    assert not matches(m, "Du football.")


# --------------------------------------------------------------------------- phrases


@pytest.mark.parametrize(
    "text",
    [
        "un accord militaire",
        "un accord de coopération militaire",  # two words between
        "des accords militaires",  # plural on both words
        "l’accord militaire",
        "l'accord d'une coopération militaire",  # elided articles do not count toward near
        "UN ACCORD MILITAIRE",
    ],
)
def test_phrase_matches_french(text: str) -> None:
    assert matches(rule("    phrases: [accord militaire]\n"), text)


@pytest.mark.parametrize(
    "text",
    [
        "un accord. La coopération militaire",  # different sentences
        "un accord portant sur une large coopération militaire",  # four words between
        "militaire, un accord",  # wrong order
        "un accord",
    ],
)
def test_phrase_does_not_match_french(text: str) -> None:
    assert not matches(rule("    phrases: [accord militaire]\n"), text)


def test_near_is_configurable() -> None:
    assert matches(rule("    phrases: [accord militaire]\n    near: 0\n"), "accord militaire")
    adjacent = rule("    phrases: [accord militaire]\n    near: 0\n")
    assert not matches(adjacent, "accord de militaire")
    text = "accord portant sur une large coopération militaire"
    assert matches(rule("    phrases: [accord militaire]\n    near: 5\n"), text)


def test_phrase_english_and_plural_es() -> None:
    m = rule("    phrases: [military agreement]\n")
    assert matches(m, "The two countries signed military agreements.")
    assert matches(m, "A military cooperation agreement.")
    assert not matches(m, "The military did not reach an agreement on this issue at all.")


def test_plural_tolerance_x_and_es() -> None:
    assert matches(rule("    phrases: [bureau]\n"), "les bureaux")
    assert matches(rule("    phrases: [bus]\n"), "two buses")
    assert not matches(rule("    phrases: [bureau]\n"), "bureaucratie")


def test_prefix_wildcard() -> None:
    m = rule("    phrases: [\"milit* accord\"]\n")
    assert matches(m, "militaires: accord signé")
    assert matches(m, "a militarized accord")
    assert not matches(m, "mili accord")


def test_exact_phrase() -> None:
    m = rule("    phrases: [\"=accord militaire\"]\n")
    assert matches(m, "L’Accord Militaire est signé")  # case and accent insensitive
    assert not matches(m, "accord de coopération militaire")  # no gap
    assert not matches(m, "accords militaires")  # no plural tolerance


def test_arabic_phrase_with_proclitics() -> None:
    m = rule("    phrases: [اتفاق عسكري]\n")
    assert matches(m, "وقع البلدان والاتفاق العسكري اليوم")
    assert matches(m, "اتفاق عسكري جديد")
    assert not matches(m, "اتفاق تجاري")


# --------------------------------------------------------------------------- countries


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("MA", "Le Maroc"),
        ("MA", "Morocco said"),
        ("MA", "المغرب"),
        ("MA", "والمغرب"),  # Arabic conjunction + article
        ("MA", "Marruecos y España"),  # Spanish
        ("MA", "Marokko und"),  # German
        ("MA", "le ministre marocain"),  # demonyms, feminine and plural
        ("MA", "la diplomatie marocaine"),
        ("MA", "des soldats marocains"),
        ("MA", "Moroccan troops"),
        ("US", "les États-Unis"),
        ("US", "les Etats Unis"),
        ("US", "the USA"),
        ("US", "the U.S. army"),
        ("US", "les É.-U. et"),
        ("US", "the US army"),
        ("US", "le secrétaire américain"),
        ("US", "الولايات المتحدة"),
        ("TN", "تونس"),  # capital that is also the country's name counts always
        ("DJ", "à Djibouti"),
        ("GQ", "la Guinée équatoriale"),
        ("GW", "la Guinée-Bissau"),
    ],
)
def test_country_names(code: str, text: str) -> None:
    assert matches(rule(f"    countries: [{code}]\n"), text)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("US", "let us go"),  # short form colliding with a word: exact case only
        ("US", "Us and them"),
        ("GN", "la Guinée équatoriale"),  # only the longer name counts
        ("GN", "la Guinée-Bissau"),
        ("MA", "Rabat a annoncé"),  # capitals only with capitals: true
        ("US", "la Maison-Blanche a annoncé"),
        ("MA", "Le marocanisme"),
    ],
)
def test_country_non_matches(code: str, text: str) -> None:
    assert not matches(rule(f"    countries: [{code}]\n"), text)


def test_capitals_count_when_enabled() -> None:
    m = rule("    countries: [MA]\n    capitals: true\n")
    assert matches(m, "Rabat a annoncé")
    assert matches(rule("    countries: [US]\n    capitals: true\n"), "la Maison-Blanche a dit")


def test_guinea_alone_is_guinea() -> None:
    assert matches(rule("    countries: [GN]\n"), "la Guinée et le Mali")


def test_aliases_apply_to_every_rule_loaded_together() -> None:
    m = Matcher(parse_rules(
        [
            ("a.yaml", "aliases:\n  MA: [royaume chérifien]\nrules:\n"
                       "  - {id: a, title: A, countries: [MA]}\n"),
            ("b.yaml", "rules:\n  - {id: b, title: B, countries: [MA]}\n"),
        ],
        known_codes=known_codes(),
    ))
    found = {h.rule.id for h in hits(m, "Le royaume chérifien a signé.")}
    assert found == {"a", "b"}
    assert not hits(m, "Le royaume a signé.")


# --------------------------------------------------------------------------- people


def test_fuzzy_person_matches_misspelling() -> None:
    m = rule("    people: [{name: Kaïs Saïed}]\n")
    found = hits(m, "le président Kaiis Saied a reçu")
    assert found
    evidence = found[0].evidence[0]
    assert evidence.text == "Kaiis Saied" and evidence.score is not None
    assert evidence.score >= 90


def test_fuzzy_person_nasser_bourrita() -> None:
    assert matches(rule("    people: [Nasser Bourita]\n"), "Nasser Bourrita a déclaré")


def test_first_name_alone_never_matches() -> None:
    assert not matches(rule("    people: [Mark Esper]\n"), "Mark a dit")
    assert not matches(rule("    people: [Mark Esper]\n"), "Mark Twain a dit")


def test_person_alias_in_arabic() -> None:
    m = rule("    people: [{name: Kaïs Saïed, aliases: [قيس سعيد]}]\n")
    assert matches(m, "استقبل الرئيس قيس سعيد الوزير")
    assert not matches(m, "استقبل الرئيس الوزير")


def test_min_score_is_respected() -> None:
    strict = rule("    people: [{name: Nasser Bourita, min_score: 99}]\n")
    assert not matches(strict, "Nasser Bourrita a déclaré")
    assert matches(strict, "Nasser Bourita a déclaré")


def test_surname_alone_counts_only_after_the_full_name() -> None:
    m = rule("    people: [Mark Esper]\n")
    assert not matches(m, "Esper a dit.")
    found = hits(m, "Mark Esper arrive. Plus tard, Esper a signé.")
    texts = [e.text for e in found[0].evidence]
    assert texts == ["Mark Esper", "Esper"]
    only_before = hits(m, "Esper arrive. Plus tard, Mark Esper a signé.")
    assert [e.text for e in only_before[0].evidence] == ["Mark Esper"]


# --------------------------------------------------------------------------- filters


def test_languages_filter_uses_feed_language_or_detection() -> None:
    m = rule("    countries: [MA]\n    languages: [fr]\n")
    assert matches(m, "Le Maroc a signé un accord avec ses voisins du nord.")
    assert not matches(m, "Morocco signed an agreement with its northern neighbours.")
    assert not matches(m, "Le Maroc a signé.", language="en")  # the feed says English


def test_feeds_filter() -> None:
    m = rule("    countries: [MA]\n    feeds: [lemonde]\n")
    assert matches(m, "Le Maroc", feed="lemonde")
    assert not matches(m, "Le Maroc", feed="other")


def test_fields_filter_applies_to_every_clause_and_exclude() -> None:
    m = rule("    countries: [MA]\n    fields: [title]\n    exclude: [football]\n")
    assert m.match(article(title="Le Maroc", content="football"))
    assert not m.match(article(title="Rien", content="Le Maroc"))
    assert not m.match(article(title="Le Maroc et le football"))


# --------------------------------------------------------------------------- evidence


def test_evidence_points_at_original_text() -> None:
    m = rule("    countries: [US]\n    phrases: [accord militaire]\n")
    text = "Les États-Unis ont signé l’accord de coopération militaire."
    found = hits(m, text)
    assert found
    for e in found[0].evidence:
        assert text[e.start : e.end] == e.text
        assert e.field == "content"
    assert {e.clause for e in found[0].evidence} == {"country", "phrase"}
    phrase = next(e for e in found[0].evidence if e.clause == "phrase")
    assert phrase.text == "accord de coopération militaire"


# --------------------------------------------------------------------------- the seed case

SEED_RULE = """
aliases:
  MA: ["royaume chérifien"]
  US: ["pays de l'oncle Sam"]
rules:
  - id: us-maghreb-military
    title: US military agreements in the Maghreb
    severity: high
    countries: {all: [US], any: [MA, DZ, TN, LY, MR]}
    phrases: ["accord militaire", "coopération militaire", "military agreement"]
    people:
      - Mark Esper
      - {name: "Kaïs Saïed", aliases: ["قيس سعيد"], min_score: 90}
    exclude: ["jeu vidéo", "match amical"]
"""


def test_seed_article_matches_with_the_expected_evidence() -> None:
    text = SEED.read_text(encoding="utf-8")
    title, _, content = text.partition("\n")
    found = matcher(SEED_RULE).match(article(title=title, content=content))
    assert [f.rule.id for f in found] == ["us-maghreb-military"]
    by_clause: dict[str, set[str]] = {}
    for e in found[0].evidence:
        by_clause.setdefault(f"{e.clause}:{e.term}", set()).add(e.text)
    us = {t.casefold() for t in by_clause["country:US"]}
    assert {"etats-unis", "usa", "américain"} <= us
    ma = {t.casefold() for t in by_clause["country:MA"]}
    assert {"maroc", "marocain"} <= ma
    assert "accord de coopération militaire" in by_clause["phrase:accord militaire"]
    assert "Mark Esper" in by_clause["person:Mark Esper"]
    assert "Kaiis Saied" in by_clause["person:Kaïs Saïed"]


def test_a_sports_article_does_not_match_the_seed_rule() -> None:
    sports = article(
        title="Maroc - États-Unis : match amical à Rabat",
        content="Les Lions de l'Atlas affrontent les États-Unis en match amical. "
                "Un accord militaire? Non, du football.",
    )
    assert not matcher(SEED_RULE).match(sports)


def test_a_full_word_cache_starts_again_without_forgetting_the_text_at_hand() -> None:
    """The per-word cache is cleared when it would outgrow its bound: the words of the
    text being scanned that it knew before must be looked up again, not taken for words
    that hit nothing."""
    text = "Le Maroc signe un accord militaire."
    words = len(set(tokenize(text).keys))
    m = Matcher(rule("    countries: [MA]\n    phrases: [accord militaire]\n").ruleset,
                word_cache=words + 1)
    assert matches(m, text)
    assert matches(m, f"{text} Deux mots nouveaux.")  # two new words: the cache is cleared
    assert matches(m, text)


def test_names_are_scored_for_every_rule_that_can_still_hold() -> None:
    """Names are only scored for people some rule can still need once the places and
    phrases are known: Mark Esper, named by a rule that needs Morocco, is found in an
    article without Morocco for a rule naming him alone, and for a rule that needs Algeria
    and excludes him."""
    ma = "  - {id: ma, title: T, countries: [MA], people: [Mark Esper]}\n"
    alone = matcher(f"rules:\n{ma}  - {{id: alone, title: T, people: [Mark Esper]}}\n")
    assert [f.rule.id for f in hits(alone, "Mark Esper au Maroc.")] == ["ma", "alone"]
    assert [f.rule.id for f in hits(alone, "Mark Esper en Algérie.")] == ["alone"]
    excluded = matcher(
        f"rules:\n{ma}  - id: dz-not-him\n    title: T\n"
        "    match: {all: [{countries: [DZ]}, {not: {people: [Mark Esper]}}]}\n")
    assert not hits(excluded, "Mark Esper en Algérie.")
    assert [f.rule.id for f in hits(excluded, "Une délégation en Algérie.")] == ["dz-not-him"]
    assert [f.rule.id for f in hits(excluded, "Mark Esper au Maroc.")] == ["ma"]


def test_phrases_are_looked_for_wherever_a_rule_can_still_hold() -> None:
    """Phrases are only looked for when some rule using them can hold given the countries
    found: the same phrase still counts for a rule that needs no country, and an exclude
    still vetoes; a place found in the content gates phrases of the title."""
    ma = "  - {id: ma, title: T, countries: [MA], phrases: [accord militaire]}\n"
    anywhere = matcher(f"rules:\n{ma}  - {{id: any, title: T, phrases: [accord militaire]}}\n")
    assert [f.rule.id for f in hits(anywhere, "Un accord militaire au Maroc.")] == ["ma", "any"]
    assert [f.rule.id for f in hits(anywhere, "Un accord militaire en Algérie.")] == ["any"]
    vetoed = matcher(f"rules:\n{ma}"
                     "  - {id: dz, title: T, countries: [DZ], exclude: [accord militaire]}\n")
    assert not hits(vetoed, "Un accord militaire en Algérie.")
    assert [f.rule.id for f in hits(vetoed, "Un accord en Algérie.")] == ["dz"]
    title = vetoed.match(article(title="Accord militaire signé", content="Rabat, Maroc."))
    assert [f.rule.id for f in title] == ["ma"]
    assert [e.field for e in title[0].evidence] == ["content", "title"]
