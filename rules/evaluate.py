"""Evaluating one rule over one article's hits: phrase spans located in order within
``near`` and one sentence, places checked at a position, and ``RuleView``, which says
whether a rule's condition tree holds and collects its evidence, pointing into the text.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from rapidfuzz import fuzz, process

from newswatch.core.article import FIELDS, Field
from newswatch.rules.compiled import CompiledPhrase, CompiledPlace, Hits, PersonHit
from newswatch.rules.evidence import Clause, Evidence
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
)
from newswatch.rules.text import Tokens, arabic_alternatives, cased, tokenize

T = TypeVar("T")


def locate(
    phrase: CompiledPhrase, positions: dict[int, list[int]], sentences: Sequence[int]
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


def locate_pair(
    starts: list[int], ends: list[int], gap: int, sentences: Sequence[int]
) -> tuple[int, int] | None:
    """``locate`` for a two-word phrase: for each start in order, only the first later
    occurrence of the second word can do (a later one is further away)."""
    for start in starts:
        j = bisect_right(ends, start)
        if j == len(ends):
            return None  # no second word after this start, nor after any later one
        end = ends[j]
        if end - start <= gap and sentences[end] == sentences[start]:
            return start, end
    return None


def place_at(place: CompiledPlace, tokens: Tokens, i: int) -> bool:
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


class RuleView:
    """One rule's view of an article's hits: only its fields, near and capitals."""

    def __init__(
        self, rule: Rule, fields: dict[Field, Tokens], hits: Hits, *,
        phrase_ids: Mapping[str, int], person_ids: Mapping[Person, int],
    ) -> None:
        self.phrase_ids = phrase_ids
        self.person_ids = person_ids
        self.rule = rule
        self.fields = fields
        self.hits = hits
        self.all_fields = len(rule.fields) == len(FIELDS)

    # ------------------------------------------------------------------ yes/no
    def has_phrase(self, text: str) -> bool:
        found = self.hits.phrases.get(self.phrase_ids[text])
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
        found = self.hits.people.get(self.person_ids[person])
        if not found:
            return False
        return self.all_fields or any(h.field in self.rule.fields for h in found)

    # ------------------------------------------------------------------ evidence
    def _evidence(self, clause: Clause, term: str, name: Field, first: int, last: int,
                  score: float | None = None, how: str | None = None) -> Evidence:
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
            how=how,
        )

    def _keep(self, key: tuple[object, ...], evidence: list[Evidence]) -> list[Evidence]:
        """Store ``evidence`` for the rest of the article: rules asking the same question
        (same clause, item, fields and capitals) share it (looked up in ``hits.spans``)."""
        self.hits.spans[key] = evidence
        return evidence

    def phrase_spans(self, text: str) -> list[Evidence]:
        pid = self.phrase_ids[text]
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
        pid = self.person_ids[person]
        key = ("person", pid, self.rule.fields)
        out = self.hits.spans.get(key)
        return out if out is not None else self._keep(key, self._person_spans(person, pid))

    def _person_spans(self, person: Person, pid: int) -> list[Evidence]:
        found = [h for h in self.hits.people.get(pid, []) if h.field in self.rule.fields]
        out = [self._evidence("person", person.name, h.field, h.first, h.last, h.score,
                              h.how) for h in found]
        if out:
            out.extend(self._surnames(person, found))
        return out

    def _surnames(self, person: Person, full: list[PersonHit]) -> Iterable[Evidence]:
        """The surname alone, counted only after the full name occurred earlier."""
        surname_keys = tokenize(person.name).keys
        if len(surname_keys) < 2:
            return []
        surname = surname_keys[-1]
        order: list[Field] = [f for f in FIELDS if f in self.fields]
        first = min(full, key=lambda h: (order.index(h.field), h.first))
        first_field, first_end = first.field, first.last
        covered = {(h.field, i) for h in full for i in range(h.first, h.last + 1)}
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

