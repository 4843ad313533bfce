"""People across scripts and spellings (issue 20): a name written once in a rule finds
the person however French, English and Arabic texts spell it; quote tags, other people
with close names and common Arabic words do not; the fast matcher and the reference agree.

The texts are the project's own sentences around real officials' names (the spellings in
bench/data/officials.yaml); bench/people_bench.py measures recall and false matches on
200 officials and on real articles.
"""

from __future__ import annotations

import pytest

from newswatch.core.article import Article
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher
from newswatch.rules.text import tokenize
from newswatch.rules.transliterate import skeletons
from tests.reference_matcher import ReferenceMatcher

RULES = """\
rules:
  - {id: sisi, title: Sisi, people: [Abdel Fattah al-Sisi]}
  - {id: deby, title: Deby, people: [Mahamat Idriss Déby]}
  - {id: hemedti, title: Hemedti, people: [Mohamed Hamdan Dagalo]}
  - {id: othmani, title: Othmani, people: [Saad Eddine El Othmani]}
  - {id: attaf, title: Attaf, people: [Ahmed Attaf]}
  - {id: saied, title: Saied, people: [Kaïs Saïed]}
  - {id: tebboune, title: Tebboune, people: [Abdelmadjid Tebboune]}
  - {id: ghazouani, title: Ghazouani, people: [Mohamed Ould Ghazouani]}
  - {id: benflis, title: Benflis, people: [Ali Benflis]}
  - {id: in-arabic, title: Bourita, people: ["ناصر بوريطة"]}
  - {id: commons, title: Commons, people: [Saïd Amine]}
"""


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(parse_rules([("rules.yaml", RULES)], known_codes=known_codes()))


def found(matcher: Matcher, text: str, language: str = "fr") -> dict[str, list[str]]:
    article = Article(id="x", feed="wire", title=text, url="https://news.example/x",
                      language=language)
    return {m.rule.id: [e.explain() for e in m.evidence] for m in matcher.match(article)}


@pytest.mark.parametrize(("text", "language", "rule"), [
    # Arabic spellings of names written once in Latin script
    ("استقبل الرئيس عبد الفتاح السيسي وزير الخارجية", "ar", "sisi"),
    ("التقى عبدالفتاح السيسي بالوفد", "ar", "sisi"),
    ("أعلن الرئيس محمد إدريس ديبي عن حكومة جديدة", "ar", "deby"),
    ("قال محمد حمدان دقلو إن قواته", "ar", "hemedti"),
    ("وصل وزير الخارجية أحمد عطاف إلى الجزائر", "ar", "attaf"),
    ("صرح الرئيس قيس سعيد بأن", "ar", "saied"),
    ("استقبل عبد المجيد تبون الوفد", "ar", "tebboune"),
    ("أكد علي بن فليس أن", "ar", "benflis"),
    # Latin spellings the rule does not write
    ("Le président Abdelfattah el-Sissi a reçu mardi une délégation.", "fr", "sisi"),
    ("Abdel-Fattah Al Sissi said on Tuesday the talks would resume.", "en", "sisi"),
    ("Mahamat Idriss Deby Itno a nommé un gouvernement.", "fr", "deby"),
    ("Mohammed Hamdan Daglo's forces advanced on Tuesday.", "en", "hemedti"),
    ("Le chef du gouvernement Saadeddine Othmani a déclaré", "fr", "othmani"),
    ("Le président Abdelmajid Tebboune a reçu", "fr", "tebboune"),
    ("Mohamed Ould Cheikh El Ghazouani a reçu", "fr", "ghazouani"),
    # a rule written in Arabic finds the Latin spellings
    ("Nasser Bourita a reçu son homologue américain.", "fr", "in-arabic"),
    ("Moroccan foreign minister Nasser Bourita said", "en", "in-arabic"),
])
def test_a_name_written_once_is_found_in_other_scripts_and_spellings(
    matcher: Matcher, text: str, language: str, rule: str
) -> None:
    got = found(matcher, text, language)
    assert rule in got, (text, got)


def test_the_evidence_says_how_the_name_was_found(matcher: Matcher) -> None:
    arabic = found(matcher, "استقبل عبد الفتاح السيسي الوفد", "ar")["sisi"]
    assert arabic == ["عبد الفتاح السيسي ≈ Abdel Fattah al-Sisi (transliterated, 100)"]
    latin = found(matcher, "Abdelfattah el-Sissi a reçu la délégation.")["sisi"]
    assert latin == ["Abdelfattah el-Sissi ≈ Abdel Fattah al-Sisi (respelled, 96)"]
    reverse = found(matcher, "Nasser Bourita a reçu son homologue.")["in-arabic"]
    assert reverse == ["Nasser Bourita ≈ ناصر بوريطة (transliterated, 100)"]


@pytest.mark.parametrize(("text", "language"), [
    # a quote tag is no name: "…," Ahmed said
    ("“We will come back next week,” Ahmed said.", "en"),
    # other people whose names are close, in Latin script
    ("Le ministre Ahmed Atef a reçu la délégation.", "fr"),
    ("Le général Abdel Fattah al-Burhan a reçu la délégation.", "fr"),
    ("Mohamed Hamdan bin Zayed a reçu la délégation.", "fr"),
    # given name or surname alone, in any script
    ("السيسي يستقبل الوفد", "ar"),
    ("Sissi a reçu la délégation.", "fr"),
    # words that sound alike but are no name: functions words, an adjective
    ("أمن وأمان في المنطقة الآمنة", "ar"),
    ("القصة السعودية الجديدة", "ar"),
    # a name made only of common Arabic words, used as words ("a happy, honest man")
    ("رجل سعيد أمين في عمله", "ar"),
])
def test_quote_tags_other_people_and_common_words_are_not_the_person(
    matcher: Matcher, text: str, language: str
) -> None:
    assert found(matcher, text, language) == {}, text


def test_the_common_words_of_a_name_still_count_in_latin_script(matcher: Matcher) -> None:
    assert "commons" in found(matcher, "Le ministre Saïd Amine a déclaré.")


def test_skeletons_meet_across_scripts_and_transliterations() -> None:
    def skeleton(name: str) -> set[str]:
        return set(skeletons(tokenize(name).keys))

    for one, other in [("Abdel Fattah al-Sisi", "عبد الفتاح السيسي"),
                       ("Saad Eddine El Othmani", "سعد الدين العثماني"),
                       ("Saadeddine Othmani", "سعد الدين العثماني"),
                       ("Abdelkader Messahel", "عبد القادر مساهل"),
                       ("Gaïd Salah", "قايد صالح"), ("Walid Jumblatt", "وليد جنبلاط"),
                       ("Saïd Chanegriha", "السعيد شنقريحة"), ("Hafez al-Assad", "حافظ الأسد")]:
        assert skeleton(one) & skeleton(other), (one, other)
    assert not skeleton("Kamel Daoud") & skeleton("Jamel Daoud")


def test_the_fast_matcher_agrees_with_the_reference_across_scripts(matcher: Matcher) -> None:
    reference = ReferenceMatcher(matcher.ruleset)
    texts = [
        ("استقبل الرئيس عبد الفتاح السيسي وزير الخارجية أحمد عطاف ثم قال السيسي", "ar"),
        ("وقال قيس سعيد والرئيس محمد إدريس ديبي إن علي بن فليس", "ar"),
        ("Abdelfattah el-Sissi, Mahamat Idriss Deby Itno and Nasser Bourita met; "
         "Sissi said the talks, Ahmed said, went well.", "en"),
        ("Le président Kaïs Saïed puis Abdelmajid Tebboune, et Saadeddine Othmani.", "fr"),
    ]
    for text, language in texts:
        article = Article(id="x", feed="wire", title=text[:80], url="https://n.example/x",
                          content=text, language=language)
        fast = [(m.rule.id, m.evidence) for m in matcher.match(article)]
        assert fast == reference.match(article), text
        assert fast, text
