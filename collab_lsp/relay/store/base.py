"""The store interface the relay is written against.

Every durable operation appends one event to the session's log, with the next
``seq``, in the same transaction as its effect on the tables; the committed frame
is returned and handed to the ``on_commit`` listener in commit order, so fan-out
order equals ``seq`` order. Operations that find nothing to do (a reaction that
already exists) raise ``ProtocolError`` and commit nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from collab_lsp.protocol.models import Message, ParticipantKind, SessionInfo
from collab_lsp.protocol.permissions import Role

__all__ = [
    "CommittedEvent",
    "InviteRecord",
    "OnCommit",
    "ParticipantRecord",
    "Snapshot",
    "Store",
    "StoreUnavailable",
]


class StoreUnavailable(Exception):
    """The database cannot be reached or written; nothing was acknowledged."""


@dataclass(frozen=True, slots=True)
class CommittedEvent:
    session_id: str
    event_id: str
    seq: int
    type: str
    frame: dict[str, Any]
    wire: str
    duplicate: bool = False


OnCommit = Callable[[CommittedEvent], None]


@dataclass(frozen=True, slots=True)
class ParticipantRecord:
    session_id: str
    user_id: str
    username: str
    kind: ParticipantKind
    role: Role
    joined_at: str
    is_active: bool
    removed: bool


@dataclass(frozen=True, slots=True)
class InviteRecord:
    id: str
    session_id: str
    role: Role
    created_by: str
    expires_at: str
    max_uses: int
    uses: int
    revoked: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent read: nothing committed after ``seq`` is in it."""

    session: SessionInfo
    participants: list[ParticipantRecord]
    messages: list[Message]
    seq: int


class Store(Protocol):
    epoch: str
    commits: int  # transactions committed so far (SQLite: group commits)
    committed_writes: int  # writes in them: writes / commits is the group-commit batch size

    @property
    def healthy(self) -> bool:
        """False while the database cannot be written; /healthz reports it."""
        ...

    async def probe(self) -> None:
        """Try a write that changes nothing; raises StoreUnavailable, else heals ``healthy``."""
        ...

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def add_listener(self, listener: OnCommit) -> None: ...

    async def relay_secret(self) -> str: ...

    # Reads
    async def get_session(self, session_id: str) -> SessionInfo | None: ...
    async def list_sessions(self) -> list[SessionInfo]: ...
    async def get_participant(self, session_id: str, user_id: str) -> ParticipantRecord | None: ...
    async def list_participants(self, session_id: str) -> list[ParticipantRecord]: ...
    async def get_message(self, session_id: str, message_id: str) -> Message | None: ...
    async def messages_before(
        self, session_id: str, before_seq: int | None, limit: int
    ) -> tuple[list[Message], bool]: ...
    async def comments_after(
        self, session_id: str, after_seq: int, limit: int, file: str | None = None
    ) -> tuple[list[Message], bool]: ...
    async def events_after(
        self, session_id: str, seq: int, limit: int
    ) -> list[tuple[int, str]]: ...
    async def first_event_seq(self, session_id: str) -> int | None: ...
    async def get_invite(self, invite_id: str) -> InviteRecord | None: ...
    async def last_seq(self, session_id: str) -> int: ...
    async def snapshot(self, session_id: str, limit: int) -> Snapshot | None: ...

    # Writes that are not session events
    async def create_session(
        self, *, title: str, host_id: str, host_name: str, host_kind: ParticipantKind
    ) -> SessionInfo: ...
    async def create_invite(
        self, *, session_id: str, role: Role, created_by: str, ttl_seconds: int, max_uses: int
    ) -> InviteRecord: ...
    async def redeem_invite(self, invite_id: str) -> InviteRecord: ...
    async def revoke_invite(self, session_id: str, invite_id: str) -> InviteRecord: ...

    # Durable session events
    async def find_client_event(
        self, session_id: str, user_id: str, client_id: str
    ) -> CommittedEvent | None: ...
    async def join(
        self,
        session_id: str,
        *,
        user_id: str,
        username: str,
        kind: ParticipantKind,
        role: Role,
        announce: bool,
    ) -> tuple[ParticipantRecord, CommittedEvent | None]: ...
    async def leave(self, session_id: str, user_id: str, reason: str) -> CommittedEvent: ...
    async def add_message(
        self, session_id: str, user_id: str, client_id: str | None, message: dict[str, Any]
    ) -> CommittedEvent: ...
    async def edit_message(
        self, session_id: str, user_id: str, client_id: str | None, message_id: str, content: str
    ) -> CommittedEvent: ...
    async def delete_message(
        self,
        session_id: str,
        user_id: str,
        client_id: str | None,
        message_id: str,
        *,
        moderator: bool = False,
    ) -> CommittedEvent: ...
    async def react(
        self,
        session_id: str,
        user_id: str,
        client_id: str | None,
        message_id: str,
        emoji: str,
        add: bool,
    ) -> CommittedEvent: ...
    async def set_resolved(
        self, session_id: str, user_id: str, client_id: str | None, comment_id: str, resolved: bool
    ) -> CommittedEvent: ...
    async def update_session(
        self, session_id: str, user_id: str, client_id: str | None, changes: dict[str, Any]
    ) -> CommittedEvent: ...
    async def change_role(
        self, session_id: str, user_id: str, client_id: str | None, target_id: str, role: Role
    ) -> CommittedEvent: ...
    async def remove_user(
        self, session_id: str, user_id: str, client_id: str | None, target_id: str
    ) -> CommittedEvent: ...
    async def end_session(
        self, session_id: str, user_id: str | None, client_id: str | None
    ) -> CommittedEvent: ...
