"""The layer order of docs/architecture.md, enforced on the source (an AST walk, no imports).

Imports only point down this list: ``newswatch.core`` ← ``newswatch.rules`` ←
``newswatch.monitor`` ← ``newswatch.streams`` ← ``newswatch.cli`` (the composition root,
which nothing imports). Besides the order: no module imports the card's folders by their bare
names (``rules``, ``monitor``, ``streams``: a folder of YAML named ``rules/`` would shadow
them); faust and aiokafka are imported only under ``newswatch.streams.kafka``; the rule
engine does no I/O; and imports sit at the top of a module, not inside functions, except the
optional Kafka dependencies.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = ("newswatch.core", "newswatch.rules", "newswatch.monitor", "newswatch.streams",
          "newswatch.cli")
# The package root (``__version__``) sits with the base layer; ``__main__`` above everything.
TOP = "newswatch.__main__"
BARE = ("rules", "monitor", "streams")
KAFKA_ONLY = ("faust", "aiokafka", "mode")
KAFKA_PACKAGE = "newswatch.streams.kafka"
# The rule engine is pure: nothing that reaches a network, a database, a process or a clock.
NO_IO_LAYER = "newswatch.rules"
IO_MODULES = ("aiohttp", "aiosmtplib", "asyncio", "http", "slack_sdk", "smtplib", "socket",
              "sqlite3", "subprocess", "urllib", "time", "newswatch.core.state")
# Imports allowed inside functions: the optional Kafka extra (a user without it can run
# everything else), and what a cold start measurably should not pay for: py3langid costs
# ~110 ms to import and ~0.5 s to load its model (python -X importtime), needed only when
# an article has no language.
LAZY_ALLOWED = (*KAFKA_ONLY, KAFKA_PACKAGE, "py3langid")
# The CLI loads the network stack (aiohttp, slack_sdk, aiosmtplib, feedparser: ~175 ms by
# python -X importtime; trafilatura for full text, more again) only in the commands that
# fetch or send.
CLI_LAZY_ALLOWED = ("newswatch.monitor.fetch", "newswatch.monitor.poller",
                    "newswatch.streams.embedded", "newswatch.streams.receivers",
                    "newswatch.streams.fulltext")


@dataclass(frozen=True)
class ImportSite:
    module: str     # the importing module
    target: str     # the imported module (for ``from a import b``: ``a.b`` when b is a module)
    line: int
    in_function: bool


def module_files() -> dict[str, Path]:
    """Every module of the package by its dotted name, read through the real folders."""
    roots = {"newswatch": ROOT / "newswatch", "newswatch.rules": ROOT / "rules",
             "newswatch.monitor": ROOT / "monitor", "newswatch.streams": ROOT / "streams"}
    out: dict[str, Path] = {}
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts and parts[0] in BARE and package == "newswatch":
                continue  # the symlinks: read once, under their own root
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def import_sites(module: str, source: str) -> Iterator[ImportSite]:
    """Absolute import targets of one module's source, each marked if inside a function."""
    tree = ast.parse(source)
    functions: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            functions.update(id(child) for child in ast.walk(node) if child is not node)
    for node in ast.walk(tree):
        inside = id(node) in functions
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportSite(module, alias.name, node.lineno, inside)
        elif isinstance(node, ast.ImportFrom):
            # relative imports are reported as such (by ``violations``), never resolved
            base = "." * node.level + (node.module or "")
            for alias in node.names:
                yield ImportSite(module, f"{base}.{alias.name}", node.lineno, inside)


def layer_of(module: str) -> int | None:
    """Index in LAYERS; the package root counts as the base layer, ``__main__`` above all."""
    if module == TOP:
        return len(LAYERS)
    for index, layer in reversed(list(enumerate(LAYERS))):
        if module == layer or module.startswith(layer + "."):
            return index
    if module == "newswatch" or module.startswith("newswatch."):
        return 0
    return None


def _within(target: str, names: Iterable[str]) -> bool:
    return any(target == name or target.startswith(name + ".") for name in names)


def violations(sources: Mapping[str, str]) -> list[str]:
    """Every broken layer rule in ``sources`` (dotted module name → source), as
    ``module:line: message``; empty when the tree keeps to the rules."""
    found: list[str] = []
    for module, source in sources.items():
        own = layer_of(module)
        for site in import_sites(module, source):
            where = f"{module}:{site.line}"
            target_layer = layer_of(site.target)
            if own is not None and target_layer is not None and target_layer > own:
                found.append(f"{where}: imports {site.target} from a higher layer")
            if site.target.startswith("."):
                found.append(f"{where}: relative import {site.target}; import absolutely")
            if site.target.split(".")[0] in BARE:
                found.append(f"{where}: imports {site.target} by its bare folder name; "
                             f"use newswatch.{site.target}")
            if _within(site.target, KAFKA_ONLY) and not _within(module, [KAFKA_PACKAGE]):
                found.append(f"{where}: imports {site.target} outside {KAFKA_PACKAGE}")
            if _within(module, [NO_IO_LAYER]) and _within(site.target, IO_MODULES):
                found.append(f"{where}: the rule engine does no I/O, yet imports "
                             f"{site.target}")
            lazy_ok = _within(site.target, LAZY_ALLOWED) or (
                _within(module, ["newswatch.cli"]) and _within(site.target, CLI_LAZY_ALLOWED))
            if site.in_function and not lazy_ok:
                found.append(f"{where}: imports {site.target} inside a function")
    return found


def package_sources() -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in module_files().items()}


def test_the_package_keeps_its_layers() -> None:
    assert violations(package_sources()) == []


def test_every_layer_and_the_kafka_package_are_read() -> None:
    names = set(module_files())
    for expected in (*LAYERS, KAFKA_PACKAGE, "newswatch.streams.kafka.worker",
                     "newswatch.core.article", "newswatch.rules.matcher",
                     "newswatch.monitor.fetch", TOP):
        assert expected in names


def test_a_planted_upward_import_fails() -> None:
    sources = package_sources()
    sources["newswatch.rules.model"] += "\nfrom newswatch.streams.decide import Verdict\n"
    assert violations(sources) == [
        f"newswatch.rules.model:{sources['newswatch.rules.model'].count(chr(10))}: imports "
        "newswatch.streams.decide.Verdict from a higher layer"]


def test_each_other_rule_catches_its_plant() -> None:
    planted = {
        "newswatch.core.errors": "from newswatch.cli import main\n",
        "newswatch.monitor.poller": "import rules.model\n",
        "newswatch.streams.decide": "import faust\n",
        "newswatch.rules.text": "import sqlite3\n",
        "newswatch.streams.pipeline": "def f() -> None:\n    from newswatch.core import state\n",
        "newswatch.streams.notices": "def f() -> None:\n    import newswatch.monitor.fetch\n",
        "newswatch.cli.kafka": "def f() -> None:\n    from newswatch.streams.kafka import worker\n",
        "newswatch.monitor.fetch": "from .netguard import check_url\n",
    }
    assert violations(planted) == [
        "newswatch.core.errors:1: imports newswatch.cli.main from a higher layer",
        "newswatch.monitor.poller:1: imports rules.model by its bare folder name; "
        "use newswatch.rules.model",
        "newswatch.streams.decide:1: imports faust outside newswatch.streams.kafka",
        "newswatch.rules.text:1: the rule engine does no I/O, yet imports sqlite3",
        "newswatch.streams.pipeline:2: imports newswatch.core.state inside a function",
        "newswatch.streams.notices:2: imports newswatch.monitor.fetch inside a function",
        "newswatch.monitor.fetch:1: relative import .netguard.check_url; import absolutely",
    ]
