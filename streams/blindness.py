"""Blind-rule warnings (issue 18), pure: when a rule can no longer see its news, ops are
told once, and once more when it sees again.

A rule goes blind in two ways:

- **its feeds are down**: most of the feeds it depends on are failing, stale or disabled
  (more than half). It depends on the feeds its ``feeds:`` names, or, without that key,
  on the feeds that gave its last matches (up to :data:`LAST_FEEDS`);
- **it went quiet**: it matched on most days of the last 30 (:data:`MOST_DAYS` or more)
  and has now been silent for more than :data:`QUIET_FACTOR` times its usual gap between
  matches (counted in hours: the median gap between the hours it matched in, at least
  :data:`MIN_QUIET_HOURS` hours in all).

A rule's :class:`RuleActivity` lives in its delivery state (one write with the decision
that changed it: a new hour, or a feed new to its recent ones). :func:`assess` says why a
rule is blind now (nothing: it is not); :func:`settle` turns that into at most one
transition per change (``blind`` or ``recovered``), remembered in the activity, so each
is announced once whichever process or tick finds it. Times are Unix seconds.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

HOUR = 3600
DAYS = 30  # how far back a rule's matched hours are kept
MOST_DAYS = 16  # of the last DAYS: a rule that matches on fewer is not expected daily
QUIET_FACTOR = 3  # silent this many times its usual gap: gone quiet
MIN_QUIET_HOURS = 3  # never "quiet" after less than this
LAST_FEEDS = 10  # feeds of the last matches a rule without `feeds:` depends on
DOWN = ("failing", "stale", "disabled")  # feed statuses (monitor/health.py) that see nothing

Announced = Literal["ok", "blind"]
Change = Literal["blind", "recovered"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleActivity:
    """What a rule has seen lately, and what ops were last told about it.

    ``hours``: the hours (Unix time // 3600) with a match, the last :data:`DAYS` days,
    ascending. ``feeds``: (feed, last hour it gave a match) for the :data:`LAST_FEEDS`
    feeds that gave the latest matches, oldest first. ``announced``: ``blind`` from the
    ``blind`` notice to the ``recovered`` one, with the ``reasons`` told and ``since``
    when; ``changes`` counts the transitions (it names each notice)."""

    hours: tuple[int, ...] = ()
    feeds: tuple[tuple[str, int], ...] = ()
    announced: Announced = "ok"
    reasons: tuple[str, ...] = ()
    since: float | None = None
    changes: int = 0

    def record(self, feed: str, at: float) -> RuleActivity:
        """The activity once the rule matched an article of ``feed`` at ``at`` (the
        same value when nothing it keeps changed: most matches)."""
        hour = int(at // HOUR)
        hours = self.hours
        if hour not in hours:
            hours = tuple(sorted(h for h in (*hours, hour) if h > hour - DAYS * 24))
        feeds = self.feeds
        if (feed, hour) not in feeds:
            feeds = (*((f, h) for f, h in feeds if f != feed), (feed, hour))[-LAST_FEEDS:]
        if hours is self.hours and feeds is self.feeds:
            return self
        return replace(self, hours=hours, feeds=feeds)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hours": list(self.hours),
                                "feeds": [[f, h] for f, h in self.feeds]}
        if self.announced != "ok" or self.changes:
            data.update(announced=self.announced, reasons=list(self.reasons),
                        since=self.since, changes=self.changes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleActivity:
        since = data.get("since")
        return cls(hours=tuple(int(h) for h in data.get("hours", ())),
                   feeds=tuple((str(f), int(h)) for f, h in data.get("feeds", ())),
                   announced="blind" if data.get("announced") == "blind" else "ok",
                   reasons=tuple(str(r) for r in data.get("reasons", ())),
                   since=None if since is None else float(since),
                   changes=int(data.get("changes", 0)))


def feeds_down(activity: RuleActivity, *, depends_on: frozenset[str] | None,
               statuses: Mapping[str, str]) -> str | None:
    """Why the rule's feeds leave it blind (None: they do not). Feeds the statuses do not
    know (removed from the config, never polled) are not counted."""
    if depends_on is not None:
        feeds, which = sorted(depends_on), "its feeds"
    else:
        feeds, which = sorted(f for f, _ in activity.feeds), "the feeds of its last matches"
    known = [f for f in feeds if f in statuses]
    down = [f for f in known if statuses[f] in DOWN]
    if not known or 2 * len(down) <= len(known):
        return None
    listed = ", ".join(f"{f} ({statuses[f]})" for f in down)
    return f"{len(down)} of {len(known)} feeds it depends on ({which}) are down: {listed}"


def gone_quiet(activity: RuleActivity, now: float) -> str | None:
    """Why the rule's silence is unusual (None: it is not)."""
    hour = int(now // HOUR)
    hours = [h for h in activity.hours if h > hour - DAYS * 24]
    days = {h // 24 for h in hours}
    if len(days) < MOST_DAYS or len(hours) < 2:
        return None
    usual = statistics.median(b - a for a, b in itertools.pairwise(hours))
    silent = hour - hours[-1]
    if silent <= max(QUIET_FACTOR * usual, MIN_QUIET_HOURS):
        return None
    return (f"no match for {silent} h; it matched on {len(days)} of the last {DAYS} days, "
            f"usually every {usual:g} h")


def assess(activity: RuleActivity, *, depends_on: frozenset[str] | None,
           statuses: Mapping[str, str], now: float) -> tuple[str, ...]:
    """Why the rule is blind at ``now``: its feeds down, its silence unusual; empty when
    it is not. ``statuses``: each configured feed's current status."""
    reasons = (feeds_down(activity, depends_on=depends_on, statuses=statuses),
               gone_quiet(activity, now))
    return tuple(r for r in reasons if r is not None)


def settle(activity: RuleActivity, reasons: tuple[str, ...], now: float
           ) -> tuple[RuleActivity, Change | None]:
    """The activity with what ops are told, and the change to announce: ``blind`` when
    reasons appear, ``recovered`` when the last one goes, None otherwise (reasons that
    change while the rule stays blind are kept, not announced again)."""
    if reasons and activity.announced == "ok":
        return replace(activity, announced="blind", reasons=reasons, since=now,
                       changes=activity.changes + 1), "blind"
    if not reasons and activity.announced == "blind":
        return replace(activity, announced="ok", reasons=(), since=now,
                       changes=activity.changes + 1), "recovered"
    if reasons != activity.reasons and activity.announced == "blind":
        return replace(activity, reasons=reasons), None
    return activity, None
