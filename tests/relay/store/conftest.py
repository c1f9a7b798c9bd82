"""Stores for the contract tests: SQLite on a tmp file, Postgres on a fresh schema.

Postgres is the real server named by ``COLLAB_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Every test gets its own schema, dropped
at teardown, so runs never see each other's data. Where no server answers, the Postgres
cases fail with the reason: they are never skipped (CI has the service).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from collab_lsp.relay.store import PostgresStore, SqliteStore, Store
from tests.services import PG_DSN

MakeStore = Callable[[], Store]
MakePostgres = Callable[..., PostgresStore]


@pytest.fixture
async def fresh_schema() -> AsyncIterator[str | None]:
    """A fresh schema name, dropped at teardown; None when no PostgreSQL server answers."""
    try:
        admin = await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unreachable.append(f"PostgreSQL is not reachable at {PG_DSN}: {exc}")
        yield None
        return
    name = f"test_{uuid.uuid4().hex[:16]}"
    try:
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await admin.close()


_unreachable: list[str] = []


def _require(schema: str | None) -> str:
    if schema is None:
        pytest.fail(_unreachable[-1] if _unreachable else "PostgreSQL is not reachable")
    return schema


@pytest.fixture
def pg_schema(fresh_schema: str | None) -> str:
    """This test's schema name (created by the first store that opens on it)."""
    return _require(fresh_schema)


@pytest.fixture
async def make_postgres(pg_schema: str) -> AsyncIterator[MakePostgres]:
    """Make PostgresStores on this test's schema (as several relays would be); closes them."""
    made: list[PostgresStore] = []

    def make(dsn: str = PG_DSN, **kwargs: object) -> PostgresStore:
        kwargs.setdefault("schema", pg_schema)
        store = PostgresStore(dsn, **kwargs)  # type: ignore[arg-type]
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_schema: str | None
) -> AsyncIterator[MakeStore]:
    """Make unopened stores that all point at the same database (to test reopening)."""
    made: list[Store] = []
    if request.param == "postgres":
        schema = _require(fresh_schema)

    def make() -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(str(tmp_path / "relay.db"))
        else:
            store = PostgresStore(PG_DSN, schema=schema)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    store = make_store()
    await store.open()
    return store
