"""What the long-running commands (``run``, ``poll``, ``worker``) share: stopping on a
signal, and the health and metrics endpoints."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from newswatch.core import health_http
from newswatch.core.config import Config
from newswatch.core.errors import ConfigError, Issue
from newswatch.core.metrics import Metrics

log = logging.getLogger("newswatch")


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (handlers on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def new_metrics(config: Config, *, process: bool = False) -> Metrics | None:
    """The process's metrics when the config has ``metrics:`` (None without); ``process``
    adds the process and platform collectors (CPU, memory, file descriptors)."""
    if config.metrics is None:
        return None
    metrics = Metrics(CollectorRegistry())
    if process:
        ProcessCollector(registry=metrics.registry)
        PlatformCollector(registry=metrics.registry)
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
        raise ConfigError([Issue(str(config.path), 0, f"metrics: cannot listen on "
                                 f"{config.metrics.host}:{config.metrics.port}: "
                                 f"{error.strerror or error}")]) from None
    log.info("metrics on http://%s:%d/metrics (health: /healthz, /readyz)",
             config.metrics.host, server.port)

    def close() -> None:
        server.close()
        watchdog.stop()

    return close
