"""Which machine and commit a benchmark ran on, for the line every benchmark prints."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checkout's short commit hash, or "unknown" outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def matcher_build() -> str:
    """Whether the matcher runs compiled with mypyc (setup.py) or as Python source."""
    from newswatch.rules import matcher

    return "matcher compiled (mypyc)" if matcher.__file__.endswith(".so") else \
        "matcher pure Python (NEWSWATCH_PURE=1 or not built)"
