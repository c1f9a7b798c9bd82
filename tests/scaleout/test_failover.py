"""Relays behind the shipped nginx config: one is killed, its clients carry on through another.

The clients are the project's own ``RelayClient`` (what sidecars, the CLI and the MCP
server use): they reconnect with backoff through nginx, resume from their last seq and
resend what was not acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collab_lsp.client.backoff import Backoff
from collab_lsp.client.client import ClientState, RelayClient
from collab_lsp.protocol.permissions import Role
from tests.helpers import TIMEOUT
from tests.relay.relay_process import is_durable
from tests.scaleout.cluster import Cluster
from tests.scaleout.nginx import run_nginx


class Recorder:
    """One client's frames and states, with a way to wait for the frames to say something."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.states: list[ClientState] = []
        self._arrived = asyncio.Event()

    def frame(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        self._arrived.set()

    def state(self, state: ClientState, detail: str | None) -> None:
        self.states.append(state)

    async def until(self, condition: Callable[[list[dict[str, Any]]], bool]) -> None:
        async with asyncio.timeout(TIMEOUT * 2):
            while not condition(self.frames):
                self._arrived.clear()
                await self._arrived.wait()


def chat_ids(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["id"] for frame in frames if frame["type"] == "chat_message"]


async def test_a_killed_relay_s_clients_reconnect_through_nginx_and_resume(
    group: Cluster, tmp_path: Path
) -> None:
    relays = [await group.start(), await group.start()]
    ports = [urlsplit(relay.url).port or 0 for relay in relays]
    session_id = await group.create_session()
    names = ["alice", "bob", "carol", "dave"]
    records = {name: Recorder() for name in names}
    clients: dict[str, RelayClient] = {}

    async with run_nginx(ports, tmp_path) as proxy:
        for index, name in enumerate(names):
            client = RelayClient(
                proxy.url,
                relays[0].token(session_id, name, Role.HOST if index == 0 else Role.EDITOR),
                session_id=session_id,
                on_frame=records[name].frame,
                on_state=records[name].state,
                backoff=Backoff(initial=0.1, cap=0.5),
            )
            await client.start()
            assert client.state is ClientState.CONNECTED
            clients[name] = client
        try:
            before = [
                await clients[name].request({"type": "chat_message", "content": f"{name} 1"})
                for name in names
            ]
            relays[0].kill()
            # Sent at once, while the killed relay's clients are still finding out: they
            # hold their message, reconnect through nginx and resend it.
            after = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        clients[name].request({"type": "chat_message", "content": f"{name} 2"})
                        for name in names
                    )
                ),
                TIMEOUT * 2,
            )
            expected = {ack["id"] for ack in [*before, *after]}
            assert len(expected) == 8

            for name in names:
                await records[name].until(lambda frames: expected <= set(chat_ids(frames)))
                durable = [frame for frame in records[name].frames if is_durable(frame)]
                seqs = [frame["seq"] for frame in durable]
                assert seqs == sorted(set(seqs)), f"{name}: doubled or out of order: {seqs}"
                ids = chat_ids(durable)
                assert sorted(ids) == sorted(set(ids)), f"{name} got a message twice"
                assert clients[name].state is ClientState.CONNECTED

            moved = [name for name in names if ClientState.RECONNECTING in records[name].states]
            assert moved, "nobody was on the killed relay: the test proved nothing"
            assert len(moved) < len(names), "nginx sent everyone to one relay"
            resumed = [
                frame
                for name in moved
                for frame in records[name].frames
                if frame["type"] == "connected" and frame.get("resumed")
            ]
            assert len(resumed) >= len(moved), "a reconnecting client was not resumed"
        finally:
            for client in clients.values():
                await client.close()
