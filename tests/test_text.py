"""Normalisation and tokenisation: the contract's "Normalisation" and "Words and sentences"."""

from __future__ import annotations

import pytest

from newswatch.rules.text import arabic_alternatives, normalize, rule_key, tokenize, translate


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("États-Unis", "etats unis"),  # diacritics removed, hyphen separates words
        ("Kaïs Saïed", "kais saied"),
        ("ＵＳＡ", "usa"),  # NFKC
        ("STRASSE Straße", "strasse strasse"),  # case folded
        ("cœur", "coeur"),
        ("Ma\u202eroc", "maroc"),  # bidi override removed, word kept whole
        ("Ma\u200droc", "maroc"),  # zero-width joiner removed
        ("un\u00a0accord", "un accord"),  # non-breaking space
        ("Niger-Mali", "niger mali"),
        ("Niger/Mali", "niger mali"),
        ("مُحَمَّد", "محمد"),  # tashkeel removed
        ("المــغرب", "المغرب"),  # tatweel removed
        ("أحمد إبراهيم آمال", "احمد ابراهيم امال"),  # alef forms unified
        ("مستشفى", "مستشفي"),  # alef maqsura → ya
        ("مدرسة", "مدرسه"),  # ta marbuta → ha
    ],
)
def test_normalisation(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "different"),
    [("Maroc", "Maro"), ("accord", "accords"), ("محمد", "احمد")],
)
def test_normalisation_keeps_distinct_words_distinct(raw: str, different: str) -> None:
    assert normalize(raw) != normalize(different)


def test_translation_preserves_length_so_spans_are_original_offsets() -> None:
    text = "Le Maroc et les États-Unis, l’accord militaire — Kaïs Saïed, مُحَمَّد"
    assert len(translate(text)) == len(text)
    tokens = tokenize(text)
    surfaces = [tokens.surface(i) for i in range(len(tokens))]
    assert "États" in surfaces and "Saïed" in surfaces and "مُحَمَّد" in surfaces


@pytest.mark.parametrize("apostrophe", ["'", "’", "ʼ", "`"])
def test_french_elided_articles_are_not_words(apostrophe: str) -> None:
    tokens = tokenize(f"l{apostrophe}accord d{apostrophe}Algérie qu{apostrophe}il")
    assert tokens.keys == ("accord", "algerie", "il")


def test_a_lone_letter_without_apostrophe_is_a_word() -> None:
    assert tokenize("plan l et d").keys == ("plan", "l", "et", "d")


def test_english_possessive_s_is_dropped() -> None:
    assert tokenize("Algeria's army").keys == ("algeria", "army")
    assert tokenize("Algeria’s army").keys == ("algeria", "army")


def test_sentences_end_at_punctuation_and_line_breaks() -> None:
    tokens = tokenize("Un accord. Militaire! Oui? نعم؟ لا\nfin")
    assert tokens.sentences == (0, 0, 1, 2, 3, 4, 5)


@pytest.mark.parametrize("text", ["Les U.S. forces", "les É.-U. et", "M. Esper a dit", "Mr. Esper"])
def test_abbreviations_do_not_end_sentences(text: str) -> None:
    tokens = tokenize(text)
    assert len(set(tokens.sentences)) == 1


def test_decimal_numbers_do_not_end_sentences() -> None:
    assert len(set(tokenize("une hausse de 10.5 pour cent").sentences)) == 1


def test_arabic_proclitics_give_alternatives() -> None:
    assert arabic_alternatives("والمغرب") == ("المغرب", "مغرب")
    assert "مغرب" in arabic_alternatives("بالمغرب")
    assert "مغرب" in arabic_alternatives("للمغرب")
    assert "تونس" in arabic_alternatives("وتونس")
    assert arabic_alternatives("maroc") == ()


def test_arabic_alternatives_keep_two_letters() -> None:
    assert all(len(a) >= 2 for a in arabic_alternatives("ولا"))


def test_rule_key_drops_the_arabic_article_only() -> None:
    assert rule_key("المغرب") == "مغرب"
    assert rule_key("فرنسا") == "فرنسا"
    assert rule_key("maroc") == "maroc"


def test_control_characters_never_reach_keys() -> None:
    tokens = tokenize("Bad\x00title\x07 with \x1b[31m escape")
    assert all(ch.isprintable() for key in tokens.keys for ch in key)


@pytest.mark.parametrize("filler", ["\u3164", "\u115f", "\u1160", "\uffa0"])
def test_hangul_fillers_are_invisible_everywhere(filler: str) -> None:
    """Issue 15: the Hangul fillers are letters (Lo) that render as nothing, so they
    passed the invisible-character filters: a name split by one did not match, and one
    reached Slack and the terminal."""
    from newswatch.monitor.textclean import clean_text as clean_feed_text
    from newswatch.streams.channels.text import clean_inline

    spoofed = f"Mark{filler}Esper"
    assert clean_feed_text(spoofed, 100) == "MarkEsper"
    assert filler not in clean_inline(spoofed)  # what Slack, e-mail and the console get
    assert normalize(spoofed) == normalize("MarkEsper")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # mostly Latin-1 (translated as bytes), with characters outside it put right
        ("Qu’est-ce que µ? Le cœur “à” 5 € — ÉTÉ", 'qu\'est-ce que μ? le cœur "a" 5 € - ete'),
        ("Kaïs Saïed: محمد السادس?", "kais saied: محمد السادس?"),
        ("Straße ﬁn?", "straße ﬁn?"),
        # mostly Arabic (translated through Windows-1256): diacritics and tatweel become
        # the placeholder, letter forms are unified; پ and ک are outside the code page
        ("مُحَمَّد السادس في المــغرب؟ مستشفى، مدرسة — Kaïs",
         "م\x01ح\x01م\x01\x01د السادس في الم\x01\x01غرب؟ مستشفي، مدرسه - kais"),
        ("پاکستان و ﻻ شيء?", "پاکستان و ﻻ شيء?"),
        ("محمد السادس? Kaïs Saïed", "محمد السادس? kais saied"),
    ],
)
def test_translation_of_mixed_scripts_is_character_by_character(raw: str, expected: str) -> None:
    assert translate(raw) == expected
    assert translate(raw * 50) == expected * 50
