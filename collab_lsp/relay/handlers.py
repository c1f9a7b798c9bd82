"""What the relay does with each client frame once a connection has joined."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from collab_lsp.protocol import client_frames as cf
from collab_lsp.protocol import limits
from collab_lsp.protocol.codec import parse_client_frame, utc_now
from collab_lsp.protocol.errors import CloseCode, ErrorCode, ProtocolError
from collab_lsp.protocol.frame_actions import DURABLE_CLIENT_TYPES, FRAME_ACTIONS
from collab_lsp.protocol.models import MessageType
from collab_lsp.protocol.permissions import Role, can
from collab_lsp.protocol.server_frames import (
    Ack,
    Comments,
    ErrorFrame,
    History,
    InviteCreated,
    InviteRevoked,
    Mention,
    Pong,
)
from collab_lsp.relay.broker import BrokerUnavailable
from collab_lsp.relay.pipeline import PIPELINED_TYPES
from collab_lsp.relay.store.base import CommittedEvent, StoreUnavailable

if TYPE_CHECKING:
    from collab_lsp.relay.connection import Connection
    from collab_lsp.relay.room import Room
    from collab_lsp.relay.server import Relay

__all__ = ["FrameHandlers", "error_frame"]

log = logging.getLogger(__name__)

# A name may contain dots and dashes but ends with a word character ("ask @bob.").
_MENTION = re.compile(r"(?<![\w@])@([\w][\w.\-]{0,62}(?<=\w))")
_DENIALS = {
    "send_chat": "send or change chat messages",
    "add_comment": "add, resolve or reopen comments",
    "react": "react to messages",
    "edit_session": "change the session's title, status or counters",
    "invite_users": "invite people",
    "remove_users": "remove participants",
    "change_roles": "change roles",
    "end_session": "end the session",
}

Handler = Callable[["Connection", "Room", Any], Awaitable[None]]


class FrameHandlers:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.store = relay.store
        self._table: dict[str, Handler] = {
            "cursor_update": self._cursor,
            "presence_update": self._presence,
            "chat_message": self._chat,
            "add_comment": self._comment,
            "edit_message": self._edit,
            "delete_message": self._delete,
            "add_reaction": self._react,
            "remove_reaction": self._react,
            "resolve_comment": self._resolve,
            "reopen_comment": self._resolve,
            "session_update": self._session_update,
            "invite": self._invite,
            "revoke_invite": self._revoke_invite,
            "remove_user": self._remove_user,
            "change_role": self._change_role,
            "end_session": self._end_session,
            "get_history": self._history,
            "get_comments": self._comments,
            "ping": self._ping,
            "leave_session": self._leave,
        }

    async def handle(self, connection: Connection, raw: str | bytes) -> None:
        """Handle one frame; any refusal becomes an error frame and the connection stays.

        Chat messages and comments are answered in the connection's pipeline (see
        ``relay/pipeline.py``); every other frame, and every refusal, waits for the frames
        before it to be answered.
        """
        ref: str | None = None
        pipeline = connection.pipeline
        try:
            size = _size_in_bytes(raw, self.relay.config.max_frame_bytes)
            if size > self.relay.config.max_frame_bytes:
                raise ProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"frame is {size} bytes; the limit is {self.relay.config.max_frame_bytes}",
                )
            try:
                frame = parse_client_frame(raw)
            except ProtocolError:
                ref = _salvage_id(raw)
                raise
            ref = frame.id
            self.relay.metrics.frames_received[frame.type] += 1
            pipelined = frame.type in PIPELINED_TYPES
            if not pipelined:
                await pipeline.settled()
            room = connection.room
            assert room is not None
            self._authorize(connection, room, frame)
            await self._check_durable_rate(connection, room, frame)
            work = self._table[frame.type](connection, room, frame)
            if pipelined:
                await pipeline.start(self._answer(connection, work, ref))
                return
            await work
        except Exception as error:
            await pipeline.settled()
            self._refuse(connection, error, ref)

    async def _answer(self, connection: Connection, work: Awaitable[None], ref: str | None) -> None:
        try:
            await work
        except Exception as error:
            self._refuse(connection, error, ref)

    def _refuse(self, connection: Connection, error: Exception, ref: str | None) -> None:
        if isinstance(error, ProtocolError):
            self.send_error(connection, error, ref)
        elif isinstance(error, (StoreUnavailable, BrokerUnavailable)):
            log.warning("durable write refused: %s", error)
            self.send_error(
                connection,
                ProtocolError(
                    ErrorCode.STORE_UNAVAILABLE,
                    "the relay cannot store this right now; nothing was saved, retry later",
                ),
                ref,
            )
        else:
            # A bug must cost one frame, never the connection or anyone else's.
            log.error("frame handler failed", exc_info=error)
            self.send_error(
                connection,
                ProtocolError(ErrorCode.INTERNAL_ERROR, "the relay failed on this frame"),
                ref,
            )

    def send_error(self, connection: Connection, error: ProtocolError, ref: str | None) -> None:
        self.relay.metrics.errors[error.code] += 1
        connection.send_control(error_frame(error, ref))
        if connection.error_budget.check(time.monotonic()) > 0:
            connection.close_after_flush(CloseCode.TOO_MANY_ERRORS, "too many invalid frames")

    def _authorize(self, connection: Connection, room: Room, frame: Any) -> None:
        if frame.type in ("join_session", "create_session"):
            raise ProtocolError(
                ErrorCode.ALREADY_JOINED,
                "this connection has already joined a session; open another to join a second",
            )
        if frame.session_id is not None and frame.session_id != room.session_id:
            raise ProtocolError(
                ErrorCode.SESSION_MISMATCH,
                f"session_id {frame.session_id!r} is not this connection's session "
                f"{room.session_id!r}; leave it out or send the right one",
                field="session_id",
            )
        role = room.role_of(connection.user_id)
        action = FRAME_ACTIONS[frame.type]
        if not can(role, action):
            what = _DENIALS.get(action.value, action.value)
            raise ProtocolError(
                ErrorCode.PERMISSION_DENIED,
                f"{_article(role)} {role.value} cannot {what} in this session",
            )

    async def _check_durable_rate(self, connection: Connection, room: Room, frame: Any) -> None:
        if frame.type not in DURABLE_CLIENT_TYPES:
            return
        problem = self.relay.problem()
        if problem is not None:
            raise ProtocolError(
                ErrorCode.STORE_UNAVAILABLE,
                f"the relay cannot store this right now ({problem}); nothing was saved, "
                "resend it later",
            )
        config = self.relay.config
        wait = await self.relay.broker.take_rate(
            connection.user_id, config.durable_rate_per_minute, 60.0, time.monotonic()
        )
        if wait <= 0:
            return
        # A resend of something already stored costs nothing: it is only re-acknowledged.
        if frame.id is not None and await self.store.find_client_event(
            room.session_id, connection.user_id, frame.id
        ):
            return
        raise ProtocolError(
            ErrorCode.RATE_LIMITED,
            f"rate limit of {self.relay.config.durable_rate_per_minute} messages a "
            f"minute reached; retry in {wait:.1f} s",
            retry_after=round(wait, 3),
        )

    def _acknowledge(self, connection: Connection, ref: str | None, event: CommittedEvent) -> None:
        ack = Ack(ref=ref, id=event.event_id, seq=event.seq, duplicate=event.duplicate)
        connection.send_control(ack.model_dump_json())

    # -- ephemeral -----------------------------------------------------------------------

    async def _cursor(self, connection: Connection, room: Room, frame: cf.CursorUpdate) -> None:
        due = room.presence.move_cursor(connection.user_id, frame.data, room.clock())
        room.schedule_presence(connection.user_id, due)

    async def _presence(self, connection: Connection, room: Room, frame: cf.PresenceUpdate) -> None:
        following = frame.following
        if following is not None and not room.is_participant(following):
            raise ProtocolError(
                ErrorCode.UNKNOWN_USER, f"{following!r} is not in this session", field="following"
            )
        due = room.presence.update(
            connection.user_id,
            room.clock(),
            status=frame.status,
            viewport=frame.viewport,
            following=following,
            set_following="following" in frame.model_fields_set,
        )
        room.schedule_presence(connection.user_id, due)

    # -- chat and comments ------------------------------------------------------------------

    async def _chat(self, connection: Connection, room: Room, frame: cf.ChatMessage) -> None:
        mentions = self._mentions(room, frame.content, frame.mentions)
        event = await self.store.add_message(
            room.session_id,
            connection.user_id,
            frame.id,
            {
                "message_type": MessageType.CHAT,
                "content": frame.content,
                "mentions": mentions,
                "parent_id": frame.parent_id,
            },
        )
        self._acknowledge(connection, frame.id, event)
        if not event.duplicate:
            self._notify_mentions(connection, room, event, event.frame["message"])

    async def _comment(self, connection: Connection, room: Room, frame: cf.AddComment) -> None:
        data = frame.data
        fields = data.model_dump(exclude={"mentions"})
        fields["message_type"] = MessageType.COMMENT
        fields["mentions"] = self._mentions(room, data.content, data.mentions)
        event = await self.store.add_message(room.session_id, connection.user_id, frame.id, fields)
        self._acknowledge(connection, frame.id, event)
        if not event.duplicate:
            self._notify_mentions(connection, room, event, event.frame["comment"])

    def _mentions(self, room: Room, content: str, explicit: list[str]) -> list[str]:
        for index, user_id in enumerate(explicit):
            if not room.is_participant(user_id):
                raise ProtocolError(
                    ErrorCode.UNKNOWN_USER,
                    f"mentions[{index}]: {user_id!r} is not in this session",
                    field=f"mentions.{index}",
                )
        found = list(dict.fromkeys(explicit))
        for name in _MENTION.findall(content):
            mentioned = room.find_user(name)
            if mentioned is not None and mentioned not in found:
                found.append(mentioned)
        return found

    def _notify_mentions(
        self, connection: Connection, room: Room, event: CommittedEvent, message: dict[str, Any]
    ) -> None:
        for user_id in message.get("mentions", []):
            if user_id == connection.user_id:
                continue
            wire = Mention(
                session_id=room.session_id,
                message_id=message["id"],
                seq=event.seq,
                by=connection.user_id,
                by_username=connection.username,
                content=message["content"],
                timestamp=message["timestamp"],
            ).model_dump_json()
            for target in room.connections_of(user_id):
                target.send_control(wire)

    async def _edit(self, connection: Connection, room: Room, frame: cf.EditMessage) -> None:
        event = await self.store.edit_message(
            room.session_id, connection.user_id, frame.id, frame.message_id, frame.content
        )
        self._acknowledge(connection, frame.id, event)

    async def _delete(self, connection: Connection, room: Room, frame: cf.DeleteMessage) -> None:
        event = await self.store.delete_message(
            room.session_id,
            connection.user_id,
            frame.id,
            frame.message_id,
            moderator=room.role_of(connection.user_id) is Role.HOST,
        )
        self._acknowledge(connection, frame.id, event)

    async def _react(
        self, connection: Connection, room: Room, frame: cf.AddReaction | cf.RemoveReaction
    ) -> None:
        event = await self.store.react(
            room.session_id,
            connection.user_id,
            frame.id,
            frame.message_id,
            frame.emoji,
            add=frame.type == "add_reaction",
        )
        self._acknowledge(connection, frame.id, event)

    async def _resolve(
        self, connection: Connection, room: Room, frame: cf.ResolveComment | cf.ReopenComment
    ) -> None:
        event = await self.store.set_resolved(
            room.session_id,
            connection.user_id,
            frame.id,
            frame.comment_id,
            resolved=frame.type == "resolve_comment",
        )
        self._acknowledge(connection, frame.id, event)

    # -- the session and its people ------------------------------------------------------------

    async def _session_update(
        self, connection: Connection, room: Room, frame: cf.SessionUpdate
    ) -> None:
        changes = frame.changes.model_dump(exclude_unset=True)
        event = await self.store.update_session(
            room.session_id, connection.user_id, frame.id, changes
        )
        self._acknowledge(connection, frame.id, event)

    async def _invite(self, connection: Connection, room: Room, frame: cf.Invite) -> None:
        role = Role(frame.role)
        invite = await self.store.create_invite(
            session_id=room.session_id,
            role=role,
            created_by=connection.user_id,
            ttl_seconds=frame.ttl_seconds,
            max_uses=frame.max_uses,
        )
        assert self.relay.auth is not None
        token = self.relay.auth.issue(
            sub=None,
            name=None,
            sid=room.session_id,
            role=role,
            invite_id=invite.id,
            ttl_seconds=frame.ttl_seconds,
        )
        reply = InviteCreated(
            ref=frame.id,
            invite_id=invite.id,
            token=token,
            role=role,
            expires_at=invite.expires_at,
            max_uses=invite.max_uses,
        )
        connection.send_control(reply.model_dump_json())

    async def _revoke_invite(
        self, connection: Connection, room: Room, frame: cf.RevokeInvite
    ) -> None:
        await self.store.revoke_invite(room.session_id, frame.invite_id)
        reply = InviteRevoked(ref=frame.id, invite_id=frame.invite_id)
        connection.send_control(reply.model_dump_json())

    async def _remove_user(self, connection: Connection, room: Room, frame: cf.RemoveUser) -> None:
        if frame.user_id == connection.user_id:
            raise ProtocolError(
                ErrorCode.INVALID_FRAME,
                "you cannot remove yourself; send leave_session instead",
                field="user_id",
            )
        event = await self.store.remove_user(
            room.session_id, connection.user_id, frame.id, frame.user_id
        )
        self._acknowledge(connection, frame.id, event)
        self.relay.events.enforce(room, event)

    async def _change_role(self, connection: Connection, room: Room, frame: cf.ChangeRole) -> None:
        if frame.user_id == connection.user_id:
            raise ProtocolError(
                ErrorCode.INVALID_FRAME,
                "you cannot change your own role; another host can",
                field="user_id",
            )
        event = await self.store.change_role(
            room.session_id, connection.user_id, frame.id, frame.user_id, frame.role
        )
        self._acknowledge(connection, frame.id, event)

    async def _end_session(self, connection: Connection, room: Room, frame: cf.EndSession) -> None:
        event = await self.store.end_session(room.session_id, connection.user_id, frame.id)
        self._acknowledge(connection, frame.id, event)
        self.relay.events.enforce(room, event)

    # -- replies -------------------------------------------------------------------------------

    async def _history(self, connection: Connection, room: Room, frame: cf.GetHistory) -> None:
        messages, has_more = await self.store.messages_before(
            room.session_id, frame.before_seq, frame.limit
        )
        reply = History(ref=frame.id, messages=messages, has_more=has_more)
        connection.send_control(reply.model_dump_json(exclude_none=True))

    async def _comments(self, connection: Connection, room: Room, frame: cf.GetComments) -> None:
        comments, has_more = await self.store.comments_after(
            room.session_id, frame.after_seq or 0, frame.limit, frame.file
        )
        reply = Comments(ref=frame.id, comments=comments, has_more=has_more)
        connection.send_control(reply.model_dump_json(exclude_none=True))

    async def _ping(self, connection: Connection, room: Room, frame: cf.Ping) -> None:
        connection.send_control(Pong(ref=frame.id, timestamp=utc_now()).model_dump_json())

    async def _leave(self, connection: Connection, room: Room, frame: cf.LeaveSession) -> None:
        connection.left_on_purpose = True
        connection.close_after_flush(CloseCode.NORMAL, "left the session")


def _article(role: Role) -> str:
    return "an" if role is Role.EDITOR else "a"


def _size_in_bytes(raw: str | bytes, limit: int) -> int:
    """UTF-8 size; encoding only when the character count alone cannot decide."""
    if isinstance(raw, bytes) or len(raw) * 4 <= limit:
        return len(raw)
    return len(raw.encode("utf-8"))


def _salvage_id(raw: str | bytes) -> str | None:
    """The ``id`` of a frame that failed validation, so its error can name it."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, dict):
        candidate = value.get("id")
        if isinstance(candidate, str) and 0 < len(candidate) <= limits.MAX_CLIENT_ID_CHARS:
            return candidate
    return None


def error_frame(error: ProtocolError, ref: str | None) -> str:
    return ErrorFrame(
        error_code=error.code,
        message=error.message,
        field=error.field,
        ref=ref,
        retry_after=error.retry_after,
        timestamp=utc_now(),
    ).model_dump_json(exclude_none=True)
