"""Every frame a client may send to the relay: one model each.

All client frames share ``type``, an optional ``id`` (the client's idempotency
key, echoed as ``ref``) and an optional ``session_id`` that, when present, must be
the connection's session.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collab_lsp.protocol import limits
from collab_lsp.protocol.fields import (
    ClientId,
    Emoji,
    FilePath,
    Line,
    Name,
    ObjectId,
    Seq,
    Snippet,
    Text,
    Title,
)
from collab_lsp.protocol.models import Cursor, ParticipantKind, PresenceStatus, Viewport
from collab_lsp.protocol.permissions import Role

__all__ = [
    "AddComment",
    "AddReaction",
    "ChangeRole",
    "ChatMessage",
    "ClientFrame",
    "CommentData",
    "CreateSession",
    "CursorUpdate",
    "DeleteMessage",
    "EditMessage",
    "EndSession",
    "GetComments",
    "GetHistory",
    "Invite",
    "JoinSession",
    "LeaveSession",
    "Ping",
    "PresenceUpdate",
    "RemoveReaction",
    "RemoveUser",
    "ReopenComment",
    "ResolveComment",
    "RevokeInvite",
    "SessionChanges",
    "SessionUpdate",
]


class _ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    id: ClientId | None = None
    session_id: ObjectId | None = None


class JoinSession(_ClientFrame):
    type: Literal["join_session"]
    session_id: ObjectId
    auth_token: str | None = Field(default=None, max_length=8192)
    resume_from: Seq | None = None
    epoch: ObjectId | None = None
    name: Name | None = None
    kind: ParticipantKind | None = None


class CreateSession(_ClientFrame):
    type: Literal["create_session"]
    title: Title
    auth_token: str | None = Field(default=None, max_length=8192)


class LeaveSession(_ClientFrame):
    type: Literal["leave_session"]


class CursorUpdate(_ClientFrame):
    type: Literal["cursor_update"]
    data: Cursor


class PresenceUpdate(_ClientFrame):
    """Status, viewport and whom one follows; a field left out is unchanged."""

    type: Literal["presence_update"]
    status: PresenceStatus | None = None
    viewport: Viewport | None = None
    following: ObjectId | None = None


class ChatMessage(_ClientFrame):
    type: Literal["chat_message"]
    content: Text
    mentions: list[ObjectId] = Field(default_factory=list, max_length=limits.MAX_MENTIONS)
    parent_id: ObjectId | None = None


class CommentData(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    content: Text
    file: FilePath | None = None
    line: Line | None = None
    end_line: Line | None = None
    code_snippet: Snippet | None = None
    commit: ObjectId | None = None
    blob: ObjectId | None = None
    parent_id: ObjectId | None = None
    mentions: list[ObjectId] = Field(default_factory=list, max_length=limits.MAX_MENTIONS)

    @model_validator(mode="after")
    def _anchored(self) -> Self:
        if self.parent_id is None and (self.file is None or self.line is None):
            raise ValueError("a new comment needs file and line (a reply needs parent_id)")
        if self.end_line is not None and self.line is not None and self.end_line < self.line:
            raise ValueError("end_line must not be before line")
        return self


class AddComment(_ClientFrame):
    type: Literal["add_comment"]
    data: CommentData


class EditMessage(_ClientFrame):
    type: Literal["edit_message"]
    message_id: ObjectId
    content: Text


class DeleteMessage(_ClientFrame):
    type: Literal["delete_message"]
    message_id: ObjectId


class AddReaction(_ClientFrame):
    type: Literal["add_reaction"]
    message_id: ObjectId
    emoji: Emoji


class RemoveReaction(_ClientFrame):
    type: Literal["remove_reaction"]
    message_id: ObjectId
    emoji: Emoji


class ResolveComment(_ClientFrame):
    type: Literal["resolve_comment"]
    comment_id: ObjectId


class ReopenComment(_ClientFrame):
    type: Literal["reopen_comment"]
    comment_id: ObjectId


class SessionChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    title: Title | None = None
    token_count: Annotated[int, Field(ge=0, le=10**12)] | None = None
    health_score: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)] | None = None
    status: Literal["active", "paused"] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("name at least one of title, token_count, health_score, status")
        return self

    @field_validator("title", "token_count", "health_score", "status", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Defaults are not validated, so this only sees an explicit null.
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it unchanged")
        return value


class SessionUpdate(_ClientFrame):
    type: Literal["session_update"]
    changes: SessionChanges


class Invite(_ClientFrame):
    type: Literal["invite"]
    role: Literal["editor", "viewer"]
    ttl_seconds: Annotated[int, Field(ge=60, le=30 * 24 * 3600)] = 24 * 3600
    max_uses: Annotated[int, Field(ge=1, le=limits.MAX_INVITE_USES)] = 1


class RevokeInvite(_ClientFrame):
    type: Literal["revoke_invite"]
    invite_id: ObjectId


class RemoveUser(_ClientFrame):
    type: Literal["remove_user"]
    user_id: ObjectId


class ChangeRole(_ClientFrame):
    type: Literal["change_role"]
    user_id: ObjectId
    role: Role


class EndSession(_ClientFrame):
    type: Literal["end_session"]


class GetHistory(_ClientFrame):
    type: Literal["get_history"]
    before_seq: Seq | None = None
    limit: Annotated[int, Field(ge=1, le=limits.HISTORY_PAGE_MAX)] = limits.RECENT_MESSAGES


class GetComments(_ClientFrame):
    """Every comment (thread roots and replies, resolved too), oldest first, paged by seq."""

    type: Literal["get_comments"]
    file: FilePath | None = None
    after_seq: Seq | None = None
    limit: Annotated[int, Field(ge=1, le=limits.COMMENTS_PAGE_MAX)] = limits.COMMENTS_PAGE_MAX


class Ping(_ClientFrame):
    type: Literal["ping"]


ClientFrame = Annotated[
    JoinSession
    | CreateSession
    | LeaveSession
    | CursorUpdate
    | PresenceUpdate
    | ChatMessage
    | AddComment
    | EditMessage
    | DeleteMessage
    | AddReaction
    | RemoveReaction
    | ResolveComment
    | ReopenComment
    | SessionUpdate
    | Invite
    | RevokeInvite
    | RemoveUser
    | ChangeRole
    | EndSession
    | GetHistory
    | GetComments
    | Ping,
    Field(discriminator="type"),
]
