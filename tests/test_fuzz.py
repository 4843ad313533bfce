"""Fuzzing the readers of outside input (issue 15): the YAML loader, the rule loader, the
article JSON reader of ``rules test`` and feed parsing, each fed mutations of real inputs
(the shipped watchlists, the feed files in tests/data/feeds) and text from a hostile
alphabet. Each may only return or raise its documented error; anything else (a
RecursionError, a KeyError, a TypeError) is a traceback a user would see. The Slack,
e-mail and console renderers have their own properties in tests/test_render.py.

The budget: ``FUZZ_EXAMPLES`` examples per reader (150, seconds of CPU in all; set
``NEWSWATCH_FUZZ_EXAMPLES`` for a longer hunt), no deadline (a busy CI machine must not fail
them).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newswatch.cli.rules import _load_json, _parse_article, article_from
from newswatch.core.errors import ConfigError, FeedError, NewswatchError
from newswatch.core.yamlfile import YamlError, load_yaml
from newswatch.monitor.feedparse import parse_feed
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules

FUZZ_EXAMPLES = int(os.environ.get("NEWSWATCH_FUZZ_EXAMPLES", "150"))
ROOT = Path(__file__).resolve().parents[1]
WATCHLISTS = sorted((ROOT / "deploy" / "example" / "watchlists").glob("*.yaml"))
FEEDS = sorted((ROOT / "tests" / "data" / "feeds").glob("*.xml"))
SEED_JSON = ('{"id": "seed", "title": "Accord militaire entre le Maroc et les États-Unis", '
             '"summary": "Mark Esper et Nasser Bourita", "url": "https://x.example/a", '
             '"language": "fr", "feed": "f", "content": "Kaiis Saied"}')

# YAML's and JSON's own punctuation, line breaks, controls, a NUL, bidi and Arabic letters
HOSTILE = st.sampled_from([*":-[]{},#&*!|>'\"%@`\\ \t\n\r\x00\x1b\u202e\ufeffé ش0123456789abcxyz",
                           "- ", ": ", "!!python/object ", "&a ", "*a", "\n  ", "---\n", "..."])
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated(draw: st.DrawFn, originals: list[str]) -> str:
    """One of ``originals`` cut, with pieces replaced by or spliced with hostile text."""
    text = draw(st.sampled_from(originals))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        piece = "".join(draw(st.lists(HOSTILE, max_size=8)))
        text = text[:at] + piece + text[at + cut:]
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


@st.composite
def mutated_bytes(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    body = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(0, 12))):
        if not body:
            break
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["set", "insert", "delete"]))
        value = draw(st.sampled_from([0, 0x3C, 0x3E, 0x26, 0x22, 0xFF, 0xC3, 0x1B, 0x0A])) \
            if draw(st.booleans()) else draw(st.integers(0, 255))
        if action == "set":
            body[at] = value
        elif action == "insert":
            body.insert(at, value)
        else:
            del body[at: at + draw(st.integers(1, 64))]
    return bytes(body[: draw(st.integers(0, len(body)))]) if draw(st.booleans()) else bytes(body)


WATCHLIST_TEXTS = [p.read_text(encoding="utf-8") for p in WATCHLISTS]


@FUZZ
@given(text=mutated(WATCHLIST_TEXTS) | st.lists(HOSTILE, max_size=120).map("".join))
def test_the_yaml_loader_returns_or_raises_yaml_error(text: str) -> None:
    try:
        load_yaml(text, "fuzz.yaml")
    except YamlError as error:
        assert str(error).startswith("fuzz.yaml:")


@FUZZ
@given(text=mutated(WATCHLIST_TEXTS))
def test_the_rule_loader_returns_or_raises_a_documented_error(text: str) -> None:
    try:
        parse_rules([("fuzz.yaml", text)], known_codes=known_codes())
    except NewswatchError as error:
        assert "fuzz.yaml" in str(error)


@FUZZ
@given(text=mutated([SEED_JSON]) | st.lists(HOSTILE, max_size=120).map(lambda t: "{" + "".join(t)))
def test_the_article_json_reader_returns_or_raises_config_error(text: str) -> None:
    try:
        article_from(_parse_article(text, "fuzz.json"), "fuzz")
    except ConfigError as error:
        assert str(error).startswith("fuzz.json:")
    for number, line in enumerate(text.splitlines(), 1):  # the --articles form
        try:
            _load_json(line, "fuzz.jsonl", number)
        except ConfigError as error:
            assert str(error).startswith(f"fuzz.jsonl:{number}:")


FEED_BODIES = [p.read_bytes() for p in FEEDS]


@FUZZ
@given(body=mutated_bytes(FEED_BODIES),
       content_type=st.sampled_from(["application/rss+xml", "text/xml; charset=utf-8",
                                     "text/html", "application/xml; charset=latin-1", ""]))
def test_feed_parsing_of_mutated_real_feeds_returns_or_raises_feed_error(
    body: bytes, content_type: str,
) -> None:
    try:
        parsed = parse_feed(body, feed="fuzz", headers={"Content-Type": content_type},
                            language=None)
    except FeedError:
        return
    for article in parsed.articles:
        for text in (article.title, article.summary, article.content, article.url):
            assert "\x00" not in text and "\x1b" not in text
