"""The seed's rate limit: 100 durable messages a minute per user."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.helpers import TIMEOUT, Client, RelayHandle
from tests.relay.relay_process import in_process_relay, next_durable, until_pong

LIMIT = 100


async def send_chats(client: Client, prefix: str, count: int) -> list[dict[str, Any]]:
    """Send ``count`` chats, then wait for each reply (ack or error)."""
    ids = [f"{prefix}-{i}" for i in range(count)]
    for frame_id in ids:
        await client.send({"type": "chat_message", "id": frame_id, "content": frame_id})
    return [await reply_to(client, frame_id) for frame_id in ids]


async def reply_to(client: Client, frame_id: str) -> dict[str, Any]:
    """The ack or error that names ``frame_id``."""
    while True:
        for index, frame in enumerate(client.inbox):
            if frame.get("ref") == frame_id and frame["type"] in ("ack", "error"):
                return client.inbox.pop(index)
        client.inbox.append(json.loads(await asyncio.wait_for(client.ws.recv(), TIMEOUT)))


def assert_rate_limited(reply: dict[str, Any]) -> None:
    assert reply["type"] == "error", reply
    assert reply["error_code"] == "RATE_LIMITED"
    assert reply["retry_after"] > 0


async def test_the_101st_message_is_refused_and_the_connection_stays(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    alice = await relay.join(session_id, "alice", "host")
    bob = await relay.join(session_id, "bob", "editor")
    carol = await relay.join(session_id, "carol", "editor")
    replies = await send_chats(alice, "a", LIMIT)
    assert [reply["type"] for reply in replies] == ["ack"] * LIMIT

    refused = await alice.request({"type": "chat_message", "id": "a-101", "content": "one more"})
    assert_rate_limited(refused)
    pong = await alice.request({"type": "ping", "id": "still-there"}, reply="pong")
    assert pong["type"] == "pong"

    # Nothing was committed or broadcast for it: bob's next event after alice's 100 is
    # carol's chat, and it took the very next seq.
    while (await next_durable(bob))["seq"] < replies[-1]["seq"]:
        pass
    other = await carol.request({"type": "chat_message", "content": "carol is unaffected"})
    assert other["type"] == "ack" and other["seq"] == replies[-1]["seq"] + 1
    assert (await next_durable(bob))["seq"] == other["seq"]
    assert not [f for f in await until_pong(bob) if f.get("type") == "chat_message"]


async def test_the_limit_is_per_user_across_connections(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    vscode = await relay.join(session_id, "alice", "host")
    terminal = await relay.join(session_id, "alice", "host")
    bob = await relay.join(session_id, "bob", "editor")

    first = await send_chats(vscode, "vscode", 60)
    second = await send_chats(terminal, "terminal", 40)
    assert [reply["type"] for reply in first + second] == ["ack"] * LIMIT
    assert_rate_limited(await terminal.request({"type": "chat_message", "content": "101"}))
    assert_rate_limited(await vscode.request({"type": "chat_message", "content": "102"}))

    replies = await send_chats(bob, "bob", 10)
    assert [reply["type"] for reply in replies] == ["ack"] * 10


async def test_a_higher_configured_limit_lifts_it(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, durable_rate_per_minute=150) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        replies = await send_chats(alice, "a", 150)
        assert [reply["type"] for reply in replies] == ["ack"] * 150
        assert_rate_limited(await alice.request({"type": "chat_message", "content": "151"}))
