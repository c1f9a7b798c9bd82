"""Helpers for the relay end-to-end tests: a `collab-relay serve` subprocess, an
in-process relay with custom settings, and frame-ordering helpers.

Waiting is always for something the relay says (a stdout line, a frame); the
timeouts only guard against hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import websockets

from collab_lsp.protocol.models import ParticipantKind
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.auth import Authenticator
from collab_lsp.relay.server import Relay
from collab_lsp.relay.store.sqlite import SqliteStore
from tests.helpers import TIMEOUT, Client, RelayHandle, relay_config

SECRET = "test-secret-" + "x" * 40
READY_PREFIX = "collab-relay listening on "
NOT_DURABLE = frozenset({"ack", "mention", "connected", "pong", "error", "history"})


# -- relays --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def in_process_relay(tmp_path: Path, **overrides: Any) -> AsyncIterator[RelayHandle]:
    """Like the ``relay`` fixture, with settings of the test's choosing."""
    handle = RelayHandle(Relay(relay_config(tmp_path, **overrides)))
    await handle.relay.start()
    try:
        yield handle
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "collab_lsp.relay.cli", *args]


def cli_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_RELAY_")}
    env.update(variables)
    return env


class RelayProcess:
    """`collab-relay serve --port 0` in a subprocess; ready once it prints its URL."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, secret: str | None) -> None:
        self.process = process
        self.url = url
        self.secret = secret
        self.clients: list[Client] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def http(self) -> str:
        return self.url.replace("ws://", "http://")

    def token(self, session_id: str | None, user: str, role: Role | str = Role.EDITOR) -> str:
        assert self.secret is not None, "start the relay with a secret to mint tokens"
        return Authenticator(self.secret).issue(
            sub=user,
            name=user,
            sid=session_id,
            role=Role(role) if session_id is not None else None,
            kind=ParticipantKind.HUMAN,
        )

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
        websocket = await websockets.connect(
            f"{self.url}/ws/session/{session_id}?token={token}{query}"
        )
        client = Client(websocket)
        self.clients.append(client)
        client.connected = await client.expect("connected")
        return client

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.process.returncode is None:
            os.kill(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)

    async def close(self) -> None:
        for client in self.clients:
            await client.ws.close()
        self.kill()
        await self.wait()


async def start_relay_process(
    db: Path,
    *,
    secret: str | None = SECRET,
    env: dict[str, str] | None = None,
    stderr: Path | None = None,
) -> RelayProcess:
    args = ["serve", "--port", "0", "--db", str(db)]
    if secret is not None:
        args += ["--secret", secret]
    log_path = stderr or db.with_suffix(".stderr.log")
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        process = await asyncio.create_subprocess_exec(
            *cli_command(*args),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=cli_env(**(env or {})),
        )
    finally:
        os.close(log)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
        assert line.startswith(READY_PREFIX), (
            f"relay did not start: {line!r}\n{log_path.read_text()}"
        )
        return RelayProcess(process, line.removeprefix(READY_PREFIX).strip(), secret)
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise


@contextlib.asynccontextmanager
async def relay_process(db: Path, **kwargs: Any) -> AsyncIterator[RelayProcess]:
    """A relay subprocess that is always killed at the end."""
    relay = await start_relay_process(db, **kwargs)
    try:
        yield relay
    finally:
        await relay.close()


async def create_session(db: Path, title: str = "Pairing", host: str = "alice") -> str:
    """Create a session straight in the SQLite file (as `collab-relay session create` does)."""
    store = SqliteStore(str(db))
    await store.open()
    try:
        session = await store.create_session(
            title=title, host_id=host, host_name=host, host_kind=ParticipantKind.HUMAN
        )
        return session.id
    finally:
        await store.close()


# -- frames ---------------------------------------------------------------------------------


def is_durable(frame: dict[str, Any]) -> bool:
    return "seq" in frame and frame["type"] not in NOT_DURABLE


async def next_durable(
    client: Client, skipped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The next durable event this client receives; presence, pongs and replies before it
    are dropped, or kept in ``skipped``."""
    while True:
        frame = await client.recv()
        if is_durable(frame):
            return frame
        if skipped is not None:
            skipped.append(frame)


async def until_pong(client: Client) -> list[dict[str, Any]]:
    """Ping, and return every frame that arrived before the pong (inbox included)."""
    ref = f"barrier-{id(client)}-{len(client.inbox)}"
    await client.send({"type": "ping", "id": ref})
    frames, client.inbox = client.inbox, []
    while True:
        frame = await client.recv()
        if frame["type"] == "pong" and frame.get("ref") == ref:
            return frames
        frames.append(frame)


async def read_until_closed(client: Client) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame left, then the close code the relay sent."""
    frames, client.inbox = client.inbox, []
    while True:
        try:
            raw = await asyncio.wait_for(client.ws.recv(), TIMEOUT)
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None
        frames.append(json.loads(raw))


async def wait_until(check: Callable[[], bool], observer: Client) -> None:
    """Wait (through ping round trips, never sleeps) until ``check()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        observer.inbox.extend(await until_pong(observer))


async def connect_stalled(url: str, receive_buffer: int = 4096) -> Client:
    """A client that reads its ``connected`` frame, then nothing: its transport is paused,
    its kernel receive buffer tiny. ``client.ws.transport.resume_reading()`` wakes it."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    websocket = await websockets.connect(url, sock=sock, max_queue=1)
    client = Client(websocket)
    client.connected = await client.expect("connected")
    websocket.transport.pause_reading()
    return client
