"""``newswatch config check``: validate a whole configuration before deploying it; and
``newswatch backup``: copy the SQLite state consistently.

``config check`` lists every problem as ``path:line: message`` (rule problems keep the
form of docs/rules.md, ``path:line: error: message [rule id]``):

- the config file itself (keys, types, feeds, receivers, fetch, kafka, metrics, silences);
- the rule paths it names exist, and the rules load, validate and pass their examples,
  with ``notify:`` checked against the config's receivers;
- every rule's ``feeds:`` filter names a configured feed (a typo there silently mutes the
  rule);
- with ``--kafka``, the cluster of ``kafka:`` answers and its articles topic, the Kafka
  runtime's archive, keeps ``archive.days`` days.

When the config itself is broken, the rules it names are still checked (as far as its
``rules:`` list can be read), so one run shows everything. Exit 0 valid, 1 problems found.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from newswatch.cli.options import (
    EXIT_OK,
    EXIT_PROBLEMS,
    Commands,
    Context,
    UsageError,
    add_command,
    add_subcommands,
)
from newswatch.core.config import Config, parse_config, read_config_text
from newswatch.core.errors import ConfigError, Issue, RuleError, StateError
from newswatch.core.state import Database
from newswatch.core.yamlfile import YamlError, YamlList, YamlMap, load_yaml
from newswatch.streams.reload import compile_rules

KAFKA_TIMEOUT = 20.0  # seconds `config check --kafka` waits for the cluster


def add_commands(commands: Commands) -> None:
    """Add ``config check`` and ``backup``."""
    config = add_command(commands, "config", help="check a configuration file")
    config_commands = add_subcommands(config, "config_command")
    check = add_command(
        config_commands, "check",
        help="validate the config, its feeds, receivers, rule paths and the rules",
        description="Validate the config, its feeds, receivers, rule paths and the rules "
                    "it names, listing every problem. Exit 0 valid, 1 problems found.")
    check.add_argument("file", nargs="?", type=Path, metavar="FILE",
                       help="the config to check (instead of --config); - reads stdin")
    check.add_argument("--kafka", action="store_true",
                       help="also check the Kafka cluster of kafka: (it answers; the articles "
                            "topic keeps archive.days)")
    check.set_defaults(handler=check_command)

    backup = add_command(
        commands, "backup", help="copy the SQLite state consistently, also while `run` runs")
    backup.add_argument("--to", required=True, type=Path, metavar="FILE",
                        help="new file to write (an existing file is never overwritten)")
    backup.set_defaults(handler=backup_command)


def check_command(args: argparse.Namespace, context: Context) -> int:
    """``config check [FILE]``: the positional FILE, else ``--config`` or the default."""
    if args.file is not None and args.config is not None and args.file != args.config:
        raise UsageError(f"{args.prog}: give the config once: FILE or --config, not both")
    path = args.file if args.file is not None else context.require_config_path(args)
    return check_config(path, context, kafka=args.kafka)


def _state_problem(state: Path) -> str | None:
    """Why the monitor could not write ``state`` here (checked on this machine: the
    directory, or the nearest one that exists, must be writable), or None."""
    if state.is_dir():
        return f"state: '{state}' is a directory, not a file"
    folder = state.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:  # a real write: permissions say nothing for root on a read-only file system
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return (f"state: cannot write in '{folder}' (where '{state}' would be created): "
                f"{error.strerror or error}")
    if state.exists() and not os.access(state, os.W_OK):
        return f"state: '{state}' is read-only"
    return None


def check_config(path: Path, context: Context, *, kafka: bool = False) -> int:
    """Print every problem of the config at ``path`` and of its rules (with ``kafka``, of
    its Kafka cluster too); exit 0 or 1."""
    text, shown, base = "", str(path), Path.cwd()
    receivers: frozenset[str] | None = None
    feeds: frozenset[str] | None = None
    try:
        text, shown, base = read_config_text(path, stdin=context.stdin)
        config = parse_config(text, shown, base=base)
    except ConfigError as error:
        problems = [str(i) for i in error.issues]
        rule_paths = _readable_rule_paths(text, shown, base)  # still check what can be read
    else:
        found = [_state_problem(config.state), _kafka_problem(config, context) if kafka else None]
        problems = [f"{shown}: {problem}" for problem in found if problem]
        rule_paths = list(config.rules)
        receivers = frozenset(config.receivers)
        feeds = frozenset(f.name for f in config.feeds)

    rules_count = 0
    if rule_paths:
        rules_count, rule_problems = _check_rules(rule_paths, receivers, feeds)
        problems.extend(rule_problems)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {shown}: {len(feeds or ())} feed(s), {len(receivers or ())} receiver(s), "
          f"{rules_count} rule(s)")
    return EXIT_OK


def _kafka_problem(config: Config, context: Context) -> str | None:
    """Why the Kafka runtime of ``config`` would not keep its archive (the cluster does not
    answer, the articles topic's retention is shorter than ``archive.days``), or None."""
    from newswatch.streams.kafka.archive import retention_problem  # the Kafka extra
    from newswatch.streams.kafka.client import KafkaError, kafka_settings

    settings = kafka_settings(config, context.environ)
    try:
        problem = asyncio.run(asyncio.wait_for(
            retention_problem(settings, config.archive.days), KAFKA_TIMEOUT))
    except (KafkaError, OSError, TimeoutError) as error:
        return f"kafka: cannot read the cluster at {settings.bootstrap}: {error or 'timed out'}"
    return None if problem is None else f"kafka: {problem}"


def _readable_rule_paths(text: str, shown: str, base: Path) -> list[Path]:
    """The existing paths of a broken config's ``rules:`` list (best effort)."""
    try:
        data = load_yaml(text, shown)
    except YamlError:
        return []
    items = data.get("rules") if isinstance(data, YamlMap) else None
    if not isinstance(items, YamlList):
        return []
    found = []
    for item in items:
        if isinstance(item, str):
            try:
                found.append((base / item).resolve(strict=True))
            except (OSError, RuntimeError):  # RuntimeError: a symlink loop
                continue  # missing or unreadable: the config's own error says so
    return found


def _check_rules(paths: list[Path], receivers: frozenset[str] | None,
                 feeds: frozenset[str] | None) -> tuple[int, list[str]]:
    """The number of rules, and every problem of the rules (``feeds:`` filters included)."""
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


def backup_command(args: argparse.Namespace, context: Context) -> int:
    """SQLite's online backup of the state (WAL included) into ``--to``, then an
    integrity check of the copy. Exit 0; 1 when the copy fails its check; 2 (via
    NewswatchError) on a bad config, a missing or unreadable state, a target that exists
    or cannot be written."""
    config = context.config(args)
    target: Path = args.to
    if not config.state.exists():
        raise StateError(f"no state at {config.state} (has `newswatch run` ever run?)")
    if target.exists():
        raise StateError(f"{target} exists; give a new file name")
    db = Database.open(config.state, readonly=True)  # refuses what is not a state file
    try:
        result = db.backup(target)
    finally:
        db.close()
    if result != "ok":
        print(f"{target}: integrity check failed: {result}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {config.state} backed up to {target} ({target.stat().st_size} bytes)")
    return EXIT_OK
