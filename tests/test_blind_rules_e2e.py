"""Blind-rule warnings through the real `newswatch run --once` and `newswatch status`: a
rule whose only feed fails is announced blind once (on the console ops receiver) and
listed by `status`; when the feed answers again, one recovery, and `status` lists it no
more."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.feed_server import FeedServer, rss
from tests.test_end_to_end import newswatch

RULES = """\
rules:
  - id: flint-watch
    title: Flint watch
    phrases: [flint]
    feeds: [flaky]
    notify: [ops]
  - id: other-watch
    title: Other watch
    phrases: [flint]
    notify: [ops]
"""


async def test_a_rule_whose_feed_fails_is_told_blind_once_and_recovered_once(
    tmp_path: Path
) -> None:
    async with FeedServer() as feeds:
        (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
        config = tmp_path / "config.yaml"
        config.write_text(
            f"state: ./state.db\nrules: [rules.yaml]\nfeeds:\n"
            f"  - name: flaky\n    url: {feeds.url('/flaky.xml')}\n"
            f"ops: ops\nreceivers:\n  ops:\n    console: {{}}\n"
            f"fetch:\n  allow: ['{feeds.allow}']\n", encoding="utf-8")
        outs = [await newswatch("run", "--once", "--config", str(config)) for _ in range(4)]
        printed = "".join(out for _, out, _ in outs)
        assert printed.count("Rule flint-watch (Flint watch) is blind") == 1, printed
        assert "1 of 1 feeds it depends on (its feeds) are down: flaky (failing)" in printed
        assert "other-watch" not in printed  # nothing known of the feeds it reads
        _, status, _ = await newswatch("status", "--config", str(config))
        assert "rule flint-watch is BLIND since" in status, status
        assert "flaky (failing)" in status
        feeds.serve("/flaky.xml", rss([{"title": "nothing to see", "guid": "n1",
                                        "link": "https://news.example/n1"}]))
        outs = [await newswatch("run", "--once", "--config", str(config)) for _ in range(2)]
        printed = "".join(out for _, out, _ in outs)
        assert printed.count("Rule flint-watch (Flint watch) sees again") == 1, printed
        _, status, _ = await newswatch("status", "--config", str(config))
        assert "BLIND" not in status, status
