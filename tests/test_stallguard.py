"""StallGuard: which stream partitions the Kafka worker reads again, and the lag/commit-age
figures it publishes (pure: a fake clock, snapshots passed in)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from newswatch.core.metrics import Metrics
from newswatch.streams.kafka.stallguard import Progress, StallGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def idle(_key: str) -> bool:
    return False


def test_lagging_idle_partition_with_a_frozen_commit_is_stalled_after_the_window() -> None:
    clock = Clock()
    guard: StallGuard[str] = StallGuard(after=20, clock=clock)
    snapshot = {"a0": Progress(end=32, committed=23), "a1": Progress(end=10, committed=10)}
    assert guard.check(snapshot, idle) == []
    clock.now += 19.9
    assert guard.check(snapshot, idle) == []
    clock.now += 0.2
    assert guard.check(snapshot, idle) == ["a0"]
    assert guard.commit_age("a0") == pytest.approx(20.1)
    assert guard.commit_age("a1") == 0.0  # no lag


def test_a_stalled_partition_is_not_returned_again_before_another_window() -> None:
    clock = Clock()
    guard: StallGuard[str] = StallGuard(after=20, clock=clock)
    snapshot = {"a0": Progress(end=5, committed=None)}
    guard.check(snapshot, idle)
    clock.now += 20
    assert guard.check(snapshot, idle) == ["a0"]
    clock.now += 10
    assert guard.check(snapshot, idle) == []
    clock.now += 10
    assert guard.check(snapshot, idle) == ["a0"]
    assert guard.commit_age("a0") == 40  # the commit still has not moved


def test_a_moving_commit_is_progress() -> None:
    clock = Clock()
    guard: StallGuard[str] = StallGuard(after=20, clock=clock)
    for committed in range(10):
        clock.now += 15
        assert guard.check({"m2": Progress(end=100, committed=committed)}, idle) == []
    assert guard.commit_age("m2") == 0.0


def test_an_event_in_flight_is_progress_but_still_ages_the_commit() -> None:
    """A slow delivery (Slack pacing, a 429 storm) holds the commit without a stall."""
    clock = Clock()
    guard: StallGuard[str] = StallGuard(after=20, clock=clock)
    snapshot = {"m0": Progress(end=9, committed=4)}
    guard.check(snapshot, idle)
    for _ in range(10):
        clock.now += 15
        assert guard.check(snapshot, lambda key: key == "m0") == []
    assert guard.commit_age("m0") == 150
    clock.now += 20
    assert guard.check(snapshot, idle) == ["m0"]  # idle for 20 s after the work stopped


def test_revoked_partitions_and_reset_forget_their_history() -> None:
    clock = Clock()
    guard: StallGuard[str] = StallGuard(after=20, clock=clock)
    guard.check({"a0": Progress(end=5, committed=1)}, idle)
    clock.now += 15
    guard.check({}, idle)  # revoked
    clock.now += 15
    assert guard.check({"a0": Progress(end=5, committed=1)}, idle) == []  # a new window
    guard.reset()
    assert guard.commit_age("a0") == 0.0


def test_progress_lag_counts_from_the_start_when_never_committed() -> None:
    assert Progress(end=7, committed=None).lag == 7
    assert Progress(end=7, committed=7).lag == 0
    assert Progress(end=3, committed=5).lag == 0  # end read before a commit landed


def test_partition_metrics_follow_the_assignment() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.set_partitions({("p.articles", 0): (12, 31.5), ("p.matches", 1): (0, 0.0)})
    value = metrics.registry.get_sample_value
    assert value("newswatch_consumer_lag", {"topic": "p.articles", "partition": "0"}) == 12
    assert value("newswatch_commit_age_seconds",
                 {"topic": "p.articles", "partition": "0"}) == 31.5
    metrics.set_partitions({("p.matches", 1): (3, 0.0)})  # articles[0] moved elsewhere
    assert value("newswatch_consumer_lag", {"topic": "p.articles", "partition": "0"}) is None
    assert value("newswatch_consumer_lag", {"topic": "p.matches", "partition": "1"}) == 3
    metrics.observe_rewind("p.matches")
    metrics.observe_dead_letter("deliver")
    assert value("newswatch_partition_rewinds_total", {"topic": "p.matches"}) == 1
    assert value("newswatch_dead_letters_total", {"stage": "deliver"}) == 1
