"""Dedup and noise decisions: pure functions from (rule state, match, time) to a verdict.

Rule state is one JSON-able dict per rule (stored in a mapping keyed by rule id: SQLite in
the embedded runtime, a faust Table in the Kafka runtime). It lists the stories alerted
inside the rule's dedup window:

    {"stories": [{"id": "...", "keys": [article keys], "title": "normalised title",
                  "first": t, "last": t, "sources": n, "feeds": [...],
                  "deliveries": {receiver: {"state": "pending|sent|dead", "ref": ...,
                                            "kind": "alert|reply", ...}},
                  "match": {...} while any delivery is pending}]}

Verdicts, each with a human reason:
- ``send``: a new story; alert every receiver.
- ``same_article``: this article (canonical URL or id) was already alerted for this rule.
- ``same_story``: a syndicated or lightly rewritten copy of an alerted story (title
  similarity ``token_set_ratio`` >= ``STORY_SIMILARITY``); it goes in the thread of the first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from rapidfuzz import fuzz

from rules.text import normalize
from streams.alerts import Match

STORY_SIMILARITY = 85.0
MIN_TITLE_WORDS = 4  # shorter titles ("Breaking news") say too little to call two stories one

VerdictKind = Literal["send", "same_article", "same_story"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str
    story: str | None = None  # id of the story this match joins (same_article / same_story)


def story_id(match: Match) -> str:
    """Stable id of the story a match starts: rule id + article key, hashed."""
    digest = hashlib.sha256(f"{match.rule_id}\x1f{match.article.key}".encode()).hexdigest()
    return digest[:20]


def prune(state: dict[str, Any], *, now: float, window: float) -> dict[str, Any]:
    """Drop stories whose last sighting is older than ``window`` seconds and that have
    nothing pending; returns a new state."""
    stories = [
        s
        for s in state.get("stories", [])
        if now - float(s["last"]) <= window or _pending(s)
    ]
    return {**state, "stories": stories}


def _pending(story: dict[str, Any]) -> bool:
    return any(d.get("state") == "pending" for d in story.get("deliveries", {}).values())


def decide(state: dict[str, Any], match: Match, *, now: float) -> Verdict:
    """The verdict for ``match`` given the rule's (pruned) state."""
    key = match.article.key
    for story in state.get("stories", []):
        if key in story["keys"] or match.article.id in story.get("ids", []):
            return Verdict("same_article", f"article already alerted at {story['first']:.0f}",
                           story["id"])
    title = normalize(match.article.title)
    if len(title.split()) >= MIN_TITLE_WORDS:
        best: tuple[float, dict[str, Any]] | None = None
        for story in state.get("stories", []):
            score = fuzz.token_set_ratio(title, story["title"], score_cutoff=STORY_SIMILARITY)
            if score and (best is None or score > best[0]):
                best = (score, story)
        if best is not None:
            return Verdict(
                "same_story",
                f"title {best[0]:.0f}% similar to an alerted story",
                best[1]["id"],
            )
    return Verdict("send", "new story")


def new_story(match: Match, *, now: float) -> dict[str, Any]:
    """The state record of a story first alerted by ``match``; every receiver pending."""
    return {
        "id": story_id(match),
        "keys": [match.article.key],
        "ids": [match.article.id],
        "title": normalize(match.article.title),
        "first": now,
        "last": now,
        "sources": 1,
        "feeds": [match.article.feed],
        "deliveries": {
            r: {"state": "pending", "kind": "alert", "article": match.article.key}
            for r in match.receivers
        },
        "match": match.to_json(),
    }


def join_story(story: dict[str, Any], match: Match, *, now: float) -> dict[str, Any]:
    """The story after another source reported it: one more source, and a pending thread
    reply per receiver whose first alert was sent."""
    replies = dict(story.get("replies", {}))
    for receiver, delivery in story["deliveries"].items():
        if delivery.get("state") == "sent":
            replies[f"{receiver}\x1f{match.article.key}"] = {
                "state": "pending",
                "receiver": receiver,
                "match": match.to_json(),
            }
    return {
        **story,
        "keys": [*story["keys"], match.article.key],
        "ids": [*story.get("ids", []), match.article.id],
        "last": now,
        "sources": int(story["sources"]) + 1,
        "feeds": sorted({*story.get("feeds", []), match.article.feed}),
        "replies": replies,
    }
