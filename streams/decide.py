"""Dedup and noise decisions: pure functions from (rule state, match, time) to a verdict,
and the pure state transitions that record a decision (a new story, its outbox items, the
alert count, digest entries) or seal the due digests.

The rule state is a :class:`~newswatch.streams.rulestate.RuleState` (its JSON shape is
described in streams/rulestate.py); every transition returns a new one. The outbox holds
what still has to be sent (the durable *pending* record); an item leaves it when the
receiver accepted it (``sent``) or for the dead-letter store (streams/outbox.py).

Verdicts, each with a human reason:

- ``send``: a new story; alert the receiver.
- ``same_article``: this article (canonical URL or id) was already alerted for this rule.
- ``same_story``: a syndicated or lightly rewritten copy of a story inside the rule's
  window: title similarity (rapidfuzz ``token_set_ratio`` >= :data:`STORY_SIMILARITY`) or
  near-duplicate lead text (SimHash of word 3-shingles of the first :data:`LEAD_WORDS`
  normalised words, similarity >= :data:`LEAD_SIMILARITY`), or, for a version in another
  language (whose words cannot be compared), the same people and countries found as in
  the story's first article (at least :data:`MIN_ENTITIES`, one of them a person).
  Receivers that thread (Slack, console) get a reply under the first alert; the others
  (e-mail) get it in the next digest.
- ``throttled``: the receiver already had ``max_per_hour`` alerts of this rule in the last
  hour; the match waits for the next digest (sent every ``digest_interval``).
- ``silenced``: an active silence covers the match; nothing is sent or recorded but the
  audit line.

Escalation (a rule's ``escalate``): the decision that makes a story reach the rule's
threshold (distinct feeds and languages) also queues, once per story, a ``note`` in the
thread of each first alert that threads (and a re-render of that alert with an
"escalated" line) and an ``escalation`` alert for each of the policy's receivers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

from rapidfuzz import fuzz

from newswatch.rules.model import Escalation
from newswatch.rules.text import normalize
from newswatch.streams.alerts import Escalated, Match
from newswatch.streams.rulestate import (
    DigestDraft,
    DraftEntry,
    ItemKind,
    OutboxItem,
    Parent,
    RuleState,
    Story,
    VerdictKind,
    item_id,
    stable_hash,
)
from newswatch.streams.silences import Silence, silenced_by

STORY_SIMILARITY = 85.0
MIN_TITLE_WORDS = 4  # shorter titles ("Breaking news") say too little to call two stories one
LEAD_WORDS = 60  # the lead: first words of the summary (or content) after normalisation
MIN_LEAD_WORDS = 15  # fewer words make too few shingles to compare
LEAD_SIMILARITY = 0.8  # SimHash: 1 - differing bits / 64
SHINGLE = 3
HOUR = 3600.0
DIGEST_MAX_ENTRIES = 100  # beyond, a digest only counts ("and 12 more")
_KEEP_CONTENT = 1500  # characters of content kept after the last evidence in a story's match

MIN_ENTITIES = 2  # people and countries two versions of a story in two languages share

MAX_THREAD_REPLIES = 10  # replies under one story's alert; later sources only update its count

Action = Literal["alert", "reply", "update", "digest", "none"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str
    story: str | None = None  # id of the story the match starts or joins
    # a new story's lead SimHash (hex), computed once by ``identify``
    lead: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Route:
    """What one receiver gets for a match: a new ``alert``, a thread ``reply``, only an
    ``update`` of the first alert's source count, an entry in the next ``digest``, or
    ``none``; ``verdict`` is the receiver's verdict (``throttled`` where the story-level
    one was ``send``)."""

    receiver: str
    verdict: Verdict
    action: Action


# --------------------------------------------------------------------------- identity


def story_id(match: Match) -> str:
    """Stable id of the story a match starts: rule id + article key, hashed."""
    return stable_hash(match.rule_id, match.article.key)[:20]


@lru_cache(maxsize=1024)
def story_title(title: str) -> str:
    """An article title normalised for comparison with the stories' titles. Cached: every
    rule an article matches compares the same title (a pure function of the text)."""
    return normalize(title)


def lead_words(match: Match) -> list[str]:
    """The first :data:`LEAD_WORDS` normalised words of the summary, else the content."""
    article = match.article
    text = article.summary if article.summary.strip() else article.content
    return normalize(text[: LEAD_WORDS * 20]).split()[:LEAD_WORDS]


def simhash(words: Sequence[str]) -> int | None:
    """64-bit SimHash of the word 3-shingles; None for fewer than MIN_LEAD_WORDS words."""
    if len(words) < MIN_LEAD_WORDS:
        return None
    hashes = [hashlib.blake2b(" ".join(words[i: i + SHINGLE]).encode(), digest_size=8)
              .digest() for i in range(len(words) - SHINGLE + 1)]
    # A bit is set when more shingles have it than not. Counted per bit position over the
    # hashes written as 64 "0"/"1" characters (most significant first), in C: str.count
    # on each column instead of 64 Python steps per shingle.
    columns = zip(*(f"{int.from_bytes(h, 'big'):064b}" for h in hashes), strict=True)
    value = 0
    for column in columns:
        value = value << 1 | (2 * column.count("1") > len(hashes))
    return value


def lead_similarity(a: int, b: int) -> float:
    """Share of equal bits of two SimHashes (1.0 identical, ~0.5 unrelated)."""
    return 1.0 - (a ^ b).bit_count() / 64.0


def _lead_hex(match: Match) -> str | None:
    value = simhash(lead_words(match))
    return None if value is None else f"{value:016x}"


# --------------------------------------------------------------------------- verdicts


def prune(state: RuleState, *, now: float, window: float) -> RuleState:
    """Drop stories whose last sighting is older than ``window`` seconds and that nothing in
    the outbox still refers to, and alert times older than an hour; returns a new state."""
    busy = {item.story for item in state.outbox.values()}
    stories = tuple(s for s in state.stories if now - s.last <= window or s.id in busy)
    alerts = {r: tuple(t for t in times if now - t < HOUR) for r, times in state.alerts.items()}
    alerts = {r: t for r, t in alerts.items() if t}
    if len(stories) == len(state.stories) and alerts == state.alerts:
        return state  # nothing to drop (most calls): no new state to build
    return replace(state, stories=stories, alerts=alerts)


def identify(state: RuleState, match: Match) -> Verdict:
    """``same_article``, ``same_story`` or ``send`` for ``match`` given the rule's (pruned)
    state; the verdict names the story (existing or new)."""
    key = match.article.key
    for story in state.stories:
        if key in story.keys or match.article.id in story.ids:
            return Verdict("same_article", f"article already alerted at {story.first:.0f}",
                           story.id)
    best: tuple[float, str, Story] | None = None
    title = story_title(match.article.title)
    if len(title.split()) >= MIN_TITLE_WORDS:
        similar = _similar_title(title, state.stories)
        if similar is not None:
            best = (similar[0], f"title {similar[0]:.0f}% similar", similar[1])
    lead = simhash(lead_words(match)) if best is None else None
    if lead is not None:
        for story in state.stories:
            if not story.lead:
                continue
            similarity = lead_similarity(lead, int(story.lead, 16))
            if similarity >= LEAD_SIMILARITY and (best is None or similarity * 100 > best[0]):
                best = (similarity * 100, f"lead text {similarity:.0%} similar (SimHash)",
                        story)
    if best is None:
        crossed = _same_entities_elsewhere(match, state.stories)
        if crossed is not None:
            best = (0.0, crossed[0], crossed[1])
    if best is not None:
        _, how, found = best
        return Verdict("same_story", f"{how} to a story first seen at {found.first:.0f}",
                       found.id)
    return Verdict("send", "new story", story_id(match),
                   lead=None if lead is None else f"{lead:016x}")


def entities(match: Match) -> frozenset[str]:
    """The people (by the rule's name for them) and countries (by code) ``match`` found:
    what a story's versions in other languages share when their words do not."""
    return frozenset(f"{e.clause}:{e.term}" for e in match.evidence
                     if e.clause in ("person", "country"))


def _same_entities_elsewhere(
    match: Match, stories: Sequence[Story]
) -> tuple[str, Story] | None:
    """The story ``match`` tells in another language, when titles and leads cannot say
    (different words): both name the same people and countries (at least
    :data:`MIN_ENTITIES`, one a person), and their languages are known and differ. Within
    the dedup window; the first such story."""
    language = match.article.language
    found = entities(match)
    if not language or len(found) < MIN_ENTITIES or not any(
            e.startswith("person:") for e in found):
        return None
    for story in stories:
        first = story.match
        if (first is None or not first.article.language
                or first.article.language == language or entities(first) != found):
            continue
        names = ", ".join(sorted(e.split(":", 1)[1] for e in found))
        return (f"the same people and places ({names}) in {language} as in "
                f"{first.article.language}"), story
    return None


def _similar_title(title: str, stories: Sequence[Story]) -> tuple[float, Story] | None:
    """The story whose title is most similar to ``title`` (``STORY_SIMILARITY`` or more),
    the first of those equally similar, with the score; None when none is that close."""
    best: tuple[float, Story] | None = None
    for story in stories:
        score = fuzz.token_set_ratio(title, story.title, score_cutoff=STORY_SIMILARITY)
        if score and (best is None or score > best[0]):
            best = (score, story)
            if score >= 100.0:
                break  # nothing scores higher, and a tie keeps the first story
    return best


def decide(
    state: RuleState, match: Match, *, now: float, silences: Iterable[Silence] = ()
) -> Verdict:
    """The story-level verdict: ``same_article`` first (a repeat is never news), then
    ``silenced``, then ``same_story`` or ``send``."""
    verdict = identify(state, match)
    if verdict.kind == "same_article":
        return verdict
    silence = silenced_by(match, silences, now, story=verdict.story)
    if silence is not None:
        return Verdict(
            "silenced",
            f"silenced by {silence.id} ({silence.describe()}) until {silence.expires:.0f}: "
            f"{silence.reason}",
            verdict.story,
        )
    return verdict


def alerts_last_hour(state: RuleState, receiver: str, now: float) -> int:
    return sum(1 for t in state.alerts.get(receiver, ()) if now - t < HOUR)


def route(
    state: RuleState, verdict: Verdict, match: Match, receiver: str, *, now: float,
    threads: bool,
) -> Route:
    """What ``receiver`` gets for ``match`` given the story-level ``verdict``.

    ``threads``: the receiver can reply in the thread of the first alert (Slack, console);
    e-mail cannot, so its later copies go to the digest."""
    if verdict.kind == "send":
        count = alerts_last_hour(state, receiver, now)
        if count >= match.max_per_hour:
            return Route(receiver, Verdict(
                "throttled",
                f"{count} alert(s) in the last hour (max_per_hour {match.max_per_hour}); "
                "in the next digest", verdict.story), "digest")
        return Route(receiver, verdict, "alert")
    if verdict.kind == "same_story":
        story = state.story(verdict.story)
        parent = story.parent(receiver) if story is not None else None
        if threads and story is not None and parent is not None and parent.state in (
                "pending", "sent"):
            quiet = _no_reply(story, match.article.feed)
            if quiet:
                return Route(receiver, Verdict(
                    "same_story", f"{verdict.reason}; {quiet}: the first alert's source "
                    "count is updated, no reply", verdict.story), "update")
            return Route(receiver, Verdict(
                "same_story", f"{verdict.reason}; reply in the thread of the first alert",
                verdict.story), "reply")
        why = "in the next digest" if threads else "in the next digest (no threads)"
        return Route(receiver, Verdict("same_story", f"{verdict.reason}; {why}",
                                       verdict.story), "digest")
    return Route(receiver, verdict, "none")


def _no_reply(story: Story, feed: str) -> str | None:
    """Why a copy of ``story`` from ``feed`` gets no thread reply (None: it gets one). One
    reply per source feed, and at most ``MAX_THREAD_REPLIES`` per story: a feed rotating
    near-identical items, or a story syndicated everywhere, must not flood the thread."""
    if feed in story.feeds:
        return f"feed {feed} already reported this story"
    if len(story.feeds) - 1 >= MAX_THREAD_REPLIES:
        return f"{MAX_THREAD_REPLIES} replies already in the thread"
    return None


# --------------------------------------------------------------------------- transitions


def compact(match: Match) -> Match:
    """``match`` with the content and the body cut after their last evidence (plus a
    margin): all a re-render needs, without keeping 50 KB articles in the state for a day."""
    article = match.article

    def keep(name: str) -> int:
        ends = [e.end for e in match.evidence if e.field == name]
        return (max(ends) if ends else 0) + _KEEP_CONTENT

    return replace(match, article=replace(article, content=article.content[:keep("content")],
                                          body=article.body[:keep("body")]))


def new_item(
    kind: ItemKind, ident: str, receiver: str, story: str | None, verdict: Verdict, *,
    now: float, seq: int, match: Match | None = None, digest: DigestDraft | None = None,
) -> OutboxItem:
    """An outbox item; its ``match`` compacted (``compact``): the rule's state is written
    whole after every change (in Kafka, one changelog record, at most 1 MB), and an
    article may carry 50,000 characters of content and 100,000 of page body."""
    return OutboxItem(id=ident, kind=kind, receiver=receiver, story=story, seq=seq,
                      created=now, verdict=verdict.kind, reason=verdict.reason,
                      match=compact(match) if match is not None else None, digest=digest)


def digest_entry(match: Match, kind: VerdictKind, story: str | None, now: float) -> DraftEntry:
    article = match.article
    return DraftEntry(kind=kind, story=story, title=article.title[:1000], url=article.url,
                      feed=article.feed, key=article.key, at=now, published=article.published)


def add_to_digest(
    state: RuleState, match: Match, receiver: str, entry: DraftEntry, *, now: float
) -> RuleState:
    """The state with ``entry`` queued in ``receiver``'s open digest (opened if needed; it is
    due ``digest_interval`` seconds after it opened)."""
    digest = state.digests.get(receiver) or DigestDraft(
        opened=now, due=now + match.digest_interval, rule_id=match.rule_id,
        rule_title=match.title, severity=match.severity)
    if len(digest.entries) < DIGEST_MAX_ENTRIES:
        digest = replace(digest, entries=(*digest.entries, entry))
    else:
        digest = replace(digest, more=digest.more + 1)
    return replace(state, digests={**state.digests, receiver: digest})


def _story_for(state: RuleState, match: Match, verdict: Verdict, now: float) -> Story | None:
    """The story a ``send`` starts, or the one a ``same_story`` joins with one more source."""
    article = match.article
    language = (article.language,) if article.language else ()
    if verdict.kind == "send" and verdict.story is not None:
        return Story(id=verdict.story, keys=(article.key,), ids=(article.id,),
                     title=story_title(article.title),
                     lead=verdict.lead if verdict.lead is not None else _lead_hex(match),
                     first=now,
                     last=now, sources=1, feeds=(article.feed,), languages=language,
                     match=compact(match))
    found = state.story(verdict.story)
    if found is None:
        return None
    return replace(found, keys=(*found.keys, article.key), ids=(*found.ids, article.id),
                   last=now, sources=found.sources + 1,
                   feeds=tuple(sorted({*found.feeds, article.feed})),
                   languages=tuple(sorted({*found.languages, *language})))


def escalation_due(story: Story, policy: Escalation | None) -> Escalated | None:
    """What ``story`` has grown to when it reaches ``policy`` and has not escalated yet;
    None otherwise. Sources are distinct feeds: one feed repeating a story is no growth."""
    if policy is None or story.escalated is not None:
        return None
    if len(story.feeds) < policy.sources or len(story.languages) < policy.languages:
        return None
    return Escalated(sources=len(story.feeds), languages=story.languages)


def _escalate(
    story: Story, match: Match, routes: Sequence[Route], outbox: dict[str, OutboxItem], *,
    now: float, next_seq: Callable[[], int],
) -> tuple[Story, list[str]]:
    """The story marked escalated and the items that announce it, when ``match`` made it
    reach its rule's threshold (else the story unchanged, no items): a ``note`` in each
    thread this match's receivers have (with the first alert re-rendered by an
    ``update``), and an ``escalation`` alert to each receiver the policy names."""
    escalated = escalation_due(story, match.escalate)
    if escalated is None or match.escalate is None:
        return story, []
    policy = match.escalate
    announce = replace(story.match or compact(match), escalation=escalated)
    verdict = Verdict("send", f"story {escalated.describe()} (escalate at {policy.sources} "
                      f"sources, {policy.languages} language(s))", story.id)
    queued: list[str] = []
    threads = tuple(r.receiver for r in routes if r.action in ("reply", "update"))
    announcements: tuple[tuple[ItemKind, tuple[str, ...]], ...] = (
        ("note", threads), ("escalation", policy.notify))
    for kind, receivers in announcements:
        for receiver in receivers:
            ident = item_id(kind, match.rule_id, receiver, story.id)
            outbox[ident] = new_item(kind, ident, receiver, story.id, verdict, now=now,
                                     seq=next_seq(), match=announce)
            queued.append(ident)
    return replace(story, escalated=escalated), queued


def apply(
    state: RuleState, match: Match, routes: Sequence[Route], verdict: Verdict, *,
    now: float, next_seq: Callable[[], int],
) -> tuple[RuleState, list[str]]:
    """Record a decision: the new state and the ids of the outbox items it queued.

    ``send``: a new story; per receiver an alert item (counted for ``max_per_hour``) or a
    digest entry. ``same_story``: the story gains a source; per receiver a reply item (plus
    one pending source-count update per story and receiver), the update alone, or a digest
    entry; when that makes the story reach its rule's escalation threshold, the items
    that announce it (``_escalate``). Other verdicts change nothing."""
    if verdict.kind not in ("send", "same_story") or verdict.story is None:
        return state, []
    story = _story_for(state, match, verdict, now)
    if story is None:
        return state, []
    outbox = dict(state.outbox)
    alerts = dict(state.alerts)
    parents = dict(story.parents)
    queued: list[str] = []
    for r in routes:
        if r.action == "alert":
            ident = item_id("alert", match.rule_id, r.receiver, story.id)
            outbox[ident] = new_item("alert", ident, r.receiver, story.id, r.verdict, now=now,
                                     seq=next_seq(), match=match)
            parents[r.receiver] = Parent(state="pending", shown=1)
            alerts[r.receiver] = (*alerts.get(r.receiver, ()), now)
            queued.append(ident)
        elif r.action in ("reply", "update"):
            if r.action == "reply":
                ident = item_id("reply", match.rule_id, r.receiver, story.id,
                                match.article.key)
                outbox[ident] = new_item("reply", ident, r.receiver, story.id, r.verdict,
                                         now=now, seq=next_seq(), match=match)
                queued.append(ident)
            update = item_id("update", match.rule_id, r.receiver, story.id)
            if update not in outbox:
                outbox[update] = new_item("update", update, r.receiver, story.id, r.verdict,
                                          now=now, seq=next_seq())
                queued.append(update)
        elif r.action == "digest":
            if verdict.kind == "send":
                parents[r.receiver] = Parent(state="digest")
            entry = digest_entry(match, r.verdict.kind, story.id, now)
            state = add_to_digest(state, match, r.receiver, entry, now=now)
    story, announced = _escalate(replace(story, parents=parents), match, routes, outbox,
                                 now=now, next_seq=next_seq)
    queued.extend(announced)
    stories = (*state.stories, story) if verdict.kind == "send" else state.stories
    stories = tuple(story if s.id == story.id else s for s in stories)
    return replace(state, stories=stories, outbox=outbox, alerts=alerts), queued


def due_digests(state: RuleState, now: float) -> list[str]:
    """Receivers whose open digest is due."""
    return [r for r, d in state.digests.items() if d.due <= now]


def next_due(state: RuleState) -> float | None:
    return min((d.due for d in state.digests.values()), default=None)


def seal_digests(
    state: RuleState, rule_id: str, *, now: float, next_seq: Callable[[], int]
) -> tuple[RuleState, list[str]]:
    """Move every due digest into the outbox (one ``digest`` item each); a new digest opens
    with the next queued match."""
    due = due_digests(state, now)
    if not due:
        return state, []
    digests = dict(state.digests)
    outbox = dict(state.outbox)
    queued: list[str] = []
    for receiver in due:
        digest = digests.pop(receiver)
        ident = item_id("digest", rule_id, receiver, f"{digest.opened:.6f}")
        verdict = Verdict("throttled", f"digest of {digest.count} match(es)")
        outbox[ident] = new_item("digest", ident, receiver, None, verdict, now=now,
                                 seq=next_seq(), digest=replace(digest, closed=now))
        queued.append(ident)
    return replace(state, digests=digests, outbox=outbox), queued
