"""Keeping Python's cyclic garbage collector off large, long-lived data: paused while it is
built, and told afterwards that it lives on."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting still frees).

    For code that builds many objects that all live on (a YAML document, an unpickled
    rule index): the collector's passes over the growing heap find nothing to free and,
    at a few hundred thousand objects, take most of the time. It is re-enabled on exit
    only if it was enabled on entry.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def settle(*, collect: bool = True) -> None:
    """Tell the collector that everything alive now lives on: collect what is garbage,
    then move the rest out of its reach (``gc.freeze``), so that its later passes skip it.

    For the moment a rule index is ready (``streams.reload.compile_rules``): at 10,000
    rules the index is some 700,000 objects that each full pass walked, and matching ran
    about 15 % slower for it (docs/performance.md). Reference counting still frees frozen
    objects. What an earlier call froze is unfrozen first, so that an index replaced since,
    if only a reference cycle kept it, is freed now rather than never. Costs one full
    collection (0.17 s beside 10,000 rules): call it when a large structure was built, not
    per item. ``collect=False`` skips the collection, and costs nothing, for a short-lived
    process whose garbage does not matter (``newswatch rules test``, a backtest).
    """
    gc.unfreeze()
    if collect:
        gc.collect()
    gc.freeze()
