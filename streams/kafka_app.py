"""The Kafka runtime's stream processors: the only module that imports faust.

Two agents run the same core as the embedded runtime:

- ``match``: articles topic → ``Matcher.match`` → matches topic, keyed by rule id.
- ``deliver``: matches topic → ``Pipeline.deliver``, with the per-rule dedup state in the
  faust Table ``dedup`` (changelog-backed; keyed by rule id, so co-partitioned with the
  matches topic) and dead letters in the Table ``dead-letters``.

faust acks an event whose agent raised (reliability.md item 3), so both agents catch every
failure and send the event to the dead-letter topic with the reason: a poison message never
stalls a partition and is never silently dropped. Deliveries left pending by a crash are
resumed by a timer that sends a resume marker for each such rule through the matches topic,
so the resumed delivery runs inside an event of the right partition, as faust requires for
table writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import faust

from monitor.article import Article
from monitor.kafka import KafkaSettings
from monitor.state import Decision
from rules.matcher import Matcher
from streams.alerts import Match
from streams.embedded import to_match
from streams.notifiers import Notifier
from streams.pipeline import Pipeline

log = logging.getLogger("newswatch.worker")

RESUME_EVERY = 10.0  # seconds between scans for deliveries left pending
# faust's defaults (60 s session, 3 s heartbeat) leave a crashed worker's partitions
# unprocessed for a minute, and a worker restarted within that minute waits for the whole
# group to time the dead member out: 10 s bounds the stall after a kill -9.
SESSION_TIMEOUT = 10.0
HEARTBEAT_INTERVAL = 1.0
_RESUME = b'{"resume": true}'


class _LogDecisions:
    """The audit trail of the Kafka runtime: one structured log line per decision."""

    def log_decision(self, d: Decision) -> None:
        log.info(
            "decision rule=%s verdict=%s receiver=%s result=%s",
            d.rule_id, d.verdict, d.receiver, d.result,
            extra={"rule_id": d.rule_id, "article_id": d.article, "verdict": d.verdict,
                   "receiver": d.receiver},
        )


def _broker_credentials(settings: KafkaSettings) -> Any:
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=settings.client_options().get("ssl_context"),
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(settings.client_options()["ssl_context"])
    return None


def build_app(
    settings: KafkaSettings,
    *,
    matcher: Callable[[], Matcher],
    notifiers: Mapping[str, Notifier],
    clock: Callable[[], float] = time.time,
) -> faust.App:
    """The worker app. Start it with ``run_worker``."""
    app = faust.App(
        f"{settings.prefix}worker",
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=_broker_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,  # faust declares its changelog and assignor topics
        producer_acks=-1,
        broker_session_timeout=SESSION_TIMEOUT,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    articles = app.topic(settings.topic("articles"), partitions=settings.partitions)
    matches = app.topic(settings.topic("matches"), partitions=settings.partitions)
    dlq = app.topic(settings.topic("alerts-dlq"), partitions=settings.partitions)
    # JSON keys and values: rule ids come back as str after a changelog recovery.
    json_schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
    dedup = app.Table("dedup", default=None, partitions=settings.partitions,
                      schema=json_schema)
    dead = app.Table("dead-letters", default=None, partitions=settings.partitions,
                     schema=json_schema)
    # inline: faust tables may only be written inside the event being processed, so
    # deliveries finish before the agent takes the next event.
    pipeline = Pipeline(notifiers=notifiers, state=dedup, dlq=dead, audit=_LogDecisions(),
                        clock=clock, inline=True)

    async def dead_letter(key: bytes | None, value: bytes | None, stage: str,
                          error: BaseException) -> None:
        record = {"stage": stage, "reason": type(error).__name__, "message": str(error)[:2000],
                  "at": clock(), "event": (value or b"").decode("utf-8", "replace")[:100_000]}
        await dlq.send(key=key, value=json.dumps(record).encode())
        log.error("%s: event sent to the dead-letter topic: %r", stage, error)

    @app.agent(articles)
    async def match(stream: Any) -> None:
        async for event in stream.events():
            try:
                article = Article.from_json(json.loads(event.value))
                for found in matcher().match(article):
                    m = to_match(found, article)
                    await matches.send(key=m.rule_id.encode(),
                                       value=json.dumps(m.to_json()).encode())
            except Exception as error:
                await dead_letter(event.key, event.value, "match", error)

    @app.agent(matches)
    async def deliver(stream: Any) -> None:
        async for event in stream.events():
            try:
                data = json.loads(event.value)
                if data.get("resume"):
                    await pipeline.resume_rule(event.key.decode())
                else:
                    await pipeline.deliver(Match.from_json(data))
            except Exception as error:
                await dead_letter(event.key, event.value, "deliver", error)

    @app.timer(interval=RESUME_EVERY)  # type: ignore[untyped-decorator]
    async def resume_pending() -> None:
        for rule_id in list(dedup.keys()):
            if Pipeline.has_pending(dedup.get(rule_id) or {}):
                await matches.send(key=str(rule_id).encode(), value=_RESUME)

    return app


def run_worker(
    app: faust.App, *, loglevel: str = "info", loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Run the worker until SIGINT/SIGTERM (blocks), on ``loop`` when given."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, loop=loop)
    worker.execute_from_commandline()
