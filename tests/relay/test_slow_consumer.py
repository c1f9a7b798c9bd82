"""A client that stops reading never holds the others up, and loses nothing it resumes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from tests.helpers import Client, RelayHandle
from tests.relay.relay_process import (
    connect_stalled,
    in_process_relay,
    next_durable,
    read_until_closed,
    until_pong,
)

# Multi-byte text makes each frame ~36 KB, so a few dozen fill the kernel's socket buffers.
BIG = "\U0001d4c1" * 9000
MANY = 200
NO_RATE_LIMIT = 1_000_000


async def join_stalled(relay: RelayHandle, session_id: str, user: str) -> Client:
    token = relay.token(session_id, user, "editor")
    return await connect_stalled(f"{relay.url}/ws/session/{session_id}?token={token}")


def backlog(relay: RelayHandle, session_id: str, user: str) -> int:
    """Frames the relay could not yet write to ``user`` (white-box: proves the stall)."""
    connections = relay.relay.rooms[session_id].members[user].connections
    return sum(len(connection.outbox) for connection in connections)


def cursor_move(line: int) -> dict[str, Any]:
    return {"type": "cursor_update", "data": {"file": "a.py", "line": line, "col": 2}}


async def big_chat(sender: Client, i: int) -> dict[str, Any]:
    frame = {"type": "chat_message", "id": f"big-{i}", "content": f"{i} {BIG}"}
    await sender.send(json.dumps(frame, ensure_ascii=False))
    return await sender.expect("ack", ref=f"big-{i}")


async def test_a_stalled_client_does_not_delay_the_others(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, durable_rate_per_minute=NO_RATE_LIMIT) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        carol = await relay.join(session_id, "carol", "viewer")
        stalled = await join_stalled(relay, session_id, "bob")
        assert (await next_durable(carol))["user"]["id"] == "bob"
        try:
            seqs, skipped = [], []
            for i in range(MANY):
                seqs.append((await big_chat(alice, i))["seq"])
                if i % 10 == 9:  # cursor moves too, well under the ephemeral rate limit
                    cursor = {"file": "src/app.py", "line": i + 1, "column": 1}
                    await alice.send({"type": "cursor_update", "data": cursor})
                assert (await next_durable(carol, skipped))["seq"] == seqs[-1]
            assert backlog(relay, session_id, "bob") > 0, "bob was never stalled"
            skipped += await until_pong(carol)
            cursors = [f["presence"]["cursor"]["line"] for f in skipped if "presence" in f]
            assert cursors[-1] == MANY

            # Under its bound the stalled client was kept, and gets everything once it reads.
            stalled.ws.transport.resume_reading()
            got = [await next_durable(stalled) for _ in seqs]
            assert [frame["seq"] for frame in got] == seqs
        finally:
            stalled.ws.transport.abort()


async def test_a_client_past_its_durable_backlog_is_closed_and_resumes(tmp_path: Path) -> None:
    settings = {"durable_backlog_limit": 20, "durable_rate_per_minute": NO_RATE_LIMIT}
    async with in_process_relay(tmp_path, **settings) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        carol = await relay.join(session_id, "carol", "viewer")
        stalled = await join_stalled(relay, session_id, "bob")
        epoch = stalled.connected["epoch"] if stalled.connected else None
        assert (await next_durable(carol))["user"]["id"] == "bob"
        try:
            seqs = []
            for i in range(MANY):
                seqs.append((await big_chat(alice, i))["seq"])
                assert (await next_durable(carol))["seq"] == seqs[-1]

            stalled.ws.transport.resume_reading()
            frames, code = await read_until_closed(stalled)
        finally:
            stalled.ws.transport.abort()
        assert code == 4008
        seen = [frame["seq"] for frame in frames if frame["type"] == "chat_message"]
        assert seen == seqs[: len(seen)]
        assert len(seen) < MANY

        bob = await relay.join(session_id, "bob", query=f"&resume_from={seen[-1]}&epoch={epoch}")
        assert bob.connected is not None and bob.connected["resumed"] is True
        rest = [await next_durable(bob) for _ in range(bob.connected["seq"] - seen[-1])]
        chats = [frame["seq"] for frame in rest if frame["type"] == "chat_message"]
        assert seen + chats == seqs, "every message exactly once, in order"


async def test_a_slow_consumer_is_closed_and_counted_once(tmp_path: Path) -> None:
    settings = {"durable_backlog_limit": 20, "durable_rate_per_minute": NO_RATE_LIMIT}
    async with in_process_relay(tmp_path, **settings) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        stalled = await join_stalled(relay, session_id, "bob")
        try:
            for i in range(MANY):
                await big_chat(alice, i)
            stalled.ws.transport.resume_reading()
            _, code = await read_until_closed(stalled)
        finally:
            stalled.ws.transport.abort()
        assert code == 4008
        assert relay.relay.metrics.slow_consumers_closed == 1


async def test_cursor_updates_are_coalesced_and_never_echoed(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, cursor_interval_seconds=0.5) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        carol = await relay.join(session_id, "carol", "viewer")
        for line in range(1, 51):
            await alice.send(cursor_move(line))

        lines = []
        while not lines or lines[-1] != 50:
            update = await carol.expect("presence_update", user_id="alice")
            lines.append(update["presence"]["cursor"]["line"])
        assert len(lines) <= 5, f"50 cursor moves became {len(lines)} frames"
        assert lines == sorted(lines)
        assert update["presence"]["cursor"] == {"file": "a.py", "line": 50, "column": 2}

        echoed = [f for f in await until_pong(alice) if f["type"] == "presence_update"]
        assert echoed == []
        assert not [f for f in await until_pong(carol) if f["type"] == "presence_update"]


async def test_a_burst_of_cursor_moves_ends_at_the_last_position(relay: RelayHandle) -> None:
    # 200 moves at once, well over the ephemeral rate: the excess may be coalesced away,
    # but the latest position must win (docs: "latest wins").
    session_id = await relay.create_session()
    alice = await relay.join(session_id, "alice", "host")
    carol = await relay.join(session_id, "carol", "viewer")
    for line in range(1, 201):
        await alice.send(cursor_move(line))
    assert not [f for f in await until_pong(alice) if f["type"] == "error"], "not an error"

    lines: list[int] = []
    with contextlib.suppress(TimeoutError):
        while not lines or lines[-1] != 200:
            update = await carol.expect("presence_update", timeout=5, user_id="alice")
            lines.append(update["presence"]["cursor"]["line"])
    assert lines and lines[-1] == 200, f"carol's last view of alice's cursor: line {lines[-1:]}"
