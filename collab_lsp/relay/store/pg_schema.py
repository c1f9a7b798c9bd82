"""Versioned PostgreSQL migrations: the same tables as the SQLite schema, in Postgres types.

Choices that keep the two stores' frames identical:

- Timestamps are ``TEXT`` in the ISO format the protocol uses (``utc_now()``), with the
  ``"C"`` collation so that ordering by them is byte order, as in SQLite.
- ``session_events.event_data`` and ``session_messages.metadata`` are ``TEXT`` holding JSON,
  not ``JSONB``: the event log must return the exact wire text that was fanned out, and
  JSONB would reorder object keys (the order of a message's ``reactions`` would change).
  The one JSON query (``comments_after`` by file) casts to ``jsonb`` where it needs to.
- Numbers that SQLite stores as 64-bit are ``BIGINT`` / ``DOUBLE PRECISION``.
- ``position`` columns (identity) break ties between rows written in the same millisecond,
  so listing order is insertion order, as SQLite's rowid order gives.

``meta`` (schema_version, epoch, relay_secret) and ``schema_migrations`` (one row per
applied migration) are created by the store's bootstrap before any migration runs.
"""

from __future__ import annotations

__all__ = ["BOOTSTRAP", "MIGRATIONS"]

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
);
"""

# Each entry upgrades the schema by one version; never edit a released entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'human',
        created_at TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        token_count BIGINT NOT NULL DEFAULT 0,
        health_score DOUBLE PRECISION NOT NULL DEFAULT 100.0,
        host_id TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        ended_at TEXT COLLATE "C",
        last_seq BIGINT NOT NULL DEFAULT 0,
        position BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX idx_sessions_created ON sessions (created_at, position);
    CREATE TABLE session_participants (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        joined_at TEXT COLLATE "C" NOT NULL,
        left_at TEXT COLLATE "C",
        is_active BOOLEAN DEFAULT TRUE,
        last_seen TEXT COLLATE "C",
        removed_at TEXT COLLATE "C",
        position BIGINT GENERATED ALWAYS AS IDENTITY,
        UNIQUE (session_id, user_id)
    );
    CREATE INDEX idx_session_participants ON session_participants (session_id, is_active);
    CREATE TABLE session_messages (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        message_type TEXT NOT NULL,
        content TEXT NOT NULL,
        metadata TEXT,
        parent_id TEXT REFERENCES session_messages (id) ON DELETE CASCADE,
        created_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C",
        deleted_at TEXT COLLATE "C",
        seq BIGINT NOT NULL
    );
    CREATE INDEX idx_session_messages ON session_messages (session_id, created_at DESC);
    CREATE INDEX idx_session_messages_seq ON session_messages (session_id, seq);
    CREATE TABLE session_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
        event_type TEXT NOT NULL,
        event_data TEXT NOT NULL,
        timestamp TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        client_id TEXT,
        UNIQUE (session_id, seq)
    );
    CREATE INDEX idx_session_events ON session_events (session_id, timestamp DESC);
    CREATE UNIQUE INDEX idx_session_events_client
        ON session_events (session_id, user_id, client_id) WHERE client_id IS NOT NULL;
    CREATE TABLE invites (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
        max_uses INTEGER NOT NULL,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked_at TEXT COLLATE "C"
    );
    """,
    # 2: the seed's two time-ordered indexes. No query reads by time (history, replay and
    # comments all go by seq), and they were a fifth of the SQLite store's work per chat
    # message (docs/decisions/unused-seed-indexes.md).
    """
    DROP INDEX IF EXISTS idx_session_messages;
    DROP INDEX IF EXISTS idx_session_events;
    """,
]
