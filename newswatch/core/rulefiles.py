"""Reading watch-rule files from disk: the I/O side of rule loading.

``read_rule_sources`` turns the paths a user gave (files or folders) into ``(path, text)``
pairs for ``newswatch.rules.loader.parse_rules``, which stays pure. Contract:

- A file is read as given, whatever its name (the user named it).
- A folder contributes every ``*.yaml`` / ``*.yml`` file below it, recursively, in sorted
  order, skipping hidden entries (``.`` prefix, e.g. ``.git/``, emacs ``.#lock`` files) and
  editors' temporaries (``~`` prefix, ``~``/``.swp``/``.tmp`` suffix) — a half-saved buffer
  must never become live rules.
- A file reached twice (a folder and a file inside it) is read once.
- The path ``-`` reads the ``stdin`` stream given (one rule file, shown as ``<stdin>``).
- Display paths are as given: a relative path stays relative.
- Every problem (missing path, unreadable, not UTF-8, too large) is collected and raised
  together as ``ConfigError``; nothing is returned unless every file could be read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from newswatch.core.errors import ConfigError, Issue
from newswatch.core.yamlfile import MAX_BYTES

__all__ = ["STDIN", "STDIN_NAME", "fingerprint", "is_rule_file_name", "read_rule_sources"]

STDIN = "-"  # the path that names standard input, as everywhere on the command line
STDIN_NAME = "<stdin>"

RULE_SUFFIXES = (".yaml", ".yml")
_TEMPORARY_PREFIXES = (".", "~")
_TEMPORARY_SUFFIXES = ("~", ".swp", ".tmp")


def is_rule_file_name(name: str) -> bool:
    """Whether a file of this name inside a rules folder is loaded (the watcher reuses it)."""
    return name.lower().endswith(RULE_SUFFIXES) and not _is_skipped(name)


def _is_skipped(name: str) -> bool:
    return name.startswith(_TEMPORARY_PREFIXES) or name.endswith(_TEMPORARY_SUFFIXES)


def _files_below(folder: Path) -> list[Path]:
    """Rule files under ``folder``, sorted; symlinked folders are not followed (no loops)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not _is_skipped(name)]
        found.extend(Path(root) / name for name in files if is_rule_file_name(name))
    return sorted(path for path in found if path.is_file())


def _read_text(path: Path, shown: str) -> str | Issue:
    """The file's text, or the Issue that explains why it cannot be used."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # never read more than the cap, even if it grows
    except OSError as exc:
        return Issue(shown, 0, f"cannot read: {exc.strerror or exc}")
    if len(data) > MAX_BYTES:
        return Issue(shown, 0, f"file larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        # utf-8-sig: some Windows editors start files with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Issue(shown, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x})")


def _files_for(path: Path) -> list[Path] | Issue:
    if path.is_dir():
        return _files_below(path)
    if path.is_file():
        return [path]
    if path.exists():
        return Issue(str(path), 0, "not a file or folder")
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python 3.11's word for ELOOP here
            return Issue(str(path), 0, "symlink loop")
        except OSError:
            pass
        return Issue(str(path), 0, "symbolic link to nothing")
    return Issue(str(path), 0, "no such file or folder")


def read_rule_sources(
    paths: Sequence[Path], *, stdin: TextIO | None = None
) -> list[tuple[str, str]]:
    """``(display path, text)`` of every rule file in ``paths`` (files or folders; ``-`` is
    ``stdin``, by default ``sys.stdin``).

    Raises ``ConfigError`` listing every path that could not be read.
    """
    sources: list[tuple[str, str]] = []
    issues: list[Issue] = []
    seen: set[Path] = set()
    for given in paths:
        if str(given) == STDIN:
            text = (stdin or sys.stdin).read(MAX_BYTES + 1)
            if len(text) > MAX_BYTES:
                issues.append(Issue(STDIN_NAME, 0, f"larger than {MAX_BYTES // (1024 * 1024)} "
                                                   "MiB"))
            else:
                sources.append((STDIN_NAME, text))
            continue
        files = _files_for(given)
        if isinstance(files, Issue):
            issues.append(files)
            continue
        for file in files:
            real = file.resolve()
            if real in seen:
                continue
            seen.add(real)
            text = _read_text(file, str(file))
            if isinstance(text, Issue):
                issues.append(text)
            else:
                sources.append((str(file), text))
    if issues:
        raise ConfigError(issues)
    return sources


def fingerprint(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime in ns, size) of every rule file ``read_rule_sources`` would read: cheap
    to compute every second, and it changes whenever a file is written, added or removed."""
    out: list[tuple[str, int, int]] = []
    for given in paths:
        files = _files_for(given)
        if isinstance(files, Issue):
            out.append((str(given), -1, -1))
            continue
        for file in files:
            try:
                st = file.stat()
            except OSError:
                out.append((str(file), -1, -1))
                continue
            out.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(out)
