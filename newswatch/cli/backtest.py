"""``newswatch rules backtest``: the archived articles replayed through rule files with the
real matcher and decide stage, nothing sent; with the difference against the rules the
config loads when the files differ (docs/cli.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newswatch.cli.options import (
    EXIT_OK,
    EXIT_PROBLEMS,
    Commands,
    Context,
    Silences,
    UsageError,
    add_command,
    add_kafka_archive,
    add_since,
    open_archive,
    when,
)
from newswatch.core.archive import ArchivedArticle
from newswatch.core.config import Config
from newswatch.core.heap import settle
from newswatch.core.printable import one_line
from newswatch.rules.matcher import Matcher
from newswatch.streams.backtest import (
    AlertLine,
    Backtest,
    RuleChange,
    RuleOutcome,
    changed_rules,
    compare,
    definitions,
    notable,
    replay_both,
    stand_ins,
    summary_line,
    volume,
)
from newswatch.streams.reload import compile_rules

FIRST_ALERTS = 5  # alerts shown per rule, as they would read


def add_backtest(rules_commands: Commands) -> None:
    backtest = add_command(
        rules_commands, "backtest", help="replay the archive through rules, nothing sent",
        description="Replay the archived articles (archive.days) through the given rule "
                    "files with the real matcher and decide stage (dedup, stories, "
                    "throttle, digests, silences), sending nothing; per rule: matches, "
                    "alerts, replies, digests, alerts a day, by feed and language, the first "
                    "alerts. When the files differ from the rules the config loads, also "
                    "the difference: stories gained and lost per rule. Exit 0; 1 with "
                    "--fail-over N when a rule would send more than N alerts a day.")
    backtest.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                          help="rule files or folders (every *.yaml/*.yml below)")
    add_since(backtest, "7d")
    backtest.add_argument("--until", default=None, metavar="WHEN",
                          help="end, excluded: a duration ago or an ISO 8601 date/time; "
                               "default now")
    backtest.add_argument("--diff", action=argparse.BooleanOptionalAction, default=None,
                          help="compare with the rules the config loads (default: when the "
                               "files differ)")
    backtest.add_argument("--fail-over", type=float, default=None, metavar="N",
                          help="exit 1 when a rule would send more than N alerts a day")
    add_kafka_archive(backtest)
    backtest.add_argument("--json", action="store_true", help="one JSON object")
    backtest.set_defaults(handler=backtest_command)


def backtest_command(args: argparse.Namespace, context: Context) -> int:
    config = context.config(args)
    now = time.time()
    since = when(args.since, now, "--since")
    until = now if args.until is None else when(args.until, now, "--until")
    if until <= since:
        raise UsageError("--until must be after --since")
    receivers = frozenset(config.receivers)
    edited = compile_rules(args.paths, receivers)
    diff = args.diff
    current: Matcher | None = None
    if diff is not False:
        current = compile_rules(config.rules, receivers)
        if diff is None:
            diff = definitions(current) != definitions(edited)
    settle(collect=False)  # both indexes out of the collector's later passes (core/heap.py)
    with open_archive(config, "replay", kafka=args.kafka,
                      environ=context.environ) as (archive, silences):
        # the archive counted only for a progress bar: a whole pass of its index (SQLite),
        # a round of offset requests (Kafka)
        bar = _Progress(archive.count(since, until)) if sys.stderr.isatty() else None
        before, after, count = _replay(current if diff else None, edited, config, silences,
                                       archive.read(since, until), bar)
    changes = (compare(before, after, changed_rules(current, edited))
               if before is not None and current is not None else None)
    if args.json:
        print(json.dumps(_report_json(after, changes, since, until, count),
                         ensure_ascii=False, indent=2))
    else:
        _print_report(after, changes, since, until, count)
    if args.fail_over is not None:
        loud = [o.rule_id for o in after.values()
                if volume(o.alerts, since, until).per_day > args.fail_over]
        if loud:
            print(f"over {args.fail_over:g} alerts a day: {', '.join(loud)}", file=sys.stderr)
            return EXIT_PROBLEMS
    return EXIT_OK


def _replay(current: Matcher | None, edited: Matcher, config: Config, silences: Silences,
            articles: Iterable[ArchivedArticle], bar: _Progress | None,
            ) -> tuple[dict[str, RuleOutcome] | None, dict[str, RuleOutcome], int]:
    """The outcomes of the ``current`` rules (None: no difference asked) and of the
    ``edited`` ones, both in one pass over the archive (``replay_both``), and how many
    articles were replayed; ``bar`` shows the progress on a terminal."""
    replayed = [0]

    def progress(done: int) -> None:
        replayed[0] = done
        if bar is not None:
            bar(done)

    try:
        if current is None:
            backtest = Backtest(edited, stand_ins(config), silences=silences)
            return None, asyncio.run(backtest.replay(articles, progress=progress)), replayed[0]
        before, after = asyncio.run(replay_both(current, edited, articles, stand_ins(config),
                                                silences, progress))
        return before, after, replayed[0]
    finally:
        if bar is not None:
            bar.done()


class _Progress:
    """A one-line progress bar on a terminal's stderr."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self._shown = -1

    def __call__(self, done: int) -> None:
        percent = done * 100 // self.total
        if percent != self._shown:
            self._shown = percent
            bar = "#" * (percent // 4)
            print(f"\rreplaying [{bar:<25}] {done:,}/{self.total:,}", end="", file=sys.stderr)

    def done(self) -> None:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _alert_json(a: AlertLine) -> dict[str, Any]:
    return {"at": datetime.fromtimestamp(a.at, UTC).isoformat(timespec="seconds"),
            "story": a.story, "title": a.title, "feed": a.feed, "language": a.language,
            "url": a.url, "why": list(a.why)}


def _outcome_json(o: RuleOutcome, since: float, until: float) -> dict[str, Any]:
    v = volume(o.alerts, since, until)
    feeds: dict[str, int] = {}
    languages: dict[str, int] = {}
    for a in o.alerts:
        feeds[a.feed] = feeds.get(a.feed, 0) + 1
        languages[a.language or "?"] = languages.get(a.language or "?", 0) + 1
    return {
        "rule": o.rule_id, "title": o.title, "matches": o.matches, "alerts": len(o.alerts),
        "replies": o.replies, "digested": o.digested, "digests": o.digests,
        "escalations": o.escalations,
        "verdicts": dict(sorted(o.verdicts.items())),
        "alerts_per_day": {"min": v.low, "median": v.median, "max": v.high,
                           "mean": round(v.per_day, 2)},
        "busiest_hour": None if v.busiest_hour is None else {
            "at": datetime.fromtimestamp(v.busiest_hour[0], UTC).isoformat(timespec="minutes"),
            "alerts": v.busiest_hour[1]},
        "by_feed": dict(sorted(feeds.items())), "by_language": dict(sorted(languages.items())),
        "first_alerts": [_alert_json(a) for a in o.alerts[:FIRST_ALERTS]],
    }


def _report_json(after: Mapping[str, RuleOutcome], changes: Sequence[RuleChange] | None,
                 since: float, until: float, count: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
        "until": datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds"),
        "articles": count,
        "rules": [_outcome_json(o, since, until) for o in after.values()],
    }
    if changes is not None:
        out["diff"] = [
            {"rule": c.rule_id, "change": c.change, "summary": summary_line(c, since, until),
             "gained": [_alert_json(a) for a in c.gained],
             "lost": [_alert_json(a) for a in c.lost]}
            for c in notable(changes)]
    return out


def _print_report(after: Mapping[str, RuleOutcome], changes: Sequence[RuleChange] | None,
                  since: float, until: float, count: int) -> None:
    print(f"backtest: {count:,} archived article(s) from {_stamp(since)} to {_stamp(until)}, "
          f"{len(after)} rule(s); nothing was sent")
    for o in after.values():
        v = volume(o.alerts, since, until)
        print(f"\n{o.rule_id}: {one_line(o.title)}")
        print(f"  {o.matches} match(es) · {len(o.alerts)} alert(s) · {o.replies} thread "
              f"repl{'y' if o.replies == 1 else 'ies'} · {o.digested} digested in "
              f"{o.digests} digest(s) · {o.verdicts.get('silenced', 0)} silenced"
              + (f" · {o.escalations} escalation alert(s)" if o.escalations else ""))
        if not o.alerts:
            continue
        busiest = (f"; busiest hour {_stamp(v.busiest_hour[0])} ({v.busiest_hour[1]})"
                   if v.busiest_hour else "")
        print(f"  alerts a day: min {v.low}, median {v.median:g}, max {v.high}{busiest}")
        feeds = _counts(a.feed for a in o.alerts)
        languages = _counts(a.language or "?" for a in o.alerts)
        print(f"  by feed: {feeds} · by language: {languages}")
        for a in o.alerts[:FIRST_ALERTS]:
            print(f"  {_stamp(a.at)}  {one_line(a.feed)}  {one_line(a.title)[:90]}")
            if a.why:
                print(f"      why: {one_line('; '.join(a.why))[:160]}")
    if changes is None:
        return
    print("\ndifference from the rules the config loads:")
    shown = notable(changes)
    if not shown:
        print("  none: the same alerts")
    for c in shown:
        print(f"  {summary_line(c, since, until)}")
        for sign, alerts in (("+", c.gained), ("−", c.lost)):
            for a in alerts[:FIRST_ALERTS]:
                print(f"    {sign} {_stamp(a.at)}  {one_line(a.feed)}  {one_line(a.title)[:80]}")
                if a.why:
                    print(f"        why: {one_line('; '.join(a.why))[:150]}")


def _counts(values: Any) -> str:
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return ", ".join(f"{one_line(k)} {n}" for k, n in sorted(counted.items(),
                                                            key=lambda kv: -kv[1]))
