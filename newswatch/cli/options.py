"""What every ``newswatch`` command shares: the global options, where the config comes from,
``-`` for stdin, the exit codes, and the context a command runs in.

- ``-v/--verbose`` and ``--config`` are accepted before or after the subcommand: the top
  parser holds their defaults, every subcommand has them too with ``argparse.SUPPRESS``
  defaults, so a value given after the subcommand overrides one given before it and an
  absent one overrides nothing.
- ``--config`` defaults to ``$NEWSWATCH_CONFIG``, then to ``/etc/newswatch/config.yaml``
  when that file exists (:func:`default_config`). A command that needs a config and has
  none fails with one line on stderr and exit 2 (:class:`UsageError`).
- ``-`` names stdin wherever a file is read (a config read from stdin resolves its relative
  paths against the current directory).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeAlias

from newswatch.core.archive import Archive, ArchiveReader
from newswatch.core.config import Config, load_config, parse_until
from newswatch.core.durations import parse_duration
from newswatch.core.errors import ConfigError, Issue, NewswatchError
from newswatch.core.rulefiles import STDIN
from newswatch.core.state import Database
from newswatch.streams.silences import Silence, SilenceStore, configured_silences

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
CONFIG_VARIABLE = "NEWSWATCH_CONFIG"
SYSTEM_CONFIG = Path("/etc/newswatch/config.yaml")
CONFIG_HELP = (f"configuration file (default: ${CONFIG_VARIABLE}, else {SYSTEM_CONFIG} if it "
               "exists); - reads it from stdin, its relative paths then resolve against the "
               "current directory")

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(NewswatchError):
    """The command line cannot be carried out as given (exit 2, the message on stderr)."""


MAX_COUNT = 1_000_000  # the most rows any listing prints


def count(text: str) -> int:
    """An argparse type: a whole number from 1 to ``MAX_COUNT`` (SQLite and the terminal
    take nothing larger)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {MAX_COUNT:,}")
    return value


def default_config(environ: Mapping[str, str], exists: Callable[[Path], bool]) -> Path | None:
    """The config to use when ``--config`` is not given: ``$NEWSWATCH_CONFIG`` when set and
    not empty (even if no such file exists: reading it then names the problem), else
    ``/etc/newswatch/config.yaml`` when ``exists`` says it does, else None."""
    named = environ.get(CONFIG_VARIABLE, "")
    if named:
        return Path(named)
    return SYSTEM_CONFIG if exists(SYSTEM_CONFIG) else None


def is_stdin(path: Path | None) -> bool:
    """Whether a path argument names stdin (``-``)."""
    return path is not None and str(path) == STDIN


def global_options(*, top: bool) -> argparse.ArgumentParser:
    """A parent parser with ``-v`` and ``--config``: their defaults on the top parser
    (``top``), ``argparse.SUPPRESS`` on the subcommands so they never reset the top's."""
    parser = argparse.ArgumentParser(add_help=False)
    options = parser.add_argument_group("global options")
    options.add_argument("-v", "--verbose", action="store_true",
                         default=False if top else argparse.SUPPRESS,
                         help="debug logging (on stderr)")
    options.add_argument("--config", type=Path, metavar="FILE",
                         default=None if top else argparse.SUPPRESS, help=CONFIG_HELP)
    return parser


def add_command(
    commands: Commands, name: str, *, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand (or command group) parser that accepts the global options too."""
    parser = commands.add_parser(name, help=help, description=description or help,
                                 parents=[global_options(top=False)])
    parser.set_defaults(prog=parser.prog)
    return parser


def add_subcommands(parser: argparse.ArgumentParser, dest: str) -> Commands:
    """The subcommands of a command group (``rules check``, ``dlq list``, ...)."""
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND",
                                 help="one of the commands below")


@dataclass(frozen=True)
class Context:
    """What a command reads besides its arguments: stdin, the environment (config default,
    secrets) and the file system's answer to "does the default config exist". ``main``
    passes the process's own; tests pass theirs."""

    stdin: TextIO
    environ: Mapping[str, str]
    exists: Callable[[Path], bool] = Path.exists

    def config_path(self, args: argparse.Namespace) -> Path | None:
        """``--config`` as given, else the default (:func:`default_config`), else None."""
        given: Path | None = args.config
        return given if given is not None else default_config(self.environ, self.exists)

    def require_config_path(self, args: argparse.Namespace) -> Path:
        """The config path a command cannot do without; UsageError when there is none."""
        path = self.config_path(args)
        if path is None:
            raise UsageError(f"{args.prog}: no config: give --config FILE or set "
                             f"{CONFIG_VARIABLE} ({SYSTEM_CONFIG} does not exist)")
        return path

    def config(self, args: argparse.Namespace) -> Config:
        """The command's loaded config; UsageError without one, ConfigError when invalid."""
        return load_config(self.require_config_path(args), stdin=self.stdin)


def when(text: str, now: float, option: str) -> float:
    """Unix time of ``text``: a duration before ``now`` (7d, 12h) or an ISO 8601 date or
    date-time (UTC unless it says otherwise); UsageError naming ``option`` otherwise."""
    try:
        return now - parse_duration(text)
    except (ValueError, ConfigError):
        pass
    try:
        return parse_until(text)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is neither a duration (7d, 12h) nor an ISO "
                         "8601 date/time") from None


def add_since(parser: argparse.ArgumentParser, default: str) -> None:
    """``--since WHEN`` (read with ``when``)."""
    parser.add_argument("--since", default=default, metavar="WHEN",
                        help=f"start: a duration ago (7d, 12h) or an ISO 8601 date/time (UTC); "
                             f"default {default}")


Silences = Callable[[float], Sequence[Silence]]


def add_kafka_archive(parser: argparse.ArgumentParser) -> None:
    """``--kafka``: read the Kafka runtime's archive (its articles topic)."""
    parser.add_argument("--kafka", action="store_true",
                        help="read the Kafka runtime's archive (the articles topic of the "
                             "config's kafka:) instead of the state file's")


@contextmanager
def open_archive(config: Config, doing: str, *, kafka: bool = False,
                 environ: Mapping[str, str] = os.environ
                 ) -> Iterator[tuple[ArchiveReader, Silences]]:
    """The article archive of ``config`` and the silences in force at a time: the state's
    (opened read-only, closed on exit), or with ``kafka`` the articles topic and the
    config's silences (the Kafka runtime stores no other). ConfigError when
    ``archive.days`` is 0 (nothing to ``doing``)."""
    if not config.archive.days:
        raise ConfigError([Issue(str(config.path), 0, f"archive.days is 0: there is no "
                                 f"archive to {doing}")])
    if kafka:
        from newswatch.streams.kafka.archive import KafkaArchive  # the Kafka extra
        from newswatch.streams.kafka.client import kafka_settings

        store = SilenceStore({}, configured_silences(config.silences))
        yield KafkaArchive(kafka_settings(config, environ), config.archive.days), store.active
        return
    db = Database.open(config.state, readonly=True)
    try:
        yield Archive(db.archive(), config.archive.days), SilenceStore.of(config, db).active
    finally:
        db.close()
