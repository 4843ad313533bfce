"""The compiled parts of a rule set, and the pure helpers that compile them: phrases,
places and person-name variants as the matcher's index holds them, what one article's
scan found (``Hits``), and the anchors (the items of which one must be hit for a rule to
be worth evaluating). No state: ``newswatch.rules.matcher`` builds and uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

from newswatch.core.article import Field
from newswatch.rules.evidence import Evidence
from newswatch.rules.gazetteer import PlaceName, base_names
from newswatch.rules.model import AllOf, AnyOf, Condition, Countries, People, Phrases
from newswatch.rules.text import cased, rule_key, tokenize, translate

PLURAL_ENDINGS = ("s", "x", "es")


def by_fields(item: Any) -> tuple[type, tuple[object, ...]]:
    """``__reduce__`` of the frozen dataclasses a pickled Matcher holds: built again from
    their fields. Compiled with mypyc (setup.py), pickle's default would set their
    attributes one by one, which a frozen dataclass refuses."""
    return type(item), tuple(getattr(item, f.name) for f in fields(item))


@dataclass(frozen=True, slots=True)
class CompiledPhrase:
    text: str  # as written in the rule
    words: tuple[int, ...]  # word ids
    near: int
    exact: bool
    word_set: frozenset[int]

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return by_fields(self)


@dataclass(frozen=True, slots=True)
class CompiledPlace:
    text: str
    keys: tuple[str, ...]
    surfaces: tuple[str, ...] | None  # exact case required when set
    codes: tuple[str, ...]
    capital: bool

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return by_fields(self)


@dataclass(frozen=True, slots=True)
class NameVariant:
    """One spelling of a person's name (its name or an alias): its normalised words,
    joined, its transliteration skeletons (``newswatch.rules.transliterate``) with the
    number of words they come from (articles left out), and its Latin form."""

    person: int
    keys: tuple[str, ...]
    joined: str
    skeletons: tuple[str, ...] = ()
    words: int = 0
    latin: str = ""  # ``transliterate.latin_form``: "" for a name not in Latin script
    onsets: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
    first_keys: frozenset[str] = frozenset()  # its first word's (transliterate.first_keys)
    first_blocks: frozenset[str] = frozenset()  # in Latin letters (latin_first_keys)

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return by_fields(self)


@dataclass(frozen=True, slots=True)
class PersonHit:
    """A person found in a field: the tokens ``first`` to ``last``, the similarity score
    (0-100) and ``how``: None for the spelling word for word, ``respelled`` for the Latin
    forms (``transliterate.latin_form``), ``transliterated`` for the skeletons."""

    field: Field
    first: int
    last: int
    score: float
    how: str | None = None


@dataclass(slots=True)
class Hits:
    """What the index found in one article; keys are compiled ids."""

    phrases: dict[int, dict[Field, tuple[int, int]]] = field(default_factory=dict)
    countries: list[tuple[CompiledPlace, Field, int, int]] = field(default_factory=list)
    by_code: dict[str, list[tuple[CompiledPlace, Field, int, int]]] = field(default_factory=dict)
    people: dict[int, list[PersonHit]] = field(default_factory=dict)
    # Evidence already built for this article, shared by the rules asking the same
    # question: (clause, compiled id or code, the rule's fields[, capitals]) → evidence
    spans: dict[tuple[object, ...], list[Evidence]] = field(default_factory=dict)
    # (surname, min_score, field) → (position, score) of each word close to the surname
    surnames: dict[tuple[str, float, Field], list[tuple[int, float]]] = field(
        default_factory=dict)


# What one text word can hit: word ids, places, the name blocks it falls in (variant,
# offset), and the name variants whose last word, and whose first word, it may be when
# written another way (issue 20)
Entry = tuple[tuple[int, ...], tuple[CompiledPlace, ...], tuple[tuple[int, int], ...],
              tuple[int, ...], frozenset[int]]
# A field's words that fall in name blocks: the positions of one word and its
# (variant, offset) blocks
NameWords = list[tuple[list[int], tuple[tuple[int, int], ...], tuple[int, ...],
                       frozenset[int]]]
NOTHING: Entry = ((), (), (), (), frozenset())
ENTRY_CACHE_LIMIT = 500_000
MIN_FUZZY_WORD = 5  # shorter name words are looked up exactly (deletes would be too common)


def neighbourhood(key: str) -> set[str]:
    """The word and, for words of 5+ letters, every form with one letter deleted.

    Two words share an entry when they differ by one insertion, deletion or substitution,
    or a transposition (symmetric-delete): the candidate filter before fuzzy comparison.
    """
    if len(key) < MIN_FUZZY_WORD:
        return {key}
    return {key, *(key[:i] + key[i + 1 :] for i in range(len(key)))}


def word_variants(key: str) -> set[str]:
    """Keys a rule word accepts with plural tolerance (s, x, es on either side)."""
    out = {key}
    if not key.isascii():
        return out
    out.update(key + end for end in PLURAL_ENDINGS)
    for end in PLURAL_ENDINGS:
        if key.endswith(end) and len(key) - len(end) >= 2:
            out.add(key[: -len(end)])
    return out


def split_phrase(phrase: str) -> tuple[bool, list[tuple[str, bool]]]:
    """(exact, [(key, is_prefix)]) for a phrase as written in a rule."""
    exact = phrase.startswith("=")
    body = phrase[1:] if exact else phrase
    tokens = tokenize(body)
    folded = translate(body)
    words = []
    for i, key in enumerate(tokens.keys):
        end = tokens.span(i)[1]
        words.append((rule_key(key), folded[end : end + 1] == "*"))
    return exact, words


@cache
def base_places() -> tuple[CompiledPlace, ...]:
    return tuple(p for name in base_names() if (p := compile_place(name)) is not None)


def compile_place(name: PlaceName) -> CompiledPlace | None:
    tokens = tokenize(name.text)
    if not tokens.keys:
        return None
    surfaces = (
        tuple(cased(tokens.surface(i)) for i in range(len(tokens))) if name.case_sensitive
        else None
    )
    return CompiledPlace(
        text=name.text,
        keys=tuple(rule_key(k) for k in tokens.keys),
        surfaces=surfaces,
        codes=name.codes,
        capital=name.kind == "capital",
    )


Anchor = tuple[str, object]  # ("code", "MA") | ("phrase", text) | ("person", Person)
ANCHOR_COST = {"code": 20, "phrase": 1, "person": 1}  # countries are hit far more often


def rule_anchors(condition: Condition) -> list[Anchor] | None:
    """Items of which at least one must be hit for the condition to hold (None: the
    condition can hold with no hit at all). A rule is evaluated only when one of its
    anchors was hit, so a common country alone does not wake every rule that names it."""
    if isinstance(condition, Countries | Phrases | People):
        kind = {Countries: "code", Phrases: "phrase", People: "person"}[type(condition)]
        group = condition.group
        if group.all:
            return [(kind, group.all[0])]  # every item of `all` is required: one suffices
        return [(kind, item) for item in group.any] or None
    if isinstance(condition, AllOf):
        options = [a for c in condition.children if (a := rule_anchors(c)) is not None]
        if not options:
            return None
        return min(options, key=lambda a: sum(ANCHOR_COST[k] for k, _ in a))
    if isinstance(condition, AnyOf):
        out: list[Anchor] = []
        for child in condition.children:
            found = rule_anchors(child)
            if found is None:
                return None
            out.extend(found)
        return out or None
    return None


HitKey = str | int  # a hit as the requirements see it: a country code, ``pid``, ``~person id``


def required_anchors(condition: Condition) -> list[list[Anchor]]:
    """Anchor lists that must each be hit for the condition to hold: one per child of a
    top-level ``all`` that has anchors (``rule_anchors``), or the condition's own. A cheap,
    necessary check before a candidate rule is evaluated."""
    children = condition.children if isinstance(condition, AllOf) else (condition,)
    out = []
    for child in children:
        if isinstance(child, AllOf):
            out.extend(required_anchors(child))
        elif (found := rule_anchors(child)) is not None:
            out.append(found)
    return out


def widened(gate: int | None, codes: int | None) -> int | None:
    """``gate`` with ``codes`` added (bit masks); None (always needed) is final."""
    return None if gate is None or codes is None else gate | codes

