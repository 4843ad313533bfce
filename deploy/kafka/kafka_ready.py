"""Wait until a Kafka broker answers a real metadata request (used by broker.sh).

usage: python kafka_ready.py BOOTSTRAP [--pid PID] [--brokers N] [--timeout SECONDS]

Exit status: 0 ready, 1 deadline passed, 2 the broker process (--pid) exited,
3 aiokafka is not importable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


async def _probe(bootstrap: str, attempt_timeout: float, brokers_wanted: int = 1) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(attempt_timeout * 1000),
        retry_backoff_ms=100,
    )
    try:
        await asyncio.wait_for(admin.start(), attempt_timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), attempt_timeout)
        await asyncio.wait_for(admin.list_topics(), attempt_timeout)
    finally:
        await admin.close()
    brokers = cluster.get("brokers", [])
    if len(brokers) < brokers_wanted:  # a cluster node up before its peers registered
        raise RuntimeError(f"{len(brokers)} of {brokers_wanted} brokers registered")
    return f"cluster {cluster.get('cluster_id')} with {len(brokers)} broker(s)"


async def wait_ready(bootstrap: str, pid: int | None, timeout: float, brokers: int = 1) -> int:
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        if not _alive(pid):
            print(f"kafka_ready: broker process {pid} exited", file=sys.stderr)
            return 2
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(
                f"kafka_ready: {bootstrap} not ready after {timeout:.0f}s: {last_error}",
                file=sys.stderr,
            )
            return 1
        try:
            summary = await _probe(bootstrap, min(5.0, max(remaining, 0.5)), brokers)
        except Exception as exc:  # any failure means "not yet"
            last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(min(0.25, max(deadline - time.monotonic(), 0)))
            continue
        print(f"kafka_ready: {bootstrap} answers metadata: {summary}", file=sys.stderr)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("--pid", type=int, default=None)
    parser.add_argument("--brokers", type=int, default=1,
                        help="ready only once the cluster lists this many brokers")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        import aiokafka  # noqa: F401
    except ImportError:
        print(
            f"kafka_ready: aiokafka is not importable by {sys.executable}; "
            "install newswatch[kafka] or set PYTHON to an interpreter that has it",
            file=sys.stderr,
        )
        return 3
    import logging

    # aiokafka logs every refused connection at ERROR while the broker boots.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return asyncio.run(wait_ready(args.bootstrap, args.pid, args.timeout, args.brokers))


if __name__ == "__main__":
    sys.exit(main())
