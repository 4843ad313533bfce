"""The command line's conventions, run as a user would (``main([...])`` in-process, and
``python -m newswatch`` in a subprocess): global options before or after the subcommand,
the default config, ``-`` for stdin, help text on every option, ``--version`` and shell
completion. The stdin and environment a command sees are passed in as a ``Context``."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from newswatch import __version__
from newswatch.cli import build_parser, main
from newswatch.cli.options import SYSTEM_CONFIG, Context, default_config
from newswatch.core.state import Database, Decision

ROOT = Path(__file__).resolve().parents[1]
RULES = """rules:
  - id: sahel
    title: Sahel
    countries: [ML, NE]
    notify: [desk]
    examples: {match: ["Le Mali et le Niger"]}
"""
BROKEN_RULES = "rules:\n  - id: x\n    title: X\n    countrys: [MA]\n"


def context(stdin: str = "", environ: dict[str, str] | None = None) -> Context:
    """A context with no default config on disk, whatever the machine has in /etc."""
    return Context(stdin=io.StringIO(stdin), environ=environ or {}, exists=lambda _: False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text("state: ./state.db\nrules: [rules.yaml]\nreceivers:\n"
                    "  desk: {console: {}}\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ help on every action


def actions_without_help(parser: argparse.ArgumentParser) -> Iterator[str]:
    """``prog: option`` for every action of the tree (subcommands included) that has no
    help text; an action hidden with argparse.SUPPRESS counts as one without."""
    for action in parser._actions:
        if action.help in (None, "", argparse.SUPPRESS):
            yield f"{parser.prog}: {'/'.join(action.option_strings) or action.dest}"
        if isinstance(action, argparse._SubParsersAction):
            # argparse lists a command in _choices_actions only when it was given help
            described = {c.dest for c in action._choices_actions if c.help}
            for name, sub in action.choices.items():
                if name not in described:
                    yield f"{parser.prog}: command {name}"
                yield from actions_without_help(sub)


def test_every_option_positional_and_command_has_help() -> None:
    assert list(actions_without_help(build_parser())) == []


def test_the_help_walk_names_an_action_without_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands.choices["rules"]._actions[-1].choices["check"].add_argument("--planted")
    hidden = commands.add_parser("hidden")  # a command without help
    hidden.add_argument("target")
    assert list(actions_without_help(parser)) == [
        "newswatch rules check: --planted",
        "newswatch: command hidden",
        "newswatch hidden: target"]


# ------------------------------------------------------------------ global options


def leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield parser
    for action in subcommands:
        for sub in action.choices.values():
            yield from leaf_parsers(sub)


def test_every_command_accepts_the_global_options_after_it() -> None:
    leaves = list(leaf_parsers(build_parser()))
    assert len(leaves) == 18  # 8 commands, and 10 in the groups rules, silence, dlq, config
    for leaf in leaves:
        options = {o: a for a in leaf._actions for o in a.option_strings}
        for name in ("-v", "--verbose", "--config"):
            assert name in options, f"{leaf.prog} lacks {name}"
            assert options[name].default is argparse.SUPPRESS, f"{leaf.prog} {name}"


@pytest.mark.parametrize(("argv", "verbose", "config"), [
    (["status"], False, None),
    (["-v", "status"], True, None),
    (["status", "-v"], True, None),
    (["--config", "a.yaml", "status"], False, Path("a.yaml")),
    (["status", "--config", "b.yaml"], False, Path("b.yaml")),
    (["--config", "a.yaml", "status", "--config", "b.yaml"], False, Path("b.yaml")),
    (["silence", "-v", "add", "--for", "1h", "--reason", "r", "--rule", "x",
      "--config", "c.yaml"], True, Path("c.yaml")),
    (["-v", "--config", "d.yaml", "rules", "check", "rules/"], True, Path("d.yaml")),
])
def test_global_options_parse_before_or_after_the_subcommand(
    argv: list[str], verbose: bool, config: Path | None
) -> None:
    args = build_parser().parse_args(argv)
    assert (args.verbose, args.config) == (verbose, config)


def test_a_global_option_after_the_subcommand_takes_effect(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "--json", "--config", str(config)], context()) == 0
    assert capsys.readouterr().out == "[]\n"  # the config's state does not exist yet


# ------------------------------------------------------------------ the default config


def test_default_config_is_the_variable_then_the_system_file() -> None:
    def nothing(path: Path) -> bool:
        return False

    def system(path: Path) -> bool:
        return path == SYSTEM_CONFIG

    assert default_config({}, nothing) is None
    assert default_config({}, system) == Path("/etc/newswatch/config.yaml")
    assert default_config({"NEWSWATCH_CONFIG": "/srv/nw.yaml"}, system) == Path("/srv/nw.yaml")
    assert default_config({"NEWSWATCH_CONFIG": "/srv/nw.yaml"}, nothing) == Path("/srv/nw.yaml")
    assert default_config({"NEWSWATCH_CONFIG": ""}, system) == SYSTEM_CONFIG  # set but empty


@pytest.mark.parametrize(("argv", "command"), [
    (["status"], "status"), (["silence", "list"], "silence list"),
    (["backup", "--to", "x.db"], "backup"), (["config", "check"], "config check"),
    (["run", "--once"], "run"), (["dlq", "replay", "--all", "--kafka"], "dlq replay")])
def test_a_command_without_a_config_fails_in_one_line_with_exit_2(
    argv: list[str], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, context()) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"newswatch {command}: no config: give --config FILE or set "
                   "NEWSWATCH_CONFIG (/etc/newswatch/config.yaml does not exist)\n")


def test_the_config_comes_from_the_environment_when_not_given(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"NEWSWATCH_CONFIG": str(config)}
    assert main(["config", "check"], context(environ=env)) == 0
    assert capsys.readouterr().out == f"ok: {config}: 0 feed(s), 1 receiver(s), 1 rule(s)\n"
    # rules check picks it up too: notify: is then checked against its receivers
    other = tmp_path / "other.yaml"
    other.write_text(RULES.replace("[desk]", "[nobody]"), encoding="utf-8")
    assert main(["rules", "check", str(other)], context()) == 0
    capsys.readouterr()
    assert main(["rules", "check", str(other)], context(environ=env)) == 1
    assert "unknown receiver 'nobody'" in capsys.readouterr().out
    # an explicit --config wins over the variable
    env["NEWSWATCH_CONFIG"] = str(tmp_path / "absent.yaml")
    assert main(["config", "check", "--config", str(config)], context(environ=env)) == 0
    assert main(["status", "--json"], context(environ=env)) == 2
    assert capsys.readouterr().err.endswith(f"{tmp_path / 'absent.yaml'}: no such file\n")


def test_config_check_takes_the_file_positionally_or_as_config(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(config)], context()) == 0
    assert main(["config", "check", "--config", str(config)], context()) == 0
    assert main(["--config", str(config), "config", "check"], context()) == 0
    assert capsys.readouterr().out.count(f"ok: {config}:") == 3
    assert main(["config", "check", str(config), "--config", str(tmp_path / "b.yaml")],
                context()) == 2
    assert "not both" in capsys.readouterr().err


# ------------------------------------------------------------------ - is stdin


def test_rules_check_reads_one_rule_file_from_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", "-"], context(stdin=RULES)) == 0
    assert capsys.readouterr().out == "ok: 1 rule(s), 1 example(s) checked\n"
    assert main(["rules", "check", "-"], context(stdin=BROKEN_RULES)) == 1
    assert capsys.readouterr().out.splitlines() == [
        "<stdin>:2: error: a rule needs at least one of countries, phrases, people or match [x]",
        "<stdin>:4: error: unknown key 'countrys' (did you mean 'countries'?) [x]"]


def test_rules_test_reads_the_article_or_the_batch_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    text = "Sahel\nLe Mali et le Niger signent un accord.\n"
    assert main(["rules", "test", str(rules), "--article", "-", "--json"],
                context(stdin=text)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == "<stdin>"
    assert [m["rule_id"] for m in data["matches"]] == ["sahel"]
    batch = json.dumps({"id": "a", "title": "Le Niger"}) + "\n" + json.dumps({"id": "b"}) + "\n"
    assert main(["rules", "test", str(rules), "--articles", "-", "--json"],
                context(stdin=batch)) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["id"], len(line["matches"])) for line in lines] == [("a", 1), ("b", 0)]
    # the rules from stdin, the article from a file
    article = tmp_path / "a.txt"
    article.write_text(text, encoding="utf-8")
    assert main(["rules", "test", "-", "--article", str(article)], context(stdin=RULES)) == 0
    assert capsys.readouterr().out.startswith("✔ sahel — Sahel [")


def test_stdin_can_feed_only_one_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    assert main(["rules", "test", "-", "--article", "-"], context(stdin=RULES)) == 2
    assert capsys.readouterr().err == ("newswatch rules test: only one input can be read "
                                       "from stdin (-)\n")
    assert main(["rules", "check", "-", "--config", "-"], context(stdin=RULES)) == 2


def test_config_check_reads_the_config_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    text = f"rules: ['{tmp_path / 'rules.yaml'}']\nreceivers:\n  desk: {{console: {{}}}}\n"
    for argv in (["config", "check", "-"], ["config", "check", "--config", "-"]):
        assert main(argv, context(stdin=text)) == 0
        assert capsys.readouterr().out == "ok: <stdin>: 0 feed(s), 1 receiver(s), 1 rule(s)\n"
    assert main(["config", "check", "-"], context(stdin="rules: [absent.yaml]\n")) == 1
    assert capsys.readouterr().out.startswith("<stdin>:1: rules: no such file or folder")


def test_any_command_reads_its_config_from_stdin(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (config.read_text(encoding="utf-8").replace("./state.db", str(config.parent / "s.db"))
            .replace("rules.yaml", str(config.parent / "rules.yaml")))
    assert main(["silence", "list", "--config", "-"], context(stdin=text)) == 0
    assert capsys.readouterr().out == "no active silences\n"
    assert (config.parent / "s.db").exists()


# ------------------------------------------------------------------ version, secrets


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"newswatch {__version__}\n"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_run_without_the_slack_token_in_its_environment_fails_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("state: ./state.db\nrules: [rules.yaml]\nreceivers:\n"
                      "  desk: {slack: {channel: '#desk'}}\n", encoding="utf-8")
    assert main(["run", "--once", "--config", str(config)], context()) == 2
    assert "the Slack token must be in the SLACK_BOT_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "state.db").exists()  # nothing started


# ------------------------------------------------------------------ completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_completion_prints_a_script_that_knows_every_command(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for command in ("run", "status", "alerts", "rules", "poll", "worker", "silence", "dlq",
                    "config", "backup", "completion"):
        assert command in script
    if shell != "tcsh":  # shtab's tcsh script completes commands and files, not options
        assert "--articles" in script and "--reason" in script


def test_bash_completion_completes_commands_options_and_files(tmp_path: Path) -> None:
    script = tmp_path / "newswatch.bash"
    script.write_text(subprocess.run(
        [sys.executable, "-m", "newswatch", "completion", "bash"], capture_output=True,
        text=True, check=True).stdout, encoding="utf-8")
    (tmp_path / "watch.yaml").write_text("", encoding="utf-8")

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        run = subprocess.run(
            ["bash", "-c", f"source {script}; COMP_WORDS=(newswatch {line}); "
                           f"COMP_CWORD={len(words)}; _shtab_newswatch; "
                           'printf "%s\\n" "${COMPREPLY[@]}"'],
            capture_output=True, text=True, cwd=tmp_path, check=True)
        return run.stdout.split()

    assert complete("sil") == ["silence"]
    assert complete("dlq", "replay", "--a") == ["--all"]
    assert complete("status", "--config", "wat") == ["watch.yaml"]


# ------------------------------------------------------------------ python -m newswatch


def newswatch(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NEWSWATCH_CONFIG"}
    return subprocess.run([sys.executable, "-m", "newswatch", *args], input=stdin,
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def test_python_m_newswatch_prints_its_version(tmp_path: Path) -> None:
    done = newswatch("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"newswatch {__version__}\n")


def test_python_m_newswatch_from_a_folder_with_rules_monitor_streams_folders(
    tmp_path: Path
) -> None:
    """Folders named like the card's packages hold YAML here; they must not shadow them."""
    for name in ("rules", "monitor", "streams"):
        (tmp_path / name).mkdir()
    (tmp_path / "rules" / "sahel.yaml").write_text(RULES, encoding="utf-8")
    done = newswatch("rules", "check", "rules/", "-v", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "ok: 1 rule(s), 1 example(s) checked\n")
    # a config from stdin: its relative paths resolve against the current directory
    done = newswatch("config", "check", "-", cwd=tmp_path,
                     stdin="rules: [rules]\nreceivers: {desk: {console: {}}}\n")
    assert (done.returncode, done.stdout) == (
        0, "ok: <stdin>: 0 feed(s), 1 receiver(s), 1 rule(s)\n")


@pytest.mark.parametrize("limit", ["99999999999999999999999", "0", "-3", "ten"])
def test_alerts_limit_out_of_range_is_one_line_and_exit_2(tmp_path: Path, limit: str) -> None:
    """Issue 15: with a decision in the state, a huge ``--limit`` reached SQLite and raised
    OverflowError with a traceback."""
    db = Database.open(tmp_path / "state.db")
    db.log_decision(Decision(at=1.0, rule_id="r", article="a", title="t", receiver="desk",
                             verdict="send", reason="new story", result="sent"))
    db.close()
    config = tmp_path / "config.yaml"
    config.write_text("state: ./state.db\nrules: []\n", encoding="utf-8")
    done = newswatch("alerts", "--config", str(config), "--limit", limit, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "argument --limit:" in done.stderr.splitlines()[-1]
    assert newswatch("alerts", "--config", str(config), "--limit", "1",
                     cwd=tmp_path).returncode == 0


FORGED = "Maroc\n2026-12-02 16:30:00,000 ERROR newswatch.rules: forged \x1b]0;PWNED\x07\x1b[2J"


def test_alerts_prints_one_line_per_decision_whatever_the_title_holds(tmp_path: Path) -> None:
    """Issue 15: a feed title with a line break split an ``alerts`` row (and forged a log
    line); escape sequences reached the terminal."""
    db = Database.open(tmp_path / "state.db")
    db.log_decision(Decision(at=1.0, rule_id="r", article="a", title=FORGED, receiver="desk",
                             verdict="send", reason="new story", result="sent"))
    db.close()
    config = tmp_path / "config.yaml"
    config.write_text("state: ./state.db\nrules: []\n", encoding="utf-8")
    done = newswatch("alerts", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 1
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "Maroc\\n2026-12-02" in done.stdout  # visible, escaped


def test_a_symlink_loop_in_rules_is_one_line_in_every_command(tmp_path: Path) -> None:
    """Issue 15 (found by tests/hostile_ab.py): ``config check`` printed the loop, then a
    traceback from the best-effort pass over a broken config's rule paths."""
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    config = tmp_path / "config.yaml"
    config.write_text("state: ./state.db\nrules: [loop-a]\nfeeds: []\n", encoding="utf-8")
    for command in (("config", "check", str(config)), ("run", "--once", "--config", str(config)),
                    ("rules", "check", "loop-a")):
        done = newswatch(*command, cwd=tmp_path)
        assert done.returncode in (1, 2), (command, done.stdout, done.stderr)  # 1: check
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert "symlink loop" in (done.stdout + done.stderr).lower(), (command, done.stderr)
        assert "no such file" not in done.stdout + done.stderr, (command, done.stdout)


def test_backup_of_a_state_it_cannot_read_or_to_a_place_it_cannot_write_is_one_line(
    tmp_path: Path,
) -> None:
    """Issue 15 (found by tests/hostile_ab.py): ``backup`` gave tracebacks and left an
    empty copy behind, which then blocked the next attempt."""
    config = tmp_path / "config.yaml"
    config.write_text("state: ./state.db\nrules: []\n", encoding="utf-8")
    state = tmp_path / "state.db"
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    for content, expected in ((b"", "not a newswatch state file"),
                              (b"SQLite format 3\x00" + bytes(range(256)) * 8, "state.db"),
                              (os.urandom(8192), "state.db")):
        state.write_bytes(content)
        target = tmp_path / "copy.db"
        done = newswatch("backup", "--config", str(config), "--to", str(target), cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not target.exists()
    state.unlink()
    db = Database.open(state)
    db.close()
    for target_text in ("/proc/newswatch/copy.db", "loop-a/copy.db"):
        done = newswatch("backup", "--config", str(config), "--to", target_text, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "cannot back up" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_state_path_that_cannot_work_is_one_line_never_a_traceback(tmp_path: Path) -> None:
    """Issue 15: a symlink loop in ``state:``, or a state on a file system where nothing
    can be written, gave tracebacks; ``config check`` passed such a config."""
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    cases = {"loop-a/state.db": "cannot resolve", "/proc/newswatch/state.db": "cannot"}
    for state, expected in cases.items():
        config = tmp_path / "config.yaml"
        config.write_text(f"state: {state}\nrules: []\nfeeds: []\n", encoding="utf-8")
        for command in (("run", "--once"), ("status",), ("alerts",), ("config", "check")):
            done = newswatch(*command, "--config", str(config), cwd=tmp_path)
            assert "Traceback" not in done.stderr, (state, command, done.stderr)
            if command[0] in ("status", "alerts") and state.startswith("/proc"):
                continue  # nothing there yet: an empty status, no alerts
            assert done.returncode in (1, 2), (state, command, done.stdout, done.stderr)
            assert expected in done.stdout + done.stderr, (state, command)
