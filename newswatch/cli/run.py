"""``newswatch run``: the embedded runtime. Poll, match and deliver in one process, with the
state in SQLite; rules reload when their files change; with ``metrics:`` in the config,
/metrics, /healthz and /readyz are served. ``--once`` polls every feed once, delivers, exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from newswatch.cli.options import EXIT_OK, Commands, Context, add_command
from newswatch.cli.reload_notice import reload_reporter
from newswatch.cli.serving import new_metrics, serve_health, settle_heap, stop_on_signals
from newswatch.core import health_http
from newswatch.core.archive import Archive
from newswatch.core.config import Config
from newswatch.core.errors import ConfigError, Issue
from newswatch.core.metrics import MeteredAudit
from newswatch.core.state import BLIND_RULES, PAGE_STATS, Database, RuntimeLock
from newswatch.rules.matcher import Matcher
from newswatch.streams.blindwatch import BlindWatch, feed_statuses
from newswatch.streams.notices import rejection_notifier, transition_notifier
from newswatch.streams.reload import RuleReloader, compile_rules
from newswatch.streams.runtime import Runtime

if TYPE_CHECKING:  # imported lazily at run time: the network stack
    from newswatch.monitor.fetch import Fetcher
    from newswatch.streams.embedded import Counters
    from newswatch.streams.fulltext import FullText

log = logging.getLogger("newswatch")


def add_commands(commands: Commands) -> None:
    """Add ``run``."""
    run = add_command(commands, "run",
                      help="run the embedded runtime: poll, match, deliver (SQLite state)")
    run.add_argument("--once", action="store_true", help="poll every feed once, deliver, exit")
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace, context: Context) -> int:
    """Check config and rules (exit 2 before anything starts), then run until a signal."""
    config = context.config(args)
    matcher = compile_rules(config.rules, frozenset(config.receivers))
    return asyncio.run(run_embedded(config, matcher, context.environ, once=args.once))


async def run_embedded(
    config: Config, matcher: Matcher, environ: Mapping[str, str], *, once: bool
) -> int:
    """Wire fetcher, poller, pipeline and rule reloader over the state file and run them;
    prints the counters on stderr at the end."""
    # lazy: the network stack (aiohttp, slack_sdk, aiosmtplib, feedparser): ~170 ms start-up
    from newswatch.monitor.fetch import Fetcher
    from newswatch.monitor.poller import Poller
    from newswatch.streams.embedded import EmbeddedRuntime, make_click_handler, make_pipeline
    from newswatch.streams.receivers import build_notifiers, slack_socket

    # A missing secret stops us here, exit 2. The answers to clicks an alert keeps when
    # its source count is updated come from the state, opened below before any send.
    notifiers = build_notifiers(config, environ,
                                feedback=lambda channel, ts: db.feedback().lines(channel, ts))
    clicks = slack_socket(config, environ)
    async with contextlib.AsyncExitStack() as stack:
        metrics = new_metrics(config)
        stack.callback(serve_health(
            config, metrics, loop=asyncio.get_running_loop(),
            ready={"state": health_http.state_writable(config.state)}))
        stack.callback(_lock_state(config).release)  # one writer of the delivery state
        db = Database.open(config.state)
        stack.callback(db.close)
        for notifier in notifiers.values():
            stack.push_async_callback(notifier.aclose)
        fetcher = Fetcher.for_config(config.fetch)
        stack.push_async_callback(fetcher.close)
        pipeline = make_pipeline(
            config, db, notifiers, audit=MeteredAudit(db, metrics) if metrics else None)

        def make_poller(runtime: Runtime) -> Poller:
            return Poller(config.feeds, fetcher, health=db.mapping("health"),
                          seen=db.mapping("seen"), entries=db.mapping("entries"), fetch_log=db,
                          sink=runtime.take, metrics=metrics,
                          on_transition=transition_notifier(
                              runtime.notify, config.ops,
                              metrics.observe_notice if metrics is not None else None))

        # the runtime reads the reloader's rules per article, the reloader reports to it
        archive = Archive(db.archive(), config.archive.days) if config.archive.days else None
        blind = BlindWatch(
            state=pipeline.rule_state, save=pipeline.save_activity,
            statuses=lambda now: feed_statuses(db.mapping("health"), now),
            notify=lambda notice: runtime.notify(notice), receiver=config.ops,
            show=_shown_in(db), clock=time.time)
        runtime = EmbeddedRuntime(poller_factory=make_poller, matcher=lambda: reloader.current,
                                  pipeline=pipeline, metrics=metrics, archive=archive,
                                  clicks=None if once else clicks, on_click=make_click_handler(
                                      config, db, notifiers, rules=lambda: reloader.current),
                                  full_text=_full_text(config, fetcher, db), blind=blind)
        reloader = RuleReloader(
            config.rules, matcher, status=db.mapping("meta"),
            on_rejected=rejection_notifier(runtime.notify, config.ops),
            on_reloaded=reload_reporter(config, runtime.notify),
            build=lambda: compile_rules(config.rules, frozenset(config.receivers)))
        if once:
            await runtime.run_once()
        else:
            # handlers first: a SIGTERM right after "running:" is a clean stop, not a kill
            stop = stop_on_signals()
            log.info("running: %d feed(s), %d rule(s); Ctrl-C to stop",
                     len(config.feeds), len(matcher.rules))
            settle_heap()
            await _run_until_signalled(runtime.run, reloader, stop)
    _print_counters(runtime.counters)
    return EXIT_OK


def _full_text(config: Config, fetcher: Fetcher, db: Database) -> FullText | None:
    """The full-text stage over the state: its page cache and page counters."""
    from newswatch.streams.fulltext import FullText  # lazy: trafilatura, ~470 ms

    return FullText.for_config(config, fetcher, cache=db.pages(), stats=db.mapping(PAGE_STATS))


def _shown_in(db: Database) -> Callable[[str, dict[str, Any] | None], Awaitable[None]]:
    """Where ``status`` reads the blind rules: the state's ``blind`` mapping."""
    blind = db.mapping(BLIND_RULES)

    async def show(rule_id: str, shown: dict[str, Any] | None) -> None:
        if shown is not None:
            blind[rule_id] = shown
        elif rule_id in blind:
            del blind[rule_id]

    return show


def _print_counters(c: Counters) -> None:
    counts = {"articles": c.articles, "with their page": c.bodies, "matches": c.matches,
              **dict(sorted(c.verdicts.items()))}
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), file=sys.stderr)


def _lock_state(config: Config) -> RuntimeLock:
    """The state's runtime lock, held; ConfigError when another process holds it."""
    lock = RuntimeLock(config.state)
    if not lock.acquire():
        raise ConfigError([Issue(str(config.state), 0, "another `newswatch run` (pid "
                                 f"{lock.holder()}) is using this state file")])
    return lock


async def _run_until_signalled(
    run: Callable[[asyncio.Event], Awaitable[None]], reloader: RuleReloader,
    stop: asyncio.Event,
) -> None:
    """``run`` and the rule watcher until ``stop`` (set by SIGINT or SIGTERM)."""
    watcher = asyncio.create_task(reloader.run(stop))
    try:
        await run(stop)
    finally:
        stop.set()
        await watcher
