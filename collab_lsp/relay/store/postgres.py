"""PostgreSQL via asyncpg: the store for several relays sharing one database.

Every operation runs in its own transaction on a pooled connection. A durable event
allocates its ``seq`` with ``UPDATE sessions SET last_seq = last_seq + 1 ... RETURNING``:
the row lock that UPDATE takes is held until commit, so the database orders writers to one
session — from this process or from any other relay — and seqs are gap-free and unique.

Within one process the store also holds an ``asyncio.Lock`` per session around the whole
transaction *and* the ``on_commit`` call. Without it, two tasks writing to one session
could commit seq 7 and seq 8 in that order in the database while the event loop resumes
the task holding seq 8 first (their replies arrive on different sockets), and listeners
would fan out 8 before 7. With it, the second task starts its transaction only after the
first committed and its listeners ran, so this relay's listeners see its own events in
seq order. (Events written by *other* relays reach this one through the broker or the
relay's catch-up from ``events_after``, never through these listeners.) Sessions do not
share a lock, so writes to different sessions still run in parallel on the pool.

While one transaction holds a session's lock, the events queued behind it wait; the next
holder commits all of them in one transaction (a group commit per session), so a busy
session pays for one ``BEGIN``/``COMMIT`` and one lock hand-off per batch, not per event.

Errors: a database that cannot be reached raises ``StoreUnavailable`` (never a raw asyncpg
exception) and ``healthy`` turns False until an operation succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from collab_lsp.protocol.codec import format_timestamp, utc_now
from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.models import Message, MessageType, ParticipantKind, SessionInfo
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.store.base import (
    CommittedEvent,
    InviteRecord,
    OnCommit,
    ParticipantRecord,
    Snapshot,
    StoreUnavailable,
)
from collab_lsp.relay.store.pg_schema import BOOTSTRAP, MIGRATIONS

# The row mappings and frame helpers are shared with the SQLite store on purpose, so
# that both stores produce the same records and byte-identical frames.
from collab_lsp.relay.store.sqlite import (
    _INVITE_SQL,
    _PARTICIPANT_SQL,
    _SESSION_COLUMNS,
    _check_parent,
    _dumps,
    _duplicate,
    _invite,
    _message,
    _new_message,
    _participant,
    _session,
    _user_info,
    check_schema_version,
    new_id,
    time_ordered_id,
)

__all__ = ["PostgresStore", "migrate_postgres", "postgres_schema_version"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg.Connection (asyncpg ships no type information)
Build = Callable[[Connection, int, str], Awaitable[dict[str, Any]]]

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CLIENT_INDEX = "idx_session_events_client"
_MESSAGE_COLUMNS = (
    "m.id, m.seq, m.message_type, m.user_id, u.username, m.content, m.metadata, "
    "m.parent_id, m.created_at, m.updated_at, m.deleted_at"
)
_MESSAGE_SQL = f"SELECT {_MESSAGE_COLUMNS} FROM session_messages m JOIN users u ON u.id = m.user_id"
_SESSION_SQL = (
    "SELECT id, title, status, token_count, health_score, host_id, created_at FROM sessions"
)
_CLIENT_EVENT_SQL = (
    "SELECT event_id, seq, event_type, event_data FROM session_events "
    "WHERE session_id = $1 AND user_id = $2 AND client_id = $3"
)
# The database is unreachable or refuses all work (as opposed to refusing one statement).
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.InternalServerError,
)


class _DuplicateClientId(Exception):
    """The client id of this event is stored already: a resend, through this relay or another."""


class _SessionLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _Append:
    """One event waiting for its session's turn, and whoever waits for its answer.

    ``job`` builds and inserts the event with the seq it is given. ``plain``: it leaves the
    session's row alone (a message or comment), so a batch of such events can take all its
    seqs at once; an event that may end the session or change it takes its own.
    """

    __slots__ = ("client_id", "future", "job", "plain", "user_id")

    def __init__(
        self,
        job: Callable[[Connection, int], Awaitable[CommittedEvent]],
        user_id: str | None,
        client_id: str | None,
        plain: bool,
    ) -> None:
        self.job = job
        self.user_id = user_id
        self.client_id = client_id
        self.plain = plain
        self.future: asyncio.Future[CommittedEvent] = asyncio.get_running_loop().create_future()


class PostgresStore:
    """PostgreSQL via an asyncpg pool; ``schema`` isolates one relay deployment (or test)."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        migrate: bool = True,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(
                f"PostgreSQL schema name {schema!r} must be letters, digits and _ "
                "(not starting with a digit, at most 63 characters)"
            )
        self.dsn = dsn
        self.schema = schema
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.migrate = migrate
        self.epoch = ""
        self.commits = 0
        self.committed_writes = 0
        self._pool: Any = None
        self._listeners: list[OnCommit] = []
        self._session_locks: dict[str, _SessionLock] = {}
        self._appends: dict[str, list[_Append]] = {}
        self._write_failed = False
        self._unreachable = False

    # -- lifecycle -----------------------------------------------------------------

    @property
    def where(self) -> str:
        """The database this store uses, without the password, for messages."""
        try:
            parts = urlsplit(self.dsn)
            host = parts.hostname or "localhost"
            port = f":{parts.port}" if parts.port else ""
            database = parts.path.lstrip("/") or "(default)"
            place = f"{host}{port}/{database}"
        except ValueError:
            place = "(unparsable DSN)"
        return place + (f" schema {self.schema}" if self.schema else "")

    async def open(self) -> None:
        settings = {"search_path": f'"{self.schema}"'} if self.schema else {}
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.timeout,
                server_settings=settings,
                reset=_nothing_to_reset,
            )
        except (*_UNAVAILABLE_ERRORS, asyncpg.PostgresError, ValueError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.where}: {exc}") from exc
        try:
            await self._migrate()
            self.epoch = await self._meta("epoch", lambda: new_id("ep"))
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def close(self) -> None:
        """Wait for running operations to release their connections, then close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def healthy(self) -> bool:
        return self._pool is not None and not (self._write_failed or self._unreachable)

    def add_listener(self, listener: OnCommit) -> None:
        self._listeners.append(listener)

    async def probe(self) -> None:
        """Run an empty transaction, so ``healthy`` turns True again once PostgreSQL is back."""
        await self._write(lambda db: db.fetchval("SELECT 1"))

    async def relay_secret(self) -> str:
        return await self._meta("relay_secret", lambda: secrets.token_urlsafe(48))

    async def _migrate(self) -> None:
        """Apply pending migrations (or, with ``migrate`` False, check there are none)."""
        await self._write(lambda db: migrate_postgres(db, self.schema, apply=self.migrate))

    async def _meta(self, key: str, default: Callable[[], str]) -> str:
        async def job(db: Connection) -> str:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                key,
                default(),
            )
            return str(await db.fetchval("SELECT value FROM meta WHERE key = $1", key))

        return await self._write(job)

    # -- connections and transactions -------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self, action: str) -> AsyncIterator[Connection]:
        """A pooled connection; database failures come out as ``StoreUnavailable``."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is closed")
        try:
            async with pool.acquire(timeout=self.timeout) as connection:
                yield connection
        except (ProtocolError, StoreUnavailable, _DuplicateClientId):
            raise
        except _UNAVAILABLE_ERRORS as exc:
            self._unreachable = True
            if action == "write":
                self._write_failed = True
            log.error("PostgreSQL %s failed (%s): %s", action, self.where, exc)
            raise StoreUnavailable(
                f"database {action} failed: PostgreSQL at {self.where} is unavailable: {exc}"
            ) from exc
        except asyncpg.PostgresError as exc:
            # The database works but refused this statement: report it, stay healthy.
            log.error("PostgreSQL %s failed: %s", action, exc)
            raise StoreUnavailable(f"database {action} failed: {exc}") from exc
        self._unreachable = False

    async def _write(self, job: Callable[[Connection], Awaitable[T]], writes: int = 1) -> T:
        """Run ``job`` in one transaction; a ProtocolError from it rolls everything back."""
        async with self._connection("write") as db, db.transaction():
            result = await job(db)
        self._write_failed = False
        self.commits += 1
        self.committed_writes += writes
        return result

    async def _read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        async with self._connection("read") as db:
            return await work(db)

    @contextlib.asynccontextmanager
    async def _session_lock(self, session_id: str) -> AsyncIterator[None]:
        entry = self._session_locks.get(session_id)
        if entry is None:
            entry = self._session_locks[session_id] = _SessionLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._session_locks[session_id]

    def _notify(self, event: CommittedEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("commit listener failed")

    # -- reads -----------------------------------------------------------------------

    async def get_session(self, session_id: str) -> SessionInfo | None:
        return await self._read(lambda db: _get_session(db, session_id))

    async def list_sessions(self) -> list[SessionInfo]:
        rows = await self._read(
            lambda db: db.fetch(_SESSION_SQL + " ORDER BY created_at, position")
        )
        return [_session(row) for row in rows]

    async def get_participant(self, session_id: str, user_id: str) -> ParticipantRecord | None:
        row = await self._read(
            lambda db: db.fetchrow(
                _PARTICIPANT_SQL + " WHERE p.session_id = $1 AND p.user_id = $2",
                session_id,
                user_id,
            )
        )
        return _participant(row) if row else None

    async def list_participants(self, session_id: str) -> list[ParticipantRecord]:
        return await self._read(lambda db: _list_participants(db, session_id))

    async def get_message(self, session_id: str, message_id: str) -> Message | None:
        row = await self._read(
            lambda db: db.fetchrow(
                _MESSAGE_SQL + " WHERE m.session_id = $1 AND m.id = $2", session_id, message_id
            )
        )
        return _message(row) if row else None

    async def messages_before(
        self, session_id: str, before_seq: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        return await self._read(lambda db: _messages_before(db, session_id, before_seq, limit))

    async def comments_after(
        self, session_id: str, after_seq: int, limit: int, file: str | None = None
    ) -> tuple[list[Message], bool]:
        sql = (
            _MESSAGE_SQL + " WHERE m.session_id = $1 AND m.message_type = 'comment' AND m.seq > $2"
        )
        params: tuple[Any, ...] = (session_id, after_seq)
        if file is not None:
            sql += " AND (m.metadata::jsonb #>> '{code_ref,file}') = $3"
            params += (file,)
        sql += f" ORDER BY m.seq LIMIT ${len(params) + 1}"
        rows = await self._read(lambda db: db.fetch(sql, *params, limit + 1))
        return [_message(row) for row in rows[:limit]], len(rows) > limit

    async def events_after(self, session_id: str, seq: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._read(
            lambda db: db.fetch(
                "SELECT seq, event_data FROM session_events WHERE session_id = $1 AND seq > $2 "
                "ORDER BY seq LIMIT $3",
                session_id,
                seq,
                limit,
            )
        )
        return [(int(row[0]), str(row[1])) for row in rows]

    async def first_event_seq(self, session_id: str) -> int | None:
        value = await self._read(
            lambda db: db.fetchval(
                "SELECT MIN(seq) FROM session_events WHERE session_id = $1", session_id
            )
        )
        return int(value) if value is not None else None

    async def last_seq(self, session_id: str) -> int:
        return await self._read(lambda db: _last_seq(db, session_id))

    async def snapshot(self, session_id: str, limit: int) -> Snapshot | None:
        """Session, participants, recent messages and last seq from one read transaction."""

        async def work(db: Connection) -> Snapshot | None:
            async with db.transaction(isolation="repeatable_read", readonly=True):
                session = await _get_session(db, session_id)
                if session is None:
                    return None
                seq = await _last_seq(db, session_id)
                participants = await _list_participants(db, session_id)
                messages, _ = await _messages_before(db, session_id, None, limit)
            return Snapshot(session, participants, messages, seq)

        return await self._read(work)

    async def get_invite(self, invite_id: str) -> InviteRecord | None:
        row = await self._read(lambda db: db.fetchrow(_INVITE_SQL + " WHERE id = $1", invite_id))
        return _invite(row) if row else None

    # -- writes that are not session events --------------------------------------------

    async def create_session(
        self, *, title: str, host_id: str, host_name: str, host_kind: ParticipantKind
    ) -> SessionInfo:
        session_id = new_id("s")
        now = utc_now()

        async def job(db: Connection) -> None:
            await _upsert_user(db, host_id, host_name, host_kind, now)
            await db.execute(
                "INSERT INTO sessions (id, title, status, host_id, created_at) "
                "VALUES ($1, $2, 'active', $3, $4)",
                session_id,
                title,
                host_id,
                now,
            )
            await db.execute(
                "INSERT INTO session_participants (id, session_id, user_id, role, joined_at, "
                "is_active) VALUES ($1, $2, $3, 'host', $4, FALSE)",
                new_id("p"),
                session_id,
                host_id,
                now,
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

        async def job(db: Connection) -> None:
            await db.execute(
                "INSERT INTO invites (id, session_id, role, created_by, created_at, expires_at, "
                "max_uses) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                invite_id,
                session_id,
                role.value,
                created_by,
                format_timestamp(now),
                expires,
                max_uses,
            )

        await self._write(job)
        invite = await self.get_invite(invite_id)
        assert invite is not None
        return invite

    async def redeem_invite(self, invite_id: str) -> InviteRecord:
        async def job(db: Connection) -> InviteRecord:
            # FOR UPDATE: two relays redeeming the last use at once cannot both succeed.
            row = await db.fetchrow(_INVITE_SQL + " WHERE id = $1 FOR UPDATE", invite_id)
            if row is None:
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite does not exist")
            invite = _invite(row)
            if invite.revoked:
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite was revoked")
            if invite.expires_at <= utc_now():
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite has expired")
            if invite.uses >= invite.max_uses:
                raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite has been used up")
            await db.execute("UPDATE invites SET uses = uses + 1 WHERE id = $1", invite_id)
            return invite

        return await self._write(job)

    async def revoke_invite(self, session_id: str, invite_id: str) -> InviteRecord:
        async def job(db: Connection) -> InviteRecord:
            row = await db.fetchrow(
                _INVITE_SQL + " WHERE id = $1 AND session_id = $2 FOR UPDATE",
                invite_id,
                session_id,
            )
            if row is None:
                raise ProtocolError(
                    ErrorCode.NOT_FOUND, "no such invite in this session", field="invite_id"
                )
            await db.execute(
                "UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                utc_now(),
                invite_id,
            )
            return _invite(row)

        return await self._write(job)

    # -- durable session events ---------------------------------------------------------

    async def find_client_event(
        self, session_id: str, user_id: str, client_id: str
    ) -> CommittedEvent | None:
        row = await self._read(
            lambda db: db.fetchrow(_CLIENT_EVENT_SQL, session_id, user_id, client_id)
        )
        return _duplicate(session_id, row) if row else None

    async def _event(
        self,
        session_id: str,
        user_id: str | None,
        client_id: str | None,
        build: Build,
        *,
        plain: bool = False,
    ) -> CommittedEvent:
        """Run ``build`` in a transaction with the next seq and append the frame it returns."""

        async def job(db: Connection, seq: int) -> CommittedEvent:
            now = utc_now()
            body = await build(db, seq, now)
            frame = {
                "type": body.pop("type"),
                "session_id": session_id,
                "id": body.pop("id", None) or new_id("e"),
                "seq": seq,
                "timestamp": now,
                **body,
            }
            wire = _dumps(frame)
            try:
                await db.execute(
                    "INSERT INTO session_events (session_id, user_id, event_type, event_data, "
                    "timestamp, seq, event_id, client_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    session_id,
                    user_id,
                    frame["type"],
                    wire,
                    now,
                    seq,
                    frame["id"],
                    client_id,
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == _CLIENT_INDEX:
                    raise _DuplicateClientId from exc
                raise
            return CommittedEvent(session_id, frame["id"], seq, frame["type"], frame, wire)

        append = _Append(job, user_id, client_id, plain)
        queued = self._appends.setdefault(session_id, [])
        queued.append(append)
        try:
            async with self._session_lock(session_id):
                if not append.future.done():
                    # Ours was not in an earlier holder's batch: commit everything queued
                    # for this session by now (ours first), together.
                    await self._append_all(session_id, self._appends.pop(session_id))
        except asyncio.CancelledError:
            if self._appends.get(session_id) is queued:  # not taken yet: never written
                queued.remove(append)
                if not queued:
                    del self._appends[session_id]
            # Taken, it is committed with its batch all the same; nobody reads the answer.
            if not append.future.cancel() and not append.future.cancelled():
                append.future.exception()  # retrieved, so never logged as lost
            raise
        return append.future.result()

    async def _append_all(self, session_id: str, batch: list[_Append]) -> None:
        """Group commit per session: one transaction for every event waiting on its lock.

        The lock's holder commits them together, in the order queued, and answers every
        caller before the next holder starts (a waiter that finds its answer there returns
        at once), so seqs, fan-out and acks keep the order sent. Should any of them be
        refused (a resend, a refusal by the store), the batch is rolled back and each is
        committed on its own, in the same order.
        """

        async def all_of_them(db: Connection) -> list[CommittedEvent]:
            if all(append.plain for append in batch):
                first = await _take_seqs(db, session_id, len(batch))
                return [await append.job(db, first + i) for i, append in enumerate(batch)]
            return [await append.job(db, await _take_seqs(db, session_id, 1)) for append in batch]

        try:
            try:
                events = await self._write(all_of_them, writes=len(batch))
            except (_DuplicateClientId, ProtocolError) as refusal:
                if len(batch) == 1:
                    await self._answer_refused(session_id, batch[0], refusal)
                else:
                    for append in batch:
                        await self._append_alone(session_id, append)
                return
            except Exception as failure:  # the database: nobody's event was stored
                for append in batch:
                    _fail(append.future, failure)
                return
            for append, event in zip(batch, events, strict=True):
                _answer(append.future, event)
            for event in events:
                self._notify(event)
        finally:
            # Interrupted (the relay is stopping): whoever is still waiting learns that
            # the outcome is unknown, and resends (a resend is idempotent).
            for append in batch:
                _fail(append.future, StoreUnavailable("the write was interrupted; resend it"))

    async def _append_alone(self, session_id: str, append: _Append) -> None:
        # A resend is rare: rather than a lookup before every append (a round trip while
        # the session's lock is held), the unique index on client ids refuses it (or the
        # job is refused: the session has ended since), the transaction rolls back, and
        # the stored event is read and answered as a duplicate.
        async def alone(db: Connection) -> CommittedEvent:
            return await append.job(db, await _take_seqs(db, session_id, 1))

        try:
            event = await self._write(alone)
        except (_DuplicateClientId, ProtocolError) as refusal:
            await self._answer_refused(session_id, append, refusal)
        except Exception as failure:
            _fail(append.future, failure)
        else:
            _answer(append.future, event)
            self._notify(event)

    async def _answer_refused(self, session_id: str, append: _Append, refusal: Exception) -> None:
        found: CommittedEvent | None = None
        if append.client_id is not None and append.user_id is not None:
            try:
                found = await self.find_client_event(session_id, append.user_id, append.client_id)
            except Exception as failure:
                _fail(append.future, failure)
                return
        if found is not None:
            _answer(append.future, found)
        elif isinstance(refusal, _DuplicateClientId):
            _fail(append.future, StoreUnavailable("a resent event vanished; retry"))
        else:
            _fail(append.future, refusal)

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

        async def record(db: Connection) -> None:
            await _upsert_user(db, user_id, username, kind, now)
            await db.execute(
                "INSERT INTO session_participants (id, session_id, user_id, role, joined_at, "
                "is_active, last_seen) VALUES ($1, $2, $3, $4, $5, TRUE, $6) "
                "ON CONFLICT (session_id, user_id) DO UPDATE SET is_active = TRUE, "
                "left_at = NULL, last_seen = excluded.last_seen",
                new_id("p"),
                session_id,
                user_id,
                role.value,
                now,
                now,
            )

        event: CommittedEvent | None = None
        if announce:

            async def build(db: Connection, seq: int, _at: str) -> dict[str, Any]:
                await record(db)
                participant = await _participant_in(db, session_id, user_id)
                return {"type": "user_joined", "user": _user_info(participant)}

            event = await self._event(session_id, user_id, None, build)
        else:
            await self._write(record)
        participant = await self.get_participant(session_id, user_id)
        assert participant is not None
        return participant, event

    async def leave(self, session_id: str, user_id: str, reason: str) -> CommittedEvent:
        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            participant = await _participant_in(db, session_id, user_id)
            await db.execute(
                "UPDATE session_participants SET is_active = FALSE, left_at = $1, last_seen = $2 "
                "WHERE session_id = $3 AND user_id = $4",
                now,
                now,
                session_id,
                user_id,
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

        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            fields = dict(message)
            parent_id = fields.get("parent_id")
            if parent_id is not None:
                parent = await _message_in(db, session_id, parent_id, field="parent_id")
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
            # The author's name comes back with the insert: one round trip, no read-back.
            username = await db.fetchval(
                "INSERT INTO session_messages (id, session_id, user_id, message_type, content, "
                "metadata, parent_id, created_at, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                "RETURNING (SELECT username FROM users WHERE id = $3)",
                message_id,
                session_id,
                user_id,
                message_type.value,
                fields["content"],
                _dumps(metadata),
                fields.get("parent_id"),
                now,
                seq,
            )
            stored = _new_message(message_id, seq, message_type, user_id, username, fields, now)
            key = "comment" if message_type is MessageType.COMMENT else "message"
            event_type = "code_comment" if message_type is MessageType.COMMENT else "chat_message"
            return {"type": event_type, "id": message_id, key: stored}

        # Leaves the session's row alone: a batch of these takes its seqs at once.
        return await self._event(session_id, user_id, client_id, build, plain=True)

    async def edit_message(
        self, session_id: str, user_id: str, client_id: str | None, message_id: str, content: str
    ) -> CommittedEvent:
        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            message = await _live_message(db, session_id, message_id)
            if message.user_id != user_id:
                raise ProtocolError(
                    ErrorCode.NOT_AUTHOR, "you can only edit your own messages", field="message_id"
                )
            await db.execute(
                "UPDATE session_messages SET content = $1, updated_at = $2 WHERE id = $3",
                content,
                now,
                message_id,
            )
            updated = await _message_in(db, session_id, message_id)
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
        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            message = await _live_message(db, session_id, message_id)
            if message.user_id != user_id and not moderator:
                raise ProtocolError(
                    ErrorCode.NOT_AUTHOR,
                    "you can only delete your own messages (a host may delete any)",
                    field="message_id",
                )
            await db.execute(
                "UPDATE session_messages SET deleted_at = $1 WHERE id = $2", now, message_id
            )
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
        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            message = await _live_message(db, session_id, message_id)
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
            await _set_metadata(db, message_id, "reactions", reactions)
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
        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            comment = await _live_message(db, session_id, comment_id, field="comment_id")
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
            await _set_metadata(db, comment_id, "resolved", resolved)
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

        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            if columns:
                assignments = ", ".join(
                    f"{column} = ${number}" for number, column in enumerate(columns, start=1)
                )
                await db.execute(
                    f"UPDATE sessions SET {assignments} WHERE id = ${len(columns) + 1}",
                    *(_column_value(column, value) for column, value in columns.items()),
                    session_id,
                )
            return {"type": "session_update", "changes": columns, "updated_by": user_id}

        return await self._event(session_id, user_id, client_id, build)

    async def change_role(
        self, session_id: str, user_id: str, client_id: str | None, target_id: str, role: Role
    ) -> CommittedEvent:
        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            target = await _participant_in(db, session_id, target_id, field="user_id")
            if target.role is role:
                raise ProtocolError(
                    ErrorCode.INVALID_FRAME, f"{target.username} is already {role}", field="role"
                )
            await db.execute(
                "UPDATE session_participants SET role = $1 WHERE session_id = $2 AND user_id = $3",
                role.value,
                session_id,
                target_id,
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
        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            target = await _participant_in(db, session_id, target_id, field="user_id")
            await db.execute(
                "UPDATE session_participants SET removed_at = $1, is_active = FALSE, "
                "left_at = $2 WHERE session_id = $3 AND user_id = $4",
                now,
                now,
                session_id,
                target_id,
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

        async def build(db: Connection, seq: int, now: str) -> dict[str, Any]:
            await db.execute(
                "UPDATE sessions SET status = 'ended', ended_at = $1 WHERE id = $2",
                now,
                session_id,
            )
            await db.execute(
                "UPDATE session_participants SET is_active = FALSE, left_at = $1 "
                "WHERE session_id = $2 AND is_active",
                now,
                session_id,
            )
            return {"type": "session_ended", "ended_by": user_id or "admin"}

        return await self._event(session_id, user_id, client_id, build)


# -- schema migrations -------------------------------------------------------------------


async def postgres_schema_version(db: Connection) -> int:
    """The schema version in the ``search_path`` schema; 0 where there are no tables yet."""
    if await db.fetchval("SELECT to_regclass('meta')") is None:
        return 0
    value = await db.fetchval("SELECT value FROM meta WHERE key = 'schema_version'")
    return int(value) if value is not None else 0


async def migrate_postgres(
    db: Connection, schema: str | None, *, apply: bool = True
) -> tuple[int, int]:
    """Create the schema and apply pending migrations, one relay at a time: ``(before, after)``.

    Runs inside the caller's transaction, on a connection whose ``search_path`` is
    ``schema``. A transaction-scoped advisory lock keyed by the schema name makes a second
    relay starting at the same moment wait, then find the migrations applied. DDL is
    transactional in Postgres, so a failed migration leaves nothing half-done. With
    ``apply`` False nothing is created and a schema behind this code is refused.
    """
    if not apply:
        version = await postgres_schema_version(db)
        check_schema_version(version, len(MIGRATIONS), apply=False)
        return version, version
    key = int.from_bytes(
        hashlib.sha256(f"collab-lsp:{schema or ''}".encode()).digest()[:8], "big", signed=True
    )
    await db.execute("SELECT pg_advisory_xact_lock($1)", key)
    if schema:
        await db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await db.execute(BOOTSTRAP)
    value = await db.fetchval("SELECT value FROM meta WHERE key = 'schema_version'")
    version = int(value) if value is not None else 0
    check_schema_version(version, len(MIGRATIONS), apply=True)
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.execute(script)
        await db.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            number,
            utc_now(),
        )
        await db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            str(number),
        )
    return version, len(MIGRATIONS)


# -- queries shared by single reads and the snapshot transaction -------------------------


async def _get_session(db: Connection, session_id: str) -> SessionInfo | None:
    row = await db.fetchrow(_SESSION_SQL + " WHERE id = $1", session_id)
    return _session(row) if row else None


async def _last_seq(db: Connection, session_id: str) -> int:
    value = await db.fetchval("SELECT last_seq FROM sessions WHERE id = $1", session_id)
    return int(value) if value is not None else 0


async def _list_participants(db: Connection, session_id: str) -> list[ParticipantRecord]:
    rows = await db.fetch(
        _PARTICIPANT_SQL + " WHERE p.session_id = $1 ORDER BY p.joined_at, p.position", session_id
    )
    return [_participant(row) for row in rows]


async def _messages_before(
    db: Connection, session_id: str, before_seq: int | None, limit: int
) -> tuple[list[Message], bool]:
    rows = await db.fetch(
        _MESSAGE_SQL + " WHERE m.session_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3",
        session_id,
        before_seq if before_seq is not None else 2**62,
        limit + 1,
    )
    has_more = len(rows) > limit
    return [_message(row) for row in reversed(rows[:limit])], has_more


# -- helpers used inside write transactions ---------------------------------------------


def _column_value(column: str, value: Any) -> Any:
    """Coerce a session column's value to what the Postgres column type takes."""
    if column == "health_score" and value is not None:
        return float(value)
    if column in ("title", "status") and value is not None:
        return str(value)
    return value


async def _upsert_user(
    db: Connection, user_id: str, username: str, kind: ParticipantKind, now: str
) -> None:
    await db.execute(
        "INSERT INTO users (id, username, kind, created_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (id) DO UPDATE SET username = excluded.username, kind = excluded.kind",
        user_id,
        username,
        kind.value,
        now,
    )


async def _participant_in(
    db: Connection, session_id: str, user_id: str, *, field: str = "user_id"
) -> ParticipantRecord:
    row = await db.fetchrow(
        _PARTICIPANT_SQL + " WHERE p.session_id = $1 AND p.user_id = $2", session_id, user_id
    )
    if row is None or row[7] is not None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_USER, f"{user_id!r} is not a participant of this session", field=field
        )
    return _participant(row)


async def _take_seqs(db: Connection, session_id: str, count: int) -> int:
    """The first of ``count`` new seqs of the session; the row stays locked until commit."""
    last = await db.fetchval(
        "UPDATE sessions SET last_seq = last_seq + $2 WHERE id = $1 AND status <> 'ended' "
        "RETURNING last_seq",
        session_id,
        count,
    )
    if last is None:
        raise ProtocolError(ErrorCode.SESSION_ENDED, "this session has ended")
    return int(last) - count + 1


def _answer(future: asyncio.Future[CommittedEvent], event: CommittedEvent) -> None:
    if not future.done():  # its caller may have been cancelled meanwhile
        future.set_result(event)


def _fail(future: asyncio.Future[CommittedEvent], failure: BaseException) -> None:
    if not future.done():
        future.set_exception(failure)


async def _nothing_to_reset(_connection: Connection) -> None:
    """The pool's reset on release: none. asyncpg's default runs a query (RESET ALL,
    UNLISTEN...) each time a connection goes back, a round trip per write; the store sets
    no session state, takes no advisory locks and listens to nothing, and every
    transaction it opens is closed by its context manager."""


async def _message_in(
    db: Connection, session_id: str, message_id: str, *, field: str = "message_id"
) -> Message:
    row = await db.fetchrow(
        _MESSAGE_SQL + " WHERE m.session_id = $1 AND m.id = $2", session_id, message_id
    )
    if row is None:
        raise ProtocolError(
            ErrorCode.NOT_FOUND, f"no message {message_id!r} in this session", field=field
        )
    return _message(row)


async def _live_message(
    db: Connection, session_id: str, message_id: str, *, field: str = "message_id"
) -> Message:
    message = await _message_in(db, session_id, message_id, field=field)
    if message.deleted:
        raise ProtocolError(ErrorCode.NOT_FOUND, "that message was deleted", field=field)
    return message


async def _set_metadata(db: Connection, message_id: str, key: str, value: Any) -> None:
    """Set one key of a message's metadata, keeping the other keys in their order.

    Done in Python rather than with ``jsonb_set`` so the stored text keeps key order (as
    SQLite's ``json_set`` does). The session row lock taken for the seq serialises writers.
    """
    text = await db.fetchval("SELECT metadata FROM session_messages WHERE id = $1", message_id)
    metadata = json.loads(text) if text else {}
    metadata[key] = value
    await db.execute(
        "UPDATE session_messages SET metadata = $1 WHERE id = $2", _dumps(metadata), message_id
    )
