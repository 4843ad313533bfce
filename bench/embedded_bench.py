"""Embedded runtime benchmark: latency from an article reaching the runtime (the poller's
sink, `EmbeddedRuntime.take`) until the Slack-API server receives the alert, with the real
matcher, the real delivery pipeline over a SQLite state file (WAL, synchronous=FULL) and
the real Slack notifier, in one process — the same measurement as bench/kafka_bench.py
without Kafka.

    python bench/embedded_bench.py [--rate 50] [--seconds 30] [--channels 200]

Each article matches exactly one of ``--channels`` rules, each rule alerting its own Slack
channel, so the 1 msg/s per-channel pacing is not what is measured while rate < channels.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka_bench import TOKEN, Arrivals, bench_article, write_config

from newswatch.core.config import load_config
from newswatch.core.state import Database
from newswatch.streams.embedded import EmbeddedRuntime, make_pipeline
from newswatch.streams.receivers import build_notifiers
from newswatch.streams.reload import compile_rules
from tests.fakes.slack_api import FakeSlackAPI


class _NoPoller:
    """The benchmark feeds the runtime's sink directly: polling has its own benchmark."""

    def __init__(self, runtime: object) -> None:
        self.runtime = runtime


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="articles per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--channels", type=int, default=200)
    args = parser.parse_args()

    async with FakeSlackAPI(token=TOKEN) as slack:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            config_path = write_config(tmp, "127.0.0.1:9", "unused.", slack, args.channels, 1)
            config = load_config(config_path)
            os.environ["SLACK_BOT_TOKEN"] = TOKEN  # the notifier reads no config secret
            matcher = compile_rules(config.rules, frozenset(config.receivers))
            db = Database.open(tmp / "state.db")
            notifiers = build_notifiers(config)
            pipeline = make_pipeline(config, db, notifiers)
            runtime = EmbeddedRuntime(poller_factory=_NoPoller,  # type: ignore[arg-type]
                                      matcher=lambda: matcher, pipeline=pipeline)
            sent: dict[str, float] = {}

            async def publish(i: int) -> None:
                article = bench_article(i, args.channels)
                sent[article.id] = time.monotonic()
                await runtime.take([article])

            total = int(args.rate * args.seconds)
            t0 = time.monotonic()
            for i in range(total):
                delay = t0 + i / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # the offered rate is the experiment
                await publish(i)
            offered = total / (time.monotonic() - t0)
            arrivals = Arrivals(slack, sent)
            if not await arrivals.wait(total, timeout=args.seconds * 2 + 30):
                print("not sustained: not every alert arrived within "
                      f"{args.seconds * 2 + 30:.0f}s of the start")
            print(f"embedded offered={offered:.1f}/s {arrivals.summary(total, t0)}")
            await pipeline.aclose(5.0)
            for notifier in notifiers.values():
                await notifier.aclose()
            db.close()


if __name__ == "__main__":
    asyncio.run(main())
