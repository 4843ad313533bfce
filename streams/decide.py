"""Dedup and noise decisions: pure functions from (rule state, match, time) to a verdict,
and the pure state transitions that record a decision.

Rule state is one JSON-able dict per rule (stored in a mapping keyed by rule id: SQLite in
the embedded runtime, a faust Table in the Kafka runtime), written back whole after every
change, so one decision is one write::

    {"v": 2,
     "stories": [{"id", "keys": [article keys], "ids": [article ids], "title": normalised,
                  "lead": SimHash hex or None, "first", "last", "sources", "feeds",
                  "match": the first match (compact; re-rendered for the source count),
                  "parents": {receiver: {"state": "pending|sent|dead|digest",
                                         "receipt": {...}, "shown": sources shown}}}],
     "outbox": {item id: {"id", "kind": "alert|reply|update|digest", "receiver", "story",
                          "seq", "created", "verdict", "reason", "match" | "digest",
                          "recipients"?}},
     "alerts": {receiver: [decision times of alerts in the last hour]},
     "digests": {receiver: {"opened", "due", "rule_id", "rule_title", "severity",
                            "entries": [...], "more": n}}}

The outbox holds what still has to be sent (the durable *pending* record); an item leaves
it when the receiver accepted it (``sent``) or for the dead-letter store.

Verdicts, each with a human reason:

- ``send``: a new story; alert the receiver.
- ``same_article``: this article (canonical URL or id) was already alerted for this rule.
- ``same_story``: a syndicated or lightly rewritten copy of a story inside the rule's
  window: title similarity (rapidfuzz ``token_set_ratio`` >= :data:`STORY_SIMILARITY`) or
  near-duplicate lead text (SimHash of word 3-shingles of the first :data:`LEAD_WORDS`
  normalised words, similarity >= :data:`LEAD_SIMILARITY`). Receivers that thread (Slack,
  console) get a reply under the first alert; the others (e-mail) get it in the next digest.
- ``throttled``: the receiver already had ``max_per_hour`` alerts of this rule in the last
  hour; the match waits for the next digest (sent every ``digest_interval``).
- ``silenced``: an active silence covers the match; nothing is sent or recorded but the
  audit line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rapidfuzz import fuzz

from newswatch.rules.text import normalize
from newswatch.streams.alerts import Match
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

VerdictKind = Literal["send", "same_article", "same_story", "throttled", "silenced"]
Action = Literal["alert", "reply", "digest", "none"]
ItemKind = Literal["alert", "reply", "update", "digest"]
VERDICTS: tuple[VerdictKind, ...] = ("send", "same_article", "same_story", "throttled",
                                     "silenced")


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str
    story: str | None = None  # id of the story the match starts or joins


@dataclass(frozen=True, slots=True)
class Route:
    """What one receiver gets for a match: a new ``alert``, a thread ``reply``, an entry in
    the next ``digest``, or ``none``; ``verdict`` is the receiver's verdict (``throttled``
    where the story-level one was ``send``)."""

    receiver: str
    verdict: Verdict
    action: Action


# --------------------------------------------------------------------------- identity


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def story_id(match: Match) -> str:
    """Stable id of the story a match starts: rule id + article key, hashed."""
    return _digest(match.rule_id, match.article.key)[:20]


def item_id(kind: ItemKind, rule_id: str, receiver: str, *parts: str) -> str:
    """Stable id of one outbox item (also the Slack metadata id used to reconcile)."""
    return f"{kind[0]}-" + _digest(kind, rule_id, receiver, *parts)[:20]


def lead_words(match: Match) -> list[str]:
    """The first :data:`LEAD_WORDS` normalised words of the summary, else the content."""
    article = match.article
    text = article.summary if article.summary.strip() else article.content
    return normalize(text[: LEAD_WORDS * 20]).split()[:LEAD_WORDS]


def simhash(words: Sequence[str]) -> int | None:
    """64-bit SimHash of the word 3-shingles; None for fewer than MIN_LEAD_WORDS words."""
    if len(words) < MIN_LEAD_WORDS:
        return None
    weights = [0] * 64
    for i in range(len(words) - SHINGLE + 1):
        shingle = " ".join(words[i: i + SHINGLE])
        h = int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


def lead_similarity(a: int, b: int) -> float:
    """Share of equal bits of two SimHashes (1.0 identical, ~0.5 unrelated)."""
    return 1.0 - (a ^ b).bit_count() / 64.0


def _lead_hex(match: Match) -> str | None:
    value = simhash(lead_words(match))
    return None if value is None else f"{value:016x}"


# --------------------------------------------------------------------------- verdicts


def prune(state: dict[str, Any], *, now: float, window: float) -> dict[str, Any]:
    """Drop stories whose last sighting is older than ``window`` seconds and that nothing in
    the outbox still refers to, and alert times older than an hour; returns a new state."""
    state = upgrade(state)
    busy = {item.get("story") for item in state.get("outbox", {}).values()}
    stories = [
        s for s in state.get("stories", [])
        if now - float(s["last"]) <= window or s["id"] in busy
    ]
    alerts = {
        r: [t for t in times if now - float(t) < HOUR]
        for r, times in state.get("alerts", {}).items()
    }
    return {**state, "stories": stories, "alerts": {r: t for r, t in alerts.items() if t}}


def identify(state: dict[str, Any], match: Match) -> Verdict:
    """``same_article``, ``same_story`` or ``send`` for ``match`` given the rule's (pruned)
    state; the verdict names the story (existing or new)."""
    key = match.article.key
    stories = state.get("stories", [])
    for story in stories:
        if key in story["keys"] or match.article.id in story.get("ids", []):
            return Verdict("same_article", f"article already alerted at {story['first']:.0f}",
                           story["id"])
    best: tuple[float, str, dict[str, Any]] | None = None
    title = normalize(match.article.title)
    if len(title.split()) >= MIN_TITLE_WORDS:
        for story in stories:
            score = fuzz.token_set_ratio(title, story["title"], score_cutoff=STORY_SIMILARITY)
            if score and (best is None or score > best[0]):
                best = (score, f"title {score:.0f}% similar", story)
    lead = simhash(lead_words(match))
    if best is None and lead is not None:
        for story in stories:
            if not story.get("lead"):
                continue
            similarity = lead_similarity(lead, int(story["lead"], 16))
            if similarity >= LEAD_SIMILARITY and (best is None or similarity * 100 > best[0]):
                best = (similarity * 100, f"lead text {similarity:.0%} similar (SimHash)",
                        story)
    if best is not None:
        _, how, story = best
        return Verdict("same_story", f"{how} to a story first seen at {story['first']:.0f}",
                       story["id"])
    return Verdict("send", "new story", story_id(match))


def decide(
    state: dict[str, Any], match: Match, *, now: float, silences: Iterable[Silence] = ()
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


def alerts_last_hour(state: dict[str, Any], receiver: str, now: float) -> int:
    return sum(1 for t in state.get("alerts", {}).get(receiver, []) if now - float(t) < HOUR)


def route(
    state: dict[str, Any], verdict: Verdict, match: Match, receiver: str, *, now: float,
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
        story = _story(state, verdict.story)
        parent = (story or {}).get("parents", {}).get(receiver, {})
        if threads and parent.get("state") in ("pending", "sent"):
            return Route(receiver, Verdict(
                "same_story", f"{verdict.reason}; reply in the thread of the first alert",
                verdict.story), "reply")
        why = "in the next digest" if threads else "in the next digest (no threads)"
        return Route(receiver, Verdict("same_story", f"{verdict.reason}; {why}",
                                       verdict.story), "digest")
    return Route(receiver, verdict, "none")


def _story(state: dict[str, Any], ident: str | None) -> dict[str, Any] | None:
    for story in state.get("stories", []):
        if story["id"] == ident:
            return dict(story)
    return None


# --------------------------------------------------------------------------- transitions


def compact(match: Match) -> dict[str, Any]:
    """``match.to_json()`` with the content cut after the last evidence (plus a margin): all
    a re-render needs, without keeping 50 KB articles in the state for a day."""
    data = match.to_json()
    ends = [e.end for e in match.evidence if e.field == "content"]
    keep = (max(ends) if ends else 0) + _KEEP_CONTENT
    data["article"] = {**data["article"], "content": match.article.content[:keep]}
    return data


def _item(
    kind: ItemKind, ident: str, receiver: str, story: str | None, verdict: Verdict, *,
    now: float, seq: int, **extra: Any,
) -> dict[str, Any]:
    return {"id": ident, "kind": kind, "receiver": receiver, "story": story, "seq": seq,
            "created": now, "verdict": verdict.kind, "reason": verdict.reason, **extra}


def digest_entry(match: Match, kind: VerdictKind, story: str | None, now: float) -> dict[str, Any]:
    article = match.article
    return {"kind": kind, "story": story, "title": article.title[:1000], "url": article.url,
            "feed": article.feed, "key": article.key, "at": now,
            "published": article.published.isoformat() if article.published else None}


def add_to_digest(
    state: dict[str, Any], match: Match, receiver: str, entry: dict[str, Any], *, now: float
) -> dict[str, Any]:
    """The state with ``entry`` queued in ``receiver``'s open digest (opened if needed; it is
    due ``digest_interval`` seconds after it opened)."""
    digests = dict(state.get("digests", {}))
    digest = dict(digests.get(receiver) or {
        "opened": now, "due": now + match.digest_interval, "rule_id": match.rule_id,
        "rule_title": match.title, "severity": match.severity, "entries": [], "more": 0,
    })
    if len(digest["entries"]) < DIGEST_MAX_ENTRIES:
        digest["entries"] = [*digest["entries"], entry]
    else:
        digest["more"] = int(digest.get("more", 0)) + 1
    digests[receiver] = digest
    return {**state, "digests": digests}


def apply(
    state: dict[str, Any], match: Match, routes: Sequence[Route], verdict: Verdict, *,
    now: float, next_seq: Callable[[], int],
) -> tuple[dict[str, Any], list[str]]:
    """Record a decision: the new state and the ids of the outbox items it queued.

    ``send``: a new story; per receiver an alert item (counted for ``max_per_hour``) or a
    digest entry. ``same_story``: the story gains a source; per receiver a reply item (plus
    one pending source-count update per story and receiver) or a digest entry. Other
    verdicts change nothing."""
    if verdict.kind not in ("send", "same_story") or verdict.story is None:
        return state, []
    state = upgrade(state)
    outbox = dict(state.get("outbox", {}))
    alerts = {r: list(t) for r, t in state.get("alerts", {}).items()}
    queued: list[str] = []
    stories = list(state.get("stories", []))
    if verdict.kind == "send":
        story: dict[str, Any] = {
            "id": verdict.story, "keys": [match.article.key], "ids": [match.article.id],
            "title": normalize(match.article.title), "lead": _lead_hex(match),
            "first": now, "last": now, "sources": 1, "feeds": [match.article.feed],
            "match": compact(match), "parents": {},
        }
        stories.append(story)
    else:
        found = _story(state, verdict.story)
        if found is None:
            return state, []
        story = {
            **found,
            "keys": [*found["keys"], match.article.key],
            "ids": [*found.get("ids", []), match.article.id],
            "last": now,
            "sources": int(found["sources"]) + 1,
            "feeds": sorted({*found.get("feeds", []), match.article.feed}),
        }
    parents = dict(story.get("parents", {}))
    for r in routes:
        if r.action == "alert":
            ident = item_id("alert", match.rule_id, r.receiver, story["id"])
            outbox[ident] = _item("alert", ident, r.receiver, story["id"], r.verdict, now=now,
                                  seq=next_seq(), match=match.to_json())
            parents[r.receiver] = {"state": "pending", "shown": 1}
            alerts.setdefault(r.receiver, []).append(now)
            queued.append(ident)
        elif r.action == "reply":
            ident = item_id("reply", match.rule_id, r.receiver, story["id"], match.article.key)
            outbox[ident] = _item("reply", ident, r.receiver, story["id"], r.verdict, now=now,
                                  seq=next_seq(), match=match.to_json())
            queued.append(ident)
            update = item_id("update", match.rule_id, r.receiver, story["id"])
            if update not in outbox:
                outbox[update] = _item("update", update, r.receiver, story["id"], r.verdict,
                                       now=now, seq=next_seq())
                queued.append(update)
        elif r.action == "digest":
            if verdict.kind == "send":
                parents[r.receiver] = {"state": "digest"}
            entry = digest_entry(match, r.verdict.kind, story["id"], now)
            state = add_to_digest(state, match, r.receiver, entry, now=now)
    story = {**story, "parents": parents}
    stories = [story if s["id"] == story["id"] else s for s in stories]
    return {**state, "stories": stories, "outbox": outbox, "alerts": alerts}, queued


def due_digests(state: dict[str, Any], now: float) -> list[str]:
    """Receivers whose open digest is due."""
    return [r for r, d in state.get("digests", {}).items() if float(d["due"]) <= now]


def next_due(state: dict[str, Any]) -> float | None:
    dues = [float(d["due"]) for d in state.get("digests", {}).values()]
    return min(dues) if dues else None


def seal_digests(
    state: dict[str, Any], rule_id: str, *, now: float, next_seq: Callable[[], int]
) -> tuple[dict[str, Any], list[str]]:
    """Move every due digest into the outbox (one ``digest`` item each); a new digest opens
    with the next queued match."""
    due = due_digests(state, now)
    if not due:
        return state, []
    digests = dict(state.get("digests", {}))
    outbox = dict(state.get("outbox", {}))
    queued: list[str] = []
    for receiver in due:
        digest = digests.pop(receiver)
        ident = item_id("digest", rule_id, receiver, f"{float(digest['opened']):.6f}")
        count = len(digest["entries"]) + int(digest.get("more", 0))
        verdict = Verdict("throttled", f"digest of {count} match(es)")
        outbox[ident] = _item("digest", ident, receiver, None, verdict, now=now,
                              seq=next_seq(), digest={**digest, "closed": now})
        queued.append(ident)
    return {**state, "digests": digests, "outbox": outbox}, queued


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """State written before the outbox (``deliveries``/``replies`` inside each story) in the
    current shape; pending deliveries become outbox items so an upgrade loses nothing."""
    if state.get("v") == 2 or not state.get("stories"):
        return {**state, "v": 2}
    outbox = dict(state.get("outbox", {}))
    stories = []
    for old in state["stories"]:
        story = {k: v for k, v in old.items() if k not in ("deliveries", "replies")}
        story.setdefault("lead", None)
        parents: dict[str, Any] = {}
        first = old.get("match")
        rule_id = str((first or {}).get("rule_id", ""))
        for receiver, d in old.get("deliveries", {}).items():
            if d.get("state") == "sent":
                parents[receiver] = {"state": "sent", "receipt": d.get("receipt"),
                                     "shown": old.get("sources", 1)}
            elif d.get("state") == "pending" and first is not None:
                ident = item_id("alert", rule_id, receiver, old["id"])
                outbox[ident] = _item("alert", ident, receiver, old["id"],
                                      Verdict("send", "new story"), now=float(old["first"]),
                                      seq=0, match=first)
                parents[receiver] = {"state": "pending", "shown": 1}
            else:
                parents[receiver] = {"state": "dead"}
        for key, reply in old.get("replies", {}).items():
            if reply.get("state") == "pending" and "match" in reply:
                receiver = str(reply["receiver"])
                ident = item_id("reply", rule_id, receiver, old["id"], key)
                outbox[ident] = _item("reply", ident, receiver, old["id"],
                                      Verdict("same_story", "thread reply"),
                                      now=float(old["last"]), seq=1, match=reply["match"])
        story["parents"] = parents
        stories.append(story)
    return {**state, "v": 2, "stories": stories, "outbox": outbox}
