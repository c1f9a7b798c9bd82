"""Nested data models carried inside frames, in both directions."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from collab_lsp.protocol.fields import Column, FilePath, Line
from collab_lsp.protocol.permissions import Role

__all__ = [
    "Cursor",
    "CursorPosition",
    "Message",
    "MessageType",
    "Participant",
    "ParticipantKind",
    "PresenceState",
    "PresenceStatus",
    "Selection",
    "SessionInfo",
    "SessionStatus",
    "UserInfo",
    "Viewport",
]


class _Inbound(BaseModel):
    """Strict: wrong types are refused, not coerced; unknown fields are named."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class PresenceStatus(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    AWAY = "away"


class SessionStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class ParticipantKind(StrEnum):
    HUMAN = "human"
    AGENT = "agent"


class MessageType(StrEnum):
    CHAT = "chat"
    COMMENT = "comment"
    SYSTEM = "system"


class CursorPosition(_Inbound):
    line: Line
    column: Column = Field(validation_alias=AliasChoices("column", "col"))


class Selection(_Inbound):
    """A selection; ``head`` is where the caret is, ``anchor`` where it started."""

    anchor: CursorPosition
    head: CursorPosition


class Cursor(_Inbound):
    file: FilePath
    line: Line
    column: Column = Field(validation_alias=AliasChoices("column", "col"))
    selection: Selection | None = None


class Viewport(_Inbound):
    file: FilePath
    start_line: Line = Field(validation_alias=AliasChoices("start_line", "start"))
    end_line: Line = Field(validation_alias=AliasChoices("end_line", "end"))

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end_line < self.start_line:
            raise ValueError("end_line must not be before start_line")
        return self


class _Outbound(BaseModel):
    """Relay -> client models: lenient on input so newer relays stay readable."""

    model_config = ConfigDict(extra="ignore")


class PresenceState(_Outbound):
    status: PresenceStatus = PresenceStatus.ACTIVE
    cursor: Cursor | None = None
    viewport: Viewport | None = None
    following: str | None = None
    last_activity: str


class UserInfo(_Outbound):
    id: str
    username: str
    avatar: str | None = None
    role: Role
    kind: ParticipantKind = ParticipantKind.HUMAN
    color_index: int


class Participant(UserInfo):
    joined_at: str
    online: bool
    status: PresenceStatus = PresenceStatus.ACTIVE


class SessionInfo(_Outbound):
    id: str
    title: str
    status: SessionStatus
    token_count: int = 0
    health_score: float = 100.0
    host_id: str
    created_at: str


class Message(_Outbound):
    """A chat message or a code comment, as stored: edits and reactions applied."""

    id: str
    seq: int
    message_type: MessageType
    user_id: str
    username: str
    content: str
    mentions: list[str] = Field(default_factory=list)
    reactions: dict[str, list[str]] = Field(default_factory=dict)
    parent_id: str | None = None
    file: str | None = None
    line: int | None = None
    end_line: int | None = None
    code_snippet: str | None = None
    commit: str | None = None
    blob: str | None = None
    resolved: bool = False
    timestamp: str
    edited_at: str | None = None
    deleted: bool = False
