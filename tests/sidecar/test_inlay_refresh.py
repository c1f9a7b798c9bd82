"""workspace/inlayHint/refresh is throttled: at most one per cursor interval, and the last
change of a burst is always refreshed."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types

from collab_lsp.protocol import limits
from collab_lsp.sidecar.server import CollabServer
from tests.helpers import TIMEOUT

INTERVAL = limits.CURSOR_INTERVAL_SECONDS


class FrozenClock:
    """The sidecar's clock, moved only by the test: the throttle's decisions never depend
    on how fast this machine runs (the timers themselves still run on the real loop)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock()
    monkeypatch.setattr("collab_lsp.sidecar.server.time", frozen)
    return frozen


class Refreshes:
    def __init__(self) -> None:
        self.count = 0
        self._sent = asyncio.Event()

    def record(self, params: None, callback: object = None) -> None:
        self.count += 1
        self._sent.set()

    async def next(self) -> None:
        self._sent.clear()
        await asyncio.wait_for(self._sent.wait(), TIMEOUT)


async def settle() -> None:
    """Let timers that are already due (delay 0) run."""
    for _ in range(3):
        await asyncio.sleep(0)


def server_with(refresh_support: bool | None) -> tuple[CollabServer, Refreshes]:
    server = CollabServer()
    workspace = (
        None
        if refresh_support is None
        else types.WorkspaceClientCapabilities(
            inlay_hint=types.InlayHintWorkspaceClientCapabilities(refresh_support=refresh_support)
        )
    )
    server.protocol.client_capabilities = types.ClientCapabilities(workspace=workspace)
    refreshes = Refreshes()
    server.workspace_inlay_hint_refresh = refreshes.record  # type: ignore[method-assign,assignment]
    return server, refreshes


async def test_a_burst_of_cursor_changes_is_one_refresh_then_one_more_after_the_interval(
    clock: FrozenClock,
) -> None:
    server, refreshes = server_with(True)
    for _ in range(50):
        server.refresh_inlay_hints()
    await settle()
    assert refreshes.count == 1  # the first change after a quiet interval: at once
    for _ in range(50):
        server.refresh_inlay_hints()
    await settle()
    assert refreshes.count == 1  # within the interval (the clock has not moved): it waits
    await refreshes.next()
    assert refreshes.count == 2  # the last change of the burst is refreshed
    clock.now += INTERVAL * 2
    server.refresh_inlay_hints()
    await settle()
    assert refreshes.count == 3  # quiet again: at once


async def test_no_refresh_without_the_capability(clock: FrozenClock) -> None:
    for support in (None, False):
        server, refreshes = server_with(support)
        server.refresh_inlay_hints()
        clock.now += INTERVAL * 2
        server.refresh_inlay_hints()
        await settle()
        assert refreshes.count == 0
