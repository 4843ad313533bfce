"""Acceptance of `newswatch rules backtest` on a week of news (issue 17).

The archive holds the 300 French, English and Arabic articles of tests/fakes/newsroom.py,
texts of our own (real articles may not be copied into the repository), spread over the last
7 days; a few stories are syndicated by two wires as well (the same text under 3 ids, 3
feeds and 3 URLs, minutes apart), and 7 articles of the throttled rule arrive in one hour.
The edit adds Algeria to a country rule and removes another rule.

What each rule should find is computed apart from the code under test: by the reference
matcher (tests/reference_matcher.py, the rule contract written the slow, obvious way), one
story per article and its wire copies, and, for the throttle, the rule of docs/delivery.md
(at most max_per_hour alerts in any hour) replayed over those stories' times.

The same test over the real articles, read where they are and copied nowhere:

    NEWSWATCH_REAL_ARTICLES=../shared/data/articles python -m pytest tests/test_backtest_real.py
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from newswatch.core.archive import DAY, Archive
from newswatch.core.article import Article
from newswatch.core.printable import one_line
from newswatch.core.state import Database
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.model import DEFAULT_DEDUP_WINDOW, RuleSet
from tests.fakes.newsroom import articles, one_story
from tests.reference_matcher import ReferenceMatcher
from tests.test_cli import newswatch

MILITARY = '[military, militaire, armée, défense, defence, defense, troops, "عسكري*", الجيش'
IN_FORCE = f"""\
aliases:
  MA: ["royaume chérifien"]

rules:
  - id: maghreb-desk
    title: Morocco and Tunisia in the news
    countries: [MA, TN]
    exclude: [football, "كرة القدم"]
    notify: [desk]

  - id: us-military
    title: US military and defence
    severity: high
    countries: {{all: [US]}}
    phrases: {MILITARY}, "وزارة الدفاع"]
    notify: [desk]

  - id: gulf-security
    title: Saudi Arabia, military and security
    countries: [SA]
    phrases: {MILITARY}, الدفاع]
    notify: [desk]
    dedup: {{max_per_hour: 3, digest_interval: 1h}}

  - id: heads-of-state
    title: Heads of state
    people:
      - {{name: Barack Obama, aliases: ["باراك أوباما"]}}
      - {{name: Abdel Fattah al-Sisi, aliases: ["عبدالفتاح السيسي"]}}
      - {{name: Vladimir Putin, aliases: [Vladimir Poutine, "فلاديمير بوتين"]}}
      - Joe Biden
    notify: [desk]
"""
# The edit: Algeria joins the desk's countries; the US military rule is removed.
EDITED = re.sub(r"  - id: us-military\n.*?\n\n", "",
                IN_FORCE.replace("countries: [MA, TN]", "countries: [MA, TN, DZ]"),
                flags=re.DOTALL)
MAX_PER_HOUR = 3
BURST = 7  # articles of gulf-security in one hour
WIRES = ("wire-afp", "wire-reuters")
HOUR = 3600.0
Json = dict[str, Any]  # a JSON object as json.loads gives it
# one worker builds the archive and runs the replays for the module (pytest-xdist 3.8 under
# pytest 9.2 does not honour the mark yet; then each worker builds its own)
pytestmark = pytest.mark.xdist_group("backtest-real")


@dataclass(frozen=True)
class Setup:
    config: Path
    edited: Path
    week: list[str]
    stories: dict[str, float]  # story (the original article's id) → when it was first seen
    copies: dict[str, list[Article]]  # story → its articles, the original first
    expected: dict[str, set[str]]  # rule id (in force) or "maghreb-desk+DZ" → story ids


def expected_matches(news: list[Article]) -> dict[str, set[str]]:
    """Rule id → ids of the articles it matches, by the reference matcher; the edited
    desk rule as ``maghreb-desk+DZ``."""
    source = [("rules.yaml", IN_FORCE)]
    in_force = parse_rules(source, known_codes=known_codes())
    edited = parse_rules([("edited.yaml", EDITED)], known_codes=known_codes())
    assert [r.id for r in edited.rules] == ["maghreb-desk", "gulf-security", "heads-of-state"]
    desk = dataclasses.replace(edited.rules[0], id="maghreb-desk+DZ")
    wanted = (*[r for r in in_force.rules if r.id != "heads-of-state"], desk)
    reference = ReferenceMatcher(RuleSet(rules=wanted, aliases=in_force.aliases))
    found: dict[str, set[str]] = {r.id: set() for r in wanted}
    for article in news:
        for rule_id, _ in reference.match(article):
            found[rule_id].add(article.id)
    return found


def build(tmp: Path) -> Setup:
    news = articles()
    matches = expected_matches(news)
    gained = sorted(matches["maghreb-desk+DZ"] - matches["maghreb-desk"])
    lost = sorted(matches["us-military"])
    assert len(gained) >= 5 and len(lost) >= 10, "the sample no longer exercises the edit"
    # the wires carry 3 of the stories the edit adds and 2 the removed rule loses
    syndicated = {*gained[:3], *[s for s in lost if s not in gained][:2]}
    burst = set(sorted(matches["gulf-security"] - syndicated)[:BURST])

    now = float(int(time.time()))  # whole seconds: the week replayed is exactly 7 days
    start, span = now - 7 * DAY + 600, 7 * DAY - 1200
    spread = [a for a in news if a.id not in burst]
    random.Random(17).shuffle(spread)
    stories = {a.id: start + i * span / len(spread) for i, a in enumerate(spread)}
    burst_hour = (now - 3.5 * DAY) // HOUR * HOUR
    for i, story in enumerate(sorted(burst)):
        stories[story] = burst_hour + 120 + i * 420  # 7 minutes apart, inside one clock hour
    # and 2 that only the throttled rule matches and alerts: their copies are thread replies
    alerted = set(throttle([stories[s] for s in matches["gulf-security"]], MAX_PER_HOUR)[0])
    others = set().union(*(v for k, v in matches.items() if k != "gulf-security"))
    syndicated |= set(sorted(s for s in matches["gulf-security"] - others
                             if stories[s] in alerted)[:2])
    copies: dict[str, list[Article]] = {}
    for a in news:
        copies[a.id] = [a]
        if a.id in syndicated:
            copies[a.id] += [dataclasses.replace(a, id=f"{a.id}@{wire}", feed=wire,
                                                 url=f"https://{wire}.example/{a.id}")
                             for wire in WIRES]

    db = Database.open(tmp / "state.db")
    clock = [start]
    archive = Archive(db.archive(), 30, clock=lambda: clock[0])
    try:
        timeline = sorted(((stories[s] + 240 * n, a) for s, versions in copies.items()
                           for n, a in enumerate(versions)), key=lambda item: item[0])
        for at, article in timeline:
            clock[0] = at
            assert archive.keep([article]) == 1
    finally:
        db.close()

    (tmp / "rules.yaml").write_text(IN_FORCE, encoding="utf-8")
    (tmp / "edited.yaml").write_text(EDITED, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text("state: ./state.db\nrules: [rules.yaml]\n"
                      "receivers:\n  desk:\n    slack:\n      channel: '#desk'\n",
                      encoding="utf-8")
    week = ["--since", iso(now - 7 * DAY), "--until", iso(now)]
    return Setup(config, tmp / "edited.yaml", week, stories, copies, matches)


def iso(at: float, timespec: str = "auto") -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec=timespec)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return build(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def report(setup: Setup) -> Json:
    done = newswatch("rules", "backtest", str(setup.edited), "--config", str(setup.config),
                     "--json", *setup.week, cwd=setup.config.parent)
    assert done.returncode == 0, done.stderr
    loaded: Json = json.loads(done.stdout)
    return loaded


def diff_of(report: Json) -> dict[str, Json]:
    return {d["rule"]: d for d in report["diff"]}


def rules_of(report: Json) -> dict[str, Json]:
    return {r["rule"]: r for r in report["rules"]}


def test_distinct_stories_are_not_one_story_to_the_decide_stage(setup: Setup) -> None:
    """What the expectations rest on: no two stories of a rule within its dedup window have
    titles or leads alike enough for the decide stage to join them."""
    for rule, found in setup.expected.items():
        by_time = sorted(found, key=setup.stories.__getitem__)
        for i, a in enumerate(by_time):
            for b in (b for b in by_time[i + 1:]
                      if setup.stories[b] - setup.stories[a] <= DEFAULT_DEDUP_WINDOW):
                assert not one_story(setup.copies[a][0], setup.copies[b][0]), (rule, a, b)


def test_the_archive_holds_every_article_and_wire_copy(setup: Setup, report: Json) -> None:
    assert report["articles"] == sum(len(v) for v in setup.copies.values())
    languages = {a.language for versions in setup.copies.values() for a in versions}
    assert languages == {"fr", "en", "ar"}
    assert set(diff_of(report)) == {"maghreb-desk", "us-military"}  # the others: same alerts


def test_adding_a_country_gains_exactly_its_new_stories_each_once(
    setup: Setup, report: Json,
) -> None:
    desk = diff_of(report)["maghreb-desk"]
    assert desk["change"] == "changed" and desk["lost"] == []
    new = setup.expected["maghreb-desk+DZ"] - setup.expected["maghreb-desk"]
    gained: list[Json] = desk["gained"]
    expected = sorted((setup.copies[s][0].title, setup.copies[s][0].url) for s in new)
    assert sorted((g["title"], g["url"]) for g in gained) == expected
    assert [g["at"] for g in gained] == sorted(iso(setup.stories[s], "seconds") for s in new)
    # the stories three feeds carried: one alert each, from the feed that had it first
    carried = [s for s in new if len(setup.copies[s]) == 3]
    assert len(carried) == 3
    for story in carried:
        first = setup.copies[story][0]
        assert [g["feed"] for g in gained if g["title"] == first.title] == [first.feed]
    assert all(any("DZ" in why for why in g["why"]) for g in gained)
    before, after = (len(setup.expected[r]) for r in ("maghreb-desk", "maghreb-desk+DZ"))
    assert desk["summary"] == (f"maghreb-desk (changed): +{len(new)} / −0 alerts over 7 days, "
                               f"{before / 7:.1f} → {after / 7:.1f} a day")


def test_a_removed_rule_lists_every_alert_it_loses(setup: Setup, report: Json) -> None:
    removed = diff_of(report)["us-military"]
    assert removed["change"] == "removed" and removed["gained"] == []
    lost: list[Json] = removed["lost"]
    stories = setup.expected["us-military"]
    assert sorted(a["url"] for a in lost) == sorted(setup.copies[s][0].url for s in stories)
    assert len({a["story"] for a in lost}) == len(lost)
    assert sum(len(setup.copies[s]) == 3 for s in stories) == 2  # syndicated, yet lost once
    assert "us-military" not in rules_of(report)
    assert removed["summary"] == (f"us-military (removed): +0 / −{len(stories)} alerts over 7 "
                                  f"days, {len(stories) / 7:.1f} → 0.0 a day")


def throttle(times: list[float], max_per_hour: int) -> tuple[list[float], int]:
    """docs/delivery.md: a new story alerts unless max_per_hour alerts went out in the last
    hour; then it waits for the digest. The alert times and the number digested."""
    alerts: list[float] = []
    digested = 0
    for at in sorted(times):
        if sum(1 for t in alerts if at - t < HOUR) < max_per_hour:
            alerts.append(at)
        else:
            digested += 1
    return alerts, digested


def test_a_throttled_rule_caps_its_alerts_and_digests_the_rest(
    setup: Setup, report: Json,
) -> None:
    gulf = rules_of(report)["gulf-security"]
    stories = setup.expected["gulf-security"]
    alerts, digested = throttle([setup.stories[s] for s in stories], MAX_PER_HOUR)
    assert digested >= BURST - MAX_PER_HOUR  # the burst alone overflows the hour
    assert gulf["matches"] == sum(len(setup.copies[s]) for s in stories)
    assert (gulf["alerts"], gulf["digested"]) == (len(alerts), digested)
    assert 1 <= gulf["digests"] <= digested
    assert gulf["verdicts"]["throttled"] == digested
    assert gulf["busiest_hour"]["alerts"] == MAX_PER_HOUR
    carried = [s for s in stories if len(setup.copies[s]) == 3]
    assert len(carried) == 2 and gulf["replies"] == 2 * len(WIRES)  # copies: replies, once


def test_json_round_trips_and_agrees_with_the_text_report(setup: Setup,
                                                          report: Json) -> None:
    assert json.loads(json.dumps(report, ensure_ascii=False)) == report
    done = newswatch("rules", "backtest", str(setup.edited), "--config", str(setup.config),
                     *setup.week, cwd=setup.config.parent)
    assert done.returncode == 0, done.stderr
    text, lines = done.stdout, done.stdout.splitlines()
    assert f"backtest: {report['articles']:,} archived article(s)" in text
    for rule in rules_of(report).values():
        assert (f"\n{rule['rule']}: {rule['title']}\n  {rule['matches']} match(es) · "
                f"{rule['alerts']} alert(s) · {rule['replies']} thread repl") in text
        assert f"{rule['digested']} digested in {rule['digests']} digest(s)" in text
        for alert in rule["first_alerts"]:
            assert one_line(alert["title"])[:90] in text
    for change in diff_of(report).values():
        assert f"\n  {change['summary']}\n" in text
        for sign, key in (("+", "gained"), ("−", "lost")):
            for alert in change[key][:5]:
                assert any(line.startswith(f"    {sign} ") and one_line(alert["title"])[:80]
                           in line for line in lines)
    # every alert time in the JSON is an ISO date inside the week replayed
    since, until = (datetime.fromisoformat(w).timestamp() for w in setup.week[1::2])
    for change in diff_of(report).values():
        for alert in [*change["gained"], *change["lost"]]:
            assert since <= datetime.fromisoformat(alert["at"]).timestamp() < until


def test_the_rate_of_a_summary_line_is_per_the_days_it_names(setup: Setup) -> None:
    until = iso(datetime.fromisoformat(setup.week[3]).timestamp() + 1)  # a week and 1 s
    done = newswatch("rules", "backtest", str(setup.edited), "--config", str(setup.config),
                     "--json", "--since", setup.week[1], "--until", until,
                     cwd=setup.config.parent)
    summary = diff_of(json.loads(done.stdout))["us-military"]["summary"]
    found = re.search(r"over (\d+) days?, ([\d.]+) →", summary)
    assert found is not None, summary
    days, rate = found.groups()
    assert float(rate) == round(len(setup.expected["us-military"]) / int(days), 1)
