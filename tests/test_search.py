"""`newswatch search` (issue 17): the archive searched with a rule body, newest first, with
the why; a query that is not a rule body is refused like a rule file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_backtest import ALGERIA, write_setup
from tests.test_cli import newswatch
from tests.test_delivery_e2e import TITLES


def test_search_finds_what_a_rule_body_matches_newest_first_with_the_why(
    tmp_path: Path,
) -> None:
    config, _, _ = write_setup(tmp_path)
    done = newswatch("search", 'phrases: ["accord militaire"], countries: {all: [US, MA]}',
                     "--config", str(config), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["title"] for r in results] == [TITLES[2], TITLES[1], TITLES[0]]  # newest first
    assert all(any("accord militaire" in why for why in r["why"]) for r in results)
    (tmp_path / "query.yaml").write_text('{phrases: ["accord militaire"], countries: [DZ]}\n',
                                         encoding="utf-8")
    done = newswatch("search", "query.yaml", "--config", str(config), "--limit", "1",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ALGERIA[0] in done.stdout and "why:" in done.stdout
    assert TITLES[0] not in done.stdout  # --limit 1: the newest only


def test_a_query_that_is_no_rule_body_is_one_line_per_problem(tmp_path: Path) -> None:
    config, _, _ = write_setup(tmp_path)
    done = newswatch("search", "phrase: [zircon]", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "<query>:2: error: unknown key 'phrase' (did you mean 'phrases'?)" in done.stderr
    done = newswatch("search", "phrases: [zircon", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2 and "YAML syntax error" in done.stderr
