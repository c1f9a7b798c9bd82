"""One client's WebSocket connection: identity, outbox and sender task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from collab_lsp.protocol.errors import CloseCode
from collab_lsp.relay.metrics import Metrics
from collab_lsp.relay.outbox import Outbox
from collab_lsp.relay.ratelimit import SlidingWindow

if TYPE_CHECKING:
    from collab_lsp.relay.room import Room

__all__ = ["Connection"]

log = logging.getLogger(__name__)


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
        self.outbox = Outbox(durable_limit)
        self.error_budget = SlidingWindow(max_errors_per_minute, 60.0)
        self.opened_at = time.monotonic()
        self.user_id = ""
        self.username = ""
        self.room: Room | None = None
        self.left_on_purpose = False
        self.closing = False
        self._closer: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None

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
        self._closer = asyncio.get_running_loop().create_task(self.websocket.close(code, reason))

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self.outbox.next()
                if item is None:
                    code, reason = self.outbox.closing or (CloseCode.NORMAL, "")
                    await self.websocket.close(code, reason)
                    return
                wire, received_at = item
                await self.websocket.send(wire)
                self.metrics.delivery_latency.observe(time.monotonic() - received_at)
        except ConnectionClosed:
            return
