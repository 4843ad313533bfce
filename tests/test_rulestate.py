"""The typed delivery state (streams/rulestate.py): every value round-trips through its JSON,
and a state file written by the version before the typed state (tests/data/
delivery_state_v2.json, made by tests/data/make_delivery_state.py) loads exactly, its
pending items are resumed, its open digests sent and its dead letter replayed."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from newswatch.core.article import Article
from newswatch.core.state import Database
from newswatch.rules.evidence import Evidence
from newswatch.rules.model import Escalation
from newswatch.streams.alerts import SEVERITIES, Digest, Escalated, Match
from newswatch.streams.notifiers import Receipt, RefusedRecipient
from newswatch.streams.pacing import Pacer
from newswatch.streams.pipeline import Pipeline
from newswatch.streams.rulestate import (
    ITEM_KINDS,
    LETTER_STATES,
    PARENT_STATES,
    VERDICTS,
    DeadLetter,
    DigestDraft,
    DraftEntry,
    OutboxItem,
    Parent,
    RuleState,
    Story,
)
from tests.data.make_delivery_state import story
from tests.fakes.clock import VirtualTime
from tests.fakes.notifiers import RecordingNotifier
from tests.test_pipeline import Audit

DATA = Path(__file__).parent / "data" / "delivery_state_v2.json"
T = TypeVar("T", Parent, Story, DraftEntry, DigestDraft, OutboxItem, RuleState, DeadLetter)

# --------------------------------------------------------------------------- round trips

text = st.text(max_size=12)
ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=12)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
counts = st.integers(min_value=0, max_value=10_000)
published = st.none() | st.datetimes(timezones=st.none() | st.just(UTC))
tuples = st.lists(text, max_size=3).map(tuple)

receipts = st.builds(
    Receipt, receiver=ids, ref=text, channel=st.none() | text,
    refused=st.lists(st.builds(RefusedRecipient, address=text, code=st.integers(400, 599),
                               message=text), max_size=2).map(tuple))
evidence = st.builds(
    Evidence, clause=st.sampled_from(["country", "phrase", "person"]), term=text,
    field=st.sampled_from(["title", "summary", "content"]), start=counts, end=counts,
    text=text, matched=text, score=st.none() | st.floats(0, 100))
articles = st.builds(
    Article, id=ids, feed=text, title=text, url=text, summary=text, content=text,
    language=st.sampled_from([None, "fr", "ar"]), published=published,
    guid=st.none() | text, extra=st.dictionaries(text, text, max_size=2))
escalations = st.builds(Escalated, sources=counts, languages=tuples)
matches = st.builds(
    Match, rule_id=ids, title=text, severity=st.sampled_from(SEVERITIES),
    receivers=st.lists(ids, max_size=3).map(tuple), article=articles,
    evidence=st.lists(evidence, max_size=2).map(tuple), dedup_window=times,
    max_per_hour=counts, digest_interval=times,
    escalate=st.none() | st.builds(Escalation, sources=st.integers(2, 20),
                                   languages=st.integers(1, 5), notify=tuples),
    escalation=st.none() | escalations)
parents = st.builds(Parent, state=st.sampled_from(PARENT_STATES), receipt=st.none() | receipts,
                    shown=st.none() | counts, reason=st.none() | text,
                    escalated=st.booleans())
stories = st.builds(
    Story, id=ids, keys=tuples, ids=tuples, title=text, lead=st.none() | ids, first=times,
    last=times, sources=counts, feeds=tuples, languages=tuples, match=st.none() | matches,
    parents=st.dictionaries(ids, parents, max_size=3), escalated=st.none() | escalations)
entries = st.builds(DraftEntry, kind=st.sampled_from(VERDICTS), story=st.none() | ids,
                    title=text, url=text, feed=text, key=text, at=times, published=published)
drafts = st.builds(
    DigestDraft, opened=times, due=times, rule_id=ids, rule_title=text,
    severity=st.sampled_from(SEVERITIES), entries=st.lists(entries, max_size=3).map(tuple),
    more=counts, closed=st.none() | times)
items = st.builds(
    OutboxItem, id=ids, kind=st.sampled_from(ITEM_KINDS), receiver=ids, story=st.none() | ids,
    seq=st.integers(0, 2**63), created=times, verdict=st.sampled_from(VERDICTS), reason=text,
    match=st.none() | matches, digest=st.none() | drafts,
    recipients=st.none() | st.lists(text, max_size=2).map(tuple))
rule_states = st.builds(
    RuleState, stories=st.lists(stories, max_size=2).map(tuple),
    outbox=st.dictionaries(ids, items, max_size=2),
    alerts=st.dictionaries(ids, st.lists(times, max_size=3).map(tuple), max_size=2),
    digests=st.dictionaries(ids, drafts, max_size=2))
letters = st.builds(
    DeadLetter, id=ids, at=times, rule_id=ids, receiver=ids, kind=st.sampled_from(ITEM_KINDS),
    story=st.none() | ids, reason=text, message=text, state=st.sampled_from(LETTER_STATES),
    title=st.none() | text, match=st.none() | matches, digest=st.none() | drafts,
    recipients=st.none() | st.lists(text, max_size=2).map(tuple), replayed=st.none() | times)


def round_trip(value: T) -> None:
    """``value`` survives its JSON, stored as text as the mappings store it."""
    stored = json.loads(json.dumps(value.to_json(), ensure_ascii=False))
    again = type(value).from_json(stored)
    assert again == value
    assert again.to_json() == value.to_json()  # also what equality ignores (Article.extra)


@settings(max_examples=150, deadline=None)
@given(value=st.one_of(parents, entries, drafts))
def test_parents_entries_and_digests_round_trip(
    value: Parent | DraftEntry | DigestDraft,
) -> None:
    round_trip(value)


@settings(max_examples=100, deadline=None)
@given(value=st.one_of(stories, items, letters))
def test_stories_outbox_items_and_dead_letters_round_trip(
    value: Story | OutboxItem | DeadLetter,
) -> None:
    round_trip(value)


@settings(max_examples=60, deadline=None)
@given(value=rule_states)
def test_rule_states_round_trip(value: RuleState) -> None:
    round_trip(value)
    assert value.to_json()["v"] == 2


def test_the_empty_state_is_what_an_unknown_rule_reads() -> None:
    assert RuleState.from_json({}) == RuleState()
    assert RuleState().to_json() == {"v": 2, "stories": [], "outbox": {}, "alerts": {},
                                     "digests": {}}


# --------------------------------------------------------------------------- committed file


def stored() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def test_a_state_file_of_the_untyped_version_reads_back_exactly() -> None:
    data = stored()
    empty = RuleState().to_json()
    assert set(data["rules"]) == {"maghreb-military", "sahel-watch"}
    for raw in data["rules"].values():
        assert RuleState.from_json(raw).to_json() == {**empty, **raw}
    (raw_letter,) = data["dlq"].values()
    assert DeadLetter.from_json(raw_letter).to_json() == raw_letter
    first = RuleState.from_json(data["rules"]["maghreb-military"])
    parents = first.stories[0].parents
    assert parents["desk"].delivered == Receipt("desk", "1", "CREC")
    assert (parents["desk"].shown, parents["ops"].state) == (2, "dead")
    assert sorted(i.kind for i in first.outbox.values()) == ["reply", "update"]
    assert {r: d.count for r, d in first.digests.items()} == {"desk": 2, "mail": 3, "ops": 1}


class Threads(RecordingNotifier):
    """Also records where replies go and the digests themselves."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.parents: list[str] = []
        self.digests: list[Digest] = []

    async def reply(self, match: Match, parent: Receipt, ident: str | None = None) -> Receipt:
        self.parents.append(parent.ref)
        return await super().reply(match, parent, ident)

    async def digest(self, digest: Digest, ident: str | None = None) -> Receipt:
        self.digests.append(digest)
        return await super().digest(digest, ident)


def titles(n: int) -> str:
    return story(n).article.title


async def test_a_state_file_of_the_untyped_version_resumes_and_sends_its_digests(
    tmp_path: Path,
) -> None:
    db = Database.open(tmp_path / "state.db")
    for space, rows in stored().items():
        db.mapping(space).set_many(rows)
    time = VirtualTime(start=1_700_000_300.0)
    desk, mail, ops = (Threads("desk", time), Threads("mail", time, threads=False),
                       Threads("ops", time))
    audit = Audit()
    pipeline = Pipeline(notifiers={"desk": desk, "mail": mail, "ops": ops},
                        state=db.mapping("rules"), dlq=db.mapping("dlq"),
                        meta=db.mapping("meta"), audit=audit, clock=time, sleep=time.sleep,
                        pacer=Pacer(clock=time, sleep=time.sleep))
    rules = db.mapping("rules")

    # The pending items: a reply in the thread of story 0's first alert, its source count
    # (3 now, 2 shown), story 4's alert, and the sealed digest of rule sahel-watch.
    assert await pipeline.resume() == 4
    await time.run(pipeline.drain())
    assert desk.titles("reply") == [titles(0)] and desk.parents == ["1"]
    assert desk.updates == [3] and desk.titles() == [titles(4)]
    assert mail.titles("digest") == ["1 match(es)"]
    assert [e.title for e in mail.digests[0].entries] == [titles(5)]
    assert not any(RuleState.from_json(rules[r]).outbox for r in rules)
    assert rules["maghreb-military"]["stories"][0]["parents"]["desk"]["shown"] == 3

    # The open digests of rule maghreb-military, each when due.
    assert pipeline.next_digest_due() == 1_700_000_960.0
    time.now = 1_700_000_960.0
    assert await pipeline.flush_digests() == 2
    await time.run(pipeline.drain())
    due_desk = pipeline.next_digest_due()
    assert due_desk is not None and due_desk > time.now
    time.now = due_desk
    assert await pipeline.flush_digests() == 1
    await time.run(pipeline.drain())
    assert pipeline.next_digest_due() is None
    sent = {n.name: n.digests[-1] for n in (desk, mail, ops)}
    assert [(e.kind, e.title) for e in sent["mail"].entries] == [
        ("same_story", titles(0)), ("throttled", titles(2)), ("throttled", titles(3))]
    assert [e.feed for e in sent["ops"].entries] == ["Agence B"]
    assert [e.title for e in sent["desk"].entries] == [titles(2), titles(3)]
    assert {(d.rule_id, d.severity) for d in sent.values()} == {("maghreb-military", "high")}
    assert sent["desk"].closed == due_desk and sent["mail"].closed == 1_700_000_960.0
    results = audit.results()
    assert results[("mail", "throttled", "sent:digest")] == 3  # 2 + the sahel-watch one
    assert results[("mail", "same_story", "sent:digest")] == 1

    # The dead letter: replayed once, then gone; a later copy threads under the first alert.
    assert [o.outcome for o in await pipeline.replay()] == ["queued"]
    await time.run(pipeline.drain())
    assert ops.titles() == [titles(0)] and db.mapping("dlq").get("a-1cf616c29e80161b2ee6") is None
    await pipeline.deliver(story(0, "desk", "ops", feed="Agence D", url="https://copy.example/d"))
    await time.run(pipeline.drain())
    replayed = next(s.ref for s in ops.sent if s.kind == "alert")
    assert desk.parents == ["1", "1"] and ops.parents == [replayed]
    assert Counter(d.result for d in audit.decisions if d.receiver == "ops")["sent"] == 2
    await pipeline.aclose()
    db.close()
