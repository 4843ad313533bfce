"""Config keys of the polling work: per-feed min_interval / max_interval and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswatch.core.config import FeedConfig, MetricsConfig, parse_config
from newswatch.core.errors import ConfigError
from newswatch.monitor.health import Pace
from newswatch.monitor.poller import pace_of


def config(tmp_path: Path, text: str) -> str:
    (tmp_path / "r.yaml").write_text("rules: []\n", encoding="utf-8")
    return "rules: [r.yaml]\n" + text


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(tmp_path, text), "c.yaml", base=tmp_path)
    return [str(i) for i in caught.value.issues]


def test_interval_bounds_are_read_and_default(tmp_path: Path) -> None:
    parsed = parse_config(config(tmp_path, (
        "feeds:\n"
        "  - {name: a, url: 'https://a.example/rss', interval: 5m, min_interval: 1m,"
        " max_interval: 2h}\n"
        "  - {name: b, url: 'https://b.example/rss', interval: 10m}\n")),
        "c.yaml", base=tmp_path)
    a, b = parsed.feeds
    assert (a.min_interval, a.max_interval) == (60.0, 7200.0)
    assert pace_of(a) == Pace(300.0, 60.0, 7200.0)
    assert (b.min_interval, b.max_interval) == (None, None)
    assert pace_of(b) == Pace(600.0, 150.0, 7200.0)
    assert pace_of(FeedConfig("c", "https://c.example/")) == Pace(300.0, 75.0, 3600.0)
    assert parsed.metrics is None


def test_interval_bounds_are_validated(tmp_path: Path) -> None:
    assert errors(tmp_path, (
        "feeds:\n"
        "  - name: a\n    url: https://a.example/rss\n    interval: 5m\n"
        "    min_interval: 10m\n    max_interval: 1m\n"
        "  - name: b\n    url: https://b.example/rss\n    min_interval: 5s\n"
        "    max_interval: 8d\n"
        "  - name: c\n    url: https://c.example/rss\n    min_interval: soon\n")) == [
        "c.yaml:6: feeds[0]: min_interval must not exceed interval (300s)",
        "c.yaml:7: feeds[0]: max_interval must be at least interval (300s)",
        "c.yaml:10: feeds[1]: min_interval must be at least 10s",
        "c.yaml:11: feeds[1]: max_interval must be at most 7d",
        "c.yaml:14: feeds[2]: 'min_interval': " + errors_of_duration("soon"),
    ]


def errors_of_duration(text: str) -> str:
    from newswatch.core.durations import parse_duration

    try:
        parse_duration(text)
    except ValueError as error:
        return str(error)
    raise AssertionError("not an error")


def test_metrics_section(tmp_path: Path) -> None:
    parsed = parse_config(config(tmp_path, "feeds: []\nmetrics: {port: 9200}\n"), "c.yaml",
                          base=tmp_path)
    assert parsed.metrics == MetricsConfig(port=9200, host="127.0.0.1")
    parsed = parse_config(config(tmp_path, "feeds: []\nmetrics: {}\n"), "c.yaml", base=tmp_path)
    assert parsed.metrics == MetricsConfig(port=9108)
    assert errors(tmp_path, "feeds: []\nmetrics: {port: 70000, hots: x}\n") == [
        "c.yaml:3: metrics: unknown key 'hots' (did you mean 'host'?)",
        "c.yaml:3: metrics: port must be at most 65535",
    ]
    assert errors(tmp_path, "feeds: []\nmetrics: {port: nine}\n") == [
        "c.yaml:3: metrics: 'port' must be a whole number, got text",
    ]
