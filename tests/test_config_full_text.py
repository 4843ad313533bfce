"""Config keys of full text: ``feeds[].full_text``, ``feeds[].full_text_min_words`` and the
``pages`` section, read strictly (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

from newswatch.core.config import FeedConfig, PagesConfig, parse_config
from tests.test_config_polling import config, errors


def test_modes_thresholds_and_defaults(tmp_path: Path) -> None:
    parsed = parse_config(config(tmp_path, (
        "pages: {min_words: 80, deadline: 10s, host_delay: 2s}\n"
        "feeds:\n"
        "  - {name: a, url: 'https://a.example/rss'}\n"
        "  - {name: b, url: 'https://b.example/rss', full_text: always}\n"
        "  - {name: c, url: 'https://c.example/rss', full_text: never}\n"
        "  - {name: d, url: 'https://d.example/rss', full_text_min_words: 25}\n")),
        "c.yaml", base=tmp_path)
    a, b, c, d = parsed.feeds
    assert parsed.pages == PagesConfig(min_words=80, deadline=10.0, host_delay=2.0)
    assert (a.full_text, a.full_text_min_words) == ("auto", 80)
    assert (a.wants_page(79), a.wants_page(80)) == (True, False)
    assert b.wants_page(10_000) and not c.wants_page(0)
    assert (d.wants_page(24), d.wants_page(25)) == (True, False)
    default = FeedConfig("e", "https://e.example/")
    assert (default.full_text, default.full_text_min_words) == ("auto", 60)
    assert parse_config(config(tmp_path, ""), "c.yaml", base=tmp_path).pages == PagesConfig()


def test_wrong_values_and_unknown_keys_are_reported_with_their_line(tmp_path: Path) -> None:
    assert errors(tmp_path, (
        "feeds:\n"
        "  - name: a\n"
        "    url: https://a.example/rss\n"
        "    full_text: allways\n"
        "  - name: b\n"
        "    url: https://b.example/rss\n"
        "    full_text: never\n"
        "    full_text_min_words: 30\n"
        "  - name: c\n"
        "    url: https://c.example/rss\n"
        "    fulltext: auto\n"
        "pages:\n"
        "  deadline: 0s\n"
        "  delay: 1s\n")) == [
        "c.yaml:15: pages: unknown key 'delay' (did you mean 'host_delay'?)",
        "c.yaml:14: pages: deadline must be at least 1s",
        "c.yaml:5: feeds[0]: full_text must be one of auto, always, never, got 'allways' "
        "(did you mean 'always'?)",
        "c.yaml:9: feeds[1]: full_text_min_words applies only to full_text: auto",
        "c.yaml:12: feeds[2]: unknown key 'fulltext' (did you mean 'full_text'?)",
    ]


def test_page_retry_delays_are_read_and_checked(tmp_path: Path) -> None:
    def pages(text: str) -> PagesConfig:
        return parse_config(config(tmp_path, text), "c.yaml", base=tmp_path).pages

    assert pages("").retry == (300.0, 1800.0, 7200.0)
    assert pages("pages: {retry: [1m, 1h]}\n").retry == (60.0, 3600.0)
    assert pages("pages: {retry: []}\n").retry == ()
    assert errors(tmp_path, "pages:\n  retry: 5m\n") == [
        "c.yaml:3: pages: 'retry' must be a list of durations, got text"]
    (bad,) = errors(tmp_path, "pages:\n  retry:\n    - 5m\n    - soon\n")
    assert bad.startswith("c.yaml:5: pages: 'retry[1]': ") and "soon" in bad
    assert errors(tmp_path, "pages:\n  retry: [0s]\n") == [
        "c.yaml:3: pages: every retry delay must be at least 1s"]
