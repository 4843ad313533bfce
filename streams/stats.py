"""Per-rule statistics for ``newswatch rules stats`` (issue 18): volumes from the decisions
audit trail, analysts' feedback from the clicks on alert buttons, precision, and the words
over-represented in alerts marked "not relevant" (candidates for the rule's ``exclude``).
Pure: the records come in, a report goes out; reading them is the CLI's.

Counting (only records at or after the start of the span):

- from the decisions, each rule's decision rows themselves (not the rows a send adds
  later): ``matches`` distinct articles, ``alerts`` distinct stories sent as a new alert,
  ``replies`` thread replies (per receiver), ``digested`` matches put in a digest (per
  receiver), ``digests`` digest messages sent (distinct receiver and message), ``silenced``
  distinct articles stopped by a silence;
- from the feedback: a rating is each analyst's newest Useful / Not relevant click on one
  alert (a second click changes that analyst's rating instead of counting twice);
  ``muted`` counts the mute clicks. ``precision`` = useful / (useful + not relevant), None
  when nothing was rated;
- feeds: the feeds of the matched articles found in the archive.

Exclude candidates (:func:`exclude_candidates`). Each rated alert is one document: the
normalised words of its archived article (title, summary, content, body, tokenised by the
rules' own tokenizer, ``newswatch.rules.text.tokenize``) and the two-word phrases of
adjacent words, minus French, English and Arabic stop words, numbers, one-letter words and
the words the rule itself matched on (its evidence: excluding them would silence the rule).
For a term t in b of the B "not relevant" documents and g of the G "useful" ones, the score
is the smoothed log-odds ratio

    score(t) = ln((b + ½) / (B − b + ½)) − ln((g + ½) / (G − g + ½))

(½ added to every cell, so a term absent from one side still has a finite score). A term
is a candidate when it is in at least two "not relevant" documents (or in the only one),
in a larger share of them than of the useful ones, and its score is positive; best score
first, then more "not relevant" documents. A phrase is kept only when it scores above both
its words (else the word alone is the simpler exclude).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from newswatch.core.article import FIELDS, Article
from newswatch.core.feedback import FeedbackRecord
from newswatch.core.state import Decision
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import Rule
from newswatch.rules.text import tokenize

__all__ = ["Candidate", "RuleStats", "StatsReport", "alert_terms", "exclude_candidates",
           "rule_stats", "stop_words"]

SMOOTHING = 0.5
CANDIDATES = 5  # suggested excludes shown per rule
_DECIDED = frozenset({"pending", "digest", "counted", "skipped"})  # see streams/backtest.py
_RATINGS = frozenset({"useful", "not_relevant"})
_MUTES = frozenset({"mute_story", "mute_rule"})

_STOP_FR = """
a au aux avec ce ces cet cette dans de des du elle elles en et eux il ils je la le les leur
leurs lui ma mais me meme mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se
ses son sur ta te tes toi ton tu un une vos votre vous y ete etait sont est ont a avait
apres avant aussi comme donc dont entre encore ici la lors plus sans selon sous tres tout
tous toute toutes fait faire peut deux trois cela celui celle ceux si non oui ainsi alors
depuis vers chez contre pendant bien deja ni car quand"""
_STOP_EN = """
a an and are as at be been but by for from had has have he her his i in into is it its
not of on or our she that the their them they this to was we were will with you your
which who whom what when where why how than then there these those also after before
about over under more most such can could would should may might do does did said says
new one two three all any some no yes just very so if out up down while"""
_STOP_AR = """
في من على الى إلى عن مع هذا هذه ذلك تلك التي الذي الذين ان أن إن كان كانت قد لا ما لم لن
هو هي هم بين بعد قبل حتى او أو ثم كل عند غير منذ خلال حول ضد لدى عبر وقال قال"""


def stop_words() -> frozenset[str]:
    """The stop words of French, English and Arabic, as the tokenizer's keys (so that
    ``été`` and ``إلى`` compare equal to the words of a text)."""
    return frozenset(key for text in (_STOP_FR, _STOP_EN, _STOP_AR)
                     for key in tokenize(text).keys)


_STOP = stop_words()


def _content_word(key: str) -> bool:
    return len(key) > 1 and not key.isdigit() and key not in _STOP


def alert_terms(article: Article, own: frozenset[str] = frozenset()) -> frozenset[str]:
    """The words and two-word phrases of ``article`` that may be suggested as an exclude:
    content words (no stop word, number or single letter) not in ``own`` (the rule's
    words), and pairs of adjacent such words in the same sentence."""
    terms: set[str] = set()
    for name in FIELDS:
        text = article.text(name)
        if not text:
            continue
        tokens = tokenize(text)
        keys = tokens.keys
        good = [_content_word(k) and k not in own for k in keys]
        terms.update(k for k, ok in zip(keys, good, strict=True) if ok)
        for i, j in pairwise(range(len(keys))):
            if good[i] and good[j] and tokens.sentences[i] == tokens.sentences[j]:
                terms.add(f"{keys[i]} {keys[j]}")
    return frozenset(terms)


def own_words(matcher: Matcher, article: Article, rule_id: str) -> frozenset[str]:
    """The normalised words ``rule_id`` matched in ``article`` (its evidence)."""
    words: set[str] = set()
    for found in matcher.match(article, only=rule_id, ignore_feed_filter=True):
        for evidence in found.evidence:
            words.update(tokenize(evidence.text).keys)
            words.update(tokenize(evidence.matched).keys)
    return frozenset(words)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A suggested exclude: in ``not_relevant`` of the "not relevant" alerts and ``useful``
    of the useful ones; ``score`` the smoothed log-odds ratio (module docstring)."""

    term: str
    not_relevant: int
    useful: int
    score: float


def _score(b: int, big_b: int, g: int, big_g: int) -> float:
    s = SMOOTHING
    return (math.log((b + s) / (big_b - b + s)) - math.log((g + s) / (big_g - g + s)))


def exclude_candidates(bad: Sequence[frozenset[str]], good: Sequence[frozenset[str]],
                       limit: int = CANDIDATES) -> list[Candidate]:
    """The terms most over-represented in the ``bad`` documents ("not relevant") compared
    with the ``good`` ones ("useful"), best first (module docstring)."""
    if not bad:
        return []
    in_bad = Counter(t for doc in bad for t in doc)
    in_good = Counter(t for doc in good for t in doc)
    big_b, big_g = len(bad), len(good)
    least = min(2, big_b)
    scored: dict[str, Candidate] = {}
    for term, b in in_bad.items():
        g = in_good.get(term, 0)
        if b < least or b * max(big_g, 1) <= g * big_b:
            continue
        score = _score(b, big_b, g, big_g)
        if score > 0:
            scored[term] = Candidate(term, b, g, score)
    kept = [c for c in scored.values() if " " not in c.term
            or all(c.score > _word_score(w, scored, in_bad, in_good, big_b, big_g)
                   for w in c.term.split(" "))]
    kept.sort(key=lambda c: (-c.score, -c.not_relevant, c.term))
    return kept[:limit]


def _word_score(word: str, scored: Mapping[str, Candidate], in_bad: Mapping[str, int],
                in_good: Mapping[str, int], big_b: int, big_g: int) -> float:
    found = scored.get(word)
    if found is not None:
        return found.score
    return _score(in_bad.get(word, 0), big_b, in_good.get(word, 0), big_g)


@dataclass
class RuleStats:
    """One rule over the span (module docstring: how each count is made)."""

    rule_id: str
    title: str
    matches: int = 0
    alerts: int = 0
    replies: int = 0
    digested: int = 0
    digests: int = 0
    silenced: int = 0
    useful: int = 0
    not_relevant: int = 0
    muted: int = 0
    feeds: Counter[str] = field(default_factory=Counter)  # matched articles by feed
    excludes: list[Candidate] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        rated = self.useful + self.not_relevant
        return self.useful / rated if rated else None


@dataclass(frozen=True, slots=True)
class StatsReport:
    rules: list[RuleStats]  # configured rules, in configuration order

    @property
    def never_matched(self) -> list[str]:
        return [r.rule_id for r in self.rules if not r.matches]

    @property
    def one_feed(self) -> list[str]:
        return [r.rule_id for r in self.rules if len(r.feeds) == 1]


def _count_decisions(stats: Mapping[str, RuleStats], decisions: Iterable[Decision],
                     articles: Mapping[str, Article]) -> None:
    seen: dict[str, set[tuple[str, str]]] = {}
    for d in decisions:
        s = stats.get(d.rule_id)
        if s is None:
            continue  # a rule since removed
        if d.result.endswith(":digest"):
            seen.setdefault(d.rule_id, set()).add(("digest", f"{d.receiver}\x1f{d.ref}"))
        if d.result not in _DECIDED:
            continue
        once = seen.setdefault(d.rule_id, set())
        if ("match", d.article) not in once:
            once.add(("match", d.article))
            s.matches += 1
            article = articles.get(d.article)
            if article is not None:
                s.feeds[article.feed] += 1
        if d.verdict == "send" and d.result == "pending" and ("alert", str(d.story)) not in once:
            once.add(("alert", str(d.story)))
            s.alerts += 1
        elif d.verdict == "same_story" and d.result == "pending":
            s.replies += 1
        elif d.result == "digest":
            s.digested += 1
        elif d.verdict == "silenced" and ("silenced", d.article) not in once:
            once.add(("silenced", d.article))
            s.silenced += 1
    for rule_id, once in seen.items():
        stats[rule_id].digests = sum(kind == "digest" for kind, _ in once)


def _ratings(feedback: Iterable[FeedbackRecord]) -> dict[tuple[str, str, str], FeedbackRecord]:
    """Each analyst's newest rating of each alert: (user, rule, article) → the click."""
    newest: dict[tuple[str, str, str], FeedbackRecord] = {}
    for r in feedback:
        if r.action not in _RATINGS:
            continue
        key = (r.user_id, r.rule_id, r.article)
        if key not in newest or r.at >= newest[key].at:
            newest[key] = r
    return newest


def rule_stats(rules: Sequence[Rule], decisions: Iterable[Decision],
               feedback: Sequence[FeedbackRecord], articles: Mapping[str, Article],
               matcher: Matcher) -> StatsReport:
    """The report over the given records (already limited to the span). ``articles`` maps
    an article's id and key (its canonical URL) to the archived article; ``matcher`` holds
    ``rules`` and gives each rated article's evidence."""
    stats = {r.id: RuleStats(r.id, r.title) for r in rules}
    _count_decisions(stats, decisions, articles)
    for r in feedback:
        if r.action in _MUTES and r.rule_id in stats:
            stats[r.rule_id].muted += 1
    documents: dict[tuple[str, str], dict[str, frozenset[str]]] = {}  # (rule, label) → docs
    for rating in _ratings(feedback).values():
        s = stats.get(rating.rule_id)
        if s is None:
            continue
        if rating.action == "useful":
            s.useful += 1
        else:
            s.not_relevant += 1
        article = articles.get(rating.article)
        docs = documents.setdefault((rating.rule_id, rating.action), {})
        if article is not None and rating.article not in docs:
            own = own_words(matcher, article, rating.rule_id)
            docs[rating.article] = alert_terms(article, own)
    for s in stats.values():
        bad = list(documents.get((s.rule_id, "not_relevant"), {}).values())
        good = list(documents.get((s.rule_id, "useful"), {}).values())
        s.excludes = exclude_candidates(bad, good)
    return StatsReport([stats[r.id] for r in rules])
