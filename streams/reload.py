"""Loading watch-rules, and reloading them while the monitor runs.

``load_rules`` and ``compile_rules`` read, validate and compile rule files: every runtime and
command that needs a rule set goes through them.

Every ``interval`` seconds the rule files' fingerprint (paths, sizes, mtimes) is compared
with the loaded one. A change is loaded only once the files have been quiet for ``settle``
seconds, so an editor's half-written save is never loaded. A rule set that fails to load,
validate or pass its examples leaves the last good one in force; the problem is logged,
stored for ``newswatch status`` and handed to ``on_rejected`` (which notifies ops). A rule
set that loads is handed with the previous one to ``on_reloaded``, whose summary of the
difference (the alerts each rule would have sent over the last day) is stored too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from newswatch.core.errors import ConfigError, RuleError
from newswatch.core.heap import settle
from newswatch.core.rulefiles import fingerprint, read_rule_sources
from newswatch.rules.examples import check_examples
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import RuleSet
from newswatch.streams import rulecache

log = logging.getLogger("newswatch.rules")

Fingerprint = tuple[tuple[str, int, int], ...]


def load_rules(
    paths: Sequence[Path], receivers: frozenset[str] | None, *, stdin: TextIO | None = None
) -> RuleSet:
    """Read and validate the rule files and folders in ``paths`` (``-`` reads ``stdin``).

    With ``receivers``, every ``notify:`` must name one of them. Raises RuleError listing
    every rule problem, or ConfigError for paths that cannot be read.
    """
    sources = read_rule_sources(paths, stdin=stdin)
    return parse_rules(sources, known_codes=known_codes(), receivers=receivers)


def _compile(sources: Sequence[tuple[str, str]], receivers: frozenset[str] | None) -> Matcher:
    matcher = Matcher(parse_rules(sources, known_codes=known_codes(), receivers=receivers))
    issues = check_examples(matcher)
    if issues:
        raise RuleError(issues)
    return matcher


def compile_rules(
    paths: Sequence[Path], receivers: frozenset[str] | None, *, stdin: TextIO | None = None
) -> Matcher:
    """``load_rules``, compiled into a Matcher whose rules pass their own examples; raises
    RuleError (a failing example included) or ConfigError like ``load_rules``. Rule files
    unchanged since an earlier compile come from the rule cache (streams/rulecache.py)."""
    sources = read_rule_sources(paths, stdin=stdin)
    return rulecache.cached(sources, receivers, lambda: _compile(sources, receivers))


class RuleReloader:
    """Holds the current Matcher and replaces it when the rule files change and load.

    ``build`` loads and compiles the rule files (raising RuleError or ConfigError);
    ``status`` is a mapping where the reload state is kept under the key ``"rules"``.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        matcher: Matcher,
        *,
        build: Callable[[], Matcher],
        status: MutableMapping[str, Any],
        on_rejected: Callable[[str], Awaitable[None]] | None = None,
        on_reloaded: Callable[[Matcher, Matcher], Awaitable[str | None]] | None = None,
        interval: float = 0.25,
        settle: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._paths = tuple(paths)
        self.current = matcher
        self._build = build
        self._status = status
        self._on_rejected = on_rejected
        self._on_reloaded = on_reloaded
        self._interval = interval
        self._settle = settle
        self._clock = clock
        self._wall = wall
        self._loaded: Fingerprint = fingerprint(self._paths)
        self._pending: tuple[Fingerprint, float] | None = None
        self._rejected: object = None  # the files' version last rejected
        self._record(error=None)

    def _record(self, *, error: str | None) -> None:
        state = dict(self._status.get("rules", {}))
        now = self._wall()
        if error is None:
            state.update(rules=len(self.current.rules), loaded_at=now, error=None,
                         error_at=None, difference=None)
        else:
            state.update(error=error, error_at=now)
        self._status["rules"] = state

    async def check(self) -> bool:
        """One look at the files; True when a new rule set was swapped in. The rules are
        compiled in a thread, off the event loop: a large rule set must not stall polling,
        delivery or ``/healthz``. Any failure to load is a rejection, reported once per
        version of the files."""
        try:
            seen = fingerprint(self._paths)
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
            await self._reject(("unreadable", str(error)), f"cannot read the rule files: "
                                                           f"{error}")
            return False
        now = self._clock()
        if seen == self._loaded or seen == self._rejected:
            self._pending = None
            return False
        if self._pending is None or self._pending[0] != seen:
            self._pending = (seen, now)  # still being written, perhaps: wait until quiet
            return False
        if now - self._pending[1] < self._settle:
            return False
        self._pending = None
        try:
            matcher = await asyncio.to_thread(self._build)
        except (RuleError, ConfigError) as error:
            await self._reject(seen, str(error))
            return False
        except Exception as error:  # e.g. MemoryError, RecursionError: refused all the same
            await self._reject(seen, f"cannot load the rule files: {type(error).__name__}: "
                                     f"{error}")
            return False
        previous, self.current = self.current, matcher
        del matcher
        self._loaded = seen
        self._rejected = None
        self._record(error=None)
        log.info("rules reloaded: %d rule(s)", len(self.current.rules))
        if self._on_reloaded is not None:
            try:
                summary = await self._on_reloaded(previous, self.current)
            except Exception:  # the new rules are in force; only the report is missing
                log.exception("the difference the reload makes could not be computed")
            else:
                if summary is not None:
                    state = dict(self._status.get("rules", {}))
                    state.update(difference=summary)
                    self._status["rules"] = state
        del previous
        settle()  # the old index freed, the new one out of the collector's passes
        return True

    async def _reject(self, version: object, text: str) -> None:
        """Keep the rules in force; record and notify ``text`` unless this version of the
        files (a fingerprint, or an unreadable state) was rejected already."""
        if version == self._rejected:
            return
        self._rejected = version
        log.error("rule reload rejected; the previous rules stay in force:\n%s", text)
        self._record(error=text)
        if self._on_rejected is not None:
            await self._on_rejected(text)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("rule reload failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
