"""``newswatch search``: the article archive searched with the rule language itself: the
query is one rule's body (YAML flow style, or a file holding it), matched by the same
matcher as the watchlists; results newest first, each with its why (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newswatch.cli.options import (
    EXIT_OK,
    Commands,
    Context,
    UsageError,
    add_command,
    add_kafka_archive,
    add_since,
    open_archive,
    when,
)
from newswatch.core.archive import ArchivedArticle
from newswatch.core.printable import one_line
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher, RuleMatch

QUERY_NAME = "<query>"


def add_commands(commands: Commands) -> None:
    search = add_command(
        commands, "search", help="search the article archive with a rule body",
        description="Search the archived articles (archive.days) with a one-off rule: "
                    "QUERY is a rule's body in YAML flow style, e.g. 'phrases: [\"accord "
                    "militaire\"], countries: [MA]', or a file holding one; the same "
                    "matcher as the watchlists. Newest first, with the why.")
    search.add_argument("query", metavar="QUERY", help="a rule body, or a file holding one")
    add_since(search, "30d")
    search.add_argument("--limit", type=int, default=50, metavar="N",
                        help="at most N results, the newest (1 to 10,000; default 50)")
    add_kafka_archive(search)
    search.add_argument("--json", action="store_true", help="one JSON array")
    search.set_defaults(handler=search_command)


def query_matcher(query: str) -> Matcher:
    """The one-off rule of ``query`` (a rule body or a file holding one), compiled;
    RuleError with ``<query>:line`` messages when it is not a valid rule body."""
    path = Path(query)
    text, shown = query, QUERY_NAME
    if "\n" not in query and len(query) < 4096 and path.is_file():
        text, shown = path.read_text(encoding="utf-8"), str(path)
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    # the rule around the body: an id and a title, which a query needs not give
    source = f"rules:\n  - {{id: search, title: search, {body}}}\n"
    return Matcher(parse_rules([(shown, source)], known_codes=known_codes()))


def search_command(args: argparse.Namespace, context: Context) -> int:
    if not 1 <= args.limit <= 10_000:
        raise UsageError("--limit must be between 1 and 10,000")
    config = context.config(args)
    matcher = query_matcher(args.query)
    since = when(args.since, time.time(), "--since")
    found: deque[tuple[ArchivedArticle, RuleMatch]] = deque(maxlen=args.limit)
    with open_archive(config, "search", kafka=args.kafka,
                      environ=context.environ) as (archive, _):
        for item in archive.read(since):
            for match in matcher.match(item.article):
                found.append((item, match))
    results = [_result(item, match) for item, match in reversed(found)]
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not results:
        print("no archived article matched")
    for r in results:
        print(one_line(f"{r['seen_at'][:16].replace('T', ' ')} UTC  {r['feed']}  {r['title']}"))
        print(one_line(f"    {r['url']}"))
        print(one_line(f"    why: {'; '.join(r['why'])}"))
    return EXIT_OK


def _result(item: ArchivedArticle, match: RuleMatch) -> dict[str, Any]:
    a = item.article
    return {"seen_at": datetime.fromtimestamp(item.seen_at, UTC).isoformat(timespec="seconds"),
            "id": a.id, "feed": a.feed, "title": a.title, "url": a.url,
            "language": a.language, "why": [e.explain() for e in match.evidence],
            "evidence": [e.to_json() for e in match.evidence]}
