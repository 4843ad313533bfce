"""How fast hostile rule files are refused (issue 15), beside the load of a valid watchlist
measured in the same run as the baseline.

    python bench/refusal_bench.py [--live]

Library: ``compile_rules`` on each file with the rule cache off, timed until it raises
(or returns, for the baseline), with the process's peak RSS growth. The hostile files are
built here: 50 MB of small rules (the size cap), 900,000 nodes in 1.8 MB (the node cap),
nesting 2,000 deep (the depth cap), a NUL byte, and a billion-laughs alias bomb.

``--live`` also starts ``newswatch run`` on a folder holding the valid watchlist and drops
each hostile file into it in turn: the time from the end of the write to the "rule reload
rejected" log line (this includes the reloader's quiet period: a file must be unchanged for
1 s before it is read, and the folder is looked at every second), and the slowest
``/healthz`` answer meanwhile (the loop-lag watchdog answers 503 when the event loop
stalls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import commit, cpu_model
from workload import Pool, load_articles, realistic_rules, rule_yaml, write_watchlist

from newswatch.core.errors import ConfigError, RuleError

BASELINE_RULES = 1_000


def hostile_files() -> dict[str, Callable[[], str]]:
    """Name → text of each hostile rule file (built lazily: one is 50 MB)."""
    return {
        "50 MB of rules": lambda: "rules:\n" + "  - {id: x, title: X, countries: [MA]}\n"
        * 1_400_000,
        "900,000 nodes": lambda: "rules: [" + ",".join(["a"] * 900_000) + "]\n",
        "2,000 deep": lambda: "rules: " + "[" * 2000 + "]" * 2000 + "\n",
        "NUL byte": lambda: "rules:\n  - id: a\0\n    title: A\n",
        "alias bomb": lambda: "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n"
            for i in range(9)) + "rules: *j\n",
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_compile(paths: list[Path]) -> tuple[float, str]:
    """Seconds to compile ``paths`` and the outcome (first line of the refusal)."""
    from newswatch.streams.reload import compile_rules

    started = time.perf_counter()
    try:
        matcher = compile_rules(paths, None)
        outcome = f"loaded {len(matcher.rules)} rules"
    except (RuleError, ConfigError) as error:
        outcome = str(error).splitlines()[0]
    return time.perf_counter() - started, outcome


def library(folder: Path, baseline: list[Path]) -> None:
    print(f"{'case':<16} {'bytes':>12} {'seconds':>8} {'RSS +MB':>8}  outcome")
    rss = peak_rss_mb()
    seconds, outcome = time_compile(baseline)
    size = sum(p.stat().st_size for p in baseline)
    print(f"{'baseline':<16} {size:>12,} {seconds:>8.3f} {peak_rss_mb() - rss:>8.0f}  "
          f"{outcome[:70]}")
    for name, build in hostile_files().items():
        path = folder / "hostile.yaml"
        path.write_text(build(), encoding="utf-8")
        rss = peak_rss_mb()
        seconds, outcome = time_compile([path])
        print(f"{name:<16} {path.stat().st_size:>12,} {seconds:>8.3f} "
              f"{peak_rss_mb() - rss:>8.0f}  {outcome[:70]}")
        path.unlink()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:
            status = r.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


async def logged(stream: asyncio.StreamReader, text: str, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while text not in json.loads(await stream.readline() or b'{"message": ""}').get(
                "message", ""):
            pass


async def live(folder: Path, tmp: Path) -> None:
    port = free_port()
    config = tmp / "config.yaml"
    config.write_text(f"rules: [{folder}]\nfeeds: []\nmetrics: {{port: {port}}}\n",
                      encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "newswatch", "run", "--config", str(config),
        env={**os.environ, "NEWSWATCH_CACHE_DIR": "off", "NEWSWATCH_LOG_FORMAT": "json"},
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    assert proc.stderr is not None
    print(f"\n{'live: case':<16} {'drop→refused s':>15} {'slowest /healthz':>17} statuses")
    try:
        await logged(proc.stderr, "running:", 120)
        for n, (name, build) in enumerate(hostile_files().items()):
            text = build()
            path = folder / f"hostile-{n}.yaml"
            path.write_text(text, encoding="utf-8")
            dropped = time.perf_counter()
            waiting = asyncio.ensure_future(logged(proc.stderr, "rule reload rejected", 120))
            probes = []
            while not waiting.done():
                probes.append(await asyncio.to_thread(healthz, port))
                await asyncio.sleep(0.05)
            await waiting
            refused = time.perf_counter() - dropped
            statuses = sorted({s for s, _ in probes})
            print(f"{name:<16} {refused:>15.2f} {max(t for _, t in probes) * 1000:>14.0f} ms "
                  f"{statuses}")
            path.unlink()
            await asyncio.sleep(2.5)  # the folder back to the valid watchlist
    finally:
        proc.terminate()
        await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", action="store_true",
                        help="also drop each file into a running `newswatch run`")
    args = parser.parse_args()
    os.environ["NEWSWATCH_CACHE_DIR"] = "off"
    print(f"commit {commit()} · {cpu_model()} · {os.cpu_count()} CPUs")
    articles = load_articles()
    rules = realistic_rules(BASELINE_RULES, Pool.of(articles))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "watchlist"
        baseline = write_watchlist(folder, [rule_yaml(r) for r in rules.rules])
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        library(scratch, baseline)
        if args.live:
            asyncio.run(live(folder, Path(tmp)))


if __name__ == "__main__":
    main()
