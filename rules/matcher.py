"""The matcher: a whole rule set compiled into one index, applied to articles.

Cost per article grows with the article, not with the number of rules: every rule word,
country name and person-name block is a key of a dict, each article word is looked up
once, and only the rules touched by a hit are evaluated. Phrase order, ``near`` and
sentence checks, and fuzzy name comparisons (rapidfuzz ``fuzz.ratio``), run only on
candidates found through the index.

Semantics are those of docs/rules.md, the contract of the rule language.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import compress
from operator import itemgetter
from typing import TypeVar

from rapidfuzz import fuzz, process

from newswatch.core.article import FIELDS, Article, Field
from newswatch.rules.evidence import Clause, Evidence
from newswatch.rules.gazetteer import PlaceName, base_names
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
    leaves,
)
from newswatch.rules.text import Tokens, arabic_alternatives, cased, rule_key, tokenize, translate

_PLURAL_ENDINGS = ("s", "x", "es")
T = TypeVar("T")


# --------------------------------------------------------------------------- compiled parts


@dataclass(frozen=True, slots=True)
class _Phrase:
    text: str  # as written in the rule
    words: tuple[int, ...]  # word ids
    near: int
    exact: bool
    word_set: frozenset[int]


@dataclass(frozen=True, slots=True)
class _Place:
    text: str
    keys: tuple[str, ...]
    surfaces: tuple[str, ...] | None  # exact case required when set
    codes: tuple[str, ...]
    capital: bool


@dataclass(frozen=True, slots=True)
class _Variant:
    person: int
    keys: tuple[str, ...]
    joined: str


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule matched an article, with the evidence of every satisfied clause."""

    rule: Rule
    evidence: tuple[Evidence, ...]


@dataclass(slots=True)
class _Hits:
    """What the index found in one article; keys are compiled ids."""

    phrases: dict[int, dict[Field, tuple[int, int]]] = field(default_factory=dict)
    countries: list[tuple[_Place, Field, int, int]] = field(default_factory=list)
    by_code: dict[str, list[tuple[_Place, Field, int, int]]] = field(default_factory=dict)
    people: dict[int, list[tuple[Field, int, int, float]]] = field(default_factory=dict)
    # Evidence already built for this article, shared by the rules asking the same
    # question: (clause, compiled id or code, the rule's fields[, capitals]) → evidence
    spans: dict[tuple[object, ...], list[Evidence]] = field(default_factory=dict)
    # (surname, min_score, field) → (position, score) of each word close to the surname
    surnames: dict[tuple[str, float, Field], list[tuple[int, float]]] = field(
        default_factory=dict)


_Entry = tuple[tuple[int, ...], tuple[_Place, ...], tuple[tuple[int, int], ...]]
# A field's words that fall in name blocks: the positions of one word and its
# (variant, offset) blocks
_NameWords = list[tuple[list[int], tuple[tuple[int, int], ...]]]
_NOTHING: _Entry = ((), (), ())
_ENTRY_CACHE_LIMIT = 500_000
_MIN_FUZZY_WORD = 5  # shorter name words are looked up exactly (deletes would be too common)


def _neighbourhood(key: str) -> set[str]:
    """The word and, for words of 5+ letters, every form with one letter deleted.

    Two words share an entry when they differ by one insertion, deletion or substitution,
    or a transposition (symmetric-delete): the candidate filter before fuzzy comparison.
    """
    if len(key) < _MIN_FUZZY_WORD:
        return {key}
    return {key, *(key[:i] + key[i + 1 :] for i in range(len(key)))}


def _word_variants(key: str) -> set[str]:
    """Keys a rule word accepts with plural tolerance (s, x, es on either side)."""
    out = {key}
    if not key.isascii():
        return out
    out.update(key + end for end in _PLURAL_ENDINGS)
    for end in _PLURAL_ENDINGS:
        if key.endswith(end) and len(key) - len(end) >= 2:
            out.add(key[: -len(end)])
    return out


def _split_phrase(phrase: str) -> tuple[bool, list[tuple[str, bool]]]:
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
def _base_places() -> tuple[_Place, ...]:
    return tuple(p for name in base_names() if (p := _compile_place(name)) is not None)


def _compile_place(name: PlaceName) -> _Place | None:
    tokens = tokenize(name.text)
    if not tokens.keys:
        return None
    surfaces = (
        tuple(cased(tokens.surface(i)) for i in range(len(tokens))) if name.case_sensitive
        else None
    )
    return _Place(
        text=name.text,
        keys=tuple(rule_key(k) for k in tokens.keys),
        surfaces=surfaces,
        codes=name.codes,
        capital=name.kind == "capital",
    )


_Anchor = tuple[str, object]  # ("code", "MA") | ("phrase", text) | ("person", Person)
_ANCHOR_COST = {"code": 20, "phrase": 1, "person": 1}  # countries are hit far more often


def _anchors(condition: Condition) -> list[_Anchor] | None:
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
        options = [a for c in condition.children if (a := _anchors(c)) is not None]
        if not options:
            return None
        return min(options, key=lambda a: sum(_ANCHOR_COST[k] for k, _ in a))
    if isinstance(condition, AnyOf):
        out: list[_Anchor] = []
        for child in condition.children:
            found = _anchors(child)
            if found is None:
                return None
            out.extend(found)
        return out or None
    return None


_Key = str | int  # a hit as the requirements see it: a country code, ``pid``, ``~person id``


def _requirements(condition: Condition) -> list[list[_Anchor]]:
    """Anchor lists that must each be hit for the condition to hold: one per child of a
    top-level ``all`` that has anchors (``_anchors``), or the condition's own. A cheap,
    necessary check before a candidate rule is evaluated."""
    children = condition.children if isinstance(condition, AllOf) else (condition,)
    out = []
    for child in children:
        if isinstance(child, AllOf):
            out.extend(_requirements(child))
        elif (found := _anchors(child)) is not None:
            out.append(found)
    return out


def _widened(gate: int | None, codes: int | None) -> int | None:
    """``gate`` with ``codes`` added (bit masks); None (always needed) is final."""
    return None if gate is None or codes is None else gate | codes


class Matcher:
    """A compiled rule set. Build once per rule set (``Matcher(ruleset)``), then call
    ``match(article)`` for each article; it is safe to share between tasks (no mutation)."""

    def __init__(self, ruleset: RuleSet, *, word_cache: int = _ENTRY_CACHE_LIMIT) -> None:
        """``word_cache``: how many distinct text words the per-word cache holds before it
        starts again (bounded memory on endless streams of new words)."""
        self.ruleset = ruleset
        self._word_cache = word_cache
        self.rules = ruleset.rules
        self._word_ids: dict[tuple[str, str], int] = {}
        self._word_index: dict[str, list[int]] = defaultdict(list)
        self._prefix_index: dict[int, dict[str, list[int]]] = {}  # length → prefix → ids
        self._phrase_ids: dict[tuple[str, int], int] = {}
        self._phrases: list[_Phrase] = []
        # one-word phrases by their word; longer ones by their first two words, and the
        # second words that follow each first word (so an article's present words find
        # their phrases with one set intersection per first word)
        self._single_phrases: dict[int, list[int]] = defaultdict(list)
        self._phrases_by_pair: dict[tuple[int, int], list[int]] = defaultdict(list)
        self._seconds: dict[int, set[int]] = defaultdict(set)
        self._person_ids: dict[Person, int] = {}
        self._persons: list[Person] = []
        self._variants: list[_Variant] = []
        self._blocks: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._places: dict[str, list[_Place]] = defaultdict(list)
        # rule index → compiled ids it uses, and the reverse maps used to pick candidates
        self._rule_phrases: list[dict[str, int]] = []
        self._rule_people: list[dict[Person, int]] = []
        self._rules_by_phrase: dict[int, set[int]] = defaultdict(set)
        self._rules_by_code: dict[str, set[int]] = defaultdict(set)
        self._rules_by_person: dict[int, set[int]] = defaultdict(set)
        self._always: list[int] = []
        self._required: list[tuple[frozenset[_Key], ...]] = []  # per rule: hit one of each
        # Per-word cache: the text words that hit something, with what they hit and their
        # gate (``_word_gate``), and those that hit nothing (most words: a set, for the one
        # look-up each costs in a large table)
        self._entries: dict[str, _Entry] = {}
        self._hot: dict[str, int | None] = {}
        self._cold: set[str] = set()
        self._place_words: set[str] = set()  # the words of _hot that start a place name
        self._compile()
        self._gates = self._name_gates()
        self._code_bits: dict[str, int] = {}  # country code → its bit in a gate
        self._word_gates, self._name_codes = self._code_gates()
        # the words an entry can come from directly (a word id or a place)
        self._direct: frozenset[str] = frozenset(self._word_index.keys() | self._places.keys())

    def __getstate__(self) -> dict[str, object]:
        """What a pickled Matcher keeps (streams/rulecache.py): the compiled index, not the
        per-word cache filled while matching."""
        state = dict(self.__dict__)
        state["_entries"], state["_hot"] = {}, {}
        state["_cold"], state["_place_words"] = set(), set()
        return state

    # ------------------------------------------------------------------ compilation
    def _word(self, key: str, mode: str) -> int:
        ident = (key, mode)
        wid = self._word_ids.get(ident)
        if wid is not None:
            return wid
        wid = len(self._word_ids)
        self._word_ids[ident] = wid
        if mode == "prefix":
            self._prefix_index.setdefault(len(key), {}).setdefault(key, []).append(wid)
        elif mode == "exact":
            self._word_index[key].append(wid)
        else:
            for variant in _word_variants(key):
                self._word_index[variant].append(wid)
        return wid

    def _phrase(self, text: str, near: int) -> int:
        ident = (text, near)
        pid = self._phrase_ids.get(ident)
        if pid is not None:
            return pid
        exact, words = _split_phrase(text)
        wids = tuple(
            self._word(key, "prefix" if prefix else "exact" if exact else "plural")
            for key, prefix in words
        )
        pid = len(self._phrases)
        self._phrase_ids[ident] = pid
        self._phrases.append(_Phrase(text, wids, near, exact, frozenset(wids)))
        if len(wids) == 1:
            self._single_phrases[wids[0]].append(pid)
        elif wids:
            self._phrases_by_pair[wids[0], wids[1]].append(pid)
            self._seconds[wids[0]].add(wids[1])
        return pid

    def _person(self, person: Person) -> int:
        pid = self._person_ids.get(person)
        if pid is not None:
            return pid
        pid = len(self._persons)
        self._person_ids[person] = pid
        self._persons.append(person)
        for name in (person.name, *person.aliases):
            keys = tokenize(name).keys
            if not keys:
                continue
            variant = len(self._variants)
            self._variants.append(_Variant(pid, keys, " ".join(keys)))
            for position, key in enumerate(keys):
                for block in _neighbourhood(key):
                    self._blocks[block].append((variant, position))
        return pid

    def _compile(self) -> None:
        places = list(_base_places())
        for code, names in self.ruleset.aliases.items():
            for name in names:
                place = _compile_place(PlaceName(name, (code,), "name", False, ""))
                if place is not None:
                    places.append(place)
        for place in places:
            self._places[place.keys[0]].append(place)
        for bucket in self._places.values():
            bucket.sort(key=lambda p: -len(p.keys))

        for index, rule in enumerate(self.rules):
            phrases: dict[str, int] = {}
            people: dict[Person, int] = {}
            for leaf in leaves(rule.condition):
                if isinstance(leaf, Phrases):
                    for text in leaf.group.items():
                        phrases[text] = self._phrase(text, rule.near)
                elif isinstance(leaf, People):
                    for person in leaf.group.items():
                        people[person] = self._person(person)
            for text in rule.exclude:
                phrases[text] = self._phrase(text, rule.near)
            self._rule_phrases.append(phrases)
            self._rule_people.append(people)
            self._required.append(tuple(
                frozenset(self._anchor_key(anchor, phrases, people) for anchor in required)
                for required in _requirements(rule.condition)
            ))
            anchors = _anchors(rule.condition)
            if anchors is None:
                self._always.append(index)
                continue
            for kind, item in anchors:
                if kind == "code":
                    self._rules_by_code[str(item)].add(index)
                elif kind == "phrase":
                    self._rules_by_phrase[phrases[str(item)]].add(index)
                else:
                    assert isinstance(item, Person)
                    self._rules_by_person[people[item]].add(index)

    @staticmethod
    def _anchor_key(
        anchor: _Anchor, phrases: dict[str, int], people: dict[Person, int]
    ) -> _Key:
        kind, item = anchor
        if kind == "code":
            return str(item)
        if kind == "phrase":
            return phrases[str(item)]
        assert isinstance(item, Person)
        return ~people[item]

    def _name_gates(self) -> list[frozenset[_Key] | None]:
        """Per name variant, what must be hit for its person to matter: for each rule naming
        the person, the items of one clause it needs that no person can satisfy (a country
        code or phrase id: one of them must be in the article for the rule to hold); None
        when some rule naming the person needs no such clause (then it always matters)."""
        gates: list[set[_Key] | None] = [set() for _ in self._persons]
        for index, people in enumerate(self._rule_people):
            needed = [keys for keys in self._required[index]
                      if not any(isinstance(k, int) and k < 0 for k in keys)]  # ~person ids
            for pid in people.values():
                gate = gates[pid]
                if gate is not None and needed:
                    gate.update(needed[0])
                else:
                    gates[pid] = None
        frozen = [None if gate is None else frozenset(gate) for gate in gates]
        return [frozen[variant.person] for variant in self._variants]

    def _code_gates(self) -> tuple[list[int | None], list[int | None]]:
        """Per word id and per name variant: the country codes of which one must be in the
        article for a phrase using the word, or the name, to matter to a rule. That is, for
        each rule using it, the codes of the rule's first clause made of countries alone (it
        needs one of them); None when some rule using it has no such clause. Codes are bits
        of an int (``_code_bits``): small, and one AND tells whether a gate is hit."""
        by_phrase: list[int | None] = [0] * len(self._phrases)
        by_person: list[int | None] = [0] * len(self._persons)
        for index, required in enumerate(self._required):
            codes = next((self._code_mask(keys) for keys in required
                          if all(isinstance(k, str) for k in keys)), None)
            for pid in self._rule_phrases[index].values():
                by_phrase[pid] = _widened(by_phrase[pid], codes)
            for pid in self._rule_people[index].values():
                by_person[pid] = _widened(by_person[pid], codes)
        by_word: list[int | None] = [0] * len(self._word_ids)
        for pid, phrase in enumerate(self._phrases):
            for wid in phrase.words:
                by_word[wid] = _widened(by_word[wid], by_phrase[pid])
        return by_word, [by_person[variant.person] for variant in self._variants]

    def _code_mask(self, codes: Iterable[object]) -> int:
        """The bits of ``codes`` (given one the first time it is seen)."""
        mask = 0
        for code in codes:
            mask |= 1 << self._code_bits.setdefault(str(code), len(self._code_bits))
        return mask

    def _word_gate(self, entry: _Entry) -> int | None:
        """The country codes (bits) of which one must be in the article for the phrases
        and names of a text word to matter (``_code_gates``); None: they always may."""
        wids, _, people = entry
        gate: int | None = 0
        for wid in wids:
            gate = _widened(gate, self._word_gates[wid])
        for variant, _ in people:
            gate = _widened(gate, self._name_codes[variant])
        return gate

    # ------------------------------------------------------------------ scanning
    def _learn(self, new: set[str], text: set[str]) -> None:
        """Cache the entries of words not seen before (``new``, among the words of the
        ``text`` being scanned), in one C-level update. Most words hit nothing: a word is
        looked up in full only when it is in the word or place index, not ASCII (Arabic
        forms), starts with a rule's prefix or shares a block with a name."""
        entries, hot, cold = self._entries, self._hot, self._cold
        if len(entries) + len(cold) + len(new) > self._word_cache:
            entries.clear()  # bounded memory on endless streams of new words
            hot.clear()
            cold.clear()
            self._place_words.clear()
            new = text  # the words of the text seen before are gone too
        direct, blocks = self._direct, self._blocks.keys()
        prefixes = self._prefix_index
        found = {}
        for key in new:
            near = blocks & _neighbourhood(key)
            if near or key in direct or prefixes or not key.isascii():
                entry = self._entry(key, near)
                if entry is not _NOTHING:
                    found[key] = entry
        cold.update(new.difference(found))
        entries.update(found)
        hot.update((key, self._word_gate(entry)) for key, entry in found.items())
        self._place_words.update(key for key, entry in found.items() if entry[1])

    def _entry(self, key: str, near: set[str]) -> _Entry:
        """Everything one text word can hit; ``near``: the name blocks it falls in."""
        keys = (key, *arabic_alternatives(key)) if not key.isascii() else (key,)
        wids: list[int] = []
        places: list[_Place] = []
        for k in keys:
            wids.extend(self._word_index.get(k, ()))
            places.extend(self._places.get(k, ()))
        for length, bucket in self._prefix_index.items():
            if len(key) >= length:
                wids.extend(bucket.get(key[:length], ()))
        people: set[tuple[int, int]] = set()
        for block in near:
            people.update(self._blocks[block])
        if not (wids or places or people):
            return _NOTHING
        places.sort(key=lambda p: -len(p.keys))
        return tuple(wids), tuple(places), tuple(sorted(people))

    def _hot_words(self, tokens: Tokens) -> set[str]:
        """The distinct words of a text that hit something (words never seen are learned
        first): most words hit nothing, and this takes C-level set operations."""
        distinct = set(tokens.keys)
        unknown = distinct.difference(self._cold)
        new = unknown.difference(self._entries)
        if new:
            self._learn(new, distinct)  # (a word cold before is cold again if the cache clears)
        return unknown & self._hot.keys()

    @staticmethod
    def _where(keys: tuple[str, ...], words: set[str]) -> dict[str, list[int]]:
        """The positions of each of ``words`` in ``keys``: a loop over those words'
        positions only, found in C."""
        where: dict[str, list[int]] = {key: [] for key in words}
        for i in compress(range(len(keys)), map(words.__contains__, keys)):
            where[keys[i]].append(i)
        return where

    def _scan_places(self, name: Field, tokens: Tokens, hot: set[str], hits: _Hits) -> None:
        words = hot & self._place_words
        if not words:
            return
        entries = self._entries
        starts = [(i, entries[key][1]) for key, at in self._where(tokens.keys, words).items()
                  for i in at]
        starts.sort(key=itemgetter(0))
        self._find_places(name, tokens, starts, hits)

    def _scan_words(
        self, name: Field, tokens: Tokens, hot: set[str], codes: int, hits: _Hits
    ) -> _NameWords:
        """Find the phrases of one field and return its words that fall in name blocks,
        looking only at the words whose phrases or names some rule can still need given
        the countries found in the article (``_word_gate``; two hot words in three are
        left out on real articles, and the rules that can hold see the same hits)."""
        gates = self._hot
        wanted = {key for key in hot if (gate := gates[key]) is None or gate & codes}
        if not wanted:
            return []
        entries = self._entries
        positions: dict[int, list[int]] = {}
        names: _NameWords = []
        for key, at in self._where(tokens.keys, wanted).items():
            wids, _, people = entries[key]
            for wid in wids:
                known = positions.get(wid)
                # a word id reached from two text words (accord, accords): merge in order
                positions[wid] = at if known is None else sorted(known + at)
            if people:
                names.append((at, people))
        if positions:
            self._find_phrases(name, tokens, positions, hits)
        return names

    def _scan_people(self, fields: list[tuple[Field, Tokens, _NameWords]], hits: _Hits) -> None:
        """Score the name candidates of every field, except those of people no rule can
        need: every rule naming them misses a clause that no person satisfies (its
        countries, most often) given the places and phrases found (``_name_gates``). Three
        candidates in four are left out on real articles; the rules that remain see the
        same hits."""
        found: set[_Key] = {*hits.by_code, *hits.phrases}
        gates = self._gates
        wanted: dict[int, bool] = {}  # variant → whether its person can matter
        for name, tokens, words in fields:
            candidates: set[tuple[int, int]] = set()
            for at, people in words:
                for variant, offset in people:
                    want = wanted.get(variant)
                    if want is None:
                        gate = gates[variant]
                        want = wanted[variant] = gate is None or not gate.isdisjoint(found)
                    if want:
                        candidates.update((i - offset, variant) for i in at)
            if candidates:
                self._find_people(name, tokens, candidates, hits)

    def _find_phrases(
        self, name: Field, tokens: Tokens, positions: dict[int, list[int]], hits: _Hits
    ) -> None:
        present = set(positions)
        singles, seconds, by_pair = self._single_phrases, self._seconds, self._phrases_by_pair
        phrases = self._phrases
        found = hits.phrases
        for wid in present & singles.keys():
            where = positions[wid][0]
            for pid in singles[wid]:
                found.setdefault(pid, {})[name] = (where, where)
        sentences = tokens.sentences
        for first in present & seconds.keys():
            starts = positions[first]
            for second in seconds[first] & present:
                pairs: dict[int, tuple[int, int] | None] = {}  # gap → span of the two words
                for pid in by_pair[first, second]:
                    phrase = phrases[pid]
                    if len(phrase.words) == 2:
                        gap = 1 if phrase.exact else phrase.near + 1
                        if gap in pairs:
                            span = pairs[gap]
                        else:
                            span = pairs[gap] = _locate_pair(starts, positions[second], gap,
                                                             sentences)
                    elif phrase.word_set <= present:
                        span = _locate(phrase, positions, sentences)
                    else:
                        continue
                    if span is not None:
                        found.setdefault(pid, {})[name] = span

    def _find_places(
        self, name: Field, tokens: Tokens, starts: list[tuple[int, tuple[_Place, ...]]],
        hits: _Hits,
    ) -> None:
        covered = -1
        for i, candidates in starts:
            if i <= covered:
                continue  # inside a longer name already taken
            best: _Place | None = None
            for place in candidates:
                if (best is None or len(place.keys) > len(best.keys)) and _place_at(
                    place, tokens, i
                ):
                    best = place
            if best is not None:
                last = i + len(best.keys) - 1
                hit = (best, name, i, last)
                hits.countries.append(hit)
                for code in best.codes:
                    hits.by_code.setdefault(code, []).append(hit)
                covered = last

    def _find_people(
        self, name: Field, tokens: Tokens, candidates: set[tuple[int, int]], hits: _Hits
    ) -> None:
        """Score each candidate (start, variant) window; at one start, the first variant of
        a person that matches (its name before its aliases) gives the score."""
        keys = tokens.keys
        windows: dict[tuple[int, int], str] = {}  # (start, words) → the words joined
        variants, persons = self._variants, self._persons
        taken: set[tuple[int, int]] = set()  # (person, start) already found
        for start, variant_id in sorted(candidates):
            variant = variants[variant_id]
            size = len(variant.keys)
            if start < 0 or start + size > len(keys) or (variant.person, start) in taken:
                continue
            window = windows.get((start, size))
            if window is None:
                window = windows[start, size] = " ".join(keys[start : start + size])
            person = persons[variant.person]
            score = fuzz.ratio(window, variant.joined, score_cutoff=person.min_score)
            if score >= person.min_score:
                taken.add((variant.person, start))
                hits.people.setdefault(variant.person, []).append(
                    (name, start, start + size - 1, float(score)))

    # ------------------------------------------------------------------ evaluation
    def match(
        self,
        article: Article,
        *,
        only: str | None = None,
        ignore_feed_filter: bool = False,
    ) -> list[RuleMatch]:
        """Every rule the article satisfies, in rule-set order, each with its evidence.

        ``only`` restricts evaluation to one rule id; ``ignore_feed_filter`` is for rule
        examples, which have no feed.
        """
        fields: dict[Field, Tokens] = {}
        hot: dict[Field, set[str]] = {}
        hits = _Hits()
        for name in FIELDS:
            text = article.text(name)
            if text:
                fields[name] = tokens = tokenize(text)
                hot[name] = self._hot_words(tokens)
        # Places first, in every field: the countries found tell which phrases and names
        # can still matter (most rules need a country).
        for name, tokens in fields.items():
            self._scan_places(name, tokens, hot[name], hits)
        bits = self._code_bits
        codes = self._code_mask(code for code in hits.by_code if code in bits)
        names: list[tuple[Field, Tokens, _NameWords]] = []
        for name, tokens in fields.items():
            found = self._scan_words(name, tokens, hot[name], codes, hits)
            if found:
                names.append((name, tokens, found))
        if names:
            self._scan_people(names, hits)

        candidates: set[int] = set(self._always)
        for pid in hits.phrases:
            candidates |= self._rules_by_phrase.get(pid, set())
        for code in hits.by_code:
            candidates |= self._rules_by_code.get(code, set())
        for person_id in hits.people:
            candidates |= self._rules_by_person.get(person_id, set())

        # only rules for which every clause they need has a hit in the article
        hit: set[_Key] = {*hits.phrases, *hits.by_code, *(~p for p in hits.people)}
        required = self._required
        possible = [i for i in candidates if not any(map(hit.isdisjoint, required[i]))]
        language: list[str | None] = []  # detected lazily, once
        results = []
        for index in sorted(possible):
            rule = self.rules[index]
            if only is not None and rule.id != only:
                continue
            if rule.feeds is not None and not ignore_feed_filter and article.feed not in rule.feeds:
                continue
            if rule.languages is not None:
                if not language:
                    language.append(article.language or detect_language(article))
                if language[0] not in rule.languages:
                    continue
            evidence = self._evaluate(index, rule, fields, hits)
            if evidence is not None:
                results.append(RuleMatch(rule, tuple(evidence)))
        return results

    def _evaluate(
        self, index: int, rule: Rule, fields: dict[Field, Tokens], hits: _Hits
    ) -> list[Evidence] | None:
        view = _RuleView(self, index, rule, fields, hits)
        if any(view.has_phrase(text) for text in rule.exclude):
            return None
        # One pass that collects evidence: the rules that reach here passed the
        # requirements check, and most of them hold (evidence is built once per article).
        evidence: list[Evidence] = []
        return evidence if view.holds(rule.condition, evidence) else None


def _locate(
    phrase: _Phrase, positions: dict[int, list[int]], sentences: Sequence[int]
) -> tuple[int, int] | None:
    """First (start, end) token span where the phrase's words occur in order, each within
    ``near`` words of the previous one (adjacent for exact phrases), in one sentence."""
    words = phrase.words
    gap = 1 if phrase.exact else phrase.near + 1

    def extend(k: int, previous: int) -> int | None:
        if k == len(words):
            return previous
        for p in positions[words[k]]:
            if p <= previous:
                continue
            if p - previous > gap:
                break
            if sentences[p] != sentences[previous]:
                break
            end = extend(k + 1, p)
            if end is not None:
                return end
        return None

    for start in positions[words[0]]:
        end = extend(1, start)
        if end is not None:
            return start, end
    return None


def _locate_pair(
    starts: list[int], ends: list[int], gap: int, sentences: Sequence[int]
) -> tuple[int, int] | None:
    """``_locate`` for a two-word phrase: for each start in order, only the first later
    occurrence of the second word can do (a later one is further away)."""
    for start in starts:
        j = bisect_right(ends, start)
        if j == len(ends):
            return None  # no second word after this start, nor after any later one
        end = ends[j]
        if end - start <= gap and sentences[end] == sentences[start]:
            return start, end
    return None


def _place_at(place: _Place, tokens: Tokens, i: int) -> bool:
    keys = tokens.keys
    if i + len(place.keys) > len(keys):
        return False
    for j, want in enumerate(place.keys):
        key = keys[i + j]
        if key != want and want not in arabic_alternatives(key):
            return False
        if place.surfaces is not None and cased(tokens.surface(i + j)) != place.surfaces[j]:
            return False
    return True


class _RuleView:
    """One rule's view of an article's hits: only its fields, near and capitals."""

    def __init__(
        self, matcher: Matcher, index: int, rule: Rule, fields: dict[Field, Tokens], hits: _Hits
    ) -> None:
        self.matcher = matcher
        self.index = index
        self.rule = rule
        self.fields = fields
        self.hits = hits
        self.all_fields = len(rule.fields) == len(FIELDS)

    # ------------------------------------------------------------------ yes/no
    def has_phrase(self, text: str) -> bool:
        found = self.hits.phrases.get(self.matcher._rule_phrases[self.index][text])
        if not found:
            return False
        return self.all_fields or any(f in found for f in self.rule.fields)

    def has_country(self, code: str) -> bool:
        for place, name, _, _ in self.hits.by_code.get(code, ()):
            if (self.all_fields or name in self.rule.fields) and (
                self.rule.capitals or not place.capital
            ):
                return True
        return False

    def has_person(self, person: Person) -> bool:
        found = self.hits.people.get(self.matcher._rule_people[self.index][person])
        if not found:
            return False
        return self.all_fields or any(h[0] in self.rule.fields for h in found)

    # ------------------------------------------------------------------ evidence
    def _evidence(self, clause: Clause, term: str, name: Field, first: int, last: int,
                  score: float | None = None) -> Evidence:
        tokens = self.fields[name]
        start, end = tokens.span(first)[0], tokens.span(last)[1]
        return Evidence(
            clause=clause,
            term=term,
            field=name,
            start=start,
            end=end,
            text=tokens.text[start:end],
            matched=" ".join(tokens.keys[first : last + 1]),
            score=score,
        )

    def _keep(self, key: tuple[object, ...], evidence: list[Evidence]) -> list[Evidence]:
        """Store ``evidence`` for the rest of the article: rules asking the same question
        (same clause, item, fields and capitals) share it (looked up in ``hits.spans``)."""
        self.hits.spans[key] = evidence
        return evidence

    def phrase_spans(self, text: str) -> list[Evidence]:
        pid = self.matcher._rule_phrases[self.index][text]
        key = ("phrase", pid, self.rule.fields)
        out = self.hits.spans.get(key)
        return out if out is not None else self._keep(key, self._phrase_spans(text, pid))

    def _phrase_spans(self, text: str, pid: int) -> list[Evidence]:
        found = self.hits.phrases.get(pid, {})
        return [
            self._evidence("phrase", text, name, *found[name])
            for name in self.rule.fields
            if name in found
        ]

    def country_spans(self, code: str) -> list[Evidence]:
        key = ("country", code, self.rule.fields, self.rule.capitals)
        out = self.hits.spans.get(key)
        return out if out is not None else self._keep(key, self._country_spans(code))

    def _country_spans(self, code: str) -> list[Evidence]:
        out: list[Evidence] = []
        seen: set[str] = set()
        for place, name, first, last in self.hits.by_code.get(code, ()):
            if name not in self.rule.fields or (place.capital and not self.rule.capitals):
                continue
            surface = self.fields[name].span_text(first, last).casefold()
            if surface in seen:
                continue  # one piece of evidence per distinct wording
            seen.add(surface)
            out.append(self._evidence("country", code, name, first, last))
        return out

    def person_spans(self, person: Person) -> list[Evidence]:
        pid = self.matcher._rule_people[self.index][person]
        key = ("person", pid, self.rule.fields)
        out = self.hits.spans.get(key)
        return out if out is not None else self._keep(key, self._person_spans(person, pid))

    def _person_spans(self, person: Person, pid: int) -> list[Evidence]:
        found = [h for h in self.hits.people.get(pid, []) if h[0] in self.rule.fields]
        out = [self._evidence("person", person.name, n, f, lst, s) for n, f, lst, s in found]
        if out:
            out.extend(self._surnames(person, found))
        return out

    def _surnames(
        self, person: Person, full: list[tuple[Field, int, int, float]]
    ) -> Iterable[Evidence]:
        """The surname alone, counted only after the full name occurred earlier."""
        surname_keys = tokenize(person.name).keys
        if len(surname_keys) < 2:
            return []
        surname = surname_keys[-1]
        order: list[Field] = [f for f in FIELDS if f in self.fields]
        first_field, _, first_end, _ = min(full, key=lambda h: (order.index(h[0]), h[1]))
        covered = {(n, i) for n, f, lst, _ in full for i in range(f, lst + 1)}
        out = []
        for name in order[order.index(first_field) :]:
            if name not in self.rule.fields:
                continue
            begin = first_end + 1 if name == first_field else 0
            for i, score in self._close_to(surname, person.min_score, name):
                if i >= begin and (name, i) not in covered:
                    out.append(self._evidence("person", person.name, name, i, i, score))
        return out

    def _close_to(self, word: str, min_score: float, name: Field) -> list[tuple[int, float]]:
        """(position, score) of every word of the field whose ratio to ``word`` reaches
        ``min_score``: each distinct word scored once, in one rapidfuzz call."""
        key = (word, min_score, name)
        found = self.hits.surnames.get(key)
        if found is None:
            keys = self.fields[name].keys
            close = {
                choice: float(score)
                for choice, score, _ in process.extract(
                    word, set(keys), scorer=fuzz.ratio, score_cutoff=min_score, limit=None
                )
            }
            found = self.hits.surnames[key] = [
                (i, close[k]) for i, k in enumerate(keys) if k in close
            ] if close else []
        return found

    # ------------------------------------------------------------------ the tree
    @staticmethod
    def _group(
        group: Group[T],
        has: Callable[[T], bool],
        spans: Callable[[T], list[Evidence]],
        evidence: list[Evidence] | None,
    ) -> bool:
        """All of ``all`` and one of ``any``; with ``evidence``, collect every hit item."""
        if evidence is None:
            return all(has(i) for i in group.all) and (
                not group.any or any(has(i) for i in group.any)
            )
        found: list[Evidence] = []
        for item in group.all:
            got = spans(item)
            if not got:
                return False
            found.extend(got)
        if group.any:
            any_found = [e for item in group.any for e in spans(item)]
            if not any_found:
                return False
            found.extend(any_found)
        evidence.extend(found)
        return True

    def holds(self, condition: Condition, evidence: list[Evidence] | None) -> bool:
        """Whether the condition holds; when ``evidence`` is a list, also collect it."""
        if isinstance(condition, Countries):
            return self._group(condition.group, self.has_country, self.country_spans, evidence)
        if isinstance(condition, Phrases):
            return self._group(condition.group, self.has_phrase, self.phrase_spans, evidence)
        if isinstance(condition, People):
            return self._group(condition.group, self.has_person, self.person_spans, evidence)
        if isinstance(condition, AllOf):
            collected: list[Evidence] | None = None if evidence is None else []
            if all(self.holds(c, collected) for c in condition.children):
                if evidence is not None and collected is not None:
                    evidence.extend(collected)
                return True
            return False
        if isinstance(condition, AnyOf):
            matched = False
            for child in condition.children:
                matched = self.holds(child, evidence) or matched
                if matched and evidence is None:
                    return True
            return matched
        return not self.holds(condition.child, None)


def detect_language(article: Article) -> str | None:
    """Two-letter language of the article's text (py3langid, offline), None when empty."""
    text = " ".join(t for t in (article.title, article.summary, article.content[:2000],
                                article.body[:2000]) if t)
    if not text.strip():
        return None
    return _classify(text)


def _classify(text: str) -> str:
    # lazy: importing py3langid costs ~110 ms (python -X importtime) and its model ~0.5 s
    # on first use; commands that never detect a language (rules check, status) skip both
    import py3langid

    language, _ = py3langid.classify(text)
    return str(language)
