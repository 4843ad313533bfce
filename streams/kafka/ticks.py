"""Which rules the Kafka worker's tick timer ticks, and when (pure; no faust).

A rule needs a tick when its stored delivery state holds a digest that is due or something
in its outbox (a delivery a crashed or replaced worker left pending, a digest sealed and not
sent yet). The tick itself (``Pipeline.tick_rule``: seal the due digests, send the outbox)
writes the rule's table row, which faust allows only inside an event of the row's partition,
so the timer does not run it: it sends a ``TickMessage`` keyed by the rule id through the
matches topic, and the worker that owns the partition runs it in its deliver agent.

Blind-rule checks (streams/blindwatch.py) travel the same way: ``BlindPlanner`` picks the
rules whose blindness, seen from the worker's local view, would change what their state
says was announced.

Every worker's timer scans its local table, which may still hold rows of partitions the
worker no longer owns (the worker runs without standby copies): a tick sent for such a
rule reaches the owner too, and a tick for a rule with nothing due (a stale row, a second
tick) does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from newswatch.streams.rulestate import RuleState

TICK_EVERY = 2.0  # seconds between scans: a digest goes out within this of its due time
# An outbox item still there this long is ticked (one being sent right now is not: the
# deliver agent settles it within its event); a rule still due this long after its tick is
# ticked again (the tick may wait behind the partition's other events, an inline retry can
# hold the agent, or be lost with a worker).
TICK_AGAIN = 10.0

Need = Literal["digest", "outbox"]


def tick_need(state: RuleState | None, now: float) -> Need | None:
    """Why a rule's delivery state needs a tick at ``now``: a ``digest`` due, something in
    its ``outbox``, or nothing (None)."""
    if state is None:
        return None
    if any(d.due <= now for d in state.digests.values()):
        return "digest"
    return "outbox" if state.outbox else None


class TickPlanner:
    """The rules to tick in one timer round: a rule with a due digest at once, a rule
    whose outbox holds something for ``again`` seconds then; while a rule still needs a
    tick for the same reason, again every ``again`` seconds."""

    def __init__(self, *, again: float = TICK_AGAIN) -> None:
        self.again = again
        self._since: dict[tuple[str, Need], float] = {}  # since when a rule needs a tick
        self._ticked: dict[tuple[str, Need], float] = {}  # when it was last ticked for it

    def due(self, rules: Iterable[tuple[str, RuleState | None]], now: float) -> list[str]:
        """The rule ids of ``rules`` (rule id, delivery state) to tick at ``now``."""
        wanted: list[str] = []
        still: set[tuple[str, Need]] = set()
        for rule_id, state in rules:
            need = tick_need(state, now)
            if need is None:
                continue
            key = (rule_id, need)
            still.add(key)
            since = self._since.setdefault(key, now)
            last = self._ticked.get(key)
            if last is not None:
                ready = now - last >= self.again
            else:
                ready = need == "digest" or now - since >= self.again
            if ready:
                self._ticked[key] = now
                wanted.append(rule_id)
        for key in set(self._since) - still:  # settled: forget it
            self._since.pop(key, None)
            self._ticked.pop(key, None)
        return wanted


BLIND_SCAN_EVERY = 10.0  # seconds between two looks at the rules' blindness
BLIND_AGAIN = 60.0  # a rule still wanting a check this long after its tick is ticked again


class BlindPlanner:
    """The rules to tick for a blindness check: every ``scan_every`` seconds, the rules
    ``wants`` says a check would change, each at most once per ``again`` seconds. The
    owner's check settles its rule (its local state then agrees, and it stops wanting);
    a worker that does not own the rule keeps its old view and ticks it again only every
    ``again`` seconds."""

    def __init__(self, *, scan_every: float = BLIND_SCAN_EVERY,
                 again: float = BLIND_AGAIN) -> None:
        self.scan_every = scan_every
        self.again = again
        self._scanned: float | None = None
        self._ticked: dict[str, float] = {}

    def due(self, wants: Callable[[float], Iterable[str]], now: float) -> list[str]:
        """The rule ids to tick at ``now``; ``wants(now)`` is called once per scan."""
        if self._scanned is not None and now - self._scanned < self.scan_every:
            return []
        self._scanned = now
        wanted = list(wants(now))
        self._ticked = {r: t for r, t in self._ticked.items() if r in wanted}
        due = [r for r in wanted if now - self._ticked.get(r, -self.again) >= self.again]
        self._ticked.update((r, now) for r in due)
        return due
