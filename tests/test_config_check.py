"""`newswatch config check FILE`: the whole configuration, every problem as path:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newswatch.cli import main

ROOT = Path(__file__).resolve().parents[1]
RULE = """rules:
  - id: sahel
    title: Sahel
    countries: [ML, NE]
    feeds: [{feed}]
    notify: [{receiver}]
    examples:
      match: ["Le Mali et le Niger"]
"""


def write(tmp_path: Path, config: str, rule: str | None = None) -> Path:
    (tmp_path / "watchlists").mkdir(exist_ok=True)
    if rule is not None:
        (tmp_path / "watchlists" / "sahel.yaml").write_text(rule, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(config, encoding="utf-8")
    return path


GOOD = """rules: [watchlists/]
feeds:
  - {name: rfi, url: "https://www.rfi.fr/fr/afrique/rss"}
receivers:
  desk: {console: {}}
"""


@pytest.mark.parametrize("config", ["deploy/example/config.yaml", "deploy/example/cluster.yaml"])
def test_shipped_configs_are_valid(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(ROOT / config)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_valid_config_with_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD, RULE.format(feed="rfi", receiver="desk"))
    assert main(["config", "check", str(path)]) == 0
    assert "1 feed(s), 1 receiver(s), 1 rule(s)" in capsys.readouterr().out


def test_every_problem_of_config_and_rules_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = GOOD.replace("https://www", "ftp://www") + "ops: nobody\nmetrics: {prot: 1}\n"
    path = write(tmp_path, config, RULE.format(feed="rfi", receiver="desk")
                 .replace("countries: [ML, NE]", "countries: [ML, XX]"))
    assert main(["config", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert all(re.match(r"^\S+:\d+: ", line) for line in out), out
    text = "\n".join(out)
    assert "config.yaml:3: feeds[0]: url must start with http" in text
    assert "ops: unknown receiver 'nobody'" in text
    assert "metrics: unknown key 'prot' (did you mean 'port'?)" in text
    assert "sahel.yaml:4: error: " in text and "XX" in text  # rules checked as well


def test_rules_are_checked_against_the_configs_feeds_and_receivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD, RULE.format(feed="rfi", receiver="dsk"))
    assert main(["config", "check", str(path)]) == 1
    assert "sahel.yaml:6: error: notify: unknown receiver 'dsk'" in capsys.readouterr().out
    path = write(tmp_path, GOOD, RULE.format(feed="rif", receiver="desk"))
    assert main(["config", "check", str(path)]) == 1
    text = capsys.readouterr().out
    assert re.search(r"sahel\.yaml:2: error: feeds: unknown feed 'rif'.*\[sahel\]", text)


def test_missing_rule_path_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace("watchlists/", "nowhere/"))
    assert main(["config", "check", str(path)]) == 1
    assert "config.yaml:1: rules: no such file or folder 'nowhere/'" in capsys.readouterr().out
    assert main(["config", "check", str(tmp_path / "absent.yaml")]) == 1
    assert "absent.yaml: no such file" in capsys.readouterr().out


def test_failing_example_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rule = RULE.format(feed="rfi", receiver="desk").replace("Le Mali et le Niger", "Paris")
    path = write(tmp_path, GOOD, rule)
    assert main(["config", "check", str(path)]) == 1
    assert "sahel.yaml" in capsys.readouterr().out
