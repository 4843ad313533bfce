"""Loaded by Python at start-up when this folder is on PYTHONPATH (``kafka_bench.py
--trace-gc`` puts it there for the workers): logs every full garbage collection that
stops the process for 10 ms or more, as ``gc: full collection N ms`` on stderr."""

import gc
import sys
import time

_started = [0.0]


def _time_full_collections(phase: str, info: dict[str, int]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _started[0] = time.perf_counter()
    elif (took := time.perf_counter() - _started[0]) >= 0.010:
        print(f"gc: full collection {took * 1000:.0f} ms", file=sys.stderr, flush=True)


gc.callbacks.append(_time_full_collections)
