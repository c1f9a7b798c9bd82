"""A connection's two ways out: straight to its socket, or queued while it is full."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from collab_lsp.relay.connection import Connection
from tests.helpers import RelayHandle
from tests.relay.relay_process import in_process_relay, next_durable, until_pong
from tests.relay.test_slow_consumer import MANY, NO_RATE_LIMIT, big_chat, join_stalled


def connection_of(relay: RelayHandle, session_id: str, user: str) -> Connection:
    (connection,) = relay.relay.rooms[session_id].members[user].connections
    return connection


def count_queued_sends(connection: Connection) -> list[int]:
    """Spy on the slow path: every frame that went through ``websockets``' ``send``."""
    sent: list[int] = []
    send: Callable[[Any], Awaitable[None]] = connection.websocket.send

    async def counted(message: Any) -> None:
        sent.append(1)
        await send(message)

    connection.websocket.send = counted  # type: ignore[method-assign]
    return sent


async def test_a_client_that_catches_up_goes_back_to_direct_writes(tmp_path: Path) -> None:
    async with in_process_relay(tmp_path, durable_rate_per_minute=NO_RATE_LIMIT) as relay:
        session_id = await relay.create_session()
        alice = await relay.join(session_id, "alice", "host")
        bob = await join_stalled(relay, session_id, "bob")
        queued = count_queued_sends(connection_of(relay, session_id, "bob"))
        try:
            seqs = [(await big_chat(alice, i))["seq"] for i in range(MANY)]
            assert queued, "bob's socket never filled: nothing took the slow path"

            bob.ws.transport.resume_reading()
            assert [(await next_durable(bob))["seq"] for _ in seqs] == seqs
            await until_pong(bob)  # the pong is queued behind the rest: all drained
            assert len(connection_of(relay, session_id, "bob").outbox) == 0
            went_slow = len(queued)

            # Caught up: later frames go straight to the socket again, in order.
            more = [
                (await alice.request({"type": "chat_message", "content": f"small {i}"}))["seq"]
                for i in range(20)
            ]
            assert more == list(range(seqs[-1] + 1, seqs[-1] + 21))
            assert [(await next_durable(bob))["seq"] for _ in more] == more
            assert len(queued) == went_slow, "frames took the slow path once caught up"
        finally:
            bob.ws.transport.abort()
