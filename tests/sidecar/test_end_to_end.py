"""Two or three real sidecars, as different users, through a real relay."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import RelayHandle
from tests.sidecar.harness import Sidecar


async def _join(
    relay: RelayHandle,
    make: Callable[..., Sidecar],
    root: Path,
    session_id: str,
    user: str,
    role: str,
    editor: str = "vscode",
) -> Sidecar:
    sidecar = make(root, editor)
    await sidecar.start(relayUrl=relay.url, token=relay.token(session_id, user, role))
    await sidecar.wait("collab/sessionState", lambda p: p["state"] == "connected")
    return sidecar


async def test_cursor_appears_at_the_other_sidecar(
    relay: RelayHandle, workspace: Path, sidecars: Callable[..., Sidecar]
) -> None:
    session_id = await relay.create_session()
    alice = await _join(relay, sidecars, workspace, session_id, "alice", "host")
    bob = await _join(relay, sidecars, workspace, session_id, "bob", "editor")
    uri_a = alice.open("src/app.py")
    uri_b = bob.open("src/app.py")
    assert uri_a == uri_b
    alice.cursor(uri_a, 3, 4)
    cursors = await bob.wait(
        "collab/remoteCursors", lambda p: p["uri"] == uri_b and len(p["cursors"]) == 1
    )
    cursor = cursors["cursors"][0]
    assert cursor["name"] == "alice" and cursor["position"] == {"line": 3, "character": 4}
    assert cursor["color"].startswith("#")


async def test_comment_becomes_a_diagnostic_and_hover_shows_the_thread(
    relay: RelayHandle, workspace: Path, sidecars: Callable[..., Sidecar]
) -> None:
    session_id = await relay.create_session()
    alice = await _join(relay, sidecars, workspace, session_id, "alice", "host")
    bob = await _join(relay, sidecars, workspace, session_id, "bob", "editor")
    uri = alice.open("src/app.py")
    bob.open("src/app.py")
    result = await alice.command("addComment", uri=uri, line=3, text="rename this")
    assert result["status"] == "acknowledged"
    found = await bob.wait_diagnostics(uri, lambda d: len(d) == 1)
    diagnostic = found[0]
    assert diagnostic.range.start.line == 3
    assert diagnostic.source == "collab"
    assert diagnostic.message == "alice: rename this"
    assert diagnostic.code == result["id"]


async def test_a_comment_records_the_commit_it_was_made_on(
    relay: RelayHandle, workspace: Path, sidecars: Callable[..., Sidecar]
) -> None:
    def git(*args: str) -> str:
        who = ["-c", "user.name=t", "-c", "user.email=t@t"]
        done = subprocess.run(
            ["git", "-C", str(workspace), *who, *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    first, blob = git("rev-parse", "HEAD"), git("hash-object", "src/app.py")
    session_id = await relay.create_session()
    alice = await _join(relay, sidecars, workspace, session_id, "alice", "host")
    bob = await _join(relay, sidecars, workspace, session_id, "bob", "editor")
    uri = alice.open("src/app.py")

    async def stored(line: int) -> dict[str, Any]:
        result = await alice.command("addComment", uri=uri, line=line, text=f"on {line}")
        threads = await bob.wait(
            "collab/threads", lambda p: any(t["threadId"] == result["id"] for t in p["threads"])
        )
        thread = next(t for t in threads["threads"] if t["threadId"] == result["id"])
        comment: dict[str, Any] = thread["comments"][0]
        return comment

    for line in (3, 4):  # the second one from the cache
        comment = await stored(line)
        assert (comment["commit"], comment["blob"]) == (first, blob)
    git("commit", "-q", "--allow-empty", "-m", "second")  # the workspace moves on
    second = git("rev-parse", "HEAD")
    assert second != first
    comment = await stored(5)
    assert (comment["commit"], comment["blob"]) == (second, blob)
