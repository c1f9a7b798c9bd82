"""`collab-lsp say|comment|tail|who|update` against a real relay, with their exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

from collab_lsp.protocol.models import ParticipantKind
from tests.helpers import TIMEOUT, RelayHandle

CLI = str(Path(sys.executable).with_name("collab-lsp"))


async def _cli(
    *args: str, relay_url: str, token: str, cwd: Path | None = None
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env.update({"COLLAB_RELAY_URL": relay_url, "COLLAB_TOKEN": token})
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_say_reaches_the_session_with_mentions(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    human = await relay.join(session_id, "alice", "host")
    bot = relay.token(session_id, "ci-bot", "editor", kind=ParticipantKind.AGENT)
    code, out, _ = await _cli("say", "build is red @alice", relay_url=relay.url, token=bot)
    assert code == 0 and out.startswith("sent (seq ")
    chat = await human.expect("chat_message")
    assert chat["message"]["content"] == "build is red @alice"
    assert chat["message"]["mentions"] == ["alice"]


async def test_comment_on_a_failing_line_with_its_code(relay: RelayHandle, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("a = 1\nassert a == 2\n", encoding="utf-8")
    session_id = await relay.create_session()
    human = await relay.join(session_id, "alice", "host")
    bot = relay.token(session_id, "ci-bot", "editor", kind=ParticipantKind.AGENT)
    code, out, _ = await _cli(
        "comment", "src/app.py:2", "test_a fails here", relay_url=relay.url, token=bot, cwd=tmp_path
    )
    assert code == 0 and "commented on src/app.py:2" in out
    comment = (await human.expect("code_comment"))["comment"]
    assert (comment["file"], comment["line"]) == ("src/app.py", 2)
    assert comment["code_snippet"] == "assert a == 2"


async def test_tail_json_update_and_who(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    human = await relay.join(session_id, "alice", "host")
    bot = relay.token(session_id, "ci-bot", "editor", kind=ParticipantKind.AGENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env.update({"COLLAB_RELAY_URL": relay.url, "COLLAB_TOKEN": bot})
    tail = await asyncio.create_subprocess_exec(
        CLI, "tail", "--json", "--count", "2", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert tail.stderr is not None
    ready = await asyncio.wait_for(tail.stderr.readline(), TIMEOUT)  # joined: now it is live
    assert ready.decode().startswith("collab-lsp: following 'Pairing' from seq ")
    await human.request({"type": "chat_message", "content": "one"})
    await human.request({"type": "chat_message", "content": "two"})
    out, _ = await asyncio.wait_for(tail.communicate(), TIMEOUT)
    frames = [json.loads(line) for line in out.decode().splitlines()]
    assert [f["message"]["content"] for f in frames] == ["one", "two"]
    assert tail.returncode == 0

    code, _, _ = await _cli(
        "update", "--token-count", "150000", "--health-score", "75", relay_url=relay.url, token=bot
    )
    assert code == 0
    update = await human.expect("session_update", updated_by="ci-bot")
    assert update["changes"] == {"token_count": 150000, "health_score": 75.0}

    code, out, _ = await _cli("who", "--json", relay_url=relay.url, token=bot)
    people = {p["name"]: p for p in json.loads(out)}
    assert code == 0 and people["alice"]["online"] and people["ci-bot"]["kind"] == "agent"


async def test_exit_codes_scripts_can_rely_on(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    viewer = relay.token(session_id, "watcher", "viewer")
    code, _, err = await _cli("say", "hi", relay_url=relay.url, token=viewer)
    assert code == 1 and "PERMISSION_DENIED" in err
    code, _, err = await _cli("say", "hi", relay_url=relay.url, token="not-a-token")
    assert code == 3 and "INVALID_TOKEN" in err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    code, _, err = await _cli(
        "say", "hi", relay_url=f"ws://127.0.0.1:{closed_port}", token=relay.token(session_id, "x")
    )
    assert code == 4 and "cannot reach the relay" in err
    code, _, err = await _cli("update", relay_url=relay.url, token=relay.token(session_id, "x"))
    assert code == 2 and "nothing to update" in err
    code, _, err = await _cli("comment", "nowhere", "x", relay_url=relay.url, token=viewer)
    assert code == 2 and "FILE:LINE" in err
