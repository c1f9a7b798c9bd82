"""The sidecar's session mirror, fed relay frames directly."""

from __future__ import annotations

from typing import Any

from collab_lsp.client.session_view import SessionView
from collab_lsp.protocol.models import Message
from collab_lsp.sidecar import render

NOW = "2026-11-25T10:00:00.000Z"


def _comment(id_: str, seq: int, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "seq": seq,
        "message_type": "comment",
        "user_id": "alice",
        "username": "alice",
        "content": f"text of {id_}",
        "parent_id": parent,
        "file": "a.py",
        "line": 3,
        "timestamp": NOW,
        **extra,
    }


def _connected(messages: list[dict[str, Any]]) -> dict[str, Any]:
    user = {"id": "alice", "username": "alice", "role": "host", "color_index": 1}
    return {
        "type": "connected",
        "session_id": "s",
        "session": {
            "id": "s",
            "title": "t",
            "status": "active",
            "host_id": "alice",
            "created_at": NOW,
        },
        "you": user,
        "participants": [{**user, "joined_at": NOW, "online": True}],
        "presence": {},
        "messages": messages,
        "seq": 10,
        "epoch": "e",
        "timestamp": NOW,
    }


def test_a_reply_older_than_its_root_in_history_is_attached_when_the_root_arrives() -> None:
    view = SessionView()
    view.apply(_connected([_comment("r2", 9, parent="root")]))
    assert view.threads == {}
    changes = view.add_history(
        [
            Message.model_validate(_comment("root", 2)),
            Message.model_validate(_comment("r1", 3, "root")),
        ]
    )
    assert changes.files == {"a.py"}
    assert [reply.id for reply in view.threads["root"].replies] == ["r1", "r2"]


def test_resolving_and_deleting_update_the_thread() -> None:
    view = SessionView()
    view.apply(_connected([_comment("root", 2), _comment("r1", 3, "root")]))
    view.apply(
        {"type": "comment_resolved", "session_id": "s", "id": "e1", "seq": 11,
         "timestamp": NOW, "comment_id": "root", "resolved": True, "by": "bob"}
    )  # fmt: skip
    assert view.threads["root"].open is False
    view.apply(
        {"type": "message_deleted", "session_id": "s", "id": "e2", "seq": 12,
         "timestamp": NOW, "message_id": "r1", "deleted_by": "alice"}
    )  # fmt: skip
    assert view.threads["root"].live_replies() == []


def test_hover_shows_other_peoples_markup_as_text() -> None:
    view = SessionView()
    view.apply(_connected([_comment("root", 2, content="[click](http://evil) <img src=x>")]))
    hover = render.hover(view, [view.threads["root"]])
    assert hover is not None
    value = hover.contents.value  # type: ignore[union-attr]
    assert "\\[click\\]\\(http://evil\\)" in value and "&lt;img src=x&gt;" in value


def _moved(column: int, line: int = 4, status: str = "active") -> dict[str, Any]:
    cursor = {"file": "a.py", "line": line, "column": column}
    presence = {"status": status, "cursor": cursor, "last_activity": NOW}
    return {"type": "presence_update", "session_id": "s", "user_id": "alice", "presence": presence}


def test_the_participants_list_changes_only_when_what_it_shows_changes() -> None:
    view = SessionView()
    view.apply(_connected([]))
    first = view.apply(_moved(column=1))
    assert first.participants and first.moved == {"alice"}  # where alice is: now known
    along = view.apply(_moved(column=2))
    # Typing along a line moves the cursor (the editor redraws it) but not the list.
    assert not along.participants and along.cursor_files == {"a.py"}
    assert view.apply(_moved(column=2, line=5)).participants  # another line
    assert view.apply(_moved(column=2, line=5, status="idle")).participants
    assert not view.apply(_moved(column=9, line=5, status="idle")).participants
