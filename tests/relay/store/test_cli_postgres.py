"""`collab-relay` run and administered on PostgreSQL: the same commands, a server database."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import websockets

from tests.helpers import TIMEOUT, Client
from tests.relay.store.conftest import PG_DSN

RELAY = [sys.executable, "-m", "collab_lsp.relay.cli"]


def _env(schema: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_RELAY_")}
    env.update({"COLLAB_RELAY_DATABASE_URL": PG_DSN, "COLLAB_RELAY_DATABASE_SCHEMA": schema})
    return env


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *RELAY, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_serve_and_admin_commands_on_postgres(pg_schema: str) -> None:
    env = _env(pg_schema)
    code, out = await _run(
        "session", "create", "--title", "On Postgres", "--host", "alice", env=env
    )
    assert code == 0, out
    session_id = out.split("session: ")[1].split()[0]
    token = out.split("host token: ")[1].split()[0]
    server = await asyncio.create_subprocess_exec(
        *RELAY, "serve", "--port", "0", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), TIMEOUT)).decode()
        url = line.split()[-1]
        async with websockets.connect(f"{url}/ws/session/{session_id}?token={token}") as ws:
            client = Client(ws)
            connected = await client.expect("connected")
            assert connected["session"]["title"] == "On Postgres"
            assert connected["you"]["role"] == "host"
            ack = await client.request({"type": "chat_message", "content": "stored in postgres"})
            assert ack["type"] == "ack"
        code, out = await _run("session", "list", env=env)
        assert code == 0 and session_id in out and "On Postgres" in out
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), TIMEOUT) == 0


async def test_an_unreachable_database_is_a_clear_error(pg_schema: str) -> None:
    env = _env(pg_schema)
    env["COLLAB_RELAY_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/test"
    code, out = await _run("session", "list", env=env)
    assert code == 2 and "127.0.0.1" in out and "Traceback" not in out
