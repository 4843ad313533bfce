"""The suite's own machinery holds: ``--dist loadgroup`` (pyproject.toml's addopts) really
sends the tests of one ``xdist_group`` to one process.

The heavy Kafka scenarios rely on it: side by side they overload the 2 cores CI has, and
the scenario module's session fixture would live its day once per process. pytest 9.2
made node ids read-only to pytest-xdist 3.8's renaming, and the grouping was lost without a
word; requirements/dev.lock pins a pair that groups, and this test says when it does not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GROUPED = '''\
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("n", range(8))
def test_where(n):
    with open("workers.txt", "a") as out:
        out.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
'''


def test_tests_of_one_xdist_group_run_in_one_process(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "test_grouped.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = (tmp_path / "workers.txt").read_text(encoding="utf-8").split()
    assert len(workers) == 8
    assert len(set(workers)) == 1, f"one group ran in {sorted(set(workers))}"
