"""The reload notice of both runtimes (issue 17): on every accepted hot reload the last
24 h of archived articles are replayed through the previous and the new rules (``rules
backtest``'s difference, in a thread: the loop goes on) and one ops notice lists the rules
that would have sent other alerts, those whose volume doubles or halves first.

``newswatch run`` reads its state's archive; ``newswatch worker`` reads the articles topic.
Every worker of a group reloads the same files and computes the notice: its key is the
pair of rule sets, so the owner of the notice's partition delivers the first copy and
decides the others as ``same_article``; the same edit made again within the notice's
dedup window (``NOTICE_WINDOW``, a day) is not announced again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping

from newswatch.cli.options import open_archive
from newswatch.core.archive import DAY
from newswatch.core.config import Config
from newswatch.rules.matcher import Matcher
from newswatch.streams.alerts import Match
from newswatch.streams.backtest import definitions, difference, notable, stand_ins, summary_line
from newswatch.streams.notices import ops_notice

NO_CHANGE = "no rule would have sent other alerts over the last 24 h"


def reload_reporter(
    config: Config, notify: Callable[[Match], Awaitable[object]], *, kafka: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> Callable[[Matcher, Matcher], Awaitable[str | None]] | None:
    """The reloader's ``on_reloaded`` when the config keeps an archive: the summary lines,
    sent once to the ops receiver (when there is one) and returned for ``status``."""
    if not config.archive.days:
        return None

    async def on_reloaded(before: Matcher, after: Matcher) -> str:
        lines = await asyncio.to_thread(last_day, config, before, after, kafka, environ)
        # one line per rule; ";" keeps them apart where a receiver shows one paragraph
        text = ";\n".join(lines) if lines else NO_CHANGE
        if config.ops is not None:
            await notify(ops_notice(
                "rules-reloaded", "Rules reloaded: the last 24 h replayed with the new rules",
                text, receiver=config.ops, severity="low",
                key=f"{_digest(before)}\x1f{_digest(after)}"))
        return text

    return on_reloaded


def last_day(config: Config, before: Matcher, after: Matcher, kafka: bool,
             environ: Mapping[str, str]) -> list[str]:
    """The summary line of each rule the reload changes over the last 24 h, notable first;
    blocking (a connection of its own to the state or the cluster)."""
    until = time.time()
    since = until - DAY
    with open_archive(config, "replay", kafka=kafka, environ=environ) as (archive, silences):
        changes = asyncio.run(difference(before, after, lambda: archive.read(since, until),
                                         stand_ins(config), silences))
    return [summary_line(c, since, until) for c in notable(changes)]


def _digest(matcher: Matcher) -> str:
    """A digest of a rule set's definitions (where they are written left out)."""
    rules = sorted(definitions(matcher).items())
    return hashlib.sha256(repr(rules).encode()).hexdigest()[:16]
