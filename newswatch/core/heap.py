"""Pausing Python's cyclic garbage collector while building large, long-lived data."""

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
