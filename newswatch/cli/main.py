"""The ``newswatch`` command: the one composition root.

It may import every layer, lazily per command, so ``newswatch rules check`` does not load
the HTTP client and ``status`` does not load the matcher. Exit codes: 0 success, 1 a check
found problems (or a feed is not ok), 2 a usage or configuration error. User mistakes print
``str(error)``, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newswatch.core.errors import ConfigError, Issue, NewswatchError, RuleError

if TYPE_CHECKING:
    from newswatch.core.config import Config
    from newswatch.rules.matcher import Matcher
    from newswatch.rules.model import RuleSet
    from newswatch.streams.notifiers import Notifier

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newswatch", description="News-monitoring alerts.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the embedded runtime (SQLite state)")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--once", action="store_true", help="poll every feed once, deliver, exit")

    status = sub.add_parser("status", help="feed health")
    status.add_argument("--config", required=True, type=Path)
    status.add_argument("--json", action="store_true")
    status.add_argument("--feed", help="one feed with its recent fetches")
    status.add_argument("--kafka", action="store_true",
                        help="read the Kafka runtime's feed-health topic, not the SQLite state")

    alerts = sub.add_parser("alerts", help="recent delivery decisions")
    alerts.add_argument("--config", required=True, type=Path)
    alerts.add_argument("--json", action="store_true")
    alerts.add_argument("--limit", type=int, default=50)

    rules = sub.add_parser("rules", help="check or try watch-rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate rule files and their examples")
    check.add_argument("paths", nargs="+", type=Path)
    check.add_argument("--config", type=Path, help="also check receiver names against it")
    test = rules_sub.add_parser("test", help="show which rules an article matches, and why")
    test.add_argument("paths", nargs="+", type=Path)
    source = test.add_mutually_exclusive_group(required=True)
    source.add_argument("--article", type=Path, help="JSON object or plain text")
    source.add_argument("--articles", type=Path, help="JSON lines, one article each")
    test.add_argument("--json", action="store_true")
    test.add_argument("--config", type=Path, help="also check receiver names against it")

    poll = sub.add_parser("poll", help="Kafka runtime: poll this process's share of the feeds")
    poll.add_argument("--config", required=True, type=Path)
    worker = sub.add_parser("worker", help="Kafka runtime: match and deliver (faust worker)")
    worker.add_argument("--config", required=True, type=Path)

    from newswatch.cli.delivery import add_commands

    add_commands(sub)  # silence add|list|expire, dlq list|replay
    from newswatch.cli import config as cli_config

    cli_config.add_commands(sub)  # config check, backup
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from newswatch.core.logs import setup_logging

    setup_logging(sys.stderr, verbose=args.verbose)  # JSON lines unless on a terminal
    if args.command not in ("run", "poll", "worker") and not args.verbose:
        # a one-shot command's output is its answer, not the Kafka client's group chatter
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        if args.command == "run":
            return _run(args.config, once=args.once)
        if args.command == "status":
            return _status(args.config, as_json=args.json, feed=args.feed, kafka=args.kafka)
        if args.command == "alerts":
            return _alerts(args.config, as_json=args.json, limit=args.limit)
        if args.command in ("poll", "worker"):
            return _kafka_command(args.command, args.config)
        if args.command in ("silence", "dlq"):
            from newswatch.cli.delivery import dispatch

            return dispatch(args) or EXIT_OK
        if args.command in ("config", "backup"):
            from newswatch.cli import config as cli_config

            return cli_config.dispatch(args)
        if args.rules_command == "check":
            return _rules_check(args.paths, args.config)
        return _rules_test(args.paths, args.article, args.articles, args.json, args.config)
    except NewswatchError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------------- kafka


def _kafka_command(command: str, config_path: Path) -> int:
    from newswatch.cli import kafka as cli_kafka
    from newswatch.core.config import load_config

    config = load_config(config_path)
    if command == "poll":
        return cli_kafka.run_poll(config)
    receivers = frozenset(config.receivers)
    compile_rules(config.rules, receivers)  # fail fast, exit 2, before starting faust
    return cli_kafka.run_worker(
        config,
        build_matcher=lambda: compile_rules(config.rules, receivers),
        notifiers=build_notifiers(config),
    )


# ---------------------------------------------------------------------------- rules


def load_rules(paths: Sequence[Path], receivers: frozenset[str] | None) -> RuleSet:
    """Read and validate rule files; raises RuleError (or ConfigError for missing files)."""
    from newswatch.core.rulefiles import read_rule_sources
    from newswatch.rules.gazetteer import known_codes
    from newswatch.rules.loader import parse_rules

    return parse_rules(read_rule_sources(paths), known_codes=known_codes(), receivers=receivers)


def compile_rules(paths: Sequence[Path], receivers: frozenset[str] | None) -> Matcher:
    """Load, compile and check the examples of a rule set; raises RuleError."""
    from newswatch.rules.examples import check_examples
    from newswatch.rules.matcher import Matcher

    matcher = Matcher(load_rules(paths, receivers))
    issues = check_examples(matcher)
    if issues:
        raise RuleError(issues)
    return matcher


def _receivers_of(config_path: Path | None) -> frozenset[str] | None:
    if config_path is None:
        return None
    from newswatch.core.config import load_config

    return frozenset(load_config(config_path).receivers)


def _rules_check(paths: Sequence[Path], config_path: Path | None) -> int:
    receivers = _receivers_of(config_path)
    try:
        matcher = compile_rules(paths, receivers)
    except RuleError as error:
        for issue in error.issues:
            print(issue)
        print(f"{len(error.issues)} problem(s) found", file=sys.stderr)
        return EXIT_PROBLEMS
    except ConfigError as error:
        for issue in error.issues:
            print(Issue(issue.path, issue.line, issue.message, None, "error: "))
        return EXIT_PROBLEMS
    count = len(matcher.rules)
    examples = sum(len(r.examples.match) + len(r.examples.no_match) for r in matcher.rules)
    print(f"ok: {count} rule(s), {examples} example(s) checked")
    return EXIT_OK


def _read_article(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Issue(str(path), 0, f"cannot read article: {error}")]) from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError([Issue(str(path), error.lineno, f"invalid JSON: {error.msg}")]
                              ) from None
        if not isinstance(data, dict):
            raise ConfigError([Issue(str(path), 1, "expected a JSON object")])
        return data
    title, _, content = text.partition("\n")
    return {"title": title.strip(), "content": content}


def article_from(data: dict[str, Any], default_id: str) -> Any:
    """An Article from the rules-test JSON shape; text is cleaned like feed text."""
    from newswatch.core.article import Article, canonical_url
    from newswatch.monitor.textclean import clean_text

    def text(key: str, limit: int) -> str:
        value = data.get(key)
        return clean_text(value, limit) if isinstance(value, str) else ""

    url = data.get("url") if isinstance(data.get("url"), str) else ""
    return Article(
        id=str(data.get("id") or default_id),
        feed=str(data.get("feed") or ""),
        title=text("title", 1000),
        url=canonical_url(url) if url else "",
        summary=text("summary", 5000),
        content=text("content", 50000),
        language=data.get("language") if isinstance(data.get("language"), str) else None,
    )


def _rules_test(
    paths: Sequence[Path], article: Path | None, articles: Path | None, as_json: bool,
    config_path: Path | None,
) -> int:
    matcher = compile_rules(paths, _receivers_of(config_path))
    if articles is not None:
        if not as_json:
            print("--articles needs --json (one JSON line out per article)", file=sys.stderr)
            return EXIT_USAGE
        try:
            lines = articles.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError([Issue(str(articles), 0, f"cannot read: {error}")]) from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise ConfigError([Issue(str(articles), number, f"invalid JSON: {error.msg}")]
                                  ) from None
            ident = data.get("id", number) if isinstance(data, dict) else number
            found = matcher.match(article_from(data, str(number))) if isinstance(data, dict) else []
            print(json.dumps({"id": ident, "matches": [
                {"rule_id": m.rule.id, "evidence": [e.to_json() for e in m.evidence]}
                for m in found]}, ensure_ascii=False))
        return EXIT_OK
    assert article is not None
    data = _read_article(article)
    found = matcher.match(article_from(data, article.name))
    if as_json:
        print(json.dumps({"id": data.get("id", article.name), "matches": [
            {"rule_id": m.rule.id, "evidence": [e.to_json() for e in m.evidence]}
            for m in found]}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not found:
        print("no rule matched")
    for m in found:
        print(f"✔ {m.rule.id} — {m.rule.title} [{m.rule.severity}]")
        for e in m.evidence:
            score = f" score {e.score:.0f}" if e.score is not None else ""
            print(f"    {e.clause:<8} {e.term:<28} {e.field}[{e.start}:{e.end}] "
                  f"“{e.text}”{score}")
    return EXIT_OK


# ---------------------------------------------------------------------------- runtime


def build_notifiers(config: Config) -> dict[str, Notifier]:
    """One notifier per configured receiver; secrets from the environment only."""
    from newswatch.core.config import ConsoleReceiver, EmailReceiver, SlackReceiver
    from newswatch.streams.notifiers import ConsoleNotifier, EmailNotifier, SlackNotifier

    out: dict[str, Notifier] = {}
    for name, receiver in config.receivers.items():
        if isinstance(receiver, SlackReceiver):
            token = os.environ.get("SLACK_BOT_TOKEN", "")
            if not token:
                raise ConfigError([Issue(str(config.path), 0, f"receivers.{name}: the Slack "
                                         "token must be in the SLACK_BOT_TOKEN environment "
                                         "variable")])
            out[name] = SlackNotifier(name, receiver.channel, token, base_url=receiver.base_url,
                                      reconcile=receiver.reconcile)
        elif isinstance(receiver, EmailReceiver):
            out[name] = EmailNotifier(
                name, receiver.sender, receiver.to, receiver.host, receiver.port,
                starttls=receiver.starttls, tls=receiver.tls, username=receiver.user,
                password=os.environ.get("SMTP_PASSWORD") or None,
            )
        elif isinstance(receiver, ConsoleReceiver):
            out[name] = ConsoleNotifier(name)
    return out


def _run(config_path: Path, *, once: bool) -> int:
    from newswatch.core.config import load_config

    config = load_config(config_path)
    matcher = compile_rules(config.rules, frozenset(config.receivers))
    notifiers = build_notifiers(config)
    return asyncio.run(_run_async(config, matcher, notifiers, once=once))


async def _run_async(
    config: Config, matcher: Matcher, notifiers: dict[str, Notifier], *, once: bool
) -> int:
    from newswatch.cli.delivery import make_pipeline, require_lock
    from newswatch.core import health_http
    from newswatch.core.metrics import MeteredAudit, Metrics
    from newswatch.core.state import Database
    from newswatch.monitor.fetch import Fetcher, FetchLimits
    from newswatch.monitor.poller import ArticleSink, Poller
    from newswatch.streams.embedded import EmbeddedRuntime
    from newswatch.streams.notices import ops_notice, transition_notifier
    from newswatch.streams.pipeline import Pipeline
    from newswatch.streams.reload import RuleReloader

    metrics: Metrics | None = None
    metrics_server: health_http.HealthServer | None = None
    watchdog: health_http.LoopWatchdog | None = None
    if config.metrics is not None:
        from prometheus_client import CollectorRegistry

        metrics = Metrics(CollectorRegistry())
        watchdog = health_http.LoopWatchdog(asyncio.get_running_loop()).start()
        try:
            metrics_server = health_http.serve(
                port=config.metrics.port, host=config.metrics.host, registry=metrics.registry,
                live={"loop": watchdog.check},
                ready={"state": health_http.state_writable(config.state)})
        except OSError as error:
            watchdog.stop()
            raise ConfigError([Issue(str(config.path), 0, f"metrics: cannot listen on "
                                     f"{config.metrics.host}:{config.metrics.port}: "
                                     f"{error.strerror or error}")]) from None
        logging.getLogger("newswatch").info(
            "metrics on http://%s:%d/metrics (health: /healthz, /readyz)",
            config.metrics.host, metrics_server.port)
    lock = require_lock(config)  # one writer of the delivery state
    db = Database.open(config.state)
    limits = FetchLimits(total=config.fetch.timeout, max_bytes=config.fetch.max_bytes)
    fetcher = Fetcher(limits=limits, allow=config.fetch.allow)
    pipeline: Pipeline = make_pipeline(
        config, db, notifiers, audit=MeteredAudit(db, metrics) if metrics is not None else None)

    def make_poller(sink: ArticleSink) -> Poller:
        return Poller(config.feeds, fetcher, health=db.mapping("health"),
                      seen=db.mapping("seen"), entries=db.mapping("entries"), fetch_log=db,
                      sink=sink, metrics=metrics,
                      on_transition=transition_notifier(
                          pipeline.deliver, config.ops,
                          metrics.observe_notice if metrics is not None else None))

    async def notify_rejected(text: str) -> None:
        if config.ops is not None:
            await pipeline.deliver(ops_notice(
                "rules-rejected", "Rule reload rejected: the previous rules stay in force",
                text, receiver=config.ops))

    reloader = RuleReloader(
        config.rules, matcher, status=db.mapping("meta"), on_rejected=notify_rejected,
        build=lambda: compile_rules(config.rules, frozenset(config.receivers)),
    )
    runtime = EmbeddedRuntime(poller_factory=make_poller, matcher=lambda: reloader.current,
                              pipeline=pipeline, metrics=metrics)
    try:
        if once:
            await runtime.run_once()
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            logging.getLogger("newswatch").info(
                "running: %d feed(s), %d rule(s); Ctrl-C to stop",
                len(config.feeds), len(matcher.rules))
            watcher = asyncio.create_task(reloader.run(stop))
            try:
                await runtime.run(stop)
            finally:
                stop.set()
                await watcher
    finally:
        await fetcher.close()
        for notifier in notifiers.values():
            await notifier.aclose()
        db.close()
        lock.release()
        if metrics_server is not None:
            metrics_server.close()
        if watchdog is not None:
            watchdog.stop()
    c = runtime.counters
    print(f"articles: {c.articles}, matches: {c.matches}, "
          + ", ".join(f"{k}: {v}" for k, v in sorted(c.verdicts.items())), file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------- status


def _iso(t: float | None) -> str | None:
    if t is None or t == float("inf"):
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _status(
    config_path: Path, *, as_json: bool, feed: str | None, kafka: bool = False
) -> int:
    import time

    from newswatch.core.config import load_config
    from newswatch.core.state import Database
    from newswatch.monitor.health import (
        STATUS_ORDER,
        FeedHealth,
        articles_last_24h,
        current_status,
        rebase,
    )

    config = load_config(config_path)
    feeds = list(config.feeds)
    if feed is not None:
        feeds = [f for f in feeds if f.name == feed]
        if not feeds:
            raise ConfigError([Issue(str(config_path), 0, f"no feed named '{feed}'")])
    now = time.time()
    rows: list[dict[str, Any]] = []
    rules_state: dict[str, Any] = {}
    db = None
    if not kafka and config.state.exists():
        db = Database.open(config.state, readonly=True)
    try:
        health: Mapping[str, Any] = db.mapping("health") if db else {}
        if kafka:  # the Kafka runtime's pollers publish health to a compacted topic
            from newswatch.cli.kafka import kafka_health

            health = asyncio.run(kafka_health(config))
        rules_state = dict(db.mapping("meta").get("rules", {})) if db else {}
        for f in feeds:
            data = health.get(f.name)
            h = rebase(FeedHealth.from_json(data) if data else FeedHealth(feed=f.name), f.url)
            share = h.share_not_modified
            rows.append({
                "feed": f.name,
                "status": current_status(h, now),
                "error_kind": h.error_kind,
                "error": h.error_message,
                "consecutive_failures": h.consecutive_failures,
                "last_success": _iso(h.last_success),
                "last_attempt": _iso(h.last_attempt),
                "last_status": h.last_status,
                "articles_seen": h.articles_seen,
                "articles_24h": articles_last_24h(h, now),
                "last_new_article": _iso(h.last_new_article),
                "usual_gap_s": round(h.usual_gap, 1) if h.usual_gap is not None else None,
                "share_304": round(share, 3) if share is not None else None,
                "latency_s": round(h.latency, 3) if h.latency is not None else None,
                "polls": h.polls,
                "since": _iso(h.since),
                "next_poll": _iso(h.next_poll) if h.last_attempt else None,
                "url": h.url or f.url,
            })
            if feed is not None and db is not None:
                rows[-1]["fetches"] = [
                    {"at": _iso(e.at), "status": e.status, "latency": e.latency,
                     "new": e.new, "error": e.error} for e in db.fetches(f.name, limit=20)
                ]
    finally:
        if db is not None:
            db.close()
    rows.sort(key=lambda r: (STATUS_ORDER.get(r["status"], 9), -r["consecutive_failures"],
                             r["feed"]))
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        _print_status(rows, now)
        if rules_state:
            print(f"rules: {rules_state.get('rules')} loaded at "
                  f"{_iso(rules_state.get('loaded_at'))}")
            if rules_state.get("error"):
                print(f"last rule reload REJECTED at {_iso(rules_state.get('error_at'))} "
                      "(previous rules in force):")
                print("  " + str(rules_state["error"]).replace("\n", "\n  "))
    return EXIT_OK if rows and all(r["status"] == "ok" for r in rows) else EXIT_PROBLEMS


def _ago(iso: str | None, now: float) -> str:
    """ "4m ago" / "in 2h" from an ISO time; "-" for None."""
    if iso is None:
        return "-"
    delta = datetime.fromisoformat(iso).timestamp() - now
    return f"in {_span(delta)}" if delta > 0 else f"{_span(-delta)} ago"


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}" if seconds < 10 * size else \
                f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


_STATUS_STYLE = {"ok": "green", "stale": "yellow", "failing": "bold red",
                 "disabled": "magenta", "never_polled": "dim"}


def _print_status(rows: list[dict[str, Any]], now: float) -> None:
    """A rich table, worst first, a summary line, and with --feed the recent fetches.
    Every cell is a ``Text`` (never parsed as markup: error messages come from servers)."""
    from rich.console import Console, JustifyMethod
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("FEED", "left"), ("STATUS", "left"), ("LAST POLL", "left"),
        ("LAST SUCCESS", "left"), ("HTTP", "right"),
        ("FAILS", "right"), ("NEW 24H", "right"), ("SEEN", "right"), ("USUAL GAP", "right"),
        ("304", "right"), ("LATENCY", "right"), ("NEXT POLL", "left"), ("LAST ERROR", "left"))
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    for r in rows:
        share = f"{r['share_304'] * 100:.0f}%" if r["share_304"] is not None else "-"
        latency = f"{r['latency_s'] * 1000:.0f} ms" if r["latency_s"] is not None else "-"
        error = f"{r['error_kind']}: {r['error']}" if r["error_kind"] else "-"
        table.add_row(
            Text(r["feed"]), Text(r["status"], style=_STATUS_STYLE.get(r["status"], "")),
            Text(_ago(r["last_attempt"], now)), Text(_ago(r["last_success"], now)),
            Text(str(r["last_status"] or "-")),
            Text(str(r["consecutive_failures"])), Text(str(r["articles_24h"])),
            Text(str(r["articles_seen"])), Text(_span(r["usual_gap_s"])), Text(share),
            Text(latency), Text("never" if r["status"] == "disabled" else
                                _ago(r["next_poll"], now).replace(" ago", " overdue")),
            Text(error[:120]),
        )
    console.print(table)
    counts = {s: sum(1 for r in rows if r["status"] == s)
              for s in ("ok", "stale", "failing", "disabled", "never_polled")}
    summary = (f"{counts['ok']} ok / {counts['stale']} stale / {counts['failing']} failing"
               f" / {counts['disabled']} disabled")
    if counts["never_polled"]:
        summary += f" / {counts['never_polled']} never polled"
    console.print(Text(summary))
    for r in rows:
        if "fetches" not in r:
            continue
        fetches = Table(title=Text(f"last {len(r['fetches'])} fetches of {r['feed']}"),
                        show_edge=False, pad_edge=False, box=None, header_style="bold")
        for name in ("TIME", "HTTP", "LATENCY", "NEW", "ERROR"):
            fetches.add_column(name, overflow="fold")
        for e in r["fetches"]:
            latency = f"{e['latency'] * 1000:.0f} ms" if e["latency"] is not None else "-"
            fetches.add_row(Text(e["at"] or "-"), Text(str(e["status"] or "-")), Text(latency),
                            Text(str(e["new"])), Text((e["error"] or "")[:160]))
        console.print(fetches)


def _alerts(config_path: Path, *, as_json: bool, limit: int) -> int:
    from dataclasses import asdict

    from newswatch.core.config import load_config
    from newswatch.core.state import Database

    config = load_config(config_path)
    if not config.state.exists():
        print("[]" if as_json else "no alerts yet")
        return EXIT_OK
    db = Database.open(config.state, readonly=True)
    try:
        decisions = db.decisions(limit)
    finally:
        db.close()
    if as_json:
        print(json.dumps([{**asdict(d), "at": _iso(d.at)} for d in decisions],
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    for d in decisions:
        print(f"{_iso(d.at)}  {d.rule_id:<24} {d.verdict:<13} {d.receiver:<16} "
              f"{d.result:<20} {d.title[:60]}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
