"""Where delivery state meets its storage: the one place that reads and writes the rule
states (rule id → :class:`~newswatch.streams.rulestate.RuleState` JSON) and the dead
letters (id → :class:`~newswatch.streams.rulestate.DeadLetter` JSON), logs decisions to the
audit log, and keeps the small bookkeeping of delivery (where each receiver posts, when
digests are due, the outbox sequence).

The mappings are SQLite (``Database.mapping``) in the embedded runtime and faust Tables in
the Kafka runtime: a value is copied in and out, so every change is written back whole (the
changelog then sees it) and the stored form stays JSON. Settling an item (sent, dead) is a
pure transition (streams/outbox.py) plus one write plus its audit lines.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from newswatch.core.errors import DeliveryError
from newswatch.core.state import Decision
from newswatch.streams.alerts import Match
from newswatch.streams.decide import Verdict, next_due
from newswatch.streams.notifiers import Receipt
from newswatch.streams.outbox import (
    dead_letter,
    drop,
    mark_dead,
    mark_sent,
    reply_to_digest,
    require_match,
)
from newswatch.streams.rulestate import (
    VERSION,
    DeadLetter,
    LetterState,
    OutboxItem,
    RuleState,
)

log = logging.getLogger("newswatch.delivery")

RECEIPTS_KEY = "delivery_receipts"  # meta key: receiver → a receipt locating its channel
PARSED_RULES = 256  # rule states kept parsed (most recently used)
ALL_RULES = 1 << 62  # as ``parsed_rules``: no bound


class DecisionLog(Protocol):
    def log_decision(self, d: Decision) -> None: ...


class DeliveryStore:
    """Rule states in ``state``, dead letters in ``dlq``, decisions to ``audit``, where each
    receiver posts in ``meta``; ``clock`` (seconds) stamps audit lines and dead letters.

    ``encoded``: ``state`` holds each rule state as its JSON text in UTF-8 bytes (the Kafka
    worker's table, which keeps values in memory as given) rather than as a mapping. A
    busy worker's rule states are most of its heap: as text, Python's garbage collector
    does not walk them (docs/performance.md, "Where the time goes"). ``parsed_rules``
    bounds the rule states kept parsed.

    ``typed``: ``state`` holds the :class:`RuleState` values themselves, never their JSON:
    for state that lives in memory only and that nothing else reads (the rule backtest,
    streams/backtest.py), where writing a whole rule state out as JSON after every
    decision and send was most of the cost of deciding."""

    def __init__(
        self, *, state: MutableMapping[str, Any], dlq: MutableMapping[str, Any],
        audit: DecisionLog, meta: MutableMapping[str, Any], clock: Callable[[], float],
        encoded: bool = False, parsed_rules: int = PARSED_RULES, typed: bool = False,
    ) -> None:
        if encoded and typed:
            raise ValueError("a rule state is stored either encoded or typed")
        self._state = state
        self._encoded = encoded
        self._typed = typed
        self._parsed_rules = parsed_rules
        self._dlq = dlq
        self._audit = audit
        self._meta = meta
        self._clock = clock
        self._seq = 0
        self._digest_due: dict[str, float] = {}
        self._receipts: dict[str, Receipt] = {}
        # rule id → (the stored value it was parsed from, the parsed state)
        self._parsed: OrderedDict[str, tuple[object, RuleState]] = OrderedDict()

    # ------------------------------------------------------------------ rule states
    def rules(self) -> list[str]:
        return list(self._state)

    def load(self, rule_id: str) -> RuleState:
        return self._parse(rule_id, self._state.get(rule_id))

    def load_upgraded(self, rule_id: str) -> RuleState:
        """``load``, writing a state stored in an older version back in the current one
        when it has something to send (found at restart)."""
        stored = self._state.get(rule_id)
        state = self._parse(rule_id, stored)
        if (not isinstance(stored, RuleState) and self._decode(stored).get("v") != VERSION
                and state.outbox):
            self.save(rule_id, state)
        return state

    def save(self, rule_id: str, state: RuleState) -> None:
        """Write ``state`` (durable before any send of its items)."""
        if self._typed:
            self._state[rule_id] = state
            self.note_digests(rule_id, state)
            return
        stored: object = state.to_json()
        if self._encoded:
            stored = json.dumps(stored, ensure_ascii=False, separators=(",", ":")).encode()
        self._state[rule_id] = stored
        self._remember_parsed(rule_id, stored, state)
        self.note_digests(rule_id, state)

    def _decode(self, stored: object) -> Mapping[str, Any]:
        """A stored rule state as its JSON mapping (empty when there is none)."""
        if isinstance(stored, bytes | str):
            decoded = json.loads(stored)
            return decoded if isinstance(decoded, Mapping) else {}
        return stored if isinstance(stored, Mapping) else {}

    def _parse(self, rule_id: str, stored: object) -> RuleState:
        """``RuleState.from_json(stored)``; the value parsed last time when the stored value
        is still the same (comparing is much cheaper than parsing every story again; text
        is usually the very same object). A typed state is its own parsed form."""
        if isinstance(stored, RuleState):
            return stored
        cached = self._parsed.get(rule_id)
        if cached is not None and (cached[0] is stored or cached[0] == stored):
            self._parsed.move_to_end(rule_id)
            return cached[1]
        state = RuleState.from_json(self._decode(stored))
        self._remember_parsed(rule_id, stored, state)
        return state

    def _remember_parsed(self, rule_id: str, stored: object, state: RuleState) -> None:
        self._parsed[rule_id] = (stored, state)
        self._parsed.move_to_end(rule_id)
        while len(self._parsed) > self._parsed_rules:
            self._parsed.popitem(last=False)

    def item(self, rule_id: str, ident: str) -> OutboxItem | None:
        """Outbox item ``ident`` of ``rule_id`` (read alone: lanes ask before each try)."""
        return self.load(rule_id).outbox.get(ident)

    def next_seq(self) -> int:
        """The next outbox sequence number (nanoseconds, so it keeps growing across
        restarts and processes)."""
        self._seq = max(self._seq + 1, time.time_ns())
        return self._seq

    def saw_seq(self, seq: int) -> None:
        self._seq = max(self._seq, seq)

    # ------------------------------------------------------------------ digests
    def note_digests(self, rule_id: str, state: RuleState) -> None:
        due = next_due(state)
        if due is None:
            self._digest_due.pop(rule_id, None)
        else:
            self._digest_due[rule_id] = due

    def due_rules(self, now: float) -> list[str]:
        """Rules with a digest due at ``now``."""
        return [rule_id for rule_id, due in list(self._digest_due.items()) if due <= now]

    def next_digest_due(self) -> float | None:
        return min(self._digest_due.values(), default=None)

    # ------------------------------------------------------------------ receipts
    def load_receipts(self, states: Sequence[RuleState] = ()) -> None:
        """Learn where receivers post: from ``meta``, then from the first alerts of
        ``states`` for the receivers still unknown."""
        for receiver, receipt in dict(self._meta.get(RECEIPTS_KEY) or {}).items():
            self._receipts.setdefault(receiver, Receipt.from_json(receipt))
        for state in states:
            for story in state.stories:
                for receiver, parent in story.parents.items():
                    if parent.receipt is not None and receiver not in self._receipts:
                        self._receipts[receiver] = parent.receipt

    def receipt_for(self, receiver: str) -> Receipt | None:
        """A receipt locating ``receiver``'s channel, for looking a message up."""
        return self._receipts.get(receiver)

    def _remember(self, receiver: str, receipt: Receipt) -> None:
        known = self._receipts.get(receiver)
        if receipt.channel and (known is None or known.channel != receipt.channel):
            self._receipts[receiver] = receipt
            self._meta[RECEIPTS_KEY] = {r: k.to_json() for r, k in self._receipts.items()}

    # ------------------------------------------------------------------ settling
    def drop(self, rule_id: str, ident: str) -> None:
        self.save(rule_id, drop(self.load(rule_id), ident))

    def reply_to_digest(self, rule_id: str, item: OutboxItem) -> None:
        """A reply whose first alert was not delivered goes to the digest instead."""
        self.save(rule_id, reply_to_digest(self.load(rule_id), item, now=self._clock()))
        self.record(require_match(item), item.receiver,
                    Verdict("same_story", "first alert not delivered; in the next digest",
                            item.story), "digest")

    def settle_sent(
        self, rule_id: str, ident: str, receipt: Receipt, *, reconciled: bool = False
    ) -> None:
        """Item ``ident`` was accepted by its receiver (or found there: ``reconciled``)."""
        state, item = mark_sent(self.load(rule_id), ident, receipt)
        if item is None:
            return
        self.save(rule_id, state)
        self._remember(item.receiver, receipt)  # where the receiver posts, kept for reconciliation
        self.remove_letter(ident)
        result = "sent:reconciled" if reconciled else "sent"
        verdict = Verdict(item.verdict, item.reason, item.story)
        if item.kind in ("alert", "reply"):
            match = require_match(item)
            self.record(match, item.receiver, verdict, result, receipt.ref)
            for refused in receipt.refused:
                error = DeliveryError(
                    "smtp_4xx" if 400 <= refused.code <= 499 else "smtp_5xx",
                    f"recipient {refused.address} refused: {refused.code} {refused.message}",
                    retryable=False)
                self.put_letter(dead_letter(item, rule_id, error, now=self._clock(),
                                            ident=f"{ident}:{refused.address}",
                                            recipients=[refused.address]))
                self.record(match, item.receiver, verdict, f"dead:refused {refused.address}")
        elif item.kind == "digest" and item.digest is not None:
            for entry in item.digest.entries:
                self._audit.log_decision(Decision(
                    at=self._clock(), rule_id=rule_id, article=entry.key,
                    title=entry.title[:300], receiver=item.receiver, verdict=entry.kind,
                    reason="sent in a digest", result=f"{result}:digest", ref=receipt.ref,
                    story=entry.story))

    def settle_dead(self, rule_id: str, ident: str, error: DeliveryError) -> None:
        """Item ``ident`` cannot be delivered: to the dead-letter store, with the reason."""
        state, item = mark_dead(self.load(rule_id), ident, error.reason)
        if item is None:
            return
        self.save(rule_id, state)
        if item.kind == "update":  # cosmetic: the source count stays as it was
            log.warning("source count of %s not updated: %s", item.story, error)
            return
        self.put_letter(dead_letter(item, rule_id, error, now=self._clock(),
                                    recipients=item.recipients))
        verdict = Verdict(item.verdict, item.reason, item.story)
        if item.match is not None:
            self.record(item.match, item.receiver, verdict, f"dead:{error.reason}")
        else:
            self._audit.log_decision(Decision(
                at=self._clock(), rule_id=rule_id, article="", title="(digest)",
                receiver=item.receiver, verdict="throttled", reason=verdict.reason,
                result=f"dead:{error.reason}"))

    # ------------------------------------------------------------------ dead letters
    def letter(self, ident: str) -> DeadLetter | None:
        stored = self._dlq.get(ident)
        return DeadLetter.from_json(stored) if stored is not None else None

    def letter_ids(self, state: LetterState | None = None) -> list[str]:
        """Ids of the dead letters (in ``state`` only, when given)."""
        if state is None:
            return list(self._dlq)
        return [k for k, v in self._dlq.items() if DeadLetter.from_json(v).state == state]

    def letters_json(self) -> list[dict[str, Any]]:
        """The dead letters as stored, oldest first."""
        return sorted((dict(v) for v in self._dlq.values()), key=lambda e: float(e["at"]))

    def put_letter(self, letter: DeadLetter) -> None:
        self._dlq[letter.id] = letter.to_json()
        if letter.state == "dead":
            log.warning("dead letter %s for %s: %s: %s", letter.id, letter.receiver,
                        letter.reason, letter.message,
                        extra={"receiver": letter.receiver, "rule_id": letter.rule_id})

    def remove_letter(self, ident: str) -> None:
        if ident in self._dlq:
            del self._dlq[ident]

    # ------------------------------------------------------------------ audit
    def record(
        self, match: Match, receiver: str, verdict: Verdict, result: str, ref: str | None = None
    ) -> None:
        """One decision or outcome for ``receiver``: a log line and an audit row."""
        log.info("%s: %s -> %s (%s)", match.rule_id, verdict.kind, receiver, result,
                 extra={"feed": match.article.feed, "rule_id": match.rule_id,
                        "article_id": match.article.id, "verdict": verdict.kind,
                        "receiver": receiver})
        self._audit.log_decision(Decision(
            at=self._clock(), rule_id=match.rule_id, article=match.article.key,
            title=match.article.title[:300], receiver=receiver, verdict=verdict.kind,
            reason=verdict.reason, result=result, ref=ref, story=verdict.story))
