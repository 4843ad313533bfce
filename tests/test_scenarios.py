"""The delivery acceptance scenarios, written once and run against both runtimes (issue 13).

One working day, the same for both: the real processes (`newswatch run`; `newswatch poll`
with two `newswatch worker`s on the project's Kafka broker) read the same feeds from a real
feed server and post to the fake Slack Web API, and one config holds every scenario:

- dedup and threads: the seed article syndicated by 3 outlets → 1 alert, 2 replies in its
  thread;
- throttle and digest: 25 distinct stories for a rule with ``max_per_hour: 20`` and
  ``digest_interval: 1m`` → 20 alerts, then 1 digest holding the other 5;
- silences: a rule silenced in the config → nothing sent, the decision says why;
- DLQ replay: a channel refusing posts → 1 dead letter; once the channel works again,
  ``newswatch dlq replay`` twice → delivered once;
- feed-health notices: a feed failing 3 times → 1 ops notice; recovering → 1;
- blind-rule warnings (issue 18): the rule whose ``feeds:`` names only that feed → 1
  "is blind" notice while it fails, 1 "sees again" once it recovers;
- rule-reload notices: a broken watchlist edit → 1 ops notice (with 2 Kafka workers,
  each seeing the edit), and the previous rules keep matching; a valid edit removing a
  rule → 1 ops notice with the last 24 h replayed (the rule's lost alert, read from the
  state's archive or the articles topic), shown by ``newswatch status`` too;
- full text: a feed whose entry holds only a title, its page a news page (menus, related
  lists, comments) around a body of the project's own text → 1 alert of the rule only the
  body satisfies, quoting the body; ``status --feed`` counts the page; the archive's
  replay of the reload sees the body too (no line for that rule).
- escalation (issue 18): a story syndicated by 6 feeds, 3 in French and 3 in Arabic (the
  Arabic versions join the story by the person and country they name), for a rule with
  ``escalate: {sources: 6, languages: 2, notify: [duty]}`` → 1 alert, its first message
  re-rendered with "Escalated: 6 sources, ar + fr", 1 note in its thread, and exactly 1
  alert in the duty channel;
- a click on an alert's buttons (issue 18): "Mute story" clicked over Socket Mode (a local
  server; in Kafka the poller holds the socket and the worker owning the rule applies it)
  → acknowledged, answered under the alert, a silence listed with its clicker, and the
  next copy of the story silenced with the reason. This runs beside the rest of the day.

What differs between the runtimes is only how a scenario looks inside them (where the
decisions and dead letters are read, how the CLI reaches them): ``Embedded`` and ``Kafka``
below. Both days run side by side (about 2 minutes: the digest interval and the failing
feed's backoff); each test checks one scenario in each runtime. The Kafka-only cases
(a worker or a poller killed -9; a worker taking a rule over after a mute) are in
tests/test_kafka_digest.py, tests/test_kafka_notices.py and tests/test_kafka_clicks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from newswatch.streams.kafka import topics
from newswatch.streams.kafka.client import KafkaSettings, ensure_topics
from newswatch.streams.runtime import Runtime
from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import SLACK_APP_TEST_TOKEN, SLACK_TEST_TOKEN
from tests.fakes.news_pages import build_page
from tests.fakes.slack_api import FakeSlackAPI, StoredMessage
from tests.fakes.slack_socket import FakeSocketMode
from tests.fakes.stories import distinct_title
from tests.fakes.story_texts import ONYX_EN, RELATED_EN
from tests.kafka_fixtures import kafka_bootstrap, unique_name, wait_for_stable_group  # noqa: F401
from tests.scenario_clicks import BASALT, Clicks, click_script, eventually
from tests.test_delivery_e2e import TITLES
from tests.test_end_to_end import newswatch, seed_item
from tests.test_kafka_cluster import Proc, processes
from tests.test_kafka_runtime import drained

# One test process runs the whole module (its fixture lives both runtimes' day once).
pytestmark = pytest.mark.xdist_group("scenarios")

RUNTIMES = ("embedded", "kafka")
PER_HOUR, STORIES = 20, 25
ZQ = re.compile(r"zq\d{3}")
RULES = """\
rules:
  - id: us-maghreb-military
    title: US military agreements in the Maghreb
    countries: {all: [US, MA]}
    phrases: ["accord militaire"]
    people: ["Mark Esper"]
    notify: [desk]
  - id: zircon-watch
    title: Zircon watch
    phrases: [zircon]
    notify: [zircon]
    dedup: {max_per_hour: 20, digest_interval: 1m}
  - id: quartz-watch
    title: Quartz watch
    phrases: [quartz]
    notify: [desk]
  - id: ledger-watch
    title: Ledger watch
    phrases: [ledger]
    notify: [archive]
  - id: onyx-watch
    title: Onyx watch
    phrases: ["onyx accord"]
    notify: [desk]
  - id: basalt-watch
    title: Basalt watch
    phrases: [basalt]
    notify: [clicks]
  - id: flint-watch
    title: Flint watch
    phrases: [flint]
    feeds: [flaky]
    notify: [desk]
  - id: garnet-watch
    title: Garnet watch
    countries: [NO]
    people: [{name: Ilse Garnet, aliases: ["إلسه غارنت"]}]
    notify: [garnet]
    escalate: {sources: 6, languages: 2, notify: [duty]}
  - id: amber-watch
    title: Amber watch
    phrases: [amber]
    notify: [desk]
"""
BROKEN = RULES + "    colour: blue\n"  # an unknown key: the edit is rejected
WITHOUT_AMBER = RULES.split("  - id: amber-watch")[0]
AMBER_LOST = "amber-watch (removed): +0 / −1 alerts over 1 day, 1.0 → 0.0 a day"
GARNET = (  # one story: 3 French outlets, then 3 Arabic ones
    *((f"garnet{n}", "fr", "La Norvège : la ministre Ilse Garnet annonce un fonds pour le "
       f"climat{suffix}") for n, suffix in enumerate(("", " - Le Journal", " (vidéo)"))),
    *((f"garnet{n + 3}", "ar", f"النرويج: الوزيرة إلسه غارنت تعلن عن صندوق للمناخ{suffix}")
      for n, suffix in enumerate(("", " - الجريدة", " (فيديو)"))))
FEEDS = ("wire0", "wire1", "wire2", "zircon", "quartz", "ledger", "flaky", "late", "onyx",
         "basalt", *(name for name, *_ in GARNET))
CHANNELS = ("desk", "zircon", "archive", "ops", "garnet", "duty", "clicks")  # clicks last


def config_text(feeds: FeedServer, slack: FakeSlackAPI, extra: str) -> str:
    feed_lines = "".join(
        f"  - name: {name}\n    url: {feeds.url(f'/{name}.xml')}\n"
        f"    interval: 10s\n    min_interval: 10s\n" for name in FEEDS)
    receivers = "".join(
        f"  {name}:\n    slack:\n      channel: '#{name}'\n      base_url: {slack.base_url}\n"
        for name in CHANNELS)
    receivers += "      interactive: true\n      mute_story: 2h\n"  # the clicks receiver
    return (f"rules: [rules.yaml]\nfeeds:\n{feed_lines}ops: ops\nreceivers:\n{receivers}"
            f"silences:\n  - rule: quartz-watch\n    until: 2099-01-01\n"
            f"    reason: the quartz desk is on leave\n"
            f"fetch:\n  allow: ['{feeds.allow}']\n{extra}")


def serve_the_day(feeds: FeedServer) -> None:
    """Every feed but ``flaky`` (404 until it recovers) and ``late`` (empty until the
    broken edit)."""
    for n in range(3):
        feeds.serve(f"/wire{n}.xml", rss([{**seed_item(f"https://outlet{n}.example/maroc-{n}",
                                                       f"outlet{n}-guid"),
                                           "title": TITLES[n]}], title=f"Outlet {n}"))
    feeds.serve("/zircon.xml", rss([
        {"title": f"zircon {distinct_title(n)} zq{n:03d}", "guid": f"zq{n:03d}",
         "link": f"https://news.example/zq{n:03d}"} for n in range(STORIES)]))
    feeds.serve("/quartz.xml", rss([{"title": "quartz mine reopens", "guid": "qz1",
                                     "link": "https://news.example/qz1"}]))
    feeds.serve("/ledger.xml", rss([{"title": "the harbour ledger goes public", "guid": "lg1",
                                     "link": "https://news.example/lg1"}]))
    feeds.serve("/late.xml", rss([]))
    feeds.page("/onyx/talks.html", build_page(ONYX_EN, related=RELATED_EN).body)
    feeds.serve("/onyx.xml", rss([{"title": ONYX_EN.title, "guid": "onyx1",
                                   "link": feeds.url("/onyx/talks.html")}]))
    feeds.serve("/basalt.xml", rss([BASALT]))  # the click scenario's story
    for name, language, title in GARNET:
        feeds.serve(f"/{name}.xml", rss([{"title": title, "guid": f"{name}-1",
                                          "link": f"https://{name}.example/fonds-climat"}],
                                        language=language))


class Deployment(Protocol):
    """One runtime as a user deploys it, and where its inside is read."""

    def config_extra(self) -> str: ...

    async def start(self, tmp: Path, config: Path) -> None: ...

    async def decisions(self, rule_id: str) -> list[tuple[str, str, float, str]]:
        """The decisions recorded for ``rule_id`` so far: verdict, result (``pending``,
        ``digest``, ``sent``, …), time (Unix), reason."""
        ...

    async def silences(self) -> list[dict[str, Any]]:
        """``newswatch silence list --json``: the silences in force."""
        ...

    async def dead_letters(self) -> list[dict[str, Any]]:
        """The delivery dead letters (id, receiver, reason)."""
        ...

    async def replay(self) -> tuple[int, str]:
        """``newswatch dlq replay --all``: exit code and output."""
        ...

    async def status(self) -> str:
        """What ``newswatch status`` prints."""
        ...

    async def feed_pages(self, feed: str) -> Any:
        """The ``pages`` object of ``newswatch status --feed FEED --json``."""
        ...

    async def settle(self) -> None:
        """Wait until everything handed to the runtime has been processed."""
        ...

    async def stop(self) -> None: ...

    def logs(self) -> str:
        """The end of each process's log, for a failure message."""
        ...

    def log_lines(self) -> list[str]:
        """Every line its processes logged so far."""
        ...


def log_lines(*procs: Proc) -> list[str]:
    return [line for p in procs for log in sorted(p.dir.glob("run*.log"))
            for line in log.read_text("utf-8", "replace").splitlines()]


class Embedded:
    def __init__(self) -> None:
        self.proc: Proc | None = None
        self.config = Path()

    def config_extra(self) -> str:
        return "state: ./state.db\n"

    async def start(self, tmp: Path, config: Path) -> None:
        self.config = config
        self.proc = Proc(tmp, "run", "run", "--config", str(config))
        await self.proc.start()

    async def decisions(self, rule_id: str) -> list[tuple[str, str, float, str]]:
        """From ``newswatch alerts --json`` (times to the second)."""
        code, out, err = await newswatch("alerts", "--config", str(self.config), "--json",
                                         "--limit", "500")
        assert code == 0, err
        return [(d["verdict"], d["result"], datetime.fromisoformat(d["at"]).timestamp(),
                 str(d["reason"])) for d in json.loads(out) if d["rule_id"] == rule_id]

    async def silences(self) -> list[dict[str, Any]]:
        code, out, err = await newswatch("silence", "list", "--config", str(self.config),
                                         "--json")
        assert code == 0, err
        return list(json.loads(out))

    async def dead_letters(self) -> list[dict[str, Any]]:
        code, out, err = await newswatch("dlq", "list", "--config", str(self.config), "--json")
        assert code == 0, err
        return list(json.loads(out))

    async def replay(self) -> tuple[int, str]:
        code, out, _ = await newswatch("dlq", "replay", "--config", str(self.config), "--all")
        return code, out

    async def status(self) -> str:
        _, out, _ = await newswatch("status", "--config", str(self.config))
        return out

    async def feed_pages(self, feed: str) -> Any:
        _, out, _ = await newswatch("status", "--config", str(self.config), "--feed", feed,
                                    "--json")
        return json.loads(out)[0]["pages"]

    async def settle(self) -> None:
        """Sends are prompt here: what the checks waited for is all there is."""

    async def stop(self) -> None:
        assert self.proc is not None
        assert await self.proc.stop(signal.SIGTERM) == 0, self.proc.tail()

    def logs(self) -> str:
        return self.proc.tail() if self.proc is not None else ""

    def log_lines(self) -> list[str]:
        return log_lines(self.proc) if self.proc is not None else []


class Kafka:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = unique_name("day") + "."
        self.config = Path()
        self.procs: list[Proc] = []
        self._running = contextlib.AsyncExitStack()

    def config_extra(self) -> str:
        return (f"kafka:\n  bootstrap: {self.bootstrap}\n  topic_prefix: {self.prefix}\n"
                f"  partitions: 4\n")

    async def start(self, tmp: Path, config: Path) -> None:
        self.config = config
        await ensure_topics(KafkaSettings(bootstrap=self.bootstrap, prefix=self.prefix,
                                          partitions=4))
        args = ("--config", str(config))
        self.procs = [Proc(tmp, "worker1", "worker", *args),
                      Proc(tmp, "worker2", "worker", *args), Proc(tmp, "poller", "poll", *args)]
        await self._running.enter_async_context(processes(*self.procs))
        await wait_for_stable_group(self.bootstrap, self.prefix + topics.WORKER_APP,
                                    self.prefix + topics.MATCHES, members=2)

    async def decisions(self, rule_id: str) -> list[tuple[str, str, float, str]]:
        """From the workers' JSON log lines: one per decision, stamped to the millisecond."""
        found = re.compile(rf"^decision rule={re.escape(rule_id)} article=\S+ verdict=(\S+) "
                           rf"receiver=\S+ result=(\S+) reason=(.*)$")
        return [(m.group(1), m.group(2), datetime.fromisoformat(line["time"]).timestamp(),
                 m.group(3)) for line in map(json.loads, log_lines(*self.procs))
                if (m := found.match(line["message"]))]

    async def silences(self) -> list[dict[str, Any]]:
        code, out, err = await newswatch("silence", "list", "--kafka", "--config",
                                         str(self.config), "--json")
        assert code == 0, err
        return list(json.loads(out))

    def log_lines(self) -> list[str]:
        return log_lines(*self.procs)

    async def dead_letters(self) -> list[dict[str, Any]]:
        code, out, err = await newswatch("dlq", "list", "--kafka", "--config", str(self.config),
                                         "--json")
        assert code == 0, err
        return [e for e in json.loads(out) if e["kind"] == "delivery"]

    async def replay(self) -> tuple[int, str]:
        code, out, _ = await newswatch("dlq", "replay", "--kafka", "--config",
                                       str(self.config), "--all")
        return code, out

    async def status(self) -> str:
        _, out, _ = await newswatch("status", "--kafka", "--config", str(self.config))
        return out

    async def feed_pages(self, feed: str) -> Any:
        _, out, _ = await newswatch("status", "--kafka", "--config", str(self.config),
                                    "--feed", feed, "--json")
        return json.loads(out)[0]["pages"]

    async def settle(self) -> None:
        await drained(self.bootstrap, self.prefix, timeout=120)

    async def stop(self) -> None:
        await self._running.aclose()

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)


@dataclass
class Day:
    """What one runtime did during the day."""

    messages: dict[str, list[StoredMessage]] = field(default_factory=dict)  # by channel
    quartz: list[str] = field(default_factory=list)  # verdicts of the silenced rule
    throttled_at: list[float] = field(default_factory=list)  # the digest's entries
    dead: list[dict[str, Any]] = field(default_factory=list)  # before the replay
    replays: list[tuple[int, str]] = field(default_factory=list)
    dead_after: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""  # `newswatch status` once the valid edit's notice is sent
    blind_status: str = ""  # `newswatch status` while the flint rule is blind
    pages: Any = None  # the onyx feed's pages, from `newswatch status --feed onyx --json`
    clicks: Clicks = field(default_factory=Clicks)  # what the click scenario saw
    error: BaseException | None = None
    step: str = "starting"  # the step the script is waiting for
    log_lines: list[str] = field(default_factory=list)  # of every process, once stopped

    def texts(self, channel: str) -> list[str]:
        return [" ".join(m.texts()) for m in self.messages.get(channel, [])]

    def count(self, channel: str, text: str) -> int:
        return sum(text in t for t in self.texts(channel))


def by_channel(slack: FakeSlackAPI) -> dict[str, list[StoredMessage]]:
    names = {FakeSlackAPI._channel_id(f"#{n}"): n for n in CHANNELS}
    out: dict[str, list[StoredMessage]] = {}
    for m in slack.messages:
        out.setdefault(names.get(m.channel, m.channel), []).append(m)
    return out


def is_digest(m: StoredMessage) -> bool:
    return any("digest of" in t for t in m.texts())


async def live_a_day(runtime: Deployment, tmp: Path) -> Day:
    """The day's script, the same for both runtimes (see the module docstring)."""
    tmp.mkdir()
    day = Day()
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as slack, FeedServer() as feeds, \
            FakeSocketMode() as socket:
        slack.app_token, slack.socket_url = SLACK_APP_TEST_TOKEN, socket.url
        (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
        config = tmp / "config.yaml"
        config.write_text(config_text(feeds, slack, runtime.config_extra()), encoding="utf-8")
        slack.refuse("#archive", "not_in_channel")
        serve_the_day(feeds)
        logs = ""
        try:
            await runtime.start(tmp, config)
            try:
                async with asyncio.TaskGroup() as both:  # a failure in one stops the other
                    both.create_task(script(runtime, slack, feeds, tmp, day))
                    both.create_task(click_script(runtime, slack, socket, feeds,
                                                  day.clicks))
                day.step = "settling"
                await runtime.settle()
            finally:
                logs = runtime.logs()
                await runtime.stop()
            day.log_lines = runtime.log_lines()
        except Exception as error:
            raise AssertionError(
                f"the day stopped at {day.step!r} (clicks: {day.clicks.step!r}): {error!r}"
                "\nSlack so far: "
                f"{ {n: len(ms) for n, ms in by_channel(slack).items()} }\n{logs}") from error
        day.messages = by_channel(slack)
    return day


async def script(runtime: Deployment, slack: FakeSlackAPI, feeds: FeedServer, tmp: Path,
                 day: Day) -> None:
    def seen(channel: str, text: str, n: int = 1) -> Callable[[], bool]:
        return lambda: Day(messages=by_channel(slack)).count(channel, text) >= n

    async def until(step: str, holds: Callable[[], bool], timeout: float) -> None:
        day.step = step
        await slack.wait_until(holds, timeout=timeout)

    # Rules loaded and running: the seed story is alerted, and the title-only entry on its
    # page's body; now a broken edit.
    await until("the seed alert", seen("desk", "US military agreements", 1), 90)
    await until("the full-text alert", seen("desk", "Onyx watch", 1), 60)
    day.step = "the full-text page in status"
    day.pages = await eventually(lambda: runtime.feed_pages("onyx"), bool, timeout=30)
    (tmp / "rules.yaml").write_text(BROKEN, encoding="utf-8")
    await until("the reload notice", seen("ops", "Rule reload rejected"), 60)
    feeds.serve("/late.xml", rss([{"title": "amber sunrise over the bay", "guid": "am1",
                                   "link": "https://news.example/am1"}]))
    # A dead letter, then the channel works again and the replay is asked for twice.
    day.step = "the dead letter"
    day.dead = await eventually(runtime.dead_letters, bool, timeout=60)
    slack.admit("#archive")
    day.replays.append(await runtime.replay())
    await until("the replayed alert", seen("archive", "harbour ledger"), 60)
    day.replays.append(await runtime.replay())
    # The failing feed recovers once it has been announced.
    await until("the failing-feed notice", seen("ops", "Feed flaky is failing"), 120)
    await until("the blind-rule notice", seen("ops", "Rule flint-watch (Flint watch) is blind"),
                60)
    day.step = "the blind rule in status"
    day.blind_status = await eventually(runtime.status,
                                        lambda out: "flint-watch is BLIND" in out, timeout=30)
    feeds.serve("/flaky.xml", rss([{"title": "nothing to watch", "guid": "f1",
                                    "link": "https://news.example/f1"}]))
    await until("the recovery notice", seen("ops", "Feed flaky recovered"), 120)
    await until("the rule's recovery", seen("ops", "Rule flint-watch (Flint watch) sees again"),
                60)
    await until("the old rules' alert", seen("desk", "amber sunrise"), 60)
    await until("the digest", lambda: any(map(is_digest, slack.messages)), 150)
    await until("the thread replies", seen("desk", "Also reported by", 2), 60)
    await until("the escalation", seen("duty", "Escalated: 6 sources"), 60)
    day.step = "the silenced rule's decisions"
    day.quartz = [v for v, *_ in await eventually(
        lambda: runtime.decisions("quartz-watch"), bool, timeout=30)]
    day.throttled_at = [at for v, result, at, _ in await runtime.decisions("zircon-watch")
                        if (v, result) == ("throttled", "digest")]
    day.dead_after = await runtime.dead_letters()
    # A valid edit: the amber rule removed; the last 24 h replayed say what it would lose.
    (tmp / "rules.yaml").write_text(WITHOUT_AMBER, encoding="utf-8")
    await until("the reload's difference", seen("ops", "Rules reloaded"), 90)
    day.step = "the reload's difference in status"
    day.status = await eventually(runtime.status, lambda out: AMBER_LOST in out, timeout=30)


async def both_days(bootstrap: str, tmp: Path) -> dict[str, Day]:
    runtimes: dict[str, Deployment] = {"embedded": Embedded(), "kafka": Kafka(bootstrap)}
    results = await asyncio.gather(*(live_a_day(r, tmp / name) for name, r in runtimes.items()),
                                   return_exceptions=True)
    days = {}
    for name, result in zip(runtimes, results, strict=True):
        if isinstance(result, BaseException):
            print(f"\n{name}: the day failed: {result!r}", file=sys.stderr)
            days[name] = Day(error=result)
        else:
            days[name] = result
    return days


# Session-wide, not module-wide: a test process may run another module's tests between two
# of this module's, which would end a module fixture and live both days again.
@pytest.fixture(scope="session")
def days(kafka_bootstrap: str,  # noqa: F811
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Day]]:
    yield asyncio.run(both_days(kafka_bootstrap, tmp_path_factory.mktemp("days")))


def day_of(days: dict[str, Day], runtime: str) -> Day:
    day = days[runtime]
    if day.error is not None:
        raise day.error
    return day


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_story_in_three_feeds_is_one_alert_with_the_copies_in_its_thread(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    seed = [m for m in day.messages["desk"] if "US military agreements" in " ".join(m.texts())
            or "Also reported by" in " ".join(m.texts())]
    top = [m for m in seed if m.thread_ts is None]
    replies = [m for m in seed if m.thread_ts is not None]
    assert len(top) == 1, [m.texts()[:1] for m in top]
    assert len(replies) == 2 and {r.thread_ts for r in replies} == {top[0].ts}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_story_in_six_feeds_and_two_languages_escalates_once(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    garnet = day.messages["garnet"]
    [top] = [m for m in garnet if m.thread_ts is None]
    escalated = "Escalated: 6 sources, ar + fr"
    assert escalated in " ".join(top.texts())  # the first alert, updated in place
    thread = [" ".join(m.texts()) for m in garnet if m.thread_ts == top.ts]
    assert len(thread) == 6 and sum(escalated in t for t in thread) == 1, thread  # 5 copies
    [duty] = day.messages["duty"]
    assert escalated in " ".join(duty.texts()) and "Garnet watch" in " ".join(duty.texts())


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_throttled_matches_arrive_in_one_digest_after_the_interval(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    zircon = day.messages["zircon"]
    alerts = [m for m in zircon if not is_digest(m)]
    (digest,) = [m for m in zircon if is_digest(m)]
    alerted = [t for m in alerts for t in set(ZQ.findall(" ".join(m.texts())))]
    in_digest = set(ZQ.findall(" ".join(digest.texts())))
    late = float(digest.ts) - min(day.throttled_at)
    print(f"\n{runtime}: {len(alerts)} alerts, 1 digest of {len(in_digest)}, sent "
          f"{late:.1f}s after its first entry")
    assert len(alerted) == len(set(alerted)) == PER_HOUR
    assert sorted(set(alerted) | in_digest) == [f"zq{n:03d}" for n in range(STORIES)]
    assert len(in_digest) == len(day.throttled_at) == STORIES - PER_HOUR
    # Due 1 m after its first entry, sent within 10 s of that (+1: the embedded runtime's
    # decision times are to the second).
    assert 60 <= late <= 70 + 1


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_silenced_rule_sends_nothing_and_says_why(days: dict[str, Day], runtime: str) -> None:
    day = day_of(days, runtime)
    # Silenced matches are not recorded, so an event read again (Kafka delivers at least
    # once: a rebalance, a re-drive) is silenced again, with its own audit line.
    assert day.quartz and set(day.quartz) == {"silenced"}
    assert not any("quartz" in t for ts in map(day.texts, day.messages) for t in ts)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_dead_letter_is_replayed_once_however_often_replay_runs(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    (letter,) = day.dead
    assert (letter["receiver"], letter["reason"]) == ("archive", "not_in_channel")
    first, second = day.replays
    assert first[0] == 0 and first[1].startswith(f"{letter['id']}: requested")
    assert second[0] == 0  # nothing left to replay, or replayed through dedup: not sent
    assert day.count("archive", "harbour ledger") == 1
    assert day.dead_after == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_failing_feed_is_one_notice_and_its_recovery_another(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    notices = Counter(re.sub(r" \(.*", "", t.split("\n")[0]) for t in day.texts("ops"))
    assert day.count("ops", "Feed flaky is failing") == 1
    assert day.count("ops", "Feed flaky recovered") == 1
    assert day.count("ops", "Feed ") == 2, notices  # no other feed announced


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_rule_whose_feeds_all_fail_is_one_blind_notice_and_one_recovery(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    assert day.count("ops", "Rule flint-watch (Flint watch) is blind") == 1
    assert day.count("ops", "Rule flint-watch (Flint watch) sees again") == 1
    assert day.count("ops", "is blind") == 1, day.texts("ops")  # no other rule
    # `newswatch status` (--kafka: the rules-status topic) listed it while it was blind,
    # and no longer does
    assert "1 of 1 feeds it depends on (its feeds) are down: flaky (failing)" \
        in day.blind_status
    assert "BLIND" not in day.status


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_broken_rule_edit_is_one_notice_and_the_old_rules_keep_matching(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    assert day.count("ops", "Rule reload rejected") == 1
    assert day.count("ops", "colour") >= 1  # the notice says what is wrong
    assert day.count("desk", "amber sunrise") == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_accepted_rule_edit_is_one_notice_with_the_last_day_replayed(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    assert day.count("ops", "Rules reloaded") == 1, day.texts("ops")
    (notice,) = [t for t in day.texts("ops") if "Rules reloaded" in t]
    assert AMBER_LOST in notice
    # the other rules would have sent the same alerts: no line for them (onyx-watch: the
    # archive replayed the article with its page's body)
    assert "zircon-watch" not in notice and "us-maghreb-military" not in notice
    assert "onyx-watch" not in notice
    assert AMBER_LOST in day.status


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_title_only_entry_alerts_on_its_page_s_body(days: dict[str, Day], runtime: str) -> None:
    """The entry's title names none of the rule's terms; its page's body does, amid a news
    site's chrome. One alert, quoting the body; the page fetched once and counted."""
    day = day_of(days, runtime)
    (alert,) = [t for t in day.texts("desk") if "Onyx watch" in t]
    assert "five-year agreement" in alert and ONYX_EN.title in alert
    assert not any(title in alert for title in RELATED_EN)
    assert {k: day.pages[k] for k in ("fetched", "ok", "success_rate", "failures")} == {
        "fetched": 1, "ok": 1, "success_rate": 1.0, "failures": {}}
    assert day.pages["median_extract_s"] > 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_log_line_is_one_json_object(days: dict[str, Day], runtime: str) -> None:
    """Off a terminal every process logs JSON lines, faust's worker included (faust installs
    a handler of its own, with multi-line tables); a decision carries the shared keys."""
    summary = re.compile(r"^[\w ]+: \d+(, [\w ]+: \d+)*$")  # what `run` prints at exit
    lines = [line for line in day_of(days, runtime).log_lines if not summary.match(line)]
    assert len(lines) > 50
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    decided = [r for r in records if r.get("rule_id") == "amber-watch" and "verdict" in r]
    assert decided and all(r.get("receiver", "desk") == "desk" for r in decided)
    # one query follows the article: one id under that key, whichever line carries it
    assert len({r["article_id"] for r in decided if "article_id" in r}) == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_mute_story_clicked_in_slack_silences_the_next_copy_of_the_story(
    days: dict[str, Day], runtime: str
) -> None:
    day = day_of(days, runtime)
    clicks = day.clicks
    assert clicks.step == "done"
    (alert,) = day.messages["clicks"]  # no reply, no digest, no other alert: the copy muted
    shown = json.dumps(alert.payload["blocks"], ensure_ascii=False)
    assert all(label in shown for label in ("Useful", "Not relevant", "Mute story",
                                            "Mute rule 24 h"))
    assert "Muted by <@U0ALICE01> until " in shown and "(this story)" in shown
    assert clicks.answered_after_ack
    (silence,) = [s for s in clicks.silences if s["rule"] == "basalt-watch"]
    assert (silence["creator"], silence["reason"], silence["active"]) == (
        "slack:U0ALICE01 (alice)", "muted from Slack", True)
    assert silence["expires"] - silence["created"] == 7200  # the receiver's mute_story
    silenced = [reason for verdict, reason in clicks.basalt if verdict == "silenced"]
    assert silenced and all(f"silenced by {silence['id']}" in r and "muted from Slack" in r
                            for r in silenced)
    assert "send" in {verdict for verdict, _ in clicks.basalt}  # the first copy, alerted


def test_a_runtime_missing_an_obligation_cannot_be_built() -> None:
    """The contract is an abstract base: both runtimes meet all of it, and a runtime that
    misses one obligation fails when built (and in mypy, where it is built)."""
    from newswatch.streams.embedded import EmbeddedRuntime
    from newswatch.streams.kafka.runtime import KafkaRuntime

    obligations = {"take", "notify", "tick", "click"}
    assert Runtime.__abstractmethods__ == obligations
    assert EmbeddedRuntime.__abstractmethods__ == KafkaRuntime.__abstractmethods__ == set()

    class Partial(Runtime):
        async def take(self, articles: Any) -> None: ...
        async def notify(self, notice: Any) -> None: ...
        async def click(self, click: Any) -> None: ...

    with pytest.raises(TypeError, match="tick"):
        Partial()  # type: ignore[abstract]


def test_mypy_reports_a_runtime_missing_an_obligation(tmp_path: Path) -> None:
    from mypy import api

    partial = tmp_path / "partial.py"
    partial.write_text(textwrap.dedent("""\
        from newswatch.streams.runtime import Runtime

        class Partial(Runtime):
            async def take(self, articles: object) -> None: ...
            async def tick(self) -> None: ...
            async def notify(self, notice: object) -> None: ...

        Partial()
        """), encoding="utf-8")
    out, _, code = api.run([str(partial), "--no-incremental", "--follow-imports=silent"])
    assert code == 1
    assert 'Cannot instantiate abstract class "Partial" with abstract attribute "click"' in out
