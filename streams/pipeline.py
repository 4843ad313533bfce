"""Delivery: decide → record pending → send (in order, paced, with retries) → record.

Stages follow Alertmanager's notify pipeline: every decision has a reason and goes to the
audit log; what must be sent is written to the rule's *outbox* (with the whole match) in
the same state write as the decision, before any attempt, and leaves it only when the
receiver accepted it (``sent``, with the receipt, e.g. the Slack ts) or for the dead-letter
store. ``deliver`` returns once the decision is durable; sending happens in *lanes*.

Lanes: one per conversation (a Slack channel, an e-mail receiver, the console), each with
one worker sending its items in decision order (FIFO, by sequence number), so alerts reach
a channel in order and a thread reply always follows its first alert. A lane posts at most
once per ``Notifier.min_interval`` (Slack: 1 s); a 429 pauses that lane only, for
Retry-After. Other failures that may succeed later (5xx, network, SMTP 4xx) are retried
with exponential backoff and jitter; the lane waits (order is kept) until the item is older
than ``RetryPolicy.max_age``, then it goes to the dead-letter store. A permanent failure
goes there at once, with its reason, and the lane moves on; other lanes never wait.

Crash safety: after a restart ``resume()`` queues every outbox item again in sequence
order. Only the head of each lane can have been in flight; before re-sending it, and before
retrying after an ambiguous failure (5xx or a broken connection: the receiver may have
stored the message), the pipeline asks the receiver whether it already has it
(``Notifier.find``: Slack message metadata carries the item id). Where the receiver cannot
tell (e-mail), at most that one item repeats.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from newswatch.core.errors import DeliveryError
from newswatch.core.state import Decision
from newswatch.streams.alerts import Digest, Match
from newswatch.streams.decide import (
    Verdict,
    add_to_digest,
    apply,
    compact,
    decide,
    digest_entry,
    next_due,
    prune,
    route,
    seal_digests,
    upgrade,
)
from newswatch.streams.notifiers import Addressable, Notifier, Receipt
from newswatch.streams.pacing import Pacer
from newswatch.streams.silences import Silence

log = logging.getLogger("newswatch.delivery")

RECEIPTS_KEY = "delivery_receipts"  # meta key: receiver → a receipt locating its channel
#: Failures after which the receiver may hold the message although the call failed.
AMBIGUOUS_REASONS = frozenset({"http_5xx", "connection", "notifier_bug"})


class DecisionLog(Protocol):
    def log_decision(self, d: Decision) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff in seconds: ``first`` × 2^n with ±``jitter`` share, each wait at most
    ``cap``; a Retry-After is waited as given (plus up to ``jitter`` more). A delivery still
    failing ``max_age`` seconds after its decision goes to the dead-letter store."""

    first: float = 1.0
    cap: float = 60.0
    max_age: float = 3600.0
    jitter: float = 0.2


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What ``replay`` did with one dead letter: ``queued``, ``already delivered``,
    ``already queued`` or ``not found``."""

    id: str
    outcome: str


class Pipeline:
    """Delivers matches to named notifiers, with rule state (decisions and outbox) in
    ``state`` (rule id → dict), dead letters in ``dlq`` (id → dict), every decision in
    ``audit``, and small bookkeeping (the channel of each receiver) in ``meta``.

    ``inline=True`` sends in the caller's task instead of lanes: ``deliver`` and
    ``resume_rule`` return once their items are settled. The Kafka runtime needs it,
    because a faust Table may only be written inside the agent's event (same order and
    pacing rules apply; lanes then do not run concurrently).

    ``fence`` is called right before every send; it stops the process when sending is no
    longer safe (the Kafka worker's ``newswatch.streams.kafka.fence.FreezeFence``)."""

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
    ) -> None:
        self._notifiers = notifiers
        self._fence = fence or (lambda: None)
        self._state = state
        self._dlq = dlq
        self._audit = audit
        self._silences = silences or (lambda now: ())
        self._meta: MutableMapping[str, Any] = meta if meta is not None else {}
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._pacer = pacer or Pacer(sleep=sleep)
        self._rng = rng or random.Random()
        self._seq = 0
        self._queues: dict[str, asyncio.Queue[tuple[str, str]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._suspects: set[str] = set()
        self._digest_due: dict[str, float] = {}
        self._receipts: dict[str, dict[str, Any]] = {}
        self._resumed = False
        self._closing = False
        self._inline = inline
        self._inline_queue: list[tuple[str, str]] = []
        self.reconciled = 0  # sends avoided because the receiver already had the message

    # ------------------------------------------------------------------ decisions
    async def deliver(self, match: Match) -> Verdict:
        """Decide for ``match`` and record the decision with its outbox items (one state
        write), then queue them; returns the verdict once it is durable. Sending happens
        in the lanes (``drain`` waits for it). Never raises DeliveryError."""
        now = self._clock()
        state = prune(dict(self._state.get(match.rule_id, {})), now=now,
                      window=match.dedup_window)
        verdict = decide(state, match, now=now, silences=self._silences(now))
        if verdict.kind in ("same_article", "silenced"):
            for receiver in match.receivers:
                self._record(match, receiver, verdict, "skipped")
            return verdict
        routes = [
            route(state, verdict, match, r, now=now, threads=self._threads(r))
            for r in match.receivers
        ]
        state, queued = apply(state, match, routes, verdict, now=now, next_seq=self._next_seq)
        self._state[match.rule_id] = state  # durable before any send
        for r in routes:
            self._record(match, r.receiver, r.verdict,
                         "pending" if r.action in ("alert", "reply") else "digest")
        self._note_digest(match.rule_id, state)
        self._enqueue(match.rule_id, state, queued)
        await self._run_inline()
        if routes and all(r.verdict.kind == "throttled" for r in routes):
            return routes[0].verdict
        return verdict

    def _threads(self, receiver: str) -> bool:
        notifier = self._notifiers.get(receiver)
        return bool(notifier is not None and notifier.threads)

    def _next_seq(self) -> int:
        self._seq = max(self._seq + 1, time.time_ns())
        return self._seq

    # ------------------------------------------------------------------ lifecycle
    async def resume(self) -> int:
        """Queue every outbox item not queued yet, in sequence order (after a restart, or
        periodically); the first call also marks each lane's head as possibly sent before
        the crash, so it is looked up before it is sent again. Returns how many items the
        outbox holds."""
        items: list[tuple[int, str, dict[str, Any]]] = []
        for receiver, receipt in dict(self._meta.get(RECEIPTS_KEY) or {}).items():
            self._receipts.setdefault(receiver, receipt)
        for rule_id in list(self._state):
            state = self._state.get(rule_id) or {}
            if state.get("v") != 2:
                state = upgrade(state)
                if state.get("outbox"):
                    self._state[rule_id] = state
            self._note_digest(rule_id, state)
            for story in state.get("stories", []):
                for receiver, parent in story.get("parents", {}).items():
                    if parent.get("receipt") and receiver not in self._receipts:
                        self._receipts[receiver] = parent["receipt"]
            for item in state.get("outbox", {}).values():
                items.append((int(item.get("seq", 0)), rule_id, item))
                self._seq = max(self._seq, int(item.get("seq", 0)))
        items.sort(key=lambda t: (t[0], t[2]["id"]))
        if not self._resumed:
            heads: set[str] = set()
            for _, _, item in items:
                lane = self._lane(str(item["receiver"]))
                if lane not in heads:
                    heads.add(lane)
                    if item["kind"] != "update":
                        self._suspects.add(str(item["id"]))
            self._resumed = True
        for _, rule_id, item in items:
            if item["id"] not in self._queued:
                self._put(rule_id, item)
        await self._run_inline()
        return len(items)

    async def resume_rule(self, rule_id: str) -> int:
        """Queue (inline: send) what the outbox of one rule holds; returns how many."""
        state = self._load(rule_id)
        items = sorted(state.get("outbox", {}).values(),
                       key=lambda i: (int(i.get("seq", 0)), i["id"]))
        for item in items:
            self._seq = max(self._seq, int(item.get("seq", 0)))
            if item["id"] not in self._queued:
                self._put(rule_id, item)
        await self._run_inline()
        return len(items)

    @staticmethod
    def has_pending(state: Mapping[str, Any]) -> bool:
        """Whether a rule's state still holds something to send."""
        return bool(upgrade(dict(state)).get("outbox"))

    async def _run_inline(self) -> None:
        while self._inline and self._inline_queue and not self._closing:
            rule_id, ident = self._inline_queue.pop(0)
            try:
                await self._process(self._lane(self._receiver_of(rule_id, ident)), rule_id,
                                    ident)
            finally:
                self._queued.discard(ident)

    def _receiver_of(self, rule_id: str, ident: str) -> str:
        item = self._item(rule_id, ident)
        return str(item["receiver"]) if item is not None else ""

    async def flush_digests(self) -> int:
        """Move due digests to the outbox and queue them; returns how many."""
        now = self._clock()
        count = 0
        for rule_id, due in list(self._digest_due.items()):
            if due > now:
                continue
            state = upgrade(dict(self._state.get(rule_id) or {}))
            state, queued = seal_digests(state, rule_id, now=now, next_seq=self._next_seq)
            if queued:
                self._state[rule_id] = state
                self._enqueue(rule_id, state, queued)
                count += len(queued)
            self._note_digest(rule_id, state)
        await self._run_inline()
        return count

    def next_digest_due(self) -> float | None:
        return min(self._digest_due.values(), default=None)

    async def drain(self) -> None:
        """Wait until every lane has settled everything queued (sent, dead-lettered, or
        left pending because the pipeline is closing)."""
        while self._queued and not self._closing:
            await asyncio.gather(*(q.join() for q in list(self._queues.values())))

    async def aclose(self, grace: float = 10.0) -> None:
        """Stop the lanes: sends in flight may finish (for up to ``grace`` seconds), waiting
        ones stop; what was not sent stays in the outbox for the next start."""
        self._closing = True
        for lane, task in self._workers.items():
            if lane not in self._busy:
                task.cancel()
        tasks = list(self._workers.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        for queue in self._queues.values():  # let drain() return
            while not queue.empty():
                queue.get_nowait()
                queue.task_done()

    # ------------------------------------------------------------------ dead letters
    def dead_letters(self) -> list[dict[str, Any]]:
        return sorted((dict(v) for v in self._dlq.values()), key=lambda e: float(e["at"]))

    async def replay(self, ids: Iterable[str] | None = None) -> list[ReplayOutcome]:
        """Send dead letters again (all when ``ids`` is None) through the dedup state: an
        alert the receiver has meanwhile received is not sent again, an entry already
        being replayed is not queued twice, and a replayed entry leaves the store once
        delivered. Returns one outcome per id."""
        wanted = list(self._dlq) if ids is None else list(ids)
        outcomes: list[ReplayOutcome] = []
        now = self._clock()
        for ident in wanted:
            entry = self._dlq.get(ident)
            if entry is None:
                outcomes.append(ReplayOutcome(ident, "not found"))
                continue
            rule_id = str(entry["rule_id"])
            state = upgrade(dict(self._state.get(rule_id) or {}))
            if ident in state.get("outbox", {}):
                outcomes.append(ReplayOutcome(ident, "already queued"))
                continue
            state, outcome = self._revive(state, ident, dict(entry), now)
            if outcome == "already delivered":
                del self._dlq[ident]
            else:
                self._state[rule_id] = state
                self._dlq[ident] = {**entry, "state": "replaying", "replayed": now}
                self._enqueue(rule_id, state, [ident])
            outcomes.append(ReplayOutcome(ident, outcome))
        await self._run_inline()
        return outcomes

    async def replay_requested(self) -> list[ReplayOutcome]:
        """Replay the dead letters marked ``requested`` by ``newswatch dlq replay`` while
        this process runs (the one writer of the rule state)."""
        ids = [k for k, v in self._dlq.items() if v.get("state") == "requested"]
        return await self.replay(ids) if ids else []

    def _revive(
        self, state: dict[str, Any], ident: str, entry: dict[str, Any], now: float
    ) -> tuple[dict[str, Any], str]:
        kind = str(entry.get("kind", "alert"))
        receiver = str(entry["receiver"])
        outbox = dict(state.get("outbox", {}))
        base = {"id": ident, "receiver": receiver, "seq": self._next_seq(), "created": now,
                "verdict": "send", "reason": f"replay of dead letter ({entry.get('reason')})"}
        if kind == "digest":
            outbox[ident] = {**base, "kind": "digest", "story": None,
                             "verdict": "throttled", "digest": entry["digest"]}
            return {**state, "outbox": outbox}, "queued"
        match = Match.from_json(entry["match"])
        stories = list(state.get("stories", []))
        story = next((s for s in stories if s["id"] == entry.get("story")), None) or next(
            (s for s in stories if match.article.key in s["keys"]), None)
        recipients = entry.get("recipients")
        if story is not None and kind == "alert" and not recipients:
            parent = story.get("parents", {}).get(receiver, {})
            if parent.get("state") == "sent":
                return state, "already delivered"
        if story is None:  # pruned since: the replay starts the story again
            story = {"id": entry.get("story") or ident, "keys": [match.article.key],
                     "ids": [match.article.id], "title": "", "lead": None, "first": now,
                     "last": now, "sources": 1, "feeds": [match.article.feed],
                     "match": compact(match), "parents": {}}
            stories.append(story)
            kind = "alert"
        if kind == "reply":
            parent = story.get("parents", {}).get(receiver, {})
            if parent.get("state") != "sent":
                kind = "alert"  # nothing to thread under: send it as an alert
        item = {**base, "kind": kind, "story": story["id"], "match": match.to_json()}
        if recipients:
            item["recipients"] = list(recipients)
        outbox[ident] = item
        if kind == "alert" and not recipients:
            parents = {**story.get("parents", {}), receiver: {"state": "pending", "shown": 1}}
            story = {**story, "parents": parents}
        stories = [story if s["id"] == story["id"] else s for s in stories]
        return {**state, "stories": stories, "outbox": outbox}, "queued"

    # ------------------------------------------------------------------ lanes
    def _lane(self, receiver: str) -> str:
        notifier = self._notifiers.get(receiver)
        return notifier.lane if notifier is not None else f"unknown:{receiver}"

    def _note_digest(self, rule_id: str, state: dict[str, Any]) -> None:
        due = next_due(state)
        if due is None:
            self._digest_due.pop(rule_id, None)
        else:
            self._digest_due[rule_id] = due

    def _enqueue(self, rule_id: str, state: dict[str, Any], idents: Sequence[str]) -> None:
        outbox = state.get("outbox", {})
        for ident in idents:
            if ident in outbox and ident not in self._queued:
                self._put(rule_id, outbox[ident])

    def _put(self, rule_id: str, item: dict[str, Any]) -> None:
        if self._closing:
            return
        self._queued.add(str(item["id"]))
        if self._inline:
            self._inline_queue.append((rule_id, str(item["id"])))
            return
        lane = self._lane(str(item["receiver"]))
        queue = self._queues.setdefault(lane, asyncio.Queue())
        queue.put_nowait((rule_id, str(item["id"])))
        if lane not in self._workers or self._workers[lane].done():
            self._workers[lane] = asyncio.create_task(self._work(lane), name=f"lane {lane}")

    async def _work(self, lane: str) -> None:
        queue = self._queues[lane]
        while not self._closing:
            rule_id, ident = await queue.get()
            try:
                await self._process(lane, rule_id, ident)
            except Exception:  # a bug must not kill the lane; the item stays in the outbox
                log.exception("lane %s: delivery of %s failed unexpectedly", lane, ident)
            finally:
                self._queued.discard(ident)
                queue.task_done()

    def _item(self, rule_id: str, ident: str) -> dict[str, Any] | None:
        state = self._state.get(rule_id) or {}
        item = state.get("outbox", {}).get(ident)
        return dict(item) if item is not None else None

    async def _process(self, lane: str, rule_id: str, ident: str) -> None:
        item = self._item(rule_id, ident)
        if item is None:
            return  # settled meanwhile
        receiver = str(item["receiver"])
        notifier = self._notifiers.get(receiver)
        if notifier is None:
            self._settle_dead(rule_id, ident, DeliveryError(
                "unknown_receiver", f"no receiver named '{receiver}'", retryable=False))
            return
        attempt = 0
        while not self._closing:
            item = self._item(rule_id, ident)
            if item is None:
                return
            if ident in self._suspects:
                found = await self._reconcile(notifier, rule_id, item)
                self._suspects.discard(ident)
                if found is not None:
                    self.reconciled += 1
                    self._settle_sent(rule_id, ident, found, reconciled=True)
                    return
            posts = item["kind"] != "update"
            await self._pacer.acquire(lane, notifier.min_interval, post=posts)
            if self._closing:
                return
            self._fence()  # last moment to stop a send this process may no longer own
            self._busy.add(lane)
            outcome: Receipt | DeliveryError | None
            try:
                outcome = await self._send(notifier, rule_id, item)
            except DeliveryError as error:
                outcome = error
            except Exception as error:  # a notifier bug: retry like a broken line
                log.exception("notifier %s failed unexpectedly", receiver)
                outcome = DeliveryError("notifier_bug", repr(error), retryable=True)
            finally:
                self._busy.discard(lane)
            if outcome is None:
                return  # settled without a send (nothing to do)
            if isinstance(outcome, Receipt):
                self._settle_sent(rule_id, ident, outcome)
                return
            age = self._clock() - float(item.get("created", self._clock()))
            if not outcome.retryable or age > self._retry.max_age:
                if outcome.retryable:
                    outcome = DeliveryError(
                        outcome.reason, f"gave up after {age:.0f}s: {outcome.message}",
                        retryable=False)
                self._settle_dead(rule_id, ident, outcome)
                return
            if outcome.reason in AMBIGUOUS_REASONS:
                self._suspects.add(ident)
            if outcome.retry_after is not None:
                wait = outcome.retry_after * (1 + self._rng.uniform(0, self._retry.jitter))
                self._pacer.pause(lane, wait)
                log.info("lane %s paused %.1fs: %s", lane, wait, outcome)
            else:
                delay = min(self._retry.first * 2**attempt, self._retry.cap)
                delay *= 1 + self._rng.uniform(-self._retry.jitter, self._retry.jitter)
                attempt += 1
                log.info("lane %s: retrying %s in %.1fs: %s", lane, ident, delay, outcome)
                await self._sleep(delay)

    async def _reconcile(
        self, notifier: Notifier, rule_id: str, item: dict[str, Any]
    ) -> Receipt | None:
        """The receipt of ``item`` if the receiver already holds it, else None."""
        where: Receipt | None = None
        in_thread = False
        if item["kind"] == "reply":
            parent = self._parent(rule_id, item)
            if parent is None:
                return None
            where, in_thread = parent, True
        elif (known := self._receipts.get(str(item["receiver"]))) is not None:
            where = Receipt.from_json(known)
        try:
            found = await notifier.find(str(item["id"]), since=float(item["created"]),
                                        where=where, in_thread=in_thread)
        except DeliveryError as error:
            log.warning("cannot check whether %s was delivered (%s); sending", item["id"],
                        error)
            return None
        if found is not None:
            log.info("%s was delivered before the restart (ts %s); not sent again",
                     item["id"], found.ref)
        return found

    def _parent(self, rule_id: str, item: dict[str, Any]) -> Receipt | None:
        story = self._story(rule_id, item.get("story"))
        parent = (story or {}).get("parents", {}).get(str(item["receiver"]), {})
        if parent.get("state") != "sent" or not parent.get("receipt"):
            return None
        return Receipt.from_json(parent["receipt"])

    def _story(self, rule_id: str, ident: Any) -> dict[str, Any] | None:
        for story in (self._state.get(rule_id) or {}).get("stories", []):
            if story["id"] == ident:
                return dict(story)
        return None

    async def _send(
        self, notifier: Notifier, rule_id: str, item: dict[str, Any]
    ) -> Receipt | None:
        kind, ident = item["kind"], str(item["id"])
        if kind == "alert":
            match = Match.from_json(item["match"])
            recipients = item.get("recipients")
            if recipients and isinstance(notifier, Addressable):
                return await notifier.send_to(match, list(recipients))
            return await notifier.send(match, ident)
        if kind == "digest":
            return await notifier.digest(Digest.from_json(item["digest"]), ident)
        if kind == "reply":
            parent = self._parent(rule_id, item)
            if parent is None:
                self._reply_to_digest(rule_id, item)
                return None
            return await notifier.reply(Match.from_json(item["match"]), parent, ident)
        # update: show the story's current source count on the first alert
        story = self._story(rule_id, item.get("story"))
        parent_info = (story or {}).get("parents", {}).get(str(item["receiver"]), {})
        parent = self._parent(rule_id, item)
        if story is None or parent is None or "match" not in story:
            self._drop(rule_id, ident)
            return None
        sources = int(story["sources"])
        if sources <= int(parent_info.get("shown", 1)):
            self._drop(rule_id, ident)
            return None
        await notifier.update_sources(parent, Match.from_json(story["match"]), sources)
        return Receipt(receiver=str(item["receiver"]), ref=parent.ref, channel=parent.channel)

    # ------------------------------------------------------------------ settling
    def _load(self, rule_id: str) -> dict[str, Any]:
        return upgrade(dict(self._state.get(rule_id) or {}))

    def _drop(self, rule_id: str, ident: str) -> None:
        state = self._load(rule_id)
        outbox = {k: v for k, v in state.get("outbox", {}).items() if k != ident}
        self._state[rule_id] = {**state, "outbox": outbox}

    def _set_parent(
        self, state: dict[str, Any], story_id: Any, receiver: str, value: dict[str, Any]
    ) -> dict[str, Any]:
        stories = []
        for story in state.get("stories", []):
            if story["id"] == story_id:
                parents = {**story.get("parents", {}), receiver: value}
                story = {**story, "parents": parents}
            stories.append(story)
        return {**state, "stories": stories}

    def _reply_to_digest(self, rule_id: str, item: dict[str, Any]) -> None:
        """A reply whose first alert was not delivered goes to the digest instead."""
        state = self._load(rule_id)
        match = Match.from_json(item["match"])
        entry = digest_entry(match, "same_story", item.get("story"), self._clock())
        state = add_to_digest(state, match, str(item["receiver"]), entry, now=self._clock())
        outbox = {k: v for k, v in state.get("outbox", {}).items() if k != item["id"]}
        self._state[rule_id] = {**state, "outbox": outbox}
        self._note_digest(rule_id, state)
        self._record(match, str(item["receiver"]),
                     Verdict("same_story", "first alert not delivered; in the next digest",
                             item.get("story")), "digest")

    def _settle_sent(
        self, rule_id: str, ident: str, receipt: Receipt, *, reconciled: bool = False
    ) -> None:
        state = self._load(rule_id)
        outbox = dict(state.get("outbox", {}))
        item = outbox.pop(ident, None)
        if item is None:
            return
        receiver = str(item["receiver"])
        kind = item["kind"]
        state = {**state, "outbox": outbox}
        if kind == "alert" and not item.get("recipients"):
            state = self._set_parent(state, item.get("story"), receiver, {
                "state": "sent", "receipt": receipt.to_json(), "shown": 1})
        elif kind == "update":
            story = next((s for s in state.get("stories", []) if s["id"] == item.get("story")),
                         None)
            if story is not None:
                parent = dict(story.get("parents", {}).get(receiver, {}))
                parent["shown"] = int(story["sources"])
                state = self._set_parent(state, story["id"], receiver, parent)
        self._state[rule_id] = state
        if receipt.channel and self._receipts.get(receiver, {}).get("channel") != \
                receipt.channel:
            # Where this receiver posts (a Slack channel id), kept for reconciliation.
            self._receipts[receiver] = receipt.to_json()
            self._meta[RECEIPTS_KEY] = dict(self._receipts)
        if ident in self._dlq:
            del self._dlq[ident]
        result = "sent:reconciled" if reconciled else "sent"
        verdict = Verdict(item.get("verdict", "send"), str(item.get("reason", "")),
                          item.get("story"))
        if kind in ("alert", "reply"):
            match = Match.from_json(item["match"])
            self._record(match, receiver, verdict, result, receipt.ref)
            for refused in receipt.refused:
                error = DeliveryError(
                    "smtp_4xx" if 400 <= refused.code <= 499 else "smtp_5xx",
                    f"recipient {refused.address} refused: {refused.code} {refused.message}",
                    retryable=False)
                self._dead_letter(f"{ident}:{refused.address}", rule_id, item, error,
                                  recipients=[refused.address])
                self._record(match, receiver, verdict, f"dead:refused {refused.address}")
        elif kind == "digest":
            digest = item["digest"]
            for entry in digest.get("entries", []):
                self._audit.log_decision(Decision(
                    at=self._clock(), rule_id=rule_id, article=str(entry.get("key", "")),
                    title=str(entry.get("title", ""))[:300], receiver=receiver,
                    verdict=str(entry.get("kind", "throttled")), reason="sent in a digest",
                    result=f"{result}:digest", ref=receipt.ref, story=entry.get("story")))

    def _settle_dead(self, rule_id: str, ident: str, error: DeliveryError) -> None:
        state = self._load(rule_id)
        outbox = dict(state.get("outbox", {}))
        item = outbox.pop(ident, None)
        if item is None:
            return
        state = {**state, "outbox": outbox}
        receiver = str(item["receiver"])
        if item["kind"] == "alert" and not item.get("recipients"):
            state = self._set_parent(state, item.get("story"), receiver,
                                     {"state": "dead", "reason": error.reason})
        self._state[rule_id] = state
        if item["kind"] == "update":  # cosmetic: the source count stays as it was
            log.warning("source count of %s not updated: %s", item.get("story"), error)
            return
        self._dead_letter(ident, rule_id, item, error, recipients=item.get("recipients"))
        verdict = Verdict(item.get("verdict", "send"), str(item.get("reason", "")),
                          item.get("story"))
        if "match" in item:
            self._record(Match.from_json(item["match"]), receiver, verdict,
                         f"dead:{error.reason}")
        else:
            self._audit.log_decision(Decision(
                at=self._clock(), rule_id=rule_id, article="", title="(digest)",
                receiver=receiver, verdict="throttled", reason=verdict.reason,
                result=f"dead:{error.reason}"))

    def _dead_letter(
        self, ident: str, rule_id: str, item: dict[str, Any], error: DeliveryError,
        recipients: Sequence[str] | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "id": ident, "at": self._clock(), "rule_id": rule_id,
            "receiver": item["receiver"], "kind": item["kind"], "story": item.get("story"),
            "reason": error.reason, "message": error.message, "state": "dead",
        }
        if "match" in item:
            entry["match"] = item["match"]
            entry["title"] = str(item["match"]["article"].get("title", ""))[:300]
        if "digest" in item:
            entry["digest"] = item["digest"]
            count = len(item["digest"].get("entries", [])) + int(item["digest"].get("more", 0))
            entry["title"] = f"digest of {count} match(es)"
        if recipients:
            entry["recipients"] = list(recipients)
        self._dlq[ident] = entry
        log.warning("dead letter %s for %s: %s", ident, item["receiver"], error,
                    extra={"receiver": item["receiver"], "rule_id": rule_id})

    def _record(
        self, match: Match, receiver: str, verdict: Verdict, result: str, ref: str | None = None
    ) -> None:
        log.info("%s: %s -> %s (%s)", match.rule_id, verdict.kind, receiver, result,
                 extra={"feed": match.article.feed, "rule_id": match.rule_id,
                        "article_id": match.article.id, "verdict": verdict.kind,
                        "receiver": receiver})
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
                story=verdict.story,
            )
        )
