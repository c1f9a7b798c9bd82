"""Move a relay's whole history between stores, and bring a store's schema up to date.

``export_store`` writes a store as JSON Lines: the first line is a header (format version,
source kind, schema version, row counts), then one record per table row, tables in an
order that satisfies every foreign key (meta, users, sessions, participants, messages,
events, invites). It reads one consistent snapshot and streams it: rows are fetched in
batches and written as they come, never all held in memory.

``import_store`` validates each line with pydantic before it writes it, and writes
everything in **one transaction** into an **empty** store, so a bad line (its
number and field are named), a truncated file (the header's counts do not match) or a
non-empty target leaves the target as it was (apart from the schema, which is migrated
first). It preserves what clients and tokens depend on:

- ids, ``seq`` numbers, timestamps and each session's ``last_seq``, and every event's
  wire text byte for byte, so ``events_after`` replays exactly what was fanned out;
- the relay secret (``meta.relay_secret``), so tokens minted before the move stay valid;
- the epoch (``meta.epoch``), so a sidecar resuming with ``(epoch, seq)`` continues where
  it was: every ``(session, seq)`` names the same event in the target. ``new_epoch=True``
  makes every client reset instead; use it when the source went on taking writes after
  the export (its later seqs would be reused for other events in the target).

``migrate`` applies pending schema migrations to a store, ``schema_version`` reads the
version without changing anything. The same code runs when a store opens with
``migrate=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Literal, Protocol

import aiosqlite
import asyncpg  # type: ignore[import-untyped]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from collab_lsp import __version__
from collab_lsp.protocol.codec import utc_now
from collab_lsp.protocol.models import MessageType, ParticipantKind, SessionStatus
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.config import RelayConfig
from collab_lsp.relay.store import pg_schema, schema
from collab_lsp.relay.store.base import StoreUnavailable
from collab_lsp.relay.store.postgres import (
    PostgresStore,
    migrate_postgres,
    postgres_schema_version,
)
from collab_lsp.relay.store.sqlite import (
    check_schema_version,
    migrate_sqlite,
    new_id,
    sqlite_schema_version,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ExportSummary",
    "ImportSummary",
    "StoreLocation",
    "TransferError",
    "export_store",
    "export_to_file",
    "import_store",
    "latest_schema_version",
    "migrate",
    "schema_version",
]

FORMAT: Literal["collab-relay-export"] = "collab-relay-export"
FORMAT_VERSION = 1
_BATCH = 500

Kind = Literal["sqlite", "postgres"]
Connection = Any  # asyncpg.Connection (asyncpg ships no type information)


class TransferError(Exception):
    """The export or import cannot go on; the message says why (for a file, which line)."""


# -- where a store lives ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A store's database: a SQLite file, or a PostgreSQL URL and schema."""

    kind: Kind
    path: str = ""
    dsn: str = field(default="", repr=False)
    schema: str | None = None

    @classmethod
    def from_config(cls, config: RelayConfig) -> StoreLocation:
        """The store ``make_store(config)`` opens."""
        if config.database_url:
            return cls.postgres(config.database_url, config.database_schema)
        return cls.sqlite(config.db)

    @classmethod
    def sqlite(cls, path: str) -> StoreLocation:
        return cls("sqlite", path=path)

    @classmethod
    def postgres(cls, dsn: str, schema: str | None = None) -> StoreLocation:
        try:
            PostgresStore(dsn, schema=schema)  # validates the schema name
        except ValueError as exc:
            raise TransferError(str(exc)) from None
        return cls("postgres", dsn=dsn, schema=schema)

    @property
    def where(self) -> str:
        """The database, for messages (without a password)."""
        if self.kind == "sqlite":
            return f"SQLite file {self.path}"
        return f"PostgreSQL at {PostgresStore(self.dsn, schema=self.schema).where}"


def latest_schema_version(kind: Kind) -> int:
    """The schema version this code migrates a ``kind`` store to."""
    return len(schema.MIGRATIONS if kind == "sqlite" else pg_schema.MIGRATIONS)


# -- schema migrations --------------------------------------------------------------------


async def schema_version(location: StoreLocation) -> int:
    """The store's schema version, changing nothing; 0 where there is no database yet."""
    if location.kind == "sqlite":
        return await asyncio.to_thread(_sqlite_read_version, location.path)
    db = await _pg_connect(location)
    try:
        return await postgres_schema_version(db)
    except asyncpg.PostgresError as exc:
        raise StoreUnavailable(f"cannot read {location.where}: {exc}") from exc
    finally:
        await db.close()


async def migrate(location: StoreLocation) -> tuple[int, int]:
    """Apply pending migrations (creating the database or schema): ``(before, after)``.

    Idempotent; a schema newer than this code raises ``StoreUnavailable`` and changes
    nothing. Safe while relays run on the store (they migrated when they opened it).
    """
    if location.kind == "sqlite":
        return await asyncio.to_thread(_sqlite_migrate, location.path)
    db = await _pg_connect(location)
    try:
        async with db.transaction():
            before, after = await migrate_postgres(db, location.schema)
        return before, after
    except asyncpg.PostgresError as exc:
        raise StoreUnavailable(f"cannot migrate {location.where}: {exc}") from exc
    finally:
        await db.close()


def _sqlite_read_version(path: str) -> int:
    if not Path(path).exists():
        return 0
    try:
        connection = _sqlite_connect_read_only(path)
        try:
            return sqlite_schema_version(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot read SQLite database {path!r}: {exc}") from exc


def _sqlite_migrate(path: str) -> tuple[int, int]:
    try:
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        folder = Path(path).parent
        hint = f" (the folder {str(folder)!r} does not exist)" if not folder.is_dir() else ""
        raise StoreUnavailable(f"cannot open SQLite database {path!r}: {exc}{hint}") from exc
    try:
        # No journal_mode change here: it fails at once ("database is locked") while another
        # process opens the file, where BEGIN IMMEDIATE waits. The store sets WAL itself.
        connection.execute("PRAGMA busy_timeout=5000")
        return migrate_sqlite(connection)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot migrate SQLite database {path!r}: {exc}") from exc
    finally:
        connection.close()


def _sqlite_connect_read_only(path: str) -> sqlite3.Connection:
    return sqlite3.connect(_read_only_uri(path), uri=True, isolation_level=None)


def _read_only_uri(path: str) -> str:
    """A URI that opens the SQLite file read-only (and never creates it)."""
    if not Path(path).is_file():
        raise TransferError(f"there is no SQLite database at {path!r}")
    return Path(path).absolute().as_uri() + "?mode=ro"


async def _pg_connect(location: StoreLocation) -> Connection:
    settings = {"search_path": f'"{location.schema}"'} if location.schema else {}
    try:
        return await asyncpg.connect(location.dsn, timeout=10, server_settings=settings)
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        raise StoreUnavailable(f"cannot connect to {location.where}: {exc}") from exc


# -- the records of an export file --------------------------------------------------------

Text = Annotated[str, StringConstraints(min_length=1)]
Timestamp = Annotated[
    str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
]
Seq = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MetaRecord(_Record):
    type: Literal["meta"]
    key: Text
    value: str

    @field_validator("key")
    @classmethod
    def _not_the_schema_version(cls, key: str) -> str:
        if key == "schema_version":
            raise ValueError("schema_version is set by the target's migrations, not imported")
        return key


class UserRecord(_Record):
    type: Literal["user"]
    id: Text
    username: str
    kind: ParticipantKind
    created_at: Timestamp


class SessionRecord(_Record):
    type: Literal["session"]
    id: Text
    title: str
    status: SessionStatus
    token_count: int
    health_score: float
    host_id: Text
    created_at: Timestamp
    ended_at: Timestamp | None
    last_seq: Count


class ParticipantRecord(_Record):
    type: Literal["participant"]
    id: Text
    session_id: Text
    user_id: Text
    role: Role
    joined_at: Timestamp
    left_at: Timestamp | None
    is_active: bool | None
    last_seen: Timestamp | None
    removed_at: Timestamp | None


class MessageRecord(_Record):
    type: Literal["message"]
    id: Text
    session_id: Text
    user_id: Text
    message_type: MessageType
    content: str
    metadata: str | None
    parent_id: Text | None
    created_at: Timestamp
    updated_at: Timestamp | None
    deleted_at: Timestamp | None
    seq: Seq

    @field_validator("metadata")
    @classmethod
    def _json_object(cls, metadata: str | None) -> str | None:
        if metadata is not None and not isinstance(_json(metadata), dict):
            raise ValueError("must be the text of a JSON object")
        return metadata


class EventRecord(_Record):
    type: Literal["event"]
    session_id: Text
    user_id: Text | None
    event_type: Text
    event_data: str
    timestamp: Timestamp
    seq: Seq
    event_id: Text
    client_id: Text | None

    @model_validator(mode="after")
    def _data_is_this_event(self) -> EventRecord:
        """``event_data`` is the frame that was fanned out: it must say the same."""
        frame = _json(self.event_data)
        if not isinstance(frame, dict):
            raise ValueError("event_data must be the text of a JSON object")
        for key, expected in (
            ("type", self.event_type),
            ("session_id", self.session_id),
            ("id", self.event_id),
            ("seq", self.seq),
            ("timestamp", self.timestamp),
        ):
            if frame.get(key) != expected:
                raise ValueError(
                    f"event_data has {key} {frame.get(key)!r} but the record has {expected!r}"
                )
        return self


class InviteRecord(_Record):
    type: Literal["invite"]
    id: Text
    session_id: Text
    role: Role
    created_by: Text
    created_at: Timestamp
    expires_at: Timestamp
    max_uses: Count
    uses: Count
    revoked_at: Timestamp | None


Record = Annotated[
    MetaRecord
    | UserRecord
    | SessionRecord
    | ParticipantRecord
    | MessageRecord
    | EventRecord
    | InviteRecord,
    Field(discriminator="type"),
]
_RECORD: TypeAdapter[Record] = TypeAdapter(Record)


class Counts(_Record):
    meta: Count
    user: Count
    session: Count
    participant: Count
    message: Count
    event: Count
    invite: Count


class Header(_Record):
    format: Literal["collab-relay-export"]
    version: int
    source: Kind
    schema_version: Count
    exported_at: Timestamp
    collab_lsp: str
    counts: Counts


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError("is not valid JSON") from None


@dataclass(frozen=True, slots=True)
class _Table:
    """One table, exported in an order that inserts cleanly (parents before replies)."""

    record: str
    name: str
    model: type[_Record]
    sqlite_order: str
    postgres_order: str
    where: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(name for name in self.model.model_fields if name != "type")

    @property
    def key(self) -> int:
        """The position of the column that names a row, for messages."""
        columns = self.columns
        for name in ("id", "event_id", "key"):
            if name in columns:
                return columns.index(name)
        raise AssertionError(self.name)


# Insertion order (rowid, or position) is kept where a read breaks ties by it.
_TABLES = (
    _Table("meta", "meta", MetaRecord, "key", "key", where="key <> 'schema_version'"),
    _Table("user", "users", UserRecord, "rowid", "created_at, id"),
    _Table("session", "sessions", SessionRecord, "rowid", "position"),
    _Table("participant", "session_participants", ParticipantRecord, "rowid", "position"),
    _Table("message", "session_messages", MessageRecord, "session_id, seq", "session_id, seq"),
    _Table("event", "session_events", EventRecord, "session_id, seq", "session_id, seq"),
    _Table("invite", "invites", InviteRecord, "rowid", "created_at, id"),
)
_BY_RECORD = {table.record: table for table in _TABLES}
_DATA_TABLES = tuple(table for table in _TABLES if table.record != "meta")


def _plain(value: Any, column: str) -> Any:
    """A database value as JSON: SQLite's 0/1 booleans become booleans."""
    if column == "is_active" and value is not None:
        return bool(value)
    if column == "health_score" and value is not None:
        return float(value)
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- export -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportSummary:
    source: Kind
    schema_version: int
    counts: dict[str, int]


class _Source(Protocol):
    async def count(self, table: _Table) -> int: ...
    def rows(self, table: _Table) -> AsyncIterator[tuple[Any, ...]]: ...


async def export_store(location: StoreLocation, out: IO[str]) -> ExportSummary:
    """Write the whole store to ``out`` as JSON Lines, from one consistent snapshot."""
    latest = latest_schema_version(location.kind)
    async with _open_source(location) as (source, version):
        if version != latest:
            if version > latest:
                check_schema_version(version, latest, apply=True)  # raises: too new
            raise TransferError(
                f"{location.where} has schema version {version}, this collab-lsp exports "
                f"version {latest}: run `collab-relay migrate` on it first"
            )
        counts = {table.record: await source.count(table) for table in _TABLES}
        header = Header(
            format=FORMAT,
            version=FORMAT_VERSION,
            source=location.kind,
            schema_version=version,
            exported_at=utc_now(),
            collab_lsp=__version__,
            counts=Counts(**counts),
        )
        out.write(header.model_dump_json() + "\n")
        for table in _TABLES:
            columns = table.columns
            async for row in source.rows(table):
                record = {"type": table.record}
                record.update(
                    (column, _plain(value, column))
                    for column, value in zip(columns, row, strict=True)
                )
                out.write(_dumps(record) + "\n")
    return ExportSummary(location.kind, version, counts)


async def export_to_file(location: StoreLocation, path: str) -> ExportSummary:
    """``export_store`` into ``path``, which appears only once the export is complete."""
    target = Path(path)
    handle, partial = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            summary = await export_store(location, out)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return summary


@contextlib.asynccontextmanager
async def _open_source(location: StoreLocation) -> AsyncIterator[tuple[_Source, int]]:
    """A read-only snapshot of the store, and its schema version."""
    if location.kind == "sqlite":
        uri = await asyncio.to_thread(_read_only_uri, location.path)
        try:
            reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {location.where}: {exc}") from exc
        try:
            await reader.execute("PRAGMA busy_timeout=5000")
            await reader.execute("BEGIN")  # WAL: every read below sees one snapshot
            try:
                version = await _sqlite_version(reader)
                yield _SqliteSource(reader), version
            finally:
                await reader.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {location.where}: {exc}") from exc
        finally:
            await reader.close()
        return
    db = await _pg_connect(location)
    try:
        async with db.transaction(isolation="repeatable_read", readonly=True):
            version = await postgres_schema_version(db)
            yield _PostgresSource(db), version
    except asyncpg.PostgresError as exc:
        raise StoreUnavailable(f"cannot read {location.where}: {exc}") from exc
    finally:
        await db.close()


async def _sqlite_version(reader: aiosqlite.Connection) -> int:
    """``sqlite_schema_version`` on the aiosqlite connection."""
    if not await reader.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ):
        return 0
    rows = list(
        await reader.execute_fetchall("SELECT value FROM meta WHERE key = 'schema_version'")
    )
    return int(rows[0][0]) if rows else 0


class _SqliteSource:
    def __init__(self, reader: aiosqlite.Connection) -> None:
        self.reader = reader

    async def count(self, table: _Table) -> int:
        where = f" WHERE {table.where}" if table.where else ""
        rows = await self.reader.execute_fetchall(f"SELECT COUNT(*) FROM {table.name}{where}")
        return int(next(iter(rows))[0])

    async def rows(self, table: _Table) -> AsyncIterator[tuple[Any, ...]]:
        where = f" WHERE {table.where}" if table.where else ""
        sql = (
            f"SELECT {', '.join(table.columns)} FROM {table.name}{where} "
            f"ORDER BY {table.sqlite_order}"
        )
        async with self.reader.execute(sql) as cursor:
            while batch := await cursor.fetchmany(_BATCH):
                for row in batch:
                    yield tuple(row)


class _PostgresSource:
    def __init__(self, db: Connection) -> None:
        self.db = db

    async def count(self, table: _Table) -> int:
        where = f" WHERE {table.where}" if table.where else ""
        return int(await self.db.fetchval(f"SELECT COUNT(*) FROM {table.name}{where}"))

    async def rows(self, table: _Table) -> AsyncIterator[tuple[Any, ...]]:
        where = f" WHERE {table.where}" if table.where else ""
        sql = (
            f"SELECT {', '.join(table.columns)} FROM {table.name}{where} "
            f"ORDER BY {table.postgres_order}"
        )
        async for row in self.db.cursor(sql, prefetch=_BATCH):
            yield tuple(row)


# -- import -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportSummary:
    source: Kind
    counts: dict[str, int]
    epoch: str | None
    """The epoch the target now has from the import; None: the file had none (it keeps its own)."""
    new_epoch: bool
    secret_kept: bool


class _Sink(Protocol):
    async def begin(self) -> None: ...
    async def row_counts(self) -> dict[str, int]: ...
    async def insert(self, table: _Table, rows: list[tuple[Any, ...]]) -> None: ...
    async def fetchrow(self, sql: str) -> tuple[Any, ...] | None: ...
    async def set_meta(self, key: str, value: str) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


async def import_store(
    location: StoreLocation, lines: Iterable[bytes], *, new_epoch: bool = False
) -> ImportSummary:
    """Import an export into the empty store at ``location``, all or nothing.

    The target's schema is migrated first. Refused (``TransferError``) when the target
    holds any session, user, participant, message, event or invite, and for any line
    that is not a valid record; then nothing is imported.
    """
    numbered = enumerate(lines, start=1)
    header = _read_header(numbered)
    await migrate(location)
    async with _open_sink(location) as (sink, integrity_errors):
        await sink.begin()
        present = {name: count for name, count in (await sink.row_counts()).items() if count}
        if present:
            held = ", ".join(f"{count} {name}" for name, count in present.items())
            raise TransferError(
                f"{location.where} is not empty ({held}): import only into a new, empty "
                "database (another --db file, or another --database-schema)"
            )
        seen = dict.fromkeys(_BY_RECORD, 0)
        epoch: str | None = None
        secret_kept = False
        batch: list[tuple[int, tuple[Any, ...]]] = []
        batch_table: _Table | None = None
        for number, line in numbered:
            if not line.strip():
                continue
            record = _parse(number, line)
            seen[record.type] += 1
            if isinstance(record, MetaRecord):
                if record.key == "epoch":
                    if new_epoch:
                        continue
                    epoch = record.value
                secret_kept = secret_kept or record.key == "relay_secret"
            table = _BY_RECORD[record.type]
            if table is not batch_table or len(batch) >= _BATCH:
                await _flush(sink, batch_table, batch, integrity_errors)
                batch, batch_table = [], table
            values = record.model_dump(mode="json")
            batch.append((number, tuple(values[column] for column in table.columns)))
        await _flush(sink, batch_table, batch, integrity_errors)
        expected = header.counts.model_dump()
        if seen != expected:
            differ = ", ".join(
                f"{seen[name]} {name} records (the header says {expected[name]})"
                for name in seen
                if seen[name] != expected[name]
            )
            raise TransferError(
                f"the file holds {differ}: it is truncated or was edited; nothing was imported"
            )
        await _check_seqs(sink)
        if new_epoch:
            epoch = new_id("ep")
            await sink.set_meta("epoch", epoch)
        await sink.commit()
    return ImportSummary(header.source, expected, epoch, new_epoch, secret_kept)


def _read_header(numbered: Iterable[tuple[int, bytes]]) -> Header:
    first = next(iter(numbered), None)
    if first is None:
        raise TransferError("the file is empty: it is not a collab-relay export")
    try:
        raw = json.loads(first[1])
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise TransferError(
            f'line 1: not a collab-relay export header (expected {{"format": "{FORMAT}", ...}})'
        )
    if isinstance(raw.get("version"), int) and raw["version"] > FORMAT_VERSION:
        raise TransferError(
            f"line 1: format version {raw['version']} was written by a newer collab-lsp; "
            f"this one reads version {FORMAT_VERSION}: upgrade collab-lsp"
        )
    try:
        header = Header.model_validate_json(first[1])
    except ValidationError as exc:
        raise _problem(1, exc) from None
    if header.version != FORMAT_VERSION:
        raise TransferError(f"line 1: unknown format version {header.version}")
    latest = latest_schema_version(header.source)
    if header.schema_version > latest:
        raise TransferError(
            f"line 1: exported from schema version {header.schema_version}, newer than this "
            f"collab-lsp's ({latest}): upgrade collab-lsp"
        )
    return header


def _parse(number: int, line: bytes) -> Record:
    try:
        return _RECORD.validate_json(line)
    except ValidationError as exc:
        raise _problem(number, exc) from None


def _problem(number: int, exc: ValidationError) -> TransferError:
    errors = exc.errors(include_url=False)
    error = errors[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        message = error["msg"]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    prefix = f"line {number}: {where}: " if where else f"line {number}: "
    return TransferError(prefix + message + more)


async def _flush(
    sink: _Sink,
    table: _Table | None,
    batch: list[tuple[int, tuple[Any, ...]]],
    integrity_errors: tuple[type[BaseException], ...],
) -> None:
    """Insert a batch; when the database refuses it, find and name the line it refused."""
    if table is None or not batch:
        return
    try:
        await sink.insert(table, [row for _, row in batch])
        return
    except integrity_errors as exc:
        refusal: BaseException = exc
    for number, row in batch:
        try:
            await sink.insert(table, [row])
        except integrity_errors as exc:
            raise TransferError(
                f"line {number}: the {table.record} {row[table.key]!r} is refused by the database: "
                f"{_database_message(exc)}"
            ) from None
    raise TransferError(  # the rows pass one by one but not together
        f"lines {batch[0][0]}-{batch[-1][0]}: refused by the database: {_database_message(refusal)}"
    )


def _database_message(exc: BaseException) -> str:
    return " ".join(str(exc).split())  # asyncpg's message has the DETAIL on a line of its own


async def _check_seqs(sink: _Sink) -> None:
    """Every session's ``last_seq`` is at least its highest seq, so new writes cannot collide."""
    for table in ("session_events", "session_messages"):
        row = await sink.fetchrow(
            f"SELECT s.id, s.last_seq, MAX(t.seq) FROM sessions s JOIN {table} t "
            "ON t.session_id = s.id GROUP BY s.id, s.last_seq HAVING MAX(t.seq) > s.last_seq "
            "LIMIT 1"
        )
        if row is not None:
            raise TransferError(
                f"session {row[0]!r} has last_seq {row[1]} but {table} holds seq {row[2]}: "
                "the file is inconsistent; nothing was imported"
            )


@contextlib.asynccontextmanager
async def _open_sink(
    location: StoreLocation,
) -> AsyncIterator[tuple[_Sink, tuple[type[BaseException], ...]]]:
    """A sink in one transaction, rolled back unless committed; and its refusal errors."""
    sink: _SqliteSink | _PostgresSink
    errors: tuple[type[BaseException], ...]
    closing: Callable[[], Awaitable[None]]
    if location.kind == "sqlite":
        try:
            writer = await aiosqlite.connect(location.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {location.where}: {exc}") from exc
        sink, errors = _SqliteSink(writer), (sqlite3.IntegrityError,)
        closing = writer.close
    else:
        db = await _pg_connect(location)
        sink, errors = _PostgresSink(db), (asyncpg.IntegrityConstraintViolationError,)
        closing = db.close
    try:
        yield sink, errors
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            await sink.rollback()
        raise StoreUnavailable(f"import into {location.where} failed: {exc}") from exc
    except asyncpg.PostgresError as exc:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
            await sink.rollback()
        raise StoreUnavailable(f"import into {location.where} failed: {exc}") from exc
    except BaseException:
        with contextlib.suppress(sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError):
            await sink.rollback()
        raise
    finally:
        await closing()


class _SqliteSink:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.open = False

    async def begin(self) -> None:
        await self.db.execute("PRAGMA foreign_keys=ON")
        await self.db.execute("PRAGMA busy_timeout=5000")
        await self.db.execute("BEGIN IMMEDIATE")  # the write lock: nobody writes meanwhile
        self.open = True

    async def row_counts(self) -> dict[str, int]:
        counts = {}
        for table in _DATA_TABLES:
            rows = await self.db.execute_fetchall(f"SELECT COUNT(*) FROM {table.name}")
            counts[table.name] = int(next(iter(rows))[0])
        return counts

    async def insert(self, table: _Table, rows: list[tuple[Any, ...]]) -> None:
        columns = table.columns
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        if table.record == "meta":
            sql += " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        await self.db.execute("SAVEPOINT batch")
        try:
            await self.db.executemany(sql, rows)
        except BaseException:
            await self.db.execute("ROLLBACK TO batch")
            raise
        finally:
            await self.db.execute("RELEASE batch")

    async def fetchrow(self, sql: str) -> tuple[Any, ...] | None:
        rows = list(await self.db.execute_fetchall(sql))
        return tuple(rows[0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def commit(self) -> None:
        await self.db.execute("COMMIT")
        self.open = False

    async def rollback(self) -> None:
        if self.open:
            self.open = False
            await self.db.execute("ROLLBACK")


class _PostgresSink:
    def __init__(self, db: Connection) -> None:
        self.db = db
        self.transaction: Any = None

    async def begin(self) -> None:
        self.transaction = self.db.transaction()
        await self.transaction.start()
        # Relays (and a second import) wait until this one commits or rolls back.
        names = ", ".join(table.name for table in _TABLES)
        await self.db.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")

    async def row_counts(self) -> dict[str, int]:
        counts = {}
        for table in _DATA_TABLES:
            counts[table.name] = int(await self.db.fetchval(f"SELECT COUNT(*) FROM {table.name}"))
        return counts

    async def insert(self, table: _Table, rows: list[tuple[Any, ...]]) -> None:
        columns = table.columns
        placeholders = ", ".join(f"${number}" for number in range(1, len(columns) + 1))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"
        if table.record == "meta":
            sql += " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        async with self.db.transaction():  # a savepoint: a refused batch rolls back alone
            await self.db.executemany(sql, rows)

    async def fetchrow(self, sql: str) -> tuple[Any, ...] | None:
        row = await self.db.fetchrow(sql)
        return tuple(row) if row is not None else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value,
        )

    async def commit(self) -> None:
        transaction, self.transaction = self.transaction, None
        if transaction is not None:
            await transaction.commit()

    async def rollback(self) -> None:
        transaction, self.transaction = self.transaction, None
        if transaction is not None:
            await transaction.rollback()
