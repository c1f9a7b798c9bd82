"""How committed events reach this relay's rooms: in seq order, whoever wrote them.

Three sources feed a room: this relay's own commits (the store's listener), the other
relays' (the broker, ``BrokerListener``), and the store itself, read when the first two
missed something (a gap in the seqs, a broker outage, a write by another process such as
``collab-relay session end``). Each room's ``order`` turns them into one gap-free stream.
The flow also disconnects whom a removal or the end of a session concerns, and, with
several relays, keeps each room's view of who is connected elsewhere current.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from collab_lsp.protocol.errors import CloseCode
from collab_lsp.relay.broker import BrokerUnavailable
from collab_lsp.relay.room import Room
from collab_lsp.relay.store.base import CommittedEvent, StoreUnavailable

if TYPE_CHECKING:
    from collab_lsp.relay.server import Relay

__all__ = ["EventFlow"]

log = logging.getLogger("collab_lsp.relay")


class EventFlow:
    """The relay's ``BrokerListener`` and the store's commit listener."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def on_commit(self, event: CommittedEvent) -> None:
        """This relay committed an event: tell the other relays, deliver it here."""
        if not event.duplicate:
            self.relay.broker.publish_event(event)
        room = self.relay.rooms.get(event.session_id)
        if room is not None:
            # The handler that wrote it enforces it, after its ack (see ``enforce``).
            self.accept(room, event, enforced_by_caller=event)

    def accept(
        self, room: Room, event: CommittedEvent, enforced_by_caller: CommittedEvent | None = None
    ) -> None:
        """Deliver in seq order whatever ``event`` makes deliverable; fill gaps from the store."""
        for ready in room.order.offer(event):
            self.deliver(room, ready)
            if ready is not enforced_by_caller:
                self.enforce(room, ready)
        if room.order.waiting and not room.filling:
            room.filling = True
            self.relay.spawn(self._fill_gap(room))

    def deliver(self, room: Room, event: CommittedEvent) -> None:
        for slow in room.deliver(event):
            if not slow.closing:
                self.relay.metrics.slow_consumers_closed += 1
                slow.close_now(CloseCode.SLOW_CONSUMER, "too far behind: resume from your last seq")

    async def _fill_gap(self, room: Room) -> None:
        try:
            await self._catch_up(room)
        except StoreUnavailable as error:
            log.warning("cannot read missed events from the store: %s", error)
        finally:
            room.filling = False

    # -- what the other relays say (BrokerListener) -----------------------------------------

    def on_remote_event(self, session_id: str, seq: int, wire: str) -> None:
        room = self.relay.rooms.get(session_id)
        if room is not None and seq > room.last_seq:
            self.accept(room, _event_from_wire(session_id, seq, wire))

    def on_remote_presence(
        self, session_id: str, relay_id: str, user_id: str, wire: str | None
    ) -> None:
        room = self.relay.rooms.get(session_id)
        if room is not None:
            room.remote_presence(relay_id, user_id, wire)

    def on_remote_departure(self, session_id: str, relay_id: str, user_id: str) -> None:
        room = self.relay.rooms.get(session_id)
        if room is not None:
            room.remote_departure(relay_id, user_id)

    def on_broker_restored(self) -> None:
        """Redis is back (perhaps empty): register our users again, read what we missed."""
        for room in list(self.relay.rooms.values()):
            self.relay.spawn(self._reregister(room))

    async def _reregister(self, room: Room) -> None:
        users: dict[str, str | None] = {
            user_id: room.presence_wire(user_id) if user_id in room.presence.users else None
            for user_id in room.online()
        }
        try:
            await self.relay.broker.register(room.session_id, users)
            await self._catch_up(room)
        except (BrokerUnavailable, StoreUnavailable) as error:
            log.warning("could not re-register session %s: %s", room.session_id, error)

    async def catch_up_all(self) -> None:
        for room in list(self.relay.rooms.values()):
            try:
                await self._catch_up(room)
            except StoreUnavailable as error:
                log.warning("cannot read the store: %s", error)
                return

    def enforce(self, room: Room, event: CommittedEvent) -> None:
        """Disconnect whom a removal or the end of the session concerns.

        Called after the requester's ack is queued, so the host sees its ack
        before its own connection closes when it ends the session.
        """
        if event.duplicate:
            return
        if event.type == "user_removed":
            for connection in room.connections_of(event.frame["user_id"]):
                connection.close_after_flush(CloseCode.REMOVED, "you were removed from the session")
        elif event.type == "session_ended":
            room.close_all(CloseCode.SESSION_ENDED, "the session has ended")

    async def sweep_presence(self) -> None:
        while True:
            await asyncio.sleep(self.relay.config.presence_sweep_seconds)
            for room in list(self.relay.rooms.values()):
                room.sweep_presence()
                try:
                    await self._catch_up(room)
                    await self._reconcile(room)
                except (StoreUnavailable, BrokerUnavailable) as error:
                    log.warning("sweep of session %s failed: %s", room.session_id, error)

    async def _catch_up(self, room: Room) -> None:
        """Deliver what the store has and this room has not seen.

        Events written by another process (`collab-relay session end`), by other
        relays while the broker was away, or lost between them.
        """
        while await self.relay.store.last_seq(room.session_id) > room.last_seq:
            rows = await self.relay.store.events_after(room.session_id, room.last_seq, 1000)
            if not rows:
                return
            for seq, wire in rows:
                if seq > room.last_seq + 1:
                    log.warning(
                        "session %s has no events %d..%d",
                        room.session_id,
                        room.last_seq + 1,
                        seq - 1,
                    )
                    for ready in room.order.skip_to(seq - 1):
                        self.deliver(room, ready)
                        self.enforce(room, ready)
                self.accept(room, _event_from_wire(room.session_id, seq, wire))

    async def _reconcile(self, room: Room) -> None:
        """Take the broker's word on who is connected elsewhere; mark the orphans as left."""
        roll = await self.relay.broker.roll(room.session_id)
        room.replace_remote(roll.remote)
        for user_id in roll.orphaned:
            if room.is_participant(user_id) and not room.is_online(user_id):
                log.info("%s was on a relay that stopped; marking them as left", user_id)
                await self.relay.record_leave(room, user_id, "timeout")


def _event_from_wire(session_id: str, seq: int, wire: str) -> CommittedEvent:
    frame = json.loads(wire)
    return CommittedEvent(session_id, frame["id"], seq, frame["type"], frame, wire)
