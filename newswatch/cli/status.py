"""``newswatch status``: feed health, worst first; ``newswatch alerts``: recent delivery
decisions. Both only read: the SQLite state (opened read-only) or, with ``status --kafka``,
the Kafka runtime's feed-health and rules-status topics.

``status`` exits 0 when every feed is ok, 1 otherwise (so it can gate a deploy or page).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from newswatch.cli.kafka import kafka_status
from newswatch.cli.options import (
    EXIT_OK,
    EXIT_PROBLEMS,
    MAX_COUNT,
    Commands,
    Context,
    add_command,
    count,
)
from newswatch.core.config import Config, FeedConfig
from newswatch.core.errors import ConfigError, Issue
from newswatch.core.printable import one_line, printable
from newswatch.core.state import BLIND_RULES, PAGE_STATS, Database
from newswatch.monitor.health import (
    STATUS_ORDER,
    FeedHealth,
    articles_last_24h,
    current_status,
    rebase,
)
from newswatch.monitor.pagestats import PageStats, page_stats_key

STATUSES = ("ok", "stale", "failing", "disabled", "never_polled")
_STATUS_STYLE = {"ok": "green", "stale": "yellow", "failing": "bold red",
                 "disabled": "magenta", "never_polled": "dim"}
_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("FEED", "left"), ("STATUS", "left"), ("LAST POLL", "left"), ("LAST SUCCESS", "left"),
    ("HTTP", "right"), ("FAILS", "right"), ("NEW 24H", "right"), ("SEEN", "right"),
    ("USUAL GAP", "right"), ("304", "right"), ("LATENCY", "right"), ("NEXT POLL", "left"),
    ("LAST ERROR", "left"))


def add_commands(commands: Commands) -> None:
    """Add ``status`` and ``alerts``."""
    status = add_command(
        commands, "status", help="feed health, worst first (exit 1 unless every feed is ok)")
    status.add_argument("--json", action="store_true", help="JSON out: one object per feed")
    status.add_argument("--feed", metavar="NAME", help="one feed with its recent fetches")
    status.add_argument("--kafka", action="store_true",
                        help="read the Kafka runtime's feed-health topic, not the SQLite state")
    status.set_defaults(handler=status_command)

    alerts = add_command(commands, "alerts", help="recent delivery decisions, newest first")
    alerts.add_argument("--json", action="store_true", help="JSON out: one object per decision")
    alerts.add_argument("--limit", type=count, default=50, metavar="N",
                        help=f"how many decisions, 1 to {MAX_COUNT:,} (default: 50)")
    alerts.set_defaults(handler=alerts_command)


def status_command(args: argparse.Namespace, context: Context) -> int:
    config = context.config(args)
    feeds = list(config.feeds)
    if args.feed is not None:
        feeds = [f for f in feeds if f.name == args.feed]
        if not feeds:
            raise ConfigError([Issue(str(context.config_path(args)), 0,
                                     f"no feed named '{args.feed}'")])
    now = time.time()
    if args.kafka:  # the Kafka runtime's pollers and workers publish to compacted topics
        health, rules_state = asyncio.run(kafka_status(config, context.environ))
        rows = [_row(f, health.get(f.name), now) for f in feeds]
        if args.feed is not None:
            for row in rows:
                row["pages"] = _pages(health.get(page_stats_key(row["feed"])))
    else:
        rows, rules_state = _state_rows(config, feeds, now, with_fetches=args.feed is not None)
    rows.sort(key=lambda r: (STATUS_ORDER.get(r["status"], 9), -r["consecutive_failures"],
                             r["feed"]))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        _print_status(rows, now)
        _print_rules_state(rules_state)
    return EXIT_OK if rows and all(r["status"] == "ok" for r in rows) else EXIT_PROBLEMS


def _state_rows(config: Config, feeds: list[FeedConfig], now: float, *,
                with_fetches: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows from the SQLite state (empty health before the first run) and the rule-reload
    state; ``with_fetches`` adds each feed's last 20 fetches."""
    if not config.state.exists():
        return [_row(f, None, now) for f in feeds], {}
    db = Database.open(config.state, readonly=True)
    try:
        health: Mapping[str, Any] = db.mapping("health")
        rows = [_row(f, health.get(f.name), now) for f in feeds]
        if with_fetches:
            stats: Mapping[str, Any] = db.mapping(PAGE_STATS)
            for row in rows:
                row["pages"] = _pages(stats.get(row["feed"]))
                row["fetches"] = [
                    {"at": _iso(e.at), "status": e.status, "latency": e.latency,
                     "new": e.new, "error": e.error} for e in db.fetches(row["feed"], limit=20)]
        return rows, {**dict(db.mapping("meta").get("rules", {})),
                      "blind": dict(db.mapping(BLIND_RULES).items())}
    finally:
        db.close()


def _pages(data: Any) -> dict[str, Any] | None:
    """A feed's ``pages`` object (docs/feeds.md), None when none of its pages was asked
    for yet."""
    return PageStats.from_json(data).summary() if data else None


def _row(feed: FeedConfig, data: Any, now: float) -> dict[str, Any]:
    """One feed's status row (the ``status --json`` contract) from its health record."""
    h = rebase(FeedHealth.from_json(data) if data else FeedHealth(feed=feed.name), feed.url)
    share = h.share_not_modified
    return {
        "feed": feed.name,
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
        "url": h.url or feed.url,
    }


def _iso(t: float | None) -> str | None:
    if t is None or t == float("inf"):
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


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


def _print_status(rows: list[dict[str, Any]], now: float) -> None:
    """A rich table, worst first, a summary line, and with --feed the recent fetches.
    Every cell is a ``Text`` (never parsed as markup: error messages come from servers)."""
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    console.print(_status_table(rows, now))
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    summary = (f"{counts['ok']} ok / {counts['stale']} stale / {counts['failing']} failing"
               f" / {counts['disabled']} disabled")
    if counts["never_polled"]:
        summary += f" / {counts['never_polled']} never polled"
    console.print(Text(summary))
    for r in rows:
        if "pages" in r:
            console.print(Text(_pages_line(r["feed"], r["pages"])))
        if "fetches" in r:
            console.print(_fetches_table(r))


def _pages_line(feed: str, pages: dict[str, Any] | None) -> str:
    """``status --feed``'s line on the feed's article pages (full text)."""
    if pages is None:
        return one_line(f"pages of {feed}: none fetched")
    fetched = pages["fetched"]
    rate = f"{pages['success_rate'] * 100:.0f}% ok" if fetched else "-"
    failures = ", ".join(f"{kind} {n}" for kind, n in pages["failures"].items())
    extract = pages["median_extract_s"]
    page = pages["median_page_s"]
    return one_line(
        f"pages of {feed}: {fetched} fetched, {rate}" + (f" ({failures})" if failures else "")
        + f", median extraction {_ms(extract)}, median page {_ms(page)}, "
        f"{pages['late']} late, {pages['cached']} from the cache"
        + (f", {pages['retried']} tried again" if pages.get("retried") else "")
        + (f", {pages['handed']} handed to the poller of their site" if pages.get("handed")
           else ""))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _status_table(rows: list[dict[str, Any]], now: float) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, justify in _COLUMNS:
        table.add_column(name, justify=justify, overflow="fold")
    for r in rows:
        share = f"{r['share_304'] * 100:.0f}%" if r["share_304"] is not None else "-"
        latency = f"{r['latency_s'] * 1000:.0f} ms" if r["latency_s"] is not None else "-"
        error = f"{r['error_kind']}: {r['error']}" if r["error_kind"] else "-"
        table.add_row(
            Text(one_line(r["feed"])), Text(r["status"], style=_STATUS_STYLE.get(r["status"], "")),
            Text(_ago(r["last_attempt"], now)), Text(_ago(r["last_success"], now)),
            Text(str(r["last_status"] or "-")),
            Text(str(r["consecutive_failures"])), Text(str(r["articles_24h"])),
            Text(str(r["articles_seen"])), Text(_span(r["usual_gap_s"])), Text(share),
            Text(latency), Text("never" if r["status"] == "disabled" else
                                _ago(r["next_poll"], now).replace(" ago", " overdue")),
            Text(one_line(error[:120])),
        )
    return table


def _fetches_table(row: dict[str, Any]) -> Table:
    fetches = Table(title=Text(one_line(f"last {len(row['fetches'])} fetches of {row['feed']}")),
                    show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name in ("TIME", "HTTP", "LATENCY", "NEW", "ERROR"):
        fetches.add_column(name, overflow="fold")
    for e in row["fetches"]:
        latency = f"{e['latency'] * 1000:.0f} ms" if e["latency"] is not None else "-"
        fetches.add_row(Text(e["at"] or "-"), Text(str(e["status"] or "-")), Text(latency),
                        Text(str(e["new"])), Text(one_line((e["error"] or "")[:160])))
    return fetches


def _print_rules_state(rules_state: dict[str, Any]) -> None:
    """The rule set in force, a rejected reload (the previous rules stay in force), and
    the rules ops were told are blind (docs/delivery.md, "Blind rules")."""
    for rule_id, blind in sorted((rules_state.get("blind") or {}).items()):
        print(f"rule {printable(rule_id)} is BLIND since {_iso(blind.get('since'))}:")
        for reason in blind.get("reasons") or ():
            print(f"  {printable(str(reason))}")
    if not rules_state.get("rules"):
        return
    print(f"rules: {rules_state.get('rules')} loaded at {_iso(rules_state.get('loaded_at'))}")
    if rules_state.get("difference"):
        print("the last reload, replayed over the last 24 h of archived articles:")
        print("  " + printable(str(rules_state["difference"])).replace("\n", "\n  "))
    if rules_state.get("error"):
        print(f"last rule reload REJECTED at {_iso(rules_state.get('error_at'))} "
              "(previous rules in force):")
        print("  " + printable(str(rules_state["error"])).replace("\n", "\n  "))


def alerts_command(args: argparse.Namespace, context: Context) -> int:
    config = context.config(args)
    if not config.state.exists():
        print("[]" if args.json else "no alerts yet")
        return EXIT_OK
    db = Database.open(config.state, readonly=True)
    try:
        decisions = db.decisions(args.limit)
    finally:
        db.close()
    if args.json:
        print(json.dumps([{**asdict(d), "at": _iso(d.at)} for d in decisions],
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    for d in decisions:  # one line each, whatever the feed put in its title
        print(f"{_iso(d.at)}  {one_line(d.rule_id):<24} {one_line(d.verdict):<13} "
              f"{one_line(d.receiver):<16} {one_line(d.result):<20} {one_line(d.title[:60])}")
    return EXIT_OK
