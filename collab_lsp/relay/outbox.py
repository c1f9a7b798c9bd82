"""Per-connection outbound queue that a slow client cannot turn into a global stall.

Durable frames queue in seq order and are never dropped: past ``durable_limit``
the connection is closed as a slow consumer and the client resumes from its last
seq. Ephemeral frames are keyed (one per user and kind), so a newer cursor simply
replaces an unsent older one.

The queue is the slow path. While it is empty, the connection is open and its
socket has room, a frame goes straight to the ``sink`` (the connection writes it
without waking any task); the first frame the sink refuses starts a backlog here,
and every later frame queues behind it until the connection's sender task, which
``websockets`` applies backpressure to, has drained it. So order is kept, and a
backlog (where coalescing and the durable bound apply) exists only for a client
that does not keep up.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["Outbox", "Sink"]

# Takes (wire, received_at); True when the frame was sent, False to queue it instead.
Sink = Callable[[str, float], bool]


class Outbox:
    def __init__(self, durable_limit: int, sink: Sink | None = None) -> None:
        self._durable: deque[tuple[int, str, float]] = deque()
        self._ephemeral: dict[str, tuple[str, float]] = {}
        self._held: list[tuple[int, str, float]] = []
        self._ready = asyncio.Event()
        self._durable_limit = durable_limit
        self._sink = sink
        self.last_seq = -1
        self.paused = True
        self.closing: tuple[int, str] | None = None

    def _sent_directly(self, wire: str, received_at: float) -> bool:
        """Hand the frame to the sink when nothing is queued ahead of it."""
        return (
            self._sink is not None
            and not self._durable
            and not self._ephemeral
            and self.closing is None
            and self._sink(wire, received_at)
        )

    def push_durable(self, seq: int, wire: str, received_at: float | None = None) -> bool:
        """Queue a durable frame; False when the backlog is over its bound."""
        if self.paused:
            self._held.append((seq, wire, received_at or time.monotonic()))
            return True
        if seq <= self.last_seq:
            return True
        if self._sent_directly(wire, received_at or time.monotonic()):
            self.last_seq = seq
            return True
        if len(self._durable) >= self._durable_limit:
            self._ready.set()
            return False
        self._durable.append((seq, wire, received_at or time.monotonic()))
        self.last_seq = seq
        self._wake()
        return True

    def push_ephemeral(self, key: str, wire: str, received_at: float | None = None) -> bool:
        """Queue a presence frame; True when it replaced an unsent older one."""
        at = received_at or time.monotonic()
        if not self.paused and self._sent_directly(wire, at):
            return False
        replaced = self._ephemeral.pop(key, None) is not None
        self._ephemeral[key] = (wire, at)
        self._wake()
        return replaced

    def push_control(self, wire: str) -> None:
        """A reply to this client (ack, error, history...): sent in order with durable frames."""
        now = time.monotonic()
        if not self.paused and self._sent_directly(wire, now):
            return
        self._durable.append((-1, wire, now))
        self._wake()

    def release(self, first: list[str], replay: list[tuple[int, str]], base_seq: int) -> bool:
        """Start sending: ``first`` (the ``connected`` frame), then the replayed events,
        then live events that arrived meanwhile -- each seq once, in order.

        Live events committed while the join read the store were held back; those
        the snapshot or replay already covers are dropped here, so a joining client
        sees no gap and no duplicate. False when the backlog is already too long.
        """
        self.paused = False
        self.last_seq = base_seq
        for wire in first:
            self.push_control(wire)
        now = time.monotonic()
        for seq, wire in replay:  # bounded by the resume cap, not the live backlog limit
            if seq > self.last_seq:
                self._durable.append((seq, wire, now))
                self.last_seq = seq
        held, self._held = self._held, []
        accepted = all(self.push_durable(*item) for item in held)
        self._wake()
        return accepted

    def _wake(self) -> None:
        if not self.paused:
            self._ready.set()

    def close_after_flush(self, code: int, reason: str) -> None:
        """Send what is queued durably, then close; pending presence is dropped."""
        if self.closing is None:
            self.closing = (code, reason)
        self.paused = False
        self._ready.set()

    async def next(self) -> tuple[str, float] | None:
        """Wait for the next frame: durable and replies first, then the latest presence.

        None means: the queue is flushed and the connection should close now.
        """
        while True:
            if self.closing is not None and not self._durable:
                return None
            if not self.paused:
                if self._durable:
                    _, wire, received_at = self._durable.popleft()
                    return wire, received_at
                if self._ephemeral:
                    key = next(iter(self._ephemeral))
                    return self._ephemeral.pop(key)
            self._ready.clear()
            await self._ready.wait()

    def __len__(self) -> int:
        return len(self._durable) + len(self._ephemeral)
