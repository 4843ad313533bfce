"""The matcher: a whole rule set compiled into one index, applied to articles.

Cost per article grows with the article, not with the number of rules: every rule word,
country name and person-name block is a key of a dict, each article word is looked up
once, and only the rules touched by a hit are evaluated. Phrase order, ``near`` and
sentence checks, and fuzzy name comparisons (rapidfuzz ``fuzz.ratio``), run only on
candidates found through the index.

The compiled parts are in ``newswatch.rules.compiled``, the evaluation of one rule over
an article's hits in ``newswatch.rules.evaluate``. Semantics are those of docs/rules.md,
the contract of the rule language.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter

from rapidfuzz import fuzz

from newswatch.core.article import FIELDS, Article, Field
from newswatch.rules.compiled import (
    ENTRY_CACHE_LIMIT,
    NOTHING,
    Anchor,
    CompiledPhrase,
    CompiledPlace,
    Entry,
    HitKey,
    Hits,
    NameVariant,
    NameWords,
    PersonHit,
    base_places,
    compile_place,
    neighbourhood,
    required_anchors,
    rule_anchors,
    split_phrase,
    widened,
    word_variants,
)
from newswatch.rules.evaluate import RuleView, locate, locate_pair, place_at
from newswatch.rules.evidence import Evidence
from newswatch.rules.gazetteer import PlaceName
from newswatch.rules.language import detect_language
from newswatch.rules.model import People, Person, Phrases, Rule, RuleSet, leaves
from newswatch.rules.text import Tokens, arabic_alternatives, tokenize
from newswatch.rules.transliterate import (
    MIN_ANCHOR,
    MIN_SKELETON_WORDS,
    NameGuard,
    Window,
    anchor_skeletons,
    first_keys,
    first_keys_of_forms,
    fused,
    is_article,
    joined,
    last_onset,
    latin_first_extra,
    latin_first_keys,
    latin_form,
    latin_script,
    name_onsets,
    name_parts,
    never_in_name,
    read_window,
    spelling_anchors,
    window_score,
    word_skeletons,
)

__all__ = ["Matcher", "RuleMatch", "detect_language"]


# The attributes of a Matcher that a pickle keeps: all but the per-word cache (``__init__``
# sets each; tests/test_rulecache.py checks that a pickled Matcher matches as the original).
_INDEX = (
    "ruleset", "_word_cache", "rules", "_word_ids", "_word_index", "_prefix_index",
    "_phrase_ids", "_phrases", "_single_phrases", "_phrases_by_pair", "_seconds",
    "_person_ids", "_persons", "_variants", "_blocks", "_last_words", "_last_arabic",
    "_last_latin", "_first_words", "_first_arabic", "_first_latin", "_places", "_rule_phrases",
    "_rule_people", "_rules_by_phrase", "_rules_by_code", "_rules_by_person", "_always",
    "_required", "_gates", "_code_bits", "_word_gates", "_name_codes", "_direct",
)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule matched an article, with the evidence of every satisfied clause."""

    rule: Rule
    evidence: tuple[Evidence, ...]


class Matcher:
    """A compiled rule set. Build once per rule set (``Matcher(ruleset)``), then call
    ``match(article)`` for each article; it is safe to share between tasks (no mutation)."""

    def __init__(self, ruleset: RuleSet, *, word_cache: int = ENTRY_CACHE_LIMIT,
                 compiled: Mapping[str, object] | None = None) -> None:
        """``word_cache``: how many distinct text words the per-word cache holds before it
        starts again (bounded memory on endless streams of new words). ``compiled``: the
        index of a pickled Matcher (``__reduce__``), taken as it is instead of compiling."""
        self.ruleset = ruleset
        self._word_cache = word_cache
        self.rules = ruleset.rules
        self._word_ids: dict[tuple[str, str], int] = {}
        self._word_index: dict[str, list[int]] = defaultdict(list)
        self._prefix_index: dict[int, dict[str, list[int]]] = {}  # length → prefix → ids
        self._phrase_ids: dict[tuple[str, int], int] = {}
        self._phrases: list[CompiledPhrase] = []
        # one-word phrases by their word; longer ones by their first two words, and the
        # second words that follow each first word (so an article's present words find
        # their phrases with one set intersection per first word)
        self._single_phrases: dict[int, list[int]] = defaultdict(list)
        self._phrases_by_pair: dict[tuple[int, int], list[int]] = defaultdict(list)
        self._seconds: dict[int, set[int]] = defaultdict(set)
        self._person_ids: dict[Person, int] = {}
        self._persons: list[Person] = []
        self._variants: list[NameVariant] = []
        self._blocks: dict[str, list[tuple[int, int]]] = defaultdict(list)
        # A name variant's last word → the variants, to find names written otherwise (issue
        # 20): by their skeleton in Arabic text, and in Latin text those written in Arabic;
        # by their letter blocks in Latin text those written in Latin
        self._last_words: dict[str, list[int]] = defaultdict(list)
        self._last_arabic: dict[str, list[int]] = defaultdict(list)
        self._last_latin: dict[str, list[int]] = defaultdict(list)
        self._first_words: dict[str, list[int]] = defaultdict(list)  # the same, first words
        self._first_arabic: dict[str, list[int]] = defaultdict(list)
        self._first_latin: dict[str, list[int]] = defaultdict(list)
        self._places: dict[str, list[CompiledPlace]] = defaultdict(list)
        # rule index → compiled ids it uses, and the reverse maps used to pick candidates
        self._rule_phrases: list[dict[str, int]] = []
        self._rule_people: list[dict[Person, int]] = []
        self._rules_by_phrase: dict[int, set[int]] = defaultdict(set)
        self._rules_by_code: dict[str, set[int]] = defaultdict(set)
        self._rules_by_person: dict[int, set[int]] = defaultdict(set)
        self._always: list[int] = []
        self._required: list[tuple[frozenset[HitKey], ...]] = []  # per rule: hit one of each
        # Per-word cache: the text words that hit something, with what they hit and their
        # gate (``_word_gate``), and those that hit nothing (most words: a set, for the one
        # look-up each costs in a large table)
        self._entries: dict[str, Entry] = {}
        # words that may only start a name written otherwise: kept apart from the hot words
        # (a common first name in Arabic text would make half the words hot)
        self._first_only: dict[str, frozenset[int]] = {}
        self._hot: dict[str, int | None] = {}
        self._cold: set[str] = set()
        self._place_words: set[str] = set()  # the words of _hot that start a place name
        if compiled is not None:
            for name in _INDEX:
                setattr(self, name, compiled[name])
            return
        self._compile()
        self._gates = self._name_gates()
        self._code_bits: dict[str, int] = {}  # country code → its bit in a gate
        self._word_gates, self._name_codes = self._code_gates()
        # the words an entry can come from directly (a word id or a place)
        self._direct: frozenset[str] = frozenset(self._word_index.keys() | self._places.keys())

    def __reduce__(self) -> tuple[Callable[[dict[str, object]], Matcher], tuple[object]]:
        """Pickled (streams/rulecache.py) as its compiled index, not the per-word cache
        filled while matching; attributes named one by one (``_INDEX``): compiled with
        mypyc (setup.py), a Matcher has no ``__dict__`` and unpickles through ``__init__``."""
        return _restored, ({name: getattr(self, name) for name in _INDEX},)

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
            for variant in word_variants(key):
                self._word_index[variant].append(wid)
        return wid

    def _phrase(self, text: str, near: int) -> int:
        ident = (text, near)
        pid = self._phrase_ids.get(ident)
        if pid is not None:
            return pid
        exact, words = split_phrase(text)
        wids = tuple(
            self._word(key, "prefix" if prefix else "exact" if exact else "plural")
            for key, prefix in words
        )
        pid = len(self._phrases)
        self._phrase_ids[ident] = pid
        self._phrases.append(CompiledPhrase(text, wids, near, exact, frozenset(wids)))
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
        names = [keys for name in (person.name, *person.aliases) if (keys := tokenize(name).keys)]
        # Written in a script, a person is read across scripts only into a script none of
        # its spellings is in: ops' own Arabic spelling (an alias) finds it in Arabic text.
        scripts = {latin_script(keys) for keys in names}
        for keys in names:
            in_latin = latin_script(keys)
            arabic_text = not in_latin or False not in scripts  # found in Arabic text
            latin_text = in_latin or True not in scripts  # found in Latin text
            variant = len(self._variants)
            parts = name_parts(keys)
            named = [k for i, k in enumerate(keys) if word_skeletons(k) and not is_article(
                k, keys[i + 1] if i + 1 < len(keys) else None)]
            first = named[0] if named else ""
            self._variants.append(NameVariant(
                pid, keys, " ".join(keys), joined(parts), len(parts), latin_form(keys),
                name_onsets(keys), first_keys(first) if first else frozenset(),
                latin_first_keys(first) if first.isascii() and first else frozenset()))
            for position, key in enumerate(keys):
                for block in neighbourhood(key):
                    self._blocks[block].append((variant, position))
            if len(parts) >= MIN_SKELETON_WORDS:  # written otherwise: found by its last word
                last = next(k for k in reversed(keys) if word_skeletons(k))
                found = self._variants[variant]
                for skeleton in anchor_skeletons(last):
                    if len(skeleton) >= MIN_ANCHOR:  # one consonant: too many words
                        if arabic_text:
                            self._last_words[skeleton].append(variant)
                        if latin_text and not in_latin:
                            self._last_arabic[skeleton].append(variant)
                for skeleton in found.first_keys:
                    if arabic_text:
                        self._first_words[skeleton].append(variant)
                    if latin_text and not in_latin:
                        self._first_arabic[skeleton].append(variant)
                if in_latin:
                    for block in spelling_anchors(last):
                        self._last_latin[block].append(variant)
                    for block in found.first_blocks:
                        self._first_latin[block].append(variant)
        return pid

    def _compile(self) -> None:
        places = list(base_places())
        for code, names in self.ruleset.aliases.items():
            for name in names:
                place = compile_place(PlaceName(name, (code,), "name", False, ""))
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
                for required in required_anchors(rule.condition)
            ))
            anchors = rule_anchors(rule.condition)
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
        anchor: Anchor, phrases: dict[str, int], people: dict[Person, int]
    ) -> HitKey:
        kind, item = anchor
        if kind == "code":
            return str(item)
        if kind == "phrase":
            return phrases[str(item)]
        assert isinstance(item, Person)
        return ~people[item]

    def _name_gates(self) -> list[frozenset[HitKey] | None]:
        """Per name variant, what must be hit for its person to matter: for each rule naming
        the person, the items of one clause it needs that no person can satisfy (a country
        code or phrase id: one of them must be in the article for the rule to hold); None
        when some rule naming the person needs no such clause (then it always matters)."""
        gates: list[set[HitKey] | None] = [set() for _ in self._persons]
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
                by_phrase[pid] = widened(by_phrase[pid], codes)
            for pid in self._rule_people[index].values():
                by_person[pid] = widened(by_person[pid], codes)
        by_word: list[int | None] = [0] * len(self._word_ids)
        for pid, phrase in enumerate(self._phrases):
            for wid in phrase.words:
                by_word[wid] = widened(by_word[wid], by_phrase[pid])
        return by_word, [by_person[variant.person] for variant in self._variants]

    def _code_mask(self, codes: Iterable[object]) -> int:
        """The bits of ``codes`` (given one the first time it is seen)."""
        mask = 0
        for code in codes:
            mask |= 1 << self._code_bits.setdefault(str(code), len(self._code_bits))
        return mask

    def _word_gate(self, entry: Entry) -> int | None:
        """The country codes (bits) of which one must be in the article for the phrases
        and names of a text word to matter (``_code_gates``); None: they always may."""
        wids, _, people, ends, starts = entry
        gate: int | None = 0
        for wid in wids:
            gate = widened(gate, self._word_gates[wid])
        for variant, _ in people:
            gate = widened(gate, self._name_codes[variant])
        for variant in (*ends, *starts):
            gate = widened(gate, self._name_codes[variant])
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
            self._first_only.clear()
            self._place_words.clear()
            new = text  # the words of the text seen before are gone too
        direct, blocks = self._direct, self._blocks.keys()
        prefixes = self._prefix_index
        last_latin, last_arabic = self._last_latin.keys(), self._last_arabic.keys()
        first_latin, first_arabic = self._first_latin.keys(), self._first_arabic.keys()
        found = {}
        for key in new:
            around = neighbourhood(key)
            near = blocks & around
            ending = last_latin & (spelling_anchors(key) if fused(key) else around)
            starting = (first_latin & (around | latin_first_extra(key))) if key.isascii() \
                else set()
            if (near or ending or starting or key in direct or prefixes or not key.isascii()
                    or (last_arabic and not last_arabic.isdisjoint(anchor_skeletons(key)))
                    or (first_arabic and not first_arabic.isdisjoint(first_keys(key)))):
                entry = self._entry(key, near, ending, starting)
                if entry[:4] != NOTHING[:4]:
                    found[key] = entry
                elif entry[4]:
                    self._first_only[key] = entry[4]
        cold.update(new.difference(found))
        entries.update(found)
        hot.update((key, self._word_gate(entry)) for key, entry in found.items())
        self._place_words.update(key for key, entry in found.items() if entry[1])

    def _entry(self, key: str, near: set[str], ending: set[str], starting: set[str]
               ) -> Entry:
        """Everything one text word can hit; ``near``: the name blocks it falls in;
        ``ending``, ``starting``: the keys of names' last and first words in Latin script
        it meets (``spelling_anchors``, ``latin_first_keys``)."""
        keys = (key, *arabic_alternatives(key)) if not key.isascii() else (key,)
        wids: list[int] = []
        places: list[CompiledPlace] = []
        for k in keys:
            wids.extend(self._word_index.get(k, ()))
            places.extend(self._places.get(k, ()))
        for length, bucket in self._prefix_index.items():
            if len(key) >= length:
                wids.extend(bucket.get(key[:length], ()))
        people: set[tuple[int, int]] = set()
        for block in near:
            people.update(self._blocks[block])
        ends: set[int] = set()
        starts: set[int] = set()
        if not key.isascii():
            if not never_in_name(key):
                for k in keys:
                    for skeleton in anchor_skeletons(k):
                        ends.update(self._last_words.get(skeleton, ()))
                for skeleton in first_keys_of_forms(key):
                    starts.update(self._first_words.get(skeleton, ()))
        elif self._last_words:
            for block in ending:
                ends.update(self._last_latin[block])
            for block in starting:
                starts.update(self._first_latin[block])
            if self._last_arabic:
                for skeleton in anchor_skeletons(key):
                    ends.update(self._last_arabic.get(skeleton, ()))
                for skeleton in first_keys(key):
                    starts.update(self._first_arabic.get(skeleton, ()))
        if not (wids or places or people or ends or starts):
            return NOTHING
        places.sort(key=lambda p: -len(p.keys))
        return (tuple(wids), tuple(places), tuple(sorted(people)), tuple(sorted(ends)),
                frozenset(starts))

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

    def _scan_places(self, name: Field, tokens: Tokens, hot: set[str], hits: Hits) -> None:
        words = hot & self._place_words
        if not words:
            return
        entries = self._entries
        starts = [(i, entries[key][1]) for key, at in self._where(tokens.keys, words).items()
                  for i in at]
        starts.sort(key=itemgetter(0))
        self._find_places(name, tokens, starts, hits)

    def _scan_words(
        self, name: Field, tokens: Tokens, hot: set[str], codes: int, hits: Hits
    ) -> NameWords:
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
        names: NameWords = []
        for key, at in self._where(tokens.keys, wanted).items():
            wids, _, people, ends, starts = entries[key]
            for wid in wids:
                known = positions.get(wid)
                # a word id reached from two text words (accord, accords): merge in order
                positions[wid] = at if known is None else sorted(known + at)
            if people or ends or starts:
                names.append((at, people, ends, starts))
        if positions:
            self._find_phrases(name, tokens, positions, hits)
        return names

    def _scan_people(self, fields: list[tuple[Field, Tokens, NameWords]], hits: Hits) -> None:
        """Score the name candidates of every field, except those of people no rule can
        need: every rule naming them misses a clause that no person satisfies (its
        countries, most often) given the places and phrases found (``_name_gates``). Three
        candidates in four are left out on real articles; the rules that remain see the
        same hits."""
        found: set[HitKey] = {*hits.by_code, *hits.phrases}
        gates = self._gates
        wanted: dict[int, bool] = {}  # variant → whether its person can matter
        def wants(variant: int) -> bool:
            want = wanted.get(variant)
            if want is None:
                gate = gates[variant]
                want = wanted[variant] = gate is None or not gate.isdisjoint(found)
            return want

        variants = self._variants
        for name, tokens, words in fields:
            candidates: set[tuple[int, int]] = set()
            ends: list[tuple[list[int], list[int]]] = []  # (positions, variants) ending there
            names = NameGuard(tokens)
            for at, people, last, _ in words:
                for variant, offset in people:
                    if wants(variant):
                        candidates.update((i - offset, variant) for i in at)
                if not last:
                    continue
                word = tokens.keys[at[0]]
                if word.isascii():
                    live = [v for v in last if wants(v)]
                else:  # read across scripts, a name ends at a word that starts alike
                    onsets = last_onset(word)
                    live = [v for v in last
                            if not onsets.isdisjoint(variants[v].onsets[1]) and wants(v)]
                if live:
                    ends.append((at, live))
            if candidates:
                self._find_people(name, tokens, candidates, hits, names)
            if ends:
                windows = self._windows(tokens, ends)
                if windows:
                    self._find_transliterated(name, tokens, windows, hits, names)

    def _windows(self, tokens: Tokens, ends: list[tuple[list[int], list[int]]]
                 ) -> dict[tuple[int, int], list[int]]:
        """(last word, variant) → the positions before it, within the variant's reach,
        of the words that may be its first word."""
        keys, entries, first_only = tokens.keys, self._entries, self._first_only
        variants = self._variants
        firsts: dict[int, frozenset[int]] = {}  # position → variants it may start
        windows: dict[tuple[int, int], list[int]] = {}
        for at, live in ends:
            reach = max(variants[v].words for v in live) + 1
            for end in at:
                before = []
                for p in range(max(0, end - reach), end):
                    found = firsts.get(p)
                    if found is None:
                        found = firsts[p] = (first_only.get(keys[p])
                                             or entries.get(keys[p], NOTHING)[4])
                    if found:
                        before.append((p, found))
                if not before:
                    continue
                for v in live:
                    low = end - variants[v].words - 1
                    found_at = [p for p, found in before if p >= low and v in found]
                    if found_at:
                        windows[end, v] = found_at
        return windows

    def _find_phrases(
        self, name: Field, tokens: Tokens, positions: dict[int, list[int]], hits: Hits
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
                            span = pairs[gap] = locate_pair(starts, positions[second], gap,
                                                             sentences)
                    elif phrase.word_set <= present:
                        span = locate(phrase, positions, sentences)
                    else:
                        continue
                    if span is not None:
                        found.setdefault(pid, {})[name] = span

    def _find_places(
        self, name: Field, tokens: Tokens, starts: list[tuple[int, tuple[CompiledPlace, ...]]],
        hits: Hits,
    ) -> None:
        covered = -1
        for i, candidates in starts:
            if i <= covered:
                continue  # inside a longer name already taken
            best: CompiledPlace | None = None
            for place in candidates:
                if (best is None or len(place.keys) > len(best.keys)) and place_at(
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
        self, name: Field, tokens: Tokens, candidates: set[tuple[int, int]], hits: Hits,
        names: NameGuard,
    ) -> None:
        """Score each candidate (start, variant) window; at one start, the first variant of
        a person that matches (its name before its aliases) gives the score. A window that
        does not look like a name where it stands (``NameGuard``) is passed over."""
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
            if score >= person.min_score and names.allows(start, start + size - 1):
                taken.add((variant.person, start))
                hits.people.setdefault(variant.person, []).append(
                    PersonHit(name, start, start + size - 1, float(score)))

    def _find_transliterated(
        self, name: Field, tokens: Tokens, windows: dict[tuple[int, int], list[int]],
        hits: Hits, names: NameGuard,
    ) -> None:
        """Score each candidate (last word, variant) across scripts and spellings: the
        windows from a word that may be its first word (``windows``: their positions) to
        that last word, of the variant's words and up to two more (articles, particles),
        compared by their skeletons or Latin forms (``newswatch.rules.transliterate``);
        the best one that looks like a name counts, unless the spelling found the person
        there already."""
        keys = tokens.keys
        variants, persons = self._variants, self._persons
        read: dict[tuple[int, int], Window] = {}
        for (end, variant_id), starts in sorted(windows.items()):
            variant = variants[variant_id]
            person = persons[variant.person]
            known = hits.people.get(variant.person, ())
            if any(h.field == name and h.first <= end <= h.last for h in known):
                continue
            best: tuple[float, int, str] | None = None
            for start in starts:
                if not names.allows(start, start) or not names.allows(end, end):
                    continue  # in capitals, where the text is written in both cases
                window = read.get((start, end))
                if window is None:
                    window = read[start, end] = read_window(keys[start : end + 1])
                score, how = window_score(window, variant, person.min_score)
                if score and (best is None or score > best[0]) and names.allows(
                        start, end) and not (how == "transliterated"
                                             and names.no_name(start, end)):
                    best = (score, start, how)
            if best is not None:
                hits.people.setdefault(variant.person, []).append(
                    PersonHit(name, best[1], end, best[0], best[2]))

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
        hits = Hits()
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
        names: list[tuple[Field, Tokens, NameWords]] = []
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
        hit: set[HitKey] = {*hits.phrases, *hits.by_code, *(~p for p in hits.people)}
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
        self, index: int, rule: Rule, fields: dict[Field, Tokens], hits: Hits
    ) -> list[Evidence] | None:
        view = RuleView(rule, fields, hits, phrase_ids=self._rule_phrases[index],
                        person_ids=self._rule_people[index])
        if any(view.has_phrase(text) for text in rule.exclude):
            return None
        # One pass that collects evidence: the rules that reach here passed the
        # requirements check, and most of them hold (evidence is built once per article).
        evidence: list[Evidence] = []
        return evidence if view.holds(rule.condition, evidence) else None



def _restored(index: dict[str, object]) -> Matcher:
    """A Matcher from the index ``Matcher.__reduce__`` pickled."""
    ruleset = index["ruleset"]
    assert isinstance(ruleset, RuleSet)
    return Matcher(ruleset, compiled=index)  # the index holds its word_cache too
