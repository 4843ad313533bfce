"""Prometheus metrics: every stage reports into one registry (no global state), and the
real exposition endpoint is scraped over HTTP."""

from __future__ import annotations

import io
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from newswatch.core.config import FeedConfig
from newswatch.core.metrics import MeteredAudit, Metrics, MetricsServer, serve
from newswatch.core.state import Decision, FetchEvent
from newswatch.monitor.fetch import Fetcher, FetchLimits
from newswatch.monitor.poller import Poller
from newswatch.streams.channels.console import ConsoleNotifier
from newswatch.streams.embedded import EmbeddedRuntime
from newswatch.streams.notices import transition_notifier
from newswatch.streams.pipeline import Pipeline
from newswatch.streams.reload import compile_rules
from newswatch.streams.runtime import Runtime
from tests.fakes.feed_server import rss
from tests.fakes.hostile_server import Conditional, LocalServer, status

RULES = "rules:\n  - id: maroc\n    title: Maroc\n    countries: [MA]\n    notify: [console]\n"


class Audit:
    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def log_decision(self, d: Decision) -> None:
        self.decisions.append(d)


class Log:
    def log_fetch(self, e: FetchEvent, *, keep: int = 100) -> None:
        pass


@pytest.fixture
async def exposed() -> AsyncIterator[tuple[Metrics, MetricsServer]]:
    metrics = Metrics(CollectorRegistry())
    server = serve(metrics, port=0)
    yield metrics, server
    server.close()


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        return await response.text()


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of an exposition text (labels in any order)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    raise AssertionError(f"no sample {name}{labels}")


async def test_every_stage_reports_and_the_endpoint_serves_it(
    tmp_path: Path, exposed: tuple[Metrics, MetricsServer]
) -> None:
    metrics, server = exposed
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    matcher = compile_rules([rules], None)
    out = io.StringIO()
    audit = Audit()
    pipeline = Pipeline(notifiers={"console": ConsoleNotifier("console", out)}, state={},
                        dlq={}, audit=MeteredAudit(audit, metrics))
    body = rss([{"title": "Le Maroc signe un accord", "guid": "a-1"},
                {"title": "Météo à Oslo", "guid": "a-2"}])
    async with LocalServer() as feeds, Fetcher(FetchLimits(total=2.0),
                                               allow=[feeds.allow]) as fetcher:
        feeds.routes["/news.xml"] = Conditional(body)
        feeds.routes["/missing.xml"] = status(404, "no")
        config = [FeedConfig("news", feeds.url("/news.xml")),
                  FeedConfig("missing", feeds.url("/missing.xml"))]

        def make_poller(runtime: Runtime) -> Poller:
            return Poller(config, fetcher, health={}, seen={}, fetch_log=Log(),
                          sink=runtime.take, rng=random.Random(2), metrics=metrics,
                          on_transition=transition_notifier(runtime.notify, "console",
                                                            metrics.observe_notice))

        runtime = EmbeddedRuntime(poller_factory=make_poller, matcher=lambda: matcher,
                                  pipeline=pipeline, metrics=metrics)
        await runtime.poller.poll_all()  # news: 200, 2 articles; missing: 404
        await runtime.poller.poll(config[0])  # news again: 304
        await pipeline.drain()
        await pipeline.aclose(1.0)

    text = await scrape(server.port)
    assert value(text, "newswatch_fetches_total", result="ok", error_kind="") == 1
    assert value(text, "newswatch_fetches_total", result="not_modified", error_kind="") == 1
    assert value(text, "newswatch_fetches_total", result="error", error_kind="http_4xx") == 1
    assert value(text, "newswatch_fetch_latency_seconds_count") == 3
    assert value(text, "newswatch_poll_lag_seconds_count") == 3
    assert value(text, "newswatch_new_articles_total") == 2
    assert value(text, "newswatch_feeds", status="ok") == 1
    assert value(text, "newswatch_feeds", status="failing") == 1
    assert value(text, "newswatch_feeds", status="never_polled") == 0
    assert value(text, "newswatch_articles_matched_total") == 2
    assert value(text, "newswatch_matches_total") == 1
    assert value(text, "newswatch_match_seconds_count") == 2
    assert value(text, "newswatch_delivery_verdicts_total", verdict="send") == 1
    assert value(text, "newswatch_deliveries_total", receiver="console", result="sent") == 1
    assert "Le Maroc signe un accord" in out.getvalue()


async def test_feed_notices_are_counted_by_kind(exposed: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = exposed
    audit = Audit()
    out = io.StringIO()
    pipeline = Pipeline(notifiers={"ops": ConsoleNotifier("ops", out)}, state={}, dlq={},
                        audit=MeteredAudit(audit, metrics))
    async with LocalServer() as feeds, Fetcher(FetchLimits(total=2.0),
                                               allow=[feeds.allow]) as fetcher:
        feeds.routes["/gone.xml"] = status(410, "gone")

        async def sink(articles: object) -> None:
            pass

        poller = Poller([FeedConfig("gone", feeds.url("/gone.xml"))], fetcher, health={},
                        seen={}, fetch_log=Log(), sink=sink, metrics=metrics,
                        on_transition=transition_notifier(pipeline.deliver, "ops",
                                                          metrics.observe_notice))
        await poller.poll_all()
        await pipeline.drain()
        await pipeline.aclose(1.0)
    text = await scrape(server.port)
    assert value(text, "newswatch_feed_notices_total", kind="disabled") == 1
    assert value(text, "newswatch_feeds", status="disabled") == 1
    assert value(text, "newswatch_deliveries_total", receiver="ops", result="sent") == 1
    assert "Feed gone is disabled (410 Gone)" in out.getvalue()
