"""The SQLite writer's cache of users' names never outlives a change by anyone else."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collab_lsp.protocol.models import ParticipantKind
from collab_lsp.relay.store import SqliteStore
from tests.relay.store.test_contract import chat, new_session


async def test_a_rename_by_another_connection_shows_in_the_next_message(tmp_path: Path) -> None:
    path = str(tmp_path / "relay.db")
    store = SqliteStore(path)
    await store.open()
    try:
        session_id = await new_session(store, "bob")
        before = await store.add_message(session_id, "bob", None, chat("hi"))
        # An operator's tool (or an import) writes the same file through its own connection.
        with sqlite3.connect(path) as other:
            other.execute("UPDATE users SET username = 'Robert' WHERE id = 'bob'")
        after = await store.add_message(session_id, "bob", None, chat("hi again"))
    finally:
        await store.close()
    assert before.frame["message"]["username"] == "Bob"
    assert after.frame["message"]["username"] == "Robert"


async def test_a_rename_rolled_back_with_its_job_is_forgotten(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "relay.db"))
    await store.open()
    try:
        session_id = await new_session(store, "bob")
        await store.add_message(session_id, "bob", None, chat("hi"))

        def rename_then_fail(db: sqlite3.Connection) -> None:
            store._users.upsert(
                db, "bob", "Mallory", kind=ParticipantKind.HUMAN, now="2026-01-01T00:00:00Z"
            )
            raise RuntimeError("the job breaks after the rename")

        with pytest.raises(RuntimeError):
            await store._write(rename_then_fail)
        after = await store.add_message(session_id, "bob", None, chat("still Bob"))
    finally:
        await store.close()
    assert after.frame["message"]["username"] == "Bob"
