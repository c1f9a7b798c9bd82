"""One client's WebSocket connection: identity, outbox, and how frames reach the socket.

Frames take one of two paths. The fast one: while the outbox has no backlog, the
connection is open and its socket buffer has room, a frame is appended to this
connection's pending bytes, and once per event-loop iteration the pending bytes of
every connection are written with one ``transport.write`` each. No task is woken,
and the frames that one iteration produced for a client (say all the events of a
group commit, and the sender's ack) leave in one write. The WebSocket frame is built
once per message (``text_frame``) and the same bytes go to every recipient.

The slow path is the outbox and its sender task: ``websockets.send`` with its flow
control, for a client whose socket is full (and for connections that negotiated
compression, whose frames differ per connection). The sender writes pending bytes
first, so the two paths never reorder frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from collab_lsp.protocol.errors import CloseCode
from collab_lsp.relay.metrics import Metrics
from collab_lsp.relay.outbox import Outbox
from collab_lsp.relay.pipeline import FramePipeline
from collab_lsp.relay.ratelimit import SlidingWindow

if TYPE_CHECKING:
    from collab_lsp.relay.room import Room

__all__ = ["Connection", "text_frame"]

log = logging.getLogger(__name__)

# Direct writes stop while a socket has this much unsent (the relay's write_limit):
# from there frames queue in the outbox, and the sender waits for the socket to drain.
DIRECT_WRITE_LIMIT = 64 * 1024

_last_frame: tuple[str | None, bytes] = (None, b"")


def text_frame(wire: str) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2) for ``wire``.

    A fan-out hands the same ``wire`` object to every recipient in turn, so the last
    frame built is kept (by identity) and the message is encoded once, not once each.
    """
    global _last_frame
    last = _last_frame
    if last[0] is wire:
        return last[1]
    payload = wire.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    frame = header + payload
    _last_frame = (wire, frame)
    return frame


class _Writer:
    """Per event loop: the connections with pending bytes, written out in one callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Connection] = []

    def mark(self, connection: Connection) -> None:
        if not self._dirty:
            self._loop.call_soon(self._flush)
        self._dirty.append(connection)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer] = (
    weakref.WeakKeyDictionary()
)


def _writer_for(loop: asyncio.AbstractEventLoop) -> _Writer:
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer(loop)
    return writer


class Connection:
    def __init__(
        self,
        websocket: ServerConnection,
        metrics: Metrics,
        *,
        durable_limit: int,
        max_errors_per_minute: int,
    ) -> None:
        self.websocket = websocket
        self.metrics = metrics
        self.outbox = Outbox(durable_limit, sink=self._write_soon)
        self.pipeline = FramePipeline()
        self.error_budget = SlidingWindow(max_errors_per_minute, 60.0)
        self.opened_at = time.monotonic()
        self.user_id = ""
        self.username = ""
        self.room: Room | None = None
        self.left_on_purpose = False
        self.closing = False
        self._closer: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._room = 0
        self._observe = metrics.delivery_latency.observe
        self._writer = _writer_for(asyncio.get_running_loop())
        # Frames are built once for all recipients only without extensions (compression).
        self._plain = not websocket.protocol.extensions

    def start_sender(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def stop_sender(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self._sender

    def send_control(self, wire: str) -> None:
        self.outbox.push_control(wire)

    def close_after_flush(self, code: CloseCode, reason: str) -> None:
        self.outbox.close_after_flush(code, reason)

    def close_now(self, code: CloseCode, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.flush()
        self._closer = asyncio.get_running_loop().create_task(self.websocket.close(code, reason))

    # -- the fast path -----------------------------------------------------------------

    def _write_soon(self, wire: str, received_at: float) -> bool:
        """The outbox's sink: add the frame to this iteration's write, if the socket has room.

        The connection's state and socket buffer are checked with the first frame of an
        iteration; the frames after it only have to fit in the room left then.
        """
        last = _last_frame
        frame = last[1] if last[0] is wire else text_frame(wire)
        size = self._pending_bytes + len(frame)
        if not self._pending:
            if not self._plain or self.closing:
                return False
            websocket = self.websocket
            transport = websocket.transport
            if websocket.protocol.state is not State.OPEN or transport.is_closing():
                return False
            self._room = DIRECT_WRITE_LIMIT - transport.get_write_buffer_size()
            if size > self._room:
                return False
            self._writer.mark(self)
        elif size > self._room:
            return False
        self._pending.append(frame)
        self._pending_bytes = size
        self._observe(time.monotonic() - received_at)
        return True

    def flush(self) -> None:
        """Write the pending frames now (one write); dropped if the connection is closing."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_bytes = 0
        transport = self.websocket.transport
        if self.websocket.protocol.state is State.OPEN and not transport.is_closing():
            transport.write(data)

    # -- the slow path -----------------------------------------------------------------

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self.outbox.next()
                self.flush()  # what went the fast way before this frame was queued
                if item is None:
                    code, reason = self.outbox.closing or (CloseCode.NORMAL, "")
                    await self.websocket.close(code, reason)
                    return
                wire, received_at = item
                await self.websocket.send(wire)
                self.metrics.delivery_latency.observe(time.monotonic() - received_at)
        except ConnectionClosed:
            return
