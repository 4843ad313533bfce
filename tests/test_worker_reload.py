"""The Kafka worker hot-reloads its rules (a watcher thread), like `newswatch run`."""

from __future__ import annotations

import time
from pathlib import Path

from newswatch.cli.kafka import watch_rules_in_thread
from newswatch.core.config import load_config
from newswatch.rules.matcher import Matcher
from newswatch.streams.reload import RuleReloader, compile_rules

RULE = "rules:\n  - id: {id}\n    title: T\n    countries: [ML]\n"


def wait_for(predicate: object, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False


def test_worker_rules_reload_and_a_broken_edit_keeps_the_last_good_rules(tmp_path: Path) -> None:
    (tmp_path / "watchlists").mkdir()
    rules = tmp_path / "watchlists" / "r.yaml"
    rules.write_text(RULE.format(id="first"), encoding="utf-8")
    (tmp_path / "config.yaml").write_text("rules: [watchlists/]\n", encoding="utf-8")
    config = load_config(tmp_path / "config.yaml")
    def build() -> Matcher:
        return compile_rules(config.rules, None)

    reloader = watch_rules_in_thread(RuleReloader(config.rules, build(), build=build, status={}))
    assert [r.id for r in reloader.current.rules] == ["first"]
    rules.write_text(RULE.format(id="second"), encoding="utf-8")
    assert wait_for(lambda: [r.id for r in reloader.current.rules] == ["second"])
    rules.write_text("rules:\n  - id: third\n    titel: T\n", encoding="utf-8")
    time.sleep(2.5)  # quiet period passed: the broken edit was looked at and rejected
    assert [r.id for r in reloader.current.rules] == ["second"]
