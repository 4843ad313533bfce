"""docs/runbook.md: every `newswatch` command it shows parses with the real CLI and is run
by a named test (the mapping below); `newswatch backup` is tested here."""

from __future__ import annotations

import ast
import re
import shlex
import sqlite3
from pathlib import Path

import pytest

from newswatch.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "docs" / "runbook.md"

KAFKA_DLQ_TEST = ("tests/test_kafka_dlq.py::"
                  "test_kafka_dead_letters_are_listed_replayed_once_and_poison_republished")
# (command words and options used) -> tests that run that command
EXERCISED: dict[tuple[str, ...], list[str]] = {
    ("config", "check"): [
        "tests/test_config_check.py::test_every_problem_of_config_and_rules_is_listed",
        "tests/test_config_check.py::test_shipped_configs_are_valid"],
    ("status", "--config"): [
        "tests/test_status_cli.py::test_table_is_worst_first_with_a_summary_and_exit_1"],
    ("status", "--config", "--json"): [
        "tests/test_status_cli.py::test_json_has_the_contract_fields"],
    ("status", "--config", "--feed"): [
        "tests/test_status_cli.py::test_feed_option_lists_its_recent_fetches"],
    ("status", "--config", "--json", "--kafka"): [
        "tests/test_kafka_runtime.py::test_seed_article_goes_poller_kafka_worker_to_one_slack_alert"],
    ("alerts", "--config", "--limit"): [
        "tests/test_delivery_e2e.py::test_seed_in_five_feeds_is_one_alert_four_replies_count_five_one_email"],
    ("rules", "check", "--config"): [
        "tests/test_cli_rules.py::test_check_receivers_only_with_a_config"],
    ("rules", "test", "--article"): [
        "tests/test_cli_rules.py::test_test_plain_text_article_prints_evidence"],
    ("dlq", "list", "--config"): [
        "tests/test_delivery_e2e.py::test_dead_letters_are_listed_and_replayed_once_however_often_replay_runs"],
    ("dlq", "replay", "--config", "--id"): [
        "tests/test_delivery_e2e.py::test_dead_letters_are_listed_and_replayed_once_however_often_replay_runs"],
    ("dlq", "replay", "--all", "--config"): [
        "tests/test_delivery_e2e.py::test_dead_letters_are_listed_and_replayed_once_however_often_replay_runs"],
    ("dlq", "list", "--config", "--json", "--kafka"): [KAFKA_DLQ_TEST],
    ("dlq", "replay", "--all", "--config", "--kafka"): [KAFKA_DLQ_TEST],
    ("dlq", "replay", "--config", "--id", "--kafka"): [KAFKA_DLQ_TEST],
    ("silence", "add", "--config", "--country", "--for", "--reason", "--rule"): [
        "tests/test_delivery_e2e.py::test_a_silence_added_from_the_cli_holds_until_expired"],
    ("silence", "list", "--config"): [
        "tests/test_delivery_e2e.py::test_a_silence_added_from_the_cli_holds_until_expired"],
    ("silence", "expire", "--config"): [
        "tests/test_delivery_e2e.py::test_a_silence_added_from_the_cli_holds_until_expired"],
    ("backup", "--config", "--to"): [
        "tests/test_runbook.py::test_backup_copies_the_state_consistently"],
}


def runbook_commands() -> list[list[str]]:
    """Argument lists of every `newswatch ...` line inside the runbook's sh blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), re.S)
    out = []
    for block in blocks:
        for line in block.splitlines():
            found = re.search(r"(?:^|[\s/])newswatch ((?:status|alerts|rules|config|dlq|silence|"
                              r"backup|run|poll|worker)\b.*)$", line)
            if found:
                out.append(shlex.split(found.group(1)))
    return out


def signature(args: list[str]) -> tuple[str, ...]:
    words = [a for a in args[:2] if not a.startswith("-") and not a.startswith("/")]
    if words and words[0] in ("status", "alerts", "backup"):
        words = words[:1]
    options = sorted({a for a in args if a.startswith("--")})
    return (*words, *options)


def test_runbook_shows_the_commands_ops_need() -> None:
    shown = {signature(args) for args in runbook_commands()}
    for needed in [("status", "--config"), ("dlq", "replay", "--all", "--config"),
                   ("silence", "add", "--config", "--country", "--for", "--reason", "--rule"),
                   ("backup", "--config", "--to"), ("config", "check")]:
        assert needed in shown


def test_every_runbook_command_parses_and_is_exercised_by_a_test() -> None:
    commands = runbook_commands()
    assert len(commands) >= 15
    for args in commands:
        build_parser().parse_args(args)  # argparse exits 2 on anything the CLI does not accept
        sig = signature(args)
        assert sig in EXERCISED, f"runbook command {args} is not mapped to a test"
    for sig, tests in EXERCISED.items():
        for test in tests:
            path, name = test.split("::")
            source = (ROOT / path).read_text(encoding="utf-8")
            functions = {n.name for n in ast.walk(ast.parse(source))
                         if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
            assert name in functions, test
            for word in sig:
                if word not in ("--config",):
                    assert f'"{word}"' in source, f"{test} never passes {word}"


def test_backup_copies_the_state_consistently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from newswatch.core.state import Database

    (tmp_path / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("state: ./state.db\nrules: [rules.yaml]\n", encoding="utf-8")
    target = tmp_path / "backup.db"
    assert main(["backup", "--config", str(config), "--to", str(target)]) == 2  # no state yet
    assert "no state" in capsys.readouterr().err
    db = Database.open(tmp_path / "state.db")  # open and writing, as under `run`
    try:
        db.mapping("meta")["probe"] = {"written": True}
        assert main(["backup", "--config", str(config), "--to", str(target)]) == 0
        assert "backed up" in capsys.readouterr().out
        copy = Database.open(target)
        try:
            assert copy.mapping("meta")["probe"] == {"written": True}
        finally:
            copy.close()
        with sqlite3.connect(target) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert main(["backup", "--config", str(config), "--to", str(target)]) == 2  # no overwrite
        assert "exists" in capsys.readouterr().err
    finally:
        db.close()
