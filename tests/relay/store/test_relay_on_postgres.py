"""The whole relay on the Postgres store: two real clients chat through a real relay."""

from __future__ import annotations

from pathlib import Path

from collab_lsp.relay.server import Relay
from collab_lsp.relay.store import PostgresStore
from tests.helpers import RelayHandle, relay_config
from tests.relay.store.conftest import PG_DSN
from tests.relay.test_pipeline import NO_RATE_LIMIT, resends_in_a_burst


async def test_a_chat_round_trip_through_a_relay_on_postgres(
    tmp_path: Path, pg_schema: str
) -> None:
    store = PostgresStore(PG_DSN, schema=pg_schema)
    handle = RelayHandle(Relay(relay_config(tmp_path), store=store))
    await handle.relay.start()
    try:
        session_id = await handle.create_session(title="On Postgres")
        alice = await handle.join(session_id, "alice", "host")
        bob = await handle.join(session_id, "bob", "editor")
        assert alice.connected is not None and alice.connected["epoch"] == store.epoch
        await alice.expect("user_joined")

        ack = await alice.request({"type": "chat_message", "content": "hello from postgres"})
        assert ack["type"] == "ack", ack
        heard = await bob.expect("chat_message", id=ack["id"])
        assert heard["message"]["content"] == "hello from postgres"
        assert heard["seq"] == ack["seq"]

        reply = await bob.request({"type": "chat_message", "content": "hi alice"})
        assert reply["type"] == "ack" and reply["seq"] == ack["seq"] + 1
        heard = await alice.expect("chat_message", id=reply["id"])
        assert heard["message"]["content"] == "hi alice"

        # A resent frame is applied once; history comes from the database.
        resent = await alice.request(
            {"type": "chat_message", "id": ack["ref"], "content": "hello from postgres"}
        )
        assert resent["type"] == "ack" and resent["seq"] == ack["seq"]
        history = await bob.request({"type": "get_history", "limit": 10}, reply="history")
        assert [m["content"] for m in history["messages"]] == ["hello from postgres", "hi alice"]
        assert await store.last_seq(session_id) == reply["seq"]
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()
    assert not store.healthy  # stopped: the relay closed its store


async def test_resends_in_a_burst_are_answered_in_their_place(
    tmp_path: Path, pg_schema: str
) -> None:
    store = PostgresStore(PG_DSN, schema=pg_schema)
    config = relay_config(tmp_path, durable_rate_per_minute=NO_RATE_LIMIT)
    handle = RelayHandle(Relay(config, store=store))
    await handle.relay.start()
    try:
        await resends_in_a_burst(handle)
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()
