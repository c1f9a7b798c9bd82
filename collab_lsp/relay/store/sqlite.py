"""The embedded default store: one SQLite file in WAL mode, written by one task.

Writes are group-committed: the writer task takes every job waiting in its queue,
runs each inside its own savepoint of one transaction, commits once, and only
then resolves the callers (so an ``ack`` always follows the commit that holds the
event). ``synchronous=NORMAL`` survives a killed relay process; ``FULL`` also
survives a power loss, at the price of one fsync per group commit.

Under load (the last commit held several writes and ended less than ``commit_window``
seconds ago) a commit also waits until its first write has been queued that long, so that
more writes share it: small commits cost the most per write (the WAL frames of every page
a commit touched, the hand-off to the writer thread and back: measured, 229 µs of CPU per
chat message one at a time, 92 at 20 a commit, 79 at 100), and the events of one commit
reach each recipient in one socket write. Writes that come one at a time (a lone
caller awaiting each) are committed at once.

Checkpoints (copying the WAL back into the database file) run on a thread of their
own, at most every ``_CHECKPOINT_SECONDS``, so that no group commit, and no ack,
waits for one; the writer checkpoints itself only if the WAL grows far past that.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite
import orjson

from collab_lsp.protocol.codec import format_timestamp, utc_now
from collab_lsp.protocol.colors import color_index
from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.models import (
    Message,
    MessageType,
    ParticipantKind,
    SessionInfo,
    SessionStatus,
)
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.store.base import (
    CommittedEvent,
    InviteRecord,
    OnCommit,
    ParticipantRecord,
    Snapshot,
    StoreUnavailable,
)
from collab_lsp.relay.store.schema import MIGRATIONS

__all__ = [
    "SqliteStore",
    "check_schema_version",
    "migrate_sqlite",
    "new_id",
    "sqlite_schema_version",
    "time_ordered_id",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", sqlite3.Connection, aiosqlite.Connection)
Job = Callable[[sqlite3.Connection], T]

_MAX_BATCH = 512
DEFAULT_COMMIT_WINDOW = 0.004
# Background checkpoints start at most this often, after a commit. The writer's own
# automatic checkpoint (inside a commit) only fires if the WAL outgrows _WAL_PAGES.
# Short, because the commit that restarts the WAL after a complete checkpoint fsyncs it
# (synchronous=NORMAL does that even though it skips the fsync of every other commit),
# which flushes every WAL page written since the last checkpoint synced it. At 0.25 s
# that one commit took 8-16 ms at 5,000 chat messages a second and set the ack p99;
# at 0.05 s it takes 3-5 ms, for no measurable CPU (docs/benchmarks.md, fourth round).
_CHECKPOINT_SECONDS = 0.05
_WAL_PAGES = 8000
_CLIENT_EVENT_SQL = (
    "SELECT event_id, seq, event_type, event_data FROM session_events "
    "WHERE session_id = ? AND user_id = ? AND client_id = ?"
)
_MESSAGE_COLUMNS = (
    "m.id, m.seq, m.message_type, m.user_id, u.username, m.content, m.metadata, "
    "m.parent_id, m.created_at, m.updated_at, m.deleted_at"
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(9)}"


def time_ordered_id(prefix: str) -> str:
    """An id that sorts by creation time (µs, 13 hex digits), then 8 random hex digits.

    For rows keyed by id that arrive all the time (messages): a random key lands on a
    random page of the primary-key index, so every stored message rewrote a page of its
    own; ordered keys share the index's last page. Measured on durable chat at 5,000
    messages a second: a quarter fewer WAL pages written, ack p99 20-31 -> 16-23 ms.
    Unique by the random part: a clash needs the same microsecond and 32 equal bits.
    """
    return f"{prefix}_{time.time_ns() // 1000:013x}{secrets.token_hex(4)}"


def _dumps(value: Any) -> str:
    """Compact JSON, UTF-8 as is (orjson: the writer serialises every event's frame)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson refuses (a lone surrogate, a huge int): as json did
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what only json accepts (NaN, a lone surrogate escape)
        return json.loads(text)


def _checkpoint(db: sqlite3.Connection) -> None:
    """Copy what the WAL holds into the database file, without blocking the writer."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


class _AnswerAfterRollback(Exception):
    """A refused job whose answer is read once its savepoint is rolled back (a resend)."""

    def __init__(self, answer: Callable[[sqlite3.Connection], Any]) -> None:
        super().__init__("answered after rollback")
        self.answer = answer


class _UserNames:
    """Writer-thread cache of users' names, so an appended message needs no lookup.

    Exact, not a guess: this connection's own writes update it, a job that fails clears
    it (its savepoint may have undone a rename), and so does any commit by another
    connection (``PRAGMA data_version``, checked at the start of every batch).
    """

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._data_version: int | None = None

    def check(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._data_version:
            self._names.clear()
            self._data_version = version

    def clear(self) -> None:
        self._names.clear()

    def get(self, db: sqlite3.Connection, user_id: str) -> str:
        name = self._names.get(user_id)
        if name is None:
            row = db.execute("SELECT username FROM users WHERE id = ?", (user_id,)).fetchone()
            if row is None:
                raise ProtocolError(ErrorCode.UNKNOWN_USER, f"{user_id!r} is not a known user")
            name = self._names[user_id] = str(row[0])
        return name

    def upsert(
        self, db: sqlite3.Connection, user_id: str, username: str, kind: ParticipantKind, now: str
    ) -> None:
        db.execute(
            "INSERT INTO users (id, username, kind, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET username = excluded.username, kind = excluded.kind",
            (user_id, username, kind.value, now),
        )
        self._names[user_id] = username


class _Pending:
    __slots__ = ("future", "job", "queued_at")

    def __init__(self, job: Job[Any], future: asyncio.Future[Any], queued_at: float) -> None:
        self.job = job
        self.future = future
        self.queued_at = queued_at


class SqliteStore:
    """SQLite: a writer connection on its own thread, and an aiosqlite reader (WAL).

    Each batch of writes runs as one call on the writer thread (one round trip per
    batch, not per statement), so the event loop is woken once per group commit.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        migrate: bool = True,
        commit_window: float = DEFAULT_COMMIT_WINDOW,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.commit_window = commit_window
        self.commits = 0
        self.committed_writes = 0
        self._last_commit = -math.inf
        self._last_batch = 0
        self.migrate = migrate
        self.epoch = ""
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint_db: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._listeners: list[OnCommit] = []
        self._committed: list[CommittedEvent] = []
        self._users = _UserNames()
        self._read_lock = asyncio.Lock()
        self._last_write_failed = False
        self._snapshot_owner: asyncio.Task[Any] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collab-store")
        try:
            self._writer = await self._on_writer_thread(self._connect_writer)
            self._checkpointer = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="collab-checkpoint"
            )
            self._checkpoint_db = await asyncio.get_running_loop().run_in_executor(
                self._checkpointer, self._connect_checkpointer
            )
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute("PRAGMA journal_mode=WAL")
            await self._reader.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            folder = Path(self.path).parent
            hint = f" (the folder {str(folder)!r} does not exist)" if not folder.is_dir() else ""
            raise StoreUnavailable(
                f"cannot open SQLite database {self.path!r}: {exc}{hint}"
            ) from exc
        self.epoch = await self._meta("epoch", lambda: new_id("ep"))
        self._writer_task = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Finish every queued write, then close both connections."""
        if self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
            self._writer_task = None
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        checkpoint_db, self._checkpoint_db = self._checkpoint_db, None
        if self._checkpointer is not None:
            if checkpoint_db is not None:
                await asyncio.get_running_loop().run_in_executor(
                    self._checkpointer, checkpoint_db.close
                )
            self._checkpointer.shutdown(wait=True)
            self._checkpointer = None
        if self._reader is not None:
            await self._reader.close()
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            await self._on_writer_thread(writer.close)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    @property
    def healthy(self) -> bool:
        running = self._writer_task is not None and not self._writer_task.done()
        return running and not self._last_write_failed

    def add_listener(self, listener: OnCommit) -> None:
        self._listeners.append(listener)

    async def probe(self) -> None:
        """Run an empty write, so ``healthy`` turns True again once the disk is writable."""
        await self._write(lambda connection: connection.execute("SELECT 1").fetchone())

    async def relay_secret(self) -> str:
        return await self._meta("relay_secret", lambda: secrets.token_urlsafe(48))

    async def _on_writer_thread(self, work: Callable[[], T]) -> T:
        if self._thread is None:
            raise StoreUnavailable("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _connect_writer(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
        # Every job runs in a savepoint, whose statement journal is a temporary file by
        # default: a pwrite() per page each job touches. In memory it is over a quarter less
        # CPU per stored message; nothing in it outlives the transaction anyway.
        connection.execute("PRAGMA temp_store=MEMORY")
        try:
            migrate_sqlite(connection, apply=self.migrate)
        except BaseException:
            connection.close()
            raise
        return connection

    def _connect_checkpointer(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=5000")
        return connection

    def _checkpoint_soon(self) -> None:
        """After a commit: start a background checkpoint, unless one ran very recently."""
        db = self._checkpoint_db
        now = time.monotonic()
        if (
            db is None
            or self._checkpointing is not None
            or now - self._last_checkpoint < _CHECKPOINT_SECONDS
        ):
            return
        self._last_checkpoint = now
        self._checkpointing = asyncio.get_running_loop().run_in_executor(
            self._checkpointer, _checkpoint, db
        )
        self._checkpointing.add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, future: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("background checkpoint failed: %s", future.exception())

    async def _meta(self, key: str, default: Callable[[], str]) -> str:
        writer = self._require(self._writer)

        def read_or_create() -> str:
            writer.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, default()),
            )
            row = writer.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            assert row is not None
            return str(row[0])

        return await self._on_writer_thread(read_or_create)

    @staticmethod
    def _require(connection: C | None) -> C:
        if connection is None:
            raise StoreUnavailable("the store is closed")
        return connection

    # -- the group-commit writer -----------------------------------------------------

    async def _write(self, job: Job[T]) -> T:
        if self._writer_task is None or self._writer_task.done():
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put_nowait(_Pending(job, future, loop.time()))
        return await future

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[_Pending] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
                await self._gather_more(first)
            while not self._queue.empty() and len(batch) < _MAX_BATCH:
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            if batch:
                await self._run_batch(batch)

    async def _gather_more(self, first: _Pending) -> None:
        """Under load, let the commit wait for more writes (see the module's docstring)."""
        now = asyncio.get_running_loop().time()
        if self._last_batch < 2 or now - self._last_commit >= self.commit_window:
            return  # one write at a time, or after a quiet spell: no one to wait for
        delay = first.queued_at + self.commit_window - now
        if delay > 0 and self._queue.qsize() < _MAX_BATCH:
            await asyncio.sleep(delay)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        writer = self._require(self._writer)
        try:
            outcomes, committed = await self._on_writer_thread(
                lambda: self._commit_batch(writer, batch)
            )
        except sqlite3.Error as exc:
            self._last_write_failed = True
            log.error("store write failed, nothing in this batch is acknowledged: %s", exc)
            failure = StoreUnavailable(f"database write failed: {exc}")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            return
        self._last_write_failed = False
        self.commits += 1
        self.committed_writes += len(batch)
        self._last_batch = len(batch)
        self._last_commit = asyncio.get_running_loop().time()
        self._checkpoint_soon()
        # Resolving a future only schedules its caller, so every listener below still
        # runs (in commit order: fan-out order is seq order) before any caller resumes.
        # Resolving first queues the callers' wake-ups ahead of the connections' write
        # (scheduled by the fan-out), so each sender's ack leaves in the same write as
        # the events of its batch.
        for pending, result, error in outcomes:
            if pending.future.done():
                continue
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result(result)
        for event in committed:
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("commit listener failed")

    def _commit_batch(
        self, writer: sqlite3.Connection, batch: list[_Pending]
    ) -> tuple[list[tuple[_Pending, Any, BaseException | None]], list[CommittedEvent]]:
        """On the writer thread: every job in its own savepoint of one transaction."""
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        self._committed = []
        try:
            writer.execute("BEGIN IMMEDIATE")
            self._users.check(writer)
            for pending in batch:
                marker = len(self._committed)
                writer.execute("SAVEPOINT job")
                try:
                    result = pending.job(writer)
                except sqlite3.OperationalError:
                    raise  # the database itself is in trouble: fail the batch
                except Exception as exc:
                    # A refused or broken job rolls back alone; the batch goes on.
                    if not isinstance(exc, (ProtocolError, _AnswerAfterRollback)):
                        log.exception("store job failed")
                    writer.execute("ROLLBACK TO job")
                    self._users.clear()
                    del self._committed[marker:]
                    outcomes.append(self._after_rollback(writer, pending, exc))
                else:
                    outcomes.append((pending, result, None))
                writer.execute("RELEASE job")
            writer.execute("COMMIT")
        except sqlite3.Error:
            self._users.clear()
            with contextlib.suppress(sqlite3.Error):
                writer.execute("ROLLBACK")
            raise
        return outcomes, self._committed

    @staticmethod
    def _after_rollback(
        writer: sqlite3.Connection, pending: _Pending, failure: Exception
    ) -> tuple[_Pending, Any, BaseException | None]:
        if not isinstance(failure, _AnswerAfterRollback):
            return pending, None, failure
        try:  # in the batch, so the answer keeps its place among the others' answers
            return pending, failure.answer(writer), None
        except Exception as error:
            return pending, None, error

    # -- reads -----------------------------------------------------------------------

    async def _fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if self._snapshot_owner is asyncio.current_task():
            return await self._read(sql, params)
        async with self._read_lock:
            return await self._read(sql, params)

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        reader = self._require(self._reader)
        try:
            async with reader.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database read failed: {exc}") from exc

    async def _fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def get_session(self, session_id: str) -> SessionInfo | None:
        row = await self._fetchone(
            "SELECT id, title, status, token_count, health_score, host_id, created_at "
            "FROM sessions WHERE id = ?",
            (session_id,),
        )
        return _session(row) if row else None

    async def list_sessions(self) -> list[SessionInfo]:
        rows = await self._fetchall(
            "SELECT id, title, status, token_count, health_score, host_id, created_at "
            "FROM sessions ORDER BY created_at, rowid"
        )
        return [_session(row) for row in rows]

    async def get_participant(self, session_id: str, user_id: str) -> ParticipantRecord | None:
        row = await self._fetchone(
            _PARTICIPANT_SQL + " WHERE p.session_id = ? AND p.user_id = ?", (session_id, user_id)
        )
        return _participant(row) if row else None

    async def list_participants(self, session_id: str) -> list[ParticipantRecord]:
        rows = await self._fetchall(
            _PARTICIPANT_SQL + " WHERE p.session_id = ? ORDER BY p.joined_at, p.rowid",
            (session_id,),
        )
        return [_participant(row) for row in rows]

    async def get_message(self, session_id: str, message_id: str) -> Message | None:
        row = await self._fetchone(
            f"SELECT {_MESSAGE_COLUMNS} FROM session_messages m JOIN users u ON u.id = m.user_id "
            "WHERE m.session_id = ? AND m.id = ?",
            (session_id, message_id),
        )
        return _message(row) if row else None

    async def messages_before(
        self, session_id: str, before_seq: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        rows = await self._fetchall(
            f"SELECT {_MESSAGE_COLUMNS} FROM session_messages m JOIN users u ON u.id = m.user_id "
            "WHERE m.session_id = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?",
            (session_id, before_seq if before_seq is not None else 2**62, limit + 1),
        )
        has_more = len(rows) > limit
        return [_message(row) for row in reversed(rows[:limit])], has_more

    async def comments_after(
        self, session_id: str, after_seq: int, limit: int, file: str | None = None
    ) -> tuple[list[Message], bool]:
        sql = (
            f"SELECT {_MESSAGE_COLUMNS} FROM session_messages m JOIN users u ON u.id = m.user_id "
            "WHERE m.session_id = ? AND m.message_type = 'comment' AND m.seq > ?"
        )
        params: tuple[Any, ...] = (session_id, after_seq)
        if file is not None:
            sql += " AND json_extract(m.metadata, '$.code_ref.file') = ?"
            params += (file,)
        rows = await self._fetchall(sql + " ORDER BY m.seq LIMIT ?", (*params, limit + 1))
        return [_message(row) for row in rows[:limit]], len(rows) > limit

    async def events_after(self, session_id: str, seq: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._fetchall(
            "SELECT seq, event_data FROM session_events WHERE session_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (session_id, seq, limit),
        )
        return [(int(row[0]), str(row[1])) for row in rows]

    async def first_event_seq(self, session_id: str) -> int | None:
        row = await self._fetchone(
            "SELECT MIN(seq) FROM session_events WHERE session_id = ?", (session_id,)
        )
        return int(row[0]) if row and row[0] is not None else None

    async def last_seq(self, session_id: str) -> int:
        row = await self._fetchone("SELECT last_seq FROM sessions WHERE id = ?", (session_id,))
        return int(row[0]) if row else 0

    async def snapshot(self, session_id: str, limit: int) -> Snapshot | None:
        """Session, participants, recent messages and last seq from one read transaction."""
        reader = self._require(self._reader)
        try:
            async with self._read_lock:
                self._snapshot_owner = asyncio.current_task()
                await reader.execute("BEGIN")
                try:
                    session = await self.get_session(session_id)
                    if session is None:
                        return None
                    seq = await self.last_seq(session_id)
                    participants = await self.list_participants(session_id)
                    messages, _ = await self.messages_before(session_id, None, limit)
                finally:
                    self._snapshot_owner = None
                    await reader.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database read failed: {exc}") from exc
        return Snapshot(session, participants, messages, seq)

    async def get_invite(self, invite_id: str) -> InviteRecord | None:
        row = await self._fetchone(_INVITE_SQL + " WHERE id = ?", (invite_id,))
        return _invite(row) if row else None

    # -- writes that are not session events --------------------------------------------

    async def create_session(
        self, *, title: str, host_id: str, host_name: str, host_kind: ParticipantKind
    ) -> SessionInfo:
        session_id = new_id("s")
        now = utc_now()

        def job(db: sqlite3.Connection) -> None:
            self._users.upsert(db, host_id, host_name, host_kind, now)
            db.execute(
                "INSERT INTO sessions (id, title, status, host_id, created_at) "
                "VALUES (?, ?, 'active', ?, ?)",
                (session_id, title, host_id, now),
            )
            db.execute(
                "INSERT INTO session_participants (id, session_id, user_id, role, joined_at, "
                "is_active) VALUES (?, ?, ?, 'host', ?, FALSE)",
                (new_id("p"), session_id, host_id, now),
            )

        await self._write(job)
        session = await self.get_session(session_id)
        assert session is not None
        return session

    async def create_invite(
        self, *, session_id: str, role: Role, created_by: str, ttl_seconds: int, max_uses: int
    ) -> InviteRecord:
        invite_id = new_id("i")
        now = datetime.now(UTC)
        expires = format_timestamp(now + timedelta(seconds=ttl_seconds))

        def job(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO invites (id, session_id, role, created_by, created_at, expires_at, "
                "max_uses) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    invite_id,
                    session_id,
                    role.value,
                    created_by,
                    format_timestamp(now),
                    expires,
                    max_uses,
                ),
            )

        await self._write(job)
        invite = await self.get_invite(invite_id)
        assert invite is not None
        return invite

    async def redeem_invite(self, invite_id: str) -> InviteRecord:
        def job(db: sqlite3.Connection) -> InviteRecord:
            row = db.execute(_INVITE_SQL + " WHERE id = ?", (invite_id,)).fetchone()
            if row is None:
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite does not exist")
            invite = _invite(row)
            if invite.revoked:
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite was revoked")
            if invite.expires_at <= utc_now():
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite has expired")
            if invite.uses >= invite.max_uses:
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite has been used up")
            db.execute("UPDATE invites SET uses = uses + 1 WHERE id = ?", (invite_id,))
            return invite

        return await self._write(job)

    async def revoke_invite(self, session_id: str, invite_id: str) -> InviteRecord:
        def job(db: sqlite3.Connection) -> InviteRecord:
            row = db.execute(
                _INVITE_SQL + " WHERE id = ? AND session_id = ?", (invite_id, session_id)
            ).fetchone()
            if row is None:
                raise ProtocolError(
                    ErrorCode.NOT_FOUND, "no such invite in this session", field="invite_id"
                )
            db.execute(
                "UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_now(), invite_id),
            )
            return _invite(row)

        return await self._write(job)

    # -- durable session events ---------------------------------------------------------

    async def find_client_event(
        self, session_id: str, user_id: str, client_id: str
    ) -> CommittedEvent | None:
        row = await self._fetchone(_CLIENT_EVENT_SQL, (session_id, user_id, client_id))
        return _duplicate(session_id, row) if row else None

    async def _event(
        self,
        session_id: str,
        user_id: str | None,
        client_id: str | None,
        build: Callable[[sqlite3.Connection, int, str], dict[str, Any]],
    ) -> CommittedEvent:
        """Run ``build`` in the writer transaction and append the frame it returns."""

        def append(db: sqlite3.Connection) -> CommittedEvent:
            seq_row = db.execute(
                "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = ? AND status != 'ended' "
                "RETURNING last_seq",
                (session_id,),
            ).fetchone()
            if seq_row is None:
                raise ProtocolError(ErrorCode.SESSION_ENDED, "this session has ended")
            seq = int(seq_row[0])
            now = utc_now()
            body = build(db, seq, now)
            frame = {
                "type": body.pop("type"),
                "session_id": session_id,
                "id": body.pop("id", None) or new_id("e"),
                "seq": seq,
                "timestamp": now,
                **body,
            }
            wire = _dumps(frame)
            db.execute(
                "INSERT INTO session_events (session_id, user_id, event_type, event_data, "
                "timestamp, seq, event_id, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, user_id, frame["type"], wire, now, seq, frame["id"], client_id),
            )
            event = CommittedEvent(session_id, frame["id"], seq, frame["type"], frame, wire)
            self._committed.append(event)
            return event

        def job(db: sqlite3.Connection) -> CommittedEvent:
            # A resend is rare: rather than a lookup before every append, the unique index
            # on client ids refuses it (or the job is refused: the session has ended since),
            # and once the job's savepoint is rolled back the stored event is the answer.
            try:
                return append(db)
            except (sqlite3.IntegrityError, ProtocolError) as refusal:
                if client_id is None or (
                    isinstance(refusal, sqlite3.IntegrityError) and "client_id" not in str(refusal)
                ):
                    raise
                raise _AnswerAfterRollback(
                    functools.partial(_resent, session_id, user_id, client_id, refusal)
                ) from refusal

        return await self._write(job)

    async def join(
        self,
        session_id: str,
        *,
        user_id: str,
        username: str,
        kind: ParticipantKind,
        role: Role,
        announce: bool,
    ) -> tuple[ParticipantRecord, CommittedEvent | None]:
        now = utc_now()

        def record(db: sqlite3.Connection) -> None:
            self._users.upsert(db, user_id, username, kind, now)
            db.execute(
                "INSERT INTO session_participants (id, session_id, user_id, role, joined_at, "
                "is_active, last_seen) VALUES (?, ?, ?, ?, ?, TRUE, ?) "
                "ON CONFLICT (session_id, user_id) DO UPDATE SET is_active = TRUE, "
                "left_at = NULL, last_seen = excluded.last_seen",
                (new_id("p"), session_id, user_id, role.value, now, now),
            )

        event: CommittedEvent | None = None
        if announce:

            def build(db: sqlite3.Connection, seq: int, _at: str) -> dict[str, Any]:
                record(db)
                participant = _participant_in(db, session_id, user_id)
                return {"type": "user_joined", "user": _user_info(participant)}

            event = await self._event(session_id, user_id, None, build)
        else:
            await self._write(record)
        participant = await self.get_participant(session_id, user_id)
        assert participant is not None
        return participant, event

    async def leave(self, session_id: str, user_id: str, reason: str) -> CommittedEvent:
        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            participant = _participant_in(db, session_id, user_id)
            db.execute(
                "UPDATE session_participants SET is_active = FALSE, left_at = ?, last_seen = ? "
                "WHERE session_id = ? AND user_id = ?",
                (now, now, session_id, user_id),
            )
            return {
                "type": "user_left",
                "user_id": user_id,
                "username": participant.username,
                "reason": reason,
            }

        return await self._event(session_id, user_id, None, build)

    async def add_message(
        self, session_id: str, user_id: str, client_id: str | None, message: dict[str, Any]
    ) -> CommittedEvent:
        message_type = MessageType(message["message_type"])

        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            fields = dict(message)
            parent_id = fields.get("parent_id")
            if parent_id is not None:
                parent = _message_in(db, session_id, parent_id, field="parent_id")
                _check_parent(parent, message_type)
                # Threads are one level deep: a reply to a reply joins the root's thread.
                fields["parent_id"] = parent.parent_id or parent.id
                if message_type is MessageType.COMMENT:
                    for key in ("file", "line", "end_line", "code_snippet", "commit", "blob"):
                        fields[key] = getattr(parent, key)
            message_id = time_ordered_id("m")
            metadata = {
                "mentions": fields.get("mentions", []),
                "reactions": {},
                "code_ref": {
                    key: fields.get(key)
                    for key in ("file", "line", "end_line", "code_snippet", "commit", "blob")
                }
                if message_type is MessageType.COMMENT
                else None,
                "resolved": False,
            }
            db.execute(
                "INSERT INTO session_messages (id, session_id, user_id, message_type, content, "
                "metadata, parent_id, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    session_id,
                    user_id,
                    message_type.value,
                    fields["content"],
                    _dumps(metadata),
                    fields.get("parent_id"),
                    now,
                    seq,
                ),
            )
            # What _message_in() would read back, built from what was just inserted.
            stored = _new_message(
                message_id, seq, message_type, user_id, self._users.get(db, user_id), fields, now
            )
            key = "comment" if message_type is MessageType.COMMENT else "message"
            event_type = "code_comment" if message_type is MessageType.COMMENT else "chat_message"
            return {"type": event_type, "id": message_id, key: stored}

        return await self._event(session_id, user_id, client_id, build)

    async def edit_message(
        self, session_id: str, user_id: str, client_id: str | None, message_id: str, content: str
    ) -> CommittedEvent:
        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            message = _live_message(db, session_id, message_id)
            if message.user_id != user_id:
                raise ProtocolError(
                    ErrorCode.NOT_AUTHOR, "you can only edit your own messages", field="message_id"
                )
            db.execute(
                "UPDATE session_messages SET content = ?, updated_at = ? WHERE id = ?",
                (content, now, message_id),
            )
            updated = _message_in(db, session_id, message_id)
            return {
                "type": "message_updated",
                "message": updated.model_dump(mode="json", exclude_none=True),
            }

        return await self._event(session_id, user_id, client_id, build)

    async def delete_message(
        self,
        session_id: str,
        user_id: str,
        client_id: str | None,
        message_id: str,
        *,
        moderator: bool = False,
    ) -> CommittedEvent:
        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            message = _live_message(db, session_id, message_id)
            if message.user_id != user_id and not moderator:
                raise ProtocolError(
                    ErrorCode.NOT_AUTHOR,
                    "you can only delete your own messages (a host may delete any)",
                    field="message_id",
                )
            db.execute("UPDATE session_messages SET deleted_at = ? WHERE id = ?", (now, message_id))
            return {"type": "message_deleted", "message_id": message_id, "deleted_by": user_id}

        return await self._event(session_id, user_id, client_id, build)

    async def react(
        self,
        session_id: str,
        user_id: str,
        client_id: str | None,
        message_id: str,
        emoji: str,
        add: bool,
    ) -> CommittedEvent:
        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            message = _live_message(db, session_id, message_id)
            reactions = {key: list(users) for key, users in message.reactions.items()}
            users = reactions.setdefault(emoji, [])
            if add == (user_id in users):
                state = "already reacted" if add else "have not reacted"
                raise ProtocolError(
                    ErrorCode.INVALID_FRAME, f"you {state} with {emoji}", field="emoji"
                )
            if add:
                users.append(user_id)
            else:
                users.remove(user_id)
            reactions = {key: value for key, value in reactions.items() if value}
            _set_metadata(db, message_id, "reactions", reactions)
            return {
                "type": "reaction_updated",
                "message_id": message_id,
                "user_id": user_id,
                "emoji": emoji,
                "added": add,
                "reactions": reactions,
            }

        return await self._event(session_id, user_id, client_id, build)

    async def set_resolved(
        self, session_id: str, user_id: str, client_id: str | None, comment_id: str, resolved: bool
    ) -> CommittedEvent:
        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            comment = _live_message(db, session_id, comment_id, field="comment_id")
            if comment.message_type is not MessageType.COMMENT or comment.parent_id is not None:
                raise ProtocolError(
                    ErrorCode.INVALID_FRAME,
                    "only the first comment of a thread can be resolved or reopened",
                    field="comment_id",
                )
            if comment.resolved == resolved:
                state = "resolved" if resolved else "open"
                raise ProtocolError(
                    ErrorCode.INVALID_FRAME, f"this thread is already {state}", field="comment_id"
                )
            _set_metadata(db, comment_id, "resolved", resolved)
            return {
                "type": "comment_resolved",
                "comment_id": comment_id,
                "resolved": resolved,
                "by": user_id,
            }

        return await self._event(session_id, user_id, client_id, build)

    async def update_session(
        self, session_id: str, user_id: str, client_id: str | None, changes: dict[str, Any]
    ) -> CommittedEvent:
        columns = {key: value for key, value in changes.items() if key in _SESSION_COLUMNS}

        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            assignments = ", ".join(f"{column} = ?" for column in columns)
            db.execute(
                f"UPDATE sessions SET {assignments} WHERE id = ?", (*columns.values(), session_id)
            )
            return {"type": "session_update", "changes": columns, "updated_by": user_id}

        return await self._event(session_id, user_id, client_id, build)

    async def change_role(
        self, session_id: str, user_id: str, client_id: str | None, target_id: str, role: Role
    ) -> CommittedEvent:
        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            target = _participant_in(db, session_id, target_id, field="user_id")
            if target.role is role:
                raise ProtocolError(
                    ErrorCode.INVALID_FRAME, f"{target.username} is already {role}", field="role"
                )
            db.execute(
                "UPDATE session_participants SET role = ? WHERE session_id = ? AND user_id = ?",
                (role.value, session_id, target_id),
            )
            return {
                "type": "role_changed",
                "user_id": target_id,
                "role": role.value,
                "changed_by": user_id,
            }

        return await self._event(session_id, user_id, client_id, build)

    async def remove_user(
        self, session_id: str, user_id: str, client_id: str | None, target_id: str
    ) -> CommittedEvent:
        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            target = _participant_in(db, session_id, target_id, field="user_id")
            db.execute(
                "UPDATE session_participants SET removed_at = ?, is_active = FALSE, left_at = ? "
                "WHERE session_id = ? AND user_id = ?",
                (now, now, session_id, target_id),
            )
            return {
                "type": "user_removed",
                "user_id": target_id,
                "username": target.username,
                "removed_by": user_id,
            }

        return await self._event(session_id, user_id, client_id, build)

    async def end_session(
        self, session_id: str, user_id: str | None, client_id: str | None
    ) -> CommittedEvent:
        """End a session; ``user_id`` None means an operator did it from the CLI."""

        def build(db: sqlite3.Connection, seq: int, now: str) -> dict[str, Any]:
            db.execute(
                "UPDATE sessions SET status = 'ended', ended_at = ? WHERE id = ?",
                (now, session_id),
            )
            db.execute(
                "UPDATE session_participants SET is_active = FALSE, left_at = ? "
                "WHERE session_id = ? AND is_active",
                (now, session_id),
            )
            return {"type": "session_ended", "ended_by": user_id or "admin"}

        return await self._event(session_id, user_id, client_id, build)


# -- schema migrations -------------------------------------------------------------------


def check_schema_version(version: int, latest: int, *, apply: bool) -> None:
    """Refuse a schema newer than this code, and one behind it when migrating is off."""
    if version > latest:
        raise StoreUnavailable(
            f"database schema version {version} is newer than this relay ({latest}); "
            "upgrade collab-lsp"
        )
    if version < latest and not apply:
        raise StoreUnavailable(
            f"database schema version {version} is older than this relay's ({latest}) and "
            "automatic migration is off (auto_migrate = false): run `collab-relay migrate`"
        )


def sqlite_schema_version(connection: sqlite3.Connection) -> int:
    """The schema version recorded in the database; 0 for a new (empty) one."""
    has_meta = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate_sqlite(connection: sqlite3.Connection, *, apply: bool = True) -> tuple[int, int]:
    """Apply pending migrations in one transaction; the schema version ``(before, after)``.

    The version is read under the write lock (``BEGIN IMMEDIATE``), so two processes
    migrating at once apply each migration once. With ``apply`` False nothing is written
    and a schema behind this code is refused. ``connection`` is in autocommit mode
    (``isolation_level=None``).
    """
    if not apply:
        version = sqlite_schema_version(connection)
        check_schema_version(version, len(MIGRATIONS), apply=False)
        return version, version
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = sqlite_schema_version(connection)
        check_schema_version(version, len(MIGRATIONS), apply=True)
        for script in MIGRATIONS[version:]:
            # Statement by statement: executescript() would commit the transaction.
            for statement in _statements(script):
                connection.execute(statement)
        if version < len(MIGRATIONS):
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(len(MIGRATIONS)),),
            )
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    return version, len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {current.strip()[:60]!r}")
    return statements


# -- row mapping helpers ----------------------------------------------------------------

_SESSION_COLUMNS = ("title", "token_count", "health_score", "status")
_PARTICIPANT_SQL = (
    "SELECT p.session_id, p.user_id, u.username, u.kind, p.role, p.joined_at, p.is_active, "
    "p.removed_at FROM session_participants p JOIN users u ON u.id = p.user_id"
)
_INVITE_SQL = (
    "SELECT id, session_id, role, created_by, expires_at, max_uses, uses, revoked_at FROM invites"
)


def _session(row: Any) -> SessionInfo:
    return SessionInfo(
        id=row[0],
        title=row[1],
        status=SessionStatus(row[2]),
        token_count=row[3],
        health_score=row[4],
        host_id=row[5],
        created_at=row[6],
    )


def _participant(row: Any) -> ParticipantRecord:
    return ParticipantRecord(
        session_id=row[0],
        user_id=row[1],
        username=row[2],
        kind=ParticipantKind(row[3]),
        role=Role(row[4]),
        joined_at=row[5],
        is_active=bool(row[6]),
        removed=row[7] is not None,
    )


def _invite(row: Any) -> InviteRecord:
    return InviteRecord(
        id=row[0],
        session_id=row[1],
        role=Role(row[2]),
        created_by=row[3],
        expires_at=row[4],
        max_uses=row[5],
        uses=row[6],
        revoked=row[7] is not None,
    )


def _message(row: Any) -> Message:
    metadata = _loads(row[6]) if row[6] else {}
    code_ref = metadata.get("code_ref") or {}
    deleted = row[10] is not None
    return Message(
        id=row[0],
        seq=row[1],
        message_type=MessageType(row[2]),
        user_id=row[3],
        username=row[4],
        content="" if deleted else row[5],
        mentions=metadata.get("mentions", []),
        reactions={} if deleted else metadata.get("reactions", {}),
        parent_id=row[7],
        resolved=bool(metadata.get("resolved", False)),
        timestamp=row[8],
        edited_at=row[9],
        deleted=deleted,
        **code_ref,
    )


def _new_message(
    message_id: str,
    seq: int,
    message_type: MessageType,
    user_id: str,
    username: str,
    fields: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """A new message as ``Message.model_dump(mode="json", exclude_none=True)`` gives it."""
    stored: dict[str, Any] = {
        "id": message_id,
        "seq": seq,
        "message_type": message_type.value,
        "user_id": user_id,
        "username": username,
        "content": fields["content"],
        "mentions": list(fields.get("mentions", [])),
        "reactions": {},
    }
    if fields.get("parent_id") is not None:
        stored["parent_id"] = fields["parent_id"]
    if message_type is MessageType.COMMENT:
        for key in ("file", "line", "end_line", "code_snippet", "commit", "blob"):
            if fields.get(key) is not None:
                stored[key] = fields[key]
    stored.update(resolved=False, timestamp=now, deleted=False)
    return stored


def _resent(
    session_id: str, user_id: str | None, client_id: str, refusal: Exception, db: sqlite3.Connection
) -> CommittedEvent:
    """The event already stored under this client id, or the job's refusal if none is."""
    row = db.execute(_CLIENT_EVENT_SQL, (session_id, user_id, client_id)).fetchone()
    if row is None:
        raise refusal
    return _duplicate(session_id, row)


def _duplicate(session_id: str, row: Any) -> CommittedEvent:
    frame = _loads(row[3])
    return CommittedEvent(session_id, row[0], int(row[1]), row[2], frame, row[3], duplicate=True)


def _user_info(participant: ParticipantRecord) -> dict[str, Any]:
    return {
        "id": participant.user_id,
        "username": participant.username,
        "role": participant.role.value,
        "kind": participant.kind.value,
        "color_index": color_index(participant.user_id),
    }


def _participant_in(
    db: sqlite3.Connection, session_id: str, user_id: str, *, field: str = "user_id"
) -> ParticipantRecord:
    row = db.execute(
        _PARTICIPANT_SQL + " WHERE p.session_id = ? AND p.user_id = ?", (session_id, user_id)
    ).fetchone()
    if row is None or row[7] is not None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_USER, f"{user_id!r} is not a participant of this session", field=field
        )
    return _participant(row)


def _message_in(
    db: sqlite3.Connection, session_id: str, message_id: str, *, field: str = "message_id"
) -> Message:
    row = db.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM session_messages m JOIN users u ON u.id = m.user_id "
        "WHERE m.session_id = ? AND m.id = ?",
        (session_id, message_id),
    ).fetchone()
    if row is None:
        raise ProtocolError(
            ErrorCode.NOT_FOUND, f"no message {message_id!r} in this session", field=field
        )
    return _message(row)


def _live_message(
    db: sqlite3.Connection, session_id: str, message_id: str, *, field: str = "message_id"
) -> Message:
    message = _message_in(db, session_id, message_id, field=field)
    if message.deleted:
        raise ProtocolError(ErrorCode.NOT_FOUND, "that message was deleted", field=field)
    return message


def _check_parent(parent: Message, message_type: MessageType) -> None:
    if parent.deleted:
        raise ProtocolError(
            ErrorCode.NOT_FOUND, "the parent message was deleted", field="parent_id"
        )
    if parent.message_type is not message_type:
        expected = "a comment" if message_type is MessageType.COMMENT else "a chat message"
        raise ProtocolError(
            ErrorCode.INVALID_FRAME, f"parent_id must name {expected}", field="parent_id"
        )


def _set_metadata(db: sqlite3.Connection, message_id: str, key: str, value: Any) -> None:
    db.execute(
        "UPDATE session_messages SET metadata = json_set(COALESCE(metadata, '{}'), ?, json(?)) "
        "WHERE id = ?",
        (f"$.{key}", _dumps(value), message_id),
    )
