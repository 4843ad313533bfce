"""Prometheus metrics of every stage, on a registry the caller owns.

``Metrics(registry)`` creates the collectors on that registry (never the process-global
one, so tests and several runtimes in one process do not collide); ``serve`` exposes it
over HTTP (``/metrics``) in a daemon thread. The stages report through small Protocols
defined where they are used (``newswatch.monitor.poller.PollMetrics``,
``newswatch.streams.embedded.MatchMetrics``); the delivery stage is counted from its audit trail by
``MeteredAudit``, a ``DecisionLog`` that forwards every decision and counts it, so the
pipeline needs no metrics code of its own.

Names (``_total`` is added to counters by the exposition format):

=====================================  ========================================================
newswatch_fetches_total                fetches by ``result`` (ok, not_modified, unchanged,
                                       error, internal) and ``error_kind`` ("" or a kind)
newswatch_fetch_latency_seconds        histogram of fetch + parse time per poll
newswatch_new_articles_total           articles seen for the first time
newswatch_feeds                        feeds by health ``status`` (as of their last poll)
newswatch_poll_lag_seconds             histogram: how late a poll started after it was due
newswatch_feed_notices_total           feed-health notices by ``kind`` (failing, stale,
                                       disabled, recovered)
newswatch_articles_matched_total       articles run through the matcher
newswatch_matches_total                rule matches
newswatch_match_seconds                histogram: matcher time per article
newswatch_delivery_verdicts_total      delivery decisions (one per match and receiver) by
                                       ``verdict`` (send, same_article, same_story,
                                       throttled, silenced)
newswatch_deliveries_total             outcomes by ``receiver`` and ``result``: sent
                                       (accepted by the receiver, also in a digest), dead
                                       (dead-lettered)
newswatch_consumer_lag                 worker: records after the group's committed offset, by
                                       ``topic`` and ``partition``
newswatch_commit_age_seconds           worker: how long the committed offset has not moved
                                       while the partition lagged (alert when > 300 with lag)
newswatch_partition_rewinds_total      worker: partitions read again (stalled, or records
                                       faust dropped unseen), by ``topic``
newswatch_dead_letters_total           worker: events sent to the dead-letter topic by
                                       ``stage`` (match, deliver)
=====================================  ========================================================

Feed names and rule ids are deliberately not labels: with 10,000 feeds or rules they would
make the exposition itself the bottleneck. ``newswatch status`` has the per-feed view.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from newswatch.core.state import Decision

__all__ = ["STATUSES", "MeteredAudit", "Metrics", "MetricsServer", "serve"]

STATUSES = ("ok", "failing", "stale", "disabled", "never_polled")
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
_LAG_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_MATCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    """All newswatch collectors, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.fetches = Counter(
            "newswatch_fetches", "Feed fetches by result and error kind",
            ["result", "error_kind"], registry=registry,
        )
        self.fetch_latency = Histogram(
            "newswatch_fetch_latency_seconds", "Time to fetch and parse one feed",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.new_articles = Counter(
            "newswatch_new_articles", "Articles seen for the first time", registry=registry,
        )
        self.feeds = Gauge(
            "newswatch_feeds", "Feeds by health status as of their last poll", ["status"],
            registry=registry,
        )
        self.poll_lag = Histogram(
            "newswatch_poll_lag_seconds", "How late a poll started after the feed was due",
            buckets=_LAG_BUCKETS, registry=registry,
        )
        self.notices = Counter(
            "newswatch_feed_notices", "Feed-health notices handed to the ops receiver",
            ["kind"], registry=registry,
        )
        self.articles_matched = Counter(
            "newswatch_articles_matched", "Articles run through the matcher", registry=registry,
        )
        self.matches = Counter("newswatch_matches", "Rule matches", registry=registry)
        self.match_seconds = Histogram(
            "newswatch_match_seconds", "Matcher time per article", buckets=_MATCH_BUCKETS,
            registry=registry,
        )
        self.verdicts = Counter(
            "newswatch_delivery_verdicts", "Delivery decisions by verdict", ["verdict"],
            registry=registry,
        )
        self.deliveries = Counter(
            "newswatch_deliveries", "Delivery outcomes by receiver and result (sent, dead "
            "= dead-lettered)", ["receiver", "result"], registry=registry,
        )
        self.consumer_lag = Gauge(
            "newswatch_consumer_lag", "Records after the worker group's committed offset",
            ["topic", "partition"], registry=registry,
        )
        self.commit_age = Gauge(
            "newswatch_commit_age_seconds", "Seconds the committed offset has not moved "
            "while the partition lagged", ["topic", "partition"], registry=registry,
        )
        self.rewinds = Counter(
            "newswatch_partition_rewinds", "Partitions read again: stalled, or records "
            "faust dropped unseen", ["topic"], registry=registry,
        )
        self.dead_letters = Counter(
            "newswatch_dead_letters", "Events sent to the dead-letter topic by stage",
            ["stage"], registry=registry,
        )
        self.redrives = Counter(
            "newswatch_kafka_redrives", "Ledger entries still pending after the bound, "
            "published again, by the stage that had not done them", ["stage"],
            registry=registry,
        )
        self._partitions: set[tuple[str, str]] = set()
        for status in STATUSES:
            self.feeds.labels(status).set(0)

    # -------------------------------------------------------------- poller
    def observe_poll(
        self, *, result: str, error_kind: str | None, latency: float, new: int, lag: float
    ) -> None:
        self.fetches.labels(result, error_kind or "").inc()
        self.fetch_latency.observe(latency)
        if new:
            self.new_articles.inc(new)
        self.poll_lag.observe(max(lag, 0.0))

    def set_feed_statuses(self, counts: Mapping[str, int]) -> None:
        for status in STATUSES:
            self.feeds.labels(status).set(counts.get(status, 0))

    def observe_notice(self, kind: str) -> None:
        self.notices.labels(kind).inc()

    # -------------------------------------------------------------- matcher
    def observe_match(self, *, seconds: float, matches: int) -> None:
        self.articles_matched.inc()
        self.match_seconds.observe(seconds)
        if matches:
            self.matches.inc(matches)

    # -------------------------------------------------------------- delivery
    def observe_verdict(self, verdict: str) -> None:
        self.verdicts.labels(verdict).inc()

    def observe_delivery(self, receiver: str, result: str) -> None:
        self.deliveries.labels(receiver, result).inc()

    # -------------------------------------------------------------- Kafka worker
    def set_partitions(self, partitions: Mapping[tuple[str, int], tuple[int, float]]) -> None:
        """(topic, partition) -> (lag, commit age in seconds) of the partitions this worker
        owns now; partitions it no longer owns are dropped from the exposition."""
        current = {(topic, str(n)) for topic, n in partitions}
        for labels in self._partitions - current:
            self.consumer_lag.remove(*labels)
            self.commit_age.remove(*labels)
        self._partitions = current
        for (topic, n), (lag, age) in partitions.items():
            self.consumer_lag.labels(topic, str(n)).set(lag)
            self.commit_age.labels(topic, str(n)).set(age)

    def observe_rewind(self, topic: str) -> None:
        self.rewinds.labels(topic).inc()

    def observe_dead_letter(self, stage: str) -> None:
        self.dead_letters.labels(stage).inc()

    def observe_redrive(self, stage: str) -> None:
        self.redrives.labels(stage).inc()


class DecisionLog(Protocol):
    def log_decision(self, d: Decision) -> None: ...


# Results the pipeline records when it decides (one line per match and receiver).
_DECIDED = ("pending", "digest", "skipped")


class MeteredAudit:
    """Wraps the delivery audit trail (``Database``): every decision is forwarded, then
    counted as a verdict (when decided) or an outcome (``sent…`` / ``dead…``)."""

    def __init__(self, audit: DecisionLog, metrics: Metrics) -> None:
        self._audit = audit
        self._metrics = metrics

    def log_decision(self, d: Decision) -> None:
        self._audit.log_decision(d)
        if d.result in _DECIDED:
            self._metrics.observe_verdict(d.verdict)
        elif d.result.startswith("sent"):
            self._metrics.observe_delivery(d.receiver, "sent")
        elif d.result.startswith("dead"):
            self._metrics.observe_delivery(d.receiver, "dead")


@dataclass
class MetricsServer:
    """A running exposition server; ``port`` is the bound port (useful with port 0)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(metrics: Metrics, *, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``metrics.registry`` on http://host:port/metrics from a daemon thread."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(server, thread)
