"""A joined session kept up to date: a RelayClient feeding a SessionView.

For programs that are not editors (the CLI, the MCP server, bots): they read the
mirror and get told what changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from collab_lsp.client.client import ClientState, RelayClient, RelayError
from collab_lsp.client.session_view import Changes, SessionView
from collab_lsp.protocol.models import Message

__all__ = ["SessionMirror"]

Listener = Callable[[dict[str, Any], Changes], None]


class SessionMirror:
    def __init__(
        self,
        relay_url: str,
        token: str,
        *,
        session_id: str | None = None,
        name: str | None = None,
        record: bool = False,
    ) -> None:
        self.view = SessionView()
        self.listeners: list[Listener] = []
        # With ``record``, every frame from the join on waits here, so a reader that
        # starts after ``start()`` misses nothing.
        self.events: asyncio.Queue[dict[str, Any]] | None = asyncio.Queue() if record else None
        # Programs report a relay that cannot store rather than wait for it to recover.
        self.client = RelayClient(
            relay_url,
            token,
            session_id=session_id,
            name=name,
            on_frame=self._on_frame,
            park_unstored=False,
        )

    async def start(self) -> None:
        """Join and load every comment thread; raise RelayError if the relay refuses or is down."""
        await self.client.start()
        if self.client.state is not ClientState.CONNECTED:
            raise RelayError("UNREACHABLE", f"cannot reach the relay at {self.client.relay_url}")
        comments = await self.client.fetch_all_comments()
        self.view.add_history([Message.model_validate(comment) for comment in comments])

    async def close(self) -> None:
        await self.client.close(leave=True)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        try:
            changes = self.view.apply(frame)
        except ValueError:
            return
        if self.events is not None and frame.get("type") != "connected":
            self.events.put_nowait(frame)
        for listener in list(self.listeners):
            listener(frame, changes)
