"""The canary for faust and aiokafka upgrades: every private member the worker's consumer
repairs and its stall guard override, call or read (``PRIVATE_API`` in
streams/kafka/consumer.py) exists in the installed versions, with the parameters the
repairs expect. An upgrade that removes or renames one fails here, naming it, instead of
silently turning a repair off (and losing alerts in the next rebalance). No broker needed:
the worker app is built, not started."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from newswatch.rules.matcher import Matcher
from newswatch.rules.model import RuleSet
from newswatch.streams.kafka import consumer as repairs
from newswatch.streams.kafka.client import KafkaSettings
from newswatch.streams.kafka.consumer import (
    PRIVATE_API,
    Private,
    api_owners,
    check_private_api,
    missing_private_api,
)
from newswatch.streams.kafka.worker import build_app

KAFKA_CODE = Path(repairs.__file__).parent


@pytest.fixture
def app() -> faust.App:
    settings = KafkaSettings(bootstrap="127.0.0.1:9", prefix="canary.")
    return build_app(settings, matcher=lambda: Matcher(RuleSet(())), notifiers={})


def test_every_private_member_the_repairs_use_is_there(app: faust.App) -> None:
    assert missing_private_api(api_owners(app)) == []


def test_the_worker_runs_on_the_repaired_consumer(app: faust.App) -> None:
    assert isinstance(app.consumer, repairs.RepairedConsumer)
    assert isinstance(app.consumer._thread, repairs.RepairedConsumerThread)


def _without(obj: Any, name: str) -> SimpleNamespace:
    """A throwaway stand-in for ``obj``: every attribute the table asks of it but ``name``."""
    kept = {p.name: getattr(obj, p.name) for p in PRIVATE_API
            if hasattr(obj, p.name) and p.name != name}
    return SimpleNamespace(**kept)


@pytest.mark.parametrize(("owner", "name"), [
    ("Consumer", "_add_gap"),  # a method the repairs override
    ("consumer", "_acked"),  # an attribute faust sets per instance
    ("AIOKafkaConsumerThread", "_ensure_consumer"),
    ("app", "rebalancing"),  # read by the stall guard
])
def test_the_canary_names_a_removed_member(app: faust.App, owner: str, name: str) -> None:
    owners = api_owners(app)
    owners[owner] = _without(owners[owner], name)
    problems = missing_private_api(owners)
    assert len(problems) == 1
    assert problems[0].startswith(f"{owner}.{name} (") and problems[0].endswith(": missing")


def test_the_canary_names_a_method_whose_parameters_changed(app: faust.App) -> None:
    class Renamed(faust_aiokafka.Consumer):
        async def _add_gap(self, tp: Any, start: int, end: int) -> None: ...

    owners = {**api_owners(app), "Consumer": Renamed}
    assert missing_private_api(owners) == [
        "Consumer._add_gap (overridden: a gap is never counted as processed): parameters "
        "are now ('tp', 'start', 'end'), not ('tp', 'offset_from', 'offset_to')"]
    with pytest.raises(RuntimeError, match=r"consumer\.py\): Consumer\._add_gap \("):
        check_private_api(owners)  # what build_app runs: the worker does not start


def _private_names_used(path: Path) -> set[str]:
    """Every private ``x._name`` used in ``path`` that the module does not define itself
    (as a function, a class, a class-level annotation or an attribute it assigns)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ours = {n.name for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    ours |= {t.target.id for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
             for t in n.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)}
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        ours |= {t.attr for t in targets if isinstance(t, ast.Attribute)}
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and n.attr.startswith("_") and not n.attr.startswith("__") and n.attr not in ours}


def _defined_in(cls: type) -> set[str]:
    """The names a class body defines (methods and class attributes)."""
    (body,) = ast.parse(inspect.getsource(cls)).body
    assert isinstance(body, ast.ClassDef)
    names = {n.name for n in body.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for n in body.body:
        targets = n.targets if isinstance(n, ast.Assign) else (
            [n.target] if isinstance(n, ast.AnnAssign) else [])
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_the_table_lists_every_private_member_the_kafka_code_touches() -> None:
    """A new use of a faust/aiokafka private member must be added to ``PRIVATE_API``."""
    listed = {p.name for p in PRIVATE_API}
    used = {name for path in KAFKA_CODE.glob("*.py") for name in _private_names_used(path)}
    assert used - listed == set()
    for ours, owner in ((repairs.RepairedConsumerThread, "AIOKafkaConsumerThread"),
                        (repairs.RepairedConsumer, "Consumer"),
                        (repairs.RepairedTransport, "Transport")):
        base = ours.__mro__[1]
        overridden = {n for n in _defined_in(ours) if hasattr(base, n)}
        assert overridden - {p.name for p in PRIVATE_API if p.owner == owner} == set(), ours


def test_the_table_names_only_owners_it_can_check(app: faust.App) -> None:
    owners = api_owners(app)
    assert {p.owner for p in PRIVATE_API} == set(owners)
    for p in PRIVATE_API:
        assert isinstance(p, Private) and p.use, p
        if p.params is not None:
            assert callable(getattr(owners[p.owner], p.name)), p
            assert inspect.signature(getattr(owners[p.owner], p.name)) is not None
