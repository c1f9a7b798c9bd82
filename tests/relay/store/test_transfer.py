"""Moving a team's history between stores: export, import, migrate, on real databases.

A SQLite store gets a real history through the Store API; it is exported, imported into a
fresh PostgreSQL schema, and every read then returns the same on both. A token minted
before the move joins a relay on the new store, and a sidecar resumes by (epoch, seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.models import ParticipantKind
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.auth import Authenticator
from collab_lsp.relay.server import Relay
from collab_lsp.relay.store import PostgresStore, SqliteStore, Store, StoreUnavailable
from collab_lsp.relay.store.schema import MIGRATIONS as SQLITE_MIGRATIONS
from collab_lsp.relay.store.sqlite import _statements as _sqlite_statements
from collab_lsp.relay.store.transfer import (
    StoreLocation,
    TransferError,
    export_store,
    export_to_file,
    import_store,
    latest_schema_version,
    migrate,
    schema_version,
)
from tests.helpers import TIMEOUT, RelayHandle, relay_config
from tests.relay.relay_process import next_durable
from tests.relay.store.conftest import PG_DSN, MakePostgres
from tests.relay.store.test_contract import chat, comment

HUMAN = ParticipantKind.HUMAN
AGENT = ParticipantKind.AGENT
RELAY = str(Path(sys.executable).parent / "collab-relay")


# -- a real history ---------------------------------------------------------------------------


class History:
    """What a history holds, so reads can be compared by every id it made."""

    def __init__(self) -> None:
        self.sessions: list[str] = []
        self.invites: list[str] = []
        self.client_ids: list[tuple[str, str, str]] = []  # (session, user, client id)
        self.files = ["src/app.py", "README.md", "src/nowhere.py"]


async def join(store: Store, session_id: str, user: str, role: Role, kind: Any = HUMAN) -> None:
    await store.join(
        session_id, user_id=user, username=user.title(), kind=kind, role=role, announce=True
    )


async def say(
    store: Store, history: History, session_id: str, user: str, client_id: str | None, body: Any
) -> str:
    event = await store.add_message(session_id, user, client_id, body)
    if client_id is not None:
        history.client_ids.append((session_id, user, client_id))
    return event.event_id


async def build_history(store: Store) -> History:
    """Sessions, joins, chat, comment threads, reactions, edits, deletes, roles, invites."""
    history = History()
    main = await store.create_session(
        title="Pairing", host_id="alice", host_name="Alice", host_kind=HUMAN
    )
    history.sessions.append(main.id)
    sid = main.id
    await join(store, sid, "alice", Role.HOST)
    # Joined in reverse name order, so listing order cannot come from names.
    await join(store, sid, "zoe", Role.EDITOR)
    await join(store, sid, "bob", Role.EDITOR)
    await join(store, sid, "claude", Role.EDITOR, kind=AGENT)
    await join(store, sid, "dave", Role.VIEWER)

    hello = await say(store, history, sid, "alice", "c-1", chat("hello @bob", mentions=["bob"]))
    answer = await say(store, history, sid, "bob", "c-2", chat("hi!", parent_id=hello))
    await say(store, history, sid, "zoe", None, chat('ünïcödé ✓ and "quotes"\nnew line'))
    doomed = await say(store, history, sid, "zoe", "c-3", chat("to be deleted by the host"))
    thread = await say(store, history, sid, "alice", "c-4", comment("why a loop?", line=3))
    await say(store, history, sid, "bob", None, comment("faster", parent_id=thread))
    await say(store, history, sid, "claude", "c-5", comment("agreed", parent_id=thread))
    other = await say(
        store, history, sid, "zoe", None, comment("typo", file="README.md", line=1, end_line=2)
    )

    await store.react(sid, "bob", "c-6", hello, "👍", True)
    await store.react(sid, "zoe", None, hello, "👍", True)
    await store.react(sid, "zoe", None, thread, "🎉", True)
    await store.react(sid, "zoe", None, thread, "🎉", False)
    await store.react(sid, "alice", None, other, "👀", True)
    history.client_ids.append((sid, "bob", "c-6"))
    await store.edit_message(sid, "alice", "c-7", hello, "hello @bob (edited)")
    history.client_ids.append((sid, "alice", "c-7"))
    await store.delete_message(sid, "bob", None, answer)
    await store.delete_message(sid, "alice", None, doomed, moderator=True)
    await store.set_resolved(sid, "alice", "c-8", thread, True)
    history.client_ids.append((sid, "alice", "c-8"))
    await store.set_resolved(sid, "zoe", None, other, True)
    await store.set_resolved(sid, "zoe", None, other, False)
    await store.change_role(sid, "alice", None, "zoe", Role.VIEWER)
    await store.change_role(sid, "alice", None, "dave", Role.EDITOR)
    await store.remove_user(sid, "alice", None, "dave")
    await store.leave(sid, "bob", "left")
    await store.update_session(
        sid, "alice", None, {"title": "Pairing, day 2", "token_count": 1234, "health_score": 87.5}
    )

    used = await store.create_invite(
        session_id=sid, role=Role.EDITOR, created_by="alice", ttl_seconds=3600, max_uses=3
    )
    await store.redeem_invite(used.id)
    revoked = await store.create_invite(
        session_id=sid, role=Role.VIEWER, created_by="alice", ttl_seconds=60, max_uses=1
    )
    await store.revoke_invite(sid, revoked.id)
    history.invites += [used.id, revoked.id]

    ended = await store.create_session(
        title="Yesterday", host_id="bob", host_name="Bob", host_kind=HUMAN
    )
    history.sessions.append(ended.id)
    await join(store, ended.id, "bob", Role.HOST)
    await join(store, ended.id, "alice", Role.EDITOR)
    await say(store, history, ended.id, "alice", "c-1", chat("same client id, other session"))
    await store.end_session(ended.id, None, None)

    quiet = await store.create_session(
        title="Nothing yet", host_id="carol", host_name="Carol", host_kind=HUMAN
    )
    history.sessions.append(quiet.id)
    return history


async def read_everything(store: Store, history: History) -> dict[str, Any]:
    """Every read the relay makes, over every session, message, invite and client id."""
    reads: dict[str, Any] = {
        "sessions": await store.list_sessions(),
        "secret": await store.relay_secret(),
        "epoch": store.epoch,
        "invites": [await store.get_invite(invite) for invite in history.invites],
        "client_ids": [await store.find_client_event(*key) for key in history.client_ids],
    }
    for sid in history.sessions:
        participants = await store.list_participants(sid)
        messages, more = await store.messages_before(sid, None, 1000)
        last = await store.last_seq(sid)
        reads[sid] = {
            "session": await store.get_session(sid),
            "participants": participants,
            "each_participant": [await store.get_participant(sid, p.user_id) for p in participants],
            "messages": (messages, more),
            "each_message": [await store.get_message(sid, m.id) for m in messages],
            "page": await store.messages_before(sid, last, 3),
            "comments": await store.comments_after(sid, 0, 1000),
            "comment_page": await store.comments_after(sid, 2, 2),
            "by_file": [await store.comments_after(sid, 0, 100, file) for file in history.files],
            "events": await store.events_after(sid, 0, 100_000),
            "events_later": await store.events_after(sid, 5, 3),
            "first_event_seq": await store.first_event_seq(sid),
            "last_seq": last,
            "snapshot": await store.snapshot(sid, 50),
            "small_snapshot": await store.snapshot(sid, 2),
        }
    return reads


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


async def sqlite_with_history(path: Path) -> tuple[History, dict[str, Any]]:
    """A SQLite file with a real history (closed again), and what its reads return."""
    store = SqliteStore(str(path))
    await store.open()
    try:
        history = await build_history(store)
        return history, await read_everything(store, history)
    finally:
        await store.close()


async def postgres_counts(schema: str) -> dict[str, int]:
    admin = await asyncpg.connect(PG_DSN)
    try:
        return {
            table: await admin.fetchval(f'SELECT COUNT(*) FROM "{schema}".{table}')
            for table in (
                "users",
                "sessions",
                "session_participants",
                "session_messages",
                "session_events",
                "invites",
            )
        }
    finally:
        await admin.close()


# -- SQLite to PostgreSQL, and back ---------------------------------------------------------


async def test_sqlite_history_moves_to_postgres_and_every_read_is_the_same(
    tmp_path: Path, pg_schema: str, make_postgres: MakePostgres
) -> None:
    history, before = await sqlite_with_history(tmp_path / "team.db")
    dump = tmp_path / "team.jsonl"
    exported = await export_to_file(StoreLocation.sqlite(str(tmp_path / "team.db")), str(dump))
    assert exported.counts["session"] == 3 and exported.counts["event"] > 30

    header = json.loads(lines_of(dump)[0])
    assert header["format"] == "collab-relay-export" and header["version"] == 1
    assert header["source"] == "sqlite"
    assert header["schema_version"] == latest_schema_version("sqlite") == len(SQLITE_MIGRATIONS)
    assert header["counts"] == exported.counts
    assert len(lines_of(dump)) == 1 + sum(exported.counts.values())

    imported = await import_store(
        StoreLocation.postgres(PG_DSN, pg_schema), lines_of(dump), new_epoch=False
    )
    assert imported.counts == exported.counts
    assert imported.epoch == before["epoch"] and imported.secret_kept

    postgres = make_postgres()
    await postgres.open()
    after = await read_everything(postgres, history)
    for key in before:
        assert after[key] == before[key], key
    assert after == before

    # The moved sessions go on from their last seq: nothing collides with the old log.
    sid = history.sessions[0]
    event = await postgres.add_message(sid, "alice", "c-1", chat("not applied twice"))
    assert event.duplicate  # client ids kept their dedupe records
    event = await postgres.add_message(sid, "alice", "c-new", chat("after the move"))
    assert event.seq == before[sid]["last_seq"] + 1
    with pytest.raises(ProtocolError) as refused:
        await postgres.add_message(history.sessions[1], "alice", None, chat("ended"))
    assert refused.value.code is ErrorCode.SESSION_ENDED


async def test_postgres_history_moves_to_sqlite_and_every_read_is_the_same(
    tmp_path: Path, make_postgres: MakePostgres, pg_schema: str
) -> None:
    postgres = make_postgres()
    await postgres.open()
    history = await build_history(postgres)
    before = await read_everything(postgres, history)
    dump = tmp_path / "team.jsonl"
    await export_to_file(StoreLocation.postgres(PG_DSN, pg_schema), str(dump))
    assert json.loads(lines_of(dump)[0])["source"] == "postgres"

    target = tmp_path / "moved" / "team.db"
    target.parent.mkdir()
    await import_store(StoreLocation.sqlite(str(target)), lines_of(dump))
    sqlite = SqliteStore(str(target))
    await sqlite.open()
    try:
        after = await read_everything(sqlite, history)
    finally:
        await sqlite.close()
    for key in before:
        assert after[key] == before[key], key


async def test_an_export_is_one_snapshot_whatever_is_written_meanwhile(tmp_path: Path) -> None:
    """A session committed while the export runs is not in it: the counts match the rows."""
    source = tmp_path / "team.db"
    await sqlite_with_history(source)

    class Out:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write(self, text: str) -> int:
            if not self.lines:  # the header is out: another writer commits now
                with sqlite3.connect(source) as db:
                    db.execute(
                        "INSERT INTO sessions (id, title, status, host_id, created_at) "
                        "VALUES ('s_late', 'Late', 'active', 'alice', '2030-01-01T00:00:00.000Z')"
                    )
            self.lines.append(text)
            return len(text)

    out = Out()
    summary = await export_store(StoreLocation.sqlite(str(source)), out)  # type: ignore[arg-type]
    assert summary.counts["session"] == 3
    assert len(out.lines) == 1 + sum(summary.counts.values())
    assert not any("s_late" in line for line in out.lines)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in out.lines)


# -- tokens and resuming survive the move ------------------------------------------------------


async def test_a_token_minted_before_the_move_joins_a_relay_on_postgres_and_resumes(
    tmp_path: Path, pg_schema: str
) -> None:
    source = tmp_path / "team.db"
    history, before = await sqlite_with_history(source)
    sid = history.sessions[0]
    # Minted by the old relay (its secret), before the move.
    token = Authenticator(before["secret"]).issue(sub="zoe", name="Zoe", sid=sid, role=Role.EDITOR)
    resume_from = before[sid]["last_seq"] - 4

    dump = tmp_path / "team.jsonl"
    await export_to_file(StoreLocation.sqlite(str(source)), str(dump))
    await import_store(StoreLocation.postgres(PG_DSN, pg_schema), lines_of(dump))

    store = PostgresStore(PG_DSN, schema=pg_schema)
    handle = RelayHandle(Relay(relay_config(tmp_path, db=str(tmp_path / "unused.db")), store=store))
    await handle.relay.start()
    try:
        # A sidecar that had seen up to resume_from comes back with (epoch, seq).
        query = f"&resume_from={resume_from}&epoch={before['epoch']}"
        zoe = await handle.join(sid, "zoe", token=token, query=query)
        assert zoe.connected is not None
        assert zoe.connected["epoch"] == before["epoch"]
        assert zoe.connected["resumed"] is True and zoe.connected["reset"] is False
        assert zoe.connected["you"]["role"] == "viewer"  # the role change moved too
        replayed = [await next_durable(zoe) for _ in range(4)]
        assert replayed == [
            json.loads(wire) for seq, wire in before[sid]["events"] if seq > resume_from
        ]

        # And the history is there for a fresh join, and writes go on from the last seq.
        bob_token = Authenticator(before["secret"]).issue(
            sub="bob", name="Bob", sid=sid, role=Role.EDITOR
        )
        bob = await handle.join(sid, "bob", token=bob_token)
        assert bob.connected is not None
        assert [m["id"] for m in bob.connected["messages"]] == [
            m.id for m in before[sid]["snapshot"].messages
        ]
        ack = await bob.request({"type": "chat_message", "content": "on postgres now"})
        assert ack["type"] == "ack", ack
        assert ack["seq"] > before[sid]["last_seq"]
        heard = await zoe.expect("chat_message", id=ack["id"])
        assert heard["message"]["content"] == "on postgres now"
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()


async def test_a_new_epoch_makes_resuming_clients_reload(tmp_path: Path, pg_schema: str) -> None:
    source = tmp_path / "team.db"
    history, before = await sqlite_with_history(source)
    sid = history.sessions[0]
    dump = tmp_path / "team.jsonl"
    await export_to_file(StoreLocation.sqlite(str(source)), str(dump))
    imported = await import_store(
        StoreLocation.postgres(PG_DSN, pg_schema), lines_of(dump), new_epoch=True
    )
    assert imported.new_epoch and imported.epoch not in (None, before["epoch"])
    assert imported.secret_kept

    store = PostgresStore(PG_DSN, schema=pg_schema)
    handle = RelayHandle(Relay(relay_config(tmp_path, db=str(tmp_path / "unused.db")), store=store))
    await handle.relay.start()
    try:
        assert store.epoch == imported.epoch
        token = Authenticator(before["secret"]).issue(sub="zoe", name="Zoe", sid=sid)
        query = f"&resume_from={before[sid]['last_seq'] - 2}&epoch={before['epoch']}"
        zoe = await handle.join(sid, "zoe", token=token, query=query)
        assert zoe.connected is not None
        assert zoe.connected["resumed"] is False and zoe.connected["reset"] is True
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()


# -- refusals: nothing is half-imported ------------------------------------------------------


async def test_import_into_a_store_that_holds_data_is_refused(
    tmp_path: Path, pg_schema: str, make_postgres: MakePostgres
) -> None:
    source = tmp_path / "team.db"
    await sqlite_with_history(source)
    dump = tmp_path / "team.jsonl"
    await export_to_file(StoreLocation.sqlite(str(source)), str(dump))

    target = make_postgres()
    await target.open()
    existing = await target.create_session(
        title="Already here", host_id="erin", host_name="Erin", host_kind=HUMAN
    )
    epoch, secret = target.epoch, await target.relay_secret()
    with pytest.raises(TransferError, match=r"is not empty \(1 users, 1 sessions"):
        await import_store(StoreLocation.postgres(PG_DSN, pg_schema), lines_of(dump))
    assert [s.id for s in await target.list_sessions()] == [existing.id]
    reopened = make_postgres()
    await reopened.open()
    assert (reopened.epoch, await reopened.relay_secret()) == (epoch, secret)

    # The same for SQLite, and for the store the file came from.
    with pytest.raises(TransferError, match=r"SQLite file .* is not empty"):
        await import_store(StoreLocation.sqlite(str(source)), lines_of(dump))


def _corrupt(lines: list[bytes], kind: str) -> tuple[list[bytes], int, str]:
    """Spoil one line late in the file; return the lines, its number and the expected error."""
    records = [json.loads(line) for line in lines]

    def last(record_type: str) -> int:
        return max(i for i, r in enumerate(records) if r.get("type") == record_type)

    if kind == "wrong type":
        index = last("session")
        records[index]["last_seq"] = "seven"
        expected = "session.last_seq: Input should be a valid integer"
    elif kind == "missing field":
        index = last("invite")
        del records[index]["expires_at"]
        expected = "invite.expires_at: Field required"
    elif kind == "unknown field":
        index = last("participant")
        records[index]["shoe_size"] = 44
        expected = "participant.shoe_size: Extra inputs are not permitted"
    elif kind == "bad enum":
        index = last("participant")
        records[index]["role"] = "admin"
        expected = "participant.role: Input should be 'host', 'editor' or 'viewer'"
    elif kind == "bad timestamp":
        index = last("message")
        records[index]["created_at"] = "yesterday"
        expected = "message.created_at: String should match pattern"
    elif kind == "event data disagrees":
        index = last("event")
        frame = json.loads(records[index]["event_data"])
        frame["seq"] += 1
        records[index]["event_data"] = json.dumps(frame)
        expected = "event: event_data has seq"
    elif kind == "unknown record":
        index = last("event")
        records[index]["type"] = "secret_plans"
        expected = "Input tag 'secret_plans' found using 'type' does not match any of the expected"
    elif kind == "not json":
        index = last("event")
        lines = list(lines)
        lines[index] = lines[index][:40] + b"\n"
        return lines, index + 1, f"line {index + 1}: Invalid JSON"
    elif kind == "parent missing":
        # A reply whose thread is not in the file: the database's foreign key refuses it.
        index = last("message")
        records[index]["parent_id"] = "m_not_there"
        expected = f"the message {records[index]['id']!r} is refused by the database"
    elif kind == "duplicate row":
        index = last("event")
        records.insert(index + 1, dict(records[index]))
        index += 1
        expected = f"the event {records[index]['event_id']!r} is refused by the database"
    else:
        raise AssertionError(kind)
    spoiled = [(json.dumps(record, ensure_ascii=False) + "\n").encode() for record in records]
    return spoiled, index + 1, f"line {index + 1}: {expected}"


@pytest.mark.parametrize(
    "kind",
    [
        "wrong type",
        "missing field",
        "unknown field",
        "bad enum",
        "bad timestamp",
        "event data disagrees",
        "unknown record",
        "not json",
        "parent missing",
        "duplicate row",
    ],
)
async def test_a_corrupted_line_is_refused_by_number_and_nothing_is_imported(
    tmp_path: Path, pg_schema: str, kind: str
) -> None:
    source = tmp_path / "team.db"
    await sqlite_with_history(source)
    dump = tmp_path / "team.jsonl"
    await export_to_file(StoreLocation.sqlite(str(source)), str(dump))
    spoiled, number, expected = _corrupt(lines_of(dump), kind)
    assert number > 10  # rows before it were inserted, and are rolled back

    with pytest.raises(TransferError) as refused:
        await import_store(StoreLocation.postgres(PG_DSN, pg_schema), spoiled)
    assert str(refused.value).startswith(f"line {number}: "), refused.value
    assert expected in str(refused.value), refused.value
    assert set((await postgres_counts(pg_schema)).values()) == {0}

    # SQLite refuses the same line the same way, and is left empty too.
    target = tmp_path / "target.db"
    with pytest.raises(TransferError) as refused:
        await import_store(StoreLocation.sqlite(str(target)), spoiled)
    assert str(refused.value).startswith(f"line {number}: "), refused.value
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM session_events").fetchone() == (0,)


async def test_a_truncated_or_inconsistent_file_is_refused(tmp_path: Path, pg_schema: str) -> None:
    source = tmp_path / "team.db"
    await sqlite_with_history(source)
    dump = tmp_path / "team.jsonl"
    await export_to_file(StoreLocation.sqlite(str(source)), str(dump))
    lines = lines_of(dump)
    target = StoreLocation.postgres(PG_DSN, pg_schema)

    with pytest.raises(TransferError, match=r"holds \d+ invite records \(the header says 2\)"):
        await import_store(target, lines[:-1])
    with pytest.raises(TransferError, match="the file is empty"):
        await import_store(target, [])
    with pytest.raises(TransferError, match="line 1: not a collab-relay export header"):
        await import_store(target, lines[1:])
    newer = json.loads(lines[0])
    newer["version"] = 2
    with pytest.raises(TransferError, match="format version 2 was written by a newer"):
        await import_store(target, [json.dumps(newer).encode(), *lines[1:]])

    # A session whose last_seq is below its log would reuse seqs: refused.
    records = [json.loads(line) for line in lines]
    for record in records:
        if record.get("type") == "session" and record["last_seq"] > 0:
            record["last_seq"] = 1
            break
    with pytest.raises(TransferError, match="has last_seq 1 but session_events holds seq"):
        await import_store(target, [json.dumps(r).encode() for r in records])
    assert set((await postgres_counts(pg_schema)).values()) == {0}


# -- migrations --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str) -> StoreLocation:
    if request.param == "sqlite":
        return StoreLocation.sqlite(str(tmp_path / "relay.db"))
    return StoreLocation.postgres(PG_DSN, pg_schema)


def unopened(location: StoreLocation, *, migrate: bool = True) -> Store:
    if location.kind == "sqlite":
        return SqliteStore(location.path, migrate=migrate)
    return PostgresStore(location.dsn, schema=location.schema, migrate=migrate)


async def test_migrate_reports_versions_and_is_idempotent(location: StoreLocation) -> None:
    latest = latest_schema_version(location.kind)
    assert latest >= 2
    assert await schema_version(location) == 0
    assert await migrate(location) == (0, latest)
    assert await schema_version(location) == latest
    assert await migrate(location) == (latest, latest)
    store = unopened(location)
    await store.open()
    try:
        assert await store.list_sessions() == []
    finally:
        await store.close()
    assert await migrate(location) == (latest, latest)


async def test_migrations_applied_at_once_apply_once(location: StoreLocation) -> None:
    results = await asyncio.gather(*(migrate(location) for _ in range(4)))
    latest = latest_schema_version(location.kind)
    assert sorted(results) == [(0, latest)] + [(latest, latest)] * 3


async def test_a_newer_schema_is_refused_and_left_alone(location: StoreLocation) -> None:
    await migrate(location)
    await _set_schema_version(location, "99")
    with pytest.raises(StoreUnavailable, match="schema version 99 is newer than this relay"):
        await migrate(location)
    with pytest.raises(StoreUnavailable, match="schema version 99 is newer than this relay"):
        await export_store(location, io.StringIO())
    assert await schema_version(location) == 99


async def test_with_auto_migrate_off_an_old_schema_is_refused_until_migrated(
    location: StoreLocation,
) -> None:
    with pytest.raises(StoreUnavailable, match="run `collab-relay migrate`"):
        await unopened(location, migrate=False).open()
    assert await schema_version(location) == 0  # the refusal changed nothing
    assert await migrate(location) == (0, latest_schema_version(location.kind))
    store = unopened(location, migrate=False)
    await store.open()
    try:
        assert store.epoch.startswith("ep_")
    finally:
        await store.close()


async def _set_schema_version(location: StoreLocation, value: str) -> None:
    sql = "UPDATE {}meta SET value = '" + value + "' WHERE key = 'schema_version'"
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as db:
            db.execute(sql.format(""))
        return
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(sql.format(f'"{location.schema}".'))
    finally:
        await admin.close()


# -- the commands, as an operator runs them ---------------------------------------------------


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_RELAY_")}
    env.update({f"COLLAB_RELAY_{key.upper()}": value for key, value in settings.items()})
    return env


async def _run(*args: str, env: dict[str, str], stdin: bytes | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        RELAY,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_export_import_migrate_from_sqlite_to_postgres(
    tmp_path: Path, pg_schema: str
) -> None:
    db = str(tmp_path / "team.db")
    sqlite = _env(db=db)
    postgres = _env(database_url=PG_DSN, database_schema=pg_schema)

    code, out, err = await _run("migrate", env=sqlite)
    assert (code, err) == (0, ""), err
    latest = len(SQLITE_MIGRATIONS)
    assert out == f"SQLite file {db}: schema version 0 -> {latest} ({latest} migrations applied)\n"
    code, out, _ = await _run("migrate", env=sqlite)
    assert code == 0 and f"schema version {latest}, up to date (nothing to do)" in out

    code, out, err = await _run(
        "session", "create", "--title", "Moving", "--host", "alice", env=sqlite
    )
    assert code == 0, err
    session_id = out.split("session: ")[1].split()[0]

    dump = str(tmp_path / "team.jsonl")
    code, out, err = await _run("export", "--output", dump, env=sqlite)
    assert code == 0, err
    assert out.startswith("exported 1 session, 1 participant, 0 messages and comments")
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]  # noqa: ASYNC240

    code, out, err = await _run("migrate", "--check", env=postgres)
    assert code == 1 and f"schema version 0, this collab-relay needs {latest}" in out, out + err
    # With automatic migration off, nothing opens a database whose schema is behind.
    code, out, err = await _run(
        "session", "list", env={**postgres, "COLLAB_RELAY_AUTO_MIGRATE": "false"}
    )
    assert code == 2 and "automatic migration is off" in err and "collab-relay migrate" in err
    code, out, err = await _run("import", "--input", dump, env=postgres)
    assert code == 0, err
    assert f"into PostgreSQL at 127.0.0.1:5432/test schema {pg_schema}" in out
    assert "kept: editors' sidecars resume where they were" in out
    assert "relay secret kept: tokens minted before the move stay valid" in out
    code, out, err = await _run("migrate", env=postgres)
    assert code == 0 and f"schema version {latest}, up to date (nothing to do)" in out, err
    code, out, err = await _run("migrate", "--check", env=postgres)
    assert code == 0 and "up to date" in out, err
    code, out, err = await _run("session", "list", env=postgres)
    assert code == 0 and session_id in out and "Moving" in out, err

    # Once more into the same database: refused, naming why; and a spoiled file too.
    code, out, err = await _run("import", "--input", dump, env=postgres)
    assert code == 2 and "is not empty" in err and "Traceback" not in err
    spoiled = tmp_path / "spoiled.jsonl"
    lines = lines_of(Path(dump))
    spoiled.write_bytes(b"".join([lines[0], lines[1].replace(b'"key"', b'"kee"'), *lines[2:]]))
    code, out, err = await _run(
        "import", "--input", str(spoiled), env=_env(db=str(tmp_path / "x.db"))
    )
    assert code == 2 and "line 2: meta.key: Field required" in err, err
    assert "Traceback" not in err


async def test_cli_export_to_stdout_and_import_from_stdin(tmp_path: Path) -> None:
    source = tmp_path / "team.db"
    _, before = await sqlite_with_history(source)
    code, dump, err = await _run("export", "--output", "-", env=_env(db=str(source)))
    assert code == 0 and err.startswith("exported 3 sessions"), err
    target = str(tmp_path / "copy.db")
    code, out, err = await _run(
        "import", "--input", "-", "--new-epoch", env=_env(db=target), stdin=dump.encode()
    )
    assert code == 0, err
    assert "new epoch ep_" in out
    copy = SqliteStore(target)
    await copy.open()
    try:
        assert copy.epoch != before["epoch"]
        assert await copy.relay_secret() == before["secret"]
        assert await copy.list_sessions() == before["sessions"]
    finally:
        await copy.close()


async def test_a_version_1_database_loses_only_the_unused_seed_indexes(tmp_path: Path) -> None:
    path = str(tmp_path / "v1.db")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        for statement in _sqlite_statements(SQLITE_MIGRATIONS[0]):
            db.execute(statement)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    location = StoreLocation.sqlite(path)
    assert await migrate(location) == (1, len(SQLITE_MIGRATIONS))
    with contextlib.closing(sqlite3.connect(path)) as db:
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
    assert "idx_session_messages" not in indexes and "idx_session_events" not in indexes
    # What the relay reads by (seq, client ids, participants) is still indexed.
    assert {
        "idx_session_messages_seq",
        "idx_session_events_client",
        "idx_session_participants",
    } <= indexes
