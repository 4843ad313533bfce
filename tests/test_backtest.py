"""`newswatch rules backtest` (issue 17): the archive replayed through edited rules with the
real matcher and decide stage, nothing sent, and the difference from the rules in force."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newswatch.core.archive import DAY, Archive, ArchivedArticle
from newswatch.core.article import Article
from newswatch.core.state import Database
from newswatch.streams.backtest import (
    AlertLine,
    RuleChange,
    RuleOutcome,
    span_days,
    summary_line,
    volume,
)
from tests.fakes.stories import distinct_title
from tests.test_cli import newswatch
from tests.test_delivery_e2e import TITLES
from tests.test_end_to_end import SEED

IN_FORCE = """\
rules:
  - id: us-maghreb-military
    title: US military agreements in the Maghreb
    countries: {all: [US, MA]}
    phrases: ["accord militaire"]
    notify: [desk]
  - id: zircon-watch
    title: Zircon watch
    phrases: [zircon]
    notify: [mail]
    dedup: {max_per_hour: 20, digest_interval: 1h}
  - id: quartz-watch
    title: Quartz watch
    phrases: [quartz]
    notify: [desk]
"""
# The edit: Algeria too; the quartz rule removed.
EDITED = IN_FORCE.replace("countries: {all: [US, MA]}",
                          "countries: {all: [US], any: [MA, DZ]}").split("  - id: quartz")[0]
ALGERIA = ("Alger et Washington signent un accord militaire de coopération",
           "L'Algérie et les États-Unis ont conclu un accord militaire portant sur la "
           "formation des officiers algériens, annonce le ministère de la Défense à Alger.")


def a_week(now: float) -> list[ArchivedArticle]:
    """The articles of the 7 days before ``now``, as archived: the seed story from 3
    outlets (day −5), an Algerian story (day −3), 25 zircon stories in one hour (day −2), a
    quartz story, noise. Times in whole milliseconds (as Kafka keeps them)."""
    seed = SEED.read_text(encoding="utf-8")
    at = round(now - 5 * DAY, 3)
    week = []
    for n in range(3):
        week.append(ArchivedArticle(Article(
            id=f"seed-{n}", feed=f"outlet{n}", title=TITLES[n],
            url=f"https://outlet{n}.example/maroc-usa", content=seed, language="fr"), at))
        at += 600
    week.append(ArchivedArticle(Article(id="dz-1", feed="outlet1", title=ALGERIA[0],
                                        url="https://outlet1.example/alger",
                                        content=ALGERIA[1], language="fr"),
                                round(now - 3 * DAY, 3)))
    # 25 minutes of one clock hour, half a day from either end of its day of the replay
    at = (now - 2.5 * DAY) // 3600 * 3600 + 60
    for n in range(25):
        week.append(ArchivedArticle(Article(
            id=f"zq{n}", feed="wire", title=f"zircon {distinct_title(n)}",
            url=f"https://wire.example/zq{n}", language="en"), at))
        at += 60
    week.append(ArchivedArticle(Article(id="q1", feed="wire",
                                        title="A quartz mine reopens in Ontario",
                                        url="https://wire.example/q1", language="en"), at))
    week.append(ArchivedArticle(Article(id="noise", feed="wire",
                                        title="Weather: rain in Rabat",
                                        url="https://wire.example/rain", language="en"),
                                at + 60))
    return week


def archive_a_week(state: Path) -> float:
    """``a_week`` before now kept in the archive of ``state``; now."""
    now = time.time()
    clock = [now]
    db = Database.open(state)
    archive = Archive(db.archive(), 30, clock=lambda: clock[0])
    try:
        for item in a_week(now):
            clock[0] = item.seen_at
            archive.keep([item.article])
    finally:
        db.close()
    return now


def write_setup(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    (tmp_path / "rules.yaml").write_text(IN_FORCE, encoding="utf-8")
    edited = tmp_path / "edited.yaml"
    edited.write_text(EDITED, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "state: ./state.db\nrules: [rules.yaml]\n"
        "receivers:\n"
        "  desk:\n    slack:\n      channel: '#desk'\n"
        "  mail:\n    email:\n      to: [desk@example.org]\n      from: nw@example.org\n"
        "      host: 127.0.0.1\n      port: 2525\n",
        encoding="utf-8")
    now = archive_a_week(tmp_path / "state.db")
    week = ["--since", iso(now - 7 * DAY), "--until", iso(now + 1)]  # as the archive was made
    return config, edited, week


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def test_backtest_json_counts_alerts_replies_digests_and_the_diff(tmp_path: Path) -> None:
    config, edited, week = write_setup(tmp_path)
    done = newswatch("rules", "backtest", str(edited), "--config", str(config), "--json",
                     *week, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["articles"] == 31
    rules = {r["rule"]: r for r in report["rules"]}
    assert set(rules) == {"us-maghreb-military", "zircon-watch"}
    maghreb = rules["us-maghreb-military"]
    # the seed from 3 outlets is one story: 1 alert, 2 thread replies; plus Algeria
    assert (maghreb["matches"], maghreb["alerts"], maghreb["replies"]) == (4, 2, 2)
    assert [a["title"] for a in maghreb["first_alerts"]] == [TITLES[0], ALGERIA[0]]
    assert any("accord militaire" in why for why in maghreb["first_alerts"][0]["why"])
    assert maghreb["by_feed"] == {"outlet0": 1, "outlet1": 1}
    zircon = rules["zircon-watch"]
    assert (zircon["alerts"], zircon["digested"], zircon["digests"]) == (20, 5, 1)
    assert zircon["alerts_per_day"]["max"] == 20 and zircon["alerts_per_day"]["min"] == 0
    assert zircon["busiest_hour"]["alerts"] == 20
    assert zircon["verdicts"] == {"send": 20, "throttled": 5}

    diff = {d["rule"]: d for d in report["diff"]}
    assert set(diff) == {"us-maghreb-military", "quartz-watch"}
    assert diff["us-maghreb-military"]["change"] == "changed"
    assert [a["title"] for a in diff["us-maghreb-military"]["gained"]] == [ALGERIA[0]]
    assert diff["us-maghreb-military"]["lost"] == []
    assert diff["quartz-watch"]["change"] == "removed"
    assert [a["url"] for a in diff["quartz-watch"]["lost"]] == ["https://wire.example/q1"]
    assert diff["us-maghreb-military"]["summary"].startswith(
        "us-maghreb-military (changed): +1 / −0 alerts over 7 days")


def test_backtest_of_the_rules_in_force_shows_no_diff_and_prints_the_first_alerts(
    tmp_path: Path,
) -> None:
    config, _, week = write_setup(tmp_path)
    done = newswatch("rules", "backtest", str(tmp_path / "rules.yaml"), "--config",
                     str(config), *week, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "31 archived article(s)" in done.stdout and "nothing was sent" in done.stdout
    assert "difference" not in done.stdout  # same files: no diff by default
    assert TITLES[0] in done.stdout and "why:" in done.stdout
    assert "quartz-watch" in done.stdout


def test_fail_over_exits_1_when_a_rule_would_send_too_many_alerts_a_day(tmp_path: Path) -> None:
    config, edited, week = write_setup(tmp_path)
    done = newswatch("rules", "backtest", str(edited), "--config", str(config), *week,
                     "--fail-over", "2", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "over 2 alerts a day: zircon-watch"
    done = newswatch("rules", "backtest", str(edited), "--config", str(config),
                     "--since", "1d", "--fail-over", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # the zircon hour is 2.5 days old
    assert json.loads(newswatch("rules", "backtest", str(edited), "--config", str(config),
                                "--since", "1d", "--json", cwd=tmp_path).stdout)["articles"] == 0


def test_the_stand_in_receivers_thread_like_the_real_ones(tmp_path: Path) -> None:
    from newswatch.core.config import parse_config
    from newswatch.streams.backtest import stand_ins
    from newswatch.streams.receivers import build_notifiers

    config = parse_config(
        "rules: []\nreceivers:\n  desk:\n    slack:\n      channel: '#desk'\n"
        "  mail:\n    email:\n      to: [a@example.org]\n      from: b@example.org\n"
        "      host: 127.0.0.1\n  terminal:\n    console: {}\n", "config.yaml", base=tmp_path)
    real = build_notifiers(config, {"SLACK_BOT_TOKEN": "xoxb-test"})
    assert stand_ins(config) == {name: n.threads for name, n in real.items()}
    assert stand_ins(config) == {"desk": True, "mail": False, "terminal": True}


def _outcomes(outcomes: dict[str, Any]) -> dict[str, Any]:
    return {rule_id: (o.matches, o.alerts, o.replies, o.digested, o.digests, dict(o.verdicts))
            for rule_id, o in outcomes.items()}


def test_both_rule_sets_in_one_pass_give_what_two_replays_give() -> None:
    """``replay_both`` reads each article once and matches it once for the rules both sets
    share: the outcomes are those of two separate replays, and only the edited and added
    rules are matched again (all of them when the country aliases changed)."""
    import asyncio

    from newswatch.core.archive import ArchivedArticle
    from newswatch.rules.gazetteer import known_codes
    from newswatch.rules.loader import parse_rules
    from newswatch.rules.matcher import Matcher
    from newswatch.streams.backtest import Backtest, SharedMatching, replay_both

    def matcher(text: str) -> Matcher:
        return Matcher(parse_rules([("rules.yaml", text)], known_codes=known_codes(),
                                   receivers=frozenset({"desk", "mail"})))

    added = "  - {id: algeria, title: Algeria, countries: [DZ], notify: [desk]}\n"
    seed = SEED.read_text(encoding="utf-8")
    start = time.time() - DAY
    texts = [(TITLES[n % 3], seed) for n in range(6)] + [ALGERIA] * 2 + [
        (f"zircon {distinct_title(n)}", "") for n in range(25)]
    articles = [ArchivedArticle(Article(id=f"a{n}", feed=f"outlet{n % 4}", title=title,
                                        url=f"https://outlet.example/{n}", content=content,
                                        language="fr"), start + n * 120.0)
                for n, (title, content) in enumerate(texts)]
    receivers = {"desk": True, "mail": False}
    for before, after in ((IN_FORCE, EDITED + added), (IN_FORCE, IN_FORCE),
                          (IN_FORCE, "aliases: {DZ: [Numidie]}\n" + EDITED)):
        old, new = matcher(before), matcher(after)
        both = asyncio.run(replay_both(old, new, articles, receivers))
        apart = [asyncio.run(Backtest(m, receivers).replay(articles)) for m in (old, new)]
        assert [_outcomes(o) for o in both] == [_outcomes(o) for o in apart]
        again = SharedMatching(old, new)._again
        matched_again = [] if again is None else [r.id for r in again.rules]
        assert matched_again == {
            IN_FORCE: [], EDITED + added: ["us-maghreb-military", "algeria"],
        }.get(after, ["us-maghreb-military", "zircon-watch"])
    assert _outcomes(both[1])["us-maghreb-military"][0] == 8  # the Algerian copies count


def test_the_rate_a_summary_line_gives_is_per_the_days_it_names() -> None:
    """A week asked for with a second's margin is 7 days in the label and in the rate."""
    since = 1_700_000_000.0
    until = since + 7 * DAY + 1
    alerts = [AlertLine(at=since + n * DAY / 7, rule_id="r", story=f"s{n}", title="t",
                        feed="f", language="en", url="u", why=()) for n in range(49)]
    assert span_days(since, until) == 7 and span_days(since, since + 3600) == 1
    v = volume(alerts, since, until)
    assert (v.days, v.per_day, v.low, v.high) == (7, 7.0, 7, 7)
    change = RuleChange("r", "removed", RuleOutcome("r", "t", alerts=alerts), None, (),
                        tuple(alerts))
    assert summary_line(change, since, until) == \
        "r (removed): +0 / −49 alerts over 7 days, 7.0 → 0.0 a day"
