"""``newswatch config check FILE``: validate a whole configuration before deploying it.

Checks, listing every problem as ``path:line: message`` (rule problems keep the rule-format
``path:line: error: message [rule id]``):

- the config file itself (keys, types, feeds, receivers, fetch, kafka, metrics, silences);
- the rule paths it names exist, and the rules load, validate and pass their examples,
  with ``notify:`` checked against the config's receivers;
- every rule's ``feeds:`` filter names a configured feed (a typo there silently mutes the
  rule).

When the config itself is broken, the rules it names are still checked (as far as its
``rules:`` list can be read), so one run shows everything. Exit 0 valid, 1 problems found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from newswatch.core.errors import ConfigError, Issue, RuleError

EXIT_OK, EXIT_PROBLEMS = 0, 1


def add_commands(sub: Any) -> None:
    config = sub.add_parser("config", help="check a configuration file")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser(
        "check", help="validate the config, its feeds, receivers, rule paths and the rules")
    check.add_argument("file", type=Path)
    backup = sub.add_parser(
        "backup", help="copy the SQLite state consistently, also while `run` is running")
    backup.add_argument("--config", required=True, type=Path)
    backup.add_argument("--to", required=True, type=Path, help="new file to write")


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "backup":
        return state_backup(args.config, args.to)
    return config_check(args.file)


def state_backup(config_path: Path, target: Path) -> int:
    """SQLite's online backup of the state (WAL included) into ``target``, then an
    integrity check of the copy. Exit 0; 1 when the copy fails its check; 2 (via
    NewswatchError) on a bad config, a missing state or an existing target."""
    import sqlite3

    from newswatch.core.config import load_config
    from newswatch.core.errors import StateError

    config = load_config(config_path)
    if not config.state.exists():
        raise StateError(f"no state at {config.state} (has `newswatch run` ever run?)")
    if target.exists():
        raise StateError(f"{target} exists; give a new file name")
    source = sqlite3.connect(config.state, timeout=30.0)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            result = copy.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            copy.close()
    finally:
        source.close()
    if result != "ok":
        print(f"{target}: integrity check failed: {result}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {config.state} backed up to {target} ({target.stat().st_size} bytes)")
    return EXIT_OK


def config_check(path: Path) -> int:
    from newswatch.core.config import load_config

    problems: list[str] = []
    rule_paths: list[Path] = []
    receivers: frozenset[str] | None = None
    feeds: frozenset[str] | None = None
    try:
        config = load_config(path)
        rule_paths = list(config.rules)
        receivers = frozenset(config.receivers)
        feeds = frozenset(f.name for f in config.feeds)
    except ConfigError as error:
        problems.extend(str(i) for i in error.issues)
        rule_paths = _readable_rule_paths(path)

    rules_count = 0
    if rule_paths:
        rules_count, rule_problems = _check_rules(rule_paths, receivers, feeds)
        problems.extend(rule_problems)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {path}: {len(feeds or ())} feed(s), {len(receivers or ())} receiver(s), "
          f"{rules_count} rule(s)")
    return EXIT_OK


def _readable_rule_paths(path: Path) -> list[Path]:
    """The existing paths of a broken config's ``rules:`` list (best effort)."""
    from newswatch.core.yamlfile import YamlError, YamlList, YamlMap, load_yaml

    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, YamlError):
        return []
    items = data.get("rules") if isinstance(data, YamlMap) else None
    if not isinstance(items, YamlList):
        return []
    base = path.resolve().parent
    found = [(base / item).resolve() for item in items if isinstance(item, str)]
    return [p for p in found if p.exists()]


def _check_rules(paths: list[Path], receivers: frozenset[str] | None,
                 feeds: frozenset[str] | None) -> tuple[int, list[str]]:
    from newswatch.cli.main import compile_rules

    try:
        matcher = compile_rules(paths, receivers)
    except RuleError as error:
        return 0, [str(i) for i in error.issues]
    except ConfigError as error:
        return 0, [str(Issue(i.path, i.line, i.message, None, "error: ")) for i in error.issues]
    problems: list[str] = []
    if feeds is not None:
        for rule in matcher.rules:
            for name in sorted((rule.feeds or frozenset()) - feeds):
                problems.append(str(Issue(rule.location.path, rule.location.line,
                                          f"feeds: unknown feed '{name}' (not in the config)",
                                          rule.id, "error: ")))
    return len(matcher.rules), problems
