"""Two or three real sidecars, as different users, through a real relay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
