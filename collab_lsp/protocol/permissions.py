"""The seed's permission matrix, as data.

Every client frame maps to one ``Action``; a role may perform an action when the
matrix says so. Ownership rules (only the author edits a message) live with the
frame handlers, because they need the stored message.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = ["PERMISSIONS", "Action", "Role", "can"]


class Role(StrEnum):
    HOST = "host"
    EDITOR = "editor"
    VIEWER = "viewer"


class Action(StrEnum):
    VIEW_SESSION = "view_session"
    SEE_PRESENCE = "see_presence"
    SHARE_PRESENCE = "share_presence"
    SEND_CHAT = "send_chat"
    ADD_COMMENT = "add_comment"
    REACT = "react"
    EDIT_SESSION = "edit_session"
    INVITE_USERS = "invite_users"
    REMOVE_USERS = "remove_users"
    CHANGE_ROLES = "change_roles"
    END_SESSION = "end_session"


_EVERYONE = frozenset({Action.VIEW_SESSION, Action.SEE_PRESENCE, Action.SHARE_PRESENCE})
_CONTRIBUTOR = _EVERYONE | {
    Action.SEND_CHAT,
    Action.ADD_COMMENT,
    Action.REACT,
    Action.EDIT_SESSION,
}

# Viewers may still share their own cursor and viewport, so a host can see what a
# watcher is looking at; they cannot chat, comment or react ("cannot interact").
PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.HOST: frozenset(Action),
    Role.EDITOR: frozenset(_CONTRIBUTOR),
    Role.VIEWER: _EVERYONE,
}


def can(role: Role, action: Action) -> bool:
    return action in PERMISSIONS[role]
