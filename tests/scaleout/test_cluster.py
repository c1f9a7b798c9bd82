"""Several relay processes on one PostgreSQL schema and one Redis: one session, any relay.

Clients are raw WebSocket clients (they assert on the wire: seqs, acks, close codes),
spread over the relays; the relays share nothing but the database and Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

from collab_lsp.protocol.permissions import Role
from tests.helpers import TIMEOUT, Client
from tests.relay.relay_process import is_durable, read_until_closed
from tests.relay.test_metrics_http import scrape
from tests.scaleout.cluster import Cluster


async def durable_until(client: Client, done: Any, timeout: float = TIMEOUT * 2) -> list[Any]:
    """Durable frames (inbox first) until ``done(frames)`` holds."""
    frames = [frame for frame in client.inbox if is_durable(frame)]
    client.inbox = [frame for frame in client.inbox if not is_durable(frame)]
    async with asyncio.timeout(timeout):
        while not done(frames):
            frame = await client.recv()
            if is_durable(frame):
                frames.append(frame)
    return frames


def chats(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["id"] for frame in frames if frame["type"] == "chat_message"]


async def test_every_durable_event_reaches_every_client_once_and_in_one_order(
    group: Cluster,
) -> None:
    relays = [await group.start() for _ in range(3)]
    session_id = await group.create_session()
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    clients = {
        name: await relays[index % 3].join(session_id, name, Role.HOST if index == 0 else "editor")
        for index, name in enumerate(names)
    }
    # Seqs a client receives must continue, without a gap, from its snapshot's.
    starts = {name: client.connected["seq"] for name, client in clients.items()}  # type: ignore[index]

    async def talk(name: str, client: Client) -> list[str]:
        acked = []
        for n in range(12):
            ack = await client.request(
                {"type": "chat_message", "id": f"{name}-{n}", "content": f"{name} says {n}"}
            )
            assert ack["type"] == "ack", ack
            acked.append(ack["id"])
        return acked

    sent = await asyncio.gather(*(talk(name, client) for name, client in clients.items()))
    every_message = {message_id for ids in sent for message_id in ids}
    assert len(every_message) == 72

    orders = {}
    for name, client in clients.items():
        frames = await durable_until(client, lambda got: len(set(chats(got))) >= 72)
        seqs = [frame["seq"] for frame in frames]
        assert seqs == list(range(starts[name] + 1, starts[name] + 1 + len(seqs))), (
            f"{name} got seqs out of order, doubled or with a gap: {seqs}"
        )
        assert set(chats(frames)) == every_message
        orders[name] = [(f["seq"], f["id"]) for f in frames if f["type"] == "chat_message"]
    first = orders["alice"]
    for name, order in orders.items():
        assert order == first, f"{name} saw another order than alice"


async def test_presence_is_shared_across_relays(group: Cluster) -> None:
    one, two = await group.start(), await group.start()
    session_id = await group.create_session()
    alice = await one.join(session_id, "alice", Role.HOST)
    bob = await two.join(session_id, "bob")
    online = {p["id"]: p["online"] for p in bob.connected["participants"]}  # type: ignore[index]
    assert online == {"alice": True, "bob": True}

    cursor = {"file": "src/app.py", "line": 7, "column": 3}
    await alice.send({"type": "cursor_update", "data": cursor})
    moved = await bob.expect("presence_update", user_id="alice")
    assert moved["presence"]["cursor"] == {**cursor, "selection": None} or (
        moved["presence"]["cursor"]["line"] == 7 and moved["presence"]["cursor"]["column"] == 3
    )

    # A burst crosses relays coalesced, like local fan-out: fewer frames, the last one final.
    for line in range(10, 40):
        await alice.send({"type": "cursor_update", "data": {**cursor, "line": line}})
    received = 0
    while True:
        frame = await bob.expect("presence_update", user_id="alice")
        received += 1
        if frame["presence"]["cursor"]["line"] == 39:
            break
    assert received < 30, "every cursor move crossed the relays: nothing was coalesced"
    await alice.send({"type": "cursor_update", "data": cursor})
    await bob.expect("presence_update", user_id="alice")

    # Someone joining later, on either relay, finds alice's cursor in the snapshot.
    carol = await two.join(session_id, "carol")
    presence = carol.connected["presence"]  # type: ignore[index]
    assert presence["alice"]["cursor"]["line"] == 7
    assert {p["id"] for p in carol.connected["participants"] if p["online"]} == {  # type: ignore[index]
        "alice",
        "bob",
        "carol",
    }


async def test_a_dead_relay_takes_its_users_presence_with_it(group: Cluster) -> None:
    one, two = await group.start(), await group.start()
    session_id = await group.create_session()
    alice = await one.join(session_id, "alice", Role.HOST)
    await two.join(session_id, "dave")
    await alice.expect("user_joined")
    two.kill()
    # No reconnect: after the expiry (3 s here) a surviving relay marks dave as left.
    left = await alice.expect("user_left", timeout=TIMEOUT * 2, user_id="dave")
    assert left["reason"] == "timeout"
    rejoin = await one.join(session_id, "erin")
    online = {p["id"] for p in rejoin.connected["participants"] if p["online"]}  # type: ignore[index]
    assert online == {"alice", "erin"}


async def test_removal_and_role_changes_take_effect_on_every_relay(group: Cluster) -> None:
    one, two = await group.start(), await group.start()
    session_id = await group.create_session()
    alice = await one.join(session_id, "alice", Role.HOST)
    bob = await two.join(session_id, "bob")
    carol = await two.join(session_id, "carol")

    ack = await alice.request({"type": "change_role", "user_id": "carol", "role": "viewer"})
    assert ack["type"] == "ack", ack
    await carol.expect("role_changed", user_id="carol")
    refused = await carol.request({"type": "chat_message", "content": "still here?"})
    assert refused["type"] == "error" and refused["error_code"] == "PERMISSION_DENIED"

    ack = await alice.request({"type": "remove_user", "user_id": "bob"})
    assert ack["type"] == "ack", ack
    frames, code = await read_until_closed(bob)
    assert code == 4003, (code, frames)
    assert any(f["type"] == "user_removed" for f in frames)

    # The end of the session closes everyone, on every relay.
    dave = await one.join(session_id, "dave")
    ack = await alice.request({"type": "end_session"})
    assert ack["type"] == "ack", ack
    for client in (carol, dave):
        frames, code = await read_until_closed(client)
        assert code == 4010, (code, frames)
        assert frames[-1]["type"] == "session_ended"


async def test_rate_limits_hold_per_user_across_relays(group: Cluster) -> None:
    limited = {"COLLAB_RELAY_DURABLE_RATE_PER_MINUTE": "4"}
    one, two = await group.start(**limited), await group.start(**limited)
    session_id = await group.create_session()
    on_one = await one.join(session_id, "bob")
    on_two = await two.join(session_id, "bob")
    for client in (on_one, on_two, on_one, on_two):
        ack = await client.request({"type": "chat_message", "content": "hi"})
        assert ack["type"] == "ack", ack
    refused = await on_two.request({"type": "chat_message", "content": "one too many"})
    assert refused["type"] == "error" and refused["error_code"] == "RATE_LIMITED", refused
    assert 0 < refused["retry_after"] <= 60


async def test_metrics_count_what_crosses_the_broker(group: Cluster) -> None:
    one, two = await group.start(), await group.start()
    session_id = await group.create_session()
    alice = await one.join(session_id, "alice", Role.HOST)
    bob = await two.join(session_id, "bob")
    await alice.expect("user_joined")
    sent_before, heard_before = await scrape(one), await scrape(two)
    for n in range(5):
        ack = await alice.request({"type": "chat_message", "content": f"over Redis {n}"})
        assert ack["type"] == "ack", ack
        await bob.expect("chat_message", id=ack["id"])
    sent, heard = await scrape(one), await scrape(two)
    published = "collab_broker_published_total"
    assert sent[published] - sent_before[published] >= 5  # one event each, at least
    events = 'collab_broker_received_total{kind="event"}'
    assert heard[events] - heard_before.get(events, 0) == 5
    assert sent["collab_broker_failures_total"] == heard["collab_broker_failures_total"] == 0
