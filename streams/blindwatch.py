"""Blind-rule warnings in a runtime: each rule assessed against the feeds' statuses and its
activity (streams/blindness.py, pure), a change announced to ops once and remembered in
the rule's delivery state.

The embedded runtime checks every rule every :data:`CHECK_EVERY` seconds; the Kafka
worker checks a rule in the deliver agent of the rule's partition (where its state may be
written), when its tick timer finds the rule's assessment changed
(``BlindWatch.changed``, on the local view) and sends it a tick.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from newswatch.monitor.health import STATUS_ORDER, FeedHealth, current_status
from newswatch.rules.model import Rule
from newswatch.streams.alerts import Match
from newswatch.streams.blindness import Change, RuleActivity, assess, settle
from newswatch.streams.notices import blind_notice
from newswatch.streams.rulestate import RuleState

log = logging.getLogger("newswatch.blindness")

CHECK_EVERY = 60.0  # seconds between two looks at every rule


def feed_statuses(health: Mapping[str, Any], now: float) -> dict[str, str]:
    """Each feed's current status (``ok``, ``failing``, ``stale``, ``disabled``,
    ``never_polled``) from its stored health record (feed name → JSON). Other records
    (a feed's page counters in Kafka) and records that do not read are left out: a feed
    the statuses do not know is not counted."""
    statuses: dict[str, str] = {}
    for key, record in health.items():
        if not isinstance(record, dict) or record.get("feed") != key:
            continue
        try:
            feed = FeedHealth.from_json(record)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if feed.status in STATUS_ORDER:
            statuses[feed.feed] = current_status(feed, now)
    return statuses


def shown(activity: RuleActivity) -> dict[str, Any] | None:
    """What ``newswatch status`` shows of a rule's blindness (None: it sees)."""
    if activity.announced != "blind":
        return None
    return {"since": activity.since, "reasons": list(activity.reasons)}


class BlindWatch:
    """Checks rules and announces their changes.

    ``state(rule_id)`` reads a rule's delivery state, ``save(rule_id, activity)`` stores
    its settled activity (``Pipeline.rule_state`` and ``Pipeline.save_activity``);
    ``statuses(now)`` gives the feeds' statuses; ``notify`` delivers an ops notice durably
    (the runtime's ``notify``) to ``receiver`` (None: changes are only logged and kept);
    ``show`` is told each change (rule id, ``shown``) for ``newswatch status``.
    ``clock`` is Unix time."""

    def __init__(
        self, *, state: Callable[[str], RuleState],
        save: Callable[[str, RuleActivity], None],
        statuses: Callable[[float], Mapping[str, str]],
        notify: Callable[[Match], Awaitable[object]], receiver: str | None,
        show: Callable[[str, dict[str, Any] | None], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self._show = show
        self._state = state
        self._save = save
        self._statuses = statuses
        self._notify = notify
        self._receiver = receiver
        self._clock = clock

    def changed(self, rule: Rule, state: RuleState | None, now: float,
                statuses: Mapping[str, str]) -> bool:
        """Whether checking ``rule`` would change what is stored (``state``: a view of its
        delivery state, None when there is none)."""
        activity = state.activity if state is not None else RuleActivity()
        reasons = assess(activity, depends_on=rule.feeds, statuses=statuses, now=now)
        return settle(activity, reasons, now)[0] != activity

    async def check(self, rule: Rule, statuses: Mapping[str, str] | None = None
                    ) -> Change | None:
        """Assess ``rule`` now (``statuses``: the feeds' statuses when already read);
        announce a change (the notice is durable before the change is stored: a crash in
        between announces it again, never loses it)."""
        now = self._clock()
        before = self._state(rule.id).activity
        if statuses is None:
            statuses = self._statuses(now)
        reasons = assess(before, depends_on=rule.feeds, statuses=statuses, now=now)
        after, change = settle(before, reasons, now)
        if after == before:
            return None
        if change is not None:
            log.warning("rule %s: %s%s", rule.id, change,
                        "".join(f"; {r}" for r in after.reasons),
                        extra={"rule_id": rule.id})
            if self._receiver is not None:
                await self._notify(blind_notice(rule.id, rule.title, after,
                                                receiver=self._receiver))
            await self._show(rule.id, shown(after))
        self._save(rule.id, after)
        return change

    async def check_all(self, rules: Iterable[Rule]) -> list[tuple[str, Change]]:
        """Check every rule; the changes announced, by rule id."""
        changes: list[tuple[str, Change]] = []
        statuses = self._statuses(self._clock())
        for rule in rules:
            change = await self.check(rule, statuses)
            if change is not None:
                changes.append((rule.id, change))
        return changes
