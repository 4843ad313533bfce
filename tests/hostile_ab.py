"""Run by hand, not collected by pytest: issue 15's broken inputs against an earlier commit
and the working tree, through the command line only.

    python -m tests.hostile_ab [REV]        (default REV: 45dfc2a, the commit the issue tried)
    python -m tests.hostile_ab --only 'state' --show    (some cases, with their whole output)

Issue 15 ("Hostile and clumsy input, round two") lists inputs that gave a traceback, drove
the terminal, hung or were accepted although they can never work. This script builds each
of them in a temporary folder (nothing is read from ../shared), runs the ``newswatch``
command of REV (a ``git worktree`` of it, its entry point read from its pyproject.toml) and
of the working tree (``python -m newswatch``) on it, each with a timeout, and classifies
what came back:

- ``traceback``: stderr holds "Traceback" (JSON logs included);
- ``hang``: the command did not finish within its timeout;
- ``raw escape``: ESC or BEL reached stdout or stderr where escapes were fed;
- ``accepted``: exit 0 where a refusal was expected;
- ``clear refusal``: exit 1 or 2 (docs/cli.md), a message that names what was refused,
  no traceback; ``slow refusal`` when that took longer than the case allows (10 s for the
  big rule files, process start included, on a busy machine), ``unclear refusal`` when no
  line names it;
- ``ok``: the expected clean behaviour of a case that is not a refusal (a row not split,
  one rejection and one ops notice for a hot-reloaded file, the event loop never stalled
  1 s or more, a rule matched);
- anything else names what went wrong: ``split row``, ``forged log line``, ``tried 7x``,
  ``loop blocked 10 s``, ``used silently``, ``filler not ignored``, ...

Prints a table (case, REV's result, the working tree's, seconds for both: the command's
wall time, or for a hot reload the time from the file dropped to its rejection logged),
then the first line of each message and what a scenario measured, and exits 1 when a case
is neither ``clear refusal`` nor ``ok`` on the working tree.

Cases of item "2+" are not in the issue's list of what broke but under its must-have "no
traceback reaches a user from any command on any input": ``backup`` on the same inputs.

What is not built: a read-only file system (needs a mount; a state under /proc stands in
for an unwritable one) and a truly full file system (needs a mount too). The failed commit
of item 4 is built with RLIMIT_FSIZE instead: no file of the process may grow past a
size the write-ahead log reaches after the first alert of the same run unlimited, so
SQLite's writes fail mid-delivery with EFBIG ("disk I/O error", where a full disk gives
"database or disk is full"), and a second run without the limit shows whether an alert was
lost or sent twice. Item 6 (thread replies) and the fuzz suite are not command-line cases.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from tests.fakes.feed_server import rss
from tests.fakes.smtp_sink import SMTPSink

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REV = "45dfc2a"
TIMEOUT = 120.0
HOSTILE_REASON = "\x1b]0;PWNED\x07\x1b[31mRED \x1b[2J"  # status 500, this reason phrase
FORGED = "2026-12-02 16:30:00,000 ERROR newswatch.rules: forged"
FORGED_TITLE = f"Accord militaire avec le Maroc\n{FORGED}"
RULE = ("rules:\n  - id: maroc\n    title: Maroc\n    severity: high\n    countries: [MA]\n"
        "    notify: [desk]\n")
GOOD_VERDICTS = ("clear refusal", "ok")


# ---------------------------------------------------------------------------- revisions


@dataclass(frozen=True)
class Revision:
    """How to run one revision's ``newswatch`` command."""

    label: str
    argv: tuple[str, ...]
    pythonpath: Path


def working_tree() -> Revision:
    return Revision("working tree", (sys.executable, "-m", "newswatch"), ROOT)


def revision_in(tree: Path, label: str) -> Revision:
    """The command of a checked-out revision: its ``[project.scripts] newswatch`` entry
    point (``monitor.cli:main`` at 45dfc2a), called as the installed script would."""
    project = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, function = project["project"]["scripts"]["newswatch"].partition(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    return Revision(label, (sys.executable, "-c", code), tree)


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached git worktree of ``rev`` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="hostile-ab-tree-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT,
                       check=True, capture_output=True, text=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False, capture_output=True)


def environment(rev: Revision, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSWATCH_", "SLACK_", "SMTP_", "KAFKA_"))}
    env.update(PYTHONPATH=str(rev.pythonpath), NEWSWATCH_CACHE_DIR="off",
               NEWSWATCH_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    code: int | None  # None: timed out (killed)
    stdout: str
    stderr: str
    seconds: float
    note: str = ""  # what a scenario measured besides the output
    folder: str = ""  # where it ran, left out of the messages printed
    facts: dict[str, float] = field(default_factory=dict)  # what the judge weighs


def log_messages(stderr: str) -> list[tuple[str, str]]:
    """(level, message) of the JSON log lines."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "message" in entry:
                found.append((str(entry.get("level", "")), str(entry["message"])))
    return found


CHAINED = ("During handling of the above exception", "The above exception was the direct")


def traceback_tail(stderr: str) -> str | None:
    """The exception line that ends the first traceback printed (the last one of a chain
    of them) or logged (JSON)."""
    lines = stderr.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("Traceback"):
            heads = [t for t in lines[n:] if t and not t.startswith((" ", "\t"))]
            last = 0  # the last traceback of the chain that starts here
            for k, head in enumerate(heads):
                if head.startswith("Traceback") and (k == 0 or heads[k - 1].startswith(CHAINED)):
                    last = k
            after = [t for t in heads[last + 1:] if not t.startswith(CHAINED)]
            return after[0] if after else line
        if line.startswith("{") and "Traceback" in line:
            with suppress(json.JSONDecodeError):
                error = str(json.loads(line).get("error", ""))
                rest = [t for t in error.splitlines() if t and not t.startswith(" ")]
                return f"{json.loads(line).get('message')}: {rest[-1] if rest else ''}"
    return None


def plain_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("{")]


def message(out: Outcome, quote: str | None = None) -> str:
    """The first line of what the command said: the first line holding ``quote`` when
    given (plain stderr, stdout, then logged messages), else plain stderr (where errors
    go), then the last error logged, then stdout, then the last line logged."""
    if (tail := traceback_tail(out.stderr)) is not None:
        return f"Traceback … {tail}"
    logged = log_messages(out.stderr)
    if quote is not None:
        said = "\n".join(m for _, m in logged)
        for line in "\n".join((out.stderr, out.stdout, said)).splitlines():
            if quote in line and not line.startswith("{"):
                return line.strip()
    plain = plain_lines(out.stderr)
    if plain:
        return plain[0]
    errors = [m for level, m in logged if level in ("error", "critical")]
    if errors:
        return errors[-1].splitlines()[0] if errors[-1] else ""
    lines = plain_lines(out.stdout)
    if lines:
        return lines[0]
    return f"(last log line) {logged[-1][1]}" if logged else ""


CARETS = {"\n": "⏎", "\r": "^M", "\t": " "}


def shown(text: str, width: int | None = 110) -> str:
    """Text made safe to print here: control characters in caret notation (ESC is ^[,
    a line break ⏎), so a raw escape and an escaped one (the text ``\\x1b``) differ."""
    safe = "".join(CARETS.get(ch, f"^{chr(ord(ch) + 64)}") if ord(ch) < 32 else
                   "^?" if ch == "\x7f" else ch for ch in text)
    if width is None or len(safe) <= width:
        return safe
    return safe[:width - 1] + "…"


# ---------------------------------------------------------------------------- feeds


@dataclass
class Route:
    status: int
    reason: str
    body: bytes


class FeedServer:
    """A loopback HTTP server whose answers the cases set: body, status and a raw reason
    phrase (http.server writes it as given)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                route = routes.get(self.path, Route(404, "Not Found", b""))
                self.send_response(route.status, route.reason)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.allow = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def item(n: int, title: str, description: str = "") -> dict[str, str]:
    return {"title": title, "link": f"https://news.example/{n}", "guid": f"hostile-ab-{n}",
            "description": description or title,
            "pubDate": formatdate(time.time() - 60 * n, usegmt=True)}


WORDS = ("drones blindés frontière patrouille Sahara radar marine côtière exercice naval "
         "hélicoptères formation officiers satellite observation renseignement logistique "
         "munitions entrepôt cyberdéfense réseau commandement base aérienne Kénitra "
         "Agadir missiles sol-air batterie transport tactique avions ravitaillement "
         "ingénieurs déminage hôpital campagne équipement nocturne vision communication "
         "chiffrée simulation tir")


def distinct_titles(count: int) -> list[str]:
    """Titles that share nothing but the country, so each is its own story."""
    words = WORDS.split()
    size = len(words) // count
    return [f"Maroc : {' '.join(words[n * size:(n + 1) * size])}" for n in range(count)]


# ---------------------------------------------------------------------------- cases


@dataclass
class Ctx:
    """One case on one revision: a fresh folder, the feed server, the command."""

    rev: Revision
    folder: Path
    feeds: FeedServer
    seeds: dict[str, Path]

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def cli(self, *args: str, timeout: float = TIMEOUT, env: dict[str, str] | None = None,
            fsize: int | None = None) -> Outcome:
        def limit() -> None:
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        started = time.monotonic()
        proc = subprocess.Popen([*self.rev.argv, *args], cwd=self.folder,
                                env=environment(self.rev, env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True,
                                preexec_fn=limit if fsize is not None else None)
        try:
            out, err = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            code = None
        return Outcome(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                       time.monotonic() - started)

    def config(self, rules: str = "rules.yaml", *, state: str = "./state.db",
               feeds: str = "[]", receivers: str = "  desk: {console: {}}",
               extra: str = "") -> Path:
        return self.write("config.yaml", f"state: {state}\nrules: [{rules}]\nfeeds: {feeds}\n"
                                         f"receivers:\n{receivers}\nops: desk\n"
                                         f"fetch:\n  allow: ['{self.feeds.allow}']\n{extra}")

    def seeded(self) -> Path:
        """This folder holding the seeded state of this revision (see ``seed``)."""
        source = self.seeds[self.rev.label]
        for entry in source.iterdir():
            if entry.is_file():
                shutil.copy2(entry, self.folder / entry.name)
        return self.folder / "config.yaml"


SEED_FEEDS = "\n  - {name: news, url: NEWS}\n  - {name: hostile, url: HOSTILE}"


def seed(ctx: Ctx) -> Outcome:
    """``run --once`` with text logs, as on a terminal: a feed whose item title carries a
    line break and a forged log line, and a feed answering 500 with escapes in its reason
    phrase. Leaves a state with one decision and one failing feed; its own output is the
    text-log case."""
    ctx.feeds.routes["/news.xml"] = Route(200, "OK", rss([item(1, FORGED_TITLE)]))
    ctx.feeds.routes["/hostile.xml"] = Route(500, HOSTILE_REASON, b"")
    ctx.write("rules.yaml", RULE)
    feeds = (SEED_FEEDS.replace("NEWS", ctx.feeds.url("/news.xml"))
             .replace("HOSTILE", ctx.feeds.url("/hostile.xml")))
    config = ctx.config(feeds=feeds)
    return ctx.cli("run", "--once", "--config", str(config),
                   env={"NEWSWATCH_LOG_FORMAT": "text"})


@dataclass(frozen=True)
class Case:
    name: str
    item: str
    build: Callable[[Ctx], Outcome]
    refusal: bool = True  # else the clean answer is judged by ``judge``
    mention: str | None = None  # a refusal's message must name this
    escapes: bool = False
    judge: Callable[[Outcome], str | None] | None = None
    within: float | None = None  # a refusal slower than this is a slow one
    quote: str | None = None  # the line to quote: the first one holding this


def classify(case: Case, out: Outcome) -> str:
    if out.code is None:
        return "hang"
    if "Traceback" in out.stderr:
        return "traceback"
    wrong = []
    if case.escapes and any(c in out.stdout + out.stderr for c in "\x1b\x07"):
        wrong.append("raw escape")
    if case.judge is not None and (verdict := case.judge(out)):
        wrong.append(verdict)
    if wrong:
        return " + ".join(wrong)
    if not case.refusal:
        return "ok"
    if out.code == 0:
        return "accepted"
    if out.code not in (1, 2):
        return f"exit {out.code}"
    if not message(out):
        return "silent refusal"
    if case.mention is not None and case.mention not in message(out, case.mention):
        return "unclear refusal"
    if case.within is not None and out.seconds > case.within:
        return "slow refusal"
    return "clear refusal"


# -- item 1: terminal injection, forged lines


def status_of_hostile_feed(ctx: Ctx) -> Outcome:
    return ctx.cli("status", "--config", str(ctx.seeded()), "--feed", "hostile")


def status_table(ctx: Ctx) -> Outcome:
    return ctx.cli("status", "--config", str(ctx.seeded()))


def error_shown(out: Outcome) -> str | None:
    return None if "PWNED" in out.stdout else "error not shown"


def seed_run(ctx: Ctx) -> Outcome:
    return seed(ctx)


def text_log_judge(out: Outcome) -> str | None:
    if any(line.startswith(FORGED[:19]) for line in out.stderr.splitlines()):
        return "forged log line"
    return None


def alerts_of_forged_title(ctx: Ctx) -> Outcome:
    return ctx.cli("alerts", "--config", str(ctx.seeded()))


def alerts_judge(out: Outcome) -> str | None:
    if "Maroc" not in out.stdout:
        return "no decision to show"
    if any(line.startswith(FORGED[:19]) for line in out.stdout.splitlines()):
        return "split row"
    return None


# -- item 2: tracebacks instead of path:line: message

DEEP = "rules:\n  - id: r1\n    title: T\n    phrases: " + "[" * 2000 + "]" * 2000 + "\n"
NUL = "rules:\n  - id: r1\n    title: T\x00\n    phrases: [x]\n"


def rules_check(name: str, text: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        return ctx.cli("rules", "check", str(ctx.write(name, text)))
    return build


def config_check_of_rules(name: str, text: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        ctx.write(name, text)
        return ctx.cli("config", "check", str(ctx.config(name)))
    return build


def run_once_of_rules(name: str, text: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        ctx.write(name, text)
        return ctx.cli("run", "--once", "--config", str(ctx.config(name)))
    return build


def deep_config(ctx: Ctx) -> Outcome:
    ctx.write("rules.yaml", RULE)
    path = ctx.write("config.yaml", "rules: [rules.yaml]\nsilences: " + "[" * 2000
                     + "]" * 2000 + "\n")
    return ctx.cli("config", "check", str(path))


def loop(ctx: Ctx) -> None:
    (ctx.folder / "loop-a").symlink_to(ctx.folder / "loop-b")
    (ctx.folder / "loop-b").symlink_to(ctx.folder / "loop-a")


def state_at(state: str, *command: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        loop(ctx)
        ctx.write("rules.yaml", RULE)
        config = ctx.config(state=state)
        if command[0] == "config":
            return ctx.cli("config", "check", str(config))
        return ctx.cli(*command, "--config", str(config))
    return build


def rules_in_loop(*command: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        loop(ctx)
        config = ctx.config("loop-a")
        if command[0] == "rules":
            return ctx.cli("rules", "check", "loop-a")
        if command[0] == "config":
            return ctx.cli("config", "check", str(config))
        return ctx.cli(*command, "--config", str(config))
    return build


STATE_FILES = {
    "empty": b"",
    "truncated": b"SQLite format 3\x00" + b"\x00" * 80,  # a header cut short
    "random bytes": bytes(range(256)) * 64,
}


def broken_state(content: bytes, command: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        ctx.write("rules.yaml", RULE)
        ctx.write("state.db", content)
        return ctx.cli(command, "--config", str(ctx.config()))
    return build


def damaged_state(kind: str, *command: str) -> Callable[[Ctx], Outcome]:
    """This revision's own seeded state, cut in half or with every page after the first
    (the header and schema) overwritten with random bytes."""

    def build(ctx: Ctx) -> Outcome:
        config = ctx.seeded()
        path = ctx.folder / "state.db"
        for leftover in ("state.db-wal", "state.db-shm"):
            (ctx.folder / leftover).unlink(missing_ok=True)
        data = path.read_bytes()
        if kind == "cut in half":
            path.write_bytes(data[:len(data) // 2])
        else:
            page = int.from_bytes(data[16:18], "big") or 65536
            noise = random.Random(15).randbytes(len(data) - page)
            path.write_bytes(data[:page] + noise)
        return ctx.cli(*command, "--config", str(config))

    return build


def backup_of(content: bytes) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        ctx.write("rules.yaml", RULE)
        ctx.write("state.db", content)
        return ctx.cli("backup", "--config", str(ctx.config()), "--to", "copy.db")
    return build


def backup_to(target: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        config = ctx.seeded()
        loop(ctx)
        return ctx.cli("backup", "--config", str(config), "--to", target)
    return build


def empty_status_is_clean(out: Outcome) -> str | None:
    return None if out.code in (0, 1) else f"exit {out.code}"


def huge_limit(ctx: Ctx) -> Outcome:
    return ctx.cli("alerts", "--config", str(ctx.seeded()), "--limit",
                   "99999999999999999999999")


def deep_article(*options: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        rules = ctx.write("rules.yaml", RULE)
        article = ctx.write("hostile.json",
                            '{"title": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
        return ctx.cli("rules", "test", str(rules), options[0], str(article), *options[1:])
    return build


# -- hot reload (items 2 and 3): the real monitor, a file dropped into its folder


@dataclass
class Monitor:
    proc: subprocess.Popen[bytes]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def start_readers(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            lines.append(raw.decode("utf-8", "replace"))

    def logged(self, *words: str) -> list[str]:
        return [m for _, m in log_messages("".join(self.err)) if all(w in m for w in words)]

    def reload_attempts(self) -> int:
        """Logged loads of changed rule files that failed ("rule reload rejected...",
        "rule reload failed unexpectedly")."""
        return sum(1 for _, m in log_messages("".join(self.err))
                   if m.startswith("rule reload") and "reloaded" not in m)

    def wait_for(self, words: tuple[str, ...], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.logged(*words) or self.proc.poll() is not None:
                return bool(self.logged(*words))
            time.sleep(0.1)
        return False

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LAG = re.compile(r"(?:lag|stalled for) ([0-9.]+)s")
BLOCKED = 1.0  # seconds of loop lag that count as a blocked loop (/healthz fails at 10)


def healthz(port: int) -> tuple[int, float]:
    """/healthz's status code (0 when it did not answer within 5 s) and the event loop's
    lag it reports (its watchdog thread answers, so a stalled loop shows there)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            code, body = int(answer.status), answer.read()
    except urllib.error.HTTPError as error:
        code, body = int(error.code), error.read()
    except OSError:
        return 0, 0.0
    found = LAG.search(body.decode("utf-8", "replace"))
    return code, float(found.group(1)) if found else 0.0


def reload_case(hostile: str, *, probe: bool, valid: bool = False
                ) -> Callable[[Ctx], Outcome]:
    """Start ``run`` on a watchlist folder, drop ``hostile`` into it, and watch for 20 s
    (probing /healthz every 0.25 s when ``probe``, and how late the loop's own heartbeat
    is: /healthz answers from a thread): how often the file was tried, whether ``status``
    shows the rejection, whether ops were told, whether the loop stayed live. A ``valid``
    file must be loaded instead ("rules reloaded")."""

    def build(ctx: Ctx) -> Outcome:
        ctx.write("rules/maroc.yaml", RULE)
        port = free_port()
        config = ctx.config("rules", extra=f"metrics: {{port: {port}}}\n")
        proc = subprocess.Popen([*ctx.rev.argv, "run", "--config", str(config)],
                                cwd=ctx.folder, env=environment(ctx.rev),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        monitor = Monitor(proc)
        monitor.start_readers()
        started = time.monotonic()
        probes: list[tuple[int, float]] = []
        status = Outcome(None, "", "", 0.0)
        refused_after: float | None = None
        try:
            if not monitor.wait_for(("running:",), 90):
                code = monitor.stop()
                return Outcome(code, "".join(monitor.out), "".join(monitor.err),
                               time.monotonic() - started, "did not start")
            ctx.write("rules/hostile.yaml", hostile)
            dropped = time.monotonic()
            while time.monotonic() - dropped < 20:
                if refused_after is None and (monitor.reload_attempts() or (
                        valid and monitor.logged("rules reloaded"))):
                    refused_after = time.monotonic() - dropped
                if probe:
                    probes.append(healthz(port))
                time.sleep(0.25)
            status = ctx.cli("status", "--config", str(config), timeout=60)
        finally:
            code = monitor.stop()
        stdout = "".join(monitor.out)
        facts = {"tries": monitor.reload_attempts(), "loaded": len(monitor.logged(
            "rules reloaded")), "notices": stdout.lower().count("reload rejected"),
            "in_status": float("REJECTED" in status.stdout), "valid": float(valid)}
        if valid:
            note = (f"loaded {facts['loaded']:.0f}x, {facts['tries']:.0f} failed load(s) "
                    f"logged in 20 s")
        else:
            note = (f"{facts['tries']:.0f} load attempt(s) logged in 20 s, "
                    f"{facts['notices']:.0f} ops notice(s), status "
                    f"{'shows' if facts['in_status'] else 'does not show'} the rejection")
        if probe:
            facts["bad_probes"] = sum(1 for c, _ in probes if c != 200)
            facts["lag"] = max((t for _, t in probes), default=0.0)
            note += (f", /healthz not 200 in {facts['bad_probes']:.0f} of {len(probes)} "
                     f"probes, loop lag up to {facts['lag']:.1f} s")
        return Outcome(code, stdout, "".join(monitor.err) + status.stderr,
                       refused_after if refused_after is not None else 20.0, note,
                       facts=facts)

    return build


def reload_judge(out: Outcome) -> str | None:
    facts = out.facts
    if "tries" not in facts:
        return out.note or "did not run"
    lag = facts.get("lag", 0.0)
    blocked = facts.get("bad_probes", 0) > 0 or lag >= BLOCKED
    if facts["valid"]:
        if facts["loaded"] != 1:
            return "not loaded"
    elif facts["tries"] != 1:
        return f"tried {facts['tries']:.0f}x" if facts["tries"] > 1 else "never refused"
    elif facts["notices"] != 1:
        return f"{facts['notices']:.0f} ops notices"
    elif not facts["in_status"]:
        return "not in status"
    return f"loop blocked {lag:.0f} s" if blocked else None


# -- item 3: slow rejection

NODES_900K = "rules:\n" + "- x\n" * 450_000  # 1.8 MB, the "900,000 nodes"
NODES_400K = "rules:\n" + "- x\n" * 200_000  # the "400,000-node file"
HEAVY_RULES = "rules:\n" + "".join(f"  - {{id: r{n}, title: T, countries: [MA]}}\n"
                                   for n in range(20_000))  # valid, under every cap
FIFTY_MB = "rules:\n" + "  - {id: x, title: X, countries: [MA]}\n" * 1_400_000


# -- item 4: a commit that fails mid-run (RLIMIT_FSIZE)

FULL_ARTICLES = 8


def disk_full(ctx: Ctx) -> Outcome:
    """``run --once`` delivering 8 alerts to the console while no file of the process may
    grow past a size its write-ahead log reaches between the first alert and the end of
    the same run without limit (measured on a copy), so a commit fails mid-delivery
    (EFBIG); then ``run --once`` again without the limit: alerts lost and sent twice across
    both runs, and the first run's answer."""
    titles = distinct_titles(FULL_ARTICLES)
    ctx.write("rules.yaml", RULE)
    config = ctx.config(feeds=f"\n  - {{name: news, url: {ctx.feeds.url('/full.xml')}}}")
    ctx.feeds.routes["/full.xml"] = Route(200, "OK", rss([]))
    first = ctx.cli("run", "--once", "--config", str(config))  # an empty state
    if first.code != 0:
        return Outcome(first.code, first.stdout, first.stderr, first.seconds, "no state")
    ctx.feeds.routes["/full.xml"] = Route(
        200, "OK", rss([item(100 + n, t) for n, t in enumerate(titles)]))
    probe = ctx.folder / "probe"
    probe.mkdir()
    for name in ("state.db", "rules.yaml", "config.yaml"):
        shutil.copy2(ctx.folder / name, probe / name)
    at_first, peak = wal_sizes(Ctx(ctx.rev, probe, ctx.feeds, ctx.seeds), titles)
    limit = max((at_first + peak) // 2, 32768)  # past the first alert, before the last
    full = ctx.cli("run", "--once", "--config", str(config), fsize=limit)
    again = ctx.cli("run", "--once", "--config", str(config))
    counts = {t: (full.stdout + again.stdout).count(t) for t in titles}
    facts = {"hit": float(any(e in full.stderr for e in WRITE_ERRORS)),
             "lost": sum(1 for n in counts.values() if n == 0),
             "twice": sum(n - 1 for n in counts.values() if n > 1)}
    note = (f"files capped at {limit} bytes: first run exit {full.code}, sent "
            f"{sum(full.stdout.count(t) for t in titles)}; second run exit {again.code}; "
            f"lost {facts['lost']:.0f} of {FULL_ARTICLES}, sent twice {facts['twice']:.0f} "
            f"(bound: 1 per channel)")
    return Outcome(full.code, full.stdout + again.stdout, full.stderr + again.stderr,
                   full.seconds, note, facts=facts)


WRITE_ERRORS = ("disk I/O error", "database or disk is full", "File too large")


def wal_sizes(ctx: Ctx, titles: list[str]) -> tuple[int, int]:
    """The size of the state's write-ahead log when the first of ``titles`` is printed by
    the console receiver, and the largest it reaches, in one ``run --once`` without limit
    (sampled every 10 ms)."""
    config = ctx.folder / "config.yaml"
    proc = subprocess.Popen([*ctx.rev.argv, "run", "--once", "--config", str(config)],
                            cwd=ctx.folder, env=environment(ctx.rev),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    monitor = Monitor(proc)
    assert proc.stdout is not None
    threading.Thread(target=Monitor._read, args=(proc.stdout, monitor.out),
                     daemon=True).start()
    peak, at_first = 0, 0
    while proc.poll() is None:
        with suppress(OSError):
            size = (ctx.folder / "state.db-wal").stat().st_size
            peak = max(peak, size)
            if not at_first and any(t in line for line in monitor.out for t in titles):
                at_first = size
        time.sleep(0.01)
    return at_first, peak


def disk_full_judge(out: Outcome) -> str | None:
    if "hit" not in out.facts:
        return out.note or "did not run"
    if not out.facts["hit"]:
        return "limit never hit"
    if out.facts["lost"]:
        return f"{out.facts['lost']:.0f} lost"
    if out.facts["twice"] > 1:
        return f"{out.facts['twice']:.0f} sent twice"
    return None


# -- item 5: config that can never deliver

SLACK_NO_SCHEME = "  desk:\n    slack: {channel: '#maghreb', base_url: slack.com/api}"
MAIL_CRLF = ("  desk:\n    email:\n      to: [\"desk@example.org\\r\\nBcc: evil@example.org\"]\n"
             "      from: news@example.org\n      host: 127.0.0.1\n")
MAIL_INVALID = ("  desk:\n    email:\n      to: [nobody]\n      from: news watch\n"
                "      host: 127.0.0.1\n")


def config_check_with(receivers: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        ctx.write("rules.yaml", RULE)
        return ctx.cli("config", "check", str(ctx.config(receivers=receivers)))
    return build


def run_once_slack_without_scheme(ctx: Ctx) -> Outcome:
    ctx.feeds.routes["/maroc.xml"] = Route(200, "OK", rss([item(7, "Accord avec le Maroc")]))
    ctx.write("rules.yaml", RULE)
    config = ctx.config(feeds=f"\n  - {{name: news, url: {ctx.feeds.url('/maroc.xml')}}}",
                        receivers=SLACK_NO_SCHEME)
    return ctx.cli("run", "--once", "--config", str(config), timeout=60,
                   env={"SLACK_BOT_TOKEN": "xoxb-hostile-ab"})


def run_once_mail_with_crlf(ctx: Ctx) -> Outcome:
    """``run --once`` with the CR/LF recipient and a real SMTP server on loopback (which
    would accept any well-formed mail): what is sent, and whether the run ends."""
    ctx.feeds.routes["/maroc.xml"] = Route(200, "OK", rss([item(7, "Accord avec le Maroc")]))
    ctx.write("rules.yaml", RULE)
    sink = SMTPSink()
    asyncio.run(sink.start())
    try:
        receivers = MAIL_CRLF.replace("host: 127.0.0.1",
                                      f"host: 127.0.0.1\n      port: {sink.port}\n"
                                      f"      starttls: false")
        config = ctx.config(feeds=f"\n  - {{name: news, url: {ctx.feeds.url('/maroc.xml')}}}",
                            receivers=receivers)
        out = ctx.cli("run", "--once", "--config", str(config), timeout=60)
    finally:
        asyncio.run(sink.close())
    rcpts = [r for m in sink.messages for r in m.rcpt_tos]
    out.note = f"the SMTP server received {len(sink.messages)} message(s), recipients {rcpts}"
    return out


# -- item 7: smaller


def tagged(value: str) -> Callable[[Ctx], Outcome]:
    """A tag on a quoted title, otherwise a valid rule: taken as the plain text, the file
    passes."""
    text = f"rules:\n  - id: r1\n    title: {value}\n    phrases: [x]\n"
    return rules_check("tagged.yaml", text)


def hangul_filler(ctx: Ctx) -> Outcome:
    rules = ctx.write("rules.yaml", RULE)
    article = ctx.write("article.txt", "Accord militaire avec le Ma\u3164roc\nRabat et "
                                       "Washington ont signé un accord.\n")
    return ctx.cli("rules", "test", str(rules), "--article", str(article))


def matched(out: Outcome) -> str | None:
    return None if "✔ maroc" in out.stdout else "filler not ignored"


def metrics_port_taken(ctx: Ctx) -> Outcome:
    ctx.write("rules.yaml", RULE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ctx.config(extra=f"metrics:\n  host: 127.0.0.1\n  port: {port}\n")
        return ctx.cli("run", "--once", "--config", str(config))


def used_silently(out: Outcome) -> str | None:
    """The command answered from the file as if it were its own."""
    return "used silently" if "FEED" in out.stdout or "maroc" in out.stdout else None


def newer_state(command: str) -> Callable[[Ctx], Outcome]:
    def build(ctx: Ctx) -> Outcome:
        config = ctx.seeded()
        with sqlite3.connect(ctx.folder / "state.db") as conn:
            conn.execute("PRAGMA user_version = 999")
        conn.close()
        return ctx.cli(command, "--config", str(config))
    return build


# ---------------------------------------------------------------------------- the list


def cases() -> list[Case]:
    c: list[Case] = [
        Case("run: feed error and title in text logs", "1", seed_run, refusal=False,
             escapes=True, judge=text_log_judge, quote="PWNED"),
        Case("status: reason phrase with escapes", "1", status_table, refusal=False,
             escapes=True, judge=error_shown, quote="PWNED"),
        Case("status --feed: reason phrase with escapes", "1", status_of_hostile_feed,
             refusal=False, escapes=True, judge=error_shown, quote="PWNED"),
        Case("alerts: title with a forged log line", "1", alerts_of_forged_title,
             refusal=False, escapes=True, judge=alerts_judge, quote="Maroc"),
    ]
    for label, name, text in (("YAML nested 2,000 deep", "deep.yaml", DEEP),
                              ("NUL byte in YAML", "nul.yaml", NUL)):
        c += [
            Case(f"rules check: {label}", "2", rules_check(name, text), mention=name),
            Case(f"config check: {label}", "2", config_check_of_rules(name, text),
                 mention=name),
            Case(f"run --once: {label}", "2", run_once_of_rules(name, text), mention=name),
        ]
    c += [
        Case("config check: the config nested 2,000 deep", "2", deep_config,
             mention="config.yaml"),
        Case("run: hot reload of YAML nested 2,000 deep", "2",
             reload_case(DEEP, probe=False), refusal=False, judge=reload_judge,
             quote="rule reload"),
        Case("run: hot reload of a NUL byte", "2", reload_case(NUL, probe=False),
             refusal=False, judge=reload_judge, quote="rule reload"),
    ]
    proc_state = "/proc/newswatch/state.db"
    c += [
        Case("run --once: state under /proc", "2", state_at(proc_state, "run", "--once"),
             mention=proc_state),
        Case("config check: state under /proc", "2", state_at(proc_state, "config"),
             mention="/proc/newswatch"),
        Case("status: state under /proc (nothing there)", "2", state_at(proc_state, "status"),
             refusal=False, judge=empty_status_is_clean),
    ]
    for words in (("run", "--once"), ("status",), ("alerts",), ("config", "check")):
        c.append(Case(f"{' '.join(words)}: symlink loop in state:", "2",
                      state_at("loop-a/state.db", *words), mention="loop-a"))
    for words in (("rules", "check"), ("config", "check"), ("run", "--once")):
        c.append(Case(f"{' '.join(words)}: symlink loop in rules:", "2",
                      rules_in_loop(*words), mention="loop-a"))
    for label, content in STATE_FILES.items():
        for command in ("status", "alerts"):
            c.append(Case(f"{command}: {label} state file", "2",
                          broken_state(content, command), mention="state.db"))
    for label in ("truncated", "random bytes"):
        c.append(Case(f"backup: {label} state file", "2+", backup_of(STATE_FILES[label]),
                      mention="state.db"))
    c += [
        Case("backup --to under /proc", "2+", backup_to("/proc/newswatch/copy.db"),
             mention="/proc/newswatch"),
        Case("backup --to through a symlink loop", "2+", backup_to("loop-a/copy.db"),
             mention="loop-a"),
    ]
    for kind in ("cut in half", "data pages overwritten"):
        for words in (("status",), ("alerts",), ("run", "--once")):
            c.append(Case(f"{' '.join(words)}: real state {kind}", "2",
                          damaged_state(kind, *words), mention="state.db"))
    c += [
        Case("alerts --limit 99999999999999999999999", "2", huge_limit,
             mention="argument --limit"),
        Case("rules test --article: JSON nested 100,000 deep", "2",
             deep_article("--article"), mention="hostile.json"),
        Case("rules test --articles: JSON nested 100,000 deep", "2",
             deep_article("--articles", "--json"), mention="hostile.json"),
        Case("rules check: 1.8 MB rule file of 450,000 items", "3",
             rules_check("nodes.yaml", NODES_900K), mention="nodes.yaml", within=10),
        Case("rules check: 50 MB rule file", "3", rules_check("big.yaml", FIFTY_MB),
             mention="big.yaml", within=10),
        Case("run: hot reload of the 400,000-node file, /healthz", "3",
             reload_case(NODES_400K, probe=True), refusal=False, judge=reload_judge,
             quote="rule reload"),
        Case("run: hot reload of the 1.8 MB file, /healthz", "3",
             reload_case(NODES_900K, probe=True), refusal=False, judge=reload_judge,
             quote="rule reload"),
        Case("run: hot reload of 20,000 valid rules, /healthz", "3",
             reload_case(HEAVY_RULES, probe=True, valid=True), refusal=False,
             judge=reload_judge, quote="rules reloaded"),
        Case("run: hot reload of a 50 MB rule file, /healthz", "3",
             reload_case(FIFTY_MB, probe=True), refusal=False, judge=reload_judge,
             quote="rule reload"),
        Case("run --once: state writes fail mid-run, then rerun", "4", disk_full,
             mention="state.db", judge=disk_full_judge),
        Case("config check: slack base_url without scheme", "5",
             config_check_with(SLACK_NO_SCHEME), mention="base_url"),
        Case("config check: e-mail to with CR/LF", "5", config_check_with(MAIL_CRLF),
             mention="config.yaml"),
        Case("config check: e-mail to/from not addresses", "5",
             config_check_with(MAIL_INVALID), mention="config.yaml"),
        Case("run --once: slack base_url without scheme", "5", run_once_slack_without_scheme,
             mention="base_url"),
        Case("run --once: e-mail to with CR/LF, SMTP server up", "5", run_once_mail_with_crlf,
             mention="config.yaml"),
        Case("rules check: !!python/object on a quoted value", "7",
             tagged('!!python/object:builtins.dict "T"'), mention="tagged.yaml"),
        Case("rules check: !!binary on a quoted value", "7", tagged('!!binary "aGVsbG8="'),
             mention="tagged.yaml"),
        Case("rules test: Hangul filler inside a name", "7", hangul_filler, refusal=False,
             judge=matched),
        Case("run --once: metrics port taken", "7", metrics_port_taken,
             mention="config.yaml:"),
        Case("status: state of a newer schema", "7", newer_state("status"),
             mention="state.db", judge=used_silently),
        Case("alerts: state of a newer schema", "7", newer_state("alerts"),
             mention="state.db", judge=used_silently),
    ]
    return c


# ---------------------------------------------------------------------------- main


@dataclass
class Row:
    case: Case
    results: list[tuple[str, Outcome]]


def run_all(revisions: list[Revision], chosen: list[Case], work: Path) -> list[Row]:
    feeds = FeedServer()
    try:
        seeds: dict[str, Path] = {}
        for n, rev in enumerate(revisions):
            folder = work / f"seed-{n}"
            folder.mkdir()
            seed(Ctx(rev, folder, feeds, seeds))
            seeds[rev.label] = folder
        rows = []
        for k, case in enumerate(chosen):
            results = []
            for n, rev in enumerate(revisions):
                folder = work / f"case-{k}-{n}"
                folder.mkdir()
                out = case.build(Ctx(rev, folder, feeds, seeds))
                out.folder = str(folder)
                results.append((classify(case, out), out))
            rows.append(Row(case, results))
            print(f"  {case.name}: " + " | ".join(v for v, _ in results), file=sys.stderr,
                  flush=True)
        return rows
    finally:
        feeds.close()


def report(rows: list[Row], revisions: list[Revision]) -> None:
    width = max(len(r.case.name) for r in rows) + 4
    cols = [max(len(rev.label), *(len(r.results[n][0]) for r in rows))
            for n, rev in enumerate(revisions)]
    head = f"{'case':<{width}}" + "".join(f" | {rev.label:<{w}}"
                                          for rev, w in zip(revisions, cols, strict=True))
    print(head + " | seconds")
    print("-" * (len(head) + 18))
    for row in rows:
        line = f"{row.case.item + '. ' + row.case.name:<{width}}"
        for (verdict, _), w in zip(row.results, cols, strict=True):
            line += f" | {verdict:<{w}}"
        line += " | " + " / ".join(f"{out.seconds:.1f}" for _, out in row.results)
        print(line)
    print()
    print("first line of each message (control characters in caret notation: ESC ^[, BEL ^G):")
    for row in rows:
        print(f"{row.case.item}. {row.case.name}")
        for rev, (_, out) in zip(revisions, row.results, strict=True):
            code = "timeout" if out.code is None else f"exit {out.code}"
            quote = row.case.quote or row.case.mention
            said = message(out, quote).replace(out.folder + "/", "") if out.folder else \
                message(out, quote)
            print(f"    {rev.label}: {code}, {shown(said)}")
            if out.note:
                print(f"    {'':{len(rev.label)}}  {out.note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", default=DEFAULT_REV,
                        help=f"the commit to compare with (default {DEFAULT_REV})")
    parser.add_argument("--only", default="", help="run only the cases whose name holds this")
    parser.add_argument("--show", action="store_true",
                        help="also print each command's whole stdout and stderr")
    args = parser.parse_args()
    chosen = [c for c in cases() if args.only in c.name]
    with worktree(args.rev) as tree, \
            tempfile.TemporaryDirectory(prefix="hostile-ab-") as tmp:
        revisions = [revision_in(tree, args.rev), working_tree()]
        rows = run_all(revisions, chosen, Path(tmp))
    report(rows, revisions)
    if args.show:
        for row in rows:
            for rev, (_, out) in zip(revisions, row.results, strict=True):
                print(f"\n== {row.case.name} on {rev.label}: exit {out.code}")
                for name, text in (("stdout", out.stdout), ("stderr", out.stderr)):
                    for line in text.splitlines()[:40]:
                        print(f"  {name}: {shown(line, 300)}")
    failing = [r.case.name for r in rows if r.results[-1][0] not in GOOD_VERDICTS]
    if failing:
        print(f"\nnot a clear refusal (or the clean answer) on the working tree: "
              f"{', '.join(failing)}")
        return 1
    print(f"\nworking tree: every case a clear refusal or the clean answer "
          f"({len(rows)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
