from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from collab_lsp.relay.server import Relay
from tests.helpers import RelayHandle, relay_config
from tests.sidecar.harness import Sidecar


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


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small project folder that the sidecars share as their workspace."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(
        "import os\n\n\ndef main():\n    print('héllo😀 world')\n    return 0\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture
async def sidecars() -> AsyncIterator[Callable[..., Sidecar]]:
    started: list[Sidecar] = []

    def make(root: Path, editor: str = "vscode") -> Sidecar:
        sidecar = Sidecar(root, editor)
        started.append(sidecar)
        return sidecar

    yield make
    for sidecar in started:
        await sidecar.stop()
