"""The VS Code extension end to end, in a real VS Code.

code-server (VS Code 1.139) runs with the packaged .vsix installed, in Debian's headless Chromium
driven by playwright-core (``editor_clients/vscode/e2e/driver.mjs``), against a real relay and a
real collab-lsp started by the extension. The other participant, alice, is a scripted sidecar
(``tests/sidecar/harness.py``). The extension writes what it shows to the file named by
``COLLAB_VSCODE_ORACLE``; the test checks that file and the page's DOM, and saves screenshots
(in ``$COLLAB_E2E_ARTIFACTS`` if set).

Heavy installs (Node 24, code-server, chromium) are cached outside the repository by
``editor_clients/vscode/scripts/setup-e2e.sh``, which this test runs (a no-op when warm).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.helpers import RelayHandle
from tests.sidecar.harness import Sidecar

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editor_clients" / "vscode"
TIMEOUT = 45.0
APP = "import os\n\n\ndef main():\n    print('héllo😀 world')\n    return 0\n"
LONG = "".join(f"value_{n} = {n}\n" for n in range(1, 201))


async def _run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}):\n{err.decode()[-4000:]}")
    return out.decode()


_TOOLS: dict[str, str] = {}


async def _tools() -> dict[str, str]:
    """Run the idempotent setup script and build the .vsix (once per run); return the tool paths."""
    if _TOOLS:
        return _TOOLS
    exports = await _run(str(EXTENSION / "scripts" / "setup-e2e.sh"))
    tools = {}
    for line in exports.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            tools[key] = value.strip("'")
    if not (EXTENSION / "node_modules" / ".bin" / "vsce").exists():
        await _run("npm", "ci", "--no-audit", "--no-fund", cwd=EXTENSION)
    await _run("npm", "run", "package", cwd=EXTENSION)
    _TOOLS.update(tools)
    return tools


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Driver:
    """The playwright-core driver process: one JSON request per line, one answer per line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ids = itertools.count(1)

    async def __call__(self, op: str, **args: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        request = {"id": next(self.ids), "op": op, **args}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 90)
        if not line:
            raise RuntimeError(f"the driver exited during {op}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"driver {op} failed: {answer['error']}")
        return answer["result"]


class Oracle:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: dict[str, Any] = {}

    async def wait(self, what: str, predicate: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            with contextlib.suppress(OSError, ValueError):
                self.last = json.loads(self.path.read_text(encoding="utf-8"))
                if predicate(self.last):
                    return self.last
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last oracle: {self.last}")
            await asyncio.sleep(0.2)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP, encoding="utf-8")
    (root / "src" / "long.py").write_text(LONG, encoding="utf-8")
    return root


@pytest.fixture
async def alice(workspace: Path) -> AsyncIterator[Sidecar]:
    sidecar = Sidecar(workspace, "vscode")
    yield sidecar
    with contextlib.suppress(Exception):
        await sidecar.stop()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("COLLAB_E2E_ARTIFACTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _start_vscode(
    tmp_path: Path, workspace: Path, relay: RelayHandle, tools: dict[str, str]
) -> tuple[asyncio.subprocess.Process, str, Path]:
    wrapper = tmp_path / "collab-lsp"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m collab_lsp.sidecar "$@"\n')
    wrapper.chmod(0o755)
    (workspace / ".vscode").mkdir()
    (workspace / ".vscode" / "settings.json").write_text(
        json.dumps(
            {
                "collab.relayUrl": relay.url,
                "collab.sidecarPath": str(wrapper),
            }
        )
    )
    user_data, extensions = tmp_path / "user-data", tmp_path / "extensions"
    (user_data / "User").mkdir(parents=True)
    (user_data / "User" / "settings.json").write_text(
        json.dumps(
            {
                "collab.displayName": "bob",  # application scope: a user setting
                "chat.disableAIFeatures": True,
                "telemetry.telemetryLevel": "off",
                "update.mode": "none",
                "extensions.autoUpdate": False,
                "extensions.autoCheckUpdates": False,
                "security.workspace.trust.enabled": False,
                "workbench.startupEditor": "none",
                "workbench.tips.enabled": False,
                "editor.minimap.enabled": False,
                "window.restoreWindows": "none",
                # a resolved thread stays open, so its Reopen action can be clicked
                "comments.collapseOnResolve": False,
            }
        )
    )
    oracle = tmp_path / "oracle.json"
    env = {
        **os.environ,
        "PATH": f"{tools['COLLAB_E2E_NODE24']}:{os.environ['PATH']}",
        "COLLAB_VSCODE_ORACLE": str(oracle),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
    }
    common = [
        "--config",
        "/dev/null",
        "--user-data-dir",
        str(user_data),
        "--extensions-dir",
        str(extensions),
    ]
    code_server = tools["COLLAB_E2E_CODE_SERVER"]
    vsix = EXTENSION / "dist" / "collab-lsp.vsix"
    await _run(code_server, *common, "--install-extension", str(vsix), env=env)
    port = _free_port()
    log = (tmp_path / "code-server.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        code_server,
        *common,
        "--bind-addr",
        f"127.0.0.1:{port}",
        "--auth",
        "none",
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        str(workspace),
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not await asyncio.to_thread(_healthy, f"{url}/healthz"):
        if process.returncode is not None or loop.time() > deadline:
            raise RuntimeError((tmp_path / "code-server.log").read_text()[-4000:])
        await asyncio.sleep(0.2)
    return process, f"{url}/?folder={workspace}", oracle


def _stop_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)


def _uri_of(path: Path) -> str:
    return path.as_uri()


async def _until(what: str, probe: Callable[[], Any]) -> Any:
    """Poll an async probe until it returns something truthy (for state only a sidecar holds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _thread(sidecar: Sidecar, thread_id: str) -> dict[str, Any] | None:
    threads = (await sidecar.command("listThreads", includeResolved=True))["threads"]
    return next((t for t in threads if t["threadId"] == thread_id), None)


async def _has(sidecar: Sidecar, thread_id: str, check: Callable[[dict[str, Any]], bool]) -> bool:
    thread = await _thread(sidecar, thread_id)
    return thread is not None and check(thread)


async def _reactions_are(sidecar: Sidecar, message_id: str, expected: dict[str, Any]) -> bool:
    page = await sidecar.command("fetchHistory", limit=20)
    found = next((m for m in page["messages"] if m["id"] == message_id), None)
    return found is not None and (found.get("reactions") or {}) == expected


async def _join(sidecar: Sidecar, invite: str, name: str) -> Any:
    """collab.server.join {invite, name} (Sidecar.command takes `name` itself)."""
    return await sidecar.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="collab.server.join", arguments=[{"invite": invite, "name": name}]
        )
    )


@contextlib.asynccontextmanager
async def _vscode(
    tmp_path: Path, workspace: Path, relay: RelayHandle, artifacts: Path
) -> AsyncIterator[tuple[Driver, Oracle]]:
    """code-server with the extension, and the browser driving it; screenshot on failure."""
    tools = await _tools()
    process, url, oracle_path = await _start_vscode(tmp_path, workspace, relay, tools)
    driver_process = await asyncio.create_subprocess_exec(
        "node",
        str(EXTENSION / "e2e" / "driver.mjs"),
        cwd=EXTENSION,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    drive = Driver(driver_process)
    oracle = Oracle(oracle_path)
    try:
        await drive("open", url=url, executablePath=tools["COLLAB_E2E_CHROMIUM"])
        await oracle.wait("the extension to start", lambda o: o["state"]["state"] == "offline")
        yield drive, oracle
    except BaseException:
        with contextlib.suppress(Exception):
            await drive("screenshot", path=str(artifacts / f"failure-{tmp_path.name}.png"))
        raise
    finally:
        with contextlib.suppress(Exception):
            await drive("close")
        with contextlib.suppress(ProcessLookupError):
            driver_process.kill()
        await driver_process.wait()
        _stop_group(process)
        await process.wait()
        if os.environ.get("COLLAB_E2E_KEEP"):
            shutil.copytree(
                tmp_path,
                Path(os.environ["COLLAB_E2E_KEEP"]) / tmp_path.name,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("*.sock"),
            )


async def test_vscode_extension_end_to_end(
    relay: RelayHandle, workspace: Path, alice: Sidecar, artifacts: Path, tmp_path: Path
) -> None:
    session_id = await relay.create_session("Checkout bug", host="alice")
    await alice.start(relayUrl=relay.url, token=relay.token(session_id, "alice", "host"))
    await alice.wait("collab/sessionState", lambda p: p["state"] == "connected")
    # More than a page (50) of history, so the chat view has older messages to load.
    for n in range(1, 61):
        await alice.command("sendChat", text=f"seed {n}")
    invite = await alice.command("invite", role="editor")

    async with _vscode(tmp_path, workspace, relay, artifacts) as (drive, oracle):
        # Join from the palette with alice's invite link; the name comes from the settings.
        await drive("command", title="Collab: Join Session")
        await drive("answer", text=invite["link"], expect="paste an invite link")
        joined = await oracle.wait(
            "bob to join",
            lambda o: o["state"]["state"] == "connected" and len(o["participants"]) == 2,
        )
        assert joined["state"]["title"] == "Checkout bug"
        assert joined["state"]["role"] == "editor"
        bob_id = joined["state"]["you"]
        await alice.wait("collab/participants", lambda p: len(p["participants"]) == 2)

        # alice's cursor and selection appear as a labelled decoration at the right place.
        await drive("quickOpen", file="src/app.py")
        app = workspace / "src" / "app.py"
        await oracle.wait(
            "app.py to open",
            lambda o: (o["activeEditor"] or {}).get("uri", "").endswith("/src/app.py"),
        )
        uri = alice.open("src/app.py")
        selection = {"anchor": {"line": 4, "character": 4}, "active": {"line": 4, "character": 18}}
        alice.client.protocol.notify(
            "collab/cursor",
            {"uri": uri, "position": selection["active"], "selections": [selection]},
        )
        seen = await oracle.wait(
            "alice's cursor decoration",
            lambda o: any(c["name"] == "alice" for c in o["cursors"]),
        )
        cursor = next(c for c in seen["cursors"] if c["name"] == "alice")
        assert cursor["caret"]["start"] == {"line": 4, "character": 18}  # utf-16, after 😀
        assert cursor["selection"] == {
            "start": {"line": 4, "character": 4},
            "end": {"line": 4, "character": 18},
        }
        assert cursor["color"] == "#3cb44b"  # alice's colour index is 1
        labels = await drive("cursorLabels", name="alice")
        assert any('"alice"' in label["content"] for label in labels), labels
        await drive("screenshot", path=str(artifacts / "cursor.png"))

        # alice's comment becomes a native comment thread and a diagnostic.
        result = await alice.command("addComment", uri=uri, line=3, text="main() should return 1")
        thread_id = result["id"]
        seen = await oracle.wait(
            "alice's comment thread",
            lambda o: any(t["threadId"] == thread_id for t in o["threads"]),
        )
        thread = next(t for t in seen["threads"] if t["threadId"] == thread_id)
        assert thread["startLine"] == 3
        assert thread["comments"][0]["author"] == "alice"
        assert thread["comments"][0]["body"] == "main() should return 1"
        await oracle.wait(
            "the diagnostic",
            lambda o: any(
                d["message"] == "alice: main() should return 1" and d["line"] == 3
                for d in o["diagnostics"]
            ),
        )
        widget = await drive("text", selector=".review-widget", contains="main() should return 1")
        assert "alice" in widget
        await drive("screenshot", path=str(artifacts / "comment-thread.png"))

        # A comment made in VS Code reaches alice.
        await drive("press", key="Escape")
        await drive("command", title="Go to Line/Column")
        await drive("answer", text=":6", expect="Type a line number")
        await oracle.wait(
            "the caret on line 6", lambda o: o["activeEditor"]["selection"]["line"] == 5
        )
        mark = alice.mark()
        await drive("command", title="Collab: Add Comment")
        await drive("answer", text="returns 0 on purpose", expect="Comment on line 6")
        found = await alice.wait_diagnostics(
            _uri_of(app),
            lambda ds: any(d.message == "bob: returns 0 on purpose" for d in ds),
            since=mark,
        )
        assert next(d for d in found if d.message.startswith("bob:")).range.start.line == 5

        # The comment thread UI: reply, resolve and reopen alice's thread; authors are shown.
        alice_thread = ".review-widget:has-text('main() should return 1')"
        await drive("click", selector=f"{alice_thread} .comment-form")
        await drive("type", text="agreed, will fix")
        await drive("click", selector=f"{alice_thread} .monaco-button", contains="Reply")
        await oracle.wait(
            "bob's reply in the thread",
            lambda o: any(
                t["threadId"] == thread_id
                and [c["author"] for c in t["comments"]] == ["alice", "bob"]
                and t["comments"][1]["body"] == "agreed, will fix"
                for t in o["threads"]
            ),
        )
        await _until(
            "alice to see bob's reply",
            lambda: _has(alice, thread_id, lambda t: len(t["comments"]) == 2),
        )
        widget = await drive("text", selector=alice_thread, contains="agreed, will fix")
        assert "alice" in widget and "bob" in widget
        await drive("click", selector=f"{alice_thread} .action-label[aria-label='Resolve']")
        await _until(
            "alice to see it resolved", lambda: _has(alice, thread_id, lambda t: t["resolved"])
        )
        await oracle.wait(
            "the thread resolved",
            lambda o: any(t["threadId"] == thread_id and t["resolved"] for t in o["threads"]),
        )
        await drive("click", selector=f"{alice_thread} .action-label[aria-label='Reopen']")
        await _until(
            "alice to see it reopened", lambda: _has(alice, thread_id, lambda t: not t["resolved"])
        )

        # Edit, then delete, bob's own comment.
        bob_thread_id = next(
            t["threadId"] for t in oracle.last["threads"] if t["comments"][0]["author"] == "bob"
        )
        bob_thread = ".review-widget:has-text('returns 0 on purpose')"
        await drive(
            "click",
            selector=".action-label[aria-label='Edit']",
            hover={"selector": f"{bob_thread} .review-comment", "contains": "returns 0 on purpose"},
        )
        await drive("click", selector=f"{bob_thread} .edit-container .monaco-editor")
        await drive("press", key="Control+A")
        await drive("type", text="returns 0: the caller checks it")
        await drive("click", selector=f"{bob_thread} .monaco-button", contains="Save")
        await _until(
            "alice to see the edit",
            lambda: _has(
                alice,
                bob_thread_id,
                lambda t: t["comments"][0]["content"] == "returns 0: the caller checks it",
            ),
        )
        await oracle.wait(
            "the edited comment",
            lambda o: any(
                t["threadId"] == bob_thread_id
                and t["comments"][0]["body"] == "returns 0: the caller checks it"
                and t["comments"][0]["edited"]
                for t in o["threads"]
            ),
        )
        bob_thread = ".review-widget:has-text('the caller checks it')"
        await drive(
            "click",
            selector=".action-label[aria-label='Delete']",
            hover={"selector": f"{bob_thread} .review-comment", "contains": "the caller checks it"},
        )
        await drive("click", selector=".monaco-dialog-box .monaco-button", contains="Delete")
        # alice's sidecar keeps the deleted root as a tombstone; the thread is gone from VS Code.
        await _until(
            "alice to see the comment deleted",
            lambda: _has(alice, bob_thread_id, lambda t: t["comments"][0].get("deleted")),
        )
        await oracle.wait(
            "bob's thread gone",
            lambda o: all(t["threadId"] != bob_thread_id for t in o["threads"]),
        )
        await drive("gone", selector=".review-widget", contains="the caller checks it")

        # Chat both ways; a script-like message renders as text and runs nothing.
        xss = "<img src=x onerror=alert(1)>"
        await alice.command("sendChat", text=xss)
        await alice.command("sendChat", text="@bob see src/app.py:4")
        await drive("command", title="Collab: Open Chat")
        await oracle.wait(
            "the chat to render",
            lambda o: (
                (o["chat"].get("dom") or {}).get("count", 0) >= 2
                and "see src/app.py:4" in o["chat"]["dom"]["text"]
            ),
        )
        chat = await drive("chat")
        assert xss in chat["text"]
        assert chat["injected"] == 0
        assert "&lt;img src=x onerror=alert(1)&gt;" in chat["html"]
        assert "script-src 'nonce-" in chat["csp"] and "default-src 'none'" in chat["csp"]
        assert 'class="file-ref" data-file="src/app.py" data-line="4"' in chat["html"]
        mark = alice.mark()
        await drive("chatSend", text="hello from VS Code")
        got = await alice.wait(
            "collab/chat",
            lambda p: p["kind"] == "new" and p["message"]["content"] == "hello from VS Code",
            since=mark,
        )
        assert got["message"]["user_id"] == bob_id
        await oracle.wait(
            "bob's message in the chat view",
            lambda o: "hello from VS Code" in (o["chat"].get("dom") or {}).get("text", ""),
        )
        await drive("screenshot", path=str(artifacts / "chat.png"))

        # Older history loads when the list is scrolled to the top.
        assert not any(m["content"] == "seed 1" for m in oracle.last["chat"]["messages"])
        await drive("chatScrollUp", until="seed 1")
        await oracle.wait(
            "the older page in the chat",
            lambda o: [m["content"] for m in o["chat"]["messages"]][:2] == ["seed 1", "seed 2"],
        )

        # Reactions: add one from the picker, then take it back by clicking it.
        message = ".message:has-text('see src/app.py:4')"
        mark = alice.mark()
        await drive(
            "click",
            selector="[data-action='pick-reaction']",
            hover={"selector": ".message", "contains": "see src/app.py:4"},
            chat=True,
        )
        await drive("answer", text="👀", row="👀", expect="🚀")
        # (The harness's notifications mangle emoji keys; alice's fetchHistory has them as sent.)
        reacted = await alice.wait("collab/chat", lambda p: p["kind"] == "reactions", since=mark)
        reacted_id = reacted["message"]["id"]
        await _until(
            "alice to see bob's 👀",
            lambda: _reactions_are(alice, reacted_id, {"👀": [bob_id]}),
        )
        await oracle.wait(
            "the reaction shown",
            lambda o: "👀 1" in (o["chat"].get("dom") or {}).get("text", ""),
        )
        await drive("click", selector=f"{message} .reaction.mine", chat=True)
        await _until("alice to see it taken back", lambda: _reactions_are(alice, reacted_id, {}))

        # Edit, then delete, bob's own message.
        await drive(
            "click",
            selector="[data-action='edit']",
            hover={"selector": ".message", "contains": "hello from VS Code"},
            chat=True,
        )
        await drive("answer", text="hello again from VS Code", expect="Edit message")
        await alice.wait(
            "collab/chat",
            lambda p: (
                p["kind"] == "edited" and p["message"]["content"] == "hello again from VS Code"
            ),
            since=mark,
        )
        await oracle.wait(
            "the edit shown",
            lambda o: "hello again from VS Code" in (o["chat"].get("dom") or {}).get("text", ""),
        )
        await drive(
            "click",
            selector="[data-action='delete']",
            hover={"selector": ".message", "contains": "hello again from VS Code"},
            chat=True,
        )
        await drive("click", selector=".monaco-dialog-box .monaco-button", contains="Delete")
        await alice.wait("collab/chat", lambda p: p["kind"] == "deleted", since=mark)
        await oracle.wait(
            "the tombstone shown",
            lambda o: "message deleted" in (o["chat"].get("dom") or {}).get("text", ""),
        )

        # @mention completion offers the others (not you); Tab completes, Enter sends.
        typed = await drive("chatType", text="@", expect="@alice")
        assert typed["suggestions"] == ["@alice"], typed
        assert await drive("chatKey", key="Tab") == "@alice "
        await drive("type", text="ping")
        await drive("chatKey", key="Enter")
        got = await alice.wait(
            "collab/chat",
            lambda p: p["kind"] == "new" and p["message"]["content"] == "@alice ping",
            since=mark,
        )
        assert got["message"]["mentions"] == ["alice"]
        await alice.wait("collab/chat", lambda p: p["kind"] == "mention", since=mark)

        # The Participants view: role, status, file:line and who follows whom; inline Follow.
        await alice.command("follow", userId=bob_id)
        await drive("command", title="Collab: Show Participants")
        row = await drive("text", selector=".monaco-list-row", contains="follows bob")
        assert row.startswith("alice") and "host · active · src/app.py:5" in row, row
        me = await drive("text", selector=".monaco-list-row", contains="bob (you)")
        assert "editor" in me, me
        await drive("screenshot", path=str(artifacts / "participants.png"))
        await alice.command("unfollow")
        await drive(
            "click",
            selector=".action-label[aria-label='Follow']",
            hover={"selector": ".monaco-list-row", "contains": "alice"},
        )
        await oracle.wait("following alice", lambda o: o["state"]["following"] == "alice")
        await drive("text", selector=".monaco-list-row", contains="alice 👁")
        await drive("command", title="Collab: Stop Following")
        await oracle.wait("not following", lambda o: o["state"]["following"] is None)

        # Follow mode: the editor goes where alice looks.
        await drive("command", title="Collab: Follow")
        await drive("answer", text="alice", row="alice", expect="host")
        await oracle.wait("following alice", lambda o: o["state"]["following"] == "alice")
        long_uri = alice.open("src/long.py")
        alice.client.protocol.notify(
            "collab/viewport",
            {
                "uri": long_uri,
                "range": {
                    "start": {"line": 150, "character": 0},
                    "end": {"line": 170, "character": 0},
                },
            },
        )
        alice.cursor(long_uri, 160, 0)
        followed = await oracle.wait(
            "the editor to follow alice",
            lambda o: (
                (o["activeEditor"] or {}).get("uri", "").endswith("/src/long.py")
                and any(v["start"] <= 160 <= v["end"] for v in o["activeEditor"]["visible"])
            ),
        )
        assert followed["activeEditor"]["visible"][0]["start"] >= 100
        status = await drive("text", selector=".statusbar", contains="following alice")
        assert "Checkout bug" in status
        await drive("screenshot", path=str(artifacts / "follow.png"))

        # Presence: the window losing the focus makes bob idle for alice; the focus brings him back.
        mark = alice.mark()
        await drive("windowFocus", focused=False)
        await alice.wait(
            "collab/participants",
            lambda p: any(
                r["userId"] == bob_id and r["status"] == "idle" for r in p["participants"]
            ),
            since=mark,
        )
        await drive("windowFocus", focused=True)
        await alice.wait(
            "collab/participants",
            lambda p: any(
                r["userId"] == bob_id and r["status"] == "active" for r in p["participants"]
            ),
            since=mark,
        )

        # Restart Sidecar: bob's sidecar goes away and comes back into the session by itself
        # (with the personal token the extension stored); Show Logs opens the log channel.
        mark = alice.mark()
        await drive("command", title="Collab: Restart Sidecar")
        await alice.wait(
            "collab/participants",
            lambda p: any(r["userId"] == bob_id and not r["online"] for r in p["participants"]),
            since=mark,
        )
        await alice.wait(
            "collab/participants",
            lambda p: any(r["userId"] == bob_id and r["online"] for r in p["participants"]),
            since=mark,
        )
        await oracle.wait(
            "bob back in the session",
            lambda o: o["state"]["state"] == "connected" and o["state"]["you"] == bob_id,
        )
        await drive("text", selector=".statusbar", contains="sidecar restarted")
        await drive("command", title="Collab: Show Logs")
        logs = await drive("text", selector=".part.panel", contains="starting")
        assert "collab-lsp" in logs

        # A relay refusal is a notification: as a viewer, bob may not comment.
        await alice.command("changeRole", userId=bob_id, role="viewer")
        await oracle.wait("bob a viewer", lambda o: o["state"]["role"] == "viewer")
        await drive("command", title="Collab: Add Comment")
        await drive("answer", text="viewers cannot comment", expect="Comment on line")
        toast = await drive(
            "text", selector=".notifications-toasts .notification-toast", contains="add comment"
        )
        assert "PERMISSION_DENIED" in toast and "your role does not allow this" in toast, toast
        await drive("screenshot", path=str(artifacts / "permission-denied.png"))


async def test_vscode_host_end_to_end(
    relay: RelayHandle, workspace: Path, alice: Sidecar, artifacts: Path, tmp_path: Path
) -> None:
    """bob joins from a vscode:// link, then hosts his own session: invite, role, remove, end."""
    kickoff = await relay.create_session("Kickoff", host="alice")
    await alice.start(relayUrl=relay.url, token=relay.token(kickoff, "alice", "host"))
    await alice.wait("collab/sessionState", lambda p: p["state"] == "connected")
    invite = await alice.command("invite", role="editor")
    carol = Sidecar(workspace, "vscode")
    await carol.start()

    async with _vscode(tmp_path, workspace, relay, artifacts) as (drive, oracle):
        try:
            # The one-click link, routed by VS Code to the extension's URI handler.
            query = invite["link"].split("?", 1)[1]
            await drive("command", title="Developer: Open URL")
            await drive("answer", text=f"code-oss://collab-lsp.collab-lsp/join?{query}")
            await drive("click", selector=".monaco-dialog-box .monaco-button", contains="Open")
            joined = await oracle.wait(
                "bob to join from the link",
                lambda o: o["state"]["state"] == "connected" and len(o["participants"]) == 2,
            )
            assert joined["state"]["title"] == "Kickoff" and joined["state"]["role"] == "editor"

            # Start Session with a team token: bob hosts a new session.
            await drive("command", title="Collab: Start Session")
            await drive("answer", text=relay.url, expect="Relay URL")
            await drive("answer", text="Bob's review", expect="Session title")
            await drive("answer", text=relay.token(None, "bob"), expect="Team token")
            hosted = await oracle.wait(
                "bob's own session",
                lambda o: (
                    o["state"]["state"] == "connected" and o["state"]["title"] == "Bob's review"
                ),
            )
            assert hosted["state"]["role"] == "host"
            review = hosted["state"]["sessionId"]

            # Invite: the link for the chosen role is on the clipboard; alice joins with it.
            await drive("command", title="Collab: Invite (copy link)")
            await drive("answer", text="viewer", row="viewer", expect="can follow and read")
            await drive("text", selector=".notification-toast", contains="invite link for a viewer")
            link = await drive("clipboard")
            assert link.startswith("collab://join?relay="), link
            mark = alice.mark()
            await _join(alice, link, "alice")
            await alice.wait(
                "collab/sessionState",
                lambda p: p["sessionId"] == review and p["role"] == "viewer",
                since=mark,
            )
            # The same notification offers the link in VS Code's own scheme.
            await drive(
                "click", selector=".notification-toast .monaco-button", contains="VS Code link"
            )

            # The click writes the clipboard asynchronously: wait for the new link.
            async def vscode_link() -> bool:
                link = await drive("clipboard")
                return str(link).startswith("code-oss://collab-lsp.collab-lsp/join?relay=")

            await _until("the VS Code link on the clipboard", vscode_link)
            await drive("command", title="Collab: Invite (copy link)")
            await drive("answer", text="editor", row="editor", expect="can follow and read")
            await drive(
                "text", selector=".notification-toast", contains="invite link for an editor"
            )
            await _join(carol, await drive("clipboard"), "carol")
            await carol.wait(
                "collab/sessionState",
                lambda p: (
                    p["sessionId"] == review and p["role"] == "editor" and p["state"] == "connected"
                ),
            )
            await oracle.wait("three in bob's session", lambda o: len(o["participants"]) == 3)

            # The host's inline actions in the Participants view: change role, remove.
            await drive("command", title="Collab: Show Participants")
            mark = alice.mark()
            await drive(
                "click",
                selector=".action-label[aria-label='Change Role']",
                hover={"selector": ".monaco-list-row", "contains": "alice"},
            )
            await drive("answer", text="editor", row="editor", expect="viewer")
            await alice.wait("collab/sessionState", lambda p: p["role"] == "editor", since=mark)
            await oracle.wait(
                "alice an editor",
                lambda o: any(
                    p["name"] == "alice" and p["role"] == "editor" for p in o["participants"]
                ),
            )
            await drive("text", selector=".monaco-list-row", contains="alice")
            await drive("screenshot", path=str(artifacts / "participants-host.png"))
            await drive(
                "click",
                selector=".action-label[aria-label='Remove Participant']",
                hover={"selector": ".monaco-list-row", "contains": "carol"},
            )
            await drive("click", selector=".monaco-dialog-box .monaco-button", contains="Remove")
            await carol.wait(
                "collab/sessionState",
                lambda p: p["state"] == "offline" and (p["detail"] or "").startswith("REMOVED"),
            )
            await oracle.wait(
                "carol gone", lambda o: all(p["name"] != "carol" for p in o["participants"])
            )
            await drive("gone", selector=".monaco-list-row", contains="carol")

            # End Session: alice's sidecar sees the session end.
            mark = alice.mark()
            await drive("command", title="Collab: End Session")
            await drive(
                "click", selector=".monaco-dialog-box .monaco-button", contains="End Session"
            )
            ended = await alice.wait(
                "collab/sessionState",
                lambda p: p["state"] == "offline" and p["status"] == "ended",
                since=mark,
            )
            assert ended["detail"].startswith("SESSION_ENDED")
            await oracle.wait("bob's session ended", lambda o: o["state"]["status"] == "ended")
        finally:
            with contextlib.suppress(Exception):
                await carol.stop()
