"""Session-scoped real Kafka broker for tests (deploy/kafka/broker.sh).

Import the fixture explicitly in a test module (it is deliberately not in conftest.py, so
only Kafka tests pay for a broker):

    from tests.kafka_fixtures import kafka_bootstrap  # noqa: F401

``kafka_bootstrap`` yields ``"127.0.0.1:PORT"``.  With NEWSWATCH_KAFKA_BOOTSTRAP set, that
broker is used as is (nothing is started or stopped).  Otherwise one broker per test session
is started in deploy/kafka/run/pytest-<pid>/ (jars are fetched with Maven on first use) and
stopped, and its run directory removed, at session end (NEWSWATCH_KAFKA_KEEP=1 keeps it for
inspection).  A watchdog stops the broker if the session dies before its teardown.

``kafka_admin`` and ``kafka_topics`` are async helpers for the tests.  The broker has
auto.create.topics.enable=false: create topics explicitly (``kafka_topics`` /
``create_topics`` also wait until the broker's metadata has them).

Outside CI a missing prerequisite (java, Maven when the jars are not there yet, aiokafka)
skips; in CI (CI=true) the broker is always started and any failure is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # aiokafka is optional (newswatch[kafka]); imported lazily below
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_DIR = REPO_ROOT / "deploy" / "kafka"
BROKER_SH = KAFKA_DIR / "broker.sh"

# Jar download (first run only) plus broker.sh's own 60 s readiness deadline.
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unique_name(prefix: str) -> str:
    """A topic / group / transactional id that cannot clash with other tests or sessions."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _missing_prerequisite() -> str | None:
    if shutil.which("java") is None:
        return "java (17+) is not installed"
    jars_present = any((KAFKA_DIR / "lib").glob("kafka_2.13-*.jar"))
    if not jars_present and shutil.which("mvn") is None:
        return "deploy/kafka/lib/ is empty and Maven is not installed to fetch the jars"
    try:
        import aiokafka  # noqa: F401
    except ImportError:
        return "aiokafka is not installed (pip install -e '.[kafka]')"
    return None


def _broker_sh(*args: str, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BROKER_SH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("NEWSWATCH_KAFKA_BOOTSTRAP", "").strip()
    if external:
        yield external
        return

    missing = _missing_prerequisite()
    if missing is not None:
        if in_ci():
            pytest.fail(f"CI=true: cannot start the Kafka broker: {missing}", pytrace=False)
        pytest.skip(f"no Kafka broker: {missing} (or set NEWSWATCH_KAFKA_BOOTSTRAP)")

    name = f"pytest-{os.getpid()}"
    env = {
        **os.environ,
        "PYTHON": sys.executable,  # the interpreter that has aiokafka
        "KAFKA_OWNER_PID": str(os.getpid()),
    }
    try:
        started = _broker_sh("start", name, timeout=START_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as exc:
        _broker_sh("stop", name, timeout=STOP_TIMEOUT_S, env=env)
        pytest.fail(f"broker.sh start {name} timed out: {exc.stderr!r}", pytrace=False)
    lines = started.stdout.strip().splitlines()
    if started.returncode != 0 or not lines:
        pytest.fail(
            f"broker.sh start {name} failed (exit {started.returncode}):\n{started.stderr}",
            pytrace=False,
        )
    bootstrap = lines[-1]
    try:
        yield bootstrap
    finally:
        _broker_sh("stop", name, timeout=STOP_TIMEOUT_S, env=env)
        if os.environ.get("NEWSWATCH_KAFKA_KEEP", "") != "1":
            _broker_sh("clean", name, timeout=STOP_TIMEOUT_S, env=env)


# ----------------------------------------------------------------------------- helpers


@asynccontextmanager
async def kafka_admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def wait_for_topics(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], timeout: float = 15.0
) -> None:
    """Wait until the broker's metadata shows each topic with all partitions led.

    CreateTopics returns once the controller has committed the topic; the broker's
    metadata cache (which DescribeConfigs, Metadata and Produce consult) follows a moment
    later, so a request sent straight after it can get UNKNOWN_TOPIC_OR_PARTITION. The
    wait itself is the production one (newswatch.streams.kafka.client), so tests exercise it too.
    """
    from newswatch.streams.kafka.client import wait_for_topics as wait

    await wait(admin, partitions, timeout)


async def create_topics(admin: AIOKafkaAdminClient, *new: NewTopic) -> None:
    """Create topics, raise on any per-topic error, and wait until they are usable."""
    response = await admin.create_topics(list(new))
    errors = [e for e in response.to_object()["topic_errors"] if e["error_code"] != 0]
    if errors:
        raise RuntimeError(f"CreateTopics failed: {errors}")
    await wait_for_topics(admin, {t.name: t.num_partitions for t in new})


@asynccontextmanager
async def kafka_topics(bootstrap: str, *new: NewTopic) -> AsyncIterator[AIOKafkaAdminClient]:
    """Create topics for one test and delete them afterwards (matters on a reused broker)."""
    async with kafka_admin(bootstrap) as admin:
        await create_topics(admin, *new)
        try:
            yield admin
        finally:
            await admin.delete_topics([t.name for t in new])


async def wait_for_stable_group(bootstrap: str, group: str, topic: str, members: int,
                                timeout: float = 120.0) -> None:
    """Wait until the consumer group is Stable with ``members`` members, each assigned
    partitions of ``topic``, every partition of it assigned: a scenario that starts before
    that would race the last rebalance."""
    import asyncio
    import time

    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
    from aiokafka.errors import KafkaError

    async with kafka_admin(bootstrap) as admin:
        deadline = time.monotonic() + timeout
        (described,) = await admin.describe_topics([topic])
        partitions = sorted(p["partition"] for p in described["partitions"])
        while True:
            owned: list[list[int]] = []
            state = "Unknown"
            try:
                (response,) = await admin.describe_consumer_groups([group])
                found = response.to_object()["groups"][0]
                state = found["state"]
                for member in found["members"]:
                    raw = member["member_assignment"]
                    tps = ConsumerProtocolMemberAssignment.decode(raw).partitions() if raw else []
                    owned.append(sorted(tp.partition for tp in tps if tp.topic == topic))
            except KafkaError:  # no coordinator yet on a fresh group
                pass
            if (state == "Stable" and len(owned) == members and all(owned)
                    and sorted(p for o in owned for p in o) == partitions):
                return
            assert time.monotonic() < deadline, f"group {group}: {state}, {owned}"
            await asyncio.sleep(0.5)  # group membership has no change event to wait on
