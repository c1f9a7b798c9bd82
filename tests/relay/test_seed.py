"""The seed's own two tests, against a real relay."""

from __future__ import annotations

from tests.helpers import RelayHandle


async def test_user_joins_session(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    token = relay.token(session_id, "alice", "host")
    client = await relay.connect_raw(f"/ws/session/{session_id}?token={token}")
    data = await client.recv()
    assert data["type"] == "connected"
    assert data["session"]["id"] == session_id
    assert data["you"]["username"] == "alice"
    assert data["you"]["role"] == "host"


async def test_chat_message_broadcast(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    ws1 = await relay.join(session_id, "alice", "host")
    ws2 = await relay.join(session_id, "bob", "editor")
    await ws1.send({"type": "chat_message", "content": "Hello!"})
    data = await ws2.expect("chat_message")
    assert data["type"] == "chat_message"
    assert data["message"]["content"] == "Hello!"
    assert data["message"]["username"] == "alice"
