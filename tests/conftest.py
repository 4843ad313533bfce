"""Suite-wide policy: in CI (CI=true) a skipped test is a failed run, never a silent pass;
and the session-wide Kafka broker fixture."""

from __future__ import annotations

import os
import tempfile

import pytest

# The real Kafka broker is one per test session: registered here, once, so that every test
# module shares it (a fixture imported into several modules would start one per module).
# It is only started when a test asks for it.
from tests.kafka_fixtures import kafka_bootstrap  # noqa: F401

# Compiled rule sets are cached (streams/rulecache.py): the suite and the processes it
# starts use a cache of their own, never the user's ~/.cache.
os.environ.setdefault("NEWSWATCH_CACHE_DIR", tempfile.mkdtemp(prefix="newswatch-test-cache-"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; skips are failures in CI", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
