"""A cache of compiled rule sets: unchanged rule files are ready to match in a fraction of
a second instead of being parsed, validated and compiled again (docs/performance.md).

1. **Key.** The SHA-256 of everything a compiled rule set depends on: the newswatch
   version, the Python version, the code and data of the rules package (matcher,
   loader, gazetteer; its compiled modules too), the receivers ``notify:`` was checked
   against, and every rule file's name and bytes. Any change gives another key, so a
   stale entry is never read.
2. **Entry.** A file named by the key: a SHA-256 digest of the body, then the body, the
   pickled ``Matcher``. It is written only after the rule set loaded and passed its
   examples, to a temporary file renamed into place (readers never see half a file).
3. **Trust.** Unpickling runs code, so an entry is read only from a directory and a file
   that belong to this user and that nobody else can write (the same trust as Python's
   own ``__pycache__``); anything else is ignored and never written to. A digest that
   does not match the body (a truncated or altered file) is ignored too.
4. **Failure.** Any problem reading or writing the cache is logged at debug level and the
   rules are compiled as if there were no cache: the cache can make loading faster, never
   make it fail.

Where: ``$NEWSWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/newswatch``, else
``~/.cache/newswatch``; ``NEWSWATCH_CACHE_DIR=off`` turns it off. The ``KEEP`` most
recently used entries are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import platform
import stat
import tempfile
from collections.abc import Callable, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path

import newswatch.rules as rules_package
from newswatch.core.heap import collector_paused
from newswatch.rules.matcher import Matcher

log = logging.getLogger("newswatch.rules")

KEEP = 8
_DIGEST = 32  # bytes of SHA-256


def cache_dir() -> Path | None:
    """Where entries live, or None when the cache is off."""
    configured = os.environ.get("NEWSWATCH_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newswatch"


@cache
def _code_digest() -> bytes:
    """The rules package's code and data, so an upgrade, a local edit or a build of the
    compiled modules (setup.py) changes keys."""
    digest = hashlib.sha256()
    package = Path(rules_package.__file__ or "").resolve().parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".so", ".yaml", ".json", ".txt", ".csv"):
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.digest()


def key_of(sources: Sequence[tuple[str, str]], receivers: frozenset[str] | None) -> str:
    """The entry name for rule files ``sources`` ((shown name, text) pairs)."""
    digest = hashlib.sha256()
    try:
        version = metadata.version("newswatch")
    except metadata.PackageNotFoundError:
        version = "unknown"
    checked = "unchecked" if receivers is None else repr(sorted(receivers))
    for part in (version, platform.python_version(), checked):
        digest.update(part.encode() + b"\0")
    digest.update(_code_digest())
    for name, text in sources:
        digest.update(name.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def _private(path: Path, *, directory: bool) -> bool:
    """Owned by this user, of the expected kind, and writable by nobody else."""
    try:
        info = path.lstat()
    except OSError:
        return False
    kind = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    return kind and info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read(folder: Path, key: str) -> Matcher | None:
    """The cached Matcher for ``key``, or None (absent, not trusted, damaged, unreadable)."""
    path = folder / key
    if not (_private(folder, directory=True) and _private(path, directory=False)):
        return None
    try:
        body = path.read_bytes()
        if hashlib.sha256(body[_DIGEST:]).digest() != body[:_DIGEST]:
            log.debug("rule cache: %s is damaged; compiling", path)
            return None
        with collector_paused():  # every object unpickled lives on
            matcher = pickle.loads(body[_DIGEST:])
        os.utime(path)  # most recently used: kept longest
    except Exception as error:  # a cache must never make loading fail
        log.debug("rule cache: cannot read %s (%s); compiling", path, error)
        return None
    return matcher if isinstance(matcher, Matcher) else None


def write(folder: Path, key: str, matcher: Matcher) -> None:
    """Store ``matcher`` under ``key`` (atomically), then drop all but the KEEP newest."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(folder, directory=True):
            log.debug("rule cache: %s is not private to this user; not written", folder)
            return
        body = pickle.dumps(matcher, protocol=pickle.HIGHEST_PROTOCOL)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(hashlib.sha256(body).digest())
                out.write(body)
            os.replace(temporary, folder / key)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _prune(folder)
    except Exception as error:  # a cache must never make loading fail
        log.debug("rule cache: cannot write %s (%s)", folder, error)


def _prune(folder: Path) -> None:
    entries = [p for p in folder.iterdir() if len(p.name) == 64 and p.is_file()]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[KEEP:]:
        with contextlib.suppress(OSError):
            stale.unlink()


def cached(
    sources: Sequence[tuple[str, str]],
    receivers: frozenset[str] | None,
    build: Callable[[], Matcher],
) -> Matcher:
    """The Matcher for these rule files: from the cache when an entry matches, else
    ``build()`` (which raises for rules that do not load), stored for next time."""
    folder = cache_dir()
    if folder is None:
        return build()
    key = key_of(sources, receivers)
    matcher = read(folder, key)
    if matcher is None:
        matcher = build()
        write(folder, key, matcher)
    return matcher
