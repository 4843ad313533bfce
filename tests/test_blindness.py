"""Blind-rule warnings (issue 18): a rule whose feeds are down, or that went quiet against
its habit, is announced once, and its recovery once (streams/blindness.py, pure;
streams/blindwatch.py with fakes; the Kafka tick planner's share)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from newswatch.monitor.health import FeedHealth
from newswatch.rules.model import AllOf, Rule
from newswatch.streams.alerts import Match
from newswatch.streams.blindness import (
    HOUR,
    LAST_FEEDS,
    RuleActivity,
    assess,
    feeds_down,
    gone_quiet,
    settle,
)
from newswatch.streams.blindwatch import BlindWatch, feed_statuses
from newswatch.streams.kafka.ticks import BlindPlanner
from newswatch.streams.rulestate import RuleState

T0 = 1_700_000_000.0
DAY = 24 * HOUR


def every(hours: int, *, days: int, until: float) -> RuleActivity:
    """A rule that matched every ``hours`` hours for ``days`` days up to ``until``."""
    activity = RuleActivity()
    at = until - days * DAY
    while at <= until:
        activity = activity.record("wire", at)
        at += hours * HOUR
    return activity


# --------------------------------------------------------------------------- activity


def test_recording_keeps_hours_and_recent_feeds_and_nothing_more() -> None:
    first = RuleActivity().record("a", T0)
    assert first.record("a", T0 + 60) is first  # same hour, same feed: no write
    later = first.record("b", T0 + 2 * HOUR).record("a", T0 + 3 * HOUR)
    assert later.hours == tuple(int((T0 + h * HOUR) // HOUR) for h in (0, 2, 3))
    assert [f for f, _ in later.feeds] == ["b", "a"]  # most recent last
    many = RuleActivity()
    for n in range(LAST_FEEDS + 5):
        many = many.record(f"f{n}", T0 + n)
    assert [f for f, _ in many.feeds] == [f"f{n}" for n in range(5, LAST_FEEDS + 5)]
    month_on = first.record("a", T0 + 31 * DAY)
    assert month_on.hours == (int((T0 + 31 * DAY) // HOUR),)  # older hours dropped
    assert RuleActivity.from_json(later.to_json()) == later


def test_feeds_down_counts_most_of_the_feeds_a_rule_depends_on() -> None:
    statuses = {"a": "failing", "b": "stale", "c": "ok", "d": "disabled"}
    told = feeds_down(RuleActivity(), depends_on=frozenset({"a", "b", "d"}),
                      statuses=statuses)
    assert told == ("3 of 3 feeds it depends on (its feeds) are down: a (failing), "
                    "b (stale), d (disabled)")
    assert feeds_down(RuleActivity(), depends_on=frozenset({"a", "c"}),
                      statuses=statuses) is None  # half is not most
    assert feeds_down(RuleActivity(), depends_on=frozenset({"a", "gone"}),
                      statuses=statuses) is not None  # an unknown feed is not counted
    recent = RuleActivity().record("a", T0).record("b", T0).record("c", T0)
    assert "the feeds of its last matches" in str(
        feeds_down(recent, depends_on=None, statuses=statuses))
    assert feeds_down(RuleActivity(), depends_on=None, statuses=statuses) is None


def test_a_daily_rule_silent_for_three_times_its_usual_gap_has_gone_quiet() -> None:
    habit = every(2, days=20, until=T0)
    assert gone_quiet(habit, T0 + 6 * HOUR) is None
    told = gone_quiet(habit, T0 + 7 * HOUR)
    assert told is not None and "no match for 7 h" in told and "usually every 2 h" in told
    seldom = every(48, days=28, until=T0)  # 15 days of the last 30: not most days
    assert gone_quiet(seldom, T0 + 10 * DAY) is None
    hourly = every(1, days=20, until=T0)
    assert gone_quiet(hourly, T0 + 3 * HOUR) is None  # never under 3 hours
    assert gone_quiet(hourly, T0 + 4 * HOUR) is not None


def test_a_change_is_announced_once_and_its_recovery_once() -> None:
    activity, change = settle(RuleActivity(), ("feeds down",), T0)
    assert change == "blind" and activity.announced == "blind" and activity.changes == 1
    again, change = settle(activity, ("feeds down",), T0 + 60)
    assert change is None and again is activity
    other, change = settle(activity, ("feeds down", "quiet"), T0 + 120)
    assert change is None and other.reasons == ("feeds down", "quiet")
    back, change = settle(other, (), T0 + 180)
    assert change == "recovered" and back.announced == "ok" and back.changes == 2
    assert settle(back, (), T0 + 240) == (back, None)
    statuses = {"a": "failing"}
    assert assess(RuleActivity(), depends_on=frozenset({"a"}), statuses=statuses,
                  now=T0) == ("1 of 1 feeds it depends on (its feeds) are down: a (failing)",)


def test_feed_statuses_read_only_feed_health_records() -> None:
    health = {"a": FeedHealth("a", status="failing").to_json(),
              "a/pages": {"feed": "a", "asked": 3}, "b": {"feed": "b"},
              "c": "junk", "d": {"feed": "d", "status": 7}}
    assert feed_statuses(health, T0) == {"a": "failing", "b": "never_polled"}


# --------------------------------------------------------------------------- the watch


def rule(feeds: frozenset[str] | None = frozenset({"flaky"})) -> Rule:
    return Rule(id="flint-watch", title="Flint watch", condition=AllOf(()), feeds=feeds)


class Harness:
    """A BlindWatch over dicts: rule states, feed statuses, notices and status lines."""

    def __init__(self, receiver: str | None = "ops") -> None:
        self.states: dict[str, RuleState] = {}
        self.statuses: dict[str, str] = {"flaky": "ok"}
        self.notices: list[Match] = []
        self.shown: dict[str, Any] = {}
        self.now = T0
        self.refuse = False

        async def notify(notice: Match) -> None:
            if self.refuse:
                raise ConnectionError("the cluster does not answer")
            self.notices.append(notice)

        async def show(rule_id: str, shown: dict[str, Any] | None) -> None:
            self.shown[rule_id] = shown

        def save(rule_id: str, activity: RuleActivity) -> None:
            self.states[rule_id] = RuleState(activity=activity)

        self.watch = BlindWatch(
            state=lambda r: self.states.get(r, RuleState()), save=save,
            statuses=lambda now: self.statuses, notify=notify, receiver=receiver,
            show=show, clock=lambda: self.now)

    def titles(self) -> list[str]:
        return [n.article.title for n in self.notices]


def test_all_feeds_failing_is_one_notice_and_recovery_one() -> None:
    h = Harness()
    assert asyncio.run(h.watch.check(rule())) is None and not h.notices
    h.statuses["flaky"] = "failing"
    assert asyncio.run(h.watch.check_all([rule()])) == [("flint-watch", "blind")]
    assert asyncio.run(h.watch.check_all([rule()])) == []  # told once
    assert h.titles() == ["Rule flint-watch (Flint watch) is blind"]
    assert "flaky (failing)" in h.notices[0].article.content
    assert h.notices[0].rule_id == "newswatch-rule-flint-watch"
    assert h.shown["flint-watch"]["reasons"] == [
        "1 of 1 feeds it depends on (its feeds) are down: flaky (failing)"]
    h.statuses["flaky"] = "ok"
    assert asyncio.run(h.watch.check(rule())) == "recovered"
    assert asyncio.run(h.watch.check(rule())) is None
    assert h.titles()[1:] == ["Rule flint-watch (Flint watch) sees again"]
    assert h.shown["flint-watch"] is None
    assert h.notices[0].article.id != h.notices[1].article.id


def test_a_notice_that_cannot_be_delivered_is_announced_at_the_next_check() -> None:
    h = Harness()
    h.statuses["flaky"] = "disabled"
    h.refuse = True
    with pytest.raises(ConnectionError):
        asyncio.run(h.watch.check(rule()))
    assert "flint-watch" not in h.states  # not stored: the next check announces it
    h.refuse = False
    assert asyncio.run(h.watch.check(rule())) == "blind" and len(h.notices) == 1


def test_without_an_ops_receiver_changes_are_kept_and_shown_only() -> None:
    h = Harness(receiver=None)
    h.statuses["flaky"] = "stale"
    assert asyncio.run(h.watch.check(rule())) == "blind"
    assert not h.notices and h.states["flint-watch"].activity.announced == "blind"
    assert h.shown["flint-watch"] is not None


def test_the_local_view_says_which_rules_want_a_check() -> None:
    h = Harness()
    h.statuses["flaky"] = "failing"
    assert h.watch.changed(rule(), None, T0, h.statuses)
    asyncio.run(h.watch.check(rule()))
    assert not h.watch.changed(rule(), h.states["flint-watch"], T0, h.statuses)
    assert not h.watch.changed(rule(feeds=None), None, T0, h.statuses)


def test_the_kafka_planner_scans_now_and_then_and_ticks_a_rule_once_a_minute() -> None:
    planner = BlindPlanner(scan_every=10.0, again=60.0)
    scans: list[float] = []

    def wants(now: float) -> list[str]:
        scans.append(now)
        return ["r1"]

    assert planner.due(wants, T0) == ["r1"]
    assert planner.due(wants, T0 + 5) == [] and scans == [T0]  # no scan within 10 s
    assert planner.due(wants, T0 + 10) == []  # scanned, ticked 10 s ago
    assert planner.due(wants, T0 + 60) == ["r1"]
    assert planner.due(lambda now: [], T0 + 70) == []
    assert planner.due(wants, T0 + 80) == ["r1"]  # settled meanwhile: wanted anew
