"""Which permission each client frame needs (the matrix applied to the protocol)."""

from __future__ import annotations

from collections.abc import Mapping

from collab_lsp.protocol.permissions import Action

__all__ = ["DURABLE_CLIENT_TYPES", "FRAME_ACTIONS"]

FRAME_ACTIONS: Mapping[str, Action] = {
    "join_session": Action.VIEW_SESSION,
    "leave_session": Action.VIEW_SESSION,
    "get_history": Action.VIEW_SESSION,
    "get_comments": Action.VIEW_SESSION,
    "ping": Action.VIEW_SESSION,
    "cursor_update": Action.SHARE_PRESENCE,
    "presence_update": Action.SHARE_PRESENCE,
    "chat_message": Action.SEND_CHAT,
    "add_comment": Action.ADD_COMMENT,
    "edit_message": Action.SEND_CHAT,
    "delete_message": Action.SEND_CHAT,
    "resolve_comment": Action.ADD_COMMENT,
    "reopen_comment": Action.ADD_COMMENT,
    "add_reaction": Action.REACT,
    "remove_reaction": Action.REACT,
    "session_update": Action.EDIT_SESSION,
    "invite": Action.INVITE_USERS,
    "revoke_invite": Action.INVITE_USERS,
    "remove_user": Action.REMOVE_USERS,
    "change_role": Action.CHANGE_ROLES,
    "end_session": Action.END_SESSION,
}

# Frames that create a durable event and count against the durable rate limit.
DURABLE_CLIENT_TYPES: frozenset[str] = frozenset(
    {
        "chat_message",
        "add_comment",
        "edit_message",
        "delete_message",
        "resolve_comment",
        "reopen_comment",
        "add_reaction",
        "remove_reaction",
        "session_update",
        "remove_user",
        "change_role",
        "end_session",
    }
)
