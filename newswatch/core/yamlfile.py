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

libyaml (PyYAML's C parser) does the parsing; the values are built in one flat walk over
its events, which also enforces the caps and refuses anchors and aliases. No node tree is
composed: libyaml's composer recurses in C (a document nested a million deep would crash
the process) and, with PyYAML's resolver, took 3x longer than the walk; in pure Python the
same file takes ~15x longer.

The result is plain Python data made of ``YamlMap`` (a dict), ``YamlList`` (a list), str,
int, float, bool and None.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from newswatch.core.errors import Issue
from newswatch.core.heap import collector_paused

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


_CLOSING = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_PLAIN_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
               "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
               "tag:yaml.org,2002:timestamp")


def _syntax(message: str, mark: Any) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(None, None, message, mark)


def _scalar(event: yaml.ScalarEvent) -> Any:
    """The value of a scalar: text unless it is plain and reads as null, a boolean or a
    number (the rules of the module docstring)."""
    value: str = event.value
    if event.style:  # quoted or block scalar: always text
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
    """Builds plain values from libyaml's events in one pass, checking as it goes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.open: list[YamlMap | YamlList] = []  # collections not yet closed, outermost first
        self.keys: list[str | None] = []  # per open collection: a mapping's pending key
        self.nodes = 0
        self.root: Any = None

    def fail(self, event: Any, message: str) -> YamlError:
        return YamlError(Issue(self.path, event.start_mark.line + 1, message))

    def node(self, event: Any) -> None:
        """A scalar or the start of a collection: checked, built, attached to its parent."""
        if event.anchor is not None:
            raise _syntax("anchors (&name) are not allowed", event.start_mark)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _syntax(f"document too large (more than {MAX_NODES} nodes)", event.start_mark)
        line = event.start_mark.line + 1
        parent = self.open[-1] if self.open else None
        if isinstance(parent, YamlMap) and self.keys[-1] is None:
            self.key(event, parent, line)
            return
        value: Any
        if isinstance(event, yaml.ScalarEvent):
            if event.tag is not None and event.tag not in _PLAIN_TAGS:
                raise self.fail(event, f"tag {event.tag} is not allowed")
            value = _scalar(event)
        else:
            value = self.collection(event, line)
        if parent is None:
            self.root = value
        elif isinstance(parent, YamlList):
            parent.append(value)
            parent.item_lines.append(line)
        else:
            key = self.keys[-1]
            assert key is not None
            parent[key] = value
            self.keys[-1] = None
        if not isinstance(event, yaml.ScalarEvent):
            if len(self.open) >= MAX_DEPTH:
                raise _syntax(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            self.open.append(value)
            self.keys.append(None)

    def collection(self, event: Any, line: int) -> YamlMap | YamlList:
        is_list = isinstance(event, yaml.SequenceStartEvent)
        tag = "tag:yaml.org,2002:seq" if is_list else "tag:yaml.org,2002:map"
        if event.tag is not None and event.tag != tag:
            raise self.fail(event, f"tag {event.tag} is not allowed")
        made: YamlMap | YamlList
        if is_list:
            made = YamlList()
            made.item_lines = []
        else:
            made = YamlMap()
            made.key_lines = {}
        made.line = line
        return made

    def key(self, event: Any, mapping: YamlMap, line: int) -> None:
        if not isinstance(event, yaml.ScalarEvent):
            raise self.fail(event, "mapping keys must be plain text")
        key = str(event.value)
        if key == "<<" and not event.style and event.tag is None:
            raise self.fail(event, "merge keys (<<) are not allowed")
        if key in mapping:
            first = mapping.key_lines[key]
            raise self.fail(event, f"duplicate key '{key}' (first defined on line {first})")
        mapping.key_lines[key] = line
        self.keys[-1] = key

    def close(self) -> None:
        self.open.pop()
        self.keys.pop()


def _build(text: str, path: str) -> Any:
    """Values of the one document of ``text`` (None when empty), from libyaml's events
    (flat, so no recursion however deep a hostile file nests), checking the caps, anchors,
    aliases, tags, keys and duplicates on the way: a hostile file is refused at its first
    problem, before the rest is built."""
    parser = yaml.CSafeLoader(text)
    builder = _Builder(path)
    documents = 0
    try:
        with collector_paused():  # every value built here lives on
            while parser.check_event():
                event = parser.get_event()
                if isinstance(event, _NODE_EVENTS):
                    builder.node(event)
                elif isinstance(event, _CLOSING):
                    builder.close()
                elif isinstance(event, yaml.AliasEvent):
                    raise _syntax("aliases (*name) are not allowed", event.start_mark)
                elif isinstance(event, yaml.DocumentStartEvent):
                    documents += 1
                    if documents > 1:
                        raise _syntax("expected a single document in the stream",
                                      event.start_mark)
    finally:
        parser.dispose()
    return builder.root


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
        return _build(text, path)
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
