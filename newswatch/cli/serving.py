"""What the long-running commands (``run``, ``poll``, ``worker``) share: stopping on a
signal, and the health and metrics endpoints."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Mapping

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)

from newswatch.core import health_http
from newswatch.core.config import Config
from newswatch.core.errors import ConfigError, Issue
from newswatch.core.heap import settle
from newswatch.core.metrics import Metrics

log = logging.getLogger("newswatch")


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (handlers on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# Full collections at most once every FULL_AFTER collections of the middle generation
# (CPython's default: 10). A full collection walks every live object and stops the loop
# meanwhile: with the delivery state of a busy worker, about 250 ms every 5 s at the
# default, which made the Kafka p99 (docs/performance.md, "Where the time goes").
FULL_AFTER = 100


def settle_heap() -> None:
    """Call once start-up is done, before serving: what start-up built (modules, compiled
    rules) moves out of the collector's reach (``gc.freeze``: still freed by reference
    counting, never walked again; core/heap.py), and full collections become
    ``FULL_AFTER / 10`` times rarer."""
    settle()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_AFTER)


def new_metrics(config: Config, *, process: bool = False) -> Metrics | None:
    """The process's metrics when the config has ``metrics:`` (None without); ``process``
    adds the process, platform and garbage-collector collectors (CPU, memory, file
    descriptors, collections per generation)."""
    if config.metrics is None:
        return None
    metrics = Metrics(CollectorRegistry())
    if process:
        ProcessCollector(registry=metrics.registry)
        PlatformCollector(registry=metrics.registry)
        GCCollector(registry=metrics.registry)
    return metrics


def serve_health(
    config: Config, metrics: Metrics | None, *, loop: asyncio.AbstractEventLoop,
    ready: Mapping[str, health_http.Check],
) -> Callable[[], None]:
    """With ``metrics:`` in the config, serve /metrics (``metrics``), /healthz (``loop``
    answers: ``LoopWatchdog``) and /readyz (``ready``) on its port until the returned
    closer is called. ConfigError when the port cannot be bound."""
    if config.metrics is None or metrics is None:
        return lambda: None
    watchdog = health_http.LoopWatchdog(loop).start()
    try:
        server = health_http.serve(port=config.metrics.port, host=config.metrics.host,
                                   registry=metrics.registry, live={"loop": watchdog.check},
                                   ready=dict(ready))
    except OSError as error:
        watchdog.stop()
        raise ConfigError([Issue(config.metrics.source or str(config.path),
                                 config.metrics.line, f"metrics: cannot listen on "
                                 f"{config.metrics.host}:{config.metrics.port}: "
                                 f"{error.strerror or error}")]) from None
    log.info("metrics on http://%s:%d/metrics (health: /healthz, /readyz)",
             config.metrics.host, server.port)

    def close() -> None:
        server.close()
        watchdog.stop()

    return close
