"""The modules setup.py compiles with mypyc are the compiled build of the source beside them.

An editable install (``pip install -e .``) puts each compiled module next to its source, and
Python imports the compiled one: a source edited since the last build would not run at all.
So a compiled module older than its source fails here, with the command that rebuilds it.
CI (``CI=true``) runs the compiled build, as users install it: the figures of
docs/performance.md are its figures, so there a pure-Python install fails too.
"""

from __future__ import annotations

import importlib
from importlib.machinery import ExtensionFileLoader
from pathlib import Path

import pytest

from setup import COMPILED
from tests.kafka_fixtures import in_ci

ROOT = Path(__file__).resolve().parents[1]
MODULES = [path.removesuffix(".py").replace("/", ".") for path in COMPILED]


@pytest.mark.parametrize("name", MODULES)
def test_a_compiled_module_is_no_older_than_its_source(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__spec__ is not None
    # (not module.__file__: mypyc gives a module its group library initialised a made-up one)
    compiled = isinstance(module.__spec__.loader, ExtensionFileLoader)
    source = (ROOT / (name.replace(".", "/") + ".py")).resolve()
    built = sorted(source.parent.glob(source.stem + ".*.so"))
    if not compiled:
        assert not in_ci(), f"{name} runs as Python source in CI: build it (pip install -e .)"
        assert not built, built  # Python would have imported it
        return
    (extension,) = built
    assert extension.stat().st_mtime >= source.stat().st_mtime, (
        f"{extension.name} is older than {source.name}: rebuild with `pip install -e .`"
        " (or NEWSWATCH_PURE=1 pip install -e . for the source alone)")
