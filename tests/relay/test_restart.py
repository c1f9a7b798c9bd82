"""A relay process killed with -9, or stopped with SIGTERM, loses nothing it acknowledged."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

from tests.helpers import Client
from tests.relay.relay_process import (
    create_session as create_session_in,
)
from tests.relay.relay_process import (
    next_durable,
    read_until_closed,
    relay_process,
    start_relay_process,
    until_pong,
)


def chat(i: int) -> dict[str, Any]:
    return {"type": "chat_message", "id": f"c-{i:02d}", "content": f"m{i:02d}"}


async def acks_for(client: Client, first: int, last: int) -> dict[int, dict[str, Any]]:
    """Wait for the acks of chats ``first``..``last`` (inclusive)."""
    return {i: await client.expect("ack", ref=f"c-{i:02d}") for i in range(first, last + 1)}


async def history(client: Client) -> list[dict[str, Any]]:
    reply = await client.request({"type": "get_history", "limit": 100}, reply="history")
    assert reply["type"] == "history" and reply["has_more"] is False, reply
    return list(reply["messages"])


def stored_contents(db: Path, session_id: str) -> list[str]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT content FROM session_messages WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
    return [row[0] for row in rows]


async def test_kill_9_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    session_id = await create_session_in(db)
    relay = await start_relay_process(db)
    try:
        alice = await relay.join(session_id, "alice", "host")
        bob = await relay.join(session_id, "bob", "editor")
        epoch = alice.connected["epoch"] if alice.connected else None
        for i in range(10):
            await alice.send(chat(i))
        acked = await acks_for(alice, 0, 9)
        bob_last_seq = 0
        while bob_last_seq < acked[9]["seq"]:
            bob_last_seq = (await next_durable(bob))["seq"]
        for i in range(10, 30):
            await alice.send(chat(i))
        acked |= await acks_for(alice, 10, 19)
        relay.kill()  # right after the 20th ack; chats 20..29 may be in flight
        await relay.wait()
    finally:
        await relay.close()

    async with relay_process(db) as restarted:
        bob = await restarted.join(
            session_id, "bob", query=f"&resume_from={bob_last_seq}&epoch={epoch}"
        )
        assert bob.connected is not None
        assert bob.connected["resumed"] is True
        assert bob.connected["epoch"] == epoch
        replayed = [await next_durable(bob) for _ in range(bob.connected["seq"] - bob_last_seq)]

        alice = await restarted.join(session_id, "alice", "host")
        assert alice.connected is not None
        assert alice.connected["epoch"] == epoch
        snapshot = [m["content"] for m in alice.connected["messages"]]
        contents = [m["content"] for m in await history(alice)]
        committed = len(contents)
        # Every acknowledged chat exactly once, in order; the in-flight ones at most once.
        assert committed >= 20
        assert contents == [f"m{i:02d}" for i in range(committed)]
        assert snapshot == contents
        ids = {m["id"] for m in await history(alice)}
        assert {ack["id"] for ack in acked.values()} <= ids

        # Bob got exactly what he missed: the seqs after his last one, no gap, no duplicate.
        assert [f["seq"] for f in replayed] == list(
            range(bob_last_seq + 1, bob.connected["seq"] + 1)
        )
        missed_chats = [f["message"]["content"] for f in replayed if f["type"] == "chat_message"]
        assert missed_chats == contents[10:]

        after = await alice.request({"type": "chat_message", "content": "after restart"})
        assert after["seq"] > max(bob.connected["seq"], acked[19]["seq"])
        live = [await next_durable(bob) for _ in range(2)]  # alice's return, then her chat
        assert [(f["type"], f["seq"]) for f in live] == [
            ("user_joined", after["seq"] - 1),
            ("chat_message", after["seq"]),
        ]


async def test_a_resend_after_kill_9_is_applied_once(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    session_id = await create_session_in(db)
    relay = await start_relay_process(db)
    try:
        alice = await relay.join(session_id, "alice", "host")
        for i in range(5):
            await alice.send(chat(i))
        first = await acks_for(alice, 0, 4)
        relay.kill()
        await relay.wait()
    finally:
        await relay.close()

    async with relay_process(db) as restarted:
        alice = await restarted.join(session_id, "alice", "host")
        for i in range(6):  # 0..4 again, and one new chat
            await alice.send(chat(i))
        again = await acks_for(alice, 0, 5)
        for i in range(5):
            assert again[i]["duplicate"] is True
            assert (again[i]["id"], again[i]["seq"]) == (first[i]["id"], first[i]["seq"])
        assert again[5]["duplicate"] is False
        assert again[5]["seq"] > first[4]["seq"]
        contents = [m["content"] for m in await history(alice)]
        assert contents == [f"m{i:02d}" for i in range(6)]


async def test_sigterm_tells_clients_and_flushes_everything(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    session_id = await create_session_in(db)
    async with relay_process(db) as relay:
        alice = await relay.join(session_id, "alice", "host")
        bob = await relay.join(session_id, "bob", "editor")
        for i in range(5):
            await alice.send(chat(i))
        acked = await acks_for(alice, 0, 4)
        for i in range(5, 25):
            await alice.send(chat(i))
        acked |= await acks_for(alice, 5, 5)
        os.kill(relay.pid, signal.SIGTERM)  # chats 6..24 may still be on their way

        alice_frames, alice_code = await read_until_closed(alice)
        bob_frames, bob_code = await read_until_closed(bob)
        assert await relay.wait() == 0

    for frames, code in ((alice_frames, alice_code), (bob_frames, bob_code)):
        assert "server_shutdown" in [frame["type"] for frame in frames]
        assert code == 1012
    acked |= {int(f["ref"][2:]): f for f in alice_frames if f["type"] == "ack"}
    stored = stored_contents(db, session_id)
    assert len(stored) == len(set(stored))
    assert {f"m{i:02d}" for i in acked} <= set(stored)
    assert stored == [f"m{i:02d}" for i in range(len(stored))]


async def test_a_resend_while_the_first_is_in_flight_is_applied_once(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    session_id = await create_session_in(db)
    async with relay_process(db) as relay:
        alice = await relay.join(session_id, "alice", "host")
        bob = await relay.join(session_id, "bob", "editor")
        await alice.send(chat(0))
        await alice.send(chat(0))
        first, second = await alice.expect("ack", ref="c-00"), await alice.expect("ack", ref="c-00")
        assert (first["duplicate"], second["duplicate"]) == (False, True)
        assert (first["id"], first["seq"]) == (second["id"], second["seq"])
        assert (await next_durable(bob))["seq"] == first["seq"]
        assert not [f for f in await until_pong(bob) if f["type"] == "chat_message"]
        assert [m["content"] for m in await history(alice)] == ["m00"]
