"""The editor -> sidecar notifications, validated at the edge (docs/editor-protocol.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CursorNotification", "Position", "StatusNotification", "ViewportNotification"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Position(_Message):
    line: int = Field(ge=0)
    character: int = Field(ge=0)


class Range(_Message):
    start: Position
    end: Position


class EditorSelection(_Message):
    anchor: Position
    active: Position


class CursorNotification(_Message):
    uri: str
    position: Position
    selections: list[EditorSelection] = Field(default_factory=list, max_length=100)


class ViewportNotification(_Message):
    uri: str
    range: Range


class StatusNotification(_Message):
    status: Literal["active", "idle", "away"]
