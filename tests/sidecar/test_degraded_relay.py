"""A relay whose database goes away: the editor is told, and a comment made then is kept.

The relay runs in-process on PostgreSQL reached through a TCP proxy that the test cuts
and restores; the sidecars are real subprocesses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from lsprotocol import types

from collab_lsp.relay.server import Relay
from tests.helpers import RelayHandle, relay_config
from tests.services import TcpProxy, dsn_through, fresh_pg_schema, postgres_proxy
from tests.sidecar.harness import Sidecar

Make = Callable[..., Sidecar]


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    forwarder = postgres_proxy()
    await forwarder.start()
    try:
        yield forwarder
    finally:
        await forwarder.cut()


@pytest.fixture
async def relay_on_postgres(tmp_path: Path, proxy: TcpProxy) -> AsyncIterator[RelayHandle]:
    async with fresh_pg_schema() as schema:
        config = relay_config(tmp_path, database_url=dsn_through(proxy), database_schema=schema)
        handle = RelayHandle(Relay(config))
        await handle.relay.start()
        try:
            yield handle
        finally:
            await handle.relay.stop()


async def test_the_editor_is_told_and_a_comment_made_meanwhile_arrives_once_back(
    relay_on_postgres: RelayHandle, proxy: TcpProxy, workspace: Path, sidecars: Make
) -> None:
    relay = relay_on_postgres
    session_id = await relay.create_session()
    alice, bob = sidecars(workspace), sidecars(workspace)
    await alice.start(relayUrl=relay.url, token=relay.token(session_id, "alice", "host"))
    await bob.start(relayUrl=relay.url, token=relay.token(session_id, "bob"))
    for sidecar in (alice, bob):
        await sidecar.wait("collab/sessionState", lambda p: p["state"] == "connected")
    uri = alice.open("src/app.py")
    bob.open("src/app.py")

    since = alice.mark()
    await proxy.cut()
    held = await alice.command("addComment", uri=uri, line=2, text="made while degraded")
    assert held["status"] == "pending"
    degraded = await alice.wait(
        "collab/sessionState", lambda p: p["relayDegraded"] is not None, since
    )
    assert "database" in degraded["relayDegraded"]
    warning = await alice.wait(
        types.WINDOW_SHOW_MESSAGE, lambda p: "cannot store" in p.message, since
    )
    assert warning.type == types.MessageType.Warning
    [pending] = await alice.wait_diagnostics(uri, lambda d: len(d) == 1)
    assert pending.message.startswith("[pending] alice: made while degraded")

    await proxy.start()
    await alice.wait("collab/sessionState", lambda p: p["relayDegraded"] is None, since)
    [arrived] = await bob.wait_diagnostics(uri, lambda d: len(d) == 1)
    assert arrived.message == "alice: made while degraded"
    await alice.wait_diagnostics(uri, lambda d: len(d) == 1 and "[pending]" not in d[0].message)
    listed = await bob.command("listThreads")
    assert [t["comments"][0]["content"] for t in listed["threads"]] == ["made while degraded"]
