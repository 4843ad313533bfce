"""The wheel, as a user installs it: one top-level package, ``newswatch``, that installs and
imports beside django-rules (whose top-level package is also called ``rules``), and works from
a folder that holds ``rules/``, ``monitor/`` and ``streams/`` folders of its own.

Real builds and installs, no network: the wheel is built without build isolation from the
sources the Dockerfile copies, and installed with ``--no-index`` into a venv that takes the
dependencies from this environment (``--system-site-packages``). django-rules is installed
into that venv from a wheel repacked from this environment's copy (it is in the dev extra).

The wheel holds the matcher's modules compiled with mypyc (setup.py); one built with
``NEWSWATCH_PURE=1`` holds the source alone, and both must find the same matches.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from setup import COMPILED
from tests.fakes.feed_server import FeedServer, rss
from tests.test_end_to_end import seed_item

# One test process runs the whole module: its fixture builds the wheel once.
pytestmark = pytest.mark.xdist_group("packaging")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
LOCKS = ROOT / "requirements"

RULE = """\
rules:
  - id: us-maghreb-military
    title: US military agreements in the Maghreb
    severity: high
    countries: {all: [US, MA]}
    phrases: ["accord militaire"]
    notify: [terminal]
    examples:
      match: ["Le Maroc et les États-Unis signent un accord militaire"]
"""

# What the venv's interpreter reports about the two packages named rules and newswatch.
PROBE = """
import json, sys
out = {"prefix": sys.prefix}
try:
    import rules
    out["rules"] = rules.__file__
    out["predicate"] = callable(rules.predicate)
except Exception as exc:
    out["rules_error"] = repr(exc)
try:
    import newswatch, newswatch.rules.matcher
    out["newswatch"] = newswatch.__file__
    out["matcher"] = newswatch.rules.matcher.__file__
except Exception as exc:
    out["newswatch_error"] = repr(exc)
print(json.dumps(out))
"""


# Matches of 1,000 realistic rules (bench/workload.py) on the real news of tests/data/news,
# printed as JSON by the venv's own newswatch, with the file its matcher was loaded from.
MATCHES = """
import json, sys
sys.path.insert(0, sys.argv[1])  # bench/ only: newswatch comes from the venv
from pathlib import Path
from workload import Pool, realistic_rules
from newswatch.monitor.feedparse import parse_feed
from newswatch.rules import matcher
articles = []
for path in sorted(Path(sys.argv[2]).glob("*.*")):
    if path.suffix != ".md":
        articles += parse_feed(path.read_bytes(), feed=path.stem, headers={},
                               language=None).articles
found = matcher.Matcher(realistic_rules(1000, Pool.of(articles, 2)))
print(json.dumps({"matcher": matcher.__file__, "matches": [
    [[m.rule.id, [e.to_json() for e in m.evidence]] for m in found.match(a)]
    for a in articles]}))
"""


def run(*args: str | Path, cwd: Path, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with this environment minus anything pointing at the work tree."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def build_sources() -> list[str]:
    """The repository paths the Dockerfile's build stage copies (except the lock)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    build_stage = text.split("\nFROM ")[1]
    sources = []
    for line in build_stage.splitlines():
        op, _, rest = line.strip().partition(" ")
        if op == "COPY" and "--from=" not in rest:
            sources += [s for s in rest.split()[:-1] if not s.startswith("requirements/")]
    return sources


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of what the Dockerfile copies: a stale build/ folder of
    the work tree cannot leak into it, and the Docker build is known to have enough."""
    return build_wheel(tmp_path_factory.mktemp("wheel"), {})


@pytest.fixture(scope="module")
def pure_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, built with ``NEWSWATCH_PURE=1``: no compiler, the source alone."""
    return build_wheel(tmp_path_factory.mktemp("pure"), {"NEWSWATCH_PURE": "1"})


def build_wheel(base: Path, env: dict[str, str]) -> Path:
    src = base / "src"
    src.mkdir()
    for name in build_sources():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / name)
    out = base / "dist"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--no-index", "--disable-pip-version-check", "-w", out, ".", cwd=src,
                timeout=600, env=env)  # mypyc compiles for a minute or two
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("newswatch-*.whl")
    return path


def repack(distribution: str, out: Path) -> Path:
    """A wheel of an installed distribution, from its RECORD (pip keeps no wheel of it)."""
    dist = importlib.metadata.distribution(distribution)
    tags = [line.split(":", 1)[1].strip().split("-") for line in
            (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:")]
    tag = "-".join(".".join(dict.fromkeys(part)) for part in zip(*tags, strict=True))
    name = dist.metadata["Name"].replace("-", "_")
    path = out / f"{name}-{dist.version}-{tag}.whl"
    record, skip = [], {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    with zipfile.ZipFile(path, "w") as archive:
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.name in skip:
                continue
            data = Path(file.locate()).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{file.as_posix()},sha256={digest.decode()},{len(data)}")
        info = f"{name}-{dist.version}.dist-info"
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,", ""]))
    return path


@dataclass
class Venv:
    path: Path
    python: Path
    site: Path
    wheels: Path
    rules_wheel: Path
    newswatch_wheel: Path

    def pip(self, *args: str | Path) -> None:
        done = run(self.python, "-m", "pip", "--disable-pip-version-check", *args,
                   cwd=self.path)
        assert done.returncode == 0, done.stdout + done.stderr

    def install(self, wheel: Path) -> None:
        """Into the venv itself, though this environment has the same distribution."""
        self.pip("install", "--no-deps", "--no-index", "--ignore-installed", wheel)

    def uninstall(self, name: str, folder: str) -> None:
        """The venv's copy (pip leaves this environment's alone: outside the venv)."""
        assert (self.site / folder).is_dir()
        self.pip("uninstall", "--yes", name)
        assert not (self.site / folder).exists()

    def probe(self, cwd: Path) -> dict[str, Any]:
        done = run(self.python, "-c", PROBE, cwd=cwd)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A venv with django-rules installed first, then the newswatch wheel, both into the
    venv's own site-packages (the dependencies come from this environment's)."""
    return make_venv(tmp_path_factory.mktemp("venv"), wheel)


def make_venv(base: Path, wheel: Path) -> Venv:
    path = base / "venv"
    # No pip of its own: this environment's pip, seen through --system-site-packages,
    # installs into the venv (sys.prefix) when run by the venv's interpreter.
    made = run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", path,
               cwd=base)
    assert made.returncode == 0, made.stderr
    python = path / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=base).stdout.strip())
    wheels = base / "wheels"
    wheels.mkdir()
    env = Venv(path, python, site, wheels, repack("rules", wheels), wheel)
    env.install(env.rules_wheel)
    env.install(env.newswatch_wheel)
    return env


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A user's folder whose sub-folders carry the names of newswatch's own packages."""
    for name in ("rules", "monitor", "streams"):
        (tmp_path / name).mkdir()
    (tmp_path / "rules" / "maghreb.yaml").write_text(RULE, encoding="utf-8")
    (tmp_path / "monitor" / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    (tmp_path / "streams" / "desks.yaml").write_text("desks: [maghreb]\n", encoding="utf-8")
    return tmp_path


def top_level(names: list[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(
        ".dist-info")}


def test_the_wheel_installs_one_top_level_package_with_its_data_and_types(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (info,) = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        record = [line.split(",", 1)[0] for line in
                  archive.read(f"{info}/RECORD").decode().splitlines() if line]
        metadata = archive.read(f"{info}/METADATA").decode()
    assert top_level(names) == {"newswatch"}
    assert top_level(record) == {"newswatch"}
    assert sorted(record) == sorted(names)
    assert "newswatch/py.typed" in names
    shipped_data = {n for n in names if n.startswith("newswatch/rules/data/")}
    assert shipped_data == {f"newswatch/rules/data/{p.name}"
                            for p in (ROOT / "rules" / "data").glob("*.yaml")}
    assert shipped_data
    # Every module of the tree (through the symlinks) is in the wheel, and nothing else.
    modules = {(Path(folder) / f).relative_to(ROOT).as_posix()
               for folder, _, files in os.walk(ROOT / "newswatch", followlinks=True)
               for f in files if f.endswith(".py")}
    assert {n for n in names if n.endswith(".py")} == modules
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata.splitlines()


def shipped(wheel: Path) -> set[str]:
    """The files of ``wheel`` but its metadata."""
    with zipfile.ZipFile(wheel) as archive:
        return {n for n in archive.namelist() if ".dist-info/" not in n}


def extensions(wheel: Path) -> set[str]:
    """The modules of ``wheel`` compiled to C, as paths without their platform suffix."""
    return {n.split(".", 1)[0] for n in shipped(wheel) if n.endswith(".so")}


def test_the_wheel_holds_the_matcher_compiled_and_the_pure_one_the_source_alone(
        wheel: Path, pure_wheel: Path) -> None:
    compiled = {path.removesuffix(".py") for path in COMPILED}
    assert extensions(wheel) == compiled | {"newswatch/rules/native__mypyc"}
    assert extensions(pure_wheel) == set()
    assert shipped(pure_wheel) == {n for n in shipped(wheel) if not n.endswith(".so")}


def test_the_compiled_and_the_pure_matcher_find_the_same_matches(
        venv: Venv, pure_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    pure = make_venv(tmp_path_factory.mktemp("pure-venv"), pure_wheel)
    script = tmp_path_factory.mktemp("matches") / "matches.py"
    script.write_text(MATCHES, encoding="utf-8")
    outputs = []
    for env in (venv, pure):
        done = run(env.python, script, ROOT / "bench", ROOT / "tests" / "data" / "news",
                   cwd=script.parent)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    compiled, source = outputs
    assert compiled["matcher"].endswith(".so") and source["matcher"].endswith("matcher.py")
    assert compiled["matches"] == source["matches"]
    assert sum(map(len, source["matches"])) > 50  # rules that match, with their evidence


def test_it_installs_beside_django_rules_and_both_import(venv: Venv, tmp_path: Path) -> None:
    found = venv.probe(tmp_path)
    assert found["prefix"] == str(venv.path)
    # Both from the venv itself: not this environment's copies, nor the editable work tree.
    assert Path(found["rules"]).is_relative_to(venv.site), found
    assert found["predicate"] is True
    assert Path(found["newswatch"]).is_relative_to(venv.site), found
    matcher = Path(found["matcher"])  # compiled (setup.py)
    assert matcher.parent == venv.site / "newswatch" / "rules", found
    assert matcher.name.startswith("matcher.") and matcher.suffix == ".so", found
    # The two packages did not merge: rules/ holds exactly django-rules' files.
    with zipfile.ZipFile(venv.rules_wheel) as archive:
        theirs = {n for n in archive.namelist() if n.startswith("rules/")}
    installed = {p.relative_to(venv.site).as_posix() for p in (venv.site / "rules").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    assert installed == theirs


async def test_rules_check_and_run_once_from_a_folder_named_like_the_packages(
        venv: Venv, folder: Path) -> None:
    checked = run(venv.python, "-m", "newswatch", "rules", "check", "rules/", cwd=folder)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 1 rule(s)"), checked.stdout

    async with FeedServer() as feeds:
        feeds.serve("/maghreb.xml", rss([seed_item("https://news.example/a", "a-1")]))
        (folder / "config.yaml").write_text(
            "state: ./state.db\nrules: [rules/]\n"
            f"feeds:\n  - name: maghreb\n    url: {feeds.url('/maghreb.xml')}\n"
            "    language: fr\n"
            "receivers:\n  terminal:\n    console: {}\nops: terminal\n"
            f"fetch:\n  allow: ['{feeds.allow}']\n", encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            venv.path / "bin" / "newswatch", "run", "--once", "--config", "config.yaml",
            cwd=folder, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert feeds.hits["/maghreb.xml"] == 1
    assert proc.returncode == 0, err.decode()
    assert "US military agreements in the Maghreb" in out.decode(), out.decode()


def test_uninstalling_either_package_leaves_the_other_working(venv: Venv,
                                                              tmp_path: Path) -> None:
    try:
        venv.uninstall("rules", "rules")
        found = venv.probe(tmp_path)
        assert Path(found["newswatch"]).is_relative_to(venv.site), found
        assert (venv.site / "newswatch" / "rules" / "matcher.py").is_file()  # its source too

        venv.install(venv.rules_wheel)
        venv.uninstall("newswatch", "newswatch")
        found = venv.probe(tmp_path)
        assert Path(found["rules"]).is_relative_to(venv.site), found
        assert found["predicate"] is True
    finally:  # leave the venv as the fixture made it, whatever ran first
        venv.install(venv.rules_wheel)
        venv.install(venv.newswatch_wheel)


def locked(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (LOCKS / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            package, _, version = line.partition("==")
            pins[canonicalize_name(package)] = version
    return pins


def test_the_locks_satisfy_pyproject_and_are_what_ci_and_the_image_install() -> None:
    runtime, dev = locked("runtime.lock"), locked("dev.lock")
    assert runtime.items() <= dev.items()  # the image runs what CI tested
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    for lock, requirements in ((runtime, project["dependencies"] + extras["kafka"]),
                               (dev, extras["dev"])):
        for requirement in map(Requirement, requirements):
            name: str = canonicalize_name(requirement.name)
            if name == "newswatch":
                continue
            assert name in lock, f"{name} is not locked: regenerate (requirements/README.md)"
            assert requirement.specifier.contains(lock[name], prereleases=True), \
                f"{name}=={lock[name]} does not satisfy {requirement}: regenerate the locks"
    for name in ("runtime.lock", "dev.lock"):  # the command that regenerates it, on top
        header = (LOCKS / name).read_text(encoding="utf-8").splitlines()[:2]
        assert header[1].startswith("#    uv pip compile pyproject.toml "), header
        assert "--python-version 3.11" in header[1] and f"-o requirements/{name}" in header[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^python -m pip install .*-r requirements/dev\.lock$", ci, re.M)
    assert re.search(r"^python -m pip install .*--no-deps .*-e \.$", ci, re.M)
    assert re.search(r"^echo .*; deptry \.$", ci, re.M)
    docker = DOCKERFILE.read_text(encoding="utf-8")
    assert "RUN pip install -r requirements/runtime.lock\n" in docker
    assert re.search(r"^RUN pip install --no-deps \. ", docker, re.M)
