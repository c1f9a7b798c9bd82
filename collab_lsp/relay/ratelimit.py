"""Sliding-window rate limits (the seed's 100 durable messages a minute per user)."""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """At most ``limit`` events per ``window`` seconds; ``check`` says how long to wait."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def check(self, now: float) -> float:
        """Record an event at ``now`` and return 0, or return the seconds until allowed."""
        while self._events and now - self._events[0] >= self.window:
            self._events.popleft()
        if len(self._events) >= self.limit:
            return self._events[0] + self.window - now
        self._events.append(now)
        return 0.0
