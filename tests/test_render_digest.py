"""Digest renderers (Slack, e-mail, console): the same escaping contract as single alerts
(docs/reliability.md E1, E3, E5, E6, F1, F4, C9, C15), for many feed-derived entries at once."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newswatch.streams.alerts import Digest, DigestEntry
from newswatch.streams.channels.console import render_console_digest
from newswatch.streams.channels.email import EMAIL_SUBJECT_LIMIT, render_email_digest
from newswatch.streams.channels.slack_render import SlackMessage, render_slack_digest
from tests.test_render import (
    LINE_BREAKERS,
    MENTIONS,
    OUR_LINK_RE,
    assert_html_safe,
    assert_payload_safe,
    html_part,
    mrkdwn_texts,
    parse_bytes,
    text_part,
)

T0 = 1_700_000_000.0
SENDER = "newswatch@example.com"


def digest(*entries: DigestEntry, more: int = 0, title: str = "Maghreb military") -> Digest:
    return Digest(rule_id="maghreb", rule_title=title, severity="high", opened=T0,
                  closed=T0 + 3600, entries=entries, more=more)


def entry(title: str, url: str = "https://news.example/a", feed: str = "Agence",
          kind: str = "throttled") -> DigestEntry:
    return DigestEntry(kind=kind, title=title, url=url, feed=feed,
                       published=datetime(2024, 5, 14, 9, 30, tzinfo=UTC), story="s1")


def assert_digest_safe(message: SlackMessage) -> None:
    assert_payload_safe(message)
    for text in mrkdwn_texts(message):
        assert not set("_~`*") & set(OUR_LINK_RE.sub("", text)), text


def test_slack_digest_lists_every_entry_with_its_link_source_and_why() -> None:
    message = render_slack_digest(digest(
        entry("Le Maroc et les USA signent", "https://a.example/1", "Le Monde"),
        entry("Rabat et Washington", "https://b.example/2", "RFI", kind="same_story")))
    assert_digest_safe(message)
    header = message.blocks[0]["text"]["text"]
    assert header == "🟠 HIGH · Maghreb military: digest of 2 matches"
    body = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert body.splitlines() == [
        "• <https://a.example/1|Le Maroc et les USA signent> — Le Monde · 2024-05-14 09:30 UTC "
        "(over the hourly limit)",
        "• <https://b.example/2|Rabat et Washington> — RFI · 2024-05-14 09:30 UTC "
        "(also reported)",
    ]
    assert "Queued 2023-11-14 22:13 UTC – 2023-11-14 23:13 UTC" in str(message.blocks[1])


def test_hostile_entries_are_inert_in_slack() -> None:
    hostile = [entry(f"{m} <https://evil.example|Official> *bold* _it_ ~s~ `c` > quote",
                     url="javascript:alert(1)", feed=f"{m} feed") for m in MENTIONS]
    hostile.append(entry("AT&T & co", url="https://x.example/?a=1&b=<2>|3"))
    message = render_slack_digest(digest(*hostile))
    assert_digest_safe(message)
    assert "AT&amp;T &amp; co" in str(message.blocks)


def test_a_huge_digest_stays_under_slack_limits_and_counts_the_rest() -> None:
    entries = [entry("T" * 900 + f" {n}", f"https://news.example/{'p' * 500}/{n}",
                     "F" * 300) for n in range(100)]
    message = render_slack_digest(digest(*entries, more=40))
    assert_digest_safe(message)
    shown = sum(b["text"]["text"].count("• ") for b in message.blocks if b["type"] == "section")
    more = [e["text"] for b in message.blocks if b["type"] == "context"
            for e in b["elements"] if e["text"].startswith("… and")]
    assert more == [f"… and {140 - shown} more"]


def test_email_digest_has_one_safe_subject_line_and_escaped_html() -> None:
    breakers = "".join(LINE_BREAKERS)
    entries = [entry(f"<img src=http://tracker/{n}>{breakers}Bcc: victim@example.com",
                     url="https://a.example/x?y=<z>", feed="<script>x</script>")
               for n in range(3)]
    msg = render_email_digest(digest(*entries, title=f"Rule{breakers}Bcc: v@example.com"),
                              sender=SENDER, recipients=["desk@example.com"])
    subject = str(msg["Subject"])
    assert subject == ("[newswatch] high Rule Bcc: v@example.com: digest of 3 matches")
    parsed = parse_bytes(msg)
    assert parsed["Bcc"] is None and parsed["Subject"] == subject
    assert_html_safe(html_part(parsed), [e.title for e in entries] + [entries[0].feed])
    text = text_part(parsed)
    assert text.count("- <img src=http://tracker/") == 3 and "\u2028" not in text


def test_console_digest_has_no_control_characters() -> None:
    out = render_console_digest(digest(entry("a\x1b[31mred\x07\u202e"), more=2))
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]", out)
    assert out.endswith("  - … and 2 more")


feed_text = st.text(max_size=300)
entries = st.lists(st.builds(entry, title=feed_text, url=st.one_of(
    st.just("https://ok.example/a"), feed_text), feed=feed_text,
    kind=st.sampled_from(["throttled", "same_story"])), max_size=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=entries, more=st.integers(0, 1000), title=feed_text)
def test_property_digests_are_inert_everywhere(items: list[DigestEntry], more: int,
                                               title: str) -> None:
    d = digest(*items, more=more, title=title)
    assert_digest_safe(render_slack_digest(d))
    msg = render_email_digest(d, sender=SENDER, recipients=["desk@example.com"])
    subject = str(msg["Subject"])
    assert len(subject) <= EMAIL_SUBJECT_LIMIT and subject.splitlines() == [subject]
    parsed = parse_bytes(msg)
    assert parsed["Subject"] == subject and parsed["Bcc"] is None
    assert_html_safe(html_part(parsed), [e.title for e in items] + [e.feed for e in items])
    console = render_console_digest(d)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\ud800-\udfff]",
                         console)
