"""Every row of the seed's permission matrix, for every role, against the real relay.

Allowed: the sender gets its reply and the broadcast reaches another participant.
Denied: PERMISSION_DENIED, nothing is broadcast (the observer's next durable frame is
a later, allowed one) and the connection still answers ping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from collab_lsp.protocol.server_frames import DURABLE_TYPES
from tests.helpers import Client, RelayHandle

HOST, EDITOR, VIEWER = "host", "editor", "viewer"
ROLES = (HOST, EDITOR, VIEWER)

# The seed's table (the last two rows are the architecture's decisions).
#                    host   editor viewer
MATRIX: dict[str, tuple[bool, bool, bool]] = {
    "view session": (True, True, True),
    "see presence": (True, True, True),
    "send chat": (True, True, False),
    "add comments": (True, True, False),
    "edit session": (True, True, False),
    "invite users": (True, False, False),
    "remove users": (True, False, False),
    "end session": (True, False, False),
    "change role": (True, False, False),
    "react": (True, True, False),
}


def allowed(action: str, role: str) -> bool:
    return MATRIX[action][ROLES.index(role)]


@dataclass
class Room:
    session_id: str
    clients: dict[str, Client]  # by role; "target" is a second viewer that actions aim at
    message_id: str  # a chat message by the host, to react to

    def observer_of(self, role: str) -> Client:
        """Someone other than the actor who sees every broadcast."""
        return self.clients[EDITOR if role in (HOST, VIEWER) else VIEWER]


async def next_durable(client: Client) -> dict[str, Any]:
    while True:
        frame = await client.recv()
        if frame["type"] in DURABLE_TYPES and "seq" in frame:
            return frame


async def drain_until(client: Client, event_id: str) -> None:
    while (await next_durable(client))["id"] != event_id:
        pass


async def assert_still_usable(client: Client) -> None:
    pong = await client.request({"type": "ping"}, reply="pong")
    assert pong["type"] == "pong"


async def assert_nothing_broadcast(room: Room, observer: Client) -> None:
    """The host says something; it must be the observer's very next durable frame."""
    marker = await room.clients[HOST].request({"type": "chat_message", "content": "marker"})
    assert marker["type"] == "ack"
    following = await next_durable(observer)
    assert (following["type"], following["id"]) == ("chat_message", marker["id"])


@pytest.fixture
async def room(relay: RelayHandle) -> Room:
    session_id = await relay.create_session(host="alice")
    clients = {
        HOST: await relay.join(session_id, "alice", HOST),
        EDITOR: await relay.join(session_id, "bob", EDITOR),
        VIEWER: await relay.join(session_id, "carol", VIEWER),
        "target": await relay.join(session_id, "dave", VIEWER),
    }
    setup = await clients[HOST].request({"type": "chat_message", "content": "setup"})
    for client in clients.values():
        await drain_until(client, setup["id"])
    return Room(session_id, clients, setup["id"])


@pytest.mark.parametrize("role", ROLES)
async def test_view_session(room: Room, role: str) -> None:
    assert allowed("view session", role)
    connected = room.clients[role].connected
    assert connected is not None
    assert connected["session"]["id"] == room.session_id
    assert connected["you"]["role"] == role
    history = await room.clients[role].request({"type": "get_history"}, reply="history")
    assert [m["content"] for m in history["messages"]] == ["setup"]


@pytest.mark.parametrize("role", ROLES)
async def test_see_presence(room: Room, role: str) -> None:
    assert allowed("see presence", role)
    mover_role = EDITOR if role == HOST else HOST
    mover = room.clients[mover_role]
    await mover.send({"type": "cursor_update", "data": {"file": "src/a.py", "line": 4, "col": 2}})
    mover_id = mover.connected["you"]["id"] if mover.connected else ""
    update = await room.clients[role].expect("presence_update", user_id=mover_id)
    assert update["presence"]["cursor"] == {"file": "src/a.py", "line": 4, "column": 2}


@pytest.mark.parametrize("role", ROLES)
async def test_everyone_may_share_cursor_and_viewport(room: Room, role: str) -> None:
    sharer = room.clients[role]
    watcher = room.clients[EDITOR if role == HOST else HOST]
    await sharer.send({"type": "cursor_update", "data": {"file": "a.py", "line": 9, "column": 1}})
    await sharer.send(
        {"type": "presence_update", "viewport": {"file": "a.py", "start": 1, "end": 40}}
    )
    user_id = sharer.connected["you"]["id"] if sharer.connected else ""
    while True:
        presence = (await watcher.expect("presence_update", user_id=user_id))["presence"]
        if "viewport" in presence:
            break
    assert presence["cursor"] == {"file": "a.py", "line": 9, "column": 1}
    assert presence["viewport"] == {"file": "a.py", "start_line": 1, "end_line": 40}
    await assert_still_usable(sharer)


# action -> (frame, the sender's reply, the broadcast others receive)
FRAMES: dict[str, tuple[Callable[[Room], dict[str, Any]], str, str | None]] = {
    "send chat": (lambda r: {"type": "chat_message", "content": "hello"}, "ack", "chat_message"),
    "add comments": (
        lambda r: {"type": "add_comment", "data": {"file": "a.py", "line": 3, "content": "nit"}},
        "ack",
        "code_comment",
    ),
    "edit session": (
        lambda r: {"type": "session_update", "changes": {"token_count": 150000}},
        "ack",
        "session_update",
    ),
    "invite users": (lambda r: {"type": "invite", "role": "viewer"}, "invite_created", None),
    "remove users": (lambda r: {"type": "remove_user", "user_id": "dave"}, "ack", "user_removed"),
    "end session": (lambda r: {"type": "end_session"}, "ack", "session_ended"),
    "change role": (
        lambda r: {"type": "change_role", "user_id": "dave", "role": "editor"},
        "ack",
        "role_changed",
    ),
    "react": (
        lambda r: {"type": "add_reaction", "message_id": r.message_id, "emoji": "👍"},
        "ack",
        "reaction_updated",
    ),
}
CASES = [(action, role) for action in FRAMES for role in ROLES]


@pytest.mark.parametrize(("action", "role"), CASES)
async def test_matrix(room: Room, action: str, role: str) -> None:
    build, reply_type, broadcast = FRAMES[action]
    actor, observer = room.clients[role], room.observer_of(role)
    reply = await actor.request(build(room), reply=reply_type)
    if allowed(action, role):
        assert reply["type"] == reply_type, reply
        if broadcast is not None:
            event = await next_durable(observer)
            assert (event["type"], event["seq"]) == (broadcast, reply["seq"])
        if action == "end session":
            await observer.ws.wait_closed()
            assert observer.ws.close_code == 4010
            return
        await assert_still_usable(actor)
    else:
        assert reply["type"] == "error", reply
        assert reply["error_code"] == "PERMISSION_DENIED"
        assert role in reply["message"]
        await assert_still_usable(actor)
        await assert_nothing_broadcast(room, observer)


def test_matrix_cases_cover_every_seed_row() -> None:
    rows = set(FRAMES) | {"view session", "see presence"}
    assert rows == set(MATRIX)


async def test_invite_created_by_host_admits_a_new_viewer(relay: RelayHandle, room: Room) -> None:
    reply = await room.clients[HOST].request({"type": "invite", "role": "viewer"}, "invite_created")
    guest = await relay.join(room.session_id, "", token=reply["token"], query="&name=Erin")
    assert guest.connected is not None
    assert guest.connected["you"]["role"] == "viewer"
    joined = await next_durable(room.clients[EDITOR])
    assert (joined["type"], joined["user"]["username"]) == ("user_joined", "Erin")


async def test_a_role_change_applies_to_the_next_frame(room: Room) -> None:
    await room.clients[HOST].request({"type": "change_role", "user_id": "dave", "role": "editor"})
    dave = room.clients["target"]
    changed = await next_durable(dave)
    assert (changed["type"], changed["role"]) == ("role_changed", "editor")
    promoted = await dave.request({"type": "chat_message", "content": "I can talk now"})
    assert promoted["type"] == "ack"
    await room.clients[HOST].request({"type": "change_role", "user_id": "bob", "role": "viewer"})
    demoted = await room.clients[EDITOR].request({"type": "chat_message", "content": "hm"})
    assert demoted["error_code"] == "PERMISSION_DENIED"
