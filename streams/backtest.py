"""Rule backtest: archived articles replayed through rules with the real matcher and the
real delivery pipeline (decide stage: dedup window, story grouping, thread replies,
throttle, digests, silences), in memory, sending nothing (issue 17).

The replay keeps the archive's clock: each article is decided at the time it was handed to
matching (``seen_at``), and due digests are sealed before it, as the running monitor would
have done. Receivers are stand-ins (``DryRunNotifier``) that record what they are asked to
send and thread like the real ones (Slack and the console reply in a thread, e-mail puts
later copies in its digest); nothing waits for pacing.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from newswatch.core.archive import DAY, ArchivedArticle
from newswatch.core.article import Article
from newswatch.core.config import Config, ConsoleReceiver, SlackReceiver
from newswatch.core.state import Decision
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import Location, Rule, RuleSet
from newswatch.streams.alerts import Digest, Match
from newswatch.streams.decide import story_id
from newswatch.streams.matching import Matching, to_match
from newswatch.streams.notifiers import Receipt
from newswatch.streams.pacing import Pacer
from newswatch.streams.pipeline import Pipeline
from newswatch.streams.silences import Silence

__all__ = ["AlertLine", "Backtest", "DryRunNotifier", "RuleChange", "RuleOutcome",
           "SharedMatching", "Volume", "changed_rules", "compare", "definitions", "difference",
           "notable", "replay_both", "span_days", "stand_ins", "summary_line", "volume"]


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One alert the rules would have sent: a new story, the first time it reached any
    receiver."""

    at: float  # Unix seconds
    rule_id: str
    story: str
    title: str
    feed: str
    language: str | None
    url: str
    why: tuple[str, ...]  # the evidence, one line per item (Evidence.explain)


@dataclass
class RuleOutcome:
    """What one rule would have done over the replayed articles."""

    rule_id: str
    title: str
    matches: int = 0
    alerts: list[AlertLine] = field(default_factory=list)
    replies: int = 0  # thread replies under an earlier alert of the same story
    digested: int = 0  # matches that went into a digest (throttled or e-mail copies)
    digests: int = 0  # digest messages
    escalations: int = 0  # alerts to an escalation's receivers (growing stories)
    verdicts: Counter[str] = field(default_factory=Counter)  # per receiver decision

    def stories(self) -> set[str]:
        return {a.story for a in self.alerts}


class DryRunNotifier:
    """A receiver that records instead of sending (``Notifier``)."""

    min_interval = 0.0

    def __init__(self, name: str, threads: bool, sink: Backtest) -> None:
        self.name = name
        self.lane = f"dry-run:{name}"
        self.threads = threads
        self._sink = sink
        self._sent = 0

    def _receipt(self) -> Receipt:
        self._sent += 1
        return Receipt(self.name, f"{self.name}-{self._sent}")

    async def send(self, match: Match, ident: str | None = None) -> Receipt:
        if match.escalation is not None:
            self._sink.outcome(match.rule_id, match.title).escalations += 1
        else:
            self._sink.alerted(match)
        return self._receipt()

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None) -> Receipt:
        if match.escalation is None:  # an escalation's note is no copy of the story
            self._sink.outcome(match.rule_id, match.title).replies += 1
        return self._receipt()

    async def update_sources(self, parent: Receipt, match: Match, sources: int) -> None:
        return None

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt:
        self._sink.outcome(digest.rule_id, digest.rule_title).digests += 1
        return self._receipt()

    async def find(self, ident: str, *, since: float, where: Receipt | None,
                   in_thread: bool = False) -> Receipt | None:
        return None

    async def aclose(self) -> None:
        return None


# The audit results of a decision itself (streams/pipeline.py): the outcome of sending is
# logged again later, with the same verdict.
_DECIDED = frozenset({"pending", "digest", "counted", "skipped"})


class Backtest:
    """Replays articles through ``matcher`` and a pipeline over in-memory state.

    ``receivers``: receiver name → whether it threads (Slack, console) or not (e-mail);
    ``silences(now)``: the silences in force at ``now`` (the config's and the stored
    ones)."""

    def __init__(self, matcher: Matcher, receivers: Mapping[str, bool], *,
                 silences: Callable[[float], Sequence[Silence]] = lambda now: ()) -> None:
        self._matching = Matching(lambda: matcher)
        self._now = -math.inf
        self.articles = 0  # replayed so far
        self._alerted: set[tuple[str, str]] = set()  # (rule, story)
        # The Kafka archive replays an article whose page came late twice, on its teaser,
        # then with its body (streams/kafka/archive.py); the embedded archive once, with
        # its body. Counted once, and a rule decided once per article, both replays agree.
        self._replayed: set[str] = set()  # article ids
        self._matched: set[tuple[str, str]] = set()  # (rule, article id)
        self.outcomes: dict[str, RuleOutcome] = {
            r.id: RuleOutcome(r.id, r.title) for r in matcher.rules}
        notifiers = {name: DryRunNotifier(name, threads, self)
                     for name, threads in receivers.items()}
        self._pipeline = Pipeline(
            notifiers=notifiers, state={}, dlq={}, audit=self, silences=silences,
            clock=self._clock, sleep=_no_wait,
            pacer=Pacer(clock=self._clock, sleep=_no_wait), inline=True, typed_state=True)

    def _clock(self) -> float:
        return self._now

    def outcome(self, rule_id: str, title: str) -> RuleOutcome:
        found = self.outcomes.get(rule_id)
        if found is None:
            found = self.outcomes[rule_id] = RuleOutcome(rule_id, title)
        return found

    # the pipeline's DecisionLog
    def log_decision(self, d: Decision) -> None:
        if d.result not in _DECIDED:
            return  # the line a send adds to the audit trail, after the decision's own
        outcome = self.outcome(d.rule_id, d.title)
        outcome.verdicts[d.verdict] += 1
        if d.result == "digest":
            outcome.digested += 1

    def alerted(self, match: Match) -> None:
        """A receiver was sent a new alert; the first receiver's counts for the story."""
        story = story_id(match)
        if (match.rule_id, story) in self._alerted:
            return
        self._alerted.add((match.rule_id, story))
        a = match.article
        self.outcome(match.rule_id, match.title).alerts.append(AlertLine(
            at=self._now, rule_id=match.rule_id, story=story, title=a.title, feed=a.feed,
            language=a.language, url=a.url or a.id,
            why=tuple(e.explain() for e in match.evidence)))

    async def replay(self, articles: Iterable[ArchivedArticle],
                     progress: Callable[[int], None] | None = None) -> dict[str, RuleOutcome]:
        """Match and decide every article at its ``seen_at``, then seal what digests are
        left; the outcome of every rule (those that never matched included). The delivery
        stage's own log lines are held back meanwhile: nothing is sent."""
        with _delivery_held():
            return await self._replay(articles, progress)

    async def _replay(self, articles: Iterable[ArchivedArticle],
                      progress: Callable[[int], None] | None) -> dict[str, RuleOutcome]:
        for item in articles:
            await self.step(item, self._matching(item.article))
            if progress is not None:
                progress(self.articles)
        return await self.finish()

    async def step(self, item: ArchivedArticle, matches: Iterable[Match]) -> None:
        """Decide ``item``'s matches (found by this backtest's rules) at its ``seen_at``,
        after sealing the digests due by then. An article seen again with its page's body
        (the Kafka archive holds both versions) counts once, and a rule that matched its
        teaser is not decided again (delivery's dedup would say same_article)."""
        article = item.article
        if article.id not in self._replayed:
            self._replayed.add(article.id)
            self.articles += 1
        self._now = max(self._now, item.seen_at)
        await self._pipeline.flush_digests()
        for match in matches:
            if (match.rule_id, article.id) in self._matched:
                continue
            self._matched.add((match.rule_id, article.id))
            self.outcome(match.rule_id, match.title).matches += 1
            await self._pipeline.deliver(match)

    async def finish(self) -> dict[str, RuleOutcome]:
        """Seal the digests left (each when it falls due); the outcome of every rule."""
        while (due := self._pipeline.next_digest_due()) is not None:
            self._now = max(self._now, due)
            if not await self._pipeline.flush_digests():
                break
        return self.outcomes


async def _no_wait(seconds: float) -> None:
    return None


@contextmanager
def _delivery_held() -> Iterator[None]:
    """The delivery stage's own log lines held back (a replay sends nothing)."""
    delivery = logging.getLogger("newswatch.delivery")
    level = delivery.level
    delivery.setLevel(logging.WARNING)
    try:
        yield
    finally:
        delivery.setLevel(level)


@dataclass(frozen=True, slots=True)
class Volume:
    """Alerts per day over the replayed span (whole days counted from its start): total,
    min, median, max, and the busiest hour (Unix seconds of its start and its alert
    count; None without alerts)."""

    days: int
    total: int
    low: int
    median: float
    high: int
    busiest_hour: tuple[float, int] | None

    @property
    def per_day(self) -> float:
        return self.total / self.days if self.days else 0.0


def span_days(since: float, until: float) -> int:
    """The whole days a span counts as (at least 1): the nearest, so that a week asked
    for with a second's margin is still 7 days."""
    return max(1, math.floor((until - since) / DAY + 0.5))


def volume(alerts: Sequence[AlertLine], since: float, until: float) -> Volume:
    """Alerts a day over [since, until), in ``span_days`` days from ``since`` (the last
    day takes what is left of the span)."""
    days = span_days(since, until)
    per_day = Counter(min(days - 1, int((a.at - since) // DAY)) for a in alerts)
    counts = sorted(per_day.get(d, 0) for d in range(days))
    middle = len(counts) // 2
    median = counts[middle] if len(counts) % 2 else (counts[middle - 1] + counts[middle]) / 2
    hours = Counter(a.at // 3600 * 3600 for a in alerts)
    busiest = max(hours.items(), key=lambda kv: (kv[1], -kv[0])) if hours else None
    return Volume(days, len(alerts), counts[0], float(median), counts[-1], busiest)


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One rule between the rules in force and the edited ones: ``added``, ``removed``,
    ``changed`` or ``same``, with the alerts (new stories) the edit gains and loses."""

    rule_id: str
    change: str
    before: RuleOutcome | None
    after: RuleOutcome | None
    gained: tuple[AlertLine, ...]
    lost: tuple[AlertLine, ...]


def compare(before: Mapping[str, RuleOutcome], after: Mapping[str, RuleOutcome],
            changed: Iterable[str]) -> list[RuleChange]:
    """The rule-by-rule difference of two replays of the same articles; ``changed``: the
    ids of rules present in both whose definition differs."""
    edited = set(changed)
    out = []
    for rule_id in sorted(before.keys() | after.keys()):
        old, new = before.get(rule_id), after.get(rule_id)
        old_stories = old.stories() if old else set()
        new_stories = new.stories() if new else set()
        gained = tuple(a for a in (new.alerts if new else []) if a.story not in old_stories)
        lost = tuple(a for a in (old.alerts if old else []) if a.story not in new_stories)
        kind = ("added" if old is None else "removed" if new is None
                else "changed" if rule_id in edited else "same")
        out.append(RuleChange(rule_id, kind, old, new, gained, lost))
    return out


def definitions(matcher: Matcher) -> dict[str, Rule]:
    """Rule id → its definition, wherever it is written (the location left out)."""
    return {r.id: replace(r, location=Location("", 0)) for r in matcher.rules}


def changed_rules(before: Matcher, after: Matcher) -> list[str]:
    """Ids of the rules in both whose definition differs."""
    old, new = definitions(before), definitions(after)
    return sorted(rule_id for rule_id in old.keys() & new.keys() if old[rule_id] != new[rule_id])


def summary_line(change: RuleChange, since: float, until: float) -> str:
    """``rule (changed): +12 / −3 alerts over 7 days, 1.7 → 3.4 a day``."""
    days = span_days(since, until)
    old = volume(change.before.alerts, since, until).per_day if change.before else 0.0
    new = volume(change.after.alerts, since, until).per_day if change.after else 0.0
    what = {"added": "added", "removed": "removed", "changed": "changed", "same": "unchanged"}
    return (f"{change.rule_id} ({what[change.change]}): +{len(change.gained)} / "
            f"−{len(change.lost)} alerts over {days} day{'s' if days != 1 else ''}, "
            f"{old:.1f} → {new:.1f} a day")


def notable(changes: Sequence[RuleChange]) -> list[RuleChange]:
    """The changes worth a line (a rule added, removed, or sending other alerts), those
    whose volume at least doubles or halves first, then by alerts gained and lost."""
    shown = [c for c in changes if c.change != "same" or c.gained or c.lost]

    def doubled(c: RuleChange) -> bool:
        old = len(c.before.alerts) if c.before else 0
        new = len(c.after.alerts) if c.after else 0
        return max(old, new) >= 2 * min(old, new) and old != new

    return sorted(shown, key=lambda c: (not doubled(c), -(len(c.gained) + len(c.lost)),
                                        c.rule_id))


class SharedMatching:
    """An article matched for two rule sets at once: by every rule of ``before``, and by
    those of ``after`` whose result may differ. A rule of both with the same definition
    finds the same matches with the same evidence (a rule's result depends on the article,
    its own definition and the country aliases of its set, nothing else), so when the
    aliases are the same only the edited and added rules are matched a second time."""

    def __init__(self, before: Matcher, after: Matcher) -> None:
        self._before = before
        if before.ruleset.aliases == after.ruleset.aliases:
            old = definitions(before)
            self._reused = frozenset(rule_id for rule_id, rule in definitions(after).items()
                                     if old.get(rule_id) == rule)
        else:
            self._reused = frozenset()
        again = tuple(r for r in after.rules if r.id not in self._reused)
        self._again = (None if not again
                       else after if len(again) == len(after.rules)
                       else Matcher(RuleSet(rules=again, aliases=after.ruleset.aliases)))
        self._order = {r.id: n for n, r in enumerate(after.rules)}

    def __call__(self, article: Article) -> tuple[list[Match], list[Match]]:
        """The matches of ``before`` and of ``after``, each in its rule-set order."""
        old = [to_match(found, article) for found in self._before.match(article)]
        new = [m for m in old if m.rule_id in self._reused]
        if self._again is not None:
            new.extend(to_match(found, article) for found in self._again.match(article))
            new.sort(key=lambda m: self._order[m.rule_id])
        return old, new


async def replay_both(before: Matcher, after: Matcher, articles: Iterable[ArchivedArticle],
                      receivers: Mapping[str, bool],
                      silences: Callable[[float], Sequence[Silence]] = lambda now: (),
                      progress: Callable[[int], None] | None = None,
                      ) -> tuple[dict[str, RuleOutcome], dict[str, RuleOutcome]]:
    """The outcomes of ``before`` and of ``after`` over the same articles, as two replays
    give them, in one pass: each article is read once and matched once for the rules both
    share (``SharedMatching``). The delivery stage's log lines are held back meanwhile."""
    old = Backtest(before, receivers, silences=silences)
    new = Backtest(after, receivers, silences=silences)
    matching = SharedMatching(before, after)
    with _delivery_held():
        for item in articles:
            found_old, found_new = matching(item.article)
            await old.step(item, found_old)
            await new.step(item, found_new)
            if progress is not None:
                progress(new.articles)
        return await old.finish(), await new.finish()


async def difference(before: Matcher, after: Matcher,
                     articles: Callable[[], Iterable[ArchivedArticle]],
                     receivers: Mapping[str, bool],
                     silences: Callable[[float], Sequence[Silence]] = lambda now: (),
                     ) -> list[RuleChange]:
    """Both rule sets replayed over ``articles()`` (called once), compared."""
    old, new = await replay_both(before, after, articles(), receivers, silences)
    return compare(old, new, changed_rules(before, after))


def stand_ins(config: Config) -> dict[str, bool]:
    """Receiver name → whether it threads, as its channel does (``Notifier.threads``:
    Slack and the console reply in a thread, e-mail does not); without importing the
    channels and their network stack. tests/test_backtest.py checks they agree."""
    return {name: isinstance(r, SlackReceiver | ConsoleReceiver)
            for name, r in config.receivers.items()}
