"""Redis or PostgreSQL going away under running relays, and coming back.

The shared services are never touched: Redis here is a private `redis-server` on a free
port, and PostgreSQL is reached through a TCP proxy the test cuts and restores.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from collab_lsp.client.client import RelayClient
from collab_lsp.protocol.permissions import Role
from tests.helpers import TIMEOUT, Client
from tests.relay.test_metrics_http import scrape
from tests.scaleout.cluster import Cluster, until_health
from tests.services import dsn_through, postgres_proxy, private_redis


async def refused_until_back(client: Client, content: str) -> dict[str, object]:
    """Send a chat message; it must be refused as not stored (not acknowledged)."""
    reply = await client.request({"type": "chat_message", "content": content})
    assert reply["type"] == "error", f"acknowledged what it could not share: {reply}"
    assert reply["error_code"] == "STORE_UNAVAILABLE", reply
    return reply


async def test_redis_restarted_mid_session(group: Cluster, tmp_path: Path) -> None:
    async with private_redis(tmp_path) as redis:
        group.redis_url = redis.url
        one, two = await group.start(), await group.start()
        session_id = await group.create_session()
        alice = await one.join(session_id, "alice", Role.HOST)
        bob = await two.join(session_id, "bob")
        ack = await alice.request({"type": "chat_message", "id": "before", "content": "before"})
        assert ack["type"] == "ack"
        await bob.expect("chat_message", id=ack["id"])

        await redis.stop()
        for relay in (one, two):
            body = await until_health(relay, 503)
            assert "Redis" in body
        down = await alice.expect("service_status", timeout=TIMEOUT * 2)
        assert down["available"] is False and "Redis" in down["reason"]
        await refused_until_back(alice, "during")

        await redis.start()  # the same port, and empty: Redis keeps nothing on disk here
        for relay in (one, two):
            assert await until_health(relay, 200) == "ok\n"
        up = await alice.expect("service_status", available=True, timeout=TIMEOUT * 2)
        assert "reason" not in up

        ack = await alice.request({"type": "chat_message", "id": "after", "content": "after"})
        assert ack["type"] == "ack", ack
        after = await bob.expect("chat_message", id=ack["id"])
        assert after["seq"] == ack["seq"]
        # The outage shows in /metrics: both relays counted failures against Redis.
        for relay in (one, two):
            assert (await scrape(relay))["collab_broker_failures_total"] >= 1
        # Presence crosses relays again, and the registry was rebuilt: a newcomer sees both.
        await bob.send({"type": "cursor_update", "data": {"file": "a.py", "line": 2, "column": 1}})
        moved = await alice.expect("presence_update", user_id="bob")
        assert moved["presence"]["cursor"]["line"] == 2
        carol = await one.join(session_id, "carol")
        online = {p["id"] for p in carol.connected["participants"] if p["online"]}  # type: ignore[index]
        assert online == {"alice", "bob", "carol"}


async def test_postgres_unavailable_then_back(group: Cluster) -> None:
    proxy = postgres_proxy()
    await proxy.start()
    try:
        group.database_url = dsn_through(proxy)
        one, two = await group.start(), await group.start()
        session_id = await group.create_session()
        alice = await one.join(session_id, "alice", Role.HOST)
        bob = await two.join(session_id, "bob")
        # An editor's client (RelayClient, as in the sidecar) on the other relay.
        erin = RelayClient(two.url, two.token(session_id, "erin"), session_id=session_id)
        await erin.start()
        acked = []
        for n in range(3):
            ack = await alice.request({"type": "chat_message", "content": f"m{n}"})
            acked.append(ack["id"])

        await proxy.cut()
        await refused_until_back(alice, "while the database is away")
        # The client keeps what the relay could not store and sends it when it can.
        held = asyncio.create_task(erin.request({"type": "chat_message", "content": "held"}))
        for relay in (one, two):
            body = await until_health(relay, 503)
            assert "database" in body
        down = await bob.expect("service_status", timeout=TIMEOUT * 2)
        assert down["available"] is False

        await proxy.start()  # the same port again
        for relay in (one, two):
            await until_health(relay, 200)
        try:
            await alice.expect("service_status", available=True, timeout=TIMEOUT * 2)
        except TimeoutError:
            raise AssertionError(f"{alice.inbox}\n{group.logs()}") from None
        held_ack = await asyncio.wait_for(held, TIMEOUT)
        acked.append(held_ack["id"])
        await bob.expect("chat_message", id=held_ack["id"])
        ack = await alice.request({"type": "chat_message", "content": "back"})
        assert ack["type"] == "ack", ack
        acked.append(ack["id"])
        await bob.expect("chat_message", id=ack["id"])

        # Nothing acknowledged was lost: a newcomer's snapshot has every message, once.
        carol = await two.join(session_id, "carol")
        stored = [m["id"] for m in carol.connected["messages"] if m["message_type"] == "chat"]  # type: ignore[index]
        assert stored == acked
        await erin.close()
    finally:
        await proxy.cut()


async def test_relay_refuses_redis_without_a_shared_database(tmp_path: Path) -> None:
    from tests.relay.relay_process import cli_command, cli_env

    process = await asyncio.create_subprocess_exec(
        *cli_command("serve", "--port", "0", "--db", str(tmp_path / "x.db")),
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        env=cli_env(COLLAB_RELAY_REDIS_URL="redis://127.0.0.1:6379/0"),
    )
    _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 2
    message = stderr.decode()
    assert "redis_url is set but database_url is not" in message
    assert "SQLite" in message and "--database-url" in message


async def test_an_unreachable_redis_stops_the_relay_with_a_clear_error(group: Cluster) -> None:
    from tests.services import free_port

    group.redis_url = f"redis://127.0.0.1:{free_port()}/0"
    try:
        await group.start()
    except AssertionError as failure:
        assert "cannot connect to Redis at redis://127.0.0.1:" in str(failure)
    else:
        raise AssertionError("the relay started without Redis")
