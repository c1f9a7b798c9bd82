"""The relay client against a real relay: join, requests, refusal, reconnect and resend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from collab_lsp.client import Backoff, ClientState, RelayClient, RelayError
from collab_lsp.relay.server import Relay
from tests.helpers import RelayHandle, relay_config


def _client(relay_url: str, token: str, frames: list[dict[str, Any]]) -> RelayClient:
    return RelayClient(
        relay_url, token, on_frame=frames.append, backoff=Backoff(initial=0.05, cap=0.2)
    )


async def test_joins_sends_and_receives(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    alice_frames: list[dict[str, Any]] = []
    alice = _client(relay.url, relay.token(session_id, "alice", "host"), alice_frames)
    await alice.start()
    try:
        assert alice.state is ClientState.CONNECTED
        assert alice_frames[0]["type"] == "connected"
        observer = await relay.join(session_id, "bob", "editor")
        ack = await alice.request({"type": "chat_message", "content": "hi"})
        assert ack["type"] == "ack"
        chat = await observer.expect("chat_message")
        assert chat["id"] == ack["id"]
        assert alice.last_seq == ack["seq"]
    finally:
        await alice.close()


async def test_refusal_is_raised_with_the_relay_error(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    client = _client(relay.url, relay.token(session_id, "val", "viewer"), [])
    await client.start()
    try:
        with pytest.raises(RelayError) as refused:
            await client.request({"type": "chat_message", "content": "hi"})
        assert refused.value.code == "PERMISSION_DENIED"
    finally:
        await client.close()
    bad = _client(relay.url, "not-a-token", [])
    with pytest.raises(RelayError) as error:
        await bad.start()
    assert error.value.code == "INVALID_TOKEN" and error.value.fatal
    assert bad.state is ClientState.OFFLINE


async def test_reconnects_resumes_and_resends_unacked(tmp_path: Path) -> None:
    first = RelayHandle(Relay(relay_config(tmp_path)))
    await first.relay.start()
    port = first.relay.port
    session_id = await first.create_session()
    token = first.token(session_id, "alice", "host")
    states: list[ClientState] = []
    frames: list[dict[str, Any]] = []
    client = _client(first.url, token, frames)
    reconnecting = asyncio.Event()

    def on_state(state: ClientState, detail: str | None) -> None:
        states.append(state)
        if state is ClientState.RECONNECTING:
            reconnecting.set()

    client.on_state = on_state
    await client.start()
    await client.request({"type": "chat_message", "content": "before"})
    await first.relay.stop()
    await asyncio.wait_for(reconnecting.wait(), 10)

    # Typed while the relay is down: kept, and sent once it is back.
    offline = asyncio.ensure_future(client.request({"type": "chat_message", "content": "offline"}))
    second = Relay(relay_config(tmp_path, port=port))
    await second.start()
    try:
        ack = await asyncio.wait_for(offline, 20)
        assert ack["type"] == "ack" and not ack["duplicate"]
        assert states.count(ClientState.CONNECTED) == 2
        history = await client.request({"type": "get_history"}, expect="history")
        assert [m["content"] for m in history["messages"]] == ["before", "offline"]
    finally:
        await client.close()
        await second.stop()


async def test_an_invite_without_a_name_fails_instead_of_retrying(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    host = await relay.join(session_id, "alice", "host")
    invite = await host.request({"type": "invite", "role": "viewer"}, reply="invite_created")
    client = _client(relay.url, invite["token"], [])
    with pytest.raises(RelayError) as refused:
        await client.start()
    assert refused.value.code == "INVALID_FRAME" and refused.value.field == "name"
    assert client.state is ClientState.OFFLINE
