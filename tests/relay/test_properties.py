"""Random frames never crash the relay: afterwards ping still gets pong and chat still flows.

Hypothesis and function-scoped async fixtures do not mix, so each example runs its own
relay inside ``asyncio.run`` from a synchronous test.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collab_lsp.protocol.errors import ErrorCode
from collab_lsp.relay.server import Relay
from tests.helpers import Client, RelayHandle, relay_config

# Every client frame type but leave_session, which ends the connection on purpose.
TYPES = [
    "join_session",
    "create_session",
    "cursor_update",
    "presence_update",
    "chat_message",
    "add_comment",
    "edit_message",
    "delete_message",
    "add_reaction",
    "remove_reaction",
    "resolve_comment",
    "reopen_comment",
    "session_update",
    "invite",
    "revoke_invite",
    "remove_user",
    "change_role",
    "end_session",
    "get_history",
    "ping",
]
FIELDS = [
    "id", "session_id", "content", "mentions", "parent_id", "data", "file", "line", "column",
    "col", "selection", "status", "viewport", "start", "end", "following", "message_id",
    "comment_id", "emoji", "changes", "title", "token_count", "health_score", "role", "user_id",
    "invite_id", "ttl_seconds", "max_uses", "before_seq", "limit", "auth_token", "resume_from",
]  # fmt: skip
NAMES = ["alice", "bob", "src/app.py", "../x", "👍", "active", "paused", "editor", "host", ""]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63, 2**64, -(2**63) - 1])  # just past SQLite's 64-bit integers
    | st.floats()
    | st.sampled_from(NAMES)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
typed_frames = st.builds(
    lambda type_, fields: {**fields, "type": type_},
    st.sampled_from(TYPES) | st.text(max_size=12),
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=5),
)
# Valid frames an editor may send; each example breaks one field of one of them.
TEMPLATES: list[dict[str, Any]] = [
    {"type": "cursor_update", "data": {"file": "a.py", "line": 3, "column": 2}},
    {
        "type": "presence_update",
        "status": "idle",
        "viewport": {"file": "a.py", "start": 1, "end": 9},
    },
    {"type": "chat_message", "content": "hi @alice", "mentions": ["alice"]},
    {"type": "add_comment", "data": {"file": "a.py", "line": 4, "content": "nit", "end_line": 5}},
    {
        "type": "session_update",
        "changes": {"title": "T", "token_count": 5, "health_score": 50.0, "status": "paused"},
    },
    {"type": "get_history", "limit": 5, "before_seq": 10},
    {"type": "add_reaction", "message_id": "m_x", "emoji": "👍"},
    {"type": "edit_message", "message_id": "m_x", "content": "v2"},
]


def leaf_paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(value, dict):
        paths = [prefix] if prefix else []
        for key, inner in value.items():
            if prefix or key != "type":
                paths += leaf_paths(inner, (*prefix, key))
        return paths
    return [prefix]


@st.composite
def broken_frames(draw: st.DrawFn) -> str:
    frame = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES))))
    path = draw(st.sampled_from(leaf_paths(frame)))
    parent = frame
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent[path[-1]] = draw(st.none() | scalars | json_values)
    else:
        del parent[path[-1]]
    return json.dumps(frame)


frames = st.one_of(
    json_values.map(json.dumps),  # any JSON value (NaN and Infinity included)
    typed_frames.map(json.dumps),
    st.text(max_size=200),  # not JSON at all
    st.binary(max_size=200),  # a binary frame
    broken_frames(),
)


async def exercise(sent: list[str | bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        relay = RelayHandle(Relay(relay_config(Path(tmp), max_errors_per_minute=100_000)))
        await relay.relay.start()
        try:
            session_id = await relay.create_session(host="alice")
            alice = await relay.join(session_id, "alice", "host")
            bob = await relay.join(session_id, "bob", "editor")  # an editor cannot end it
            for raw in sent:
                await bob.ws.send(raw)
            await check_still_working(alice, bob)
        finally:
            for client in relay.clients:
                await client.close()
            await relay.relay.stop()


async def check_still_working(alice: Client, bob: Client) -> None:
    pong = await bob.request({"type": "ping", "id": "final-ping"}, reply="pong")
    assert pong["type"] == "pong"
    for frame in bob.inbox:
        if frame["type"] == "error":
            assert frame["error_code"] in ErrorCode.__members__
            assert frame["error_code"] not in ("INTERNAL_ERROR", "STORE_UNAVAILABLE"), frame
            assert frame["message"]
    sent = await bob.request({"type": "chat_message", "id": "final-chat", "content": "alive"})
    assert sent["type"] == "ack", sent
    seen = await alice.expect("chat_message", id=sent["id"])
    assert seen["message"]["content"] == "alive"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=st.lists(frames, min_size=1, max_size=12))
def test_random_frames_never_break_the_relay(sent: list[str | bytes]) -> None:
    asyncio.run(exercise(sent))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=st.lists(typed_frames.map(json.dumps), min_size=1, max_size=12))
def test_random_fields_on_real_frame_types_never_break_the_relay(sent: list[str]) -> None:
    asyncio.run(exercise(sent))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=st.lists(broken_frames(), min_size=1, max_size=12))
def test_valid_frames_with_one_broken_field_never_break_the_relay(sent: list[str]) -> None:
    asyncio.run(exercise(sent))
