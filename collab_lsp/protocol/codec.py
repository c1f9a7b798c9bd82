"""Parsing client frames into models, with errors that name the field and the fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from collab_lsp.protocol.client_frames import ClientFrame
from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.server_frames import ServerFrame

__all__ = ["format_timestamp", "parse_client_frame", "parse_server_frame", "utc_now"]

_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
_SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a ``Z``: ``2025-10-17T10:30:00.000Z``."""
    # isoformat() of an aware UTC time ends in "+00:00"; it truncates to milliseconds.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Validate one client frame; raise ProtocolError describing the first problem."""
    try:
        return _CLIENT_FRAME.validate_json(raw)
    except ValidationError as exc:
        raise _protocol_error(exc) from None


def parse_server_frame(raw: str | bytes | dict[str, Any]) -> ServerFrame:
    """Validate a relay frame (used by clients; lenient about unknown fields)."""
    if isinstance(raw, dict):
        return _SERVER_FRAME.validate_python(raw)
    return _SERVER_FRAME.validate_json(raw)


def _protocol_error(exc: ValidationError) -> ProtocolError:
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    loc = [str(part) for part in error["loc"]]
    if kind == "json_invalid":
        return ProtocolError(
            ErrorCode.INVALID_JSON, f"frame is not valid JSON: {error['msg']}; send one JSON object"
        )
    if kind in ("model_attributes_type", "model_type", "dict_type") and not loc:
        return ProtocolError(ErrorCode.INVALID_FRAME, "frame must be a JSON object with a 'type'")
    if kind == "union_tag_not_found":
        return ProtocolError(
            ErrorCode.INVALID_FRAME,
            "frame has no 'type'; add one, e.g. \"chat_message\"",
            field="type",
        )
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "?")
        return ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown frame type {tag!r}; see docs/protocol.md for the list",
            field="type",
        )
    # loc[0] is the discriminator value (the frame type); the rest is the field path.
    frame_type, path = (loc[0], loc[1:]) if loc else ("frame", [])
    field = ".".join(path) or None
    where = f"{frame_type}.{field}" if field else frame_type
    return ProtocolError(
        ErrorCode.INVALID_FRAME, f"{where}: {_describe(kind, error['msg'])}", field=field
    )


def _describe(kind: str, message: str) -> str:
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling in docs/protocol.md"
    if kind == "missing":
        return "required field is missing"
    return message.removeprefix("Value error, ")
