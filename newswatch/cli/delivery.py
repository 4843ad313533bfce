"""Delivery commands of the ``newswatch`` CLI: ``silence add|list|expire`` and
``dlq list|replay``, plus the wiring of the delivery pipeline shared with ``run``.

Part of the composition root (``newswatch.cli``): it imports the streams layer lazily.

Only one process writes the delivery state: ``newswatch run`` holds ``<state>.lock``.
``silence add``/``expire`` write the ``silences`` space only (read by ``run`` on every
match); ``dlq replay`` replays in-process when no ``run`` holds the lock, and otherwise
marks the entries ``requested`` for the running monitor (it replays them within seconds).
With ``--kafka`` the ``dlq`` commands act on the Kafka runtime's dead letters instead
(``newswatch.streams.kafka.dlq``): a replay is then a request the workers carry out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from newswatch.core.errors import ConfigError, Issue

if TYPE_CHECKING:
    from newswatch.core.config import Config
    from newswatch.core.state import Database
    from newswatch.streams.kafka.dlq import Poison
    from newswatch.streams.notifiers import Notifier
    from newswatch.streams.pipeline import DecisionLog, Pipeline
    from newswatch.streams.silences import Silence, SilenceStore

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")


def add_commands(sub: Any) -> None:
    """Add ``silence`` and ``dlq`` to the CLI's subparsers."""
    silence = sub.add_parser("silence", help="silence alerts for a while (add, list, expire)")
    silence_sub = silence.add_subparsers(dest="silence_command", required=True)
    add = silence_sub.add_parser("add", help="silence matching alerts until it expires")
    add.add_argument("--config", required=True, type=Path)
    add.add_argument("--rule", help="rule id")
    add.add_argument("--country", help="ISO country code in the match's evidence, e.g. MA")
    add.add_argument("--person", help="person in the match's evidence")
    add.add_argument("--feed", help="feed name")
    add.add_argument("--story", help="story id (see `alerts --json`)")
    add.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h, 1d")
    add.add_argument("--reason", required=True)
    listing = silence_sub.add_parser("list", help="active silences (--all: expired too)")
    listing.add_argument("--config", required=True, type=Path)
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--all", action="store_true")
    expire = silence_sub.add_parser("expire", help="end a silence now")
    expire.add_argument("--config", required=True, type=Path)
    expire.add_argument("id")

    dlq = sub.add_parser("dlq", help="dead letters: deliveries that failed for good")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="dead letters, oldest first")
    dlq_list.add_argument("--config", required=True, type=Path)
    dlq_list.add_argument("--json", action="store_true")
    dlq_list.add_argument("--kafka", action="store_true",
                          help="the Kafka runtime's dead letters and poison events, "
                               "not the SQLite state")
    replay = dlq_sub.add_parser("replay", help="send dead letters again, through dedup")
    replay.add_argument("--config", required=True, type=Path)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", dest="ids", metavar="ID")
    which.add_argument("--all", action="store_true")
    replay.add_argument("--kafka", action="store_true",
                        help="ask the Kafka runtime's workers to replay (poison events: "
                             "re-publish them), not the SQLite state")


def dispatch(args: argparse.Namespace) -> int | None:
    """Run ``silence``/``dlq`` commands; None for any other command."""
    if args.command == "silence":
        if args.silence_command == "add":
            return _silence_add(args)
        if args.silence_command == "list":
            return _silence_list(args.config, as_json=args.json, everything=args.all)
        return _silence_expire(args.config, args.id)
    if args.command == "dlq":
        ids = None if args.dlq_command == "list" or args.all else list(args.ids)
        if args.kafka:
            if args.dlq_command == "list":
                return _dlq_list_kafka(args.config, as_json=args.json)
            return _dlq_replay_kafka(args.config, ids)
        if args.dlq_command == "list":
            return _dlq_list(args.config, as_json=args.json)
        return _dlq_replay(args.config, ids)
    return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- wiring


def configured_silences(config: Config) -> list[Silence]:
    """The config file's ``silences:`` as Silence values (ids stable across restarts)."""
    from newswatch.streams.silences import Silence, silence_id

    out = []
    for s in config.silences:
        matchers = {k: v for k, v in (("rule", s.rule), ("country", s.country),
                                      ("person", s.person), ("story", s.story),
                                      ("feed", s.feed)) if v is not None}
        out.append(Silence(id=silence_id(matchers, s.until, s.reason), reason=s.reason,
                           expires=s.until, origin=f"config line {s.line}", rule=s.rule,
                           country=s.country, person=s.person, story=s.story, feed=s.feed))
    return out


def silence_store(db: Database, config: Config) -> SilenceStore:
    from newswatch.streams.silences import SilenceStore

    return SilenceStore(db.mapping("silences"), configured_silences(config))


def make_pipeline(
    config: Config, db: Database, notifiers: dict[str, Notifier], *,
    audit: DecisionLog | None = None,
) -> Pipeline:
    """The delivery pipeline over the state file, as ``run`` and ``dlq replay`` use it;
    ``audit`` replaces ``db`` as the audit trail (``run`` passes a metered one)."""
    from newswatch.streams.pipeline import Pipeline

    return Pipeline(
        notifiers=notifiers, state=db.mapping("rules"), dlq=db.mapping("dlq"),
        audit=audit if audit is not None else db,
        silences=silence_store(db, config).active, meta=db.mapping("meta"),
    )


def _open_state(config_path: Path) -> tuple[Config, Database]:
    from newswatch.core.config import load_config
    from newswatch.core.state import Database

    config = load_config(config_path)
    return config, Database.open(config.state)


# ---------------------------------------------------------------------------- silences


def _silence_add(args: argparse.Namespace) -> int:
    from newswatch.core.durations import parse_duration
    from newswatch.streams.silences import new_silence

    try:
        duration = parse_duration(args.duration)
        silence = new_silence(
            reason=args.reason, now=time.time(), duration=duration, rule=args.rule,
            country=args.country, person=args.person, story=args.story, feed=args.feed)
    except ValueError as error:
        print(f"silence add: {error}", file=sys.stderr)
        return EXIT_USAGE
    config, db = _open_state(args.config)
    try:
        if args.feed is not None and args.feed not in {f.name for f in config.feeds}:
            print(f"silence add: unknown feed '{args.feed}'", file=sys.stderr)
            return EXIT_USAGE
        silence_store(db, config).add(silence)
    finally:
        db.close()
    print(f"{silence.id} silences {silence.describe()} until {_iso(silence.expires)}: "
          f"{silence.reason}")
    return EXIT_OK


def _silence_list(config_path: Path, *, as_json: bool, everything: bool) -> int:
    config, db = _open_state(config_path)
    try:
        now = time.time()
        silences = silence_store(db, config).all()
    finally:
        db.close()
    shown = [s for s in silences if everything or s.active(now)]
    if as_json:
        print(json.dumps([{**s.to_json(), "active": s.active(now),
                           "expires_at": _iso(s.expires)} for s in shown],
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    if not shown:
        print("no active silences" if not everything else "no silences")
    for s in shown:
        state = "active " if s.active(now) else "expired"
        print(f"{s.id}  {state}  until {_iso(s.expires)}  {s.describe():<40} "
              f"{s.reason}  [{s.origin}]")
    return EXIT_OK


def _silence_expire(config_path: Path, ident: str) -> int:
    config, db = _open_state(config_path)
    try:
        silence = silence_store(db, config).expire(ident, time.time())
    except KeyError:
        print(f"silence expire: no silence with id '{ident}'", file=sys.stderr)
        return EXIT_PROBLEMS
    except ValueError as error:
        print(f"silence expire: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    finally:
        db.close()
    print(f"{silence.id} expired at {_iso(silence.expires)}")
    return EXIT_OK


# ---------------------------------------------------------------------------- dead letters


def _dlq_list(config_path: Path, *, as_json: bool) -> int:
    from newswatch.core.config import load_config
    from newswatch.core.state import Database

    config = load_config(config_path)
    if not config.state.exists():
        print("[]" if as_json else "no dead letters")
        return EXIT_OK
    db = Database.open(config.state, readonly=True)
    try:
        entries = sorted((dict(v) for v in db.mapping("dlq").values()),
                         key=lambda e: float(e["at"]))
    finally:
        db.close()
    if as_json:
        print(json.dumps([{k: v for k, v in {**e, "at": _iso(float(e["at"]))}.items()
                           if k not in ("match", "digest")} for e in entries],
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    if not entries:
        print("no dead letters")
    for e in entries:
        print(_dead_letter_line(e))
    return EXIT_OK


def _dead_letter_line(e: dict[str, Any]) -> str:
    who = e["receiver"] + (f" ({', '.join(e['recipients'])})" if e.get("recipients") else "")
    return (f"{e['id']}  {_iso(float(e['at']))}  {e['rule_id']:<24} {who:<16} "
            f"{e['kind']:<6} {e['state']:<9} {e['reason']:<18} {str(e.get('title'))[:50]}")


def _kafka_dead_letters(config_path: Path) -> tuple[list[dict[str, Any]], list[Poison]]:
    """Delivery dead letters (oldest first) and poison events of the Kafka runtime."""
    from newswatch.cli.kafka import kafka_settings
    from newswatch.core.config import load_config
    from newswatch.streams.kafka.dlq import delivery_dead_letters, poison_events

    settings = kafka_settings(load_config(config_path))

    async def read() -> tuple[dict[str, dict[str, Any]], list[Poison]]:
        return await delivery_dead_letters(settings), await poison_events(settings)

    entries, poison = _on_kafka(config_path, settings.bootstrap, read)
    return sorted(entries.values(), key=lambda e: float(e["at"])), poison


def _on_kafka(config_path: Path, bootstrap: str,
              work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work``; an unreachable cluster is a configuration error (exit 2)."""
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(work())
    except KafkaError as error:
        raise ConfigError([Issue(str(config_path), 0, f"kafka: {bootstrap}: {error}")]
                          ) from None


def _dlq_list_kafka(config_path: Path, *, as_json: bool) -> int:
    from newswatch.streams.kafka.dlq import printable

    entries, poison = _kafka_dead_letters(config_path)
    if as_json:
        rows: list[dict[str, Any]] = [
            {"kind": "delivery", "item_kind": e.get("kind"),
             **{k: v for k, v in e.items() if k not in ("match", "digest", "kind")},
             "at": _iso(float(e["at"]))} for e in entries]
        rows += [{"kind": "poison", "id": p.id, "stage": p.stage, "reason": p.reason,
                  "message": p.message, "at": _iso(p.at),
                  "key": None if p.key is None else p.key.decode("utf-8", "replace"),
                  "excerpt": p.excerpt()} for p in poison]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not entries and not poison:
        print("no dead letters")
    for e in entries:
        print(_dead_letter_line(e))
    for p in poison:
        print(f"{p.id}  {_iso(p.at)}  {p.stage or '?':<8} {p.reason:<18} "
              f"{printable(p.message[:60]):<60}  event: {p.excerpt()}")
    return EXIT_OK


def _dlq_replay(config_path: Path, ids: Sequence[str] | None) -> int:
    from newswatch.core.state import RuntimeLock

    config, db = _open_state(config_path)
    lock = RuntimeLock(config.state)
    try:
        dlq = db.mapping("dlq")
        wanted = list(dlq) if ids is None else list(ids)
        missing = [i for i in wanted if i not in dlq]
        for ident in missing:
            print(f"{ident}: not found")
        wanted = [i for i in wanted if i in dlq]
        if not lock.acquire():
            for ident in wanted:
                entry = dlq[ident]
                if entry.get("state") == "dead":
                    dlq[ident] = {**entry, "state": "requested"}
                print(f"{ident}: requested; the running monitor (pid {lock.holder()}) "
                      "replays it")
            return EXIT_PROBLEMS if missing else EXIT_OK
        try:
            outcomes = asyncio.run(_replay_now(config, db, wanted))
        finally:
            lock.release()
    finally:
        db.close()
    for ident, outcome in outcomes:
        print(f"{ident}: {outcome}")
    return EXIT_PROBLEMS if missing or any(o.startswith("dead") for _, o in outcomes) \
        else EXIT_OK


def _dlq_replay_kafka(config_path: Path, ids: Sequence[str] | None) -> int:
    from newswatch.cli.kafka import kafka_settings
    from newswatch.core.config import load_config
    from newswatch.streams.kafka.dlq import replay

    settings = kafka_settings(load_config(config_path))
    results = _on_kafka(config_path, settings.bootstrap, lambda: replay(settings, ids))
    for r in results:
        print(f"{r.id}: {r.outcome}")
    return EXIT_OK if all(r.found for r in results) else EXIT_PROBLEMS


async def _replay_now(config: Config, db: Database, ids: list[str]) -> list[tuple[str, str]]:
    from newswatch.cli.main import build_notifiers

    notifiers = build_notifiers(config)
    pipeline = make_pipeline(config, db, notifiers)
    try:
        outcomes = await pipeline.replay(ids)
        await pipeline.drain()
    finally:
        await pipeline.aclose()
        for notifier in notifiers.values():
            await notifier.aclose()
    dlq = db.mapping("dlq")
    out = []
    for o in outcomes:
        if o.outcome == "queued":
            entry = dlq.get(o.id)
            if entry is None:
                out.append((o.id, "delivered"))
            else:
                out.append((o.id, f"dead again: {entry.get('reason')}"))
        else:
            out.append((o.id, o.outcome))
    return out


def require_lock(config: Config) -> Any:
    """The runtime lock for ``run``; ConfigError when another process holds it."""
    from newswatch.core.state import RuntimeLock

    lock = RuntimeLock(config.state)
    if not lock.acquire():
        raise ConfigError([Issue(str(config.state), 0, "another `newswatch run` (pid "
                                 f"{lock.holder()}) is using this state file")])
    return lock
