"""One connection's chat messages and comments, committed together, not one after another.

The relay reads a connection's frames in order. Were each chat message's commit awaited
before the next frame is read, a sender's messages would take one group commit each: a
burst of ten (an assistant posting its review, a client resending after a reconnect, or
any sender behind a stall) would wait ten commits. Instead such a frame is admitted
(validated, authorised, rate-limited) in order, its write is queued, and the wait for the
commit and the ``ack`` go on in a task while the next frame is read; writes queued in
order commit in order (one writer, one FIFO queue), so seqs keep the order sent, and acks
and errors leave in that order too.

Every other frame, and every refusal, first waits for the frames before it to be answered
(``settled``): a ``get_history`` after a chat message sees it, a ``change_role`` applies
after it, and replies keep the order of the requests.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any

__all__ = ["PIPELINED_TYPES", "FramePipeline"]

# Frames whose only effect is one appended event: nothing later in the connection's stream
# depends on them having been applied before it is admitted.
PIPELINED_TYPES: frozenset[str] = frozenset({"chat_message", "add_comment"})
DEPTH = 32


class FramePipeline:
    """The frames of one connection still waiting for their commit, oldest first."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._depth = depth
        self._waiting: deque[asyncio.Task[None]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    async def start(self, answer: Coroutine[Any, Any, None]) -> None:
        """Run ``answer`` (it must handle its own errors) once fewer than ``depth`` wait."""
        while len(self._waiting) >= self._depth:
            await asyncio.wait((self._waiting[0],))
        task = asyncio.get_running_loop().create_task(answer)
        self._waiting.append(task)
        task.add_done_callback(self._waiting.remove)

    async def settled(self) -> None:
        """Return once every frame started so far has been answered."""
        while self._waiting:
            await asyncio.wait(tuple(self._waiting))
