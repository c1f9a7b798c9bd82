"""The plugin against a real relay and real collab-lsp processes: Neovim is bob, the other
participant (alice, the host) is a sidecar driven by pytest-lsp."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collab_lsp.protocol.models import ParticipantKind
from tests.helpers import RelayHandle
from tests.neovim.harness import MARKS, POLL, TIMEOUT, Neovim
from tests.sidecar.harness import Sidecar

LINE = "    print('héllo😀 world')"


async def _alice(
    relay: RelayHandle, sidecars: Callable[..., Sidecar], root: Path, sid: str
) -> Sidecar:
    alice = sidecars(root)  # a VS Code-like client: utf-16 positions
    await alice.start(relayUrl=relay.url, token=relay.token(sid, "alice", "host"))
    await alice.wait("collab/sessionState", lambda p: p["state"] == "connected")
    return alice


async def _bob(
    relay: RelayHandle, neovims: Callable[..., Any], root: Path, sid: str, role: str = "editor"
) -> Neovim:
    nvim: Neovim = await neovims(root, relay_url=relay.url, token=relay.token(sid, "bob", role))
    await nvim.command("Collab join")
    await nvim.wait_state(lambda s: s.get("state") == "connected")
    await nvim.edit(root / "src" / "app.py")
    return nvim


async def test_remote_cursor_is_an_extmark_with_the_name(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    nvim = await _bob(relay, neovims, workspace, sid)
    uri = alice.open("src/app.py")
    # alice (utf-16) selects `print('héllo😀` with the caret after the emoji
    alice.client.protocol.notify(
        "collab/cursor",
        {
            "uri": uri,
            "position": {"line": 4, "character": 18},
            "selections": [
                {"anchor": {"line": 4, "character": 4}, "active": {"line": 4, "character": 18}}
            ],
        },
    )
    marks = await _wait_marks(nvim, lambda ms: any(m["label"] == " alice" for m in ms))
    caret = next(m for m in marks if m["label"] == " alice")
    # utf-16 18 is byte 21 in Neovim's utf-8 line: right after 😀
    assert (caret["row"], caret["col"]) == (4, len(LINE[:17].encode()))
    assert caret["hl"] == "CollabCursor2" and caret["label_hl"] == "CollabLabel2"  # alice: 1
    selection = next(m for m in marks if m["hl"] == "CollabSelection2")
    assert (selection["row"], selection["col"]) == (4, 4)
    assert (selection["end_row"], selection["end_col"]) == (4, 21)

    # she moves on: the mark follows, and there is still one caret of hers
    alice.cursor(uri, 3, 4)
    marks = await _wait_marks(
        nvim, lambda ms: [(m["row"], m["col"]) for m in ms if m["label"] == " alice"] == [(3, 4)]
    )
    assert not any(m["hl"].startswith("CollabSelection") for m in marks)

    # an edit above moves the mark with the text, without error
    await nvim.lua("vim.api.nvim_buf_set_lines(0, 0, 0, false, {'# new first line'})")
    marks = await _wait_marks(
        nvim, lambda ms: [m["row"] for m in ms if m["label"] == " alice"] == [4]
    )
    assert await nvim.lua("return vim.v.errmsg") == ""


async def _wait_location(nvim: Neovim, line: int) -> None:
    """Until the plugin's participant list has someone at 1-based ``line``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while line not in await nvim.locations():
        assert loop.time() < deadline, f"nobody reached line {line}"
        await asyncio.sleep(POLL)


async def _wait_marks(nvim: Neovim, predicate: Callable[[list[dict[str, Any]]], bool]) -> Any:
    return await nvim.wait(MARKS, predicate, what="cursor marks")


async def test_neovim_cursor_and_selection_reach_the_other_side(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    nvim = await _bob(relay, neovims, workspace, sid)
    alice.cursor(alice.open("src/app.py"), 4, 0)
    # bob puts his caret right after 😀 (byte 21 in Neovim): alice (utf-16) sees character 18
    await nvim.lua("vim.api.nvim_win_set_cursor(0, {5, 21})")
    await alice.wait(
        "collab/remoteCursors",
        lambda p: [c["position"] for c in p["cursors"]] == [{"line": 4, "character": 18}],
    )
    # a linewise visual selection of lines 4-5 is shared as 3:0 - 5:0
    await nvim.input("kVj")
    got = await alice.wait(
        "collab/remoteCursors",
        lambda p: any(c.get("selection") for c in p["cursors"]),
    )
    assert got["cursors"][0]["selection"] == {
        "anchor": {"line": 3, "character": 0},
        "active": {"line": 5, "character": 0},
    }
    await nvim.input("<Esc>")
    # the statusline component and :Collab who know both people
    status = await nvim.wait(
        "return require('collab').status()", lambda s: "2 people" in s, what="status"
    )
    assert status.startswith("collab: connected")
    await _wait_location(nvim, 5)
    # an AI assistant in the session is marked as one
    agent_token = relay.token(sid, "helper", "editor", kind=ParticipantKind.AGENT)
    await relay.join(sid, "helper", "editor", token=agent_token)
    await nvim.wait(
        "return #require('collab.client').participants", lambda n: n == 3, what="the agent"
    )
    await nvim.command("Collab who")
    who = await nvim.wait_note(lambda n: n.startswith("collab: participants"))
    assert "alice (host, active) src/app.py:5" in who and "bob [you] (editor" in who
    assert "🤖 helper (editor, active)" in who

    # losing focus makes bob away for the others, and coming back active again
    def bob_is(status: str) -> Callable[[Any], bool]:
        return lambda p: any(
            x["userId"] == "bob" and x["status"] == status for x in p["participants"]
        )

    await nvim.command("doautocmd FocusLost")
    await alice.wait("collab/participants", bob_is("away"))
    since = alice.mark()
    await nvim.command("doautocmd FocusGained")
    await alice.wait("collab/participants", bob_is("active"), since)


async def test_comment_from_the_other_side_is_a_diagnostic_with_thread_actions(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    nvim = await _bob(relay, neovims, workspace, sid)
    uri = alice.open("src/app.py")
    thread = await alice.command("addComment", uri=uri, line=4, text="use logging\nnot print")
    diagnostics = await nvim.wait(
        "return vim.diagnostic.get(0)", lambda ds: len(ds) == 1, what="a diagnostic"
    )
    [diagnostic] = diagnostics
    assert diagnostic["lnum"] == 4 and diagnostic["source"] == "collab"
    assert diagnostic["message"] == "alice: use logging"
    assert diagnostic["severity"] == 3  # vim.diagnostic.severity.INFO

    # :Collab thread opens a float with the whole thread
    await nvim.lua("vim.api.nvim_win_set_cursor(0, {5, 0})")
    await nvim.command("Collab thread")
    text = await nvim.wait(
        """local win = require('collab.comments').float
        if not win or not vim.api.nvim_win_is_valid(win) then return '' end
        local lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(win), 0, -1, false)
        return table.concat(lines, '\\n')""",
        lambda t: "alice" in t,
        what="the thread float",
    )
    assert "use logging" in text and "not print" in text

    # :Collab reply reaches alice; the diagnostic counts the reply
    since = alice.mark()
    await nvim.command("Collab reply agreed, on it")
    await alice.wait_diagnostics(uri, lambda d: len(d) == 1 and "1 reply" in d[0].message, since)
    await nvim.wait(
        "return vim.diagnostic.get(0)[1].message",
        lambda m: m == "alice: use logging (1 reply)",
        what="the reply count",
    )

    # :Collab comments fills the quickfix list
    await nvim.command("Collab comments")
    items = await nvim.wait("return vim.fn.getqflist()", lambda q: len(q) == 1, what="quickfix")
    assert items[0]["lnum"] == 5 and items[0]["text"] == "alice: use logging (1 reply)"
    await nvim.command("cclose")

    # :Collab resolve closes it for everyone
    await nvim.lua("vim.api.nvim_win_set_cursor(0, {5, 0})")
    await nvim.command("Collab resolve")
    await alice.wait_diagnostics(uri, lambda d: d == [])
    await nvim.wait("return #vim.diagnostic.get(0)", lambda n: n == 0, what="no diagnostics")
    listed = await alice.command("listThreads", threadIds=[thread["id"]])
    assert listed["threads"][0]["resolved"] is True


async def test_comment_from_neovim_reaches_the_other_side(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    nvim = await _bob(relay, neovims, workspace, sid)
    uri = alice.open("src/app.py")
    await nvim.lua("vim.api.nvim_win_set_cursor(0, {1, 0})")
    await nvim.command("Collab comment unused import")
    [one] = await alice.wait_diagnostics(uri, lambda d: len(d) == 1)
    assert one.message == "bob: unused import" and one.range.start.line == 0
    # a visual range: lines 4-5 (1-based) of main()
    await nvim.command("4,5Collab comment split main() @alice")
    both = await alice.wait_diagnostics(uri, lambda d: len(d) == 2)
    ranged = next(d for d in both if d.message.startswith("bob: split"))
    assert (ranged.range.start.line, ranged.range.end.line) == (3, 4)
    await alice.wait(
        "collab/chat",
        lambda p: p["kind"] == "mention" and p["mention"]["by"] == "bob",
    )
    assert any(n == "collab: comment added" for n in await nvim.notes())


async def test_a_viewers_comment_shows_the_permission_error(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    await _alice(relay, sidecars, workspace, sid)
    nvim = await _bob(relay, neovims, workspace, sid, role="viewer")
    await nvim.command("Collab comment I may not")
    note = await nvim.wait_note(lambda n: "PERMISSION_DENIED" in n)
    assert note.startswith("collab: comment failed: permission denied (PERMISSION_DENIED:")
    levels = await nvim.lua("return vim.tbl_map(function(n) return n.level end, _G.notes)")
    assert 4 in levels  # vim.log.levels.ERROR


async def test_chat_round_trips_through_the_chat_buffer(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    await alice.command("sendChat", text="morning! looking at the checkout bug")
    nvim = await _bob(relay, neovims, workspace, sid)
    await nvim.command("Collab chat")
    chat_lines = "return vim.api.nvim_buf_get_lines(require('collab.chat').buf, 0, -1, false)"
    # the prompt line stays last (it appears once insert mode has started)
    await nvim.wait(
        chat_lines,
        lambda ls: any("alice: morning!" in line for line in ls) and ls[-1].startswith("> "),
        what="history above the prompt line",
    )
    assert await nvim.lua("return vim.bo.buftype") == "prompt"

    # alice says something: it arrives as it is sent
    since = alice.mark()
    await alice.command("sendChat", text="@bob can you check main()?")
    await nvim.wait(chat_lines, lambda ls: any("@bob can you check" in line for line in ls))
    await nvim.wait_note(lambda n: n == "collab: alice mentioned you: @bob can you check main()?")

    # bob types on the prompt line; `@` completes alice's name
    await nvim.command("set completeopt=menu")  # the first match is inserted
    await nvim.command("startinsert!")
    await nvim.input("on it @")
    await nvim.wait(
        "return vim.fn.complete_info({'items'}).items",
        lambda items: [i["word"] for i in items] == ["alice"],
        what="@ completion",
    )
    await nvim.wait("return vim.api.nvim_get_current_line()", lambda t: t == "> on it @alice")
    await nvim.input(" <CR>")
    got = await alice.wait(
        "collab/chat",
        lambda p: p["kind"] == "new" and p["message"]["user_id"] == "bob",
        since,
    )
    assert got["message"]["content"] == "on it @alice "
    assert got["message"]["mentions"] == ["alice"]
    lines = await nvim.wait(chat_lines, lambda ls: any("bob: on it @alice" in line for line in ls))
    assert lines[-1] == "> "

    # reactions: alice reacts to bob's message, and bob reacts from the buffer
    await alice.command("react", messageId=got["message"]["id"], emoji="👀")
    await nvim.wait(chat_lines, lambda ls: any(line.strip() == "👀 1" for line in ls))
    await nvim.input("<Esc>")
    row = await nvim.lua(
        "for i, l in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do "
        "if l:find('alice: morning', 1, true) then return i end end"
    )
    await nvim.lua(f"vim.api.nvim_win_set_cursor(0, {{{row}, 0}})")
    await nvim.command("Collab react 👍")
    await alice.wait(
        "collab/chat",
        # (the harness's to_plain() renames emoji keys, so only the users are compared)
        lambda p: (
            p["kind"] == "reactions" and list(p["message"]["reactions"].values()) == [["bob"]]
        ),
        since,
    )
    lines = await nvim.wait(chat_lines, lambda ls: "      👍 1" in ls, what="bob's reaction")
    assert lines.index("      👍 1") == 1  # under alice's first message


async def test_follow_moves_the_window_and_stops_when_you_move(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    nvim = await _bob(relay, neovims, workspace, sid)
    uri = alice.open("src/long.py")
    alice.client.protocol.notify(
        "collab/viewport",
        {
            "uri": uri,
            "range": {"start": {"line": 99, "character": 0}, "end": {"line": 120, "character": 0}},
        },
    )
    alice.cursor(uri, 110, 0)
    await _wait_location(nvim, 111)
    await nvim.command("Collab follow alice")
    view = (
        "return {vim.fn.expand('%:t'), vim.fn.line('w0'), vim.fn.line('.'),"
        " require('collab.follow').following or ''}"
    )
    got = await nvim.wait(view, lambda v: v[0] == "long.py", what="the followed file")
    assert got[1:] == [100, 111, "alice"]
    state = await nvim.wait_state(lambda s: s.get("following") == "alice")
    assert "following alice" in await nvim.lua("return require('collab').status()")
    assert state["state"] == "connected"

    # alice scrolls on: the window follows
    alice.client.protocol.notify(
        "collab/viewport",
        {
            "uri": uri,
            "range": {"start": {"line": 149, "character": 0}, "end": {"line": 170, "character": 0}},
        },
    )
    alice.cursor(uri, 160, 0)
    await nvim.wait(view, lambda v: v[1:3] == [150, 161], what="the window following alice")

    # bob moves on his own: following stops, alice sees it
    await nvim.input("gg")
    await nvim.wait_state(lambda s: s.get("state") == "connected" and "following" not in s)
    await nvim.wait_note(lambda n: n == "collab: stopped following alice (you moved)")
    await alice.wait(
        "collab/participants",
        lambda p: any(x["userId"] == "bob" and x["following"] is None for x in p["participants"]),
    )


async def test_host_starts_invites_changes_roles_kicks_and_ends(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    team_token = relay.token(None, "carol", None)  # names no session: may create one
    nvim: Neovim = await neovims(workspace, relay_url=relay.url, token=team_token)
    await nvim.command("Collab start Checkout bug")
    state = await nvim.wait_state(lambda s: s.get("state") == "connected")
    assert (state["title"], state["role"]) == ("Checkout bug", "host")

    await nvim.command("Collab invite viewer")
    note = await nvim.wait_note(lambda n: n.startswith("collab: viewer invite"))
    link = note.split(": ", 2)[2]
    assert (
        link.startswith("collab://join?") and await nvim.lua("return vim.fn.getreg('\"')") == link
    )

    dave = sidecars(workspace)
    await dave.start(invite=link, name="dave")
    joined = await dave.wait("collab/sessionState", lambda p: p["state"] == "connected")
    assert joined["role"] == "viewer"
    await nvim.wait_state(lambda s: s.get("participantCount") == 2)
    completions = await nvim.lua("return vim.fn.getcompletion('Collab role ', 'cmdline')")
    assert completions == ["dave"]

    await nvim.command("Collab role dave editor")
    await dave.wait("collab/sessionState", lambda p: p["role"] == "editor")
    since = dave.mark()
    await nvim.command("Collab kick dave")
    gone = await dave.wait("collab/sessionState", lambda p: p["state"] == "offline", since)
    assert gone["detail"].startswith("REMOVED")
    await nvim.wait_note(lambda n: n == "collab: dave was removed")

    await nvim.command("Collab! end")  # ! skips the confirmation
    ended = await nvim.wait_state(lambda s: s.get("state") == "offline")
    assert ended["status"] == "ended"
    # the relay's refusals say what happened
    await nvim.command("Collab comment too late")
    await nvim.wait_note(lambda n: n.startswith("collab: comment failed:"))


async def test_join_errors_and_invite_links_from_neovim(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    nvim: Neovim = await neovims(workspace, relay_url=relay.url, token="not-a-token", name="erin")
    await nvim.command("Collab join")
    await nvim.wait_note(lambda n: "INVALID_TOKEN" in n or "token" in n.lower())
    state = await nvim.wait_state(lambda s: s.get("state") == "offline")
    assert "offline" in await nvim.lua("return require('collab').status()")
    assert state.get("sessionId") is None

    invite = await alice.command("invite", role="editor")
    await nvim.command(f"Collab join {invite['link']}")
    state = await nvim.wait_state(lambda s: s.get("state") == "connected")
    assert state["role"] == "editor" and state["you"].startswith("u_")
    await alice.wait(
        "collab/participants", lambda p: any(x["name"] == "erin" for x in p["participants"])
    )
    await nvim.command("Collab leave")
    await nvim.wait_state(lambda s: s.get("state") == "offline")
    await alice.wait(
        "collab/participants",
        lambda p: any(x["name"] == "erin" and not x["online"] for x in p["participants"]),
    )


async def test_checkhealth_reports_sidecar_relay_and_token(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    nvim = await _bob(relay, neovims, workspace, sid)
    await nvim.command("checkhealth collab")
    report = "\n".join(await nvim.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
    assert "collab: sidecar" in report and "version 0.1.0" in report
    assert f"{relay.url} is reachable (/healthz answered 200)" in report
    assert 'connected to "Pairing" as bob (editor)' in report
    assert "ERROR" not in report, report

    # a relay that is not there, and an expired token
    await nvim.lua(
        "require('collab.config').options.relay_url = 'ws://127.0.0.1:9'; "
        "require('collab.config').options.token = ...",
        relay.token(sid, "bob", "editor", ttl=-60),
    )
    await nvim.command("checkhealth collab")
    report = "\n".join(await nvim.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
    assert "ws://127.0.0.1:9 is not reachable" in report
    assert "the token expired" in report


async def test_inactivity_makes_you_idle_and_moving_makes_you_active(
    relay: RelayHandle,
    workspace: Path,
    sidecars: Callable[..., Sidecar],
    neovims: Callable[..., Any],
) -> None:
    sid = await relay.create_session()
    alice = await _alice(relay, sidecars, workspace, sid)
    nvim: Neovim = await neovims(
        workspace, relay_url=relay.url, token=relay.token(sid, "bob", "editor"), idle_after=300
    )
    await nvim.command("Collab join")
    await nvim.wait_state(lambda s: s.get("state") == "connected")
    await nvim.edit(workspace / "src" / "app.py")

    def bob_is(status: str) -> Callable[[Any], bool]:
        return lambda p: any(
            x["userId"] == "bob" and x["status"] == status for x in p["participants"]
        )

    # a move starts the inactivity clock; 300 ms later bob is idle for the others
    await nvim.lua("vim.api.nvim_win_set_cursor(0, {3, 0})")
    await nvim.command("doautocmd CursorMoved")
    await alice.wait("collab/participants", bob_is("idle"))
    since = alice.mark()
    await nvim.lua("vim.api.nvim_win_set_cursor(0, {2, 0})")
    await nvim.command("doautocmd CursorMoved")
    await alice.wait("collab/participants", bob_is("active"), since=since)
