"""Persistence for the relay: one interface, SQLite as the embedded default, Postgres to share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collab_lsp.relay.store.base import (
    CommittedEvent,
    InviteRecord,
    ParticipantRecord,
    Store,
    StoreUnavailable,
)
from collab_lsp.relay.store.postgres import PostgresStore
from collab_lsp.relay.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from collab_lsp.relay.config import RelayConfig

__all__ = [
    "CommittedEvent",
    "InviteRecord",
    "ParticipantRecord",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreUnavailable",
    "make_store",
]


def make_store(config: RelayConfig) -> Store:
    """PostgreSQL when a database URL is given (several relays share it), else the SQLite file."""
    if config.database_url:
        return PostgresStore(
            config.database_url, schema=config.database_schema, migrate=config.auto_migrate
        )
    return SqliteStore(
        config.db,
        synchronous=config.synchronous,
        migrate=config.auto_migrate,
        commit_window=config.commit_window_seconds,
    )
