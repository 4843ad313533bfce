"""Lanes: sending the outbox, one conversation at a time.

One lane per conversation (a Slack channel, an e-mail receiver, the console), each with one
worker sending its items in decision order (FIFO, by sequence number), so alerts reach a
channel in order and a thread reply always follows its first alert. A lane posts at most
once per ``Notifier.min_interval`` (Slack: 1 s); a 429 pauses that lane only, for
Retry-After. Other failures that may succeed later (5xx, network, SMTP 4xx) are retried
with exponential backoff and jitter; the lane waits (order is kept) until the item is older
than ``RetryPolicy.max_age``, then it goes to the dead-letter store. A permanent failure
goes there at once, with its reason, and the lane moves on; other lanes never wait.

Reconciliation: an item that may have reached the receiver although it was not recorded
``sent`` (the head of a lane after a restart, or after an ambiguous failure: 5xx or a
broken connection) is looked up first (``Notifier.find``: Slack message metadata carries
the item id); when found it is settled without sending.

``inline=True`` sends in the caller's task instead (the Kafka runtime: a faust Table may
only be written inside the agent's event); the same order, pacing and retries apply.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from newswatch.core.errors import DeliveryError, StateError
from newswatch.streams.notifiers import Addressable, Notifier, Receipt
from newswatch.streams.outbox import parent_receipt, require_match, source_update
from newswatch.streams.pacing import Pacer
from newswatch.streams.rulestate import OutboxItem, RuleState
from newswatch.streams.store import DeliveryStore

log = logging.getLogger("newswatch.delivery")

#: Failures after which the receiver may hold the message although the call failed.
AMBIGUOUS_REASONS = frozenset({"http_5xx", "connection", "notifier_bug"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff in seconds: ``first`` × 2^n with ±``jitter`` share, each wait at most
    ``cap``; a Retry-After is waited as given (plus up to ``jitter`` more). A delivery still
    failing ``max_age`` seconds after its decision goes to the dead-letter store."""

    first: float = 1.0
    cap: float = 60.0
    max_age: float = 3600.0
    jitter: float = 0.2


class Lanes:
    """Queues and workers per lane over the outbox in ``store``; ``fence`` is called
    right before every send (it stops the process when sending is no longer safe)."""

    def __init__(
        self, *, notifiers: Mapping[str, Notifier], store: DeliveryStore,
        clock: Callable[[], float],
        retry: RetryPolicy, sleep: Callable[[float], Awaitable[None]], pacer: Pacer,
        rng: random.Random, inline: bool, fence: Callable[[], None],
    ) -> None:
        self._notifiers = notifiers
        self._store = store
        self._clock = clock
        self._retry = retry
        self._sleep = sleep
        self._pacer = pacer
        self._rng = rng
        self._inline = inline
        self._fence = fence
        self._queues: dict[str, asyncio.Queue[tuple[str, str]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._suspects: set[str] = set()
        self._inline_queue: list[tuple[str, str]] = []
        self._closing = False
        self.failed = asyncio.Event()  # set by ``fail``
        self.failure: StateError | None = None
        self.reconciled = 0  # sends avoided because the receiver already had the message

    def lane(self, receiver: str) -> str:
        notifier = self._notifiers.get(receiver)
        return notifier.lane if notifier is not None else f"unknown:{receiver}"

    # ------------------------------------------------------------------ queueing
    def suspect_heads(self, items: Iterable[OutboxItem]) -> None:
        """Mark the first item of each lane (in sending order) as possibly sent before a
        crash: it is looked up before it is sent again (a source-count update is not)."""
        heads: set[str] = set()
        for item in items:
            lane = self.lane(item.receiver)
            if lane not in heads:
                heads.add(lane)
                if item.kind != "update":
                    self._suspects.add(item.id)

    def holds(self, ident: str) -> bool:
        """Whether item ``ident`` is queued or being sent here (then it is this process's
        own, not something a crashed one may have sent)."""
        return ident in self._queued

    def put_all(self, rule_id: str, items: Iterable[OutboxItem]) -> None:
        """Queue the ``items`` of ``rule_id`` not queued yet."""
        for item in items:
            if item.id not in self._queued:
                self.put(rule_id, item)

    def enqueue(self, rule_id: str, state: RuleState, idents: Sequence[str]) -> None:
        """Queue the outbox items ``idents`` of ``state``."""
        self.put_all(rule_id, [state.outbox[i] for i in idents if i in state.outbox])

    def put(self, rule_id: str, item: OutboxItem) -> None:
        if self._closing:
            return
        self._queued.add(item.id)
        if self._inline:
            self._inline_queue.append((rule_id, item.id))
            return
        lane = self.lane(item.receiver)
        queue = self._queues.setdefault(lane, asyncio.Queue())
        queue.put_nowait((rule_id, item.id))
        if lane not in self._workers or self._workers[lane].done():
            self._workers[lane] = asyncio.create_task(self._work(lane), name=f"lane {lane}")

    # ------------------------------------------------------------------ running
    async def run_inline(self) -> None:
        """Inline mode: send what was queued, in the caller's task."""
        while self._inline and self._inline_queue and not self._closing:
            rule_id, ident = self._inline_queue.pop(0)
            try:
                item = self._store.item(rule_id, ident)
                await self._process(self.lane(item.receiver if item else ""), rule_id, ident)
            finally:
                self._queued.discard(ident)

    async def drain(self) -> None:
        """Wait until every lane has settled everything queued (sent, dead-lettered, or
        left pending because the lanes are closing)."""
        while self._queued and not self._closing:
            await asyncio.gather(*(q.join() for q in list(self._queues.values())))

    def fail(self, error: StateError) -> None:
        """The delivery state cannot be written: stop sending at once. A send whose
        result cannot be recorded is sent again after a restart (looked up first where the
        receiver allows), so at most the one in flight per lane; what is queued stays in
        the outbox."""
        if self.failure is None:
            log.error("delivery stopped, the state cannot be written: %s", error)
            self.failure = error
        self._closing = True
        self.failed.set()
        for queue in self._queues.values():  # let drain() return
            while not queue.empty():
                self._queued.discard(queue.get_nowait()[1])
                queue.task_done()

    async def aclose(self, grace: float) -> None:
        """Stop the lanes: sends in flight may finish (for up to ``grace`` seconds), waiting
        ones stop; what was not sent stays in the outbox."""
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

    async def _work(self, lane: str) -> None:
        queue = self._queues[lane]
        while not self._closing:
            rule_id, ident = await queue.get()
            try:
                await self._process(lane, rule_id, ident)
            except StateError as error:
                self.fail(error)
            except Exception:  # a bug must not kill the lane; the item stays in the outbox
                log.exception("lane %s: delivery of %s failed unexpectedly", lane, ident)
            finally:
                self._queued.discard(ident)
                queue.task_done()

    # ------------------------------------------------------------------ one item
    async def _process(self, lane: str, rule_id: str, ident: str) -> None:
        """Send item ``ident`` until it is settled (sent, found, dead) or the lanes close."""
        item = self._store.item(rule_id, ident)
        if item is None:
            return  # settled meanwhile
        notifier = self._notifiers.get(item.receiver)
        if notifier is None:
            self._store.settle_dead(rule_id, ident, DeliveryError(
                "unknown_receiver", f"no receiver named '{item.receiver}'", retryable=False))
            return
        attempt: int | None = 0
        while attempt is not None and not self._closing:
            item = self._store.item(rule_id, ident)
            if item is None:
                return
            if ident in self._suspects:
                found = await self._reconcile(notifier, rule_id, item)
                self._suspects.discard(ident)
                if found is not None:
                    self.reconciled += 1
                    self._store.settle_sent(rule_id, ident, found, reconciled=True)
                    return
            await self._pacer.acquire(lane, notifier.min_interval, post=item.kind != "update")
            if self._closing:
                return
            self._fence()  # last moment to stop a send this process may no longer own
            outcome = await self._attempt(lane, notifier, rule_id, item)
            if outcome is None:
                return  # settled without a send (nothing to do)
            if isinstance(outcome, Receipt):
                self._store.settle_sent(rule_id, ident, outcome)
                return
            attempt = await self._after_failure(lane, rule_id, item, outcome, attempt)

    async def _attempt(
        self, lane: str, notifier: Notifier, rule_id: str, item: OutboxItem
    ) -> Receipt | DeliveryError | None:
        self._busy.add(lane)
        try:
            return await self._send(notifier, rule_id, item)
        except DeliveryError as error:
            return error
        except Exception as error:  # a notifier bug: retry like a broken line
            log.exception("notifier %s failed unexpectedly", item.receiver)
            return DeliveryError("notifier_bug", repr(error), retryable=True)
        finally:
            self._busy.discard(lane)

    async def _after_failure(
        self, lane: str, rule_id: str, item: OutboxItem, error: DeliveryError, attempt: int
    ) -> int | None:
        """Dead-letter ``item`` (None) or wait before the next attempt (its number)."""
        age = self._clock() - item.created
        if not error.retryable or age > self._retry.max_age:
            if error.retryable:
                error = DeliveryError(error.reason, f"gave up after {age:.0f}s: {error.message}",
                                      retryable=False)
            self._store.settle_dead(rule_id, item.id, error)
            return None
        if error.reason in AMBIGUOUS_REASONS:
            self._suspects.add(item.id)
        if error.retry_after is not None:
            wait = error.retry_after * (1 + self._rng.uniform(0, self._retry.jitter))
            self._pacer.pause(lane, wait)
            log.info("lane %s paused %.1fs: %s", lane, wait, error)
            return attempt
        delay = min(self._retry.first * 2**attempt, self._retry.cap)
        delay *= 1 + self._rng.uniform(-self._retry.jitter, self._retry.jitter)
        log.info("lane %s: retrying %s in %.1fs: %s", lane, item.id, delay, error)
        await self._sleep(delay)
        return attempt + 1

    async def _reconcile(
        self, notifier: Notifier, rule_id: str, item: OutboxItem
    ) -> Receipt | None:
        """The receipt of ``item`` if the receiver already holds it, else None."""
        where: Receipt | None = None
        in_thread = False
        if item.kind in ("reply", "note"):
            parent = parent_receipt(self._store.load(rule_id), item)
            if parent is None:
                return None
            where, in_thread = parent, True
        else:
            where = self._store.receipt_for(item.receiver)
        try:
            found = await notifier.find(item.id, since=item.created, where=where,
                                        in_thread=in_thread)
        except DeliveryError as error:
            log.warning("cannot check whether %s was delivered (%s); sending", item.id, error)
            return None
        if found is not None:
            log.info("%s was delivered before the restart (ts %s); not sent again",
                     item.id, found.ref)
        return found

    async def _send(
        self, notifier: Notifier, rule_id: str, item: OutboxItem
    ) -> Receipt | None:
        if item.kind in ("alert", "escalation"):
            match = require_match(item)
            if item.recipients and isinstance(notifier, Addressable):
                return await notifier.send_to(match, list(item.recipients))
            return await notifier.send(match, item.id)
        if item.kind == "digest":
            if item.digest is None:
                raise ValueError(f"digest {item.id} carries no digest")
            return await notifier.digest(item.digest.to_digest(), item.id)
        state = self._store.load(rule_id)
        if item.kind in ("reply", "note"):
            parent = parent_receipt(state, item)
            if parent is not None:
                return await notifier.reply(require_match(item), parent, item.id)
            if item.kind == "reply":
                self._store.reply_to_digest(rule_id, item)
            else:  # the first alert never arrived: no thread to note the escalation in
                log.info("escalation note %s dropped: the first alert of %s was not "
                         "delivered", item.id, item.story)
                self._store.drop(rule_id, item.id)
            return None
        update = source_update(state, item)  # show the story's current source count
        if update is None:
            self._store.drop(rule_id, item.id)
            return None
        await notifier.update_sources(update.parent, update.match, update.sources)
        return Receipt(receiver=item.receiver, ref=update.parent.ref,
                       channel=update.parent.channel)
