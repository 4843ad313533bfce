"""Strict YAML for files people write: configs and watch-rules.

What is different from ``yaml.safe_load``, and why:

- Anchors and aliases are refused: they are what alias bombs are made of, and nobody needs
  them in a watchlist.
- Duplicate keys are refused, naming both lines (safe_load silently keeps the last).
- Only ``true``/``false`` are booleans, only ``null``/``~``/empty are null; ``no``, ``yes``,
  ``on``, ``off`` stay strings (YAML 1.1 would turn the country code NO into False).
- Every mapping and sequence remembers the line of each key and item, so later validation
  can say ``path:line: message``.
- Size caps: at most ``MAX_BYTES`` of text, ``MAX_NODES`` nodes and ``MAX_DEPTH`` nesting,
  enforced while parsing: a hostile file is refused before anything is built from it.

libyaml (PyYAML's C parser) does the parsing, in two passes: first a flat walk over the
events, which enforces the caps and refuses anchors and aliases (its composer recurses in
C, and a document nested a million deep would crash the process); then the composition into
nodes with their line marks, from which the values are built. In pure Python the same file
takes ~5x longer.

The result is plain Python data made of ``YamlMap`` (a dict), ``YamlList`` (a list), str,
int, float, bool and None.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from newswatch.core.errors import Issue

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)\Z")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9]+([eE][-+]?[0-9]+)?\Z")


def describe(value: object) -> str:
    """How a YAML value's type is named in messages ("got a number")."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class YamlMap(dict[str, Any]):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YamlList(list[Any]):
    """A sequence that knows its own line and the line of each item (1-based)."""

    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class YamlError(Exception):
    """The text is not acceptable YAML; ``issue`` locates the first problem."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue


_OPENING = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSING = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_PLAIN_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
               "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
               "tag:yaml.org,2002:timestamp")


def _syntax(message: str, mark: Any) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(None, None, message, mark)


def _check_events(text: str) -> None:
    """The first pass: walk the parser's events (flat, in C) and raise MarkedYAMLError at
    the first anchor, alias, node past ``MAX_NODES`` or nesting past ``MAX_DEPTH``."""
    parser = yaml.CSafeLoader(text)
    try:
        depth = nodes = 0
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.AliasEvent):
                raise _syntax("aliases (*name) are not allowed", event.start_mark)
            if not isinstance(event, _NODE_EVENTS):
                depth -= isinstance(event, _CLOSING)
                continue
            if event.anchor is not None:
                raise _syntax("anchors (&name) are not allowed", event.start_mark)
            nodes += 1
            if nodes > MAX_NODES:
                raise _syntax(f"document too large (more than {MAX_NODES} nodes)",
                              event.start_mark)
            if isinstance(event, _OPENING):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _syntax(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
    finally:
        parser.dispose()


def _compose(text: str) -> Node | None:
    """Both passes: the checks, then the node tree (libyaml) with line marks."""
    _check_events(text)
    composer = yaml.CSafeLoader(text)
    try:
        node: Node | None = composer.get_single_node()
        return node
    finally:
        composer.dispose()


def _scalar(node: ScalarNode) -> Any:
    value: str = node.value
    # An explicit tag (!!binary "...", !!python/name:...) is refused even on quoted text:
    # the file asked for something other than text.
    if node.tag not in _PLAIN_TAGS:
        raise ValueError(f"tag {node.tag} is not allowed")
    if node.style is not None and node.style != "":  # quoted or block scalar: always text
        return value
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if _INT.match(value):
        return int(value.replace("_", ""))
    if _FLOAT.match(value):
        return float(value.replace("_", ""))
    return value


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Node, message: str) -> YamlError:
        return YamlError(Issue(self.path, node.start_mark.line + 1, message))

    def build(self, node: Node) -> Any:
        """Plain values from a node tree that passed ``_check_events`` (so its depth is
        bounded and no node is shared)."""
        if isinstance(node, ScalarNode):
            if node.tag.startswith("tag:yaml.org,2002:") or node.tag == "!":
                try:
                    return _scalar(node)
                except ValueError as exc:
                    raise self.fail(node, str(exc)) from None
            raise self.fail(node, f"tag {node.tag} is not allowed")
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise self.fail(node, f"tag {node.tag} is not allowed")
            seq = YamlList(self.build(item) for item in node.value)
            seq.line = node.start_mark.line + 1
            seq.item_lines = [item.start_mark.line + 1 for item in node.value]
            return seq
        if isinstance(node, MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise self.fail(node, f"tag {node.tag} is not allowed")
            mapping = YamlMap()
            mapping.line = node.start_mark.line + 1
            mapping.key_lines = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self.fail(key_node, "mapping keys must be plain text")
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(key_node, "merge keys (<<) are not allowed")
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in mapping:
                    first = mapping.key_lines[key]
                    message = f"duplicate key '{key}' (first defined on line {first})"
                    raise self.fail(key_node, message)
                mapping.key_lines[key] = line
                mapping[key] = self.build(value_node)
            return mapping
        raise self.fail(node, "unsupported YAML node")


def load_yaml(text: str, path: str) -> Any:
    """Parse one YAML document strictly; raises YamlError with ``path:line`` on any problem.

    An empty document yields None.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(Issue(path, 0, f"file larger than {MAX_BYTES // 1024} KiB"))
    if "\t" in text:
        # PyYAML's own message for a tab in indentation is cryptic; say it plainly.
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.lstrip(" ")
            if stripped.startswith("\t"):
                raise YamlError(Issue(path, number, "tab used for indentation; use spaces"))
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise YamlError(Issue(path, 0, f"YAML syntax error: {problem}")) from None
        message = f"YAML syntax error: {problem} (column {mark.column + 1})"
        raise YamlError(Issue(path, mark.line + 1, message)) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, ...)
        at = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"character U+{code:04X} is not allowed in YAML"
        raise YamlError(Issue(path, at, message)) from None
    except yaml.YAMLError as exc:
        raise YamlError(Issue(path, 0, f"YAML syntax error: {exc}")) from None
    if node is None:
        return None
    return _Builder(path).build(node)
