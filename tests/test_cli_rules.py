"""`newswatch rules check` and `newswatch rules test`, called as a user would (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newswatch.cli import main
from newswatch.cli.rules import _matches_json, article_from, matches_line
from newswatch.rules.gazetteer import known_codes
from newswatch.rules.loader import parse_rules
from newswatch.rules.matcher import Matcher
from newswatch.rules.model import RuleSet

SEED = Path(__file__).parent / "data" / "seed_fr.txt"
RULES = """
aliases:
  US: ["pays de l'oncle Sam"]
rules:
  - id: us-maghreb-military
    title: US military agreements in the Maghreb
    countries: {all: [US], any: [MA, DZ, TN]}
    phrases: ["accord militaire"]
    examples:
      match: ["Le Maroc et les États-Unis signent un accord militaire"]
      no_match: ["Maroc - États-Unis : match amical à Rabat"]
  - id: sahel
    title: Sahel
    countries: [ML, NE]
"""


def load_rules_text(text: str) -> RuleSet:
    return parse_rules([("rules.yaml", text)], known_codes=known_codes(), receivers=None)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def test_check_valid_rules_exits_0(rules_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(rules_file)]) == 0
    assert "ok: 2 rule(s), 2 example(s) checked" in capsys.readouterr().out


def test_check_reports_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n"
        "  - id: a\n    title: A\n    countrys: [MA]\n"
        "  - id: b\n    title: B\n    countries: [XX]\n"
        "  - id: c\n    title: C\n    countries: [MA]\n"
        "    examples: {match: [Rien à voir]}\n",
        encoding="utf-8",
    )
    assert main(["rules", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}:4: error: unknown key 'countrys' (did you mean 'countries'?) [a]" in out
    assert any(line.startswith(f"{bad}:7: error:") and "'XX'" in line for line in out)
    # examples are checked only once the files load; here the other errors stop first
    assert len(out) >= 2


def test_check_failing_example_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - id: c\n    title: C\n    countries: [MA]\n"
                    "    examples: {match: [Rien à voir], no_match: [Le Maroc]}\n",
                    encoding="utf-8")
    assert main(["rules", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "example should match but does not: 'Rien à voir' [c]" in out
    assert "example should not match but does: 'Le Maroc' [c]" in out


def test_check_receivers_only_with_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - {id: c, title: C, countries: [MA], notify: [desk]}\n",
                    encoding="utf-8")
    assert main(["rules", "check", str(path)]) == 0
    config = tmp_path / "config.yaml"
    config.write_text("rules: [r.yaml]\nreceivers:\n  terminal:\n    console: {}\n",
                      encoding="utf-8")
    assert main(["rules", "check", str(path), "--config", str(config)]) == 1
    assert "unknown receiver 'desk'" in capsys.readouterr().out


def test_test_plain_text_article_prints_evidence(
    rules_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "test", str(rules_file), "--article", str(SEED)]) == 0
    out = capsys.readouterr().out
    assert "✔ us-maghreb-military" in out
    assert "“accord de coopération militaire”" in out
    assert "“pays de l’oncle Sam”" in out
    assert "sahel" not in out


def test_test_json_article_with_html_is_cleaned(
    rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    article = tmp_path / "a.json"
    article.write_text(json.dumps({
        "title": "<b>Le Maroc</b> et les &Eacute;tats-Unis",
        "content": "<p>Un <em>accord</em> militaire</p> <script>x</script>",
        "language": "fr",
    }), encoding="utf-8")
    assert main(["rules", "test", str(rules_file), "--article", str(article), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["rule_id"] for m in data["matches"]] == ["us-maghreb-military"]
    texts = {e["text"] for e in data["matches"][0]["evidence"]}
    assert "États-Unis" in texts and "Maroc" in texts


def test_test_batch_mode_one_line_per_article_in_order(
    rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        json.dumps({"id": "x1", "title": "Le Mali et le Niger"}) + "\n"
        + json.dumps({"title": "Rien"}) + "\n"
        + json.dumps({"id": "x3", "content": "Les USA et le Maroc: accord militaire."}) + "\n",
        encoding="utf-8",
    )
    assert main(["rules", "test", str(rules_file), "--articles", str(batch), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == ["x1", 2, "x3"]
    assert [[m["rule_id"] for m in line["matches"]] for line in lines] == [
        ["sahel"], [], ["us-maghreb-military"]]
    assert lines[2]["matches"][0]["evidence"][0]["field"] == "content"


def test_test_unreadable_article_exits_2(
    rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["rules", "test", str(rules_file), "--article", str(bad)]) == 2
    assert f"{bad}:1: invalid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(("body", "message"), [
    ("[" * 100_000 + "]" * 100_000, "invalid JSON: nested too deeply"),
    ("9" * 5000, "invalid JSON: Exceeds the limit (4300 digits)"),
])
@pytest.mark.parametrize("option", ["--article", "--articles"])
def test_an_article_json_the_parser_refuses_is_one_line(
    rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str,
    message: str, option: str,
) -> None:
    """Issue 15: an article JSON nested 100,000 deep gave a RecursionError traceback."""
    article = tmp_path / "hostile.json"
    article.write_text('{"title": ' + body + "}\n", encoding="utf-8")
    args = ["rules", "test", str(rules_file), option, str(article)]
    assert main([*args, "--json"] if option == "--articles" else args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{article}:1: {message}") and len(err.splitlines()) == 1


def test_a_batch_line_is_the_json_of_its_matches_with_shared_evidence_encoded_once() -> None:
    rules = load_rules_text("""
rules:
  - {id: maroc-accord, title: A, countries: [MA], phrases: ["accord militaire"]}
  - {id: maroc-usa, title: B, countries: {all: [MA, US]}}
  - {id: maroc, title: C, countries: [MA]}
""")
    matcher = Matcher(rules)
    article = article_from({"title": "Le Maroc « fort »", "content": "Le Maroc et les "
                            "États-Unis signent un accord militaire\t \"ici\"."}, "1")
    found = matcher.match(article)
    shared = [e for m in found for e in m.evidence if e.clause == "country" and e.term == "MA"]
    assert len(found) == 3 and len({id(e) for e in shared}) < len(shared)  # one object, reused
    for ident in ("1", 7, 'x"é\\n', None):
        assert matches_line(ident, found) == json.dumps(
            {"id": ident, "matches": _matches_json(found)}, ensure_ascii=False)
    assert matches_line("2", []) == '{"id": "2", "matches": []}'
