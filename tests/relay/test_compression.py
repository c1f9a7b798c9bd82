"""permessage-deflate: off by default (it costs fan-out capacity), on behind a flag."""

from __future__ import annotations

from pathlib import Path

import websockets

from tests.relay.relay_process import in_process_relay


async def _negotiated(url: str) -> list[str]:
    async with websockets.connect(url, compression="deflate") as websocket:
        return [extension.name for extension in websocket.protocol.extensions]


async def test_compression_is_off_by_default_and_on_with_the_flag(tmp_path: Path) -> None:
    for folder in ("off", "on"):
        (tmp_path / folder).mkdir()
    async with in_process_relay(tmp_path / "off") as plain:
        session_id = await plain.create_session()
        token = plain.token(session_id, "alice", "host")
        assert await _negotiated(f"{plain.url}/ws/session/{session_id}?token={token}") == []
    async with in_process_relay(tmp_path / "on", compression=True) as compressed:
        session_id = await compressed.create_session()
        token = compressed.token(session_id, "alice", "host")
        url = f"{compressed.url}/ws/session/{session_id}?token={token}"
        assert await _negotiated(url) == ["permessage-deflate"]
        client = await compressed.join(session_id, "bob", "editor")
        await client.send({"type": "chat_message", "content": "squeezed " * 500})
        assert (await client.expect("chat_message"))["message"]["content"].count("squeezed") == 500
