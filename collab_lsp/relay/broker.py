"""How relays tell each other what happened: the broker interface, and the one-relay default.

A relay publishes every event it commits and every coalesced presence change of its
own users; it receives the others' through ``BrokerListener``. The database stays the
truth for durable events (the broker only makes them arrive sooner; the relay reads
any gap from the store), so a lost broker message delays an event, never loses it.

The broker also keeps the cross-relay state that must not live in one process:
who is connected where (with an expiry, so a dead relay's users do not stay online
forever) and the per-user rate limits.

``LocalBroker`` is the embedded default: one process, nothing to share, no I/O.
``RedisBroker`` (collab_lsp.relay.redis_broker) shares through Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from collab_lsp.relay.ratelimit import SlidingWindow
from collab_lsp.relay.store.base import CommittedEvent

__all__ = [
    "Broker",
    "BrokerListener",
    "BrokerStats",
    "BrokerUnavailable",
    "LocalBroker",
    "PresenceRoll",
    "RemoteEntry",
]


class BrokerUnavailable(Exception):
    """The broker cannot be reached; durable writes are refused until it is back."""


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """A user connected to another relay, with their latest presence frame if any."""

    relay_id: str
    user_id: str
    presence_wire: str | None


@dataclass(slots=True)
class PresenceRoll:
    """Who the broker says is connected to a session, read at one moment."""

    remote: list[RemoteEntry] = field(default_factory=list)
    # Users of relays that stopped renewing their liveness; this relay claimed them,
    # so it and no other decides whether they left.
    orphaned: list[str] = field(default_factory=list)


@dataclass(slots=True)
class BrokerStats:
    """What crossed the broker, for /metrics. The one-relay broker leaves it at zero."""

    published: int = 0  # operations written to the broker (messages, registry changes)
    dropped: int = 0  # operations lost while it was unreachable (the store fills the gaps)
    received: Counter[str] = field(default_factory=Counter)  # other relays' messages, by kind
    failures: int = 0  # times a read, write or liveness renewal failed


class BrokerListener(Protocol):
    def on_remote_event(self, session_id: str, seq: int, wire: str) -> None: ...
    def on_remote_presence(
        self, session_id: str, relay_id: str, user_id: str, wire: str | None
    ) -> None: ...
    def on_remote_departure(self, session_id: str, relay_id: str, user_id: str) -> None: ...
    def on_broker_restored(self) -> None: ...


class Broker(Protocol):
    relay_id: str
    stats: BrokerStats

    @property
    def healthy(self) -> bool: ...

    @property
    def problem(self) -> str | None:
        """Why the broker is unhealthy, for /healthz and clients; None when healthy."""
        ...

    async def start(self, listener: BrokerListener) -> None: ...
    async def stop(self) -> None: ...

    async def watch(self, session_id: str) -> None:
        """Receive the session's messages from now on (returns once subscribed)."""
        ...

    async def unwatch(self, session_id: str, still_wanted: Callable[[], bool]) -> None: ...

    def publish_event(self, event: CommittedEvent) -> None: ...
    def publish_presence(self, session_id: str, user_id: str, wire: str) -> None: ...
    def publish_arrival(self, session_id: str, user_id: str) -> None: ...
    def publish_departure(self, session_id: str, user_id: str) -> None: ...

    async def roll(self, session_id: str) -> PresenceRoll: ...

    async def register(self, session_id: str, users: dict[str, str | None]) -> None:
        """Make this relay's entries for a session exactly ``users`` (after a Redis restart)."""
        ...

    async def take_rate(self, user_id: str, limit: int, window: float, now: float) -> float:
        """Count one durable write; 0 if allowed, else the seconds until it would be."""
        ...


class LocalBroker:
    """One relay: fan-out stays in-process and limits are counted in memory."""

    relay_id = "local"
    healthy = True
    problem = None

    def __init__(self) -> None:
        self._limits: dict[str, SlidingWindow] = {}
        self.stats = BrokerStats()

    async def start(self, listener: BrokerListener) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def watch(self, session_id: str) -> None:
        return None

    async def unwatch(self, session_id: str, still_wanted: Callable[[], bool]) -> None:
        return None

    def publish_event(self, event: CommittedEvent) -> None:
        return None

    def publish_presence(self, session_id: str, user_id: str, wire: str) -> None:
        return None

    def publish_arrival(self, session_id: str, user_id: str) -> None:
        return None

    def publish_departure(self, session_id: str, user_id: str) -> None:
        return None

    async def roll(self, session_id: str) -> PresenceRoll:
        return PresenceRoll()

    async def register(self, session_id: str, users: dict[str, str | None]) -> None:
        return None

    async def take_rate(self, user_id: str, limit: int, window: float, now: float) -> float:
        limiter = self._limits.get(user_id)
        if limiter is None or limiter.limit != limit:
            limiter = self._limits[user_id] = SlidingWindow(limit, window)
        return limiter.check(now)
