"""Health endpoints of a newswatch process: ``/healthz`` (liveness), ``/readyz``
(readiness) and ``/metrics`` (Prometheus), served from a daemon thread.

Serving from a thread, not from the event loop, is what makes liveness honest: a stalled
loop cannot answer for itself, but the thread can see it stalled. ``LoopWatchdog`` asks the
loop to run a tiny callback every ``interval`` seconds (``call_soon_threadsafe``) and
remembers when it last ran; ``/healthz`` answers 503 once that is more than ``threshold``
seconds ago (the loop is blocked: a CPU-bound call, a deadlock, a synchronous wait).

``/readyz`` runs the process's readiness checks, each a callable returning ``(ok,
detail)``: for ``newswatch run`` the SQLite state is writable (``state_writable``); for
``newswatch poll`` and ``newswatch worker`` a broker of ``kafka.bootstrap`` accepts a TCP
connection (``kafka_reachable``). Both endpoints answer JSON: ``{"ok": bool, "checks":
{name: detail}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["Check", "HealthServer", "LoopWatchdog", "kafka_reachable", "serve",
           "state_writable"]

Check = Callable[[], tuple[bool, str]]


class LoopWatchdog:
    """Measures how long ``loop`` has gone without running a heartbeat callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, interval: float = 1.0,
                 threshold: float = 10.0) -> None:
        self.loop = loop
        self.interval = interval
        self.threshold = threshold
        self._last_beat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drive, name="newswatch-watchdog",
                                        daemon=True)

    def start(self) -> LoopWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        self._last_beat = time.monotonic()

    def _drive(self) -> None:
        while not self._stop.wait(self.interval):
            if self.loop.is_closed():
                return
            with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                self.loop.call_soon_threadsafe(self._beat)

    def lag(self) -> float:
        """Seconds since the loop last ran a heartbeat, beyond the heartbeat interval."""
        return max(0.0, time.monotonic() - self._last_beat - self.interval)

    def check(self) -> tuple[bool, str]:
        lag = self.lag()
        if lag > self.threshold:
            return False, f"event loop stalled for {lag:.1f}s (threshold {self.threshold:g}s)"
        return True, f"event loop lag {lag:.2f}s"


def state_writable(path: Path) -> Check:
    """The SQLite state at ``path`` accepts a write transaction (taken and rolled back)."""

    def check() -> tuple[bool, str]:
        try:
            con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2.0)
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
            finally:
                con.close()
        except sqlite3.Error as error:
            return False, f"state {path} not writable: {error}"
        return True, f"state {path} writable"

    return check


def kafka_reachable(bootstrap: str, *, timeout: float = 2.0) -> Check:
    """Some broker of ``bootstrap`` (``host:port[,host:port...]``) accepts a TCP connection."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]

    def check() -> tuple[bool, str]:
        errors: list[str] = []
        for server in servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                    return True, f"kafka {server} reachable"
            except (OSError, ValueError) as error:
                errors.append(f"{server}: {error}")
        return False, "kafka unreachable: " + "; ".join(errors or ["no bootstrap servers"])

    return check


class HealthServer:
    """A running health server; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    ok, details = True, {}
    for name, check in checks.items():
        try:
            passed, detail = check()
        except Exception as error:  # a broken check is a failed check, not a crash
            passed, detail = False, f"check failed: {error!r}"
        ok = ok and passed
        details[name] = detail
    return ok, details


def serve(*, port: int, host: str = "127.0.0.1", live: Mapping[str, Check],
          ready: Mapping[str, Check], registry: CollectorRegistry | None = None) -> HealthServer:
    """Serve /healthz (``live`` checks), /readyz (``live`` and ``ready`` checks) and, given a
    registry, /metrics on http://host:port from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = self.path.split("?", 1)[0]
            if route == "/metrics" and registry is not None:
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif route in ("/healthz", "/livez"):
                self._json(*_run_checks(live))
            elif route == "/readyz":
                self._json(*_run_checks({**live, **ready}))
            else:
                self._send(404, b"not found\n", "text/plain")

        def _json(self, ok: bool, details: dict[str, str]) -> None:
            body: dict[str, Any] = {"ok": ok, "checks": details}
            self._send(200 if ok else 503, (json.dumps(body) + "\n").encode(),
                       "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # probes are not news
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="newswatch-health",
                              daemon=True)
    thread.start()
    return HealthServer(server, thread)
