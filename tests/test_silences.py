"""Silences: matchers, expiry, storage, and the config file's ``silences:`` entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from newswatch.core.config import parse_config
from newswatch.core.errors import ConfigError
from newswatch.core.state import Database
from newswatch.rules.evidence import Evidence
from newswatch.streams.silences import Silence, SilenceStore, new_silence, silenced_by
from tests.fakes.samples import sample_match

T0 = 1_700_000_000.0
ESPER = Evidence("person", "Mark Esper", "summary", 0, 10, "Mark Esper", "mark esper", 100.0)


def test_every_matcher_given_must_hold() -> None:
    m = sample_match()  # rule maghreb-military, feed "Le Journal d'Exemple", evidence MA
    covering = new_silence(reason="r", now=T0, duration=60, rule="maghreb-military",
                           country="MA")
    assert covering.covers(m)
    assert not new_silence(reason="r", now=T0, duration=60, rule="maghreb-military",
                           country="DZ").covers(m)
    assert not new_silence(reason="r", now=T0, duration=60, rule="other").covers(m)
    assert new_silence(reason="r", now=T0, duration=60, feed="Le Journal d'Exemple").covers(m)
    assert new_silence(reason="r", now=T0, duration=60, story="s1").covers(m, story="s1")
    assert not new_silence(reason="r", now=T0, duration=60, story="s1").covers(m, story="s2")


def test_person_matches_the_evidence_name_spelled_any_which_way() -> None:
    m = sample_match(evidence=(ESPER,))
    for spelling in ("Mark Esper", "mark esper", "Mark Espér", "Mark Espre"):
        assert new_silence(reason="r", now=T0, duration=60, person=spelling).covers(m), spelling
    assert not new_silence(reason="r", now=T0, duration=60, person="Kaïs Saïed").covers(m)
    assert not new_silence(reason="r", now=T0, duration=60, person="Mark Esper").covers(
        sample_match())  # no person in that match's evidence


def test_only_active_silences_count() -> None:
    m = sample_match()
    silence = new_silence(reason="r", now=T0, duration=60, rule="maghreb-military")
    assert silenced_by(m, [silence], T0 + 59) == silence
    assert silenced_by(m, [silence], T0 + 60) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reason": " ", "duration": 60, "rule": "x"}, "a silence needs a reason"),
    ({"reason": "r", "duration": 0, "rule": "x"}, "a silence needs a positive duration"),
    ({"reason": "r", "duration": 60},
     "a silence needs at least one of rule, country, person, story, feed"),
])
def test_a_silence_needs_a_matcher_a_reason_and_a_duration(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        new_silence(now=T0, **kwargs)


def test_an_empty_silence_never_covers_anything() -> None:
    assert not Silence(id="s", reason="r", expires=T0 + 60).covers(sample_match())


def test_stored_silences_survive_a_reopen_and_expire_by_id(tmp_path: Path) -> None:
    configured = Silence(id="s-cfg", reason="from config", expires=T0 + 10, rule="a",
                         origin="config line 9")
    db = Database.open(tmp_path / "state.db")
    store = SilenceStore(db.mapping("silences"), [configured])
    added = new_silence(reason="visit covered", now=T0, duration=7200, country="MA",
                        creator="slack:U0ALICE01 (alice)")
    store.add(added)
    db.close()
    db = Database.open(tmp_path / "state.db")
    store = SilenceStore(db.mapping("silences"), [configured])
    assert store.all() == [configured, added]  # the creator comes back too
    assert store.all()[1].creator == "slack:U0ALICE01 (alice)"
    assert store.active(T0 + 60) == [added]
    expired = store.expire(added.id, T0 + 100)
    assert expired.expires == T0 + 100 and store.active(T0 + 101) == []
    with pytest.raises(KeyError):
        store.expire("s-none", T0)
    with pytest.raises(ValueError, match="defined in the config"):
        store.expire("s-cfg", T0)
    db.close()


# --------------------------------------------------------------------------- config

BASE = "rules: []\nfeeds:\n  - name: lemonde\n    url: https://x.example/rss\n"


def config_silences(text: str) -> Any:
    return parse_config(BASE + text, "c.yaml", base=Path("/tmp")).silences


def config_errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + text, "c.yaml", base=Path("/tmp"))
    return [str(i) for i in caught.value.issues]


def test_config_silences_are_read_with_their_line() -> None:
    (silence,) = config_silences(
        "silences:\n"
        "  - rule: us-maghreb\n"
        "    country: MA\n"
        "    until: 2030-01-31T18:00:00Z\n"
        "    reason: the Rabat desk covers the visit\n")
    assert (silence.rule, silence.country, silence.line) == ("us-maghreb", "MA", 6)
    assert silence.until == 1896112800.0
    (by_date,) = config_silences("silences:\n  - {feed: lemonde, until: 2030-01-31, "
                                 "reason: noisy}\n")
    assert by_date.until == 1896048000.0  # midnight UTC


def test_bad_config_silences_are_reported_with_lines() -> None:
    assert config_errors(
        "silences:\n"
        "  - reason: nothing to match\n"
        "    until: 2030-01-01\n"
        "  - country: Maroc\n"
        "    until: soon\n"
        "    reason: x\n"
        "  - feed: nope\n"
        "    until: 2030-01-01\n"
        "  - rule: a\n"
        "    untill: 2030-01-01\n"
        "    reason: y\n") == [
        "c.yaml:6: silences[0]: a silence needs at least one of rule, country, person, story, "
        "feed",
        "c.yaml:9: silences[1]: until must be an ISO date or date-time such as 2025-06-30 or "
        "2025-06-30T18:00:00Z, got 'soon'",
        "c.yaml:8: silences[1]: country must be an ISO code such as MA, got 'Maroc'",
        "c.yaml:11: silences[2]: missing required key 'reason'",
        "c.yaml:11: silences[2]: unknown feed 'nope'",
        "c.yaml:14: silences[3]: unknown key 'untill' (did you mean 'until'?)",
        "c.yaml:13: silences[3]: missing required key 'until'",
    ]
