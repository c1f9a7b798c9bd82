"""The admin CLI against the database a running relay serves."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import websockets

from tests.helpers import TIMEOUT, Client
from tests.relay.relay_process import (
    cli_command,
    cli_env,
    read_until_closed,
    relay_process,
)

SWEEP = {"COLLAB_RELAY_PRESENCE_SWEEP_SECONDS": "0.2"}


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `collab-relay ARGS`; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *cli_command(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(**(env or {})),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT * 3)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def create(db: Path, title: str = "Review", host: str = "alice") -> tuple[str, str]:
    code, out, err = await cli(
        "session", "create", "--title", title, "--host", host, "--db", str(db)
    )
    assert code == 0, err
    session = re.search(r"^session: (\S+)$", out, re.M)
    token = re.search(r"^host token: (\S+)$", out, re.M)
    assert session and token, out
    return session.group(1), token.group(1)


async def test_session_create_list_and_token_work_with_a_running_relay(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    session_id, host_token = await create(db, title="Friday review")

    code, out, _ = await cli("session", "list", "--db", str(db))
    assert code == 0
    assert re.search(rf"^{session_id}\tactive\t.*\tFriday review$", out, re.M), out

    code, out, _ = await cli(
        "token", "--session", session_id, "--user", "bob", "--role", "viewer", "--db", str(db)
    )
    assert code == 0
    viewer_token = out.splitlines()[0]

    async with relay_process(db, secret=None) as relay:
        alice = await relay.join(session_id, "alice", token=host_token)
        assert alice.connected is not None
        assert alice.connected["you"]["username"] == "alice"
        assert alice.connected["you"]["role"] == "host"
        bob = await relay.join(session_id, "bob", token=viewer_token)
        assert bob.connected is not None
        assert bob.connected["you"]["role"] == "viewer"
        refused = await bob.request({"type": "chat_message", "content": "viewers only watch"})
        assert refused["error_code"] == "PERMISSION_DENIED"


async def test_session_end_reaches_connected_clients(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    session_id, host_token = await create(db)
    async with relay_process(db, secret=None, env=SWEEP) as relay:
        alice = await relay.join(session_id, "alice", token=host_token)
        code, out, err = await cli("session", "end", session_id, "--db", str(db))
        assert code == 0, err
        assert session_id in out

        frames, close_code = await read_until_closed(alice)
        assert [f["type"] for f in frames if f["type"] == "session_ended"] == ["session_ended"]
        assert close_code == 4010

        url = f"{relay.url}/ws/session/{session_id}?token={host_token}"
        late = Client(await websockets.connect(url))
        frames, close_code = await read_until_closed(late)
        assert [(f["type"], f["error_code"]) for f in frames] == [("error", "SESSION_ENDED")]
        assert close_code == 4010

    code, out, _ = await cli("session", "list", "--db", str(db))
    assert re.search(rf"^{session_id}\tended\t", out, re.M), out


async def test_bad_arguments_exit_2_and_name_the_problem(tmp_path: Path) -> None:
    db = str(tmp_path / "relay.db")
    code, _, err = await cli("session", "end", "s_missing", "--db", db)
    assert code == 2
    assert "no session 's_missing'" in err

    code, _, err = await cli("token", "--session", "s_missing", "--user", "bob", "--db", db)
    assert code == 2
    assert "s_missing" in err

    code, _, err = await cli("session", "create", "--title", "   ", "--host", "alice", "--db", db)
    assert code == 2
    assert "--title" in err and "blank" in err


async def test_an_invalid_setting_exits_2_and_names_the_variable(tmp_path: Path) -> None:
    env = {"COLLAB_RELAY_PORT": "abc"}
    code, out, err = await cli("serve", "--db", str(tmp_path / "relay.db"), env=env)
    assert code == 2
    assert "COLLAB_RELAY_PORT" in err
    assert "listening" not in out
