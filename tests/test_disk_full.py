"""The state's file system fills up under a running `newswatch run`, then space comes back
(issue 15's disk-full acceptance). The state lives on a real tmpfs of a few MiB; a filler
file takes its last free byte while alerts are being sent to a Slack channel (paced at one
a second) and an e-mail receiver. `run` must stop at the first write that fails, exit 2
with one line naming the state and the cause, and after a restart with space restored
every story must have reached both receivers, at most one of them twice per channel (the
send in flight when the write failed).

Mounting a tmpfs needs root (CI runs as root on this machine); elsewhere the test is
skipped, and in CI (CI=true) it fails instead."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.fixtures import slack_api, smtp_sink  # noqa: F401
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.stories import distinct_title
from tests.kafka_fixtures import in_ci
from tests.test_kafka_cluster import Proc

STORIES = 12
FULL_AFTER = 3  # Slack alerts received before the disk fills
RULES = """\
rules:
  - id: zircon-watch
    title: Zircon watch
    phrases: [zircon]
    notify: [desk, duty]
"""


class SmallDisk:
    """A tmpfs mounted at ``path``; ``fill()`` takes every free byte, ``restore()`` gives
    them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self) -> int:
        """Write until the file system refuses; the bytes written."""
        written = 0
        chunk = b"\0" * 4096
        with self._filler.open("ab", buffering=0) as out:
            while True:
                try:
                    written += out.write(chunk) or 0
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    return written

    def restore(self) -> None:
        self._filler.unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount = tmp_path / "mnt"
    mount.mkdir()
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                           capture_output=True, text=True, check=False)
    if tried.returncode != 0:
        why = f"cannot mount a tmpfs (needs root): {tried.stderr.strip()}"
        if in_ci():
            pytest.fail(f"CI=true: {why}", pytrace=False)
        pytest.skip(why)
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def story(n: int) -> dict[str, str]:
    return {"title": f"zircon {distinct_title(n)}", "guid": f"z{n}",
            "link": f"https://news.example/zircon-{n}"}


def write_config(tmp: Path, disk: SmallDisk, feeds: FeedServer, slack: FakeSlackAPI,
                 smtp: SMTPSink) -> Path:
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(
        f"state: {disk.path / 'state.db'}\nrules: [rules.yaml]\nfeeds:\n"
        f"  - name: wire\n    url: {feeds.url('/wire.xml')}\n    interval: 10s\n"
        f"    min_interval: 10s\n"
        f"receivers:\n"
        f"  desk:\n    slack:\n      channel: '#desk'\n      base_url: {slack.base_url}\n"
        f"  duty:\n    email:\n      to: [desk@example.org]\n      from: nw@example.org\n"
        f"      host: 127.0.0.1\n      port: {smtp.port}\n      starttls: false\n"
        f"fetch:\n  allow: ['{feeds.allow}']\n",
        encoding="utf-8")
    return config


@contextlib.asynccontextmanager
async def running(proc: Proc) -> AsyncIterator[Proc]:
    await proc.start()
    try:
        yield proc
    finally:
        assert proc.proc is not None
        if proc.proc.returncode is None:
            await proc.stop(signal.SIGTERM)


def received(slack: FakeSlackAPI, smtp: SMTPSink) -> dict[str, Counter[int]]:
    """How often each story reached each receiver."""
    titles = {story(n)["title"]: n for n in range(STORIES)}
    counts: dict[str, Counter[int]] = {"desk": Counter(), "duty": Counter()}
    for m in slack.messages:
        if m.thread_ts is None:
            counts["desk"].update(n for t, n in titles.items() if t in " ".join(m.texts()))
    for mail in smtp.messages:
        body = mail.message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        counts["duty"].update(n for t, n in titles.items() if t in text)
    return counts


async def all_received(slack: FakeSlackAPI, smtp: SMTPSink, timeout: float = 120) -> None:
    """Until every story reached both receivers (polled: the SMTP sink runs on a thread of
    its own and has no change event)."""
    async with asyncio.timeout(timeout):
        while any(set(seen) != set(range(STORIES)) for seen in received(slack, smtp).values()):
            await asyncio.sleep(0.2)


async def test_a_full_disk_stops_run_with_one_line_and_a_restart_loses_and_doubles_nothing(
    tmp_path: Path, small_disk: SmallDisk, slack_api: FakeSlackAPI,  # noqa: F811
    smtp_sink: SMTPSink,  # noqa: F811
) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/wire.xml", rss([story(n) for n in range(STORIES)]))
        config = write_config(tmp_path, small_disk, feeds, slack_api, smtp_sink)
        args = ("run", "--config", str(config))
        first = Proc(tmp_path, "first", *args)
        async with running(first):
            await slack_api.wait_until(lambda: len(slack_api.messages) >= FULL_AFTER,
                                       timeout=120)
            assert await asyncio.to_thread(small_disk.fill) > 0
            assert first.proc is not None
            code = await asyncio.wait_for(first.proc.wait(), timeout=120)
        log = (first.dir / "run1.log").read_text("utf-8")
        assert code == 2, first.tail()
        assert "Traceback" not in log, first.tail()
        refusal = [line for line in log.splitlines() if "database or disk is full" in line]
        assert refusal and str(small_disk.path / "state.db") in refusal[-1], first.tail()
        assert len(slack_api.messages) < STORIES  # the disk filled before the end

        small_disk.restore()
        again = Proc(tmp_path, "again", *args)
        async with running(again):
            await all_received(slack_api, smtp_sink)
        counts = received(slack_api, smtp_sink)
        for receiver, seen in counts.items():
            assert set(seen) == set(range(STORIES)), (receiver, seen)  # lost 0
            twice = [n for n, k in seen.items() if k > 1]
            assert len(twice) <= 1 and max(seen.values()) <= 2, (receiver, seen)
        assert os.path.getsize(small_disk.path / "state.db") > 0
