"""A live session on this relay: its connections, participants and presence.

The room delivers what the store committed (in seq order) and what presence
produced (coalesced), serialising each frame once for all recipients. With several
relays it also knows who is connected elsewhere (``remote``), from the broker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from collab_lsp.protocol.colors import color_index
from collab_lsp.protocol.errors import CloseCode
from collab_lsp.protocol.models import (
    Participant,
    ParticipantKind,
    PresenceState,
    PresenceStatus,
    SessionInfo,
    SessionStatus,
)
from collab_lsp.protocol.permissions import Role
from collab_lsp.protocol.presence import PresenceBook
from collab_lsp.protocol.server_frames import PresenceUpdateEvent
from collab_lsp.relay.broker import RemoteEntry
from collab_lsp.relay.metrics import Metrics
from collab_lsp.relay.ordering import InOrder
from collab_lsp.relay.store.base import CommittedEvent, ParticipantRecord

if TYPE_CHECKING:
    from collab_lsp.relay.connection import Connection

__all__ = ["Room"]

PresencePublisher = Callable[[str, str], None]


@dataclass
class Member:
    record: ParticipantRecord
    connections: set[Connection] = field(default_factory=set)
    leave_timer: asyncio.TimerHandle | None = None
    presence_timer: asyncio.TimerHandle | None = None


class Room:
    def __init__(
        self,
        session: SessionInfo,
        participants: list[ParticipantRecord],
        presence: PresenceBook,
        metrics: Metrics,
        *,
        last_seq: int = 0,
        clock: Callable[[], float] = time.time,
        publish_presence: PresencePublisher | None = None,
    ) -> None:
        self.session = session
        self.presence = presence
        self.metrics = metrics
        self.clock = clock
        self.members: dict[str, Member] = {p.user_id: Member(p) for p in participants}
        self.order = InOrder(last_seq)
        self.filling = False
        # user id -> relay id -> the user's latest presence frame there (None until known)
        self.remote: dict[str, dict[str, str | None]] = {}
        self._publish_presence = publish_presence

    @property
    def last_seq(self) -> int:
        """The highest seq delivered to this room's connections."""
        return self.order.last_seq

    @property
    def session_id(self) -> str:
        return self.session.id

    def online(self) -> list[str]:
        """Users connected to this relay."""
        return [uid for uid, member in self.members.items() if member.connections]

    def is_online(self, user_id: str) -> bool:
        """Connected here or to another relay."""
        member = self.members.get(user_id)
        return bool(member is not None and member.connections) or user_id in self.remote

    def is_empty(self) -> bool:
        return not any(m.connections or m.leave_timer for m in self.members.values())

    def role_of(self, user_id: str) -> Role:
        return self.members[user_id].record.role

    def find_user(self, username: str) -> str | None:
        for user_id, member in self.members.items():
            if not member.record.removed and member.record.username.lower() == username.lower():
                return user_id
        return None

    def is_participant(self, user_id: str) -> bool:
        member = self.members.get(user_id)
        return member is not None and not member.record.removed

    # -- membership ------------------------------------------------------------------

    def needs_announcement(self, user_id: str) -> bool:
        """True unless the user is still here: another connection, or within the grace."""
        member = self.members.get(user_id)
        here = member is not None and (member.connections or member.leave_timer is not None)
        return not here and user_id not in self.remote

    def attach(self, connection: Connection, record: ParticipantRecord) -> None:
        member = self.members.setdefault(record.user_id, Member(record))
        member.record = record
        if member.leave_timer is not None:
            member.leave_timer.cancel()
            member.leave_timer = None
        member.connections.add(connection)
        self.presence.arrive(record.user_id, self.clock())

    def detach(self, connection: Connection) -> bool:
        """Forget a connection; True when it was the user's last one."""
        member = self.members.get(connection.user_id)
        if member is None:
            return False
        member.connections.discard(connection)
        return not member.connections

    def schedule_leave(self, user_id: str, delay: float, callback: Callable[[], None]) -> None:
        member = self.members[user_id]
        if member.leave_timer is not None:
            member.leave_timer.cancel()
        member.leave_timer = asyncio.get_running_loop().call_later(delay, callback)

    def confirm_leave(self, user_id: str) -> bool:
        """Called when the grace ran out: True if the user really is gone."""
        member = self.members.get(user_id)
        if member is None:
            return False
        member.leave_timer = None
        if member.connections:
            return False
        self._drop_presence(member)
        self.presence.depart(user_id)
        return True

    def participants(self) -> list[Participant]:
        result = []
        for user_id, member in self.members.items():
            record = member.record
            if record.removed:
                continue
            presence = self.presence.users.get(user_id)
            result.append(
                Participant(
                    id=user_id,
                    username=record.username,
                    role=record.role,
                    kind=record.kind,
                    color_index=color_index(user_id),
                    joined_at=record.joined_at,
                    online=self.is_online(user_id),
                    status=presence.status if presence else self._remote_status(user_id),
                )
            )
        return result

    def presence_snapshot(self) -> dict[str, PresenceState]:
        """Everyone's presence: users of other relays, then this relay's (which win)."""
        states = {}
        for user_id in self.remote:
            state = self._remote_state(user_id)
            if state is not None:
                states[user_id] = state
        states.update(self.presence.snapshot())
        return states

    # -- durable delivery --------------------------------------------------------------

    def deliver(self, event: CommittedEvent) -> list[Connection]:
        """Queue a committed event to everyone; return connections that fell too far behind.

        The caller hands events over in seq order, once each (see ``self.order``).
        """
        self.metrics.messages_per_session[self.session_id] += 1
        self._apply(event)
        slow = []
        for member in self.members.values():
            for connection in member.connections:
                if not connection.outbox.push_durable(event.seq, event.wire):
                    slow.append(connection)
        return slow

    def _apply(self, event: CommittedEvent) -> None:
        frame = event.frame
        if event.type == "session_update":
            self.session = SessionInfo.model_validate(
                {**self.session.model_dump(), **frame["changes"]}
            )
        elif event.type == "session_ended":
            self.session = self.session.model_copy(update={"status": SessionStatus.ENDED})
        elif event.type == "user_joined":
            self._on_joined(frame)
        elif event.type == "role_changed":
            member = self.members.get(frame["user_id"])
            if member is not None:
                member.record = replace(member.record, role=Role(frame["role"]))
        elif event.type == "user_removed":
            member = self.members.get(frame["user_id"])
            if member is not None:
                member.record = replace(member.record, removed=True)
                self._drop_presence(member)
                self.presence.depart(frame["user_id"])
            self.remote.pop(frame["user_id"], None)

    def _on_joined(self, frame: dict[str, Any]) -> None:
        user = frame["user"]
        member = self.members.get(user["id"])
        if member is not None:
            member.record = replace(member.record, role=Role(user["role"]), removed=False)
            return
        # Someone who joined through another relay.
        record = ParticipantRecord(
            session_id=self.session_id,
            user_id=user["id"],
            username=user["username"],
            kind=ParticipantKind(user.get("kind", "human")),
            role=Role(user["role"]),
            joined_at=frame.get("timestamp", ""),
            is_active=True,
            removed=False,
        )
        self.members[record.user_id] = Member(record)

    def connections_of(self, user_id: str) -> list[Connection]:
        member = self.members.get(user_id)
        return list(member.connections) if member else []

    def close_all(self, code: CloseCode, reason: str) -> None:
        for member in self.members.values():
            for connection in list(member.connections):
                connection.close_after_flush(code, reason)

    # -- presence ------------------------------------------------------------------------

    def schedule_presence(self, user_id: str, due: float) -> None:
        member = self.members.get(user_id)
        if member is None or member.presence_timer is not None:
            return
        delay = max(0.0, due - self.clock())
        loop = asyncio.get_running_loop()
        member.presence_timer = loop.call_later(delay, self.flush_presence, user_id)

    def flush_presence(self, user_id: str) -> None:
        member = self.members.get(user_id)
        if member is None:
            return
        member.presence_timer = None
        state = self.presence.take_due(user_id, self.clock())
        pending = self.presence.pending_at(user_id)
        if pending is not None:
            self.schedule_presence(user_id, pending)
        if state is None:
            return
        wire = PresenceUpdateEvent(
            session_id=self.session_id, user_id=user_id, presence=state
        ).model_dump_json(exclude_none=True)
        if self._publish_presence is not None:
            self._publish_presence(user_id, wire)
        self.fan_out_presence(user_id, wire)

    def fan_out_presence(self, user_id: str, wire: str) -> None:
        """Queue a presence frame to everyone here but the user it is about."""
        key = f"presence:{user_id}"
        for other_id, other in self.members.items():
            if other_id == user_id:
                continue  # ephemeral frames are never echoed to the sender
            for connection in other.connections:
                if connection.outbox.push_ephemeral(key, wire):
                    self.metrics.ephemeral_dropped += 1

    def sweep_presence(self) -> None:
        for user_id in self.presence.sweep(self.clock()):
            self.flush_presence(user_id)

    def _drop_presence(self, member: Member) -> None:
        if member.presence_timer is not None:
            member.presence_timer.cancel()
            member.presence_timer = None

    def presence_wire(self, user_id: str) -> str:
        """The user's presence here as a frame (to register it again with the broker)."""
        state = self.presence.users[user_id].state()
        return PresenceUpdateEvent(
            session_id=self.session_id, user_id=user_id, presence=state
        ).model_dump_json(exclude_none=True)

    # -- users connected to other relays -------------------------------------------------

    def remote_presence(self, relay_id: str, user_id: str, wire: str | None) -> None:
        """Someone on another relay arrived (``wire`` None) or moved."""
        if not self.is_participant(user_id):
            return
        relays = self.remote.setdefault(user_id, {})
        if wire is None:
            relays.setdefault(relay_id, None)
            return
        relays[relay_id] = wire
        self.fan_out_presence(user_id, wire)

    def remote_departure(self, relay_id: str, user_id: str) -> None:
        relays = self.remote.get(user_id)
        if relays is not None:
            relays.pop(relay_id, None)
            if not relays:
                del self.remote[user_id]

    def replace_remote(self, entries: list[RemoteEntry]) -> None:
        """Take the broker's registry as the truth about other relays."""
        remote: dict[str, dict[str, str | None]] = {}
        for entry in entries:
            if self.is_participant(entry.user_id):
                relays = remote.setdefault(entry.user_id, {})
                relays[entry.relay_id] = entry.presence_wire or self.remote.get(
                    entry.user_id, {}
                ).get(entry.relay_id)
        self.remote = remote

    def _remote_state(self, user_id: str) -> PresenceState | None:
        for wire in self.remote.get(user_id, {}).values():
            if wire:
                return PresenceState.model_validate(json.loads(wire)["presence"])
        return None

    def _remote_status(self, user_id: str) -> PresenceStatus:
        if user_id not in self.remote:
            return PresenceStatus.AWAY
        state = self._remote_state(user_id)
        return state.status if state is not None else PresenceStatus.ACTIVE
