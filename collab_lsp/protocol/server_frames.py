"""Every frame the relay sends to clients: one model each.

Durable frames carry ``seq`` (strictly increasing per session, the same order for
every client) and ``id`` (the event's id); they are committed before anyone sees
them and are replayed on resume. Ephemeral frames carry neither.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from collab_lsp.protocol.errors import ErrorCode
from collab_lsp.protocol.models import (
    Message,
    Participant,
    PresenceState,
    SessionInfo,
    UserInfo,
)
from collab_lsp.protocol.permissions import Role

__all__ = [
    "DURABLE_TYPES",
    "Ack",
    "ChatMessageEvent",
    "CodeCommentEvent",
    "CommentResolvedEvent",
    "Comments",
    "Connected",
    "ErrorFrame",
    "History",
    "InviteCreated",
    "InviteRevoked",
    "Mention",
    "MessageDeletedEvent",
    "MessageUpdatedEvent",
    "Pong",
    "PresenceUpdateEvent",
    "ReactionUpdatedEvent",
    "RoleChangedEvent",
    "ServerFrame",
    "ServerShutdown",
    "ServiceStatus",
    "SessionCreated",
    "SessionEndedEvent",
    "SessionUpdateEvent",
    "UserJoinedEvent",
    "UserLeftEvent",
    "UserRemovedEvent",
    "You",
]


class _ServerFrame(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Durable(_ServerFrame):
    session_id: str
    id: str
    seq: int
    timestamp: str


class You(UserInfo):
    token: str | None = Field(
        default=None,
        description="A personal token, given when joining with an invite: reconnect with it.",
    )


class Connected(_ServerFrame):
    type: Literal["connected"] = "connected"
    session_id: str
    session: SessionInfo
    you: You
    participants: list[Participant]
    presence: dict[str, PresenceState]
    messages: list[Message]
    seq: int
    epoch: str
    resumed: bool = False
    reset: bool = False
    timestamp: str


class SessionCreated(_ServerFrame):
    type: Literal["session_created"] = "session_created"
    ref: str | None = None
    session: SessionInfo
    timestamp: str


class UserJoinedEvent(_Durable):
    type: Literal["user_joined"] = "user_joined"
    user: UserInfo


class UserLeftEvent(_Durable):
    type: Literal["user_left"] = "user_left"
    user_id: str
    username: str
    reason: Literal["left", "timeout", "removed", "session_ended"] = "left"


class ChatMessageEvent(_Durable):
    type: Literal["chat_message"] = "chat_message"
    message: Message


class CodeCommentEvent(_Durable):
    type: Literal["code_comment"] = "code_comment"
    comment: Message


class MessageUpdatedEvent(_Durable):
    type: Literal["message_updated"] = "message_updated"
    message: Message


class MessageDeletedEvent(_Durable):
    type: Literal["message_deleted"] = "message_deleted"
    message_id: str
    deleted_by: str


class ReactionUpdatedEvent(_Durable):
    type: Literal["reaction_updated"] = "reaction_updated"
    message_id: str
    user_id: str
    emoji: str
    added: bool
    reactions: dict[str, list[str]]


class CommentResolvedEvent(_Durable):
    type: Literal["comment_resolved"] = "comment_resolved"
    comment_id: str
    resolved: bool
    by: str


class SessionUpdateEvent(_Durable):
    type: Literal["session_update"] = "session_update"
    changes: dict[str, Any]
    updated_by: str


class RoleChangedEvent(_Durable):
    type: Literal["role_changed"] = "role_changed"
    user_id: str
    role: Role
    changed_by: str


class UserRemovedEvent(_Durable):
    type: Literal["user_removed"] = "user_removed"
    user_id: str
    username: str
    removed_by: str


class SessionEndedEvent(_Durable):
    type: Literal["session_ended"] = "session_ended"
    ended_by: str


class PresenceUpdateEvent(_ServerFrame):
    type: Literal["presence_update"] = "presence_update"
    session_id: str
    user_id: str
    presence: PresenceState


class Mention(_ServerFrame):
    """Sent only to the mentioned user's connections, beside the durable event."""

    type: Literal["mention"] = "mention"
    session_id: str
    message_id: str
    seq: int
    by: str
    by_username: str
    content: str
    timestamp: str


class Ack(_ServerFrame):
    type: Literal["ack"] = "ack"
    ref: str | None
    id: str
    seq: int
    duplicate: bool = False


class ErrorFrame(_ServerFrame):
    type: Literal["error"] = "error"
    error_code: ErrorCode
    message: str
    field: str | None = None
    ref: str | None = None
    retry_after: float | None = None
    timestamp: str


class History(_ServerFrame):
    type: Literal["history"] = "history"
    ref: str | None = None
    messages: list[Message]
    has_more: bool


class Comments(_ServerFrame):
    type: Literal["comments"] = "comments"
    ref: str | None = None
    comments: list[Message]
    has_more: bool


class InviteCreated(_ServerFrame):
    type: Literal["invite_created"] = "invite_created"
    ref: str | None = None
    invite_id: str
    token: str
    role: Role
    expires_at: str
    max_uses: int


class InviteRevoked(_ServerFrame):
    type: Literal["invite_revoked"] = "invite_revoked"
    ref: str | None = None
    invite_id: str


class Pong(_ServerFrame):
    type: Literal["pong"] = "pong"
    ref: str | None = None
    timestamp: str


class ServerShutdown(_ServerFrame):
    type: Literal["server_shutdown"] = "server_shutdown"
    reason: str
    reconnect: bool = True


class ServiceStatus(_ServerFrame):
    """Durable writes stopped (or started again) working on this relay."""

    type: Literal["service_status"] = "service_status"
    available: bool
    reason: str | None = None
    timestamp: str


ServerFrame = Annotated[
    Connected
    | SessionCreated
    | UserJoinedEvent
    | UserLeftEvent
    | ChatMessageEvent
    | CodeCommentEvent
    | MessageUpdatedEvent
    | MessageDeletedEvent
    | ReactionUpdatedEvent
    | CommentResolvedEvent
    | SessionUpdateEvent
    | RoleChangedEvent
    | UserRemovedEvent
    | SessionEndedEvent
    | PresenceUpdateEvent
    | Mention
    | Ack
    | ErrorFrame
    | History
    | Comments
    | InviteCreated
    | InviteRevoked
    | Pong
    | ServerShutdown
    | ServiceStatus,
    Field(discriminator="type"),
]

DURABLE_TYPES: frozenset[str] = frozenset(
    {
        "user_joined",
        "user_left",
        "chat_message",
        "code_comment",
        "message_updated",
        "message_deleted",
        "reaction_updated",
        "comment_resolved",
        "session_update",
        "role_changed",
        "user_removed",
        "session_ended",
    }
)
