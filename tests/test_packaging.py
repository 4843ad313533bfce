"""The wheel, as a user installs it: one top-level package, ``newswatch``, that installs and
imports beside django-rules (whose top-level package is also called ``rules``), and works from
a folder that holds ``rules/``, ``monitor/`` and ``streams/`` folders of its own.

Real builds and installs, no network: the wheel is built without build isolation from the
sources the Dockerfile copies, and installed with ``--no-index`` into a venv that takes the
dependencies from this environment (``--system-site-packages``). django-rules is installed
into that venv from a wheel repacked from this environment's copy (it is in the dev extra).
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


def run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command with this environment minus anything pointing at the work tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


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
    base = tmp_path_factory.mktemp("wheel")
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
                "--no-index", "--disable-pip-version-check", "-w", out, ".", cwd=src)
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
    base = tmp_path_factory.mktemp("venv")
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


def test_it_installs_beside_django_rules_and_both_import(venv: Venv, tmp_path: Path) -> None:
    found = venv.probe(tmp_path)
    assert found["prefix"] == str(venv.path)
    # Both from the venv itself: not this environment's copies, nor the editable work tree.
    assert Path(found["rules"]).is_relative_to(venv.site), found
    assert found["predicate"] is True
    assert Path(found["newswatch"]).is_relative_to(venv.site), found
    assert Path(found["matcher"]) == venv.site / "newswatch" / "rules" / "matcher.py"
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
        assert (venv.site / "newswatch" / "rules" / "matcher.py").is_file()

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
