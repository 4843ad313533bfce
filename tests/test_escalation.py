"""Story escalation (issue 18), pure: a story that grows to a rule's threshold of feeds
and languages is announced once (a note in each thread, the first alert re-rendered, one
alert to each escalation receiver), and versions of a story in another language join it
by the people and places they name."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace

from newswatch.core.article import Article
from newswatch.core.errors import DeliveryError
from newswatch.rules.evidence import Clause, Evidence
from newswatch.rules.model import Escalation
from newswatch.streams.alerts import Escalated, Match
from newswatch.streams.channels.console import render_console
from newswatch.streams.channels.email import render_email
from newswatch.streams.channels.slack_render import render_slack, render_slack_reply
from newswatch.streams.decide import apply, decide, prune, route
from newswatch.streams.notifiers import Receipt
from newswatch.streams.outbox import dead_letter, mark_dead, mark_sent, revive, source_update
from newswatch.streams.rulestate import OutboxItem, RuleState

T0 = 1_700_000_000.0
POLICY = Escalation(sources=6, languages=2, notify=("duty",))
FR_TITLES = [
    "Le Maroc et les États-Unis signent un accord militaire de dix ans",
    "Le Maroc et les Etats-Unis signent un accord militaire de dix ans - Le360",
    "Défense : le Maroc et les États-Unis signent un accord militaire de dix ans",
]
AR_TITLES = [
    "المغرب والولايات المتحدة يوقعان اتفاقا عسكريا لمدة عشر سنوات",
    "توقيع اتفاق عسكري بين الرباط وواشنطن",
    "اتفاق عسكري مغربي أمريكي لعشر سنوات",
]


def found(clause: Clause, term: str, text: str) -> Evidence:
    return Evidence(clause=clause, term=term, field="title", start=0, end=len(text),
                    text=text, matched=text)


ESPER_FR = (found("person", "Mark Esper", "Mark Esper"), found("country", "MA", "Maroc"),
            found("country", "US", "États-Unis"))
ESPER_AR = (found("person", "Mark Esper", "مارك إسبر"), found("country", "MA", "المغرب"),
            found("country", "US", "الولايات المتحدة"))


def copy(n: int, *, language: str, title: str, feed: str | None = None,
         evidence: tuple[Evidence, ...] = ESPER_FR,
         policy: Escalation | None = POLICY) -> Match:
    article = Article(id=f"id-{feed or n}-{n}", feed=feed or f"feed{n}", title=title,
                      url=f"https://outlet{n}.example/{feed or n}/{n}", language=language)
    return Match(rule_id="r1", title="US–Maghreb military agreements", severity="high",
                 receivers=("desk",), article=article, evidence=evidence, escalate=policy)


def six_feeds(policy: Escalation | None = POLICY) -> list[Match]:
    """The story from 3 French and 3 Arabic outlets, in that order."""
    return ([copy(n, language="fr", title=t, policy=policy) for n, t in enumerate(FR_TITLES)]
            + [copy(n + 3, language="ar", title=t, evidence=ESPER_AR, policy=policy)
               for n, t in enumerate(AR_TITLES)])


def decide_all(matches: Sequence[Match], *, threads: bool = True,
               state: RuleState | None = None) -> tuple[RuleState, list[str], list[str]]:
    """Every match decided in turn as the pipeline does, the first alert delivered at
    once; the verdict kinds and every outbox item id queued."""
    state = state or RuleState()
    counter = itertools.count(1)
    seq: Callable[[], int] = counter.__next__
    kinds: list[str] = []
    queued: list[str] = []
    for i, m in enumerate(matches):
        now = T0 + 60 * i
        state = prune(state, now=now, window=m.dedup_window)
        verdict = decide(state, m, now=now)
        routes = [route(state, verdict, m, r, now=now, threads=threads) for r in m.receivers]
        state, ids = apply(state, m, routes, verdict, now=now, next_seq=seq)
        kinds.append(verdict.kind)
        queued.extend(ids)
        for ident in ids:  # the first alert arrives before the next copy is decided
            if state.outbox[ident].kind == "alert":
                state, _ = mark_sent(state, ident, Receipt("desk", "1.0", "C1"))
    return state, kinds, queued


def of_kind(state: RuleState, kind: str) -> list[OutboxItem]:
    return [i for i in state.outbox.values() if i.kind == kind]


def test_six_feeds_in_two_languages_escalate_the_story_once() -> None:
    state, kinds, _ = decide_all(six_feeds())
    assert kinds == ["send"] + ["same_story"] * 5
    story = state.stories[0]
    assert story.escalated == Escalated(sources=6, languages=("ar", "fr"))
    assert story.escalated.describe() == "escalated: 6 sources, ar + fr"
    [duty] = of_kind(state, "escalation")
    [note] = of_kind(state, "note")
    assert (duty.receiver, note.receiver) == ("duty", "desk")
    assert duty.match is not None and duty.match.escalation == story.escalated
    assert duty.match.article.title == FR_TITLES[0]  # the story as first alerted
    assert "escalate at 6 sources, 2 language(s)" in duty.reason
    # A seventh outlet (and the sixth again) announces nothing more.
    later = [copy(6, language="ar", title=AR_TITLES[0], evidence=ESPER_AR),
             copy(7, language="fr", title=FR_TITLES[1], feed="feed5")]
    state, kinds, queued = decide_all(later, state=state)
    assert kinds == ["same_story", "same_story"]
    assert not [i for i in queued if state.outbox[i].kind in ("escalation", "note")]
    assert state.stories[0].escalated == story.escalated


def test_the_threshold_counts_distinct_feeds_and_languages() -> None:
    one_language = [copy(n, language="fr", title=FR_TITLES[n % 3]) for n in range(8)]
    state, _, _ = decide_all(one_language)
    assert len(state.stories[0].feeds) == 8 and state.stories[0].escalated is None
    one_feed = [copy(n, language="fr" if n % 2 else "ar", feed="wire",
                     title=FR_TITLES[0] if n % 2 else AR_TITLES[0],
                     evidence=ESPER_FR if n % 2 else ESPER_AR) for n in range(8)]
    state, _, _ = decide_all(one_feed)
    assert state.stories[0].sources == 8 and state.stories[0].escalated is None
    state, _, _ = decide_all(six_feeds(policy=None))
    assert state.stories[0].escalated is None and not of_kind(state, "escalation")


def test_a_receiver_without_threads_gets_no_note_and_the_duty_alert_still_goes() -> None:
    state, _, _ = decide_all(six_feeds(), threads=False)
    assert not of_kind(state, "note")
    assert [i.receiver for i in of_kind(state, "escalation")] == ["duty"]


def test_the_first_alert_is_re_rendered_with_the_escalation_once() -> None:
    state, _, _ = decide_all(six_feeds())
    [update] = of_kind(state, "update")
    shown = source_update(state, update)
    assert shown is not None and shown.sources == 6
    assert shown.match.escalation == Escalated(sources=6, languages=("ar", "fr"))
    blocks = render_slack(shown.match, sources=shown.sources).blocks
    lines = [b["elements"][0]["text"] for b in blocks if b["type"] == "context"]
    assert "Reported by 6 sources" in lines
    assert ":rotating_light: *Escalated: 6 sources, ar + fr*" in lines
    state, _ = mark_sent(state, update.id, Receipt("desk", "1.0", "C1"))
    assert state.stories[0].parent("desk").escalated  # type: ignore[union-attr]
    again = replace(update, id="u-again")
    assert source_update(state, again) is None  # shows it all already


def test_a_note_whose_first_alert_died_is_replayed_as_an_escalation_alert() -> None:
    state, _, _ = decide_all(six_feeds())
    [note] = of_kind(state, "note")
    state, item = mark_dead(state, note.id, "channel_not_found")
    assert item is not None
    from_dead = replace(state, stories=tuple(
        replace(s, parents={}) for s in state.stories))
    letter = dead_letter(item, "r1", DeliveryError("channel_not_found", "x", retryable=False),
                         now=T0)
    revived, outcome = revive(from_dead, letter, now=T0 + 10, seq=99)
    assert outcome == "queued" and revived.outbox[note.id].kind == "escalation"


def test_versions_in_other_languages_join_by_people_and_places_only() -> None:
    first = copy(0, language="fr", title=FR_TITLES[0])
    state, _, _ = decide_all([first])
    arabic = copy(1, language="ar", title=AR_TITLES[0], evidence=ESPER_AR)
    verdict = decide(state, arabic, now=T0 + 60)
    assert verdict.kind == "same_story"
    assert "the same people and places (MA, Mark Esper, US) in ar as in fr" in verdict.reason
    # The same language: words decide, not names (two French stories on Esper differ).
    other = copy(2, language="fr", title="Mark Esper visite une base navale en Espagne")
    assert decide(state, other, now=T0 + 60).kind == "send"
    # No person, or other people or places, or no language: another story.
    places = tuple(e for e in ESPER_AR if e.clause == "country")
    assert decide(state, replace(arabic, evidence=places), now=T0 + 60).kind == "send"
    bourita = (*ESPER_AR, found("person", "Nasser Bourita", "ناصر بوريطة"))
    assert decide(state, replace(arabic, evidence=bourita), now=T0 + 60).kind == "send"
    unknown = replace(arabic, article=replace(arabic.article, language=None))
    assert decide(state, unknown, now=T0 + 60).kind == "send"


def test_escalation_texts_are_escaped_in_every_channel() -> None:
    hostile = Escalated(sources=6, languages=("<!channel>", "fr"))
    m = replace(copy(0, language="fr", title=FR_TITLES[0]), escalation=hostile)
    reply = render_slack_reply(m)
    assert "<!channel>" not in reply.text and "&lt;!channel&gt;" in reply.text
    assert "Escalated: 6 sources" in reply.blocks[0]["text"]["text"]
    assert render_slack(m).text.startswith("Escalated: 6 sources")
    mail = render_email(m, sender="nw@example.org", recipients=["duty@example.org"])
    assert mail["Subject"].startswith("[newswatch] escalated high")
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;!channel&gt;" in html and "<!channel>" not in html
    assert "ESCALATED: 6 sources, <!channel> + fr" in render_console(m)
