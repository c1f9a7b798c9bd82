"""The Store contract, run against every store: SQLite on a file, Postgres on a fresh schema.

Each durable operation appends one event with the next seq in the same transaction as its
effect; refusals raise ProtocolError and commit nothing; client ids make writes idempotent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.models import MessageType, ParticipantKind, SessionStatus
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.store import CommittedEvent, Store, StoreUnavailable
from tests.relay.store.conftest import MakeStore

HUMAN = ParticipantKind.HUMAN


async def new_session(store: Store, *guests: str, title: str = "Pairing") -> str:
    """A session hosted by alice, with alice and every guest (as editors) joined."""
    session = await store.create_session(
        title=title, host_id="alice", host_name="Alice", host_kind=HUMAN
    )
    await store.join(
        session.id, user_id="alice", username="Alice", kind=HUMAN, role=Role.HOST, announce=True
    )
    for guest in guests:
        await store.join(
            session.id,
            user_id=guest,
            username=guest.title(),
            kind=HUMAN,
            role=Role.EDITOR,
            announce=True,
        )
    return session.id


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"message_type": MessageType.CHAT, "content": content, "mentions": [], **extra}


def comment(content: str, file: str = "src/app.py", line: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "message_type": MessageType.COMMENT,
        "content": content,
        "mentions": [],
        "file": file,
        "line": line,
        "code_snippet": "def main():",
        **extra,
    }


async def refused(code: ErrorCode, work: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        await work
    assert info.value.code is code, info.value
    return info.value


async def unchanged(store: Store, session_id: str, seq: int) -> None:
    """Nothing was committed: the log still ends at ``seq``."""
    assert await store.last_seq(session_id) == seq
    assert await store.events_after(session_id, seq, 10) == []


def record_events(store: Store) -> list[CommittedEvent]:
    seen: list[CommittedEvent] = []
    store.add_listener(seen.append)
    return seen


# -- sessions, joins and the log ------------------------------------------------------------


async def test_create_session_and_read_it_back(store: Store) -> None:
    created = await store.create_session(
        title="Review", host_id="alice", host_name="Alice", host_kind=HUMAN
    )
    assert created.title == "Review"
    assert created.status is SessionStatus.ACTIVE
    assert created.host_id == "alice"
    assert created.token_count == 0
    assert created.health_score == 100.0
    assert created.created_at.endswith("Z")
    assert await store.get_session(created.id) == created
    assert await store.get_session("s_missing") is None
    assert [s.id for s in await store.list_sessions()] == [created.id]
    host = await store.get_participant(created.id, "alice")
    assert host is not None
    assert (host.role, host.username, host.is_active, host.removed) == (
        Role.HOST,
        "Alice",
        False,
        False,
    )
    assert await store.last_seq(created.id) == 0
    assert await store.first_event_seq(created.id) is None
    assert await store.last_seq("s_missing") == 0


async def test_joins_and_leaves_are_events_in_seq_order(store: Store) -> None:
    seen = record_events(store)
    session_id = await new_session(store, "bob")
    left = await store.leave(session_id, "bob", "left")
    assert [e.type for e in seen] == ["user_joined", "user_joined", "user_left"]
    assert [e.seq for e in seen] == [1, 2, 3]
    assert left.frame == {
        "type": "user_left",
        "session_id": session_id,
        "id": left.event_id,
        "seq": 3,
        "timestamp": left.frame["timestamp"],
        "user_id": "bob",
        "username": "Bob",
        "reason": "left",
    }
    joined = seen[1].frame
    assert joined["user"] == {
        "id": "bob",
        "username": "Bob",
        "role": "editor",
        "kind": "human",
        "color_index": joined["user"]["color_index"],
    }
    # The log holds exactly the wire text that was handed to the listeners.
    assert await store.events_after(session_id, 0, 10) == [(e.seq, e.wire) for e in seen]
    assert await store.events_after(session_id, 2, 10) == [(3, seen[2].wire)]
    assert await store.events_after(session_id, 0, 1) == [(1, seen[0].wire)]
    assert json.loads(seen[2].wire) == left.frame
    assert await store.first_event_seq(session_id) == 1
    assert await store.last_seq(session_id) == 3

    bob = await store.get_participant(session_id, "bob")
    assert bob is not None and not bob.is_active
    # A quiet rejoin (a second connection, a reconnect in grace) records, announces nothing.
    record, event = await store.join(
        session_id, user_id="bob", username="Bob", kind=HUMAN, role=Role.EDITOR, announce=False
    )
    assert event is None and record.is_active
    assert await store.last_seq(session_id) == 3
    people = await store.list_participants(session_id)
    assert [(p.user_id, p.role) for p in people] == [("alice", Role.HOST), ("bob", Role.EDITOR)]


async def test_leave_of_a_stranger_is_refused(store: Store) -> None:
    session_id = await new_session(store)
    error = await refused(ErrorCode.UNKNOWN_USER, store.leave(session_id, "mallory", "left"))
    assert error.message == "'mallory' is not a participant of this session"
    await unchanged(store, session_id, 1)


# -- messages and comments -------------------------------------------------------------------


async def test_chat_message_frame_and_stored_message(store: Store) -> None:
    session_id = await new_session(store, "bob")
    event = await store.add_message(session_id, "bob", None, chat("hello", mentions=["alice"]))
    assert event.type == "chat_message" and event.seq == 3 and not event.duplicate
    message = event.frame["message"]
    assert event.frame["id"] == message["id"] == event.event_id
    assert message == {
        "id": event.event_id,
        "seq": 3,
        "message_type": "chat",
        "user_id": "bob",
        "username": "Bob",
        "content": "hello",
        "mentions": ["alice"],
        "reactions": {},
        "resolved": False,
        "timestamp": event.frame["timestamp"],
        "deleted": False,
    }
    stored = await store.get_message(session_id, event.event_id)
    assert stored is not None
    assert stored.model_dump(mode="json", exclude_none=True) == message
    assert await store.get_message(session_id, "m_missing") is None
    assert await store.get_message("s_other", event.event_id) is None


async def test_message_ids_sort_in_the_order_messages_were_stored(store: Store) -> None:
    # Ordered keys keep the primary-key index's inserts on its last page (time_ordered_id).
    session_id = await new_session(store, "bob")
    ids = []
    for i in range(5):
        event = await store.add_message(session_id, "bob", None, chat(f"m{i}"))
        ids.append(event.event_id)  # each awaited commit ends microseconds after the last
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(i.startswith("m_") for i in ids)


async def test_comments_threads_and_parent_refusals(store: Store) -> None:
    session_id = await new_session(store, "bob")
    root = await store.add_message(
        session_id, "alice", None, comment("why?", end_line=5, commit="c0ffee", mentions=["bob"])
    )
    assert root.type == "code_comment"
    assert root.frame["comment"]["file"] == "src/app.py"
    assert root.frame["comment"]["line"] == 3
    assert root.frame["comment"]["end_line"] == 5
    reply = await store.add_message(
        session_id, "bob", None, comment("because", file="ignored.py", parent_id=root.event_id)
    )
    nested = await store.add_message(
        session_id, "alice", None, comment("ok", parent_id=reply.event_id)
    )
    # Replies inherit the root's code reference; a reply to a reply joins the root's thread.
    assert reply.frame["comment"]["file"] == "src/app.py"
    assert reply.frame["comment"]["parent_id"] == root.event_id
    assert nested.frame["comment"]["parent_id"] == root.event_id
    # Each frame carries the comment exactly as it reads back from the store.
    for event in (root, reply, nested):
        stored = await store.get_message(session_id, event.event_id)
        assert stored is not None
        assert stored.model_dump(mode="json", exclude_none=True) == event.frame["comment"]
    seq = await store.last_seq(session_id)

    error = await refused(
        ErrorCode.INVALID_FRAME,
        store.add_message(session_id, "bob", None, chat("x", parent_id=root.event_id)),
    )
    assert (error.message, error.field) == ("parent_id must name a chat message", "parent_id")
    error = await refused(
        ErrorCode.NOT_FOUND,
        store.add_message(session_id, "bob", None, chat("x", parent_id="m_missing")),
    )
    assert error.message == "no message 'm_missing' in this session"
    await store.delete_message(session_id, "alice", None, root.event_id)
    error = await refused(
        ErrorCode.NOT_FOUND,
        store.add_message(session_id, "bob", None, comment("late", parent_id=root.event_id)),
    )
    assert error.message == "the parent message was deleted"
    await unchanged(store, session_id, seq + 1)


async def test_edit_and_delete(store: Store) -> None:
    session_id = await new_session(store, "bob")
    sent = await store.add_message(session_id, "bob", None, chat("helo"))
    seq = sent.seq
    error = await refused(
        ErrorCode.NOT_AUTHOR, store.edit_message(session_id, "alice", None, sent.event_id, "x")
    )
    assert error.message == "you can only edit your own messages"
    await refused(
        ErrorCode.NOT_FOUND, store.edit_message(session_id, "bob", None, "m_missing", "x")
    )
    await unchanged(store, session_id, seq)

    edited = await store.edit_message(session_id, "bob", None, sent.event_id, "hello")
    assert edited.type == "message_updated" and edited.seq == seq + 1
    assert edited.frame["message"]["content"] == "hello"
    assert edited.frame["message"]["edited_at"] == edited.frame["timestamp"]

    error = await refused(
        ErrorCode.NOT_AUTHOR, store.delete_message(session_id, "alice", None, sent.event_id)
    )
    assert error.message == "you can only delete your own messages (a host may delete any)"
    deleted = await store.delete_message(session_id, "alice", None, sent.event_id, moderator=True)
    assert deleted.frame == {
        "type": "message_deleted",
        "session_id": session_id,
        "id": deleted.event_id,
        "seq": seq + 2,
        "timestamp": deleted.frame["timestamp"],
        "message_id": sent.event_id,
        "deleted_by": "alice",
    }
    stored = await store.get_message(session_id, sent.event_id)
    assert stored is not None and stored.deleted and stored.content == ""
    error = await refused(
        ErrorCode.NOT_FOUND, store.edit_message(session_id, "bob", None, sent.event_id, "x")
    )
    assert error.message == "that message was deleted"
    await refused(ErrorCode.NOT_FOUND, store.delete_message(session_id, "bob", None, sent.event_id))
    await unchanged(store, session_id, seq + 2)


async def test_reactions_keep_their_order_and_refuse_no_ops(store: Store) -> None:
    session_id = await new_session(store, "bob")
    sent = await store.add_message(session_id, "alice", None, chat("ship it?"))
    first = await store.react(session_id, "bob", None, sent.event_id, "🚀", True)
    assert first.frame["reactions"] == {"🚀": ["bob"]}
    assert (first.frame["emoji"], first.frame["added"], first.frame["user_id"]) == (
        "🚀",
        True,
        "bob",
    )
    await store.react(session_id, "alice", None, sent.event_id, "👍", True)
    await store.react(session_id, "alice", None, sent.event_id, "🚀", True)
    stored = await store.get_message(session_id, sent.event_id)
    assert stored is not None
    assert list(stored.reactions.items()) == [("🚀", ["bob", "alice"]), ("👍", ["alice"])]
    seq = await store.last_seq(session_id)

    error = await refused(
        ErrorCode.INVALID_FRAME, store.react(session_id, "bob", None, sent.event_id, "🚀", True)
    )
    assert (error.message, error.field) == ("you already reacted with 🚀", "emoji")
    error = await refused(
        ErrorCode.INVALID_FRAME, store.react(session_id, "bob", None, sent.event_id, "👍", False)
    )
    assert error.message == "you have not reacted with 👍"
    await refused(
        ErrorCode.NOT_FOUND, store.react(session_id, "bob", None, "m_missing", "👍", True)
    )
    await unchanged(store, session_id, seq)

    removed = await store.react(session_id, "alice", None, sent.event_id, "👍", False)
    assert removed.frame["reactions"] == {"🚀": ["bob", "alice"]}
    assert removed.frame["added"] is False


async def test_resolve_and_reopen_threads(store: Store) -> None:
    session_id = await new_session(store, "bob")
    root = await store.add_message(session_id, "bob", None, comment("typo"))
    reply = await store.add_message(
        session_id, "alice", None, comment("fixed", parent_id=root.event_id)
    )
    talk = await store.add_message(session_id, "alice", None, chat("hi"))
    resolved = await store.set_resolved(session_id, "alice", None, root.event_id, True)
    assert resolved.frame["comment_id"] == root.event_id
    assert (resolved.frame["resolved"], resolved.frame["by"]) == (True, "alice")
    stored = await store.get_message(session_id, root.event_id)
    assert stored is not None and stored.resolved
    seq = resolved.seq

    error = await refused(
        ErrorCode.INVALID_FRAME, store.set_resolved(session_id, "bob", None, root.event_id, True)
    )
    assert (error.message, error.field) == ("this thread is already resolved", "comment_id")
    for not_a_root in (reply.event_id, talk.event_id):
        error = await refused(
            ErrorCode.INVALID_FRAME, store.set_resolved(session_id, "bob", None, not_a_root, True)
        )
        assert error.message == "only the first comment of a thread can be resolved or reopened"
    error = await refused(
        ErrorCode.NOT_FOUND, store.set_resolved(session_id, "bob", None, "m_missing", True)
    )
    assert error.field == "comment_id"
    await unchanged(store, session_id, seq)

    reopened = await store.set_resolved(session_id, "bob", None, root.event_id, False)
    assert reopened.frame["resolved"] is False
    await refused(
        ErrorCode.INVALID_FRAME, store.set_resolved(session_id, "bob", None, root.event_id, False)
    )


# -- the session and its people ---------------------------------------------------------------


async def test_update_session(store: Store) -> None:
    session_id = await new_session(store, "bob")
    changes = {"title": "Deep review", "token_count": 12_345_678_901, "health_score": 87.25}
    event = await store.update_session(session_id, "bob", None, {**changes, "host_id": "bob"})
    assert event.type == "session_update"
    assert event.frame["changes"] == changes  # only the session's own columns
    assert event.frame["updated_by"] == "bob"
    paused = await store.update_session(session_id, "bob", None, {"status": SessionStatus.PAUSED})
    assert paused.frame["changes"] == {"status": "paused"}
    session = await store.get_session(session_id)
    assert session is not None
    assert (session.title, session.token_count, session.health_score, session.status) == (
        "Deep review",
        12_345_678_901,
        87.25,
        SessionStatus.PAUSED,
    )
    assert session.host_id == "alice"


async def test_change_role_and_remove_user(store: Store) -> None:
    session_id = await new_session(store, "bob")
    changed = await store.change_role(session_id, "alice", None, "bob", Role.VIEWER)
    assert changed.frame["user_id"] == "bob"
    assert (changed.frame["role"], changed.frame["changed_by"]) == ("viewer", "alice")
    bob = await store.get_participant(session_id, "bob")
    assert bob is not None and bob.role is Role.VIEWER
    seq = changed.seq

    error = await refused(
        ErrorCode.INVALID_FRAME, store.change_role(session_id, "alice", None, "bob", Role.VIEWER)
    )
    assert (error.message, error.field) == ("Bob is already viewer", "role")
    error = await refused(
        ErrorCode.UNKNOWN_USER, store.change_role(session_id, "alice", None, "eve", Role.EDITOR)
    )
    assert error.field == "user_id"
    await refused(ErrorCode.UNKNOWN_USER, store.remove_user(session_id, "alice", None, "eve"))
    await unchanged(store, session_id, seq)

    removed = await store.remove_user(session_id, "alice", None, "bob")
    assert removed.frame["user_id"] == "bob"
    assert (removed.frame["username"], removed.frame["removed_by"]) == ("Bob", "alice")
    bob = await store.get_participant(session_id, "bob")
    assert bob is not None and bob.removed and not bob.is_active
    # A removed participant is no longer one.
    await refused(
        ErrorCode.UNKNOWN_USER, store.change_role(session_id, "alice", None, "bob", Role.EDITOR)
    )
    await refused(ErrorCode.UNKNOWN_USER, store.remove_user(session_id, "alice", None, "bob"))
    await refused(ErrorCode.UNKNOWN_USER, store.leave(session_id, "bob", "left"))
    await unchanged(store, session_id, seq + 1)


async def test_end_session_by_an_operator_and_everything_after_is_refused(store: Store) -> None:
    session_id = await new_session(store, "bob")
    sent = await store.add_message(session_id, "bob", "c-1", chat("bye"))
    ended = await store.end_session(session_id, None, None)
    assert ended.frame["ended_by"] == "admin"
    assert ended.type == "session_ended" and ended.seq == sent.seq + 1
    session = await store.get_session(session_id)
    assert session is not None and session.status is SessionStatus.ENDED
    assert not any(p.is_active for p in await store.list_participants(session_id))

    for work in (
        store.add_message(session_id, "bob", None, chat("late")),
        store.edit_message(session_id, "bob", None, sent.event_id, "x"),
        store.leave(session_id, "bob", "left"),
        store.update_session(session_id, "alice", None, {"title": "x"}),
        store.end_session(session_id, "alice", None),
    ):
        error = await refused(ErrorCode.SESSION_ENDED, work)
        assert error.message == "this session has ended"
    await unchanged(store, session_id, ended.seq)
    # A resend of something acknowledged before the end is still answered, not refused.
    again = await store.add_message(session_id, "bob", "c-1", chat("bye"))
    assert again.duplicate and again.seq == sent.seq


async def test_end_session_by_the_host(store: Store) -> None:
    session_id = await new_session(store)
    ended = await store.end_session(session_id, "alice", "end-1")
    assert ended.frame["ended_by"] == "alice"
    again = await store.end_session(session_id, "alice", "end-1")
    assert again.duplicate and again.seq == ended.seq


# -- idempotency, listeners, snapshots -----------------------------------------------------------


async def test_client_ids_make_writes_idempotent(store: Store) -> None:
    seen = record_events(store)
    session_id = await new_session(store, "bob")
    first = await store.add_message(session_id, "bob", "c-7", chat("once"))
    second = await store.add_message(session_id, "bob", "c-7", chat("once"))
    assert not first.duplicate and second.duplicate
    assert (second.seq, second.event_id, second.type) == (first.seq, first.event_id, first.type)
    assert second.frame == first.frame and second.wire == first.wire
    assert await store.last_seq(session_id) == first.seq
    assert [e.seq for e in seen].count(first.seq) == 1  # listeners never see a duplicate

    found = await store.find_client_event(session_id, "bob", "c-7")
    assert found is not None and found.duplicate and found.seq == first.seq
    assert await store.find_client_event(session_id, "alice", "c-7") is None
    assert await store.find_client_event(session_id, "bob", "c-8") is None
    # The key is (session, user, client id): another user's c-7 is another event.
    other = await store.add_message(session_id, "alice", "c-7", chat("mine"))
    assert not other.duplicate and other.seq == first.seq + 1
    # Any durable op is idempotent, not only messages.
    reacted = await store.react(session_id, "bob", "r-1", first.event_id, "👍", True)
    again = await store.react(session_id, "bob", "r-1", first.event_id, "👍", True)
    assert again.duplicate and again.seq == reacted.seq


async def test_a_resend_queued_with_its_original_is_one_event(store: Store) -> None:
    seen = record_events(store)
    session_id = await new_session(store, "bob")
    # Both reach the writer before either commits (one group commit under load).
    first, again, other = await asyncio.gather(
        store.add_message(session_id, "bob", "c-1", chat("once")),
        store.add_message(session_id, "bob", "c-1", chat("once")),
        store.add_message(session_id, "bob", "c-2", chat("next")),
    )
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert again.seq == first.seq and again.event_id == first.event_id
    assert other.seq == first.seq + 1  # the refused resend took no seq
    assert [e.seq for e in seen if e.type == "chat_message"] == [first.seq, other.seq]


async def test_a_message_carries_its_senders_latest_name(store: Store) -> None:
    session_id = await new_session(store, "bob")
    before = await store.add_message(session_id, "bob", None, chat("hi"))
    await store.join(
        session_id, user_id="bob", username="Robert", kind=HUMAN, role=Role.EDITOR, announce=False
    )
    after = await store.add_message(session_id, "bob", None, chat("hi again"))
    assert (before.frame["message"]["username"], after.frame["message"]["username"]) == (
        "Bob",
        "Robert",
    )


async def test_listeners_see_concurrent_writes_in_seq_order(store: Store) -> None:
    seen = record_events(store)
    session_id = await new_session(store, "bob", "carol")
    writers = ["alice", "bob", "carol"]
    results = await asyncio.gather(
        *(store.add_message(session_id, writers[i % 3], f"c-{i}", chat(f"m{i}")) for i in range(40))
    )
    seqs = [e.seq for e in seen]
    assert seqs == list(range(1, 44))
    assert sorted(e.seq for e in results) == list(range(4, 44))
    assert [seq for seq, _ in await store.events_after(session_id, 0, 100)] == seqs


async def test_a_failing_listener_does_not_stop_the_others(store: Store) -> None:
    def broken(event: CommittedEvent) -> None:
        raise RuntimeError("boom")

    store.add_listener(broken)
    seen = record_events(store)
    session_id = await new_session(store)
    event = await store.add_message(session_id, "alice", None, chat("still here"))
    assert seen[-1] == event


async def test_snapshot_is_one_consistent_read(store: Store) -> None:
    session_id = await new_session(store, "bob")
    for i in range(5):
        await store.add_message(session_id, "bob", None, chat(f"m{i}"))
    snapshot = await store.snapshot(session_id, 3)
    assert snapshot is not None
    assert snapshot.seq == 7 and snapshot.session.id == session_id
    assert [m.content for m in snapshot.messages] == ["m2", "m3", "m4"]
    assert [p.user_id for p in snapshot.participants] == ["alice", "bob"]
    assert await store.snapshot("s_missing", 3) is None

    # Snapshots taken while messages are committed never see half of anything: the newest
    # message in a snapshot is exactly its seq (every event after the joins is a message).
    async def write() -> None:
        for i in range(30):
            await store.add_message(session_id, "alice", None, chat(f"w{i}"))

    async def read() -> list[tuple[int, int]]:
        pairs = []
        for _ in range(30):
            taken = await store.snapshot(session_id, 5)
            assert taken is not None
            pairs.append((taken.seq, taken.messages[-1].seq))
            await asyncio.sleep(0)
        return pairs

    _, pairs = await asyncio.gather(write(), read())
    assert all(seq == newest for seq, newest in pairs), pairs


# -- paging ------------------------------------------------------------------------------------


async def test_messages_before_pages_backwards(store: Store) -> None:
    session_id = await new_session(store)
    for i in range(7):
        await store.add_message(session_id, "alice", None, chat(f"m{i}"))
    page, more = await store.messages_before(session_id, None, 3)
    assert [m.content for m in page] == ["m4", "m5", "m6"] and more
    page, more = await store.messages_before(session_id, page[0].seq, 3)
    assert [m.content for m in page] == ["m1", "m2", "m3"] and more
    page, more = await store.messages_before(session_id, page[0].seq, 3)
    assert [m.content for m in page] == ["m0"] and not more
    assert await store.messages_before(session_id, page[0].seq, 3) == ([], False)
    assert await store.messages_before("s_missing", None, 3) == ([], False)


async def test_comments_after_pages_forwards_and_filters_by_file(store: Store) -> None:
    session_id = await new_session(store)
    for i in range(6):
        await store.add_message(
            session_id, "alice", None, comment(f"c{i}", file="a.py" if i % 2 else "b.py")
        )
        await store.add_message(session_id, "alice", None, chat(f"chat{i}"))
    page, more = await store.comments_after(session_id, 0, 4)
    assert [m.content for m in page] == ["c0", "c1", "c2", "c3"] and more
    page, more = await store.comments_after(session_id, page[-1].seq, 4)
    assert [m.content for m in page] == ["c4", "c5"] and not more
    page, more = await store.comments_after(session_id, 0, 2, file="a.py")
    assert [m.content for m in page] == ["c1", "c3"] and more
    page, more = await store.comments_after(session_id, page[-1].seq, 2, file="a.py")
    assert [m.content for m in page] == ["c5"] and not more
    assert await store.comments_after(session_id, 0, 5, file="none.py") == ([], False)


# -- invites -----------------------------------------------------------------------------------


async def test_invites_redeem_until_used_up(store: Store) -> None:
    session_id = await new_session(store)
    invite = await store.create_invite(
        session_id=session_id, role=Role.VIEWER, created_by="alice", ttl_seconds=600, max_uses=2
    )
    assert (invite.role, invite.max_uses, invite.uses, invite.revoked) == (
        Role.VIEWER,
        2,
        0,
        False,
    )
    assert invite.created_by == "alice" and invite.session_id == session_id
    assert await store.get_invite(invite.id) == invite
    first = await store.redeem_invite(invite.id)
    assert first.uses == 0  # the record as it was before this use
    await store.redeem_invite(invite.id)
    error = await refused(ErrorCode.INVITE_INVALID, store.redeem_invite(invite.id))
    assert error.message == "this invite has been used up"
    stored = await store.get_invite(invite.id)
    assert stored is not None and stored.uses == 2
    error = await refused(ErrorCode.INVITE_INVALID, store.redeem_invite("i_missing"))
    assert error.message == "this invite does not exist"
    assert await store.get_invite("i_missing") is None
    assert await store.last_seq(session_id) == 1  # invites are not session events


async def test_revoked_and_expired_invites_are_refused(store: Store) -> None:
    session_id = await new_session(store)
    other = await new_session(store, title="Other")
    invite = await store.create_invite(
        session_id=session_id, role=Role.EDITOR, created_by="alice", ttl_seconds=600, max_uses=5
    )
    error = await refused(ErrorCode.NOT_FOUND, store.revoke_invite(other, invite.id))
    assert (error.message, error.field) == ("no such invite in this session", "invite_id")
    await refused(ErrorCode.NOT_FOUND, store.revoke_invite(session_id, "i_missing"))
    await store.revoke_invite(session_id, invite.id)
    stored = await store.get_invite(invite.id)
    assert stored is not None and stored.revoked
    error = await refused(ErrorCode.INVITE_INVALID, store.redeem_invite(invite.id))
    assert error.message == "this invite was revoked"

    expired = await store.create_invite(
        session_id=session_id, role=Role.EDITOR, created_by="alice", ttl_seconds=-1, max_uses=5
    )
    error = await refused(ErrorCode.INVITE_INVALID, store.redeem_invite(expired.id))
    assert error.message == "this invite has expired"


# -- lifecycle ---------------------------------------------------------------------------------


async def test_epoch_and_secret_survive_a_reopen(make_store: MakeStore) -> None:
    first = make_store()
    await first.open()
    epoch, secret = first.epoch, await first.relay_secret()
    session_id = await new_session(first, "bob")
    assert epoch and len(secret) >= 32
    assert first.healthy
    await first.close()
    assert not first.healthy

    second = make_store()
    await second.open()
    assert second.epoch == epoch
    assert await second.relay_secret() == secret
    assert await second.last_seq(session_id) == 2
    event = await second.add_message(session_id, "bob", None, chat("after the restart"))
    assert event.seq == 3


async def test_a_closed_store_says_so(store: Store) -> None:
    session_id = await new_session(store)
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.add_message(session_id, "alice", None, chat("nobody hears"))
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get_session(session_id)
