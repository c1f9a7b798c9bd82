"""What only the Postgres store has to do: share one database between several relays.

Two PostgresStores on one schema stand for two relay processes behind a load balancer.
The "database down" tests put a real TCP proxy between the store and the real server and
stop it, as a network partition or a restarting server would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.models import MessageType, ParticipantKind
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.store import CommittedEvent, PostgresStore, StoreUnavailable
from collab_lsp.relay.store.pg_schema import MIGRATIONS
from tests.relay.store.conftest import PG_DSN, MakePostgres
from tests.relay.store.test_contract import chat, new_session
from tests.services import TcpProxy, dsn_through, postgres_proxy


async def test_two_relays_writing_to_one_session_share_one_gap_free_seq(
    make_postgres: MakePostgres,
) -> None:
    one, two = make_postgres(), make_postgres()
    await asyncio.gather(one.open(), two.open())
    assert one.epoch == two.epoch
    seen: dict[str, list[CommittedEvent]] = {"one": [], "two": []}
    one.add_listener(seen["one"].append)
    two.add_listener(seen["two"].append)
    session_id = await new_session(one, "bob")

    via = [one if i % 2 else two for i in range(80)]
    events = await asyncio.gather(
        *(
            store.add_message(session_id, "bob" if i % 3 else "alice", f"c-{i}", chat(f"m{i}"))
            for i, store in enumerate(via)
        )
    )
    seqs = sorted(event.seq for event in events)
    assert seqs == list(range(3, 83))  # gap-free, no duplicates
    logged = await two.events_after(session_id, 0, 1000)
    assert [seq for seq, _ in logged] == list(range(1, 83))
    assert await one.last_seq(session_id) == await two.last_seq(session_id) == 82
    # Each relay's listeners saw exactly its own writes, in increasing seq order.
    for name, store in (("one", one), ("two", two)):
        mine = sorted(e.seq for e, used in zip(events, via, strict=True) if used is store)
        assert [e.seq for e in seen[name] if e.type == "chat_message"] == mine
    messages, more = await one.messages_before(session_id, None, 100)
    assert not more and [m.seq for m in messages] == list(range(3, 83))


async def test_one_client_id_sent_to_two_relays_at_once_is_applied_once(
    make_postgres: MakePostgres,
) -> None:
    one, two = make_postgres(), make_postgres()
    await one.open()
    await two.open()
    session_id = await new_session(one, "bob")
    for i in range(10):
        first, second = await asyncio.gather(
            one.add_message(session_id, "bob", f"c-{i}", chat("once")),
            two.add_message(session_id, "bob", f"c-{i}", chat("once")),
        )
        assert first.seq == second.seq and first.event_id == second.event_id
        assert sorted([first.duplicate, second.duplicate]) == [False, True]
    assert await one.last_seq(session_id) == 12


async def test_migrations_run_once_when_relays_start_together(
    make_postgres: MakePostgres, pg_schema: str
) -> None:
    stores = [make_postgres() for _ in range(5)]
    await asyncio.gather(*(store.open() for store in stores))
    assert len({store.epoch for store in stores}) == 1
    secrets = await asyncio.gather(*(store.relay_secret() for store in stores))
    assert len(set(secrets)) == 1
    admin = await asyncpg.connect(PG_DSN)
    try:
        applied = await admin.fetch(f'SELECT version FROM "{pg_schema}".schema_migrations')
        version = await admin.fetchval(
            f"SELECT value FROM \"{pg_schema}\".meta WHERE key = 'schema_version'"
        )
    finally:
        await admin.close()
    assert [row["version"] for row in applied] == list(range(1, len(MIGRATIONS) + 1))
    assert version == str(len(MIGRATIONS))
    # And a later start finds nothing to do.
    late = make_postgres()
    await late.open()
    assert late.epoch == stores[0].epoch


async def test_a_newer_schema_is_refused(make_postgres: MakePostgres, pg_schema: str) -> None:
    store = make_postgres()
    await store.open()
    await store.close()
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(
            f"UPDATE \"{pg_schema}\".meta SET value = '99' WHERE key = 'schema_version'"
        )
    finally:
        await admin.close()
    with pytest.raises(StoreUnavailable, match="schema version 99 is newer than this relay"):
        await make_postgres().open()


async def test_schemas_keep_deployments_apart(make_postgres: MakePostgres) -> None:
    mine = make_postgres()
    await mine.open()
    session_id = await new_session(mine)
    admin = await asyncpg.connect(PG_DSN)
    other_schema = f"{mine.schema}_other"
    try:
        other = make_postgres(schema=other_schema)
        await other.open()
        assert other.epoch != mine.epoch
        assert await other.list_sessions() == []
        assert await other.get_session(session_id) is None
        assert [s.id for s in await mine.list_sessions()] == [session_id]
        await other.close()
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{other_schema}" CASCADE')
        await admin.close()


def test_a_schema_name_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="schema name"):
        PostgresStore(PG_DSN, schema='x"; DROP TABLE users; --')


# -- the database goes away ---------------------------------------------------------------------


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    forwarder = postgres_proxy()
    await forwarder.start()
    yield forwarder
    await forwarder.cut()


async def test_an_unreachable_database_is_a_clear_store_unavailable() -> None:
    store = PostgresStore("postgresql://relay:hunter2@127.0.0.1:1/collab", schema="x", timeout=2)
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    message = str(info.value)
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1/collab schema x: ")
    assert "hunter2" not in message
    assert not store.healthy


async def test_losing_the_database_makes_the_store_unhealthy_until_it_is_back(
    make_postgres: MakePostgres, proxy: TcpProxy
) -> None:
    store = make_postgres(dsn_through(proxy), timeout=2)
    await store.open()
    session_id = await new_session(store)
    assert store.healthy

    await proxy.cut()
    with pytest.raises(StoreUnavailable, match="is unavailable"):
        await store.add_message(session_id, "alice", "c-lost", chat("into the void"))
    assert not store.healthy
    with pytest.raises(StoreUnavailable, match="is unavailable"):
        await store.get_session(session_id)
    assert not store.healthy

    await proxy.start()  # the same port again
    event = await store.add_message(session_id, "alice", "c-lost", chat("into the void"))
    assert store.healthy
    assert event.seq == 2 and not event.duplicate  # the failed attempt committed nothing


async def test_a_comment_filter_reads_the_stored_json(make_postgres: MakePostgres) -> None:
    store = make_postgres()
    await store.open()
    session_id = await new_session(store)
    await store.add_message(
        session_id,
        "alice",
        None,
        {
            "message_type": MessageType.COMMENT,
            "content": 'quote " and ünïcode',
            "mentions": [],
            "file": "docs/naïve file.md",
            "line": 1,
        },
    )
    page, _ = await store.comments_after(session_id, 0, 5, file="docs/naïve file.md")
    assert [m.content for m in page] == ['quote " and ünïcode']
    record, _ = await store.join(
        session_id,
        user_id="bot",
        username="Bot",
        kind=ParticipantKind.AGENT,
        role=Role.VIEWER,
        announce=False,
    )
    assert record.kind is ParticipantKind.AGENT


async def test_writes_waiting_on_a_session_share_one_commit(make_postgres: MakePostgres) -> None:
    store = make_postgres()
    await store.open()
    seen = []
    store.add_listener(seen.append)
    session_id = await new_session(store, "bob")
    commits = store.commits
    events = await asyncio.gather(
        *(store.add_message(session_id, "bob", f"c-{i}", chat(f"m{i}")) for i in range(20))
    )
    # The first commits alone; the 19 queued behind it on the session's lock, together.
    assert store.commits - commits == 2
    assert [event.seq for event in events] == list(range(3, 23))
    assert [event.seq for event in seen[-20:]] == list(range(3, 23))


async def test_a_refusal_in_a_shared_commit_costs_only_its_own_write(
    make_postgres: MakePostgres,
) -> None:
    store = make_postgres()
    await store.open()
    session_id = await new_session(store, "bob")
    first = await store.add_message(session_id, "bob", "c-0", chat("first"))
    texts = ["a", "b", "reply to nothing", "first again", "c"]
    results = await asyncio.gather(
        store.add_message(session_id, "bob", "c-1", chat("a")),
        store.add_message(session_id, "bob", "c-2", chat("b")),
        store.add_message(session_id, "bob", "c-3", chat("x", parent_id="m_nothere")),
        store.add_message(session_id, "bob", "c-0", chat("first")),
        store.add_message(session_id, "bob", "c-4", chat("c")),
        return_exceptions=True,
    )
    assert len(results) == len(texts)
    refused = results[2]
    assert isinstance(refused, ProtocolError) and refused.code is ErrorCode.NOT_FOUND
    resent = results[3]
    assert isinstance(resent, CommittedEvent) and resent.duplicate and resent.seq == first.seq
    stored = [results[0], results[1], results[4]]
    assert all(isinstance(e, CommittedEvent) and not e.duplicate for e in stored)
    assert [e.seq for e in stored if isinstance(e, CommittedEvent)] == [
        first.seq + 1,
        first.seq + 2,
        first.seq + 3,
    ]
    assert await store.last_seq(session_id) == first.seq + 3


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (yields, no timed sleep)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the store never got there")


async def one_committing_two_waiting(
    make_postgres: MakePostgres,
) -> tuple[PostgresStore, str, list[asyncio.Future[CommittedEvent]]]:
    """Three writes to one session: c-0 committing, c-1 and c-2 queued on its lock."""
    store = make_postgres()
    await store.open()
    session_id = await new_session(store, "bob")
    writes = [
        asyncio.ensure_future(store.add_message(session_id, "bob", f"c-{i}", chat(f"m{i}")))
        for i in range(3)
    ]
    await until(lambda: len(store._appends.get(session_id, ())) == 2)
    return store, session_id, writes


async def test_a_write_cancelled_while_it_waits_for_its_turn_is_never_made(
    make_postgres: MakePostgres,
) -> None:
    store, session_id, writes = await one_committing_two_waiting(make_postgres)
    writes[2].cancel()
    first, second = await asyncio.gather(writes[0], writes[1])
    assert writes[2].cancelled()
    assert second.seq == first.seq + 1
    assert await store.last_seq(session_id) == second.seq
    assert await store.find_client_event(session_id, "bob", "c-2") is None


async def test_nothing_queued_behind_the_end_of_a_session_is_stored(
    make_postgres: MakePostgres,
) -> None:
    store = make_postgres()
    await store.open()
    session_id = await new_session(store, "bob")
    results = await asyncio.gather(
        store.add_message(session_id, "bob", "c-1", chat("first")),  # commits alone
        store.add_message(session_id, "bob", "c-2", chat("before the end")),
        store.end_session(session_id, "alice", "end-1"),
        store.add_message(session_id, "bob", "c-3", chat("too late")),
        return_exceptions=True,
    )
    first, before, ended, late = results
    assert isinstance(first, CommittedEvent) and isinstance(before, CommittedEvent)
    assert isinstance(ended, CommittedEvent) and ended.type == "session_ended"
    assert (before.seq, ended.seq) == (first.seq + 1, first.seq + 2)
    assert isinstance(late, ProtocolError) and late.code is ErrorCode.SESSION_ENDED
    assert await store.last_seq(session_id) == ended.seq


async def test_a_batch_of_messages_to_a_session_ended_elsewhere_is_refused_whole(
    make_postgres: MakePostgres,
) -> None:
    here, elsewhere = make_postgres(), make_postgres()
    await asyncio.gather(here.open(), elsewhere.open())
    session_id = await new_session(here, "bob")
    ended = await elsewhere.end_session(session_id, "alice", "end-1")
    results = await asyncio.gather(
        *(here.add_message(session_id, "bob", f"c-{i}", chat(f"m{i}")) for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, ProtocolError) and r.code is ErrorCode.SESSION_ENDED for r in results)
    assert await here.last_seq(session_id) == ended.seq


async def test_a_write_cancelled_after_its_batch_started_is_committed_with_it(
    make_postgres: MakePostgres,
) -> None:
    store, session_id, writes = await one_committing_two_waiting(make_postgres)
    await writes[0]
    # On release, the next holder takes c-1 and c-2 off the queue and starts committing.
    await until(lambda: session_id not in store._appends)
    writes[2].cancel()
    second = await writes[1]
    assert writes[2].cancelled()
    stored = await store.find_client_event(session_id, "bob", "c-2")
    assert stored is not None and stored.seq == second.seq + 1
    assert await store.last_seq(session_id) == stored.seq
