"""The sidecar's mirror of a session, built from relay frames. No I/O.

``apply`` takes one relay frame and returns what changed, so the server knows
which diagnostics, cursors and notifications to refresh and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collab_lsp.protocol import server_frames as sf
from collab_lsp.protocol.codec import parse_server_frame
from collab_lsp.protocol.models import (
    Message,
    MessageType,
    ParticipantKind,
    PresenceState,
    PresenceStatus,
    SessionInfo,
    SessionStatus,
)
from collab_lsp.protocol.permissions import Role

__all__ = ["Changes", "ParticipantView", "SessionView", "Thread"]


@dataclass
class ParticipantView:
    user_id: str
    username: str
    role: Role
    kind: ParticipantKind
    color_index: int
    online: bool
    presence: PresenceState | None = None

    @property
    def status(self) -> PresenceStatus:
        if not self.online:
            return PresenceStatus.AWAY
        return self.presence.status if self.presence else PresenceStatus.ACTIVE


def _as_listed(participant: ParticipantView) -> tuple[object, ...]:
    """What a participants list shows of someone's presence (see render.participants_payload)."""
    presence = participant.presence
    if presence is None:
        return (participant.status,)
    cursor, viewport = presence.cursor, presence.viewport
    where = (
        (cursor.file, cursor.line)
        if cursor
        else ((viewport.file, viewport.start_line) if viewport else None)
    )
    return (participant.status, where, presence.following)


@dataclass
class Thread:
    root: Message
    replies: list[Message] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.root.id

    @property
    def file(self) -> str:
        return self.root.file or ""

    @property
    def open(self) -> bool:
        return not self.root.resolved and not self.root.deleted

    def live_replies(self) -> list[Message]:
        return [reply for reply in self.replies if not reply.deleted]


@dataclass
class Changes:
    """What one frame changed; empty when the frame was only informative."""

    files: set[str] = field(default_factory=set)
    cursor_files: set[str] = field(default_factory=set)
    participants: bool = False
    session: bool = False
    chat: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    moved: set[str] = field(default_factory=set)
    mention: dict[str, Any] | None = None
    reset: bool = False


@dataclass
class SessionView:
    session: SessionInfo | None = None
    you: sf.You | None = None
    participants: dict[str, ParticipantView] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    chat_order: list[str] = field(default_factory=list)
    threads: dict[str, Thread] = field(default_factory=dict)
    # Replies whose root has not arrived yet (it is older than the history we have).
    orphans: dict[str, dict[str, Message]] = field(default_factory=dict)
    # Why the relay refuses durable actions right now (service_status); None when it takes them.
    unavailable: str | None = None

    @property
    def my_id(self) -> str | None:
        return self.you.id if self.you else None

    @property
    def role(self) -> Role | None:
        if self.you is None:
            return None
        me = self.participants.get(self.you.id)
        return me.role if me else self.you.role

    def name_of(self, user_id: str) -> str:
        participant = self.participants.get(user_id)
        return participant.username if participant else user_id

    def threads_in(self, file: str) -> list[Thread]:
        return [thread for thread in self.threads.values() if thread.file == file]

    def find_user(self, name_or_id: str) -> ParticipantView | None:
        if name_or_id in self.participants:
            return self.participants[name_or_id]
        lowered = name_or_id.lower()
        for participant in self.participants.values():
            if participant.username.lower() == lowered:
                return participant
        return None

    # -- applying frames -------------------------------------------------------------------

    def apply(self, raw: dict[str, Any]) -> Changes:
        frame = parse_server_frame(raw)
        handler = getattr(self, f"_on_{frame.type}", None)
        return handler(frame) if handler is not None else Changes()

    def _on_connected(self, frame: sf.Connected) -> Changes:
        changes = Changes(participants=True, session=True)
        previous_files = {thread.file for thread in self.threads.values()}
        previous_cursors = self._cursor_files()
        self.session = frame.session
        self.you = frame.you
        self.unavailable = None  # a degraded relay says so right after this frame
        self.participants = {
            p.id: ParticipantView(
                p.id, p.username, p.role, p.kind, p.color_index, p.online, frame.presence.get(p.id)
            )
            for p in frame.participants
        }
        if not frame.resumed:
            # A fresh snapshot replaces what we had (a reset, or a first join).
            self.messages.clear()
            self.chat_order.clear()
            self.threads.clear()
            self.orphans.clear()
            changes.reset = True
            for message in frame.messages:
                self._store(message)
            changes.chat.append(("history", {"messages": self.chat_messages()}))
        changes.files = previous_files | {thread.file for thread in self.threads.values()}
        changes.cursor_files = previous_cursors | self._cursor_files()
        return changes

    def add_history(self, messages: list[Message]) -> Changes:
        """Older messages fetched with get_history (lazy loading upward)."""
        changes = Changes()
        for message in messages:
            if message.id not in self.messages:
                self._store(message)
                if message.message_type is MessageType.COMMENT:
                    changes.files.add(message.file or "")
        self.chat_order.sort(key=lambda mid: self.messages[mid].seq)
        return changes

    def _store(self, message: Message) -> None:
        self.messages[message.id] = message
        if message.message_type is MessageType.CHAT:
            if message.id not in self.chat_order:
                self.chat_order.append(message.id)
            return
        if message.parent_id is None:
            existing = self.threads.get(message.id)
            replies = existing.replies if existing else []
            adopted = self.orphans.pop(message.id, {})
            if adopted:
                replies = sorted([*replies, *adopted.values()], key=lambda reply: reply.seq)
            self.threads[message.id] = Thread(message, replies)
            return
        thread = self.threads.get(message.parent_id)
        if thread is None:
            # The root is older than our history: keep the reply until it arrives.
            self.orphans.setdefault(message.parent_id, {})[message.id] = message
            return
        thread.replies = [r for r in thread.replies if r.id != message.id] + [message]
        thread.replies.sort(key=lambda reply: reply.seq)

    def chat_messages(self) -> list[dict[str, Any]]:
        return [self.messages[mid].model_dump(mode="json") for mid in self.chat_order]

    def _on_user_joined(self, frame: sf.UserJoinedEvent) -> Changes:
        user = frame.user
        existing = self.participants.get(user.id)
        self.participants[user.id] = ParticipantView(
            user.id,
            user.username,
            user.role,
            user.kind,
            user.color_index,
            True,
            existing.presence if existing else None,
        )
        return Changes(participants=True, session=True)

    def _on_user_left(self, frame: sf.UserLeftEvent) -> Changes:
        participant = self.participants.get(frame.user_id)
        changes = Changes(participants=True, session=True)
        if participant is not None:
            changes.cursor_files = self._files_of(participant)
            participant.online = False
            participant.presence = None
        return changes

    def _on_user_removed(self, frame: sf.UserRemovedEvent) -> Changes:
        participant = self.participants.pop(frame.user_id, None)
        changes = Changes(participants=True, session=True)
        if participant is not None:
            changes.cursor_files = self._files_of(participant)
        return changes

    def _on_role_changed(self, frame: sf.RoleChangedEvent) -> Changes:
        participant = self.participants.get(frame.user_id)
        if participant is not None:
            participant.role = frame.role
        return Changes(participants=True, session=frame.user_id == self.my_id)

    def _on_session_update(self, frame: sf.SessionUpdateEvent) -> Changes:
        if self.session is not None:
            self.session = SessionInfo.model_validate(
                {**self.session.model_dump(), **frame.changes}
            )
        return Changes(session=True)

    def _on_session_ended(self, frame: sf.SessionEndedEvent) -> Changes:
        if self.session is not None:
            self.session = self.session.model_copy(update={"status": SessionStatus.ENDED})
        return Changes(session=True)

    def _on_presence_update(self, frame: sf.PresenceUpdateEvent) -> Changes:
        participant = self.participants.get(frame.user_id)
        if participant is None:
            return Changes()
        before = self._files_of(participant)
        listed = _as_listed(participant)
        participant.presence = frame.presence
        participant.online = True
        return Changes(
            # Most presence updates only move a cursor along its line: the participants
            # list (status, file, line, following) then stays as it was.
            participants=_as_listed(participant) != listed,
            cursor_files=before | self._files_of(participant),
            moved={frame.user_id},
        )

    def _on_chat_message(self, frame: sf.ChatMessageEvent) -> Changes:
        self._store(frame.message)
        return Changes(chat=[("new", frame.message.model_dump(mode="json"))])

    def _on_code_comment(self, frame: sf.CodeCommentEvent) -> Changes:
        self._store(frame.comment)
        return Changes(files={frame.comment.file or ""})

    def _on_message_updated(self, frame: sf.MessageUpdatedEvent) -> Changes:
        self._store(frame.message)
        return self._message_changed(frame.message, "edited")

    def _on_message_deleted(self, frame: sf.MessageDeletedEvent) -> Changes:
        message = self.messages.get(frame.message_id)
        if message is None:
            return Changes()
        updated = message.model_copy(update={"deleted": True, "content": "", "reactions": {}})
        self._store(updated)
        return self._message_changed(updated, "deleted")

    def _on_reaction_updated(self, frame: sf.ReactionUpdatedEvent) -> Changes:
        message = self.messages.get(frame.message_id)
        if message is None:
            return Changes()
        updated = message.model_copy(update={"reactions": frame.reactions})
        self._store(updated)
        return self._message_changed(updated, "reactions")

    def _on_comment_resolved(self, frame: sf.CommentResolvedEvent) -> Changes:
        thread = self.threads.get(frame.comment_id)
        if thread is None:
            return Changes()
        thread.root = thread.root.model_copy(update={"resolved": frame.resolved})
        self.messages[thread.id] = thread.root
        return Changes(files={thread.file})

    def _on_service_status(self, frame: sf.ServiceStatus) -> Changes:
        self.unavailable = None if frame.available else (frame.reason or "unavailable")
        return Changes(session=True)

    def _on_mention(self, frame: sf.Mention) -> Changes:
        return Changes(mention=frame.model_dump(mode="json"))

    def _message_changed(self, message: Message, kind: str) -> Changes:
        if message.message_type is MessageType.CHAT:
            return Changes(chat=[(kind, message.model_dump(mode="json"))])
        return Changes(files={message.file or ""})

    # -- presence helpers ------------------------------------------------------------------

    def _files_of(self, participant: ParticipantView) -> set[str]:
        presence = participant.presence
        if presence is None:
            return set()
        files = set()
        if presence.cursor is not None:
            files.add(presence.cursor.file)
        if presence.viewport is not None:
            files.add(presence.viewport.file)
        return files

    def _cursor_files(self) -> set[str]:
        files: set[str] = set()
        for participant in self.participants.values():
            files |= self._files_of(participant)
        return files
