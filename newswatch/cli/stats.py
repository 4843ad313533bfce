"""``newswatch rules stats``: per rule, over a span, what it sent (from the decisions audit
trail), what analysts said of it (the clicks on alert buttons), its precision, the words to
consider excluding, and the rules that never matched or match only one feed (docs/cli.md).
The counting is ``newswatch.streams.stats``'s; this module reads the records."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from newswatch.cli.options import (
    EXIT_OK,
    MAX_COUNT,
    Commands,
    Context,
    add_command,
    add_since,
    when,
)
from newswatch.core.archive import Archive, ArchiveReader
from newswatch.core.article import Article
from newswatch.core.config import Config
from newswatch.core.errors import ConfigError, Issue
from newswatch.core.feedback import FeedbackRecord
from newswatch.core.printable import one_line
from newswatch.core.state import Database, Decision
from newswatch.streams.reload import compile_rules
from newswatch.streams.stats import RuleStats, StatsReport, rule_stats

DECISIONS_LIMIT = 100 * MAX_COUNT  # the audit rows read at most: every one, in practice


def add_stats(rules_commands: Commands) -> None:
    stats = add_command(
        rules_commands, "stats", help="per rule volumes, feedback, precision, excludes",
        description="Per rule of the config, over the span: matches, alerts, thread "
                    "replies, digests and silenced matches (the decisions audit trail); "
                    "the analysts' feedback from the alert buttons (useful, not relevant, "
                    "muted) and the precision useful / rated; the words most "
                    "over-represented in the alerts marked not relevant compared with the "
                    "useful ones, as suggested excludes (from the archived articles); and "
                    "the rules that never matched or matched articles of one feed only. "
                    "Reads the state file; nothing is changed. Exit 0.")
    add_since(stats, "30d")
    stats.add_argument("--kafka", action="store_true",
                       help="read the Kafka runtime's decisions topic, clicks (the workers' "
                            "feedback changelog) and articles topic instead of the state "
                            "file")
    stats.add_argument("--json", action="store_true", help="one JSON object")
    stats.set_defaults(handler=stats_command)


def stats_command(args: argparse.Namespace, context: Context) -> int:
    config = context.config(args)
    since = when(args.since, time.time(), "--since")
    matcher = compile_rules(config.rules, frozenset(config.receivers))
    if args.kafka:
        decisions, feedback, articles = _read_kafka(config, context, since)
    else:
        decisions, feedback, articles = _read_state(config, since)
    report = rule_stats(matcher.rules, decisions, feedback, articles, matcher)
    if args.json:
        print(json.dumps(report_json(report, since, config), ensure_ascii=False, indent=2))
    else:
        _print_report(report, since, config)
    return EXIT_OK


def _read_state(config: Config, since: float
                ) -> tuple[list[Decision], list[FeedbackRecord], dict[str, Article]]:
    """The decisions and clicks of the span and their archived articles, from the state
    file (opened read-only)."""
    db = Database.open(config.state, readonly=True)
    try:
        decisions = db.decisions(DECISIONS_LIMIT, since=since)
        feedback = list(db.feedback().records(since))
        wanted = {d.article for d in decisions} | {r.article for r in feedback}
        articles = (_articles(Archive(db.archive(), config.archive.days), wanted)
                    if config.archive.days else {})
    finally:
        db.close()
    return decisions, feedback, articles


def _read_kafka(config: Config, context: Context, since: float
                ) -> tuple[list[Decision], list[FeedbackRecord], dict[str, Article]]:
    """The decisions of the span (the decisions topic), its clicks (the workers' feedback
    changelog) and their articles (the articles topic). ConfigError when the cluster
    cannot be read."""
    from newswatch.streams.kafka.archive import KafkaArchive  # the optional Kafka extra
    from newswatch.streams.kafka.client import KafkaError, kafka_settings
    from newswatch.streams.kafka.decisions import read_decisions
    from newswatch.streams.kafka.feedback import feedback_records

    settings = kafka_settings(config, context.environ)
    try:
        decisions = asyncio.run(read_decisions(settings, since))
        feedback = asyncio.run(feedback_records(settings, since))
        wanted = {d.article for d in decisions} | {r.article for r in feedback}
        articles = (_articles(KafkaArchive(settings, config.archive.days), wanted)
                    if config.archive.days and wanted else {})
    except KafkaError as error:
        raise ConfigError([Issue(str(config.path), 0,
                                 f"kafka: {settings.bootstrap}: {error}")]) from None
    return decisions, feedback, articles


def _articles(archive: ArchiveReader, wanted: set[str]) -> dict[str, Article]:
    """The archived articles named in ``wanted`` by id or by key (decisions name an article
    by its key, clicks by its id). The whole archive is read: an alert rated in the span may
    be older than it, and the archive holds no more than ``archive.days``."""
    found: dict[str, Article] = {}
    for item in archive.read(0.0):
        article = item.article
        for name in (article.id, article.key):
            if name in wanted:
                found[name] = article
    return found


def _rule_json(s: RuleStats) -> dict[str, Any]:
    return {
        "rule": s.rule_id, "title": s.title, "matches": s.matches, "alerts": s.alerts,
        "replies": s.replies, "digested": s.digested, "digests": s.digests,
        "silenced": s.silenced,
        "feedback": {"useful": s.useful, "not_relevant": s.not_relevant, "muted": s.muted},
        "precision": None if s.precision is None else round(s.precision, 4),
        "by_feed": dict(sorted(s.feeds.items())),
        "suggested_excludes": [{"term": c.term, "not_relevant": c.not_relevant,
                                "useful": c.useful, "score": round(c.score, 4)}
                               for c in s.excludes],
    }


def report_json(report: StatsReport, since: float, config: Config) -> dict[str, Any]:
    """The ``--json`` object (fields: docs/cli.md)."""
    return {
        "since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
        "archive": bool(config.archive.days),
        "rules": [_rule_json(s) for s in report.rules],
        "never_matched": report.never_matched,
        "one_feed": [{"rule": s.rule_id, "feed": next(iter(s.feeds))}
                     for s in report.rules if len(s.feeds) == 1],
    }


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _print_rule(s: RuleStats) -> None:
    print(f"\n{s.rule_id}: {one_line(s.title)}")
    print(f"  {_plural(s.matches, 'match', 'matches')} · "
          f"{_plural(s.alerts, 'alert', 'alerts')} · "
          f"{_plural(s.replies, 'thread reply', 'thread replies')} · {s.digested} "
          f"digested in {_plural(s.digests, 'digest', 'digests')} · {s.silenced} silenced")
    precision = "—" if s.precision is None else f"{s.precision:.0%}"
    print(f"  feedback: {s.useful} useful · {s.not_relevant} not relevant · {s.muted} muted"
          f" · precision {precision}")
    if s.feeds:
        print(f"  by feed: {_joined(f'{one_line(k)} {n}' for k, n in s.feeds.most_common())}")
    if s.excludes:
        print("  suggested exclude: " + _joined(
            f"{one_line(c.term)} ({c.not_relevant} not relevant, {c.useful} useful)"
            for c in s.excludes))


def _joined(parts: Iterable[str]) -> str:
    return ", ".join(parts)


def _print_report(report: StatsReport, since: float, config: Config) -> None:
    stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"rules stats since {stamp}: {_plural(len(report.rules), 'rule', 'rules')}")
    if not config.archive.days:
        print("archive.days is 0: no archived articles, so no feeds and no suggested "
              "excludes")
    for s in report.rules:
        _print_rule(s)
    print(f"\nnever matched: {_joined(report.never_matched) or 'none'}")
    print("one feed only: " + (_joined(f"{s.rule_id} ({one_line(next(iter(s.feeds)))})"
                                       for s in report.rules if len(s.feeds) == 1) or "none"))
