"""Delivery: decide → record pending → send (in order, paced, with retries) → record.

Stages follow Alertmanager's notify pipeline: every decision has a reason and goes to the
audit log; what must be sent is written to the rule's *outbox* (with the whole match) in
the same state write as the decision, before any attempt, and leaves it only when the
receiver accepted it (``sent``, with the receipt, e.g. the Slack ts) or for the dead-letter
store. ``deliver`` returns once the decision is durable; sending happens in *lanes*.

This module is the facade; the jobs are in their own modules:

- streams/decide.py — the decision and its state transition (pure);
- streams/outbox.py — what sending, failing and replaying do to the state (pure);
- streams/rulestate.py — the typed rule state and dead letters, with their JSON;
- streams/store.py — the one place the state meets its mappings, and the audit log;
- streams/lanes.py — one sender per conversation: order, pacing, Retry-After, backoff,
  reconciliation with ``Notifier.find``, dead-lettering;
- streams/deadletters.py — replaying dead letters through the outbox.

Crash safety: after a restart ``resume()`` queues every outbox item again in sequence
order. Only the head of each lane can have been in flight; before re-sending it, and before
retrying after an ambiguous failure (5xx or a broken connection: the receiver may have
stored the message), the pipeline asks the receiver whether it already has it
(``Notifier.find``: Slack message metadata carries the item id). Where the receiver cannot
tell (e-mail), at most that one item repeats.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import Any

from newswatch.core.errors import StateError
from newswatch.streams.alerts import Match
from newswatch.streams.blindness import RuleActivity
from newswatch.streams.deadletters import Replay, ReplayOutcome
from newswatch.streams.decide import (
    Action,
    Verdict,
    apply,
    decide,
    prune,
    route,
    seal_digests,
)
from newswatch.streams.lanes import AMBIGUOUS_REASONS, Lanes, RetryPolicy
from newswatch.streams.notices import is_notice
from newswatch.streams.notifiers import Notifier
from newswatch.streams.pacing import Pacer
from newswatch.streams.rulestate import OutboxItem, RuleState
from newswatch.streams.silences import Silence
from newswatch.streams.store import (
    ALL_RULES,
    PARSED_RULES,
    RECEIPTS_KEY,
    DecisionLog,
    DeliveryStore,
)

__all__ = ["AMBIGUOUS_REASONS", "RECEIPTS_KEY", "DecisionLog", "Pipeline", "ReplayOutcome",
           "RetryPolicy"]


# The audit result of a decision, by what the receiver gets: an outbox item (``pending``
# until sent), only the first alert's source count (``counted``), or a digest entry.
_RESULTS: dict[Action, str] = {"alert": "pending", "reply": "pending", "update": "counted",
                               "digest": "digest", "none": "digest"}

class Pipeline:
    """Delivers matches to named notifiers, with rule state (decisions and outbox) in
    ``state`` (rule id → JSON), dead letters in ``dlq`` (id → JSON), every decision in
    ``audit``, and small bookkeeping (the channel of each receiver) in ``meta``.

    ``inline=True`` sends in the caller's task instead of lanes: ``deliver`` and
    ``resume_rule`` return once their items are settled. The Kafka runtime needs it,
    because a faust Table may only be written inside the agent's event (same order and
    pacing rules apply; lanes then do not run concurrently).

    ``fence`` is called right before every send; it stops the process when sending is no
    longer safe (the Kafka worker's ``newswatch.streams.kafka.fence.FreezeFence``).

    ``encoded_state``: ``state`` holds each rule state as JSON text in bytes
    (``DeliveryStore``), and every rule state stays parsed (the worker's table has them all
    in memory anyway).

    ``typed_state``: ``state`` is in memory only and read by nothing else; it holds the
    ``RuleState`` values as they are, never serialised (the rule backtest)."""

    def __init__(
        self,
        *,
        notifiers: Mapping[str, Notifier],
        state: MutableMapping[str, Any],
        dlq: MutableMapping[str, Any],
        audit: DecisionLog,
        silences: Callable[[float], Sequence[Silence]] | None = None,
        meta: MutableMapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pacer: Pacer | None = None,
        rng: random.Random | None = None,
        inline: bool = False,
        fence: Callable[[], None] | None = None,
        encoded_state: bool = False,
        typed_state: bool = False,
    ) -> None:
        self._notifiers = notifiers
        self._silences = silences or (lambda now: ())
        self._clock = clock
        self._store = DeliveryStore(state=state, dlq=dlq, audit=audit,
                                    meta=meta if meta is not None else {}, clock=clock,
                                    encoded=encoded_state, typed=typed_state,
                                    parsed_rules=ALL_RULES if encoded_state else PARSED_RULES)
        self._lanes = Lanes(notifiers=notifiers, store=self._store, clock=clock,
                            retry=retry or RetryPolicy(), sleep=sleep,
                            pacer=pacer or Pacer(sleep=sleep), rng=rng or random.Random(),
                            inline=inline, fence=fence or (lambda: None))
        self._replay = Replay(store=self._store, lanes=self._lanes, clock=clock)
        self._resumed = False

    @property
    def reconciled(self) -> int:
        """Sends avoided because the receiver already had the message."""
        return self._lanes.reconciled

    # ------------------------------------------------------------------ decisions
    async def deliver(self, match: Match) -> Verdict:
        """Decide for ``match`` and record the decision with its outbox items (one state
        write), then queue them; returns the verdict once it is durable. Sending happens
        in the lanes (``drain`` waits for it). Never raises DeliveryError."""
        now = self._clock()
        stored = self._store.load(match.rule_id)
        state = prune(stored, now=now, window=match.dedup_window)
        if not is_notice(match):  # what the rule sees (streams/blindness.py)
            state = replace(state, activity=state.activity.record(match.article.feed, now))
        verdict = decide(state, match, now=now, silences=self._silences(now))
        if verdict.kind in ("same_article", "silenced"):
            if state.activity is not stored.activity:
                self._store.save(match.rule_id, state)
            for receiver in match.receivers:
                self._store.record(match, receiver, verdict, "skipped")
            return verdict
        routes = [
            route(state, verdict, match, r, now=now, threads=self._threads(r))
            for r in match.receivers
        ]
        state, queued = apply(state, match, routes, verdict, now=now,
                              next_seq=self._store.next_seq)
        self._store.save(match.rule_id, state)  # durable before any send
        for r in routes:
            self._store.record(match, r.receiver, r.verdict, _RESULTS[r.action])
        for ident in queued:
            item = state.outbox[ident]
            if item.kind in ("escalation", "note"):  # this match made its story escalate
                self._store.record(match, item.receiver,
                                   Verdict(item.verdict, item.reason, item.story), "escalated")
        self._lanes.enqueue(match.rule_id, state, queued)
        await self._lanes.run_inline()
        if routes and all(r.verdict.kind == "throttled" for r in routes):
            return routes[0].verdict
        return verdict

    def _threads(self, receiver: str) -> bool:
        notifier = self._notifiers.get(receiver)
        return bool(notifier is not None and notifier.threads)

    # ------------------------------------------------------------------ outbox
    async def resume(self) -> int:
        """Queue every outbox item not queued yet, in sequence order (after a restart, or
        periodically); the first call also marks each lane's head as possibly sent before
        the crash, so it is looked up before it is sent again. Returns how many items the
        outbox holds."""
        items: list[tuple[str, OutboxItem]] = []
        states = []
        for rule_id in self._store.rules():
            state = self._store.load_upgraded(rule_id)
            states.append(state)
            self._store.note_digests(rule_id, state)
            for item in state.outbox.values():
                items.append((rule_id, item))
                self._store.saw_seq(item.seq)
        self._store.load_receipts(states)
        items.sort(key=lambda t: (t[1].seq, t[1].id))
        if not self._resumed:
            self._lanes.suspect_heads(item for _, item in items)
            self._resumed = True
        for rule_id, item in items:
            self._lanes.put_all(rule_id, [item])
        await self._lanes.run_inline()
        return len(items)

    async def resume_rule(self, rule_id: str) -> int:
        """Queue (inline: send) what the outbox of one rule holds; returns how many.

        What is left there may have been sent by a worker that died before recording it
        (the Kafka runtime's previous owner of the partition): each lane's head is looked
        up before it is sent again, as after a restart."""
        items = self._store.load(rule_id).pending()
        self._suspect_left(items)
        return await self._queue_rule(rule_id, items)

    async def tick_rule(self, rule_id: str) -> int:
        """One rule's maintenance, where that rule's state is written (the Kafka worker
        owning its partition): seal its due digests into the outbox, then queue (inline:
        send) what the outbox holds; returns how many items that was. What was there
        before the seal is looked up first, as in ``resume_rule``."""
        self._suspect_left(self._store.load(rule_id).pending())
        self._seal(rule_id, self._clock())
        return await self._queue_rule(rule_id, self._store.load(rule_id).pending())

    def _suspect_left(self, items: list[OutboxItem]) -> None:
        """Items in the outbox that this process is not sending may have been sent by one
        that died: each lane's head among them is looked up before it is sent again."""
        self._lanes.suspect_heads(i for i in items if not self._lanes.holds(i.id))

    async def _queue_rule(self, rule_id: str, items: list[OutboxItem]) -> int:
        for item in items:
            self._store.saw_seq(item.seq)
        self._lanes.put_all(rule_id, items)
        await self._lanes.run_inline()
        return len(items)

    @property
    def failed(self) -> asyncio.Event:
        """Set once the state could not be written (``failure`` says why): nothing is sent
        any more; the runtime stops."""
        return self._lanes.failed

    @property
    def failure(self) -> StateError | None:
        return self._lanes.failure

    def fail(self, error: StateError) -> None:
        """Stop delivering: the state cannot be written (``Lanes.fail``)."""
        self._lanes.fail(error)

    def rule_state(self, rule_id: str) -> RuleState:
        """The delivery state of ``rule_id`` as stored now (read, never written)."""
        return self._store.load(rule_id)

    def save_activity(self, rule_id: str, activity: RuleActivity) -> None:
        """Store what ops were told about ``rule_id``'s blindness (streams/blindness.py)
        in its delivery state (where the Kafka worker owning the rule may write it)."""
        state = self._store.load(rule_id)
        if state.activity != activity:
            self._store.save(rule_id, replace(state, activity=activity))

    # ------------------------------------------------------------------ digests
    async def flush_digests(self) -> int:
        """Move due digests to the outbox and queue them; returns how many."""
        now = self._clock()
        count = sum(self._seal(rule_id, now) for rule_id in self._store.due_rules(now))
        await self._lanes.run_inline()
        return count

    def _seal(self, rule_id: str, now: float) -> int:
        state, queued = seal_digests(self._store.load(rule_id), rule_id, now=now,
                                     next_seq=self._store.next_seq)
        if queued:
            self._store.save(rule_id, state)
            self._lanes.enqueue(rule_id, state, queued)
        else:
            self._store.note_digests(rule_id, state)
        return len(queued)

    def next_digest_due(self) -> float | None:
        return self._store.next_digest_due()

    # ------------------------------------------------------------------ lanes
    async def drain(self) -> None:
        """Wait until every lane has settled everything queued (sent, dead-lettered, or
        left pending because the pipeline is closing)."""
        await self._lanes.drain()

    async def aclose(self, grace: float = 10.0) -> None:
        """Stop the lanes: sends in flight may finish (for up to ``grace`` seconds), waiting
        ones stop; what was not sent stays in the outbox for the next start."""
        await self._lanes.aclose(grace)

    # ------------------------------------------------------------------ dead letters
    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead letters as stored (JSON), oldest first."""
        return self._store.letters_json()

    async def replay(self, ids: Iterable[str] | None = None) -> list[ReplayOutcome]:
        """Send dead letters again (all when ``ids`` is None) through the dedup state: an
        alert the receiver has meanwhile received is not sent again, an entry already
        being replayed is not queued twice, and a replayed entry leaves the store once
        delivered. Returns one outcome per id."""
        return await self._replay.replay(ids)

    async def replay_requested(self) -> list[ReplayOutcome]:
        """Replay the dead letters marked ``requested`` by ``newswatch dlq replay`` while
        this process runs (the one writer of the rule state)."""
        return await self._replay.replay_requested()
