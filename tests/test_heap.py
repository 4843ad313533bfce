"""Keeping the cyclic collector off long-lived data (newswatch/core/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from newswatch.core.heap import collector_paused, settle


class Node:
    def __init__(self) -> None:
        self.next: Node | None = None


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def tracked(item: object) -> bool:
    return any(o is item for o in gc.get_objects())


def test_settle_freezes_what_is_alive_and_collects_what_is_not() -> None:
    alive = Node()
    dead = Node()
    dead.next = dead  # a cycle: only the collector frees it
    gone = weakref.ref(dead)
    del dead
    assert tracked(alive)
    settle()
    assert not tracked(alive)  # frozen: later passes skip it
    assert gone() is None


def test_an_index_frozen_earlier_and_dropped_in_a_cycle_is_freed_by_the_next_settle() -> None:
    old = Node()
    old.next = old
    settle()
    gone = weakref.ref(old)
    del old  # reference counting cannot free a cycle; frozen, the collector never looks
    gc.collect()
    assert gone() is not None
    settle()  # unfreezes first
    assert gone() is None


def test_settle_without_collecting_only_freezes() -> None:
    dead = Node()
    dead.next = dead
    gone = weakref.ref(dead)
    del dead
    settle(collect=False)  # for a short-lived process: no full pass
    assert gone() is not None
    assert gc.get_freeze_count() > 0


def test_collector_paused_restores_the_state_it_found() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
