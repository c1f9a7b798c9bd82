"""workspace/inlayHint/refresh is throttled: at most one per cursor interval, and the last
change of a burst is always refreshed."""

from __future__ import annotations

import asyncio
import time

from lsprotocol import types

from collab_lsp.protocol import limits
from collab_lsp.sidecar.server import CollabServer

INTERVAL = limits.CURSOR_INTERVAL_SECONDS
TICK = INTERVAL / 10  # long enough for a timer due now to run, well within the interval


def server_with(refresh_support: bool | None) -> tuple[CollabServer, list[float]]:
    server = CollabServer()
    workspace = (
        None
        if refresh_support is None
        else types.WorkspaceClientCapabilities(
            inlay_hint=types.InlayHintWorkspaceClientCapabilities(refresh_support=refresh_support)
        )
    )
    server.protocol.client_capabilities = types.ClientCapabilities(workspace=workspace)
    sent: list[float] = []

    def refresh(params: None, callback: object = None) -> None:
        sent.append(time.monotonic())

    server.workspace_inlay_hint_refresh = refresh  # type: ignore[method-assign,assignment]
    return server, sent


async def test_a_burst_of_cursor_changes_is_one_refresh_then_one_more_after_the_interval() -> None:
    server, sent = server_with(True)
    started = time.monotonic()
    for _ in range(50):
        server.refresh_inlay_hints()
    await asyncio.sleep(TICK)
    assert len(sent) == 1  # the first change after a quiet interval: at once
    assert sent[0] - started < INTERVAL
    for _ in range(50):
        server.refresh_inlay_hints()
    await asyncio.sleep(TICK)
    assert len(sent) == 1  # within the interval: waits
    await asyncio.sleep(INTERVAL * 3)
    assert len(sent) == 2  # the last change of the burst is refreshed
    assert sent[1] - sent[0] >= INTERVAL * 0.99
    await asyncio.sleep(INTERVAL * 2)
    server.refresh_inlay_hints()
    await asyncio.sleep(TICK)
    assert len(sent) == 3  # quiet again: at once


async def test_no_refresh_without_the_capability() -> None:
    for support in (None, False):
        server, sent = server_with(support)
        server.refresh_inlay_hints()
        await asyncio.sleep(INTERVAL * 2)
        assert sent == []
