"""pytest fixtures for the fake receivers. Import them explicitly in a test module::

from tests.fakes.fixtures import slack_api, smtp_sink  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_socket import FakeSocketMode
from tests.fakes.smtp_sink import SMTPSink

SLACK_TEST_TOKEN = "xoxb-test-token"


@pytest_asyncio.fixture
async def slack_api() -> AsyncIterator[FakeSlackAPI]:
    """A running fake Slack Web API accepting ``SLACK_TEST_TOKEN``."""
    async with FakeSlackAPI(token=SLACK_TEST_TOKEN) as fake:
        yield fake


@pytest_asyncio.fixture
async def smtp_sink() -> AsyncIterator[SMTPSink]:
    """A running aiosmtpd sink on 127.0.0.1."""
    async with SMTPSink() as sink:
        yield sink


SLACK_APP_TEST_TOKEN = "xapp-test-token"


@pytest_asyncio.fixture
async def slack_socket(slack_api: FakeSlackAPI) -> AsyncIterator[FakeSocketMode]:
    """A running fake Socket Mode server, whose URL ``slack_api``'s
    ``apps.connections.open`` hands out (app-level token ``SLACK_APP_TEST_TOKEN``)."""
    async with FakeSocketMode() as socket:
        slack_api.app_token = SLACK_APP_TEST_TOKEN
        slack_api.socket_url = socket.url
        yield socket
