"""A burst of chat messages from one connection shares commits, in the order it was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import Client, RelayHandle
from tests.relay.relay_process import in_process_relay, next_durable

NO_RATE_LIMIT = 1_000_000


async def send_all(client: Client, frames: list[dict[str, Any]]) -> None:
    """Every frame at once, before reading any answer."""
    for frame in frames:
        await client.send(frame)


async def answers(client: Client, count: int) -> list[dict[str, Any]]:
    """The next ``count`` replies (acks, errors, history, pong), in the order received."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        frame = await client.recv()
        if frame["type"] in ("ack", "error", "history", "pong"):
            got.append(frame)
    return got


async def alice_and_bob(relay: RelayHandle) -> tuple[Client, Client]:
    """Two participants of a new session, alice having seen bob join."""
    session_id = await relay.create_session()
    alice = await relay.join(session_id, "alice", "host")
    bob = await relay.join(session_id, "bob")
    assert (await next_durable(alice))["user"]["id"] == "bob"
    return alice, bob


def chat(i: int, **extra: Any) -> dict[str, Any]:
    return {"type": "chat_message", "id": f"c{i}", "content": f"message {i}", **extra}


async def test_a_burst_commits_together_in_the_order_sent(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, durable_rate_per_minute=NO_RATE_LIMIT) as relay:
        alice, bob = await alice_and_bob(relay)
        frames = [chat(i) for i in range(30)]
        frames[10] = chat(10, parent_id="m_nothere")  # refused by the store, alone
        frames[20] = {
            "type": "add_comment",
            "id": "c20",
            "data": {"file": "a.py", "line": 3, "content": "why?"},
        }
        commits = relay.relay.store.commits
        await send_all(alice, frames)

        replies = await answers(alice, len(frames))
        # One reply per frame, in the order sent; the refusal costs only its own frame.
        assert [reply["ref"] for reply in replies] == [frame["id"] for frame in frames]
        assert replies[10]["type"] == "error" and replies[10]["error_code"] == "NOT_FOUND"
        seqs = [reply["seq"] for reply in replies if reply["type"] == "ack"]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(frames) - 1
        # Everyone gets the events in that order too.
        seen = [await next_durable(bob) for _ in seqs]
        assert [event["seq"] for event in seen] == seqs
        texts = [e.get("message", e.get("comment", {})).get("content") for e in seen]
        assert texts[:3] == ["message 0", "message 1", "message 2"] and "why?" in texts
        # Read one at a time, each message would have had a commit of its own.
        assert relay.relay.store.commits - commits < len(seqs)


async def test_a_request_after_messages_is_answered_after_them(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, durable_rate_per_minute=NO_RATE_LIMIT) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        await send_all(
            alice,
            [
                chat(1),
                chat(2),
                {"type": "get_history", "id": "h", "limit": 10},
                chat(3),
                "not json",
                {"type": "ping", "id": "p"},
            ],
        )
        replies = await answers(alice, 6)
        assert [reply.get("ref") for reply in replies] == ["c1", "c2", "h", "c3", None, "p"]
        # The history request saw both messages sent before it, and not the one after.
        history = replies[2]
        assert [m["content"] for m in history["messages"]] == ["message 1", "message 2"]
        assert replies[4]["type"] == "error" and replies[4]["error_code"] == "INVALID_JSON"


async def test_messages_still_in_flight_when_the_sender_leaves_are_kept(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, durable_rate_per_minute=NO_RATE_LIMIT) as relay:
        alice, bob = await alice_and_bob(relay)
        await send_all(alice, [chat(i) for i in range(20)])
        await alice.close()
        contents = []
        while len(contents) < 20:
            event = await next_durable(bob)
            if event["type"] == "chat_message":
                contents.append(event["message"]["content"])
        assert contents == [f"message {i}" for i in range(20)]


async def test_resends_in_a_burst_are_answered_in_their_place(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, durable_rate_per_minute=NO_RATE_LIMIT) as relay:
        await resends_in_a_burst(relay)


async def resends_in_a_burst(relay: RelayHandle) -> None:
    """Also run on PostgreSQL (tests/relay/store/test_relay_on_postgres.py)."""
    alice, bob = await alice_and_bob(relay)
    await send_all(alice, [chat(i) for i in range(5)])
    first = await answers(alice, 5)
    # A client back from a reconnect resends what it never saw acked, then goes on;
    # c5 and its resend reach the writer together.
    burst = [chat(3), chat(4), chat(5), chat(5), chat(6)]
    await send_all(alice, burst)
    replies = await answers(alice, len(burst))
    assert [reply["ref"] for reply in replies] == ["c3", "c4", "c5", "c5", "c6"]
    assert [reply["duplicate"] for reply in replies] == [True, True, False, True, False]
    assert [reply["seq"] for reply in replies[:2]] == [first[3]["seq"], first[4]["seq"]]
    assert replies[3]["seq"] == replies[2]["seq"] == first[4]["seq"] + 1
    assert replies[4]["seq"] == replies[2]["seq"] + 1
    # Bob gets each message once.
    contents = []
    while len(contents) < 7:
        event = await next_durable(bob)
        contents.append(event["message"]["content"])
    assert contents == [f"message {i}" for i in range(7)]
