"""Delivery commands: ``silence add|list|expire`` and ``dlq list|replay``.

Only one process writes the delivery state: ``newswatch run`` holds ``<state>.lock``.
``silence add``/``expire`` write the ``silences`` space only (read by ``run`` on every
match); ``dlq replay`` replays in-process when no ``run`` holds the lock, and otherwise
marks the entries ``requested`` for the running monitor (it replays them within seconds).
With ``--kafka`` the ``dlq`` commands act on the Kafka runtime's dead letters instead
(``newswatch.streams.kafka.dlq``): a replay is then a request the workers carry out; the
``silence`` commands on the Kafka runtime's stored silences, the compacted ``silences``
topic every worker reads (``newswatch.streams.kafka.silences``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from newswatch.cli.options import (
    EXIT_OK,
    EXIT_PROBLEMS,
    Commands,
    Context,
    UsageError,
    add_command,
    add_subcommands,
)
from newswatch.core.config import Config
from newswatch.core.durations import parse_duration
from newswatch.core.errors import ConfigError, Issue
from newswatch.core.printable import one_line
from newswatch.core.state import Database, RuntimeLock
from newswatch.streams.silences import Silence, SilenceStore, configured_silences, new_silence

T = TypeVar("T")
KAFKA_DLQ_HELP = "the Kafka runtime's dead letters and poison events, not the SQLite state"
KAFKA_SILENCES_HELP = "the Kafka runtime's silences (the silences topic), not the SQLite state"


def add_commands(commands: Commands) -> None:
    """Add ``silence add|list|expire`` and ``dlq list|replay``."""
    silence = add_command(commands, "silence",
                          help="silence alerts for a while (add, list, expire)")
    silence_commands = add_subcommands(silence, "silence_command")
    add = add_command(silence_commands, "add",
                      help="silence matching alerts until it expires (at least one matcher)")
    add.add_argument("--rule", metavar="ID", help="rule id")
    add.add_argument("--country", metavar="CODE",
                     help="ISO country code in the match's evidence, e.g. MA")
    add.add_argument("--person", metavar="NAME", help="person in the match's evidence")
    add.add_argument("--feed", metavar="NAME", help="feed name")
    add.add_argument("--story", metavar="ID", help="story id (see `alerts --json`)")
    add.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                     help="how long, e.g. 30m, 2h, 1d")
    add.add_argument("--reason", required=True, help="why (shown with every silenced alert)")
    add.set_defaults(handler=silence_add_command)
    listing = add_command(silence_commands, "list", help="active silences (--all: expired too)")
    listing.add_argument("--json", action="store_true", help="JSON out: one object per silence")
    listing.add_argument("--all", action="store_true", help="expired silences too")
    listing.set_defaults(handler=silence_list_command)
    expire = add_command(silence_commands, "expire", help="end a silence now")
    expire.add_argument("id", metavar="ID", help="the silence's id (see `silence list`)")
    expire.set_defaults(handler=silence_expire_command)
    for command in (add, listing, expire):
        command.add_argument("--kafka", action="store_true", help=KAFKA_SILENCES_HELP)

    dlq = add_command(commands, "dlq", help="dead letters: deliveries that failed for good")
    dlq_commands = add_subcommands(dlq, "dlq_command")
    dlq_list = add_command(dlq_commands, "list", help="dead letters, oldest first")
    dlq_list.add_argument("--json", action="store_true",
                          help="JSON out: one object per dead letter")
    dlq_list.add_argument("--kafka", action="store_true", help=KAFKA_DLQ_HELP)
    dlq_list.set_defaults(handler=dlq_list_command)
    replay = add_command(dlq_commands, "replay",
                         help="send dead letters again, through dedup")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", dest="ids", metavar="ID",
                       help="a dead letter's id (repeatable; see `dlq list`)")
    which.add_argument("--all", action="store_true", help="every dead letter")
    replay.add_argument("--kafka", action="store_true",
                        help="ask the Kafka runtime's workers to replay (poison events: "
                             "re-publish them), not the SQLite state")
    replay.set_defaults(handler=dlq_replay_command)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _open_state(args: argparse.Namespace, context: Context) -> tuple[Config, Database]:
    config = context.config(args)
    return config, Database.open(config.state)


def _with_silences(args: argparse.Namespace, context: Context,
                   work: Callable[[Config, SilenceStore], T], *, write: bool = False) -> T:
    """``work`` over the silences in force: the config's and those stored in the state
    file or, with ``--kafka``, in the silences topic (written there, with ``write``, once
    ``work`` returned: a Kafka error is a configuration error, exit 2)."""
    config = context.config(args)
    if not args.kafka:
        db = Database.open(config.state)
        try:
            return work(config, SilenceStore.of(config, db))
        finally:
            db.close()
    from newswatch.streams.kafka.client import kafka_settings  # the optional Kafka extra
    from newswatch.streams.kafka.silences import stored_silences

    settings = kafka_settings(config, context.environ)

    async def on_kafka() -> T:
        async with stored_silences(settings, write=write) as stored:
            return work(config, SilenceStore(stored, configured_silences(config.silences)))

    return _on_kafka(_shown(args, context), settings.bootstrap, on_kafka)


# ---------------------------------------------------------------------------- silences


def silence_add_command(args: argparse.Namespace, context: Context) -> int:
    try:
        silence = new_silence(
            reason=args.reason, now=time.time(), duration=parse_duration(args.duration),
            rule=args.rule, country=args.country, person=args.person, story=args.story,
            feed=args.feed, creator=_login())
    except ValueError as error:
        raise UsageError(f"silence add: {error}") from None

    def add(config: Config, silences: SilenceStore) -> None:
        if args.feed is not None and args.feed not in {f.name for f in config.feeds}:
            raise UsageError(f"silence add: unknown feed '{args.feed}'")
        silences.add(silence)

    _with_silences(args, context, add, write=True)
    print(f"{silence.id} silences {silence.describe()} until {_iso(silence.expires)}: "
          f"{silence.reason}")
    return EXIT_OK


def _login() -> str | None:
    """Who runs ``silence add`` (the silence's creator), when the system says."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the user database
        return None


def silence_list_command(args: argparse.Namespace, context: Context) -> int:
    now = time.time()
    silences = _with_silences(args, context, lambda config, store: store.all())
    shown = [s for s in silences if args.all or s.active(now)]
    if args.json:
        print(json.dumps([{**s.to_json(), "active": s.active(now),
                           "expires_at": _iso(s.expires)} for s in shown],
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    if not shown:
        print("no silences" if args.all else "no active silences")
    for s in shown:
        state = "active " if s.active(now) else "expired"
        by = f", by {s.creator}" if s.creator else ""
        print(one_line(f"{s.id}  {state}  until {_iso(s.expires)}  {s.describe():<40} "
                       f"{s.reason}  [{s.origin}{by}]"))
    return EXIT_OK


def silence_expire_command(args: argparse.Namespace, context: Context) -> int:
    def expire(config: Config, silences: SilenceStore) -> Silence:
        return silences.expire(args.id, time.time())

    try:
        silence = _with_silences(args, context, expire, write=True)
    except KeyError:
        print(f"silence expire: no silence with id '{args.id}'", file=sys.stderr)
        return EXIT_PROBLEMS
    except ValueError as error:
        print(f"silence expire: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{silence.id} expired at {_iso(silence.expires)}")
    return EXIT_OK


# ---------------------------------------------------------------------------- dead letters


def dlq_list_command(args: argparse.Namespace, context: Context) -> int:
    config = context.config(args)
    if args.kafka:
        return _dlq_list_kafka(config, context.environ, _shown(args, context),
                               as_json=args.json)
    if not config.state.exists():
        print("[]" if args.json else "no dead letters")
        return EXIT_OK
    db = Database.open(config.state, readonly=True)
    try:
        entries = sorted((dict(v) for v in db.mapping("dlq").values()),
                         key=lambda e: float(e["at"]))
    finally:
        db.close()
    if args.json:
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
    """One line, whatever the feed put in the title or the receiver in the reason."""
    who = e["receiver"] + (f" ({', '.join(e['recipients'])})" if e.get("recipients") else "")
    return one_line(f"{e['id']}  {_iso(float(e['at']))}  {e['rule_id']:<24} {who:<16} "
                    f"{e['kind']:<6} {e['state']:<9} {e['reason']:<18} "
                    f"{str(e.get('title'))[:50]}")


def dlq_replay_command(args: argparse.Namespace, context: Context) -> int:
    ids = None if args.all else list(args.ids)
    if args.kafka:
        return _dlq_replay_kafka(context.config(args), context.environ,
                                 _shown(args, context), ids)
    config, db = _open_state(args, context)
    lock = RuntimeLock(config.state)
    try:
        dlq = db.mapping("dlq")
        wanted = list(dlq) if ids is None else ids
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
            outcomes = asyncio.run(_replay_now(config, db, wanted, context.environ))
        finally:
            lock.release()
    finally:
        db.close()
    for ident, outcome in outcomes:
        print(f"{ident}: {outcome}")
    dead_again = any(o.startswith("dead") for _, o in outcomes)
    return EXIT_PROBLEMS if missing or dead_again else EXIT_OK


async def _replay_now(config: Config, db: Database, ids: list[str],
                      environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """Replay ``ids`` through the pipeline, in this process; (id, outcome) for each."""
    # lazy: the network stack (aiohttp, slack_sdk, aiosmtplib): ~170 ms start-up
    from newswatch.streams.embedded import make_pipeline
    from newswatch.streams.receivers import build_notifiers

    # a replayed source-count update keeps the answers to clicks under the alert
    notifiers = build_notifiers(config, environ,
                                feedback=lambda channel, ts: db.feedback().lines(channel, ts))
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
        if o.outcome != "queued":
            out.append((o.id, o.outcome))
        elif (entry := dlq.get(o.id)) is None:
            out.append((o.id, "delivered"))
        else:
            out.append((o.id, f"dead again: {entry.get('reason')}"))
    return out


# ---------------------------------------------------------------------------- Kafka runtime


def _shown(args: argparse.Namespace, context: Context) -> str:
    """The config file as messages name it."""
    return str(context.require_config_path(args))


def _on_kafka(shown: str, bootstrap: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work``; an unreachable cluster is a configuration error of the config file
    ``shown`` (exit 2)."""
    from newswatch.streams.kafka.client import KafkaError  # the optional Kafka extra

    try:
        return asyncio.run(work())
    except KafkaError as error:
        raise ConfigError([Issue(shown, 0, f"kafka: {bootstrap}: {error}")]) from None


def _dlq_list_kafka(config: Config, environ: Mapping[str, str], shown: str, *,
                    as_json: bool) -> int:
    from newswatch.streams.kafka.client import kafka_settings  # the optional Kafka extra
    from newswatch.streams.kafka.dlq import delivery_dead_letters, poison_events

    settings = kafka_settings(config, environ)
    letters = _on_kafka(shown, settings.bootstrap, lambda: delivery_dead_letters(settings))
    poison = _on_kafka(shown, settings.bootstrap, lambda: poison_events(settings))
    entries = sorted(letters.values(), key=lambda e: float(e["at"]))
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
              f"{one_line(p.message[:60]):<60}  event: {p.excerpt()}")
    return EXIT_OK


def _dlq_replay_kafka(config: Config, environ: Mapping[str, str], shown: str,
                      ids: Sequence[str] | None) -> int:
    from newswatch.streams.kafka.client import kafka_settings  # the optional Kafka extra
    from newswatch.streams.kafka.dlq import replay

    settings = kafka_settings(config, environ)
    results = _on_kafka(shown, settings.bootstrap, lambda: replay(settings, ids))
    for r in results:
        print(f"{r.id}: {r.outcome}")
    return EXIT_OK if all(r.found for r in results) else EXIT_PROBLEMS
