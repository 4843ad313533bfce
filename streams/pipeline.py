"""Delivery: decide → record pending → send (with retries) → record the result.

Stages follow Alertmanager's notify pipeline: every decision has a reason and goes to the
audit log; a delivery is recorded *pending* (with the whole match) before the first attempt
and *sent* (with the receiver's reference, e.g. the Slack ts) only after the receiver
accepted it. After a crash, ``resume()`` re-sends whatever is still pending, so nothing is
lost and at most the alert in flight at the crash repeats.

Failures: a retryable ``DeliveryError`` is retried with exponential backoff and jitter,
honouring Retry-After, for up to ``RetryPolicy.max_wait`` seconds; then the delivery stays
pending and ``resume()`` tries again later. A non-retryable one goes to the dead-letter
mapping with its reason and never blocks the other receivers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from monitor.errors import DeliveryError
from monitor.state import Decision
from streams.alerts import Match
from streams.decide import Verdict, decide, join_story, new_story, prune
from streams.notifiers import Notifier, Receipt

log = logging.getLogger("newswatch.delivery")


class DecisionLog(Protocol):
    def log_decision(self, d: Decision) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff in seconds: ``first`` × 2^n with ±``jitter`` share, each wait at most
    ``cap``, and at most ``max_wait`` seconds of waiting per delivery attempt round."""

    first: float = 1.0
    cap: float = 60.0
    max_wait: float = 300.0
    jitter: float = 0.2


class Pipeline:
    """Delivers matches to named notifiers, with dedup state in ``state`` (rule id → dict),
    dead letters in ``dlq`` and every decision in ``audit``."""

    def __init__(
        self,
        *,
        notifiers: Mapping[str, Notifier],
        state: MutableMapping[str, Any],
        dlq: MutableMapping[str, Any],
        audit: DecisionLog,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._notifiers = notifiers
        self._state = state
        self._dlq = dlq
        self._audit = audit
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def deliver(self, match: Match) -> Verdict:
        """Decide and deliver one match; returns the verdict. Never raises DeliveryError."""
        async with self._locks[match.rule_id]:
            now = self._clock()
            state = prune(dict(self._state.get(match.rule_id, {})), now=now,
                          window=match.dedup_window)
            verdict = decide(state, match, now=now)
            if verdict.kind == "same_article":
                for receiver in match.receivers:
                    self._record(match, receiver, verdict, "skipped")
                return verdict
            stories = list(state.get("stories", []))
            if verdict.kind == "send":
                stories.append(new_story(match, now=now))
            else:
                stories = [
                    join_story(s, match, now=now) if s["id"] == verdict.story else s
                    for s in stories
                ]
            # Durable before any send: a crash from here on is recovered by resume().
            self._state[match.rule_id] = {**state, "stories": stories}
            for receiver in match.receivers:
                self._record(match, receiver, verdict, "pending")
            await self._flush(match.rule_id, verdict)
            return verdict

    async def resume(self) -> int:
        """Re-attempt every pending delivery (after a restart, or periodically).
        Returns how many were still pending before the attempt."""
        total = 0
        for rule_id in list(self._state):
            async with self._locks[rule_id]:
                pending = sum(
                    1
                    for story in self._state.get(rule_id, {}).get("stories", [])
                    for item in (*story.get("deliveries", {}).values(),
                                 *story.get("replies", {}).values())
                    if item.get("state") == "pending"
                )
                if pending:
                    await self._flush(rule_id, Verdict("send", "resumed after restart"))
                total += pending
        return total

    # ------------------------------------------------------------------ internals
    def _save_story(self, rule_id: str, story: dict[str, Any]) -> None:
        state = dict(self._state.get(rule_id, {}))
        state["stories"] = [story if s["id"] == story["id"] else s
                            for s in state.get("stories", [])]
        self._state[rule_id] = state

    async def _flush(self, rule_id: str, verdict: Verdict) -> None:
        """Attempt every pending delivery and reply of the rule's stories."""
        for story in list(self._state.get(rule_id, {}).get("stories", [])):
            story = await self._flush_alerts(rule_id, story, verdict)
            await self._flush_replies(rule_id, story)

    async def _flush_alerts(
        self, rule_id: str, story: dict[str, Any], verdict: Verdict
    ) -> dict[str, Any]:
        deliveries = story.get("deliveries", {})
        if not any(d.get("state") == "pending" for d in deliveries.values()):
            return story
        match = Match.from_json(story["match"])
        for receiver, delivery in list(deliveries.items()):
            if delivery.get("state") != "pending":
                continue
            notifier = self._notifiers.get(receiver)
            if notifier is None:
                outcome: Receipt | DeliveryError | None = DeliveryError(
                    "unknown_receiver", f"no receiver named '{receiver}'", retryable=False
                )
            else:
                outcome = await self._attempt(partial(notifier.send, match))
            story = self._settle(rule_id, story, receiver, match, verdict, outcome)
        if not any(d.get("state") == "pending" for d in story["deliveries"].values()):
            story = {k: v for k, v in story.items() if k != "match"}  # no longer needed
            self._save_story(rule_id, story)
        return story

    def _settle(
        self,
        rule_id: str,
        story: dict[str, Any],
        receiver: str,
        match: Match,
        verdict: Verdict,
        outcome: Receipt | DeliveryError | None,
    ) -> dict[str, Any]:
        """Record one attempt's outcome in the story and the audit log."""
        deliveries = dict(story["deliveries"])
        if isinstance(outcome, Receipt):
            deliveries[receiver] = {"state": "sent", "kind": "alert",
                                    "receipt": outcome.to_json(), "at": self._clock()}
            self._record(match, receiver, verdict, "sent", outcome.ref)
        elif isinstance(outcome, DeliveryError):
            deliveries[receiver] = {"state": "dead", "kind": "alert", "reason": outcome.reason}
            self._dead_letter(match, receiver, outcome)
            self._record(match, receiver, verdict, f"dead:{outcome.reason}")
        else:
            return story  # still pending: retried by resume()
        story = {**story, "deliveries": deliveries}
        self._save_story(rule_id, story)
        return story

    async def _flush_replies(self, rule_id: str, story: dict[str, Any]) -> None:
        replies = dict(story.get("replies", {}))
        if not any(r.get("state") == "pending" for r in replies.values()):
            return
        for key, reply in list(replies.items()):
            if reply.get("state") != "pending":
                continue
            receiver = str(reply["receiver"])
            notifier = self._notifiers.get(receiver)
            delivery = story["deliveries"].get(receiver, {})
            if notifier is None or "receipt" not in delivery:
                replies[key] = {"state": "dead", "receiver": receiver}
                continue
            parent = Receipt.from_json(delivery["receipt"])
            match = Match.from_json(reply["match"])
            verdict = Verdict("same_story", "thread reply", story["id"])
            outcome = await self._attempt(partial(notifier.reply, match, parent))
            if outcome is None:
                continue
            if isinstance(outcome, DeliveryError):
                replies[key] = {"state": "dead", "receiver": receiver, "reason": outcome.reason}
                self._dead_letter(match, receiver, outcome)
                self._record(match, receiver, verdict, f"dead:{outcome.reason}")
            else:
                replies[key] = {"state": "sent", "receiver": receiver, "ref": outcome.ref}
                self._record(match, receiver, verdict, "sent", outcome.ref)
                # Best effort: the source count is cosmetic; a failure must not resend.
                try:
                    await notifier.update_sources(parent, match, int(story["sources"]))
                except DeliveryError as error:
                    log.warning("update of %s failed: %s", receiver, error)
            story = {**story, "replies": replies}
            self._save_story(rule_id, story)

    async def _attempt(
        self, send: Callable[[], Awaitable[Receipt]]
    ) -> Receipt | DeliveryError | None:
        """Receipt on success, the error when it is not retryable, None when retries ran
        out (the delivery stays pending)."""
        waited = 0.0
        attempt = 0
        while True:
            try:
                return await send()
            except DeliveryError as error:
                if not error.retryable:
                    return error
                delay = min(self._retry.first * 2**attempt, self._retry.cap)
                delay *= 1 + self._rng.uniform(-self._retry.jitter, self._retry.jitter)
                if error.retry_after is not None:
                    delay = max(delay, error.retry_after)
                if waited + delay > self._retry.max_wait:
                    log.warning("giving up for now after %.0fs: %s", waited, error)
                    return None
                log.info("retrying in %.1fs: %s", delay, error)
                await self._sleep(delay)
                waited += delay
                attempt += 1
            except Exception:  # a notifier bug: keep the delivery pending, do not lose it
                log.exception("notifier failed unexpectedly")
                return None

    def _dead_letter(self, match: Match, receiver: str, error: DeliveryError) -> None:
        key = f"{match.rule_id}\x1f{match.article.key}\x1f{receiver}"
        self._dlq[key] = {
            "at": self._clock(),
            "receiver": receiver,
            "reason": error.reason,
            "message": error.message,
            "match": match.to_json(),
        }

    def _record(
        self, match: Match, receiver: str, verdict: Verdict, result: str, ref: str | None = None
    ) -> None:
        self._audit.log_decision(
            Decision(
                at=self._clock(),
                rule_id=match.rule_id,
                article=match.article.key,
                title=match.article.title[:300],
                receiver=receiver,
                verdict=verdict.kind,
                reason=verdict.reason,
                result=result,
                ref=ref,
            )
        )
