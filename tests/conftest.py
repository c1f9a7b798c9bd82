from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collab_lsp.relay.server import Relay
from tests.helpers import RelayHandle, relay_config


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RelayHandle]:
    """A real relay on a free loopback port with its own SQLite file."""
    handle = RelayHandle(Relay(relay_config(tmp_path)))
    await handle.relay.start()
    try:
        yield handle
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()
