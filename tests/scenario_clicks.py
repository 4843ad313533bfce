"""The click scenario of the shared acceptance day (tests/test_scenarios.py), run beside the
rest of the day against both runtimes: the ``basalt-watch`` rule's alert reaches the
interactive receiver ``clicks`` with its buttons, "Mute story" is clicked over Socket Mode
(the local server of tests/fakes/slack_socket.py), and the story's next copy is silenced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.fakes.feed_server import FeedServer, rss
from tests.fakes.slack_api import FakeSlackAPI, StoredMessage
from tests.fakes.slack_socket import FakeSocketMode, block_actions

BASALT = {"title": "basalt quarry deal signed by the northern council on monday",
          "guid": "bs1", "link": "https://news.example/bs1"}
BASALT_COPY = {"title": "basalt quarry deal signed by the northern council on monday, "
                        "officials say", "guid": "bs2", "link": "https://outlet9.example/bs2"}


class Clicked(Protocol):
    """What the scenario reads of a runtime (a ``Deployment`` of tests/test_scenarios.py)."""

    async def decisions(self, rule_id: str) -> list[tuple[str, str, float, str]]: ...

    async def silences(self) -> list[dict[str, Any]]: ...


@dataclass
class Clicks:
    """What the click scenario saw in one runtime."""

    step: str = "starting"  # the step it is waiting for; "done" at the end
    answered_after_ack: bool = False  # the alert's answer came after the acknowledgement
    silences: list[dict[str, Any]] = field(default_factory=list)  # once muted
    basalt: list[tuple[str, str]] = field(default_factory=list)  # verdicts and reasons


async def eventually(read: Callable[[], Any], holds: Callable[[Any], bool],
                     timeout: float) -> Any:
    """``read()`` (a state with no change event: a CLI answer, a log) once ``holds``."""
    async with asyncio.timeout(timeout):
        while not holds(value := await read()):
            await asyncio.sleep(0.5)
    return value


async def click_script(runtime: Clicked, slack: FakeSlackAPI, socket: FakeSocketMode,
                       feeds: FeedServer, seen: Clicks) -> None:
    """The scenario (see the module docstring); ``feeds`` serves ``/basalt.xml`` with
    ``BASALT`` already."""
    def basalt() -> list[StoredMessage]:
        return [m for m in slack.messages if "basalt quarry" in " ".join(m.texts())]

    seen.step = "the basalt alert"
    await slack.wait_until(lambda: bool(basalt()), timeout=90)
    (alert,) = basalt()
    seen.step = "the Socket Mode connection"
    await socket.wait_connected(timeout=60)
    ack = await socket.wait_ack(await socket.send(block_actions(alert, "mute_story")))
    seen.step = "the answer under the alert"
    await slack.wait_until(lambda: alert.edits == 1, timeout=60)
    (update,) = [c for c in slack.calls_to("chat.update") if c.payload.get("ts") == alert.ts]
    seen.answered_after_ack = update.at >= ack.at
    seen.step = "the mute in the silences"
    seen.silences = await eventually(
        runtime.silences, lambda found: any(s["rule"] == "basalt-watch" for s in found), 30)
    seen.step = "the silenced copy"
    feeds.serve("/basalt.xml", rss([BASALT, BASALT_COPY]))
    decided = await eventually(lambda: runtime.decisions("basalt-watch"),
                               lambda found: any(d[0] == "silenced" for d in found), 60)
    seen.basalt = [(verdict, reason) for verdict, _, _, reason in decided]
    seen.step = "done"
