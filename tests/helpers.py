"""Test helpers: a raw WebSocket client of the relay, and a relay started in-process.

The client speaks raw JSON frames on purpose, so tests can send bad ones too.
Waiting is always for a frame (with a timeout that only guards against hangs),
never a sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from collab_lsp.protocol.models import ParticipantKind
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.config import RelayConfig
from collab_lsp.relay.server import Relay

TIMEOUT = 10.0
_REQUEST_IDS = itertools.count(1)


class Client:
    """One WebSocket connection; frames it received but nobody asked for yet wait in ``inbox``."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.ws = websocket
        self.inbox: list[dict[str, Any]] = []
        self.connected: dict[str, Any] | None = None

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        if self.inbox:
            return self.inbox.pop(0)
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: dict[str, Any] = json.loads(raw)
        return frame

    async def expect(self, type_: str, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """The next frame of ``type_`` (matching ``match``); others are kept in the inbox."""
        for index, frame in enumerate(self.inbox):
            if frame["type"] == type_ and _matches(frame, match):
                return self.inbox.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), deadline - loop.time())
            frame = json.loads(raw)
            if frame["type"] == type_ and _matches(frame, match):
                return frame
            self.inbox.append(frame)

    async def request(self, frame: dict[str, Any], reply: str = "ack") -> dict[str, Any]:
        """Send a frame with an id and wait for the reply that names it (or an error)."""
        frame.setdefault("id", f"req-{next(_REQUEST_IDS)}")
        await self.send(frame)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            for index, got in enumerate(self.inbox):
                if got.get("ref") == frame["id"] and got["type"] in (reply, "error"):
                    return self.inbox.pop(index)
            raw = await asyncio.wait_for(self.ws.recv(), deadline - loop.time())
            self.inbox.append(json.loads(raw))

    def durable(self) -> list[dict[str, Any]]:
        return [frame for frame in self.inbox if "seq" in frame and frame["type"] != "ack"]

    async def close(self) -> None:
        await self.ws.close()


def _matches(frame: dict[str, Any], match: dict[str, Any]) -> bool:
    return all(frame.get(key) == value for key, value in match.items())


@dataclass
class RelayHandle:
    relay: Relay
    clients: list[Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.relay.url

    @property
    def http(self) -> str:
        return self.relay.url.replace("ws://", "http://")

    async def create_session(self, title: str = "Pairing", host: str = "alice") -> str:
        session = await self.relay.store.create_session(
            title=title, host_id=host, host_name=host, host_kind=ParticipantKind.HUMAN
        )
        return session.id

    def token(
        self,
        session_id: str | None,
        user: str,
        role: Role | str | None = Role.EDITOR,
        *,
        ttl: int | None = None,
        kind: ParticipantKind = ParticipantKind.HUMAN,
    ) -> str:
        assert self.relay.auth is not None
        return self.relay.auth.issue(
            sub=user,
            name=user,
            sid=session_id,
            role=Role(role) if role is not None and session_id is not None else None,
            kind=kind,
            ttl_seconds=ttl,
        )

    async def connect_raw(self, path: str = "/ws", **kwargs: Any) -> Client:
        websocket = await websockets.connect(self.url + path, **kwargs)
        client = Client(websocket)
        self.clients.append(client)
        return client

    async def join(
        self,
        session_id: str,
        user: str,
        role: Role | str = Role.EDITOR,
        *,
        token: str | None = None,
        query: str = "",
    ) -> Client:
        token = token or self.token(session_id, user, role)
        client = await self.connect_raw(f"/ws/session/{session_id}?token={token}{query}")
        client.connected = await client.expect("connected")
        return client


def relay_config(tmp_path: Path, **overrides: Any) -> RelayConfig:
    settings: dict[str, Any] = {
        "port": 0,
        "db": str(tmp_path / "relay.db"),
        "reconnect_grace_seconds": 0.3,
        "presence_sweep_seconds": 0.2,
        "cursor_interval_seconds": 0.0,
        "presence_interval_seconds": 0.0,
    }
    settings.update(overrides)
    return RelayConfig(**settings)
