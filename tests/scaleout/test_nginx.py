"""The shipped nginx config (deploy/nginx/collab-relay.conf) in front of two real relays.

The relays here each have their own SQLite file and share only the token secret, which is
all these tests need: either relay accepts any token, and a session created through nginx
lives on the relay that created it. Waiting is for frames and log lines; timeouts only
guard against hangs.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from collab_lsp.relay.server import Relay
from tests.helpers import TIMEOUT, Client, RelayHandle, relay_config
from tests.relay.relay_process import SECRET
from tests.scaleout import nginx as harness
from tests.scaleout.nginx import (
    SHIPPED_CONFIG,
    NginxHandle,
    location_section,
    run_nginx,
    top_level_blocks,
)


@pytest.fixture
async def relays(tmp_path: Path) -> AsyncIterator[list[RelayHandle]]:
    handles: list[RelayHandle] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            handle = RelayHandle(Relay(relay_config(tmp_path / name, secret=SECRET)))
            await handle.relay.start()
            handles.append(handle)
        yield handles
    finally:
        for handle in handles:
            await handle.relay.stop()


@pytest.fixture
async def nginx(relays: list[RelayHandle], tmp_path: Path) -> AsyncIterator[NginxHandle]:
    async with run_nginx([handle.relay.port for handle in relays], tmp_path) as handle:
        yield handle


async def create_session(url: str, token: str, **connect: Any) -> Client:
    """Through ``/ws?token=``: create a session with a team token and join it as host."""
    client = Client(await websockets.connect(f"{url}/ws?token={token}", **connect))
    await client.send({"type": "create_session", "id": "c-1", "title": "Through nginx"})
    await client.expect("session_created")
    client.connected = await client.expect("connected")
    return client


async def join(url: str, session_id: str, token: str) -> Client:
    """Through ``/ws/session/{id}?token=``."""
    client = Client(await websockets.connect(f"{url}/ws/session/{session_id}?token={token}"))
    client.connected = await client.expect("connected")
    return client


def served_by(relays: list[RelayHandle], client: Client) -> RelayHandle:
    """The relay a client landed on: each relay's SQLite store has its own epoch."""
    assert client.connected is not None
    (relay,) = [r for r in relays if r.relay.store.epoch == client.connected["epoch"]]
    return relay


async def http_get(
    port: int, path: str, *, source: str | None = None, tls: ssl.SSLContext | None = None
) -> tuple[int, str, str]:
    """Status, header lines and body of a GET to 127.0.0.1, sent from ``source``."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0) if source else None, ssl=tls
    )
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    writer.write(request.encode())
    response = (await asyncio.wait_for(reader.read(), TIMEOUT)).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split()[1]), head, body


def websocket_request(path: str) -> Callable[[str], bool]:
    """An access-log line of a WebSocket on ``path`` (the format logs $uri, never a query)."""
    return lambda line: f'"GET {path} HTTP/1.1" 101 ' in line


def assert_not_logged(nginx: NginxHandle, tokens: list[str]) -> None:
    logged = nginx.log_text()
    for token in tokens:
        assert token not in logged
    assert "token=" not in logged


# -- through nginx ----------------------------------------------------------------------------


async def test_clients_join_through_nginx_and_spread_over_the_relays(
    relays: list[RelayHandle], nginx: NginxHandle
) -> None:
    tokens = [relays[0].token(None, user, role=None) for user in ("alice", "bob")]
    first = await create_session(nginx.url, tokens[0])
    # least_conn: with the first WebSocket open, the second goes to the other relay.
    second = await create_session(nginx.url, tokens[1])
    landed = [served_by(relays, client).relay.port for client in (first, second)]
    assert sorted(landed) == sorted(handle.relay.port for handle in relays)
    for client in (first, second):
        ack = await client.request({"type": "chat_message", "content": "through nginx"})
        assert ack["type"] == "ack"
        await client.close()

    lines = await nginx.wait_for_access_log(websocket_request("/ws"), count=2)
    assert not any("?" in line for line in lines)
    assert_not_logged(nginx, tokens)


async def test_healthz_is_public_and_metrics_is_for_this_host_only(nginx: NginxHandle) -> None:
    status, _, body = await http_get(nginx.port, "/healthz")
    assert (status, body) == (200, "ok\n")
    status, _, body = await http_get(nginx.port, "/metrics")
    assert status == 200
    assert "# TYPE collab_open_connections gauge" in body
    # Another loopback address stands in for any other host.
    assert (await http_get(nginx.port, "/healthz", source="127.0.0.2"))[0] == 200
    assert (await http_get(nginx.port, "/metrics", source="127.0.0.2"))[0] == 403
    assert (await http_get(nginx.port, "/nope"))[0] == 404


# -- a relay goes away --------------------------------------------------------------------------


async def fail_over(relays: list[RelayHandle], nginx: NginxHandle) -> list[str]:
    """Stop the first relay; new clients reach the second. Returns the tokens they used."""
    stopped, live = relays
    await stopped.relay.stop()
    session_id = await live.create_session()
    tokens = [live.token(session_id, user) for user in ("carol", "dave")]
    # Both stay open: once one WebSocket is on the live relay and none on the stopped one,
    # least_conn picks the stopped one, unless a refused connect has already marked it
    # down. Either way nginx tries it once and moves on to the live relay.
    clients = [await join(nginx.url, session_id, token) for token in tokens]
    tokens.append(live.token(None, "erin", role=None))
    clients.append(await create_session(nginx.url, tokens[-1]))
    for client in clients:
        assert served_by(relays, client) is live
        await client.close()

    dead, alive = f"127.0.0.1:{stopped.relay.port}", f"127.0.0.1:{live.relay.port}"
    lines = await nginx.wait_for_access_log(websocket_request(f"/ws/session/{session_id}"), 2)
    await nginx.wait_for_access_log(websocket_request("/ws"))
    # The access log shows the failover: the stopped relay refused (502), the live one took it.
    assert any(f"upstream={dead}, {alive} ustatus=502, 101 " in line for line in lines)
    return tokens


async def test_a_stopped_relay_is_skipped_and_no_token_is_logged(
    relays: list[RelayHandle], nginx: NginxHandle
) -> None:
    tokens = await fail_over(relays, nginx)
    assert_not_logged(nginx, tokens)


async def test_below_crit_the_error_log_would_carry_the_token(
    relays: list[RelayHandle], tmp_path: Path
) -> None:
    """Why the WebSocket location logs only crit: nginx's error lines quote the request."""

    def error_level(text: str) -> str:
        shipped = "collab-relay.error.log crit;"
        assert text.count(shipped) == 2
        return text.replace(shipped, "collab-relay.error.log error;")

    ports = [handle.relay.port for handle in relays]
    async with run_nginx(ports, tmp_path, edit=error_level) as nginx:
        tokens = await fail_over(relays, nginx)
        errors = nginx.error_log.read_text()
    assert "connect() failed" in errors
    assert any(token in errors for token in tokens)


# -- the shipped file's TLS server ----------------------------------------------------------------


def test_the_tls_and_plain_servers_have_the_same_locations() -> None:
    """Most tests run the plain-HTTP server; this keeps the TLS one from drifting from it."""
    text = SHIPPED_CONFIG.read_text(encoding="utf-8")
    servers = [block for block in top_level_blocks(text) if block.header == "server"]
    assert sorted(block.is_tls for block in servers) == [False, True]
    assert location_section(servers[0]) == location_section(servers[1])


async def test_the_tls_server_serves_wss_with_hsts(
    relays: list[RelayHandle], tmp_path: Path
) -> None:
    ports = [handle.relay.port for handle in relays]
    async with run_nginx(ports, tmp_path, tls=True) as nginx:
        assert nginx.tls_cert is not None and nginx.tls_port is not None
        context = ssl.create_default_context(cafile=nginx.tls_cert)
        token = relays[0].token(None, "frank", role=None)
        client = await create_session(nginx.tls_url, token, ssl=context)
        await client.close()

        status, head, body = await http_get(nginx.tls_port, "/healthz", tls=context)
        assert (status, body) == (200, "ok\n")
        assert "\r\nStrict-Transport-Security: max-age=" in head
        await nginx.wait_for_access_log(websocket_request("/ws"))
        assert_not_logged(nginx, [token])


# -- the harness --------------------------------------------------------------------------------


async def test_a_port_taken_before_nginx_binds_it_is_retried(
    relays: list[RelayHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = harness._free_port
        monkeypatch.setattr(harness, "_free_port", lambda: next(ports, None) or real_free_port())
        async with run_nginx([relays[0].relay.port], tmp_path) as nginx:
            assert nginx.port != taken
            status, _, body = await http_get(nginx.port, "/healthz")
            assert (status, body) == (200, "ok\n")
