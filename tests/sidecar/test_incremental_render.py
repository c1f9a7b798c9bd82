"""What the sidecar publishes, rendered incrementally, is what a full render gives.

The server keeps each thread's diagnostic and ``collab/threads`` entry as JSON text and
renders again only the threads that changed. Here one in-process server (no relay, no
editor: its output is captured) goes through random sequences of what changes threads
(comments, replies, edits, deletions, reactions, resolving, renamed authors, pending
comments, typing in the document, closing and reopening it, another position encoding),
and after each step the editor's view must be exactly the from-scratch rendering:
``render.diagnostics`` through pygls's converter, and ``thread_payload`` for every thread.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.protocol import default_converter
from pygls.uris import from_fs_path
from pygls.workspace import Workspace

from collab_lsp.client.session_view import Thread
from collab_lsp.protocol.coordinates import PositionEncoding
from collab_lsp.protocol.models import Message, MessageType
from collab_lsp.sidecar import render
from collab_lsp.sidecar.features import build_server
from collab_lsp.sidecar.server import CollabServer
from collab_lsp.sidecar.workspace_files import WorkspaceFiles

FILE = "src/app.py"
TEXT = "import os  # é\n\n\ndef main():\n    print('héllo😀 world')\n    return 0  # 😀\n"
TS = "2026-11-25T19:51:47.147Z"
USERS = ["alice", "bob", "carol"]  # carol is not a participant at first: named by her id
CONVERTER = default_converter()


class Editor:
    """The editor's side of the stdio pipe: every message the server wrote, parsed."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        header, body = data.split(b"\r\n\r\n", 1)
        assert int(header.split(b"\r\n")[0].split(b": ")[1]) == len(body)
        self.messages.append(json.loads(body))

    def close(self) -> None:
        pass

    def last(self, method: str, key: str, value: str) -> dict[str, Any] | None:
        for message in reversed(self.messages):
            if message.get("method") == method and message["params"][key] == value:
                params: dict[str, Any] = message["params"]
                return params
        return None


def _server(root: Path) -> tuple[CollabServer, Editor]:
    server = build_server()
    editor = Editor()
    server.protocol.set_writer(editor)
    server.files = WorkspaceFiles(root)
    server.protocol._workspace = Workspace(from_fs_path(str(root)))
    server.protocol.client_capabilities = types.ClientCapabilities()
    return server, editor


def _participant(user: str, name: str) -> dict[str, Any]:
    return {"id": user, "username": name, "role": "editor", "color_index": 1}


def _connected() -> dict[str, Any]:
    participants = [
        {**_participant(user, user.title()), "joined_at": TS, "online": True} for user in USERS[:2]
    ]
    session = {"id": "s_1", "title": "t", "status": "active", "host_id": "alice", "created_at": TS}
    return {
        "type": "connected",
        "session_id": "s_1",
        "session": session,
        "you": _participant("alice", "Alice"),
        "participants": participants,
        "presence": {},
        "messages": [],
        "seq": 1,
        "epoch": "e",
        "timestamp": TS,
    }


class Session:
    """Frames a relay would send, numbered."""

    def __init__(self, server: CollabServer) -> None:
        self.server = server
        self.seq = 1
        self.roots: list[str] = []
        self.messages: list[str] = []

    def frame(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        frame = {"type": kind, "session_id": "s_1", "id": f"e_{self.seq}", "seq": self.seq}
        self.server.on_frame({**frame, "timestamp": TS, **fields})

    def comment(self, user: str, text: str, **fields: Any) -> None:
        message_id = f"m_{self.seq + 1:04d}"
        comment = {
            "id": message_id,
            "seq": self.seq + 1,
            "message_type": "comment",
            "user_id": user,
            "username": user,
            "content": text,
            "timestamp": TS,
            "file": FILE,
            **fields,
        }
        self.frame("code_comment", comment=comment)
        if "parent_id" not in fields:
            self.roots.append(message_id)
        self.messages.append(message_id)


def _lines(server: CollabServer) -> list[str]:
    document = next(iter(server.documents.values()), None)
    return document.lines if document else TEXT.splitlines()


def _snippet(server: CollabServer, kind: int, line: int) -> str | None:
    lines = _lines(server)
    at = min(line, len(lines) - 1)
    return [
        lines[at],  # where it is
        lines[(at + 2) % len(lines)],  # moved
        "gone()",  # outdated
        None,  # no snippet
        "\n".join(lines[at : at + 2]),  # two lines
    ][kind]


def _step(server: CollabServer, session: Session, step: tuple[str, int, int, int]) -> None:
    kind, a, b, c = step
    view = server.view
    uri = server.files.uri(FILE)
    assert uri is not None
    document = server.documents.get(uri)
    if kind == "comment":
        fields: dict[str, Any] = {"line": a % 8 + 1}
        if c % 3 == 0:
            fields["end_line"] = a % 8 + 1 + c % 2
        snippet = _snippet(server, b % 5, a % 8)
        if snippet is not None:
            fields["code_snippet"] = snippet
        session.comment(USERS[b % 3], f"note {session.seq}\nsecond line", **fields)
    elif kind == "reply" and session.roots:
        root = session.roots[a % len(session.roots)]
        session.comment(USERS[b % 3], f"reply {session.seq}", parent_id=root)
    elif kind == "edit" and session.messages:
        message = view.messages.get(session.messages[a % len(session.messages)])
        if message is not None:
            edited = {**message.model_dump(mode="json"), "content": f"edited {session.seq}"}
            session.frame("message_updated", message={**edited, "edited_at": TS})
    elif kind == "delete" and session.messages:
        message_id = session.messages[a % len(session.messages)]
        session.frame("message_deleted", message_id=message_id, deleted_by="alice")
    elif kind == "react" and session.messages:
        message_id = session.messages[a % len(session.messages)]
        reactions = {"👍": USERS[: b % 3 + 1]}
        session.frame(
            "reaction_updated",
            message_id=message_id,
            user_id="bob",
            emoji="👍",
            added=True,
            reactions=reactions,
        )
    elif kind == "resolve" and session.roots:
        root = session.roots[a % len(session.roots)]
        session.frame("comment_resolved", comment_id=root, resolved=bool(b % 2), by="bob")
    elif kind == "rename":
        user = USERS[a % 3]
        session.frame("user_joined", user=_participant(user, f"{user.title()} {session.seq}"))
    elif kind == "pending":
        frame_id = f"{session.seq:016x}"
        session.seq += 1
        message = Message(
            id=frame_id,
            seq=0,
            message_type=MessageType.COMMENT,
            user_id="alice",
            username="alice",
            content="mine",
            file=FILE,
            line=a % 8 + 1,
            timestamp="",
        )
        server.pending_comments[frame_id] = Thread(message)
        if document is not None:
            document.anchors[frame_id] = render.Anchor(a % 8, a % 8)
    elif kind == "settle" and server.pending_comments:
        del server.pending_comments[
            sorted(server.pending_comments)[a % len(server.pending_comments)]
        ]
    elif kind == "type" and document is not None:
        _type(server, document.text, uri, a, b)
    elif kind == "close" and document is not None:
        server.closed(uri)
    elif kind == "open" and document is None:
        server.opened(uri, TEXT if b % 2 else TEXT.replace("import os  # é\n", ""))
    elif kind == "encoding":
        encoding = "utf-8" if server.encoding is PositionEncoding.UTF16 else "utf-16"
        root_uri = from_fs_path(str(server.files.root))
        server.protocol._workspace = Workspace(root_uri, position_encoding=encoding)


def _type(server: CollabServer, text: str, uri: str, a: int, b: int) -> None:
    """One edit as an editor sends it: a range change, and the text after it."""
    lines = text.split("\n")
    line = a % len(lines)
    end = len(lines[line])
    (start_line, start_character), (end_line, end_character), inserted = [
        ((line, 0), (line, 0), "x = 1\n"),  # a new line above
        ((line, end), (line, end), "  # more"),  # a longer line (the range's end moves)
        ((line, 0), (min(line + 1, len(lines) - 1), 0), ""),  # a line deleted
        ((line, end), (line, end), "\n"),  # a line break
    ][b % 4]
    offsets = [0]
    for part in lines:
        offsets.append(offsets[-1] + len(part) + 1)
    start = offsets[start_line] + start_character
    stop = offsets[end_line] + end_character
    new_text = text[:start] + inserted + text[stop:]
    edit = types.TextDocumentContentChangePartial(
        range=types.Range(
            types.Position(start_line, start_character), types.Position(end_line, end_character)
        ),
        text=inserted,
    )
    server.changed(uri, [edit], new_text)


def _check(server: CollabServer, editor: Editor) -> None:
    """The editor's diagnostics and threads are those of a render from scratch."""
    uri = server.files.uri(FILE)
    assert uri is not None
    server.publish(FILE)
    server.send_threads(FILE)
    document = server.documents.get(uri)
    lines = document.lines if document else TEXT.splitlines()
    anchors = document.anchors if document else {}
    threads = server.threads_for(FILE)
    expected = render.diagnostics(
        server.view, threads, anchors, lines, set(server.pending_comments), server.encoding
    )
    published = editor.last(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, "uri", uri)
    assert (published or {"diagnostics": []})["diagnostics"] == [
        CONVERTER.unstructure(diagnostic) for diagnostic in expected
    ]
    sent = editor.last("collab/threads", "file", FILE)
    assert sent is not None
    assert sent == json.loads(
        json.dumps(
            {
                "file": FILE,
                "uri": uri,
                "threads": [server.thread_payload(thread) for thread in threads],
            }
        )
    )


# (what, three numbers to pick with, whether the editor's view is checked after it)
STEP = st.tuples(
    st.sampled_from(
        [
            "comment",
            "comment",
            "comment",
            "reply",
            "edit",
            "delete",
            "react",
            "resolve",
            "rename",
            "pending",
            "settle",
            "type",
            "type",
            "close",
            "open",
            "encoding",
        ]
    ),
    st.integers(0, 50),
    st.integers(0, 50),
    st.integers(0, 50),
    st.booleans(),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=4, max_size=60))
def test_incremental_render_equals_a_full_render(
    tmp_path_factory: Any, steps: list[tuple[str, int, int, int, bool]]
) -> None:
    root = tmp_path_factory.mktemp("project")
    (root / "src").mkdir()
    (root / FILE).write_text(TEXT, encoding="utf-8")

    async def scenario() -> None:
        server, editor = _server(root)
        server.on_frame(_connected())
        session = Session(server)
        uri = server.files.uri(FILE)
        assert uri is not None
        server.opened(uri, TEXT)
        for *step, check in steps:
            _step(server, session, (step[0], step[1], step[2], step[3]))
            if check:  # else several steps happen between two renders
                _check(server, editor)
        _check(server, editor)

    asyncio.run(scenario())


def test_a_new_comment_renders_one_thread_not_all(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / FILE).write_text(TEXT, encoding="utf-8")

    async def scenario() -> None:
        server, editor = _server(tmp_path)
        server.on_frame(_connected())
        session = Session(server)
        uri = server.files.uri(FILE)
        assert uri is not None
        server.opened(uri, TEXT)
        for n in range(20):
            session.comment("bob", f"note {n}", line=n % 6 + 1)
        made = server._diagnostic_json[FILE].made, server._thread_json[FILE].made
        session.comment("bob", "one more", line=2)
        assert server._diagnostic_json[FILE].made == made[0] + 1
        assert server._thread_json[FILE].made == made[1] + 1
        published = editor.last(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, "uri", uri)
        assert published is not None and len(published["diagnostics"]) == 21  # the full list

    asyncio.run(scenario())
