"""Persistence for the relay: one interface, SQLite as the embedded default."""

from collab_lsp.relay.store.base import (
    CommittedEvent,
    InviteRecord,
    ParticipantRecord,
    Store,
    StoreUnavailable,
)
from collab_lsp.relay.store.sqlite import SqliteStore

__all__ = [
    "CommittedEvent",
    "InviteRecord",
    "ParticipantRecord",
    "SqliteStore",
    "Store",
    "StoreUnavailable",
]
