"""The relay benchmark's reference: a bare ``websockets`` broadcast server.

Rooms keyed by the session id in the path (``/ws/session/{id}?user=NAME``); every text
frame is parsed with ``json.loads``, re-wrapped in the relay's reply shape with one
``json.dumps``, and fanned out with ``websockets.broadcast``. No auth, no validation, no
storage, no coalescing, compression off. It answers:

- ``cursor_update`` -> ``presence_update`` to everyone else in the room (never echoed);
- ``chat_message`` -> ``chat_message`` with a room seq to everyone (sender included),
  then an ``ack`` to the sender (one more ``json.dumps``).

On start it prints one JSON line (``{"port": ..., "pid": ...}``) and serves until SIGTERM.

    .venv/bin/python bench/relay_reference.py [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve

ROOMS: dict[str, set[ServerConnection]] = {}
SEQ: dict[str, int] = {}


async def handle(ws: ServerConnection) -> None:
    assert ws.request is not None
    parts = urlsplit(ws.request.path)
    sid = parts.path.rstrip("/").rsplit("/", 1)[-1]
    user = parse_qs(parts.query).get("user", ["anonymous"])[0]
    room = ROOMS.setdefault(sid, set())
    room.add(ws)
    await ws.send(json.dumps({"type": "connected", "session_id": sid, "you": {"id": user}}))
    try:
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "cursor_update":
                wire = json.dumps(
                    {
                        "type": "presence_update",
                        "session_id": sid,
                        "user_id": user,
                        "presence": {"status": "active", "cursor": frame["data"]},
                    }
                )
                broadcast([c for c in room if c is not ws], wire)
            elif kind == "chat_message":
                seq = SEQ[sid] = SEQ.get(sid, 0) + 1
                mid = f"m{seq}"
                message = {"id": mid, "seq": seq, "user_id": user, "content": frame["content"]}
                wire = json.dumps(
                    {
                        "type": "chat_message",
                        "session_id": sid,
                        "id": mid,
                        "seq": seq,
                        "message": message,
                    }
                )
                broadcast(room, wire)
                ack = {"type": "ack", "ref": frame.get("id"), "id": mid, "seq": seq}
                broadcast([ws], json.dumps(ack))
    except Exception:  # a closed connection ends the loop
        pass
    finally:
        room.discard(ws)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handle, "127.0.0.1", args.port, compression=None, max_queue=64) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
        await stop
    sys.exit(0)


if __name__ == "__main__":
    asyncio.run(main())
