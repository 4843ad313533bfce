"""Dead letters: replaying them through the outbox.

An entry replayed goes back into its rule's outbox (streams/outbox.py, ``revive``) and so
through the dedup state: an alert the receiver has meanwhile received is not sent again, an
entry already being replayed is not queued twice, and an entry leaves the store once
delivered (replaying twice delivers once). ``newswatch dlq replay`` marks entries
``requested`` while a monitor runs; that monitor replays them (``replay_requested``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from newswatch.streams.lanes import Lanes
from newswatch.streams.outbox import revive
from newswatch.streams.store import DeliveryStore

Outcome = Literal["queued", "already delivered", "already queued", "not found"]


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What ``replay`` did with one dead letter: ``queued``, ``already delivered``,
    ``already queued`` or ``not found``."""

    id: str
    outcome: str  # an Outcome


class Replay:
    """Replays the dead letters of ``store`` into ``lanes``."""

    def __init__(self, *, store: DeliveryStore, lanes: Lanes, clock: Callable[[], float]) -> None:
        self._store = store
        self._lanes = lanes
        self._clock = clock

    async def replay(self, ids: Iterable[str] | None = None) -> list[ReplayOutcome]:
        """Send dead letters again (all when ``ids`` is None); one outcome per id."""
        wanted = self._store.letter_ids() if ids is None else list(ids)
        now = self._clock()
        outcomes = [ReplayOutcome(ident, self._replay_one(ident, now)) for ident in wanted]
        await self._lanes.run_inline()
        return outcomes

    async def replay_requested(self) -> list[ReplayOutcome]:
        """Replay the dead letters marked ``requested`` by ``newswatch dlq replay`` while
        this process runs (the one writer of the rule state)."""
        ids = self._store.letter_ids("requested")
        return await self.replay(ids) if ids else []

    def _replay_one(self, ident: str, now: float) -> Outcome:
        letter = self._store.letter(ident)
        if letter is None:
            return "not found"
        state = self._store.load(letter.rule_id)
        if ident in state.outbox:
            return "already queued"
        state, outcome = revive(state, letter, now=now, seq=self._store.next_seq())
        if outcome == "already delivered":
            self._store.remove_letter(ident)
        else:
            self._store.save(letter.rule_id, state)
            self._store.put_letter(replace(letter, state="replaying", replayed=now))
            self._lanes.enqueue(letter.rule_id, state, [ident])
        return outcome
