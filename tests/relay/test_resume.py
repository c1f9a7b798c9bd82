"""Reconnecting: resume_from + epoch, resets, the reconnect grace, several connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import Client, RelayHandle
from tests.relay.relay_process import in_process_relay, next_durable, until_pong, wait_until

LONG_GRACE = 60.0  # longer than any test: only an explicit leave or a reconnect ends it


def online(relay: RelayHandle, session_id: str, user: str) -> int:
    """How many connections the relay holds for ``user`` (white-box, to order the steps)."""
    room = relay.relay.rooms.get(session_id)
    member = room.members.get(user) if room else None
    return len(member.connections) if member else 0


async def _send_missed_events(alice: Client, count: int) -> list[dict[str, Any]]:
    """``count`` chat messages and ``count`` code comments, alternating; their acks."""
    acks = []
    for i in range(count):
        acks.append(await alice.request({"type": "chat_message", "content": f"chat {i}"}))
        comment = {"content": f"comment {i}", "file": "src/app.py", "line": i + 1}
        acks.append(await alice.request({"type": "add_comment", "data": comment}))
    assert all(ack["type"] == "ack" for ack in acks), acks
    return acks


async def test_resume_replays_exactly_the_missed_events_then_live_ones(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, reconnect_grace_seconds=LONG_GRACE) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        bob = await relay.join(session_id, "bob", "editor")
        await alice.request({"type": "chat_message", "content": "before"})
        last_seen = (await bob.expect("chat_message"))["seq"]
        epoch = bob.connected["epoch"] if bob.connected else None
        await bob.close()
        await wait_until(lambda: online(relay, session_id, "bob") == 0, alice)

        acks = await _send_missed_events(alice, 5)
        missed = [ack["seq"] for ack in acks]

        bob = await relay.join(session_id, "bob", query=f"&resume_from={last_seen}&epoch={epoch}")
        assert bob.connected is not None
        assert bob.connected["resumed"] is True
        assert bob.connected["reset"] is False
        assert bob.connected["messages"] == []
        assert bob.connected["epoch"] == epoch
        replayed = [await next_durable(bob) for _ in missed]
        assert [frame["seq"] for frame in replayed] == missed
        assert missed == list(range(last_seen + 1, last_seen + 1 + len(missed)))
        assert [frame["id"] for frame in replayed] == [ack["id"] for ack in acks]
        assert [frame["type"] for frame in replayed] == ["chat_message", "code_comment"] * 5

        live = await alice.request({"type": "chat_message", "content": "live"})
        assert (await next_durable(bob))["seq"] == live["seq"] == missed[-1] + 1
        assert not [frame for frame in await until_pong(bob) if "seq" in frame], "duplicates"


async def test_resume_with_another_epoch_resets_with_a_full_snapshot(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    alice = await relay.join(session_id, "alice", "host")
    for i in range(3):
        await alice.request({"type": "chat_message", "content": f"m{i}"})
    seq = alice.connected["seq"] if alice.connected else 0

    bob = await relay.join(session_id, "bob", query=f"&resume_from={seq}&epoch=ep_elsewhere")
    assert bob.connected is not None
    assert bob.connected["reset"] is True
    assert bob.connected["resumed"] is False
    assert [m["content"] for m in bob.connected["messages"]] == ["m0", "m1", "m2"]
    assert alice.connected is not None
    assert bob.connected["epoch"] == alice.connected["epoch"]
    assert not [frame for frame in await until_pong(bob) if "seq" in frame], "nothing replayed"


async def test_resume_from_a_future_seq_resets(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    alice = await relay.join(session_id, "alice", "host")
    ack = await alice.request({"type": "chat_message", "content": "only"})
    epoch = alice.connected["epoch"] if alice.connected else None

    bob = await relay.join(
        session_id, "bob", query=f"&resume_from={ack['seq'] + 100}&epoch={epoch}"
    )
    assert bob.connected is not None
    assert bob.connected["reset"] is True
    assert bob.connected["resumed"] is False
    assert [m["content"] for m in bob.connected["messages"]] == ["only"]


async def test_reconnect_within_grace_is_invisible_to_others(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, reconnect_grace_seconds=LONG_GRACE) as relay:
        session_id = await relay.create_session()
        carol = await relay.join(session_id, "carol", "host")
        bob = await relay.join(session_id, "bob", "editor")
        assert (await next_durable(carol))["type"] == "user_joined"
        epoch = bob.connected["epoch"] if bob.connected else None
        seq = bob.connected["seq"] if bob.connected else 0

        await bob.close()
        await wait_until(lambda: online(relay, session_id, "bob") == 0, carol)
        bob = await relay.join(session_id, "bob", query=f"&resume_from={seq}&epoch={epoch}")
        ack = await bob.request({"type": "chat_message", "content": "back again"})

        # No user_left, no user_joined: bob's chat is carol's next durable frame.
        frame = await next_durable(carol)
        assert (frame["type"], frame["seq"]) == ("chat_message", ack["seq"])
        assert ack["seq"] == seq + 1


async def test_staying_away_past_the_grace_announces_a_timeout(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    carol = await relay.join(session_id, "carol", "host")
    bob = await relay.join(session_id, "bob", "editor")
    assert (await next_durable(carol))["type"] == "user_joined"

    await bob.close()
    left = await next_durable(carol)
    assert left["type"] == "user_left"
    assert (left["user_id"], left["reason"]) == ("bob", "timeout")


async def test_leave_session_is_announced_at_once(tmp_path: Path) -> None:
    # With a grace far longer than the wait, only an immediate leave can arrive in time.
    async with in_process_relay(tmp_path, reconnect_grace_seconds=LONG_GRACE) as relay:
        session_id = await relay.create_session()
        carol = await relay.join(session_id, "carol", "host")
        bob = await relay.join(session_id, "bob", "editor")
        assert (await next_durable(carol))["type"] == "user_joined"

        await bob.send({"type": "leave_session"})
        left = await next_durable(carol)
        assert left["type"] == "user_left"
        assert (left["user_id"], left["reason"]) == ("bob", "left")


async def test_a_user_leaves_only_when_the_last_connection_closes(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    carol = await relay.join(session_id, "carol", "host")
    bob_vscode = await relay.join(session_id, "bob", "editor")
    bob_nvim = await relay.join(session_id, "bob", "editor")
    bob_terminal = await relay.join(session_id, "bob", "editor")
    dave = await relay.join(session_id, "dave", "editor")
    joined = [await next_durable(carol) for _ in range(2)]
    assert [(f["type"], f["user"]["id"]) for f in joined] == [
        ("user_joined", "bob"),
        ("user_joined", "dave"),
    ]

    # One of bob's connections leaves on purpose, another just closes: nobody is told.
    await bob_vscode.send({"type": "leave_session"})
    await bob_nvim.close()
    await wait_until(lambda: online(relay, session_id, "bob") == 1, carol)
    ack = await bob_terminal.request({"type": "chat_message", "content": "still here"})
    frame = await next_durable(carol)
    assert (frame["type"], frame["seq"]) == ("chat_message", ack["seq"])

    # dave closes after bob_nvim did: his timeout comes first, and bob (one connection
    # left) is still not announced.
    await dave.close()
    left = await next_durable(carol)
    assert (left["type"], left["user_id"], left["reason"]) == ("user_left", "dave", "timeout")

    await bob_terminal.close()
    left = await next_durable(carol)
    assert (left["type"], left["user_id"], left["reason"]) == ("user_left", "bob", "timeout")


async def test_resume_by_join_frame_while_others_keep_writing(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    alice = await relay.join(session_id, "alice", "host")
    bob = await relay.join(session_id, "bob", "editor")
    assert bob.connected is not None
    epoch, last_seen = bob.connected["epoch"], bob.connected["seq"]
    await bob.close()
    for i in range(20):
        await alice.send({"type": "chat_message", "id": f"before-{i}", "content": "x"})

    # Bob comes back through /ws and join_session while alice's burst is still landing.
    for i in range(30):
        await alice.send({"type": "chat_message", "id": f"during-{i}", "content": "y"})
    bob = await relay.connect_raw("/ws")
    await bob.send(
        {
            "type": "join_session",
            "session_id": session_id,
            "auth_token": relay.token(session_id, "bob"),
            "resume_from": last_seen,
            "epoch": epoch,
        }
    )
    last = await alice.expect("ack", ref="during-29")
    connected = await bob.expect("connected")
    assert connected["resumed"] is True and connected["messages"] == []
    seqs: list[int] = []
    while not seqs or seqs[-1] < last["seq"]:
        seqs.append((await next_durable(bob))["seq"])
    assert seqs == list(range(last_seen + 1, last["seq"] + 1)), "a gap or a duplicate"
    assert not [f for f in await until_pong(bob) if "seq" in f]
