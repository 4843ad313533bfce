"""The health endpoints: /healthz sees a stalled event loop, /readyz sees the state or Kafka,
and `newswatch run` serves them (with JSON logs) on the metrics port."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from newswatch.core import health_http
from newswatch.core.config import parse_config
from newswatch.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def get(port: int, path: str) -> tuple[int, dict[str, Any] | str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            code, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read().decode()
    if body.startswith("{"):
        return code, json.loads(body)
    return code, body


async def test_healthz_reports_a_stalled_loop_and_recovers() -> None:
    watchdog = health_http.LoopWatchdog(asyncio.get_running_loop(), interval=0.05,
                                        threshold=0.3).start()
    server = health_http.serve(port=0, live={"loop": watchdog.check}, ready={})
    try:
        await asyncio.sleep(0.2)
        assert get(server.port, "/healthz")[0] == 200
        seen: list[tuple[int, Any]] = []
        probe = threading.Thread(target=lambda: (time.sleep(0.5),
                                                 seen.append(get(server.port, "/healthz"))))
        probe.start()
        time.sleep(0.8)  # the loop is blocked: no heartbeat runs
        probe.join()
        code, body = seen[0]
        assert code == 503 and isinstance(body, dict) and body["ok"] is False
        assert "event loop stalled" in body["checks"]["loop"]
        await asyncio.sleep(0.2)
        assert get(server.port, "/healthz")[0] == 200
        assert get(server.port, "/readyz")[0] == 200
    finally:
        server.close()
        watchdog.stop()


def test_readyz_checks_the_state_is_writable(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    sqlite3.connect(db).close()
    registry = CollectorRegistry()
    Counter("newswatch_probe", "probe", registry=registry).inc()
    server = health_http.serve(port=0, live={}, registry=registry, ready={
        "state": health_http.state_writable(db)})
    missing = health_http.serve(port=0, live={}, ready={
        "state": health_http.state_writable(tmp_path / "absent" / "state.db")})
    try:
        code, body = get(server.port, "/readyz")
        assert code == 200 and isinstance(body, dict) and "writable" in body["checks"]["state"]
        assert "newswatch_probe_total 1.0" in str(get(server.port, "/metrics")[1])
        assert get(server.port, "/nope")[0] == 404
        code, body = get(missing.port, "/readyz")
        assert code == 503 and isinstance(body, dict) and "not writable" in body["checks"]["state"]
        assert not (tmp_path / "absent").exists()  # the probe never creates a state
    finally:
        server.close()
        missing.close()


async def test_poll_readiness_follows_kafka_reachability() -> None:
    from newswatch.cli.kafka import _kafka_ready
    from newswatch.cli.serving import new_metrics, serve_health

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    up = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = closed.getsockname()[1]
    closed.close()
    for bootstrap, expected in ((f"127.0.0.1:{down},127.0.0.1:{up}", 200),
                                (f"127.0.0.1:{down}", 503)):
        port = free_port()
        config = parse_config(
            f"rules: []\nkafka: {{bootstrap: '{bootstrap}'}}\nmetrics: {{port: {port}}}\n",
            "c.yaml", base=Path("."))
        close = serve_health(config, new_metrics(config, process=True),
                             loop=asyncio.get_running_loop(), ready=_kafka_ready(config))
        try:
            code, body = get(port, "/readyz")
            assert code == expected, body
            assert isinstance(body, dict) and "kafka" in body["checks"]
            assert get(port, "/healthz")[0] == 200
            exposed = str(get(port, "/metrics")[1])
            assert "process_" in exposed  # worker: process metrics
            assert "python_gc_collections_total" in exposed  # and the collector's
        finally:
            close()
    listener.close()


def test_settle_heap_freezes_start_up_and_makes_full_collections_rarer() -> None:
    from newswatch.cli.serving import FULL_AFTER, settle_heap

    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000  # at least the modules imported so far
        assert gc.get_threshold() == (before[0], before[1], FULL_AFTER)
        assert before[2] < FULL_AFTER
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_newswatch_run_serves_health_and_logs_json(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: sahel\n    title: Sahel\n    countries: [ML]\n",
                     encoding="utf-8")
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"state: ./state.db\nrules: [rules.yaml]\nfeeds: []\n"
                      f"metrics: {{port: {port}}}\n", encoding="utf-8")
    env = {**os.environ, "NEWSWATCH_LOG_FORMAT": ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from newswatch.cli import main; sys.exit(main())",
         "run", "--config", str(config)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        lines: list[dict[str, Any]] = []
        for line in proc.stderr:  # stderr is a pipe, not a terminal: JSON lines
            lines.append(json.loads(line))
            if lines[-1]["message"].startswith("running:"):
                break
        assert {"time", "level", "logger", "message"} <= set(lines[0])
        assert any("/healthz" in entry["message"] for entry in lines)
        code, body = get(port, "/healthz")
        assert code == 200 and isinstance(body, dict) and "loop" in body["checks"]
        code, body = get(port, "/readyz")
        assert code == 200 and isinstance(body, dict) and "writable" in body["checks"]["state"]
        assert "newswatch_fetches_total" in str(get(port, "/metrics")[1])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_metrics_port_that_cannot_be_bound_is_reported_at_its_line(tmp_path: Path) -> None:
    """Issue 15: the error named the config's folder, not ``file:line``."""
    from newswatch.cli.serving import new_metrics, serve_health

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = parse_config(f"rules: []\nmetrics:\n  host: 127.0.0.1\n  port: {port}\n",
                              str(tmp_path / "c.yaml"), base=tmp_path)
        loop = asyncio.new_event_loop()
        try:
            with pytest.raises(ConfigError) as raised:
                serve_health(config, new_metrics(config), loop=loop, ready={})
        finally:
            loop.close()
    assert str(raised.value) == (f"{tmp_path / 'c.yaml'}:4: metrics: cannot listen on "
                                 f"127.0.0.1:{port}: Address already in use")
