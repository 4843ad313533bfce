"""A straightforward reference implementation of the rule contract (docs/rules.md).

Slow on purpose and written to be read against the documentation, not to be fast: every
rule is evaluated on every article, every phrase is located by trying every combination of
positions, every name is compared with every window of the text. The fast matcher
(newswatch/rules/matcher.py) must return exactly the same rules and evidence; the
normalisation and tokenisation (newswatch/rules/text.py) and the gazetteer are shared, the
matching itself is not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise, product

from rapidfuzz import fuzz

from newswatch.core.article import Article, Field
from newswatch.rules.evidence import Clause, Evidence
from newswatch.rules.gazetteer import PlaceName, base_names
from newswatch.rules.language import detect_language
from newswatch.rules.model import (
    AllOf,
    AnyOf,
    Condition,
    Countries,
    Group,
    People,
    Person,
    Phrases,
    Rule,
    RuleSet,
)
from newswatch.rules.text import Tokens, arabic_alternatives, cased, rule_key, tokenize, translate
from newswatch.rules.transliterate import (
    MIN_ANCHOR,
    MIN_SKELETON_WORDS,
    NameGuard,
    anchor_skeletons,
    first_keys,
    is_article,
    joined,
    latin_first_keys,
    latin_form,
    latin_script,
    name_onsets,
    name_parts,
    never_in_name,
    read_window,
    spelling_anchors,
    starts_name,
    window_score,
    word_skeletons,
)

ORDER: tuple[Field, ...] = ("title", "summary", "content", "body")


# ------------------------------------------------------------------------------ words


def forms(text_key: str) -> tuple[str, ...]:
    """A text word and its forms without Arabic proclitics (والمغرب → المغرب, مغرب)."""
    return (text_key, *arabic_alternatives(text_key))


def plural_equal(rule_word: str, text_word: str) -> bool:
    """Equal, or equal up to a plural ending s, x or es on either side (Latin script)."""
    if rule_word == text_word:
        return True
    if not rule_word.isascii():
        return False
    for end in ("s", "x", "es"):
        if text_word == rule_word + end:
            return True
        if rule_word.endswith(end) and len(rule_word) - len(end) >= 2 and (
            text_word == rule_word[: -len(end)]
        ):
            return True
    return False


@dataclass(frozen=True)
class PhraseWord:
    key: str
    prefix: bool  # written with a trailing *


@cache
def phrase_words(phrase: str) -> tuple[bool, list[PhraseWord]]:
    exact = phrase.startswith("=")
    body = phrase[1:] if exact else phrase
    tokens = tokenize(body)
    folded = translate(body)
    words = []
    for i, key in enumerate(tokens.keys):
        end = tokens.span(i)[1]
        words.append(PhraseWord(rule_key(key), folded[end : end + 1] == "*"))
    return exact, words


def word_matches(word: PhraseWord, exact: bool, text_key: str) -> bool:
    if word.prefix:
        return text_key.startswith(word.key)
    if exact:
        return word.key in forms(text_key)
    return any(plural_equal(word.key, form) for form in forms(text_key))


def word_positions(word: PhraseWord, exact: bool, tokens: Tokens) -> list[int]:
    matching = {k for k in set(tokens.keys) if word_matches(word, exact, k)}
    return [i for i, k in enumerate(tokens.keys) if k in matching]


def locate_phrase(phrase: str, near: int, tokens: Tokens) -> tuple[int, int] | None:
    """The first (start, end) word span of the phrase: words in order, each at most
    ``near`` words after the previous one (adjacent when exact), all in one sentence;
    "first" is the earliest start, then the earliest next word, and so on."""
    exact, words = phrase_words(phrase)
    if not words:
        return None
    gap = 1 if exact else near + 1
    where = [word_positions(w, exact, tokens) for w in words]
    for chain in product(*where):  # in lexicographic order: the first found is the first
        if all(
            0 < b - a <= gap and tokens.sentences[a] == tokens.sentences[b]
            for a, b in pairwise(chain)
        ):
            return chain[0], chain[-1]
    return None


# ------------------------------------------------------------------------------ places


@dataclass(frozen=True)
class Place:
    name: PlaceName
    keys: tuple[str, ...]


def places(ruleset: RuleSet) -> list[Place]:
    names = list(base_names())
    for code, texts in ruleset.aliases.items():
        names.extend(PlaceName(text, (code,), "name", False, "") for text in texts)
    out = []
    for name in names:
        keys = tuple(rule_key(k) for k in tokenize(name.text).keys)
        if keys:
            out.append(Place(name, keys))
    return out


def place_at(place: Place, tokens: Tokens, i: int) -> bool:
    if i + len(place.keys) > len(tokens):
        return False
    for j, want in enumerate(place.keys):
        if want not in forms(tokens.keys[i + j]):
            return False
        if place.name.case_sensitive and cased(tokens.surface(i + j)) != cased_words(
            place.name.text
        )[j]:
            return False
    return True


def cased_words(text: str) -> list[str]:
    tokens = tokenize(text)
    return [cased(tokens.surface(i)) for i in range(len(tokens))]


def find_places(all_places: Sequence[Place], tokens: Tokens) -> Iterator[tuple[Place, int, int]]:
    """Left to right, the longest name starting at each word (the first listed among
    equally long ones); words inside a name already taken start nothing."""
    by_first: dict[str, list[tuple[int, Place]]] = {}  # only a name whose first word is
    for number, place in enumerate(all_places):  # there can start there
        by_first.setdefault(place.keys[0], []).append((number, place))
    i = 0
    while i < len(tokens):
        best: Place | None = None
        starting = sorted(
            {n: p for k in forms(tokens.keys[i]) for n, p in by_first.get(k, ())}.items()
        )
        for _, place in starting:
            if (best is None or len(place.keys) > len(best.keys)) and place_at(place, tokens, i):
                best = place
        if best is None:
            i += 1
            continue
        yield best, i, i + len(best.keys) - 1
        i += len(best.keys)


# ------------------------------------------------------------------------------ people


@cache
def one_deletion_forms(key: str) -> frozenset[str]:
    if len(key) < 5:
        return frozenset({key})
    return frozenset({key, *(key[:i] + key[i + 1 :] for i in range(len(key)))})


@cache
def name_keys(name: str) -> tuple[str, ...]:
    return tokenize(name).keys


def close_words(a: str, b: str) -> bool:
    """The candidate filter of docs/rules.md: equal, or (5+ letters) equal once one letter
    is removed from either or both."""
    return bool(one_deletion_forms(a) & one_deletion_forms(b))


PersonHit = tuple[int, int, float, str | None]  # first, last, score, how


def find_person(person: Person, tokens: Tokens) -> list[PersonHit]:
    """Every window matching the name or an alias: first word for word, by start (at one
    start, the first of name and aliases, in that order, that matches); then across
    scripts and spellings (``find_person_across``)."""
    found: dict[int, PersonHit] = {}
    guard = NameGuard(tokens)
    for name in (person.name, *person.aliases):
        keys = name_keys(name)
        if not keys:
            continue
        joined_keys = " ".join(keys)
        for start in range(len(tokens) - len(keys) + 1):
            window = tokens.keys[start : start + len(keys)]
            if start in found or not any(map(close_words, window, keys)):
                continue
            score = fuzz.ratio(" ".join(window), joined_keys)
            if score >= person.min_score and guard.allows(start, start + len(keys) - 1):
                found[start] = (start, start + len(keys) - 1, float(score), None)
    spelled = [found[s] for s in sorted(found)]
    return spelled + find_person_across(person, tokens, spelled, guard)


@dataclass(frozen=True)
class Variant:
    """A name or alias as ``window_score`` and ``starts_name`` read it."""

    skeletons: tuple[str, ...]
    words: int
    latin: str
    onsets: tuple[frozenset[str], frozenset[str]]
    first_keys: frozenset[str]
    first_blocks: frozenset[str]
    last: frozenset[str]  # the skeletons its last word is found by (anchor_skeletons)
    blocks: frozenset[str]  # in Latin text, the letter blocks of a last word in Latin


def variant_of(keys: tuple[str, ...]) -> Variant | None:
    parts = name_parts(keys)
    if len(parts) < MIN_SKELETON_WORDS:
        return None
    named = [k for i, k in enumerate(keys) if word_skeletons(k) and not is_article(
        k, keys[i + 1] if i + 1 < len(keys) else None)]
    first, last = named[0], named[-1]
    return Variant(
        joined(parts), len(parts), latin_form(keys), name_onsets(keys), first_keys(first),
        latin_first_keys(first) if first.isascii() else frozenset(),
        frozenset(s for s in anchor_skeletons(last) if len(s) >= MIN_ANCHOR),
        spelling_anchors(last) if last.isascii() else frozenset())


def find_person_across(person: Person, tokens: Tokens, spelled: list[PersonHit],
                       guard: NameGuard) -> list[PersonHit]:
    """Windows from a word that may be the name's first to a word that may be its last
    (by letter blocks when both are in Latin script, else by skeletons), of the name's
    words and up to two more; at each last word (in order, name before aliases), the
    best-scoring window that looks like a name, unless a hit already covers that word."""
    names = [name_keys(n) for n in (person.name, *person.aliases)]
    scripts = {latin_script(keys) for keys in names if keys}
    variants = [v for keys in names if (v := variant_of(keys)) is not None]
    out: list[PersonHit] = []
    for end in range(len(tokens)):
        word = tokens.keys[end]
        if not word.isascii() and never_in_name(word):
            continue  # never the last word of a name
        skeletons = {s for f in forms(word) for s in anchor_skeletons(f)}
        for variant in variants:
            in_latin = bool(variant.blocks)
            # read across scripts only into a script none of the person's spellings is in
            if (word.isascii() and not in_latin and True in scripts) or (
                    not word.isascii() and in_latin and False in scripts):
                continue
            if word.isascii() and in_latin:  # Latin both: by letter blocks
                if not spelling_anchors(word) & variant.blocks:
                    continue
            elif not skeletons & variant.last:
                continue
            if any(first <= end <= last for first, last, _, _ in spelled + out):
                continue
            best: PersonHit | None = None
            for start in range(max(0, end - variant.words - 1), end):
                if not starts_name(tokens.keys[start], variant):
                    continue
                score, how = window_score(read_window(tokens.keys[start : end + 1]), variant,
                                          person.min_score)
                if score and (best is None or score > best[2]) and guard.allows(
                        start, end) and not (how == "transliterated"
                                             and guard.no_name(start, end)):
                    best = (start, end, score, how)
            if best is not None:
                out.append(best)
    return out


# ------------------------------------------------------------------------------ rules


class ReferenceMatcher:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.places = places(ruleset)

    def match(self, article: Article) -> list[tuple[str, tuple[Evidence, ...]]]:
        fields = {n: tokenize(article.text(n)) for n in ORDER if article.text(n)}
        found_places = {n: list(find_places(self.places, t)) for n, t in fields.items()}
        languages: list[str | None] = []
        memo: dict[tuple[object, ...], object] = {}
        out = []
        for rule in self.ruleset.rules:
            if rule.feeds is not None and article.feed not in rule.feeds:
                continue
            if rule.languages is not None:
                if not languages:
                    languages.append(article.language or detect_language(article))
                if languages[0] not in rule.languages:
                    continue
            view = RuleView(rule, fields, found_places, memo)
            evidence: list[Evidence] = []
            if not view.holds(rule.condition, evidence):
                continue
            if any(view.phrase_evidence(p) for p in rule.exclude):
                continue
            out.append((rule.id, tuple(evidence)))
        return out


class RuleView:
    def __init__(self, rule: Rule, fields: dict[Field, Tokens],
                 found_places: dict[Field, list[tuple[Place, int, int]]],
                 memo: dict[tuple[object, ...], object]) -> None:
        self.memo = memo  # (search, its arguments) → its result, for this one article
        self.rule = rule
        self.fields = fields
        self.found_places = found_places

    def evidence(self, clause: Clause, term: str, name: Field, first: int, last: int,
                 score: float | None = None, how: str | None = None) -> Evidence:
        tokens = self.fields[name]
        start, end = tokens.span(first)[0], tokens.span(last)[1]
        return Evidence(clause, term, name, start, end, tokens.text[start:end],
                        " ".join(tokens.keys[first : last + 1]), score, how)

    def phrase_evidence(self, phrase: str) -> list[Evidence]:
        """One span per field of the rule (in the rule's field order)."""
        out = []
        for name in self.rule.fields:
            if name in self.fields:
                key = ("phrase", phrase, self.rule.near, name)
                if key not in self.memo:
                    self.memo[key] = locate_phrase(phrase, self.rule.near, self.fields[name])
                span = self.memo[key]
                assert span is None or isinstance(span, tuple)
                if span is not None:
                    out.append(self.evidence("phrase", phrase, name, *span))
        return out

    def country_evidence(self, code: str) -> list[Evidence]:
        """One piece per distinct wording (case-insensitive), in text order."""
        out = []
        seen = set()
        for name in ORDER:
            if name not in self.fields or name not in self.rule.fields:
                continue
            for place, first, last in self.found_places[name]:
                if code not in place.name.codes:
                    continue
                if place.name.kind == "capital" and not self.rule.capitals:
                    continue
                wording = self.fields[name].span_text(first, last).casefold()
                if wording not in seen:
                    seen.add(wording)
                    out.append(self.evidence("country", code, name, first, last))
        return out

    def person_evidence(self, person: Person) -> list[Evidence]:
        full = [
            (name, first, last, score, how)
            for name in ORDER
            if name in self.fields and name in self.rule.fields
            for first, last, score, how in self.find_person(person, name)
        ]
        out = [self.evidence("person", person.name, *hit) for hit in full]
        if full:
            out.extend(self.surname_evidence(person, full))
        return out

    def find_person(self, person: Person, name: Field) -> list[PersonHit]:
        key = ("person", person, name)
        if key not in self.memo:
            self.memo[key] = find_person(person, self.fields[name])
        found = self.memo[key]
        assert isinstance(found, list)
        return found

    def surname_evidence(self, person: Person, full: list[tuple[Field, int, int, float,
                                                              str | None]]) -> list[Evidence]:
        """The surname alone, after the first full-name hit, outside every full-name hit."""
        keys = name_keys(person.name)
        if len(keys) < 2:
            return []
        first_field, _, first_last, _, _ = min(full, key=lambda h: (ORDER.index(h[0]), h[1]))
        covered = {(n, i) for n, a, b, _, _ in full for i in range(a, b + 1)}
        out = []
        for name in ORDER[ORDER.index(first_field):]:
            if name not in self.fields or name not in self.rule.fields:
                continue
            begin = first_last + 1 if name == first_field else 0
            for i in range(begin, len(self.fields[name])):
                if (name, i) in covered:
                    continue
                score = fuzz.ratio(self.fields[name].keys[i], keys[-1])
                if score >= person.min_score:
                    out.append(self.evidence("person", person.name, name, i, i, float(score)))
        return out

    def group(self, group: Group[str] | Group[Person], spans: object,
              evidence: list[Evidence]) -> bool:
        found: list[Evidence] = []
        for item in group.all:
            got = spans(item)  # type: ignore[operator]
            if not got:
                return False
            found.extend(got)
        if group.any:
            got_any = [e for item in group.any for e in spans(item)]  # type: ignore[operator]
            if not got_any:
                return False
            found.extend(got_any)
        evidence.extend(found)
        return True

    def holds(self, condition: Condition, evidence: list[Evidence]) -> bool:
        if isinstance(condition, Countries):
            return self.group(condition.group, self.country_evidence, evidence)
        if isinstance(condition, Phrases):
            return self.group(condition.group, self.phrase_evidence, evidence)
        if isinstance(condition, People):
            return self.group(condition.group, self.person_evidence, evidence)
        if isinstance(condition, AllOf):
            collected: list[Evidence] = []
            if all(self.holds(c, collected) for c in condition.children):
                evidence.extend(collected)
                return True
            return False
        if isinstance(condition, AnyOf):
            results = [self.holds(c, evidence) for c in condition.children]
            return any(results)
        return not self.holds(condition.child, [])
