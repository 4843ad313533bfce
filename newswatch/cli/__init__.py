"""The ``newswatch`` command: the composition root, which nothing in the package imports.

One module per command group registers its subcommands and holds their handlers: ``run``
(run), ``status`` (status, alerts), ``rules`` (rules check|test), ``kafka`` (poll, worker),
``delivery`` (silence, dlq), ``config`` (config check, backup) and ``completion``; the
conventions they share are in ``options``. Exit codes: 0 success, 1 a check found problems
(or a feed is not ok), 2 a usage or configuration error. User mistakes print
``str(error)``, never a traceback.

Imports sit at the top of modules, except the optional Kafka extra and the network stack
(aiohttp, slack_sdk, aiosmtplib, feedparser: ~170 ms of start-up, ``python -X importtime``),
which only the commands that use the network import.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from newswatch import __version__
from newswatch.cli import completion, config, delivery, kafka, rules, run, search, status
from newswatch.cli.options import EXIT_USAGE, Context, global_options
from newswatch.core.errors import NewswatchError
from newswatch.core.logs import setup_logging

__all__ = ["build_parser", "main"]

GROUPS = (run, status, rules, search, kafka, delivery, config)
LONG_RUNNING = ("run", "poll", "worker")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the global options and every command group's subcommands."""
    parser = argparse.ArgumentParser(
        prog="newswatch", parents=[global_options(top=True)],
        description="News-monitoring alerts: RSS/Atom feeds matched against YAML "
                    "watch-rules, delivered to Slack or e-mail.")
    parser.add_argument("--version", action="version", version=f"newswatch {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="one of the commands below")
    for group in GROUPS:
        group.add_commands(commands)
    completion.add_commands(commands, parser)
    return parser


def main(argv: Sequence[str] | None = None, context: Context | None = None) -> int:
    """Run one command line (``argv``, default ``sys.argv[1:]``) and return its exit code.
    ``context`` (stdin, environment) defaults to the process's own."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, a usage error: argparse has printed
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    if context is None:
        context = Context(stdin=sys.stdin, environ=os.environ)
    setup_logging(sys.stderr, verbose=args.verbose, environ=dict(context.environ))
    if args.command not in LONG_RUNNING and not args.verbose:
        # a one-shot command's output is its answer, not the Kafka client's group chatter
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        code: int = args.handler(args, context)
        return code
    except NewswatchError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
