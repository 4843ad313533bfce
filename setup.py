"""Build: the matcher's modules compiled to C with mypyc, unless ``NEWSWATCH_PURE=1``.

The compiled modules are the same Python source, type-checked (mypy strict) and translated
to a C extension each at install time: the matcher runs about a third faster
(docs/performance.md). ``NEWSWATCH_PURE=1`` installs the source alone, where no C compiler
is at hand; the behaviour is the same. Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

# The hot path of matching an article, and nothing that imports a framework.
COMPILED = [
    "newswatch/rules/text.py",
    "newswatch/rules/transliterate.py",
    "newswatch/rules/compiled.py",
    "newswatch/rules/evaluate.py",
    "newswatch/rules/matcher.py",
    "newswatch/monitor/textclean.py",
]


def compiled_modules() -> list[Extension]:
    if os.environ.get("NEWSWATCH_PURE") == "1":
        return []
    from mypyc.build import mypycify

    return mypycify(COMPILED, opt_level="3", group_name="newswatch.rules.native")


if __name__ == "__main__":  # run by the build backend; tests/test_packaging.py imports it
    setup(ext_modules=compiled_modules())
