"""parse_client_frame: every refusal becomes a ProtocolError with a code and the field's path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from collab_lsp.protocol.client_frames import AddComment, ChatMessage, CursorUpdate, PresenceUpdate
from collab_lsp.protocol.codec import format_timestamp, parse_client_frame
from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.limits import MAX_CONTENT_CHARS


def refusal(raw: str | bytes | dict[str, Any]) -> ProtocolError:
    text = json.dumps(raw) if isinstance(raw, dict) else raw
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame(text)
    return caught.value


def cursor(**data: Any) -> dict[str, Any]:
    return {"type": "cursor_update", "data": {"file": "src/app.py", "line": 1, **data}}


def comment(**data: Any) -> dict[str, Any]:
    return {
        "type": "add_comment",
        "data": {"file": "src/app.py", "line": 1, "content": "c", **data},
    }


@pytest.mark.parametrize("raw", ["{", "not json", '{"type": "ping",}', b"\xff\xfe", ""])
def test_invalid_json(raw: str | bytes) -> None:
    error = refusal(raw)
    assert error.code is ErrorCode.INVALID_JSON
    assert error.field is None
    assert "JSON" in error.message


@pytest.mark.parametrize("raw", ["[]", "[1, 2]", "42", '"chat_message"', "null", "true"])
def test_json_that_is_not_an_object(raw: str) -> None:
    error = refusal(raw)
    assert error.code is ErrorCode.INVALID_FRAME
    assert "object" in error.message


def test_missing_type() -> None:
    error = refusal({"content": "hi"})
    assert (error.code, error.field) == (ErrorCode.INVALID_FRAME, "type")


@pytest.mark.parametrize("type_", ["teleport", "CHAT_MESSAGE", "", 5, None])
def test_unknown_type(type_: object) -> None:
    error = refusal({"type": type_})
    assert (error.code, error.field) == (ErrorCode.UNKNOWN_TYPE, "type")


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "chat_message", "content": "hi", "bogus": 1}, "bogus"),
        ({"type": "ping", "extra": None}, "extra"),
        (cursor(column=1, colour="red"), "data.colour"),
        ({"type": "session_update", "changes": {"token_count": 1, "cost": 2}}, "changes.cost"),
    ],
)
def test_unknown_fields_are_named(frame: dict[str, Any], field: str) -> None:
    error = refusal(frame)
    assert (error.code, error.field) == (ErrorCode.INVALID_FRAME, field)
    assert f"{frame['type']}.{field}" in error.message
    assert "unknown field" in error.message


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (cursor(line="42", column=1), "data.line"),
        (cursor(line=True, column=1), "data.line"),
        (cursor(line=1.0, column=1), "data.line"),
        (cursor(line=1, column="1"), "data.column"),
        ({"type": "chat_message", "content": 5}, "content"),
        ({"type": "chat_message", "content": "hi", "mentions": "bob"}, "mentions"),
        ({"type": "session_update", "changes": {"token_count": "150000"}}, "changes.token_count"),
        ({"type": "ping", "id": 7}, "id"),
        ({"type": "cursor_update", "data": [1, 2]}, "data"),
    ],
)
def test_types_are_strict(frame: dict[str, Any], field: str) -> None:
    error = refusal(frame)
    assert (error.code, error.field) == (ErrorCode.INVALID_FRAME, field)


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (cursor(line=0, column=1), "data.line"),
        (cursor(line=1, column=0), "data.column"),
        ({"type": "session_update", "changes": {"health_score": 101}}, "changes.health_score"),
        ({"type": "session_update", "changes": {"health_score": -0.5}}, "changes.health_score"),
        ({"type": "session_update", "changes": {"token_count": -1}}, "changes.token_count"),
        ({"type": "session_update", "changes": {"status": "ended"}}, "changes.status"),
        ({"type": "session_update", "changes": {}}, "changes"),
        ({"type": "invite", "role": "host"}, "role"),
        ({"type": "get_history", "limit": 0}, "limit"),
        ({"type": "chat_message"}, "content"),
        ({"type": "chat_message", "content": "   "}, "content"),
        ({"type": "chat_message", "content": "x" * (MAX_CONTENT_CHARS + 1)}, "content"),
        (
            {"type": "presence_update", "viewport": {"file": "a.py", "start": 9, "end": 1}},
            "viewport",
        ),
        ({"type": "add_comment", "data": {"content": "floating"}}, "data"),
    ],
)
def test_values_out_of_range_are_named(frame: dict[str, Any], field: str) -> None:
    error = refusal(frame)
    assert (error.code, error.field) == (ErrorCode.INVALID_FRAME, field)
    assert error.message.startswith(f"{frame['type']}.{field}:")


def test_missing_field_says_so() -> None:
    error = refusal({"type": "edit_message", "content": "v2"})
    assert error.field == "message_id"
    assert "missing" in error.message


def test_health_score_accepts_an_integer() -> None:
    frame = parse_client_frame('{"type": "session_update", "changes": {"health_score": 75}}')
    assert frame.type == "session_update"
    assert frame.changes.health_score == 75.0


def test_seed_spellings_col_start_end_are_accepted() -> None:
    moved = parse_client_frame(json.dumps(cursor(line=42, col=10)))
    assert isinstance(moved, CursorUpdate)
    assert (moved.data.line, moved.data.column) == (42, 10)
    viewport = {"file": "main.py", "start": 30, "end": 60}
    update = parse_client_frame(json.dumps({"type": "presence_update", "viewport": viewport}))
    assert isinstance(update, PresenceUpdate) and update.viewport is not None
    assert (update.viewport.start_line, update.viewport.end_line) == (30, 60)
    long_names = {"file": "main.py", "start_line": 30, "end_line": 60}
    again = parse_client_frame(json.dumps({"type": "presence_update", "viewport": long_names}))
    assert again == update


def test_seed_chat_frame_parses() -> None:
    frame = parse_client_frame(
        b'{"type": "chat_message", "session_id": "abc123",'
        b' "content": "Hey @alice, check line 42", "mentions": ["user_id_alice"]}'
    )
    assert isinstance(frame, ChatMessage)
    assert frame.session_id == "abc123"
    assert frame.mentions == ["user_id_alice"]


@pytest.mark.parametrize("content", ["a\x00b", "\x1b[31mred", "a\x7fb", "a\x85b", "evil\u202etxt"])
def test_control_characters_in_text_are_refused(content: str) -> None:
    error = refusal({"type": "chat_message", "content": content})
    assert (error.code, error.field) == (ErrorCode.INVALID_FRAME, "content")
    assert "control characters" in error.message


def test_text_keeps_tabs_and_line_breaks() -> None:
    frame = parse_client_frame(json.dumps({"type": "chat_message", "content": "a\tb\nc\r\nd"}))
    assert isinstance(frame, ChatMessage)
    assert frame.content == "a\tb\nc\r\nd"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "create_session", "title": "two\nlines"}, "title"),
        ({"type": "chat_message", "content": "hi", "mentions": ["bo\tb"]}, "mentions.0"),
        (cursor(file="src/\x07.py", line=1, column=1), "data.file"),
        (comment(file="src/app\u202e.py"), "data.file"),
    ],
)
def test_control_characters_in_single_line_fields_are_refused(
    frame: dict[str, Any], field: str
) -> None:
    error = refusal(frame)
    assert (error.code, error.field) == (ErrorCode.INVALID_FRAME, field)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("src/app.py", "src/app.py"),
        ("src\\app.py", "src/app.py"),
        ("./src//app.py", "src/app.py"),
        ("src/./app.py/", "src/app.py"),
    ],
)
def test_paths_are_normalised(given: str, stored: str) -> None:
    frame = parse_client_frame(json.dumps(comment(file=given)))
    assert isinstance(frame, AddComment)
    assert frame.data.file == stored


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "absolute"),
        ("\\\\server\\share\\x.py", "absolute"),
        ("C:\\repo\\x.py", "absolute"),
        ("c:/repo/x.py", "absolute"),
        ("../secret.py", ".."),
        ("src/../../secret.py", ".."),
        ("src\\..\\..\\secret.py", ".."),
        ("./.", "inside the workspace"),
        ("   ", "non-empty"),
    ],
)
def test_absolute_and_climbing_paths_are_refused(path: str, why: str) -> None:
    for frame, field in (
        (comment(file=path), "data.file"),
        (cursor(file=path, line=1, column=1), "data.file"),
        (
            {"type": "presence_update", "viewport": {"file": path, "start": 1, "end": 2}},
            "viewport.file",
        ),
    ):
        error = refusal(frame)
        assert (error.code, error.field) == (ErrorCode.INVALID_FRAME, field)
        assert why in error.message


def test_format_timestamp_is_utc_with_milliseconds() -> None:
    moment = datetime(2025, 10, 17, 10, 30, 0, 123456, tzinfo=UTC)
    assert format_timestamp(moment) == "2025-10-17T10:30:00.123Z"
