"""Pure dedup and noise decisions (streams.decide): one story, one alert, with a reason."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from newswatch.core.article import Article
from newswatch.rules.evidence import Evidence
from newswatch.streams.alerts import Match
from newswatch.streams.decide import (
    LEAD_SIMILARITY,
    MAX_THREAD_REPLIES,
    Route,
    Verdict,
    apply,
    decide,
    identify,
    lead_similarity,
    lead_words,
    prune,
    route,
    seal_digests,
    simhash,
    story_id,
)
from newswatch.streams.rulestate import RuleState, item_id
from newswatch.streams.silences import new_silence

T0 = 1_700_000_000.0
TITLE = "Le Maroc et les États-Unis signent un accord de coopération militaire"
LEAD = (
    "Le Maroc et les Etats-Unis ont signé vendredi un accord de coopération militaire "
    "pour dix ans. Cet accord contre le djihadisme vise à renforcer la lutte et à "
    "promouvoir la sécurité dans la région, a indiqué le ministère marocain de la Défense "
    "à Rabat après la visite du secrétaire américain Mark Esper."
)


def match(
    *, title: str = TITLE, url: str = "https://a.example/1", feed: str = "a",
    summary: str = "", ident: str | None = None, receivers: tuple[str, ...] = ("slack",),
    max_per_hour: int = 20, rule_id: str = "r1", evidence: tuple[Evidence, ...] = (),
) -> Match:
    article = Article(id=ident or url, feed=feed, title=title, url=url, summary=summary)
    return Match(rule_id=rule_id, title="Rule", severity="high", receivers=receivers,
                 article=article, evidence=evidence, dedup_window=24 * 3600.0,
                 max_per_hour=max_per_hour, digest_interval=3600.0)


SUBJECTS = ["Alger", "Nouakchott", "Tripoli", "Bamako", "Niamey", "Tunis", "Dakar", "Rabat"]
TOPICS = ["budget agricole", "grève des enseignants", "festival de cinéma",
          "inondations meurtrières", "match de football", "prix du pétrole",
          "élection municipale", "vaccination des enfants"]


def distinct(n: int) -> str:
    """Titles that no similarity measure calls one story."""
    return f"{SUBJECTS[n]} : {TOPICS[n]} au cœur des débats numéro {n * 7919}"


def seq() -> Callable[[], int]:
    return itertools.count(1).__next__


def record(
    state: RuleState, m: Match, now: float, threads: dict[str, bool] | None = None
) -> tuple[RuleState, Verdict, list[Route], list[str]]:
    """One delivery decision as the pipeline makes it."""
    state = prune(state, now=now, window=m.dedup_window)
    verdict = decide(state, m, now=now)
    routes = [route(state, verdict, m, r, now=now, threads=(threads or {}).get(r, True))
              for r in m.receivers]
    state, queued = apply(state, m, routes, verdict, now=now, next_seq=seq())
    return state, verdict, routes, queued


def sent(rule_state: RuleState) -> RuleState:
    """The state after every queued alert was accepted by its receiver."""
    state = rule_state.to_json()
    stories = []
    for story in state["stories"]:
        parents = {r: ({"state": "sent", "receipt": {"receiver": r, "ref": "1.0"}, "shown": 1}
                       if p.get("state") == "pending" else p)
                   for r, p in story["parents"].items()}
        stories.append({**story, "parents": parents})
    outbox = {k: v for k, v in state["outbox"].items() if v["kind"] != "alert"}
    return RuleState.from_json({**state, "stories": stories, "outbox": outbox})


# --------------------------------------------------------------------------- identity


def test_a_new_story_is_sent_and_queued_for_each_receiver() -> None:
    m = match(receivers=("slack", "mail"))
    state, verdict, routes, queued = record(RuleState(), m, T0)
    assert verdict == Verdict("send", "new story", story_id(m))
    assert [r.action for r in routes] == ["alert", "alert"]
    assert queued == [item_id("alert", "r1", "slack", story_id(m)),
                      item_id("alert", "r1", "mail", story_id(m))]
    item = state.to_json()["outbox"][queued[0]]
    assert (item["kind"], item["receiver"], item["verdict"]) == ("alert", "slack", "send")
    assert Match.from_json(item["match"]) == m
    parents = state.to_json()["stories"][0]["parents"]
    assert parents == {"slack": {"state": "pending", "shown": 1},
                       "mail": {"state": "pending", "shown": 1}}


def test_an_outbox_item_keeps_the_text_around_the_evidence_not_the_whole_page() -> None:
    """An article with 50,000 characters of content and 100,000 of page body: the rule's
    state stays small (in Kafka it is one changelog record), and what the alert quotes is
    kept."""
    body = "word " * 20_000 + "the onyx accord was signed. " + "more " * 20_000
    start = body.index("onyx accord")
    found = Evidence(clause="phrase", term="onyx accord", field="body", start=start,
                     end=start + 11, text="onyx accord", matched="onyx accord")
    m = match(evidence=(found,), receivers=("slack",))
    m = replace(m, article=replace(m.article, content="x " * 25_000, body=body))
    state, _, _, queued = record(RuleState(), m, T0)
    kept = Match.from_json(state.to_json()["outbox"][queued[0]]["match"])
    assert kept.article.body[start:start + 11] == "onyx accord"
    assert len(kept.article.body) < start + 2_000 and len(kept.article.content) <= 1_500
    assert len(json.dumps(state.to_json())) < 250_000


def test_the_same_article_from_another_feed_is_same_article() -> None:
    state, *_ = record(RuleState(), match(), T0)
    # Same canonical URL from another feed, another GUID.
    again = match(feed="b", ident="guid-b")
    verdict = decide(state, again, now=T0 + 60)
    assert verdict.kind == "same_article"
    assert verdict.story == state.stories[0].id
    # Same GUID-based id without a URL.
    by_id = Match.from_json({**match().to_json(), "article": {
        **match().article.to_json(), "url": "", "id": "https://a.example/1"}})
    assert decide(state, by_id, now=T0 + 60).kind == "same_article"


def test_a_rewritten_title_of_the_same_story_is_same_story_with_the_score() -> None:
    state, *_ = record(RuleState(), match(), T0)
    copy = match(title="Le Maroc et les USA signent un accord de coopération militaire de "
                       "dix ans", url="https://b.example/2", feed="b")
    verdict = decide(state, copy, now=T0 + 60)
    assert verdict.kind == "same_story"
    assert verdict.reason == f"title 92% similar to a story first seen at {T0:.0f}"
    assert verdict.story == state.stories[0].id


def test_a_copy_joins_the_most_similar_story_and_the_first_of_equally_similar_ones() -> None:
    """A copy whose words are a subset of two stories' titles scores 100 % against both
    (token_set_ratio): it joins the first. A copy closer to the second story than to the
    first joins the second."""
    first = "Maroc Etats-Unis accord militaire : les réactions à Alger et à Nouakchott"
    second = "Maroc Etats-Unis accord militaire : le Congrès américain demande des comptes"
    state, *_ = record(RuleState(), match(title=first), T0)
    state, verdict, *_ = record(state, match(title=second, url="https://b.example/2"), T0)
    assert verdict.kind == "send" and len(state.stories) == 2  # 69 %: two stories
    both = match(title="Maroc, Etats-Unis : accord militaire", url="https://c.example/3")
    verdict = decide(state, both, now=T0 + 60)
    assert verdict.story == state.stories[0].id
    assert verdict.reason == f"title 100% similar to a story first seen at {T0:.0f}"
    closer = match(title="Etats-Unis, Maroc : accord militaire, le Congrès demande des comptes",
                   url="https://d.example/4")
    assert decide(state, closer, now=T0 + 60).story == state.stories[1].id


def test_a_near_duplicate_lead_joins_the_story_even_with_another_title() -> None:
    state, *_ = record(RuleState(), match(summary=LEAD), T0)
    rewritten = LEAD.replace("vendredi", "ce vendredi").replace("dix ans", "10 ans")
    copy = match(title="Rabat et Washington scellent leur alliance", summary=rewritten,
                 url="https://c.example/3", feed="c")
    verdict = decide(state, copy, now=T0 + 60)
    assert verdict.kind == "same_story", verdict
    assert "lead text" in verdict.reason and "(SimHash)" in verdict.reason


def test_unrelated_stories_and_short_titles_are_new() -> None:
    state, *_ = record(RuleState(), match(summary=LEAD), T0)
    other = match(title="L'Algérie annonce des élections législatives anticipées",
                  summary="Le président a dissous l'assemblée nationale " * 4,
                  url="https://d.example/4")
    assert decide(state, other, now=T0).kind == "send"
    short = match(title="Maroc États-Unis", url="https://d.example/5")  # < 4 words
    state2, *_ = record(RuleState(), match(title="Maroc États-Unis accord"), T0)
    assert decide(state2, short, now=T0).kind == "send"


def test_a_story_outside_the_window_alerts_again() -> None:
    state, *_ = record(RuleState(), match(), T0)
    copy = match(url="https://b.example/2", feed="b")
    assert decide(prune(state, now=T0 + 23 * 3600, window=24 * 3600), copy,
                  now=T0).kind == "same_story"
    later = prune(state, now=T0 + 25 * 3600, window=24 * 3600)
    assert later.stories == () or later.outbox  # kept only while something is pending
    assert decide(prune(sent(state), now=T0 + 25 * 3600, window=24 * 3600), copy,
                  now=T0).kind == "send"


def test_simhash_similarity_is_one_for_equal_leads_and_low_for_unrelated() -> None:
    words = lead_words(match(summary=LEAD))
    h = simhash(words)
    assert h is not None and lead_similarity(h, h) == 1.0
    assert simhash(words[:10]) is None  # too short to say
    other_lead = ("le conseil municipal de la ville a voté le budget annuel des écoles "
                  "et des routes après un long débat sur les impôts locaux")
    other = simhash(other_lead.split())
    assert other is not None and lead_similarity(h, other) < LEAD_SIMILARITY


# --------------------------------------------------------------------------- routes


def test_same_story_replies_in_slack_and_waits_for_the_digest_in_email() -> None:
    state, *_ = record(RuleState(), match(receivers=("slack", "mail")), T0,
                       threads={"slack": True, "mail": False})
    copy = match(url="https://b.example/2", feed="b", receivers=("slack", "mail"))
    state, verdict, routes, queued = record(state, copy, T0 + 60,
                                            threads={"slack": True, "mail": False})
    assert verdict.kind == "same_story"
    assert [(r.receiver, r.action) for r in routes] == [("slack", "reply"), ("mail", "digest")]
    assert "reply in the thread of the first alert" in routes[0].verdict.reason
    assert "in the next digest" in routes[1].verdict.reason
    story = state.to_json()["stories"][0]
    assert story["sources"] == 2 and story["feeds"] == ["a", "b"]
    kinds = sorted(state.outbox[i].kind for i in queued)
    assert kinds == ["reply", "update"]
    entries = state.to_json()["digests"]["mail"]["entries"]
    assert [(e["kind"], e["feed"]) for e in entries] == [("same_story", "b")]
    # A third report queues one more reply but no second pending source-count update.
    third = match(url="https://c.example/3", feed="c", receivers=("slack", "mail"))
    state, _, _, queued = record(state, third, T0 + 90, threads={"slack": True, "mail": False})
    assert sorted(state.outbox[i].kind for i in queued) == ["reply"]
    assert state.stories[0].sources == 3


def test_beyond_max_per_hour_matches_are_throttled_into_the_digest() -> None:
    state = RuleState()
    verdicts = []
    for n in range(5):
        m = match(title=distinct(n), url=f"https://x.example/{n}", max_per_hour=3)
        state, _, routes, _ = record(state, m, T0 + n)
        verdicts.append(routes[0].verdict)
    assert [v.kind for v in verdicts] == ["send", "send", "send", "throttled", "throttled"]
    assert verdicts[3].reason == ("3 alert(s) in the last hour (max_per_hour 3); "
                                  "in the next digest")
    digest = state.to_json()["digests"]["slack"]
    assert len(digest["entries"]) == 2 and digest["due"] == T0 + 3 + 3600.0
    # An hour after the first alerts the budget is back.
    m = match(title=distinct(7), url="https://x.example/9", max_per_hour=3)
    state, _, routes, _ = record(state, m, T0 + 3601)
    assert routes[0].verdict.kind == "send"


def test_max_per_hour_zero_sends_everything_to_the_digest() -> None:
    _, _, routes, queued = record(RuleState(), match(max_per_hour=0), T0)
    assert routes[0].verdict.kind == "throttled" and queued == []


def test_a_due_digest_moves_to_the_outbox_once() -> None:
    state = RuleState()
    for n in range(3):
        m = match(title=distinct(n), url=f"https://x.example/{n}", max_per_hour=1)
        state, *_ = record(state, m, T0 + n)
    assert seal_digests(state, "r1", now=T0 + 100, next_seq=seq())[1] == []
    sealed, queued = seal_digests(state, "r1", now=T0 + 1 + 3600, next_seq=seq())
    assert len(queued) == 1 and "slack" not in sealed.digests
    item = sealed.to_json()["outbox"][queued[0]]
    assert item["kind"] == "digest" and len(item["digest"]["entries"]) == 2
    assert seal_digests(sealed, "r1", now=T0 + 7200, next_seq=seq())[1] == []


# --------------------------------------------------------------------------- silences


def test_an_active_silence_gives_a_silenced_verdict_with_its_reason() -> None:
    country = Evidence("country", "MA", "title", 3, 8, "Maroc", "maroc")
    m = match(evidence=(country,))
    silence = new_silence(reason="covered by the Rabat desk", now=T0, duration=3600,
                          country="ma")
    verdict = decide(RuleState(), m, now=T0 + 10, silences=[silence])
    assert verdict.kind == "silenced"
    assert verdict.reason == (f"silenced by {silence.id} (country=MA) until {T0 + 3600:.0f}: "
                              "covered by the Rabat desk")
    assert decide(RuleState(), m, now=T0 + 3601, silences=[silence]).kind == "send"  # expired
    other = new_silence(reason="x", now=T0, duration=3600, country="DZ")
    assert decide(RuleState(), m, now=T0 + 10, silences=[other]).kind == "send"


def test_a_story_silence_stops_the_copies_but_a_repeat_stays_same_article() -> None:
    state, *_ = record(RuleState(), match(), T0)
    sid = state.stories[0].id
    silence = new_silence(reason="enough", now=T0, duration=600, story=sid)
    copy = match(url="https://b.example/2", feed="b")
    assert decide(state, copy, now=T0 + 1, silences=[silence]).kind == "silenced"
    assert decide(state, match(), now=T0 + 1, silences=[silence]).kind == "same_article"


def test_silenced_and_same_article_change_nothing() -> None:
    state, *_ = record(RuleState(), match(), T0)
    for verdict in (Verdict("silenced", "x", "s"), Verdict("same_article", "y", "s")):
        assert apply(state, match(), [], verdict, now=T0, next_seq=seq()) == (state, [])


# --------------------------------------------------------------------------- upgrade


def test_state_written_before_the_outbox_keeps_its_pending_deliveries() -> None:
    m = match()
    old = {"stories": [{
        "id": "s1", "keys": [m.article.key], "ids": [m.article.id], "title": "t",
        "first": T0, "last": T0, "sources": 2, "feeds": ["a"],
        "deliveries": {"slack": {"state": "sent", "receipt": {"receiver": "slack", "ref": "9"}},
                       "mail": {"state": "pending", "kind": "alert"}},
        "replies": {"slack\x1fk": {"state": "pending", "receiver": "slack",
                                   "match": m.to_json()}},
        "match": m.to_json()}]}
    new = RuleState.from_json(old)
    assert new.to_json()["v"] == 2
    kinds = sorted((i.kind, i.receiver) for i in new.outbox.values())
    assert kinds == [("alert", "mail"), ("reply", "slack")]
    assert new.stories[0].parents["slack"].state == "sent"
    assert identify(new, m).kind == "same_article"


# --------------------------------------------------------------------------- properties


words = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")),
                max_size=80)


@settings(max_examples=300, deadline=None)
@given(first=words, second=words, summary=words)
def test_decisions_are_deterministic_and_never_raise(first: str, second: str,
                                                     summary: str) -> None:
    state, *_ = record(RuleState(), match(title=first, summary=summary), T0)
    m = match(title=second, summary=summary, url="https://other.example/")
    a = decide(state, m, now=T0 + 1)
    b = decide(state, m, now=T0 + 1)
    assert a == b and a.kind in ("send", "same_story")
    if a.kind == "same_story":
        assert a.story == state.stories[0].id and a.reason


def test_a_feed_gets_one_reply_per_story_and_a_story_at_most_ten() -> None:
    """Issue 15: a feed rotating 200 near-identical items gave 1 alert and 195 replies, all
    from the same feed. Now a copy from a feed that already reported the story, or beyond
    MAX_THREAD_REPLIES replies, only updates the first alert's source count."""
    threads = {"slack": True}
    state, *_ = record(RuleState(), match(), T0, threads=threads)
    kinds: list[str] = []
    for n in range(1, 200):  # the same feed as the first alert
        copy = match(url=f"https://a.example/rotated-{n}")
        state, verdict, routes, queued = record(state, copy, T0 + n, threads=threads)
        assert verdict.kind == "same_story" and routes[0].action == "update"
        kinds += [state.outbox[i].kind for i in queued]
    assert "feed a already reported this story" in routes[0].verdict.reason
    assert kinds == ["update"]  # one pending source-count update, no reply
    assert state.stories[0].sources == 200
    replies = 0
    for n in range(1, 16):  # 15 other feeds
        copy = match(url=f"https://f{n}.example/1", feed=f"f{n}")
        state, _, routes, queued = record(state, copy, T0 + 300 + n, threads=threads)
        replies += sum(state.outbox[i].kind == "reply" for i in queued)
    assert replies == MAX_THREAD_REPLIES == 10
    assert "10 replies already in the thread" in routes[0].verdict.reason
    assert routes[0].action == "update" and state.stories[0].sources == 215


def test_simhash_is_the_majority_of_each_bit_over_the_shingle_hashes() -> None:
    """The column-counting SimHash against the definition written the slow way, on word
    lists with many ties (a small vocabulary) and Arabic words."""
    import hashlib
    import random

    from newswatch.streams.decide import simhash

    def by_definition(words: list[str]) -> int | None:
        if len(words) < 15:
            return None
        weights = [0] * 64
        for i in range(len(words) - 2):
            shingle = " ".join(words[i: i + 3]).encode()
            h = int.from_bytes(hashlib.blake2b(shingle, digest_size=8).digest(), "big")
            for bit in range(64):
                weights[bit] += 1 if h >> bit & 1 else -1
        return sum(1 << bit for bit in range(64) if weights[bit] > 0)

    rng = random.Random(5)
    vocabulary = ["maroc", "accord", "militaire", "الجزائر", "états", "unis", "a", "b"]
    for _ in range(500):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(10, 70))]
        assert simhash(words) == by_definition(words), words
