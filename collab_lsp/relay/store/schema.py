"""Versioned schema migrations: the seed's tables plus sessions, users, invites, meta."""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

# Each entry upgrades the schema by one version; never edit a released entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'human',
        created_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        token_count INTEGER NOT NULL DEFAULT 0,
        health_score REAL NOT NULL DEFAULT 100.0,
        host_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        ended_at TEXT,
        last_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE session_participants (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        left_at TEXT,
        is_active BOOLEAN DEFAULT TRUE,
        last_seen TEXT,
        removed_at TEXT,
        FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE,
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
        UNIQUE (session_id, user_id)
    );
    CREATE INDEX idx_session_participants ON session_participants (session_id, is_active);
    CREATE TABLE session_messages (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        message_type TEXT NOT NULL,
        content TEXT NOT NULL,
        metadata JSON,
        parent_id TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT,
        deleted_at TEXT,
        seq INTEGER NOT NULL,
        FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE,
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY (parent_id) REFERENCES session_messages (id) ON DELETE CASCADE
    );
    CREATE INDEX idx_session_messages ON session_messages (session_id, created_at DESC);
    CREATE INDEX idx_session_messages_seq ON session_messages (session_id, seq);
    CREATE TABLE session_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        user_id TEXT,
        event_type TEXT NOT NULL,
        event_data JSON NOT NULL,
        timestamp TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        client_id TEXT,
        FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE,
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL,
        UNIQUE (session_id, seq)
    );
    CREATE INDEX idx_session_events ON session_events (session_id, timestamp DESC);
    CREATE UNIQUE INDEX idx_session_events_client
        ON session_events (session_id, user_id, client_id) WHERE client_id IS NOT NULL;
    CREATE TABLE invites (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        role TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        max_uses INTEGER NOT NULL,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked_at TEXT,
        FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
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
