"""Writes tests/data/delivery_state_v2.json: the delivery state (kv spaces ``rules``, ``dlq``
and ``meta`` of a SQLite state file) after a realistic run of the delivery pipeline.

The committed file was written by the version before the typed state (git 291d9f1, rule
state as plain dicts); tests/test_rulestate.py checks that today's code loads it, resumes
its pending items and sends its digests. Only the Pipeline's public API is used here, so
the script runs against any version:

    python -m tests.data.make_delivery_state

The run, on virtual time from 2023-11-14 22:13:20 UTC (1_700_000_000):

- rule ``maghreb-military`` (``max_per_hour: 2``, ``digest_interval: 900``), receivers
  ``desk`` (threads), ``mail`` (no threads) and ``ops`` (refuses its first post:
  ``channel_not_found``, so a dead letter);
- story 0 to all three; a copy of it from another feed (a thread reply and a source-count
  update for ``desk``, a digest entry for ``mail`` and ``ops``); story 1 to ``desk`` and
  ``mail``; stories 2 and 3 throttled into both open digests;
- then, with the process stopped before its lanes ran: a third copy of story 0 (a pending
  reply for ``desk``, a pending source-count update), story 4 for rule ``sahel-watch`` (a
  pending alert for ``desk``) and story 5 for it with ``max_per_hour: 0`` (a digest for
  ``mail``, sealed a minute later: a pending digest item).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from newswatch.core.errors import DeliveryError
from newswatch.core.state import Database, Decision
from newswatch.streams.alerts import Match
from newswatch.streams.notifiers import Notifier
from newswatch.streams.pacing import Pacer
from newswatch.streams.pipeline import Pipeline
from tests.fakes.clock import VirtualTime
from tests.fakes.notifiers import RecordingNotifier
from tests.fakes.samples import sample_match
from tests.fakes.stories import distinct_title

OUT = Path(__file__).with_name("delivery_state_v2.json")
SPACES = ("rules", "dlq", "meta")


class _Audit:
    def log_decision(self, d: Decision) -> None:
        pass


def story(n: int, *receivers: str, rule_id: str = "maghreb-military", feed: str = "Agence A",
          url: str | None = None, max_per_hour: int = 2, interval: float = 900.0) -> Match:
    m = sample_match(title=distinct_title(n, "Maroc accord militaire"), summary="",
                     url=url or f"https://news.example/{n}", feed=feed, rule_id=rule_id)
    return Match.from_json({**m.to_json(), "receivers": list(receivers),
                            "max_per_hour": max_per_hour, "digest_interval": interval})


def _pipeline(notifiers: dict[str, Notifier], db: Database, time: VirtualTime) -> Pipeline:
    return Pipeline(notifiers=notifiers, state=db.mapping("rules"), dlq=db.mapping("dlq"),
                    meta=db.mapping("meta"), audit=_Audit(), clock=time, sleep=time.sleep,
                    pacer=Pacer(clock=time, sleep=time.sleep))


async def run(db: Database) -> None:
    time = VirtualTime()
    desk = RecordingNotifier("desk", time)
    mail = RecordingNotifier("mail", time, threads=False)
    ops = RecordingNotifier("ops", time)
    ops.script.append(DeliveryError("channel_not_found", "channel_not_found",
                                    retryable=False))
    notifiers: dict[str, Notifier] = {"desk": desk, "mail": mail, "ops": ops}
    pipeline = _pipeline(notifiers, db, time)
    await pipeline.deliver(story(0, "desk", "mail", "ops"))
    await time.run(pipeline.drain())
    time.now += 60
    await pipeline.deliver(story(0, "desk", "mail", "ops", feed="Agence B",
                                 url="https://copy.example/0b"))
    await time.run(pipeline.drain())
    for n in (1, 2, 3):
        time.now += 30
        await pipeline.deliver(story(n, "desk", "mail"))
        await time.run(pipeline.drain())
    await pipeline.aclose()
    stopped = _pipeline(notifiers, db, time)  # its lanes never run: items stay pending
    time.now += 30
    await stopped.deliver(story(0, "desk", feed="Agence C", url="https://copy.example/0c"))
    await stopped.deliver(story(4, "desk", rule_id="sahel-watch"))
    await stopped.deliver(story(5, "mail", rule_id="sahel-watch", max_per_hour=0,
                                interval=60.0))
    time.now += 60
    await stopped.flush_digests()  # a sealed digest, pending
    await stopped.aclose()


def dump(db: Database) -> dict[str, dict[str, Any]]:
    return {space: dict(db.mapping(space).items()) for space in SPACES}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(Path(tmp) / "state.db")
        try:
            asyncio.run(run(db))
            data = dump(db)
        finally:
            db.close()
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                   encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
