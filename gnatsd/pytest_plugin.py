"""A pytest plugin: the `gnatsd_server` fixture gives each test a real NATS server.

Installed with gnatsd (entry point `pytest11`), so any project can test against NATS
without a server binary:

    async def test_hello(gnatsd_server):
        nc = await nats.connect(gnatsd_server.client_url())

The server runs on its own thread and gevent hub on a random port, so it works beside
asyncio clients in an unpatched process. `gnatsd_options` can be overridden to change it.
"""
from __future__ import annotations

import pytest

from .opts import Options
from .server import Server


@pytest.fixture
def gnatsd_options():
    """Options for `gnatsd_server`; override this fixture to change them."""
    return Options(host="127.0.0.1", port=-1)


@pytest.fixture
def gnatsd_server(gnatsd_options):
    """A running gnatsd server, shut down after the test."""
    server = Server(gnatsd_options).start_in_thread()
    yield server
    server.stop_thread()
