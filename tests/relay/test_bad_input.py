"""Bad input of every kind: a specific error naming the field, and the connection stays usable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from collab_lsp.protocol.server_frames import DURABLE_TYPES
from collab_lsp.relay.server import Relay
from tests.helpers import Client, RelayHandle, relay_config


@asynccontextmanager
async def custom_relay(tmp_path: Path, **overrides: Any) -> AsyncIterator[RelayHandle]:
    handle = RelayHandle(Relay(relay_config(tmp_path, **overrides)))
    await handle.relay.start()
    try:
        yield handle
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()


async def pair(relay: RelayHandle) -> tuple[str, Client, Client]:
    session_id = await relay.create_session(host="alice")
    alice = await relay.join(session_id, "alice", "host")
    bob = await relay.join(session_id, "bob", "editor")
    await alice.expect("user_joined")
    return session_id, alice, bob


async def next_durable(client: Client) -> dict[str, Any]:
    while True:
        frame = await client.recv()
        if frame["type"] in DURABLE_TYPES and "seq" in frame:
            return frame


async def error_for(client: Client, frame: dict[str, Any] | str) -> dict[str, Any]:
    await client.send(frame)
    return await client.expect("error")


async def assert_still_usable(client: Client) -> None:
    pong = await client.request({"type": "ping"}, reply="pong")
    assert pong["type"] == "pong"


def cursor(**data: Any) -> dict[str, Any]:
    return {"type": "cursor_update", "data": {"file": "src/app.py", "line": 1, "column": 1, **data}}


def comment(**data: Any) -> dict[str, Any]:
    return {"type": "add_comment", "data": {"file": "src/a.py", "line": 1, "content": "c", **data}}


BAD_FRAMES: list[tuple[str, dict[str, Any] | str, str, str | None]] = [
    ("invalid json", '{"type": "chat_message", "content": ', "INVALID_JSON", None),
    ("json array", '[{"type": "ping"}]', "INVALID_FRAME", None),
    ("json number", "42", "INVALID_FRAME", None),
    ("unknown type", {"type": "teleport"}, "UNKNOWN_TYPE", "type"),
    ("missing type", {"content": "hi"}, "INVALID_FRAME", "type"),
    ("string line", cursor(line="42"), "INVALID_FRAME", "data.line"),
    ("line 0", cursor(line=0), "INVALID_FRAME", "data.line"),
    (
        "health_score 101",
        {"type": "session_update", "changes": {"health_score": 101}},
        "INVALID_FRAME",
        "changes.health_score",
    ),
    (
        "negative token_count",
        {"type": "session_update", "changes": {"token_count": -1}},
        "INVALID_FRAME",
        "changes.token_count",
    ),
    (
        "null title",
        {"type": "session_update", "changes": {"title": None}},
        "INVALID_FRAME",
        "changes.title",
    ),
    (
        "control character in chat",
        {"type": "chat_message", "content": "hi\x1b[2J"},
        "INVALID_FRAME",
        "content",
    ),
    ("control character in path", cursor(file="src/\x00app.py"), "INVALID_FRAME", "data.file"),
    (
        "text over 10000 chars",
        {"type": "chat_message", "content": "x" * 10_001},
        "INVALID_FRAME",
        "content",
    ),
    (
        "unknown field",
        {"type": "chat_message", "content": "hi", "colour": "red"},
        "INVALID_FRAME",
        "colour",
    ),
    ("dot-dot path", comment(file="../../etc/passwd"), "INVALID_FRAME", "data.file"),
    ("absolute path", comment(file="/etc/passwd"), "INVALID_FRAME", "data.file"),
    (
        "dot-dot viewport",
        {"type": "presence_update", "viewport": {"file": "../x.py", "start": 1, "end": 2}},
        "INVALID_FRAME",
        "viewport.file",
    ),
    (
        "other session",
        {"type": "chat_message", "content": "hi", "session_id": "s_elsewhere"},
        "SESSION_MISMATCH",
        "session_id",
    ),
    (
        "unknown message",
        {"type": "edit_message", "message_id": "m_nope", "content": "v2"},
        "NOT_FOUND",
        "message_id",
    ),
    (
        "react to unknown message",
        {"type": "add_reaction", "message_id": "m_nope", "emoji": "👍"},
        "NOT_FOUND",
        "message_id",
    ),
    (
        "delete unknown message",
        {"type": "delete_message", "message_id": "m_nope"},
        "NOT_FOUND",
        "message_id",
    ),
    (
        "resolve unknown comment",
        {"type": "resolve_comment", "comment_id": "m_nope"},
        "NOT_FOUND",
        "comment_id",
    ),
    (
        "reply to unknown message",
        {"type": "chat_message", "content": "re", "parent_id": "m_nope"},
        "NOT_FOUND",
        "parent_id",
    ),
    (
        "mention of a non-participant",
        {"type": "chat_message", "content": "hi", "mentions": ["mallory"]},
        "UNKNOWN_USER",
        "mentions.0",
    ),
    (
        "follow a non-participant",
        {"type": "presence_update", "following": "mallory"},
        "UNKNOWN_USER",
        "following",
    ),
    (
        "seq past 64 bits",
        {"type": "get_history", "before_seq": 2**64},
        "INVALID_FRAME",
        "before_seq",
    ),
    ("second join", {"type": "join_session", "session_id": "s_x"}, "ALREADY_JOINED", None),
    ("create after join", {"type": "create_session", "title": "t"}, "ALREADY_JOINED", None),
]


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
async def test_bad_frame_gets_a_specific_error(
    relay: RelayHandle, frame: dict[str, Any] | str, code: str, field: str | None
) -> None:
    _, alice, bob = await pair(relay)
    error = await error_for(bob, frame)
    assert error["error_code"] == code, error
    assert error.get("field") == field
    assert error["message"]
    if field is not None and code == "INVALID_FRAME":
        assert field in error["message"]
    await assert_still_usable(bob)
    # nothing was broadcast because of it, and bob may still talk
    ok = await bob.request({"type": "chat_message", "content": "still here"})
    assert ok["type"] == "ack"
    after = await next_durable(alice)
    assert (after["type"], after["id"]) == ("chat_message", ok["id"])


async def test_error_names_the_frame_id_when_the_frame_is_invalid(relay: RelayHandle) -> None:
    _, _, bob = await pair(relay)
    error = await bob.request({"type": "chat_message", "id": "c-42", "content": ""})
    assert error["type"] == "error"
    assert (error["error_code"], error["field"], error["ref"]) == (
        "INVALID_FRAME",
        "content",
        "c-42",
    )


async def test_editing_someone_elses_message(relay: RelayHandle) -> None:
    _, alice, bob = await pair(relay)
    sent = await alice.request({"type": "chat_message", "content": "mine"})
    refused = await bob.request({"type": "edit_message", "message_id": sent["id"], "content": "x"})
    assert (refused["error_code"], refused["field"]) == ("NOT_AUTHOR", "message_id")
    deleted = await bob.request({"type": "delete_message", "message_id": sent["id"]})
    assert deleted["error_code"] == "NOT_AUTHOR"
    await assert_still_usable(bob)
    history = await bob.request({"type": "get_history"}, reply="history")
    assert [m["content"] for m in history["messages"]] == ["mine"]


@pytest.mark.parametrize("text", ["x", "😀"], ids=["ascii", "four-byte characters"])
async def test_frame_over_the_soft_limit(relay: RelayHandle, text: str) -> None:
    _, _, bob = await pair(relay)
    padding = text * (70 * 1024 // len(text.encode()))  # 70 KiB of UTF-8
    frame = json.dumps({"type": "chat_message", "content": padding}, ensure_ascii=False)
    assert 64 * 1024 < len(frame.encode()) < 1024 * 1024
    error = await error_for(bob, frame)
    assert error["error_code"] == "FRAME_TOO_LARGE"
    assert "65536" in error["message"]
    await assert_still_usable(bob)


async def test_frame_over_one_mebibyte_closes_with_1009(relay: RelayHandle) -> None:
    _, alice, bob = await pair(relay)
    await bob.send(json.dumps({"type": "chat_message", "content": "x" * (1024 * 1024)}))
    await bob.ws.wait_closed()
    assert bob.ws.close_code == 1009
    await assert_still_usable(alice)


async def test_frames_before_joining_get_not_joined(relay: RelayHandle) -> None:
    session_id = await relay.create_session(host="alice")
    client = await relay.connect_raw("/ws")
    error = await error_for(client, {"type": "chat_message", "content": "too early", "id": "c1"})
    assert (error["error_code"], error["ref"]) == ("NOT_JOINED", "c1")
    bad = await error_for(client, "{oops")
    assert bad["error_code"] == "INVALID_JSON"
    await assert_still_usable(client)
    token = relay.token(session_id, "bob", "editor")
    await client.send({"type": "join_session", "session_id": session_id, "auth_token": token})
    connected = await client.expect("connected")
    assert connected["you"]["id"] == "bob"


async def test_no_join_frame_within_the_timeout_closes_4002(tmp_path: Path) -> None:
    async with custom_relay(tmp_path, join_timeout_seconds=0.3) as relay:
        client = await relay.connect_raw("/ws")
        await client.ws.wait_closed()
        assert client.ws.close_code == 4002


async def test_error_budget_closes_4029(tmp_path: Path) -> None:
    async with custom_relay(tmp_path, max_errors_per_minute=3) as relay:
        _, alice, bob = await pair(relay)
        for _ in range(3):
            assert (await error_for(bob, "nope"))["error_code"] == "INVALID_JSON"
        await assert_still_usable(bob)  # at the budget, not over it
        assert (await error_for(bob, {"type": "teleport"}))["error_code"] == "UNKNOWN_TYPE"
        await bob.ws.wait_closed()
        assert bob.ws.close_code == 4029
        await assert_still_usable(alice)


async def test_bad_frames_lose_nothing_already_committed(relay: RelayHandle) -> None:
    session_id, alice, bob = await pair(relay)
    kept = await alice.request({"type": "chat_message", "content": "keep me"})
    comment_ack = await alice.request(comment(content="and me"))
    for frame in ("{", {"type": "teleport"}, cursor(line=0), comment(file="/etc/passwd")):
        await error_for(bob, frame)
    await error_for(bob, {"type": "edit_message", "message_id": kept["id"], "content": "stolen"})
    await error_for(bob, {"type": "session_update", "changes": {"title": None}})
    history = await bob.request({"type": "get_history"}, reply="history")
    assert [(m["id"], m["content"]) for m in history["messages"]] == [
        (kept["id"], "keep me"),
        (comment_ack["id"], "and me"),
    ]
    late = await relay.join(session_id, "carol", "viewer")
    assert late.connected is not None
    assert [m["content"] for m in late.connected["messages"]] == ["keep me", "and me"]
    assert late.connected["session"]["title"] == "Pairing"
