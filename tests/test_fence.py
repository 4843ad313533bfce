"""streams/kafka/fence.py: the frozen-worker fence, with a fake clock (no thread, no sleep)."""

from __future__ import annotations

import pytest

from newswatch.streams.kafka.fence import FencedMapping, FreezeFence


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fence(clock: Clock, frozen: list[float]) -> FreezeFence:
    return FreezeFence(limit=8.0, every=0.5, clock=clock, on_frozen=frozen.append)


def test_regular_notes_keep_the_fence_open() -> None:
    clock, frozen = Clock(), list[float]()
    f = fence(clock, frozen)
    for _ in range(100):
        clock.now += 0.5
        f.note()
        f.check()
    assert frozen == []


def test_a_check_after_a_freeze_longer_than_the_limit_fires() -> None:
    """The send path may run before the noting thread after a SIGCONT."""
    clock, frozen = Clock(), list[float]()
    f = fence(clock, frozen)
    clock.now += 16.0
    f.check()
    assert frozen == [16.0]


def test_a_late_note_is_itself_a_detected_freeze() -> None:
    """Or the noting thread runs first: it must not hide the freeze by noting."""
    clock, frozen = Clock(), list[float]()
    f = fence(clock, frozen)
    clock.now += 9.0
    f.note()
    assert frozen == [9.0]


def test_a_pause_shorter_than_the_limit_is_not_a_freeze() -> None:
    clock, frozen = Clock(), list[float]()
    f = fence(clock, frozen)
    clock.now += 7.9
    f.check()
    assert frozen == []


def test_the_note_interval_must_be_shorter_than_the_limit() -> None:
    with pytest.raises(ValueError, match="shorter than the limit"):
        FreezeFence(limit=1.0, every=1.0, on_frozen=lambda gap: None)


def test_fenced_mapping_checks_before_every_write_and_delete_only() -> None:
    calls: list[str] = []
    inner: dict[str, int] = {"a": 1}
    m = FencedMapping(inner, lambda: calls.append("fence"))
    assert m["a"] == 1 and m.get("b", 7) == 7 and "a" in m and list(m) == ["a"]
    assert calls == []
    m["b"] = 2
    del m["a"]
    assert calls == ["fence", "fence"] and inner == {"b": 2}


def test_a_fence_that_stops_the_write_leaves_the_state_untouched() -> None:
    class Frozen(Exception):
        pass

    def stop() -> None:
        raise Frozen

    inner: dict[str, object] = {"rule": {"outbox": {}}}
    m = FencedMapping(inner, stop)
    with pytest.raises(Frozen):
        m["rule"] = {"outbox": {"x": 1}}
    assert inner == {"rule": {"outbox": {}}}
