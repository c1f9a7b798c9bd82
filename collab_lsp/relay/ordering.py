"""Committed events handed on in ``seq`` order, whatever order they arrive in.

With several relays, events reach a room from three places: this relay's own commits,
the broker (other relays' commits) and reads of the store. They can arrive out of
order or twice. ``InOrder`` releases each seq exactly once, in order, and holds back
anything that arrives after a gap until the gap is filled (the relay reads the gap
from the store, which has every committed event).
"""

from __future__ import annotations

from collab_lsp.relay.store.base import CommittedEvent

__all__ = ["InOrder"]


class InOrder:
    def __init__(self, last_seq: int = 0) -> None:
        self.last_seq = last_seq
        self._held: dict[int, CommittedEvent] = {}

    @property
    def waiting(self) -> bool:
        """True while events wait for an earlier seq that has not arrived."""
        return bool(self._held)

    def offer(self, event: CommittedEvent) -> list[CommittedEvent]:
        """Take one event; return those now deliverable, in seq order (often just it)."""
        if event.seq <= self.last_seq or event.seq in self._held:
            return []
        if event.seq != self.last_seq + 1:
            self._held[event.seq] = event
            return []
        ready = [event]
        self.last_seq = event.seq
        while (following := self._held.pop(self.last_seq + 1, None)) is not None:
            ready.append(following)
            self.last_seq = following.seq
        return ready

    def skip_to(self, seq: int) -> list[CommittedEvent]:
        """Treat everything up to ``seq`` as delivered; the store has nothing there.

        Only the store can say so: a hole in what it returns is permanent.
        """
        if seq <= self.last_seq:
            return []
        for stale in [held for held in self._held if held <= seq]:
            del self._held[stale]
        self.last_seq = seq
        ready = []
        while (following := self._held.pop(self.last_seq + 1, None)) is not None:
            ready.append(following)
            self.last_seq = following.seq
        return ready
