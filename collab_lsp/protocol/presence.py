"""Presence bookkeeping with no I/O: who is where, and when to tell the others.

The relay feeds it cursor, viewport and status updates with the current time, and
asks it when each user's next broadcast is due. Cursor and viewport changes go out
at most once per ``cursor_interval`` per user (latest wins); status changes at most
once per ``status_interval``. ``sweep`` turns silent users idle, then away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from collab_lsp.protocol import limits
from collab_lsp.protocol.codec import format_timestamp
from collab_lsp.protocol.models import Cursor, PresenceState, PresenceStatus, Viewport

__all__ = ["PresenceBook", "UserPresence"]


@dataclass(slots=True)
class UserPresence:
    status: PresenceStatus = PresenceStatus.ACTIVE
    cursor: Cursor | None = None
    viewport: Viewport | None = None
    following: str | None = None
    last_activity: float = 0.0
    explicit_status: bool = False
    pending_status: PresenceStatus | None = None
    last_status_change: float = float("-inf")
    last_sent: float = float("-inf")
    dirty: bool = False

    def state(self) -> PresenceState:
        return PresenceState(
            status=self.status,
            cursor=self.cursor,
            viewport=self.viewport,
            following=self.following,
            last_activity=format_timestamp(datetime.fromtimestamp(self.last_activity, UTC)),
        )


@dataclass
class PresenceBook:
    cursor_interval: float = limits.CURSOR_INTERVAL_SECONDS
    status_interval: float = limits.PRESENCE_INTERVAL_SECONDS
    idle_after: float = limits.IDLE_AFTER_SECONDS
    away_after: float = limits.AWAY_AFTER_SECONDS
    users: dict[str, UserPresence] = field(default_factory=dict)

    def arrive(self, user_id: str, now: float) -> None:
        self.users.setdefault(user_id, UserPresence(last_activity=now))

    def depart(self, user_id: str) -> None:
        self.users.pop(user_id, None)

    def snapshot(self) -> dict[str, PresenceState]:
        return {user_id: presence.state() for user_id, presence in self.users.items()}

    def move_cursor(self, user_id: str, cursor: Cursor, now: float) -> float:
        """Record a cursor; return the time at which the others should be told."""
        presence = self._touch(user_id, now)
        presence.cursor = cursor
        return self._due(presence)

    def update(
        self,
        user_id: str,
        now: float,
        *,
        status: PresenceStatus | None = None,
        viewport: Viewport | None = None,
        following: str | None = None,
        set_following: bool = False,
    ) -> float:
        presence = self._touch(user_id, now)
        if viewport is not None:
            presence.viewport = viewport
        if set_following:
            presence.following = following
        if status is not None:
            presence.explicit_status = status is not PresenceStatus.ACTIVE
            presence.pending_status = status
            return max(self._due(presence), presence.last_status_change + self.status_interval)
        return self._due(presence)

    def take_due(self, user_id: str, now: float) -> PresenceState | None:
        """The presence to broadcast now, or None if nothing changed since the last one."""
        presence = self.users.get(user_id)
        if presence is None:
            return None
        pending = presence.pending_status
        if pending is not None and now >= presence.last_status_change + self.status_interval:
            if pending is not presence.status:
                presence.status = pending
                presence.last_status_change = now
                presence.dirty = True
            presence.pending_status = None
        if not presence.dirty:
            return None
        presence.dirty = False
        presence.last_sent = now
        return presence.state()

    def pending_at(self, user_id: str) -> float | None:
        """When an already-recorded status change may go out, if one waits."""
        presence = self.users.get(user_id)
        if presence is None or presence.pending_status is None:
            return None
        return presence.last_status_change + self.status_interval

    def sweep(self, now: float) -> list[str]:
        """Turn users silent for long enough idle or away; return those that changed."""
        changed = []
        for user_id, presence in self.users.items():
            if presence.explicit_status:
                continue
            silent = now - presence.last_activity
            target = presence.status
            if silent >= self.away_after:
                target = PresenceStatus.AWAY
            elif silent >= self.idle_after:
                target = PresenceStatus.IDLE
            if target is not presence.status:
                presence.status = target
                presence.last_status_change = now
                presence.dirty = True
                changed.append(user_id)
        return changed

    def _touch(self, user_id: str, now: float) -> UserPresence:
        presence = self.users.setdefault(user_id, UserPresence(last_activity=now))
        presence.last_activity = now
        presence.dirty = True
        if not presence.explicit_status and presence.status is not PresenceStatus.ACTIVE:
            # Activity wakes a user that the sweep had marked idle or away.
            presence.pending_status = PresenceStatus.ACTIVE
        return presence

    def _due(self, presence: UserPresence) -> float:
        return max(presence.last_activity, presence.last_sent + self.cursor_interval)
