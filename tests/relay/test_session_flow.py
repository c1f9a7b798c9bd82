"""A session's life through the real relay: join, presence, chat, comments, people, end."""

from __future__ import annotations

from tests.helpers import Client, RelayHandle


async def _pair(relay: RelayHandle) -> tuple[str, Client, Client]:
    session_id = await relay.create_session(title="Pairing")
    alice = await relay.join(session_id, "alice", "host")
    bob = await relay.join(session_id, "bob", "editor")
    await alice.expect("user_joined")
    return session_id, alice, bob


async def test_connected_carries_session_you_participants_presence_history(
    relay: RelayHandle,
) -> None:
    session_id, alice, bob = await _pair(relay)
    await alice.request({"type": "chat_message", "content": "first"})
    await alice.send({"type": "cursor_update", "data": {"file": "src/app.py", "line": 3, "col": 5}})
    await bob.expect("presence_update", user_id="alice")

    carol = await relay.join(session_id, "carol", "viewer")
    connected = carol.connected
    assert connected is not None
    assert connected["session"]["title"] == "Pairing"
    assert connected["session"]["status"] == "active"
    assert {"token_count", "health_score"} <= connected["session"].keys()
    assert connected["you"]["username"] == "carol"
    assert connected["you"]["role"] == "viewer"
    online = {p["username"]: p["online"] for p in connected["participants"]}
    assert online == {"alice": True, "bob": True, "carol": True}
    assert connected["presence"]["alice"]["cursor"] == {
        "file": "src/app.py",
        "line": 3,
        "column": 5,
    }
    assert [m["content"] for m in connected["messages"]] == ["first"]
    assert connected["seq"] >= connected["messages"][-1]["seq"]
    assert connected["epoch"]


async def test_user_joined_and_explicit_leave(relay: RelayHandle) -> None:
    session_id, alice, _bob = await _pair(relay)
    carol = await relay.join(session_id, "carol", "viewer")
    joined = await alice.expect("user_joined", timeout=5)
    assert joined["user"]["username"] == "carol"
    assert joined["user"]["role"] == "viewer"
    assert isinstance(joined["user"]["color_index"], int)
    await carol.send({"type": "leave_session"})
    left = await alice.expect("user_left")
    assert left["user_id"] == "carol"
    assert left["reason"] == "left"


async def test_presence_is_coalesced_never_echoed_and_carries_viewport(relay: RelayHandle) -> None:
    _, alice, bob = await _pair(relay)
    await bob.send(
        {
            "type": "presence_update",
            "status": "idle",
            "viewport": {"file": "src/app.py", "start": 30, "end": 60},
        }
    )
    update = await alice.expect("presence_update", user_id="bob")
    presence = update["presence"]
    assert presence["viewport"] == {"file": "src/app.py", "start_line": 30, "end_line": 60}
    # The sender never gets its own presence back; its next frame is the pong.
    await bob.send({"type": "ping", "id": "p1"})
    pong = await bob.recv()
    assert pong["type"] == "pong" and pong["ref"] == "p1"


async def test_chat_reply_edit_delete_and_reactions(relay: RelayHandle) -> None:
    _, alice, bob = await _pair(relay)
    ack = await alice.request({"type": "chat_message", "content": "Hey @bob, check line 42"})
    message_id = ack["id"]
    chat = await bob.expect("chat_message")
    assert chat["message"]["mentions"] == ["bob"]
    mention = await bob.expect("mention")
    assert mention["message_id"] == message_id and mention["by"] == "alice"

    reply = await bob.request({"type": "chat_message", "content": "on it", "parent_id": message_id})
    assert reply["type"] == "ack"
    threaded = await alice.expect("chat_message", id=reply["id"])
    assert threaded["message"]["parent_id"] == message_id

    edited = await alice.request(
        {"type": "edit_message", "message_id": message_id, "content": "v2"}
    )
    assert edited["type"] == "ack", edited
    update = await bob.expect("message_updated")
    assert update["message"]["content"] == "v2" and update["message"]["edited_at"]

    refused = await bob.request({"type": "edit_message", "message_id": message_id, "content": "x"})
    assert refused["error_code"] == "NOT_AUTHOR"

    await bob.request({"type": "add_reaction", "message_id": message_id, "emoji": "👍"})
    reaction = await alice.expect("reaction_updated")
    assert reaction["reactions"] == {"👍": ["bob"]} and reaction["added"] is True
    await bob.request({"type": "remove_reaction", "message_id": message_id, "emoji": "👍"})
    removed = await alice.expect("reaction_updated", added=False)
    assert removed["reactions"] == {}

    await alice.request({"type": "delete_message", "message_id": message_id})
    deleted = await bob.expect("message_deleted")
    assert deleted["message_id"] == message_id
    history = await bob.request({"type": "get_history"}, reply="history")
    tombstone = next(m for m in history["messages"] if m["id"] == message_id)
    assert tombstone["deleted"] is True and tombstone["content"] == ""


async def test_comment_thread_reply_resolve_reopen(relay: RelayHandle) -> None:
    _, alice, bob = await _pair(relay)
    ack = await alice.request(
        {
            "type": "add_comment",
            "data": {
                "file": "src/main.py",
                "line": 42,
                "end_line": 44,
                "content": "This could be optimized",
                "code_snippet": "def foo():",
                "commit": "abc123",
            },
        }
    )
    comment = (await bob.expect("code_comment"))["comment"]
    assert comment["id"] == ack["id"]
    assert (comment["file"], comment["line"], comment["end_line"]) == ("src/main.py", 42, 44)
    assert comment["code_snippet"] == "def foo():" and comment["commit"] == "abc123"
    assert comment["resolved"] is False

    reply_ack = await bob.request(
        {"type": "add_comment", "data": {"parent_id": ack["id"], "content": "agreed"}}
    )
    reply = (await alice.expect("code_comment", id=reply_ack["id"]))["comment"]
    assert reply["parent_id"] == ack["id"]
    assert (reply["file"], reply["line"]) == ("src/main.py", 42)  # inherits the anchor

    await bob.request({"type": "resolve_comment", "comment_id": ack["id"]})
    resolved = await alice.expect("comment_resolved")
    assert resolved["resolved"] is True and resolved["by"] == "bob"
    again = await bob.request({"type": "resolve_comment", "comment_id": ack["id"]})
    assert again["error_code"] == "INVALID_FRAME"
    await alice.request({"type": "reopen_comment", "comment_id": ack["id"]})
    assert (await bob.expect("comment_resolved", resolved=False))["by"] == "alice"


async def test_session_update_by_editor(relay: RelayHandle) -> None:
    _, alice, bob = await _pair(relay)
    changes = {"token_count": 150000, "health_score": 75.0, "status": "paused", "title": "Bugs"}
    await bob.request({"type": "session_update", "changes": changes})
    update = await alice.expect("session_update")
    assert update["changes"] == changes and update["updated_by"] == "bob"
    refused = await bob.request({"type": "session_update", "changes": {"status": "ended"}})
    assert refused["error_code"] == "INVALID_FRAME" and refused["field"] == "changes.status"


async def test_change_role_takes_effect_at_once(relay: RelayHandle) -> None:
    session_id, alice, bob = await _pair(relay)
    await alice.request({"type": "change_role", "user_id": "bob", "role": "viewer"})
    changed = await bob.expect("role_changed")
    assert changed["user_id"] == "bob" and changed["role"] == "viewer"
    denied = await bob.request({"type": "chat_message", "content": "still here?"})
    assert denied["error_code"] == "PERMISSION_DENIED"
    own = await alice.request({"type": "change_role", "user_id": "alice", "role": "editor"})
    assert own["error_code"] == "INVALID_FRAME" and own["field"] == "user_id"
    # The new role holds on the next join too, whatever the old token said.
    again = await relay.join(session_id, "bob", "editor")
    assert again.connected is not None and again.connected["you"]["role"] == "viewer"


async def test_remove_user_closes_their_connection_and_token(relay: RelayHandle) -> None:
    session_id, alice, bob = await _pair(relay)
    await alice.request({"type": "remove_user", "user_id": "bob"})
    removed = await bob.expect("user_removed")
    assert removed["user_id"] == "bob" and removed["removed_by"] == "alice"
    await bob.ws.wait_closed()
    assert bob.ws.close_code == 4003
    retry = await relay.connect_raw(
        f"/ws/session/{session_id}?token={relay.token(session_id, 'bob', 'editor')}"
    )
    error = await retry.recv()
    assert error["type"] == "error" and error["error_code"] == "REMOVED"
    await retry.ws.wait_closed()
    assert retry.ws.close_code == 4003


async def test_end_session_disconnects_everyone_and_refuses_later_joins(
    relay: RelayHandle,
) -> None:
    session_id, alice, bob = await _pair(relay)
    await alice.request({"type": "end_session"})
    for client in (alice, bob):
        ended = await client.expect("session_ended")
        assert ended["ended_by"] == "alice"
        await client.ws.wait_closed()
        assert client.ws.close_code == 4010
    late = await relay.connect_raw(
        f"/ws/session/{session_id}?token={relay.token(session_id, 'carol', 'editor')}"
    )
    error = await late.recv()
    assert error["error_code"] == "SESSION_ENDED"


async def test_history_pages_backwards(relay: RelayHandle) -> None:
    _, alice, _ = await _pair(relay)
    for number in range(7):
        await alice.request({"type": "chat_message", "content": f"m{number}"})
    page = await alice.request({"type": "get_history", "limit": 3}, reply="history")
    assert [m["content"] for m in page["messages"]] == ["m4", "m5", "m6"]
    assert page["has_more"] is True
    before = page["messages"][0]["seq"]
    older = await alice.request(
        {"type": "get_history", "limit": 10, "before_seq": before}, reply="history"
    )
    assert [m["content"] for m in older["messages"]] == ["m0", "m1", "m2", "m3"]
    assert older["has_more"] is False


async def test_durable_events_have_one_order_for_everyone(relay: RelayHandle) -> None:
    session_id, alice, bob = await _pair(relay)
    carol = await relay.join(session_id, "carol", "editor")
    await alice.expect("user_joined")
    await bob.expect("user_joined")
    for number in range(5):
        await alice.send({"type": "chat_message", "content": f"a{number}", "id": f"a{number}"})
        await bob.send({"type": "chat_message", "content": f"b{number}", "id": f"b{number}"})
    await alice.expect("ack", ref="a4")
    await bob.expect("ack", ref="b4")
    await carol.request({"type": "chat_message", "content": "done"})
    orders = [await _chat_seqs_until(client, "done") for client in (alice, bob, carol)]
    assert orders[0] == orders[1] == orders[2]
    assert orders[0] == sorted(orders[0]) and len(set(orders[0])) == 11


async def _chat_seqs_until(client: Client, last: str) -> list[int]:
    seqs = []
    while True:
        frame = await client.expect("chat_message")
        seqs.append(frame["seq"])
        if frame["message"]["content"] == last:
            return seqs


async def test_get_comments_pages_every_thread_oldest_first(relay: RelayHandle) -> None:
    _, alice, _ = await _pair(relay)
    ids = []
    for number in range(5):
        file = "a.py" if number % 2 == 0 else "b.py"
        comment = {"file": file, "line": number + 1, "content": f"c{number}"}
        ids.append((await alice.request({"type": "add_comment", "data": comment}))["id"])
    await alice.request({"type": "chat_message", "content": "not a comment"})
    await alice.request({"type": "resolve_comment", "comment_id": ids[0]})
    first = await alice.request({"type": "get_comments", "limit": 3}, reply="comments")
    assert [c["id"] for c in first["comments"]] == ids[:3] and first["has_more"] is True
    rest = await alice.request(
        {"type": "get_comments", "after_seq": first["comments"][-1]["seq"]}, reply="comments"
    )
    assert [c["id"] for c in rest["comments"]] == ids[3:] and rest["has_more"] is False
    assert first["comments"][0]["resolved"] is True
    only_a = await alice.request({"type": "get_comments", "file": "a.py"}, reply="comments")
    assert [c["content"] for c in only_a["comments"]] == ["c0", "c2", "c4"]
