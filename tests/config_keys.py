"""Every key the config validator accepts, read from newswatch/core/config.py's source.

Each ``MapReader(..., allowed=...)`` call lists the keys one mapping accepts; the function
it sits in (and, for receivers, the ``kind == "..."`` branch) says where that mapping is.
Reading the source rather than a hand-kept list is the point: a key added to an
``allowed=`` tuple appears here without anyone remembering to add it.
"""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path

CONFIG_SOURCE = Path(__file__).resolve().parents[1] / "newswatch" / "core" / "config.py"

# function in newswatch/core/config.py -> dotted prefix of the mapping it reads
SECTIONS = {
    "parse_config": "",
    "_feeds": "feeds[].",
    "_receivers": "receivers.NAME.",
    "_fetch": "fetch.",
    "_kafka": "kafka.",
    "_metrics": "metrics.",
    "_archive": "archive.",
    "_pages": "pages.",
    "_silences": "silences[].",
}


def _strings(node: ast.AST, constants: dict[str, list[str]]) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        if node.id not in constants:
            raise ValueError(f"allowed= refers to {node.id}, not a module-level tuple")
        return constants[node.id]
    if isinstance(node, ast.Starred):
        return _strings(node.value, constants)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for item in node.elts for s in _strings(item, constants)]
    raise ValueError(f"cannot read allowed= keys from {ast.dump(node)}")


def config_keys(source: str | None = None) -> set[str]:
    """Dotted paths of every accepted key, e.g. ``feeds[].interval``,
    ``receivers.NAME.slack.channel``; receiver kinds appear as ``receivers.NAME.slack``."""
    tree = ast.parse(source if source is not None else CONFIG_SOURCE.read_text("utf-8"))
    constants: dict[str, list[str]] = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Tuple)):
            with contextlib.suppress(ValueError):
                constants[node.targets[0].id] = _strings(node.value, constants)
    keys: set[str] = set()
    for func in tree.body:
        if not isinstance(func, ast.FunctionDef):
            continue
        for call, kind in _calls(func.body, None):
            allowed = next((k.value for k in call.keywords if k.arg == "allowed"), None)
            if allowed is None:
                continue
            if func.name not in SECTIONS:
                raise ValueError(f"MapReader in {func.name}: add it to SECTIONS")
            prefix = SECTIONS[func.name] + (f"{kind}." if kind else "")
            if kind:
                keys.add(prefix[:-1])
            keys.update(prefix + key for key in _strings(allowed, constants))
    return keys


def _calls(body: list[ast.stmt], kind: str | None) -> list[tuple[ast.Call, str | None]]:
    out: list[tuple[ast.Call, str | None]] = []
    for stmt in body:
        if isinstance(stmt, ast.If):
            branch = _kind_of(stmt.test) or kind
            out += _calls(stmt.body, branch)
            out += _calls(stmt.orelse, kind)
            continue
        if isinstance(stmt, ast.For | ast.While | ast.With | ast.Try):
            for name in ("body", "orelse", "finalbody"):
                out += _calls(getattr(stmt, name, []), kind)
            for handler in getattr(stmt, "handlers", []):
                out += _calls(handler.body, kind)
            if isinstance(stmt, ast.For | ast.While):
                out += _calls([ast.Expr(stmt.iter if isinstance(stmt, ast.For)
                                        else stmt.test)], kind)
            continue
        for node in ast.walk(stmt):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "MapReader"):
                out.append((node, kind))
    return out


def _kind_of(test: ast.expr) -> str | None:
    """``kind == "slack"`` -> "slack"."""
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "kind" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant)):
        value = test.comparators[0].value
        return value if isinstance(value, str) else None
    return None
