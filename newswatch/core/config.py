"""The monitor's configuration file (docs/configuration.md), loaded strictly into frozen values.

Paths inside the file are relative to the file (to the current directory for a config read
from stdin, the path ``-``). Secrets never come from the file: the Slack
token from ``SLACK_BOT_TOKEN``, the SMTP password from ``SMTP_PASSWORD`` (read by the
composition root, not here). Every problem is collected and raised as one ``ConfigError``
whose lines read ``path:line: message``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from newswatch.core.addresses import email_problem, host_problem, url_problem
from newswatch.core.errors import ConfigError, Issue
from newswatch.core.rulefiles import STDIN, STDIN_NAME
from newswatch.core.schema import MapReader, did_you_mean
from newswatch.core.slackconfig import SlackReceiver as SlackReceiver
from newswatch.core.slackconfig import slack_receiver
from newswatch.core.yamlfile import YamlError, YamlList, YamlMap, load_yaml

DEFAULT_INTERVAL = 300.0
FULL_TEXT_MODES = ("auto", "always", "never")
DEFAULT_MIN_WORDS = 60  # 36 % of real feed entries are shorter (docs/full-text.md)
# Seconds after the 1st, 2nd and 3rd failed attempt at a page before the next: four
# attempts over about two and a half hours, then the failure is final (docs/full-text.md).
DEFAULT_PAGE_RETRY = (300.0, 1_800.0, 7_200.0)
MAX_POLL_INTERVAL = 7 * 86400.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One feed; ``interval`` in seconds. ``min_interval`` / ``max_interval`` bound the
    adaptive interval (None: the defaults of ``newswatch.monitor.health.Pace.of``).
    ``full_text``: when the article page is fetched and its main text matched (``auto``:
    when the entry's own text has fewer than ``full_text_min_words`` words; ``always``;
    ``never``; docs/full-text.md)."""

    name: str
    url: str
    interval: float = DEFAULT_INTERVAL
    language: str | None = None
    line: int = 0
    min_interval: float | None = None
    max_interval: float | None = None
    full_text: str = "auto"
    full_text_min_words: int = DEFAULT_MIN_WORDS

    def wants_page(self, words: int) -> bool:
        """Whether an entry whose own text has ``words`` words needs its page fetched."""
        if self.full_text == "auto":
            return words < self.full_text_min_words
        return self.full_text == "always"


@dataclass(frozen=True, slots=True)
class EmailReceiver:
    name: str
    to: tuple[str, ...]
    sender: str
    host: str
    port: int = 587
    starttls: bool = True
    tls: bool = False
    user: str | None = None


@dataclass(frozen=True, slots=True)
class ConsoleReceiver:
    name: str


Receiver = SlackReceiver | EmailReceiver | ConsoleReceiver


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """``allow``: host:port pairs exempt from the private-address guard. Times in seconds."""

    allow: frozenset[str] = frozenset()
    timeout: float = 20.0
    max_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PagesConfig:
    """Fetching article pages (full text, docs/full-text.md). ``min_words``: the default
    of ``feeds[].full_text_min_words``. ``deadline``: seconds an article waits for its
    page before it is matched on its teaser alone. ``host_delay``: seconds between two
    page fetches from one host. ``retry``: seconds after each failed attempt at a page
    whose failure may pass before the next one (monitor/pages.py); empty: never again."""

    min_words: int = DEFAULT_MIN_WORDS
    deadline: float = 30.0
    host_delay: float = 1.0
    retry: tuple[float, ...] = DEFAULT_PAGE_RETRY


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    """How long the article archive keeps what was matched (``rules backtest``, ``search``);
    ``days`` 0 keeps nothing."""

    days: int = 30


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus exposition on ``host``:``port`` (``newswatch run`` serves ``/metrics``)."""

    port: int = 9108
    host: str = "127.0.0.1"
    # where ``port`` is set (for a ``path:line:`` error when it cannot be bound)
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """Kafka runtime settings. The SASL password comes from KAFKA_SASL_PASSWORD only."""

    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "newswatch."
    partitions: int = 6
    replication: int = 1
    client_id: str = "newswatch"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    ssl_cafile: str | None = None
    redrive_after: float = 60.0  # seconds a ledger entry may stay pending


@dataclass(frozen=True, slots=True)
class SilenceConfig:
    """A silence written in the config file: matchers (at least one), ``until`` (Unix
    time) and ``reason``; ``line`` is where it is written."""

    reason: str
    until: float
    line: int
    rule: str | None = None
    country: str | None = None
    person: str | None = None
    story: str | None = None
    feed: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    state: Path
    rules: tuple[Path, ...]
    feeds: tuple[FeedConfig, ...]
    receivers: dict[str, Receiver] = field(default_factory=dict)
    ops: str | None = None
    fetch: FetchConfig = field(default_factory=FetchConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    metrics: MetricsConfig | None = None
    silences: tuple[SilenceConfig, ...] = ()
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    pages: PagesConfig = field(default_factory=PagesConfig)

    def feed(self, name: str) -> FeedConfig:
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(name)


_TOP_KEYS = ("state", "rules", "feeds", "archive", "receivers", "ops", "fetch", "kafka",
             "metrics", "silences", "pages")


def load_config(path: str | Path, *, stdin: TextIO | None = None) -> Config:
    """Read and validate a config file (``-``: ``stdin``, by default sys.stdin); raises
    ConfigError listing every problem."""
    text, shown, base = read_config_text(path, stdin=stdin)
    return parse_config(text, shown, base=base)


def read_config_text(path: str | Path, *, stdin: TextIO | None = None) -> tuple[str, str, Path]:
    """The config's text, the name messages give it, and the folder its relative paths
    resolve against (the current directory for stdin); ConfigError when unreadable."""
    if str(path) == STDIN:
        return (stdin or sys.stdin).read(), STDIN_NAME, Path.cwd()
    location = Path(path)
    shown = str(path)
    try:
        text = location.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Issue(shown, 0, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Issue(shown, 0, f"cannot read: {error}")]) from None
    return text, shown, location.resolve().parent


def _resolve(path: Path, shown: str, line: int, issues: list[Issue]) -> Path:
    """``path`` made absolute; a symlink loop (or a path the OS refuses) is an issue, and
    the path is kept as given so that the other checks go on."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as error:  # RuntimeError: a symlink loop (Python 3.11)
        issues.append(Issue(shown, line, f"cannot resolve '{path}': {error}"))
        return path


def parse_config(text: str, shown: str, *, base: Path) -> Config:
    """Validate config text; ``shown`` names the file in messages, ``base`` resolves paths."""
    try:
        data = load_yaml(text, shown)
    except YamlError as error:
        raise ConfigError([error.issue]) from None
    issues: list[Issue] = []
    if not isinstance(data, YamlMap):
        raise ConfigError([Issue(shown, 1, "the config must be a mapping of keys")])
    top = MapReader(data, shown, issues, allowed=_TOP_KEYS)
    top.finish()

    state_text = top.text("state", default="./newswatch.db") or "./newswatch.db"
    state = _resolve(base / state_text, shown, data.line_of("state"), issues)

    rule_paths: list[Path] = []
    for item in top.texts("rules", required=True) or []:
        known = len(issues)
        rule_path = _resolve(base / item, shown, data.line_of("rules"), issues)
        if len(issues) == known and not rule_path.exists():  # not already unresolvable
            line = data.line_of("rules")
            rules_list = data.get("rules")
            if isinstance(rules_list, YamlList) and item in rules_list:
                line = rules_list.line_of(rules_list.index(item))
            issues.append(Issue(shown, line, f"rules: no such file or folder '{item}'"))
        rule_paths.append(rule_path)

    pages = _pages(top, shown, issues)
    feeds = _feeds(top, shown, issues, pages.min_words)
    receivers = _receivers(top, shown, issues)
    ops = top.text("ops")
    if ops is not None and ops not in receivers:
        issues.append(Issue(shown, data.line_of("ops"), f"ops: unknown receiver '{ops}'"))
    fetch = _fetch(top, shown, issues)
    kafka = _kafka(top, shown, issues)
    metrics = _metrics(top, shown, issues)
    silences = _silences(top, shown, issues, {f.name for f in feeds})
    archive = _archive(top, shown, issues)
    if issues:
        raise ConfigError(issues)
    return Config(
        path=base,
        state=state,
        rules=tuple(rule_paths),
        feeds=tuple(feeds),
        receivers=receivers,
        ops=ops,
        fetch=fetch,
        kafka=kafka,
        metrics=metrics,
        silences=tuple(silences),
        archive=archive,
        pages=pages,
    )


def _feeds(
    top: MapReader, shown: str, issues: list[Issue], min_words: int
) -> list[FeedConfig]:
    items = top.sequence("feeds")
    if items is None:
        return []
    feeds: list[FeedConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        line = items.line_of(i)
        if not isinstance(item, YamlMap):
            issues.append(Issue(shown, line, f"feeds[{i}] must be a mapping with name and url"))
            continue
        r = MapReader(item, shown, issues, where=f"feeds[{i}]",
                      allowed=("name", "url", "interval", "min_interval", "max_interval",
                               "language", "full_text", "full_text_min_words"))
        r.finish()
        name = r.text("name", required=True)
        url = r.text("url", required=True)
        interval = r.duration("interval", default=DEFAULT_INTERVAL)
        min_interval = r.duration("min_interval", default=interval) if r.has(
            "min_interval") else None
        max_interval = r.duration("max_interval", default=interval) if r.has(
            "max_interval") else None
        language = r.text("language")
        if name is not None:
            if not _NAME.match(name):
                r.error(f"name '{name}' may use letters, digits, '.', '_' and '-'", r.line("name"))
            elif name in seen:
                r.error(f"duplicate feed name '{name}' (first on line {seen[name]})",
                        r.line("name"))
            seen.setdefault(name, r.line("name"))
        if url is not None and (problem := url_problem(url)):
            r.error(f"url {problem}, got {url!r}", r.line("url"))
        if interval < 10:
            r.error("interval must be at least 10s", r.line("interval"))
        if min_interval is not None and min_interval < 10:
            r.error("min_interval must be at least 10s", r.line("min_interval"))
        elif min_interval is not None and min_interval > interval:
            r.error(f"min_interval must not exceed interval ({interval:g}s)",
                    r.line("min_interval"))
        if max_interval is not None and max_interval < interval:
            r.error(f"max_interval must be at least interval ({interval:g}s)",
                    r.line("max_interval"))
        elif max_interval is not None and max_interval > MAX_POLL_INTERVAL:
            r.error("max_interval must be at most 7d", r.line("max_interval"))
        if language is not None and not re.fullmatch(r"[a-z]{2}", language):
            r.error("language must be a two-letter code such as fr", r.line("language"))
        full_text, feed_min_words = _full_text(r, min_words)
        if name and url:
            feeds.append(FeedConfig(name, url, interval, language, item.line,
                                    min_interval, max_interval, full_text, feed_min_words))
    return feeds


def _full_text(r: MapReader, min_words: int) -> tuple[str, int]:
    """A feed's ``full_text`` mode and its word threshold (default: ``pages.min_words``)."""
    mode = r.text("full_text", default="auto") or "auto"
    if mode not in FULL_TEXT_MODES:
        r.error(f"full_text must be one of {', '.join(FULL_TEXT_MODES)}, got '{mode}'"
                f"{did_you_mean(mode, FULL_TEXT_MODES)}", r.line("full_text"))
        mode = "auto"
    words = r.integer("full_text_min_words", default=min_words, minimum=1)
    if r.has("full_text_min_words") and mode != "auto":
        r.error("full_text_min_words applies only to full_text: auto",
                r.line("full_text_min_words"))
    return mode, words


def _pages(top: MapReader, shown: str, issues: list[Issue]) -> PagesConfig:
    data = top.mapping("pages")
    if data is None:
        return PagesConfig()
    r = MapReader(data, shown, issues, where="pages",
                  allowed=("min_words", "deadline", "host_delay", "retry"))
    r.finish()
    deadline = r.duration("deadline", default=30.0)
    if deadline < 1:
        r.error("deadline must be at least 1s", r.line("deadline"))
    retry = r.durations("retry", default=DEFAULT_PAGE_RETRY)
    if any(seconds < 1 for seconds in retry):
        r.error("every retry delay must be at least 1s", r.line("retry"))
    return PagesConfig(min_words=r.integer("min_words", default=DEFAULT_MIN_WORDS, minimum=1),
                       deadline=deadline, host_delay=r.duration("host_delay", default=1.0),
                       retry=retry)


def _receivers(top: MapReader, shown: str, issues: list[Issue]) -> dict[str, Receiver]:
    data = top.mapping("receivers")
    if data is None:
        return {}
    out: dict[str, Receiver] = {}
    for name, spec in data.items():
        line = data.line_of(name)
        if not isinstance(spec, YamlMap) or len(spec) != 1:
            issues.append(Issue(shown, line, f"receivers.{name}: give exactly one of slack, "
                                             "email or console"))
            continue
        kind, body = next(iter(spec.items()))
        where = f"receivers.{name}.{kind}"
        if body is None:
            body = YamlMap()
            body.line, body.key_lines = spec.line_of(kind), {}
        if not isinstance(body, YamlMap):
            issues.append(Issue(shown, spec.line_of(kind), f"{where} must be a mapping"))
            continue
        if kind == "slack":
            r = MapReader(body, shown, issues, where=where, allowed=(
                "channel", "base_url", "reconcile", "interactive", "mute_story", "mute_rule"))
            r.finish()
            if (slack := slack_receiver(r, name, out.values())) is not None:
                out[name] = slack
        elif kind == "email":
            r = MapReader(body, shown, issues, where=where,
                          allowed=("to", "from", "host", "port", "starttls", "tls", "user"))
            to = r.texts("to", required=True)
            sender = r.text("from", required=True)
            host = r.text("host", required=True)
            port = r.integer("port", default=587, minimum=1)
            tls = r.flag("tls", default=False)
            starttls = r.flag("starttls", default=not tls)
            user = r.text("user")
            r.finish()
            if tls and starttls and r.has("starttls"):
                r.error("choose either tls or starttls, not both", r.line("tls"))
            bad = [(key, value, problem) for key, values in (("to", to), ("from", [sender]))
                   for value in values or () if value is not None
                   and (problem := email_problem(value))]
            if host is not None and (problem := host_problem(host)):
                bad.append(("host", host, problem))
            for key, value, problem in bad:
                r.error(f"{key}: {value!r} {problem}", r.line(key))
            if to and sender and host:
                out[name] = EmailReceiver(name, tuple(to), sender, host, port,
                                          starttls and not tls, tls, user)
        elif kind == "console":
            MapReader(body, shown, issues, allowed=(), where=where).finish()
            out[name] = ConsoleReceiver(name)
        else:
            issues.append(Issue(shown, spec.line_of(kind),
                                f"receivers.{name}: unknown kind '{kind}' "
                                "(use slack, email or console)"))
    return out


def _fetch(top: MapReader, shown: str, issues: list[Issue]) -> FetchConfig:
    data = top.mapping("fetch")
    if data is None:
        return FetchConfig()
    r = MapReader(data, shown, issues, allowed=("allow", "timeout", "max_bytes"), where="fetch")
    r.finish()
    allow = r.texts("allow") or []
    for entry in allow:
        if not re.fullmatch(r"\[?[A-Za-z0-9.:-]+\]?:\d+", entry):
            r.error(f"allow entries are host:port, got '{entry}'", r.line("allow"))
    return FetchConfig(
        allow=frozenset(a.lower() for a in allow),
        timeout=r.duration("timeout", default=20.0),
        max_bytes=r.integer("max_bytes", default=10 * 1024 * 1024, minimum=1024),
    )


_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _kafka(top: MapReader, shown: str, issues: list[Issue]) -> KafkaConfig:
    data = top.mapping("kafka")
    if data is None:
        return KafkaConfig()
    r = MapReader(data, shown, issues, where="kafka", allowed=(
        "bootstrap", "topic_prefix", "partitions", "replication", "client_id",
        "security_protocol", "sasl_mechanism", "sasl_username", "ssl_cafile",
        "redrive_after"))
    r.finish()
    protocol = r.text("security_protocol", default="PLAINTEXT") or "PLAINTEXT"
    if protocol not in _SECURITY_PROTOCOLS:
        r.error(f"security_protocol must be one of {', '.join(_SECURITY_PROTOCOLS)}",
                r.line("security_protocol"))
    mechanism = r.text("sasl_mechanism")
    if mechanism is not None and mechanism not in _SASL_MECHANISMS:
        r.error(f"sasl_mechanism must be one of {', '.join(_SASL_MECHANISMS)}",
                r.line("sasl_mechanism"))
    if protocol.startswith("SASL") and mechanism is None:
        r.error("a SASL security_protocol needs sasl_mechanism", r.line("security_protocol"))
    return KafkaConfig(
        bootstrap=r.text("bootstrap", default="127.0.0.1:9092") or "127.0.0.1:9092",
        topic_prefix=r.text("topic_prefix", default="newswatch.") or "newswatch.",
        partitions=r.integer("partitions", default=6, minimum=1),
        replication=r.integer("replication", default=1, minimum=1),
        client_id=r.text("client_id", default="newswatch") or "newswatch",
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=r.text("sasl_username"),
        ssl_cafile=r.text("ssl_cafile"),
        redrive_after=_redrive_after(r),
    )


def _redrive_after(r: MapReader) -> float:
    seconds = r.duration("redrive_after", default=60.0)
    if seconds < 5:
        # a delivery in progress (retries, a rebalance) takes seconds: sooner, every
        # re-drive would be a false alarm
        r.error("redrive_after must be at least 5s", r.line("redrive_after"))
        return 60.0
    return seconds


def _archive(top: MapReader, shown: str, issues: list[Issue]) -> ArchiveConfig:
    data = top.mapping("archive")
    if data is None:
        return ArchiveConfig()
    r = MapReader(data, shown, issues, allowed=("days",), where="archive")
    r.finish()
    return ArchiveConfig(days=r.integer("days", default=30, minimum=0))


def _metrics(top: MapReader, shown: str, issues: list[Issue]) -> MetricsConfig | None:
    data = top.mapping("metrics")
    if data is None:
        return None
    r = MapReader(data, shown, issues, allowed=("port", "host"), where="metrics")
    r.finish()
    port = r.integer("port", default=9108, minimum=1)
    if port > 65535:
        r.error("port must be at most 65535", r.line("port"))
    host = r.text("host", default="127.0.0.1") or "127.0.0.1"
    return MetricsConfig(port=port, host=host, source=shown,
                         line=r.line("port") if r.has("port") else r.line())


_SILENCE_MATCHERS = ("rule", "country", "person", "story", "feed")


def parse_until(text: str) -> float:
    """Unix time of an ISO 8601 date or date-time (UTC unless a zone is given)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _silences(
    top: MapReader, shown: str, issues: list[Issue], feeds: set[str]
) -> list[SilenceConfig]:
    items = top.sequence("silences")
    if items is None:
        return []
    out: list[SilenceConfig] = []
    for i, item in enumerate(items):
        if not isinstance(item, YamlMap):
            issues.append(Issue(shown, items.line_of(i), f"silences[{i}] must be a mapping "
                                "with matchers, until and reason"))
            continue
        r = MapReader(item, shown, issues, where=f"silences[{i}]",
                      allowed=(*_SILENCE_MATCHERS, "until", "reason"))
        r.finish()
        matchers = {k: r.text(k) for k in _SILENCE_MATCHERS}
        reason = r.text("reason", required=True)
        until_text = r.text("until", required=True)
        until = 0.0
        if until_text is not None:
            try:
                until = parse_until(until_text)
            except ValueError:
                r.error(f"until must be an ISO date or date-time such as 2025-06-30 or "
                        f"2025-06-30T18:00:00Z, got '{until_text}'", r.line("until"))
                until_text = None
        if not any(matchers.values()):
            r.error("a silence needs at least one of rule, country, person, story, feed",
                    r.line())
        country = matchers["country"]
        if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
            r.error(f"country must be an ISO code such as MA, got '{country}'",
                    r.line("country"))
        feed = matchers["feed"]
        if feed is not None and feed not in feeds:
            r.error(f"unknown feed '{feed}'", r.line("feed"))
        if reason and until_text and any(matchers.values()):
            out.append(SilenceConfig(reason=reason, until=until, line=item.line, **matchers))
    return out
