"""The sidecar issue's scenarios, with real sidecars (pytest-lsp) and a real relay."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from websockets.asyncio.server import ServerConnection, serve

from collab_lsp.protocol.coordinates import PositionEncoding, column_to_lsp_character
from collab_lsp.protocol.models import ParticipantKind
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.auth import Authenticator
from collab_lsp.relay.store.sqlite import SqliteStore
from tests.helpers import TIMEOUT, RelayHandle
from tests.sidecar.harness import Sidecar

Make = Callable[..., Sidecar]
LINE = "    print('héllo😀 world')"


async def _join(
    relay: RelayHandle,
    make: Make,
    root: Path,
    session_id: str,
    user: str,
    role: str = "editor",
    editor: str = "vscode",
) -> Sidecar:
    sidecar = make(root, editor)
    await sidecar.start(relayUrl=relay.url, token=relay.token(session_id, user, role))
    await sidecar.wait("collab/sessionState", lambda p: p["state"] == "connected")
    return sidecar


async def _pair(relay: RelayHandle, make: Make, root: Path) -> tuple[str, Sidecar, Sidecar]:
    session_id = await relay.create_session()
    alice = await _join(relay, make, root, session_id, "alice", "host")
    bob = await _join(relay, make, root, session_id, "bob")
    return session_id, alice, bob


async def test_remote_cursor_is_an_inlay_hint_with_the_name(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    bob.open("src/app.py")
    alice.cursor(uri, 3, 4)
    await bob.wait("collab/remoteCursors", lambda p: len(p["cursors"]) == 1)
    hints = await bob.client.text_document_inlay_hint_async(
        types.InlayHintParams(
            text_document=types.TextDocumentIdentifier(uri),
            range=types.Range(types.Position(0, 0), types.Position(10, 0)),
        )
    )
    assert hints is not None and len(hints) == 1
    assert hints[0].position == types.Position(3, 4)
    assert "alice" in str(hints[0].label)


async def test_reply_and_resolve_propagate_and_resolved_threads_stay_listable(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    bob.open("src/app.py")
    comment = await alice.command("addComment", uri=uri, line=4, text="use logging")
    await bob.wait_diagnostics(uri, lambda d: len(d) == 1)
    await bob.command("reply", threadId=comment["id"], text="agreed, on it")
    [updated] = await alice.wait_diagnostics(
        uri, lambda d: len(d) == 1 and "1 reply" in d[0].message
    )
    assert updated.message == "alice: use logging (1 reply)"

    hover = await alice.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(4, 2))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "**alice**" in hover.contents.value and "**bob**" in hover.contents.value
    assert "agreed, on it" in hover.contents.value

    actions = await alice.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri),
            range=types.Range(types.Position(4, 0), types.Position(4, 0)),
            context=types.CodeActionContext(diagnostics=[updated]),
        )
    )
    # pygls's client structures CodeAction | Command results as Command; titles survive.
    titles = [action.title for action in actions or []]
    assert "Reply to alice's comment" in titles and "Jump to chat" in titles
    lenses = await alice.client.text_document_code_lens_async(
        types.CodeLensParams(types.TextDocumentIdentifier(uri))
    )
    assert (
        lenses and lenses[0].command is not None and "1 comment thread" in lenses[0].command.title
    )

    await bob.command("resolve", threadId=comment["id"])
    await alice.wait_diagnostics(uri, lambda d: d == [])
    threads = await alice.wait(
        "collab/threads", lambda p: [t["resolved"] for t in p["threads"]] == [True]
    )
    [thread] = threads["threads"]
    assert [c["content"] for c in thread["comments"]] == ["use logging", "agreed, on it"]
    assert thread["file"] == "src/app.py" and thread["line"] == 5 and thread["uri"] == uri
    listed = await alice.command("listThreads", uri=uri)
    assert [t["resolved"] for t in listed["threads"]] == [True]


async def test_columns_agree_between_utf16_and_utf8_editors(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    session_id = await relay.create_session()
    vscode = await _join(relay, sidecars, workspace, session_id, "alice", "host", "vscode")
    neovim = await _join(relay, sidecars, workspace, session_id, "bob", "editor", "neovim")
    uri = vscode.open("src/app.py")
    neovim.open("src/app.py")
    after_emoji = LINE.index("😀") + 1  # the caret right after the emoji
    vscode.cursor(uri, 4, column_to_lsp_character(LINE, after_emoji + 1, PositionEncoding.UTF16))
    seen = await neovim.wait("collab/remoteCursors", lambda p: len(p["cursors"]) == 1)
    expected = column_to_lsp_character(LINE, after_emoji + 1, PositionEncoding.UTF8)
    assert seen["cursors"][0]["position"] == {"line": 4, "character": expected}
    assert expected == len(LINE[:after_emoji].encode("utf-8"))

    neovim.cursor(uri, 4, expected)
    back = await vscode.wait("collab/remoteCursors", lambda p: len(p["cursors"]) == 1)
    assert (
        back["cursors"][0]["position"]["character"]
        == len(LINE[:after_emoji].encode("utf-16-le")) // 2
    )


async def test_edits_above_a_comment_move_its_diagnostic(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    bob.open("src/app.py")
    await alice.command("addComment", uri=uri, line=4, text="here")
    await bob.wait_diagnostics(uri, lambda d: len(d) == 1 and d[0].range.start.line == 4)
    bob.edit(uri, (0, 0), (0, 0), "# one\n# two\n")
    await bob.wait_diagnostics(uri, lambda d: len(d) == 1 and d[0].range.start.line == 6)
    bob.edit(uri, (0, 0), (2, 0), "")  # and back up when they go
    await bob.wait_diagnostics(uri, lambda d: len(d) == 1 and d[0].range.start.line == 4)


async def test_reopened_file_reanchors_by_snippet_or_marks_outdated(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    moved = await alice.command("addComment", uri=uri, line=3, text="about main")
    await alice.command("addComment", uri=uri, line=5, text="about the return")
    # Bob's checkout has moved main() down two lines and lost `return 0`.
    text = (workspace / "src" / "app.py").read_text(encoding="utf-8")
    changed = "# header\n# more\n" + text.replace("    return 0\n", "")
    await bob.command("listThreads")  # both threads are known before the file opens
    opened = bob.mark()
    bob.open("src/app.py", changed)
    found = await bob.wait_diagnostics(uri, lambda d: len(d) == 2, since=opened)
    by_id = {d.code: d for d in found}
    assert by_id[moved["id"]].range.start.line == 5
    assert by_id[moved["id"]].message == "alice: about main"
    outdated = next(d for code, d in by_id.items() if code != moved["id"])
    assert outdated.message.startswith("[outdated] alice: about the return")


async def test_viewer_comment_is_refused_with_the_relay_error(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    session_id = await relay.create_session()
    viewer = await _join(relay, sidecars, workspace, session_id, "val", "viewer")
    uri = viewer.open("src/app.py")
    with pytest.raises(JsonRpcException) as refused:
        await viewer.command("addComment", uri=uri, line=1, text="let me in")
    assert "viewer cannot add, resolve or reopen comments" in refused.value.message
    assert refused.value.data["errorCode"] == "PERMISSION_DENIED"
    await viewer.wait_diagnostics(uri, lambda d: d == [])  # the pending one is withdrawn


async def test_follow_mode_delivers_the_followed_viewport(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    await bob.wait("collab/participants", lambda p: len(p["participants"]) == 2)
    await bob.command("follow", userId="alice")
    alice.client.protocol.notify(
        "collab/viewport",
        {
            "uri": uri,
            "range": {"start": {"line": 2, "character": 0}, "end": {"line": 5, "character": 0}},
        },
    )
    follow = await bob.wait("collab/follow", lambda p: p["file"] == "src/app.py")
    assert follow["userId"] == "alice"
    assert follow["uri"] == uri
    assert follow["range"]["start"]["line"] == 2 and follow["range"]["end"]["line"] == 5
    participants = await alice.wait(
        "collab/participants",
        lambda p: any(x["name"] == "bob" and x["following"] == "alice" for x in p["participants"]),
    )
    assert participants


async def test_bad_token_gives_a_readable_error(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    sidecar = sidecars(workspace)
    await sidecar.start(relayUrl=relay.url, token="eyJhbGciOiJub25lIn0.e30.", sessionId="s_x")
    shown = await sidecar.wait(types.WINDOW_SHOW_MESSAGE)
    assert shown.type == types.MessageType.Error
    assert "token was refused" in shown.message and "invite" in shown.message
    state = await sidecar.wait(
        "collab/sessionState", lambda p: p["state"] == "offline" and p["detail"]
    )
    assert "INVALID_TOKEN" in (state["detail"] or "")


async def test_comment_made_while_the_relay_is_down_arrives_once(
    tmp_path: Path, workspace: Path, sidecars: Make
) -> None:
    relay = await _RelayProcess.start(tmp_path / "relay.db")
    try:
        session_id = await relay.session()
        alice = sidecars(workspace)
        await alice.start(relayUrl=relay.url, token=relay.token(session_id, "alice", "host"))
        bob = sidecars(workspace)
        await bob.start(relayUrl=relay.url, token=relay.token(session_id, "bob", "editor"))
        for sidecar in (alice, bob):
            await sidecar.wait("collab/sessionState", lambda p: p["state"] == "connected")
        uri = alice.open("src/app.py")
        bob.open("src/app.py")

        await relay.kill()
        await alice.wait("collab/sessionState", lambda p: p["state"] == "reconnecting")
        offline = await alice.command("addComment", uri=uri, line=2, text="typed offline")
        assert offline["status"] == "pending"
        [pending] = await alice.wait_diagnostics(uri, lambda d: len(d) == 1)
        assert pending.message.startswith("[pending] alice: typed offline")

        relay = await _RelayProcess.start(tmp_path / "relay.db", port=relay.port)
        [arrived] = await bob.wait_diagnostics(uri, lambda d: len(d) == 1)
        assert arrived.message == "alice: typed offline"
        await alice.wait_diagnostics(uri, lambda d: len(d) == 1 and "[pending]" not in d[0].message)
        listed = await bob.command("listThreads")
        assert [t["comments"][0]["content"] for t in listed["threads"]] == ["typed offline"]
    finally:
        await relay.kill()


class _RelayProcess:
    """`collab-relay serve` that can be killed with SIGKILL and restarted on its port."""

    SECRET = "sidecar-tests-" + "s" * 40

    def __init__(self, process: asyncio.subprocess.Process, url: str, db: Path) -> None:
        self.process, self.url, self.db = process, url, db
        self.port = int(url.rsplit(":", 1)[1])

    @classmethod
    async def start(cls, db: Path, port: int = 0) -> _RelayProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "collab_lsp.relay.cli", "serve", "--port", str(port),
            "--db", str(db), "--secret", cls.SECRET,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("COLLAB_RELAY_")},
        )  # fmt: skip
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
        assert line.startswith("collab-relay listening on "), line
        return cls(process, line.split()[-1], db)

    async def session(self) -> str:
        store = SqliteStore(str(self.db))
        await store.open()
        try:
            created = await store.create_session(
                title="t", host_id="alice", host_name="alice", host_kind=ParticipantKind.HUMAN
            )
            return created.id
        finally:
            await store.close()

    def token(self, session_id: str, user: str, role: str) -> str:
        return Authenticator(self.SECRET).issue(
            sub=user, name=user, sid=session_id, role=Role(role)
        )

    async def kill(self) -> None:
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()


async def test_relay_down_at_start_then_up(tmp_path: Path, workspace: Path, sidecars: Make) -> None:
    relay = await _RelayProcess.start(tmp_path / "relay.db")
    session_id = await relay.session()
    token = relay.token(session_id, "alice", "host")
    await relay.kill()
    sidecar = sidecars(workspace)
    await sidecar.start(relayUrl=relay.url, token=token)
    warning = await sidecar.wait(types.WINDOW_SHOW_MESSAGE)
    assert "cannot reach the relay" in warning.message and "retrying" in warning.message
    status = await sidecar.command("status")
    assert status["state"] == "reconnecting"
    relay = await _RelayProcess.start(tmp_path / "relay.db", port=relay.port)
    try:
        await sidecar.wait("collab/sessionState", lambda p: p["state"] == "connected")
    finally:
        await relay.kill()


async def test_a_relay_that_sends_garbage_never_crashes_the_sidecar(
    workspace: Path, sidecars: Make
) -> None:
    async def garbage(websocket: ServerConnection) -> None:
        await websocket.send("this is not json")
        await websocket.send('{"type": "connected", "session": 42}')
        await websocket.wait_closed()

    async with serve(garbage, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        sidecar = sidecars(workspace)
        token = Authenticator("x" * 40).issue(sub="a", name="a", sid="s_1", role=Role.EDITOR)
        await sidecar.start(relayUrl=f"ws://127.0.0.1:{port}", token=token)
        await sidecar.wait("collab/sessionState", lambda p: p["state"] == "reconnecting")
        status = await sidecar.command("status")  # still alive and answering
        assert status["state"] in ("reconnecting", "connecting")


async def test_chat_round_trip_reactions_edits_and_history(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    sent = await bob.command("sendChat", text="look at line 12 @alice")
    new = await alice.wait("collab/chat", lambda p: p["kind"] == "new")
    assert new["message"]["content"] == "look at line 12 @alice"
    assert new["message"]["id"] == sent["id"]
    mention = await alice.wait("collab/chat", lambda p: p["kind"] == "mention")
    assert mention["mention"]["by"] == "bob"

    await alice.command("react", messageId=sent["id"], emoji="👀")
    reacted = await bob.wait("collab/chat", lambda p: p["kind"] == "reactions")
    # pygls's test client turns notification objects into namedtuples, which
    # renames the emoji key; the JSON on the wire is {"👀": ["alice"]}.
    assert list(reacted["message"]["reactions"].values()) == [["alice"]]
    await bob.command("editMessage", messageId=sent["id"], text="line 13, sorry")
    edited = await alice.wait("collab/chat", lambda p: p["kind"] == "edited")
    assert edited["message"]["content"] == "line 13, sorry"
    await bob.command("deleteMessage", messageId=sent["id"])
    deleted = await alice.wait("collab/chat", lambda p: p["kind"] == "deleted")
    assert deleted["message"]["deleted"] is True

    history = await alice.command("fetchHistory", limit=10)
    assert [m["id"] for m in history["messages"]] == [sent["id"]]
    assert history["hasMore"] is False


async def test_status_and_viewport_reach_the_participants_list(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    alice.client.protocol.notify("collab/status", {"status": "away"})
    alice.client.protocol.notify(
        "collab/viewport",
        {
            "uri": uri,
            "range": {"start": {"line": 9, "character": 0}, "end": {"line": 20, "character": 0}},
        },
    )

    def alice_away_on_line_10(payload: dict[str, Any]) -> bool:
        entry = next((p for p in payload["participants"] if p["name"] == "alice"), None)
        where = (entry["status"], entry["file"], entry["line"]) if entry else None
        return where == ("away", "src/app.py", 10)

    await bob.wait("collab/participants", alice_away_on_line_10)


async def test_one_editor_switches_sessions_with_commands(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    first, alice, _ = await _pair(relay, sidecars, workspace)
    second = await relay.create_session(title="Second", host="carol")
    joined = await alice.command(
        "join", relayUrl=relay.url, token=relay.token(second, "alice", "editor")
    )
    assert joined["sessionId"] == second and joined["title"] == "Second"
    assert joined["role"] == "editor" and second != first
    left = await alice.command("leave")
    assert left["state"] == "offline"
    with pytest.raises(JsonRpcException) as refused:
        await alice.command("sendChat", text="anyone?")
    assert refused.value.data["errorCode"] == "NOT_JOINED"


async def test_cursor_bursts_are_coalesced_and_end_at_the_last_position(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    bob.open("src/app.py")
    sent_before = relay.relay.metrics.frames_received["cursor_update"]
    for character in range(100):
        alice.cursor(uri, 5, character % 20)
    alice.cursor(uri, 5, 7)
    await bob.wait(
        "collab/remoteCursors",
        lambda p: [c["position"] for c in p["cursors"]] == [{"line": 5, "character": 7}],
    )
    forwarded = relay.relay.metrics.frames_received["cursor_update"] - sent_before
    assert 1 <= forwarded < 101  # 101 editor notifications, far fewer relay frames


async def test_host_commands_invite_change_role_remove_and_end(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    session_id, alice, bob = await _pair(relay, sidecars, workspace)
    invite = await alice.command("invite", role="viewer", maxUses=1)
    assert invite["link"].startswith("collab://join?relay=") and invite["role"] == "viewer"
    carol = sidecars(workspace)
    await carol.start(invite=invite["link"], name="carol")
    joined = await carol.wait("collab/sessionState", lambda p: p["state"] == "connected")
    assert joined["role"] == "viewer"

    with pytest.raises(JsonRpcException) as refused:
        await bob.command("invite", role="editor")
    assert refused.value.data["errorCode"] == "PERMISSION_DENIED"

    carol_id = joined["you"]
    await alice.command("changeRole", userId="carol", role="editor")
    await carol.wait("collab/sessionState", lambda p: p["role"] == "editor")
    await alice.command("remove", userId=carol_id)
    gone = await carol.wait(
        "collab/sessionState", lambda p: p["state"] == "offline" and p["detail"]
    )
    assert "REMOVED" in gone["detail"]

    await alice.command("endSession")
    ended = await bob.wait("collab/sessionState", lambda p: p["status"] == "ended")
    assert ended["sessionId"] == session_id


async def test_malformed_editor_notifications_are_logged_not_fatal(
    relay: RelayHandle, workspace: Path, sidecars: Make
) -> None:
    _, alice, bob = await _pair(relay, sidecars, workspace)
    uri = alice.open("src/app.py")
    bob.open("src/app.py")
    alice.client.protocol.notify("collab/cursor", {"uri": uri, "position": {"line": "x"}})
    alice.client.protocol.notify("collab/status", {"status": "asleep"})
    logged = await alice.wait(
        types.WINDOW_LOG_MESSAGE, lambda p: "ignored collab/status: status" in p.message
    )
    assert logged.type == types.MessageType.Warning
    alice.cursor(uri, 1, 0)  # and the next good one still works
    await bob.wait("collab/remoteCursors", lambda p: len(p["cursors"]) == 1)
