"""Country gazetteer: every text that stands for a country in a watch-rule.

The contract (docs/rules.md, "Countries"): a country code stands for the country's names in
every language the gazetteer knows, its usual short forms, its demonyms in French, English and
Arabic with their feminine and plural forms, and, only for rules with ``capitals: true``, its
capitals and seats of government. This module produces that list; matching (normalisation,
longest match, case-sensitive short forms, file-level aliases) is the matcher's job.

Sources, merged by :func:`base_names`:

1. CLDR territory names, read through Babel, for :data:`CLDR_LANGUAGES`. Names with a
   parenthesis also give the name without it ("Myanmar (Burma)" → "Myanmar"); English names
   also give their "and"/"Saint" spellings ("Antigua & Barbuda" → "Antigua and Barbuda").
   CLDR names that collide with common words are listed under ``dropped`` in the data file.
2. ``rules/data/countries.yaml`` (hand-maintained, read with importlib.resources): extra
   names, short forms, demonyms and capitals; its header documents the format and the
   collision policy.

Pure: no I/O beyond the packaged data file and Babel's CLDR data, no network. Results are
cached for the life of the process.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml
from babel import Locale

__all__ = [
    "CLDR_LANGUAGES",
    "PlaceKind",
    "PlaceName",
    "base_names",
    "country_label",
    "known_codes",
]

PlaceKind = Literal["name", "short", "demonym", "capital"]

# Languages whose CLDR territory names are included. The contract requires at least French,
# English, Arabic, Spanish and German; Italian and Portuguese cost little and catch the
# foreign-press spellings that show up in quotes and names of events.
CLDR_LANGUAGES: tuple[str, ...] = ("en", "fr", "ar", "es", "de", "it", "pt")

# Languages the data file may use, plus "any" for texts that are not language-specific.
_DATA_LANGUAGES = frozenset({*CLDR_LANGUAGES, "any"})
_DATA_SECTIONS: Mapping[str, PlaceKind] = {
    "names": "name",
    "short": "short",
    "demonyms": "demonym",
    "capitals": "capital",
}

# CLDR lists these among its territories, but they are not ISO 3166-1 countries: groupings
# (EU, EZ, UN, QO), unknown or pseudo regions (ZZ, XA, XB), and codes ISO only
# "exceptionally reserves" for parts of a listed country (AC Ascension, CP Clipperton, CQ
# Sark, DG Diego Garcia, EA Ceuta & Melilla, IC Canary Islands, TA Tristan da Cunha). XK
# (Kosovo) is user-assigned but in universal use, so it stays.
_NOT_COUNTRIES = frozenset(
    {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB", "AC", "CP", "CQ", "DG", "EA", "IC", "TA"}
)

_CODE = re.compile(r"[A-Z]{2}")
_DATA_PACKAGE = "newswatch.rules"
_DATA_FILE = ("data", "countries.yaml")

# Deterministic output order: by codes, then kind, then language, then text.
_KIND_ORDER: Mapping[str, int] = {"name": 0, "short": 1, "demonym": 2, "capital": 3}
_LANGUAGE_ORDER: Mapping[str, int] = {
    lang: i for i, lang in enumerate(("", "fr", "en", "ar", "es", "de", "it", "pt"))
}


@dataclass(frozen=True, slots=True)
class PlaceName:
    """One text that stands for one country (or, rarely, several).

    ``text``: as written ("États-Unis", "USA", "marocaine", "Rabat", "المغرب"); never empty.
    ``codes``: the ISO 3166-1 alpha-2 codes it stands for, sorted; more than one only for
    truly ambiguous names ("Congo" → CD, CG). ``kind``: "capital" is a capital or seat of
    government, counted only by rules with ``capitals: true``; the other kinds always count.
    ``case_sensitive``: the text must appear with exactly this case (acronyms such as "US",
    "UK", "EAU"); otherwise matching is case- and accent-insensitive. ``language``: "fr",
    "en", "ar", ... or "" when not language-specific.
    """

    text: str
    codes: tuple[str, ...]
    kind: PlaceKind
    case_sensitive: bool
    language: str


@dataclass(frozen=True, slots=True)
class _Raw:
    """A candidate before merging: one text for one code."""

    text: str
    code: str
    kind: PlaceKind
    language: str


# ---------------------------------------------------------------------------------- public


@functools.cache
def known_codes() -> frozenset[str]:
    """Every country code usable in rules: the ISO 3166-1 alpha-2 codes CLDR names (249
    countries and territories) plus XK (Kosovo). Upper case, exactly as rules write them."""
    territories = Locale.parse("en").territories
    return frozenset(
        code
        for code in territories
        if isinstance(code, str) and _CODE.fullmatch(code) and code not in _NOT_COUNTRIES
    )


@functools.cache
def base_names() -> tuple[PlaceName, ...]:
    """Every gazetteer text, CLDR and data file merged; cached, deterministic order.

    Guarantees: no empty text; every code is in :func:`known_codes`; no exact duplicates; a
    text that appears for several codes (after case folding and accent removal) stands for
    all of them, in every entry; a capital whose text is, or contains, a name of its own
    country has kind "name" (the contract: Djibouti, تونس, Koweït always count).

    Raises ``ValueError`` when the data file is malformed (a packaging or editing error).
    """
    data = _load_data()
    raws = [*_cldr_names(data.dropped), *data.entries]
    return _merge(raws)


def country_label(code: str, locale: str = "en") -> str:
    """Display name of a country, e.g. ``country_label("MA") == "Morocco"``,
    ``country_label("MA", "fr") == "Maroc"``. Raises ``KeyError`` for a code not in
    :func:`known_codes` (codes are upper case); an unknown locale raises Babel's
    ``UnknownLocaleError``."""
    if code not in known_codes():
        raise KeyError(code)
    label = _territories(locale).get(code)
    if label is None:  # CLDR inherits from root, so every locale has every code; be safe
        label = _territories("en")[code]
    return str(label)


# ---------------------------------------------------------------------------------- CLDR


@functools.cache
def _territories(locale: str) -> Mapping[str, str]:
    names = Locale.parse(locale).territories
    return {str(code): str(name) for code, name in names.items()}


_PARENTHESIS = re.compile(r"\s*\([^)]*\)")
_SAINT = re.compile(r"\bSt\.\s")


def _cldr_variants(text: str, language: str) -> list[str]:
    """The CLDR name and its obvious spelling variants, without duplicates.

    The matcher splits words on punctuation, so "Congo - Brazzaville" is fine as is; but a
    parenthesis is an annotation, not part of what articles write, and English CLDR uses
    "&" and "St." where articles usually write "and" and "Saint".
    """
    variants = [text]
    if "(" in text:
        bare = " ".join(_PARENTHESIS.sub(" ", text).split())
        if bare:
            variants.append(bare)
    if language == "en":
        for variant in list(variants):
            spelled = [variant.replace(" & ", " and "), _SAINT.sub("Saint ", variant)]
            spelled.append(_SAINT.sub("Saint ", spelled[0]))
            variants.extend(spelled)
    return list(dict.fromkeys(variants))


def _cldr_names(dropped: frozenset[tuple[str, str, str]]) -> Iterator[_Raw]:
    codes = sorted(known_codes())
    for language in CLDR_LANGUAGES:
        territories = _territories(language)
        for code in codes:
            text = territories.get(code)
            if not text or (code, language, text) in dropped:
                continue
            for variant in _cldr_variants(text, language):
                yield _Raw(variant, code, "name", language)


# ---------------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class _Data:
    entries: tuple[_Raw, ...]
    dropped: frozenset[tuple[str, str, str]]  # (code, CLDR language, CLDR text)


def _load_data() -> _Data:
    source = resources.files(_DATA_PACKAGE).joinpath(*_DATA_FILE)
    # The C loader parses the file several times faster; both are safe loaders.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(source.read_text(encoding="utf-8"), Loader=loader)
    return _parse_data(document, "/".join(_DATA_FILE))


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _parse_data(document: Any, where: str) -> _Data:
    """Validate the data file strictly: a typo there would silently lose names."""
    if not isinstance(document, dict) or set(document) - {"dropped", "countries"}:
        raise _fail(where, "expected a mapping with the keys 'dropped' and 'countries'")
    dropped: set[tuple[str, str, str]] = set()
    for i, item in enumerate(document.get("dropped") or ()):
        if (
            not isinstance(item, dict)
            or set(item) != {"code", "lang", "text", "why"}
            or not all(isinstance(v, str) and v for v in item.values())
        ):
            raise _fail(where, f"dropped[{i}]: expected {{code, lang, text, why}} strings")
        dropped.add((item["code"], item["lang"], item["text"]))

    countries = document.get("countries")
    if not isinstance(countries, dict):
        raise _fail(where, "'countries' must be a mapping from codes to blocks")
    codes = known_codes()
    entries: list[_Raw] = []
    for code, block in countries.items():
        # YAML 1.1 reads an unquoted NO as false: say so rather than "unknown code False".
        if not isinstance(code, str) or code not in codes:
            raise _fail(where, f"unknown country code {code!r} (quote codes such as 'NO')")
        if not isinstance(block, dict) or set(block) - set(_DATA_SECTIONS):
            raise _fail(where, f"{code}: expected a mapping with keys {sorted(_DATA_SECTIONS)}")
        for section, by_language in block.items():
            kind = _DATA_SECTIONS[section]
            if not isinstance(by_language, dict):
                raise _fail(where, f"{code}.{section}: expected a mapping language → list")
            for language, texts in by_language.items():
                if language not in _DATA_LANGUAGES:
                    raise _fail(where, f"{code}.{section}: unknown language {language!r}")
                if not isinstance(texts, list) or not all(
                    isinstance(t, str) and t.strip() for t in texts
                ):
                    raise _fail(where, f"{code}.{section}.{language}: expected non-empty texts")
                lang = "" if language == "any" else language
                entries.extend(_Raw(t.strip(), code, kind, lang) for t in texts)
    return _Data(tuple(entries), frozenset(dropped))


# ---------------------------------------------------------------------------------- merging

# A close approximation of the matcher's word keys (rules/text.py), kept local so the data
# can be built without the matcher: case folded, Latin diacritics removed, Arabic letter
# forms unified and tashkeel removed, French elided articles dropped, a leading Arabic
# article stripped. Used only to decide which texts are "the same name".
_AR_TASHKEEL = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_AR_FORMS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_ELISION = re.compile(r"\b(?:l|d|j|n|s|c|qu)'(?=\w)")
_WORD = re.compile(r"[^\W_]+")
_AR_ARTICLE = re.compile(r"^ال(?=..)")
_ARABIC = re.compile("[\u0600-\u06ff]")


def _fold(text: str) -> tuple[str, ...]:
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    if _ARABIC.search(text):
        # No NFD here: it would also turn ؤ into و and ئ into ي, which the matcher keeps.
        text = _AR_TASHKEEL.sub("", text).translate(_AR_FORMS)
    elif not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    text = _ELISION.sub(" ", text)
    return tuple(_AR_ARTICLE.sub("", w) for w in _WORD.findall(text))


def _is_acronym(text: str) -> bool:
    """Written entirely in capitals, letters with dots and dashes: "US", "U.S.", "É.-U."."""
    letters = [c for c in text if c.isalpha()]
    return (
        len(letters) >= 2
        and all(c.isupper() for c in letters)
        and all(c.isalpha() or c in ".-" for c in text)
    )


def _contains(words: tuple[str, ...], part: tuple[str, ...]) -> bool:
    n = len(part)
    return any(words[i : i + n] == part for i in range(len(words) - n + 1))


def _merge(raws: list[_Raw]) -> tuple[PlaceName, ...]:
    """Turn candidates into the final PlaceNames (see base_names for the guarantees)."""

    # Acronyms compare by exact text (their case is meaningful); the rest by folded words.
    def key_of(raw: _Raw) -> tuple[str, ...]:
        return ("\0" + raw.text,) if _is_acronym(raw.text) else _fold(raw.text)

    keyed = [(key_of(r), r) for r in raws if r.text.strip()]
    keyed = [(k, r) for k, r in keyed if k]

    # A capital that is, or contains, a name of its own country always counts: "Djibouti",
    # "Kuwait City", "تونس العاصمة". As a capital it would even hide the country's name,
    # since the matcher prefers the longest name.
    own_names: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for key, raw in keyed:
        if raw.kind in ("name", "short") and not key[0].startswith("\0"):
            own_names[raw.code].add(key)
    promoted: list[tuple[tuple[str, ...], _Raw]] = []
    for key, raw in keyed:
        if raw.kind == "capital" and any(_contains(key, n) for n in own_names[raw.code]):
            raw = _Raw(raw.text, raw.code, "name", raw.language)
        promoted.append((key, raw))

    # Codes per key: one union for texts that always count, one for capitals. A capital
    # text that already always counts for its country adds nothing and is left out.
    always: dict[tuple[str, ...], set[str]] = defaultdict(set)
    capital: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for key, raw in promoted:
        (capital if raw.kind == "capital" else always)[key].add(raw.code)

    result: set[PlaceName] = set()
    for key, raw in promoted:
        if raw.kind == "capital":
            if raw.code in always.get(key, ()):
                continue
            codes = capital[key] - always.get(key, set())
        else:
            codes = always[key]
        result.add(
            PlaceName(
                text=raw.text,
                codes=tuple(sorted(codes)),
                kind=raw.kind,
                case_sensitive=_is_acronym(raw.text),
                language=raw.language,
            )
        )
    return tuple(
        sorted(
            result,
            key=lambda p: (
                p.codes,
                _KIND_ORDER[p.kind],
                _LANGUAGE_ORDER.get(p.language, len(_LANGUAGE_ORDER)),
                p.language,
                p.text,
            ),
        )
    )
