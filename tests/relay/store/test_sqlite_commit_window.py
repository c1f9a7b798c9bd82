"""SQLite's group commit: lone writes commit at once; under load, writes share commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from collab_lsp.relay.store import CommittedEvent, SqliteStore
from tests.relay.store.test_contract import chat, new_session

MakeSqlite = Callable[[float], SqliteStore]


@pytest.fixture
async def make_sqlite(tmp_path: Path) -> AsyncIterator[MakeSqlite]:
    made: list[SqliteStore] = []

    def make(window: float) -> SqliteStore:
        store = SqliteStore(str(tmp_path / f"relay{len(made)}.db"), commit_window=window)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def _writes_while_one_waits(store: SqliteStore) -> tuple[list[CommittedEvent], int]:
    """Two writes in one commit (load), then one right after it, then two more once the
    writer has picked that one up; returns the last three's events and commits."""
    session_id = await new_session(store, "bob")
    await asyncio.gather(
        *(store.add_message(session_id, "bob", None, chat(text)) for text in ("a", "b"))
    )
    before = store.commits
    first = asyncio.ensure_future(store.add_message(session_id, "bob", None, chat("one")))
    for _ in range(5):  # the writer task takes `first` off its queue
        await asyncio.sleep(0)
    later = [store.add_message(session_id, "bob", None, chat(text)) for text in ("two", "three")]
    events = await asyncio.gather(first, *later)
    return events, store.commits - before


async def test_under_load_writes_wait_to_share_a_commit(make_sqlite: MakeSqlite) -> None:
    store = make_sqlite(0.5)  # ends when "one" has been queued that long, whatever comes
    await store.open()
    events, commits = await asyncio.wait_for(_writes_while_one_waits(store), 30)
    # The three writes queued within the window after the last commit share one commit.
    assert [event.seq for event in events] == [5, 6, 7]
    assert commits == 1


async def test_without_a_window_each_arrival_commits_on_its_own(make_sqlite: MakeSqlite) -> None:
    store = make_sqlite(0.0)
    await store.open()
    _events, commits = await _writes_while_one_waits(store)
    assert commits == 2  # "one" was already committing when "two" and "three" came


async def test_writes_one_at_a_time_commit_at_once(make_sqlite: MakeSqlite) -> None:
    store = make_sqlite(60.0)
    await store.open()
    # Waiting out the 60 s window would fail this bound: writes that come one at a time,
    # each awaited before the next, are never held back.
    session_id = await asyncio.wait_for(new_session(store, "bob", "carol"), 20)
    for text in ("hi", "there"):
        await asyncio.wait_for(store.add_message(session_id, "bob", None, chat(text)), 20)
    assert await store.last_seq(session_id) == 5
