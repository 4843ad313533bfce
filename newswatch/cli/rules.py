"""``newswatch rules check`` and ``newswatch rules test``: validate watch-rules, and show
which rules an article matches and why.

Both read rule files and folders (``-``: one rule file from stdin). With a config (``--config``
or the default one) every ``notify:`` is also checked against its receivers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from newswatch.cli.backtest import add_backtest
from newswatch.cli.options import (
    EXIT_OK,
    EXIT_PROBLEMS,
    Commands,
    Context,
    UsageError,
    add_command,
    add_subcommands,
    is_stdin,
)
from newswatch.cli.stats import add_stats
from newswatch.core.article import Article, canonical_url
from newswatch.core.config import load_config
from newswatch.core.errors import ConfigError, Issue, RuleError
from newswatch.core.heap import settle
from newswatch.core.printable import one_line
from newswatch.core.rulefiles import STDIN_NAME
from newswatch.monitor.textclean import clean_text
from newswatch.rules.evidence import Evidence
from newswatch.rules.matcher import Matcher, RuleMatch
from newswatch.streams.reload import compile_rules

RULE_PATHS_HELP = "rule files or folders (every *.yaml/*.yml below); - reads one from stdin"


def add_commands(commands: Commands) -> None:
    """Add ``rules check``, ``rules test``, ``rules backtest`` and ``rules stats``."""
    rules = add_command(commands, "rules", help="check or try watch-rules")
    rules_commands = add_subcommands(rules, "rules_command")
    check = add_command(
        rules_commands, "check", help="validate rule files and their examples",
        description="Validate rule files and check their examples; with a config (--config "
                    "or the default one), also check notify: against its receivers. Exit 0 "
                    "valid, 1 problems found.")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=RULE_PATHS_HELP)
    check.set_defaults(handler=check_command)

    test = add_command(
        rules_commands, "test", help="show which rules an article matches, and why",
        description="Match one article (or a batch) against the rules and show the "
                    "evidence: rule, clause, term, field and span. With a config (--config "
                    "or the default one), notify: is checked against its receivers.")
    test.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=RULE_PATHS_HELP)
    source = test.add_mutually_exclusive_group(required=True)
    source.add_argument("--article", type=Path, metavar="FILE",
                        help="one article: a JSON object (title, summary, content, url, "
                             "language, feed, id) or plain text, first line the title; "
                             "- reads stdin")
    source.add_argument("--articles", type=Path, metavar="FILE",
                        help="JSON lines, one article each (needs --json); - reads stdin")
    test.add_argument("--json", action="store_true",
                      help="JSON out: one object, or one line per article with --articles")
    test.set_defaults(handler=test_command)
    add_backtest(rules_commands)
    add_stats(rules_commands)


def check_command(args: argparse.Namespace, context: Context) -> int:
    """Exit 0 when the rules load and pass their examples; 1 listing every problem."""
    _one_stdin_input(args, context)
    receivers = _receivers(args, context)
    try:
        matcher = compile_rules(args.paths, receivers, stdin=context.stdin)
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


def test_command(args: argparse.Namespace, context: Context) -> int:
    """Print the matches of ``--article`` (text or JSON) or of each ``--articles`` line."""
    _one_stdin_input(args, context)
    if args.articles is not None and not args.json:
        raise UsageError("--articles needs --json (one JSON line out per article)")
    matcher = compile_rules(args.paths, _receivers(args, context), stdin=context.stdin)
    if args.articles is not None:
        settle(collect=False)  # the index out of the collector's later passes (core/heap.py)
        _test_batch(matcher, _read_input(args.articles, context.stdin), _shown(args.articles))
        return EXIT_OK
    data = _parse_article(_read_input(args.article, context.stdin), _shown(args.article))
    name = STDIN_NAME if is_stdin(args.article) else args.article.name
    found = matcher.match(article_from(data, name))
    if args.json:
        print(json.dumps({"id": data.get("id", name), "matches": _matches_json(found)},
                         ensure_ascii=False, indent=2))
    else:
        _print_matches(found)
    return EXIT_OK


def _one_stdin_input(args: argparse.Namespace, context: Context) -> None:
    """UsageError when more than one input of the command line is ``-``: stdin is one."""
    inputs = [*args.paths, getattr(args, "article", None), getattr(args, "articles", None),
              context.config_path(args)]
    if sum(is_stdin(path) for path in inputs) > 1:
        raise UsageError(f"{args.prog}: only one input can be read from stdin (-)")


def _receivers(args: argparse.Namespace, context: Context) -> frozenset[str] | None:
    """The config's receiver names, or None (no check) when there is no config."""
    path = context.config_path(args)
    if path is None:
        return None
    return frozenset(load_config(path, stdin=context.stdin).receivers)


def _shown(path: Path) -> str:
    """How an input file is named in messages."""
    return STDIN_NAME if is_stdin(path) else str(path)


def _read_input(path: Path, stdin: TextIO) -> str:
    """The text of an input file (``-``: stdin); ConfigError when it cannot be read."""
    if is_stdin(path):
        return stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Issue(str(path), 0, f"cannot read: {error}")]) from None


def _parse_article(text: str, shown: str) -> dict[str, Any]:
    """A JSON object when the text starts with ``{``, else plain text: first line the
    title, the rest the content. ConfigError for invalid JSON or JSON that is no object."""
    if not text.lstrip().startswith("{"):
        title, _, content = text.partition("\n")
        return {"title": title.strip(), "content": content}
    data = _load_json(text, shown, 1)
    if not isinstance(data, dict):
        raise ConfigError([Issue(shown, 1, "expected a JSON object")])
    return data


def _load_json(text: str, shown: str, line: int) -> Any:
    """``json.loads(text)``; ConfigError ``shown:line: invalid JSON: …`` for anything it
    refuses, nesting too deep for the parser and numbers too long included."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError([Issue(shown, line + error.lineno - 1,
                                 f"invalid JSON: {error.msg}")]) from None
    except RecursionError:
        raise ConfigError([Issue(shown, line, "invalid JSON: nested too deeply")]) from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise ConfigError([Issue(shown, line, f"invalid JSON: {error}")]) from None


def article_from(data: dict[str, Any], default_id: str) -> Article:
    """An Article from the rules-test JSON shape; text is cleaned like feed text."""

    def text(key: str, limit: int) -> str:
        value = data.get(key)
        return clean_text(value, limit) if isinstance(value, str) else ""

    url = data.get("url") if isinstance(data.get("url"), str) else ""
    language = data.get("language")
    return Article(
        id=str(data.get("id") or default_id),
        feed=str(data.get("feed") or ""),
        title=text("title", 1000),
        url=canonical_url(url) if url else "",
        summary=text("summary", 5000),
        content=text("content", 50000),
        language=language if isinstance(language, str) else None,
    )


def _test_batch(matcher: Matcher, text: str, shown: str) -> None:
    """One JSON line out per non-blank JSON line in: ``{"id", "matches"}``, in order."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        data = _load_json(line, shown, number)
        if isinstance(data, dict):
            ident, found = data.get("id", number), matcher.match(article_from(data, str(number)))
        else:
            ident, found = number, []
        print(matches_line(ident, found))


def matches_line(ident: object, found: Sequence[RuleMatch]) -> str:
    """``json.dumps({"id": ident, "matches": _matches_json(found)}, ensure_ascii=False)``,
    with each distinct piece of evidence encoded once: rules that ask an article the same
    question share it (at 10,000 rules, some 30 pieces per article, 7 distinct)."""
    encoded: dict[int, str] = {}

    def encode(evidence: Evidence) -> str:
        text = encoded.get(id(evidence))  # the objects live as long as ``found``
        if text is None:
            text = encoded[id(evidence)] = json.dumps(evidence.to_json(), ensure_ascii=False)
        return text

    matches = ", ".join(
        f'{{"rule_id": {json.dumps(m.rule.id, ensure_ascii=False)}, '
        f'"evidence": [{", ".join(map(encode, m.evidence))}]}}' for m in found)
    return f'{{"id": {json.dumps(ident, ensure_ascii=False)}, "matches": [{matches}]}}'


def _matches_json(found: Sequence[RuleMatch]) -> list[dict[str, Any]]:
    return [{"rule_id": m.rule.id, "evidence": [e.to_json() for e in m.evidence]}
            for m in found]


def _print_matches(found: Sequence[RuleMatch]) -> None:
    if not found:
        print("no rule matched")
    for m in found:
        print(one_line(f"✔ {m.rule.id} — {m.rule.title} [{m.rule.severity}]"))
        for e in m.evidence:  # the text is the article's: one line, escaped
            score = f" score {e.score:.0f}" if e.score is not None else ""
            print(one_line(f"    {e.clause:<8} {e.term:<28} {e.field}[{e.start}:{e.end}] "
                           f"“{e.text}”{score}"))
