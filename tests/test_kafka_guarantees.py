"""Delivery guarantees of the Kafka runtime (docs/reliability.md A2, A6), against the project's
real Kafka broker.

- A2: a worker stopped with SIGTERM in steady flow and restarted with no new input sends
  nothing again (faust #48), then delivers new input exactly once.
- A6: the producers wait for all in-sync replicas and are idempotent; the worker's faust
  producer uses acks=-1 and its consumer never auto-commits (checked on a started worker
  in tests/test_kafka_stall.py).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from newswatch.streams.kafka.client import KafkaSettings, reliable_producer
from newswatch.streams.kafka.ticks import TICK_AGAIN, TICK_EVERY
from newswatch.streams.kafka.worker import build_app
from tests.fakes.feed_server import FeedServer
from tests.fakes.fixtures import slack_api  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.kafka_fixtures import unique_name
from tests.test_kafka_cluster import Feeds, Proc, delivered, ledger, processes, report, write_config
from tests.test_kafka_runtime import drained


async def test_producers_wait_for_all_replicas_and_are_idempotent() -> None:
    settings = KafkaSettings(bootstrap="127.0.0.1:9", prefix="a6.")
    producer = reliable_producer(settings)
    acks = producer._sender._acks
    idempotent = producer._txn_manager is not None
    app = build_app(settings, matcher=lambda: None, notifiers={})  # type: ignore[arg-type, return-value]
    print(f"\npoller producer: acks={acks} idempotent={idempotent}; "
          f"worker: producer_acks={app.conf.producer_acks}")
    assert (acks, idempotent, app.conf.producer_acks) == (-1, True, -1)


async def test_sigterm_then_restart_without_new_input_sends_nothing_again(
    tmp_path: Path, kafka_bootstrap: str, slack_api: FakeSlackAPI  # noqa: F811
) -> None:
    prefix = unique_name("nw") + "."
    async with FeedServer() as server:
        feeds = Feeds(server, 10)
        feeds.publish(3)
        config = str(write_config(tmp_path, kafka_bootstrap, prefix, server, slack_api, 10))
        worker = Proc(tmp_path, "worker", "worker", "--config", config)
        poller = Proc(tmp_path, "poller", "poll", "--config", config)
        async with processes(worker, poller):
            await delivered(slack_api, feeds.expected(), 120, kafka_bootstrap, prefix)
            await drained(kafka_bootstrap, prefix)
            before = len(slack_api.calls_to("chat.postMessage"))
            t0 = time.monotonic()
            assert await worker.stop() == 0
            shutdown = time.monotonic() - t0
            await worker.start()
            await worker.logged("Worker ready", timeout=60)
            # The scenario is a quiet period: longer than the tick timer takes to tick an
            # outbox, which is what would re-send a delivery the worker wrongly believed
            # pending.
            await asyncio.sleep(TICK_AGAIN + 2 * TICK_EVERY + 2)
            resent = len(slack_api.calls_to("chat.postMessage")) - before
            feeds.publish(4)  # new input after the restart: delivered once
            await delivered(slack_api, feeds.expected(), 120, kafka_bootstrap, prefix)
            lost, duplicated = report("SIGTERM and restart, no new input", slack_api,
                                      feeds.expected())
            print(f"shutdown {shutdown:.1f}s; sent again after restart: {resent}")
            codes = [await p.stop() for p in (poller, worker)]
    assert resent == 0
    assert (lost, duplicated) == (0, 0)
    assert max(ledger(slack_api).values()) == 1
    assert codes == [0, 0]
