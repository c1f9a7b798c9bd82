"""The permission matrix in code is the seed's table, and every client frame needs one action."""

from __future__ import annotations

from typing import get_args

import pytest

from collab_lsp.protocol.client_frames import ClientFrame
from collab_lsp.protocol.frame_actions import DURABLE_CLIENT_TYPES, FRAME_ACTIONS
from collab_lsp.protocol.permissions import PERMISSIONS, Action, Role, can

# Copied verbatim from the seed ("Permission Matrix").
SEED_TABLE = """
| Action | Host | Editor | Viewer |
|--------|------|--------|--------|
| View session | ✅ | ✅ | ✅ |
| See presence | ✅ | ✅ | ✅ |
| Send chat | ✅ | ✅ | ❌ |
| Add comments | ✅ | ✅ | ❌ |
| Edit session | ✅ | ✅ | ❌ |
| Invite users | ✅ | ❌ | ❌ |
| Remove users | ✅ | ❌ | ❌ |
| End session | ✅ | ❌ | ❌ |
"""
SEED_ROWS = {
    "View session": Action.VIEW_SESSION,
    "See presence": Action.SEE_PRESENCE,
    "Send chat": Action.SEND_CHAT,
    "Add comments": Action.ADD_COMMENT,
    "Edit session": Action.EDIT_SESSION,
    "Invite users": Action.INVITE_USERS,
    "Remove users": Action.REMOVE_USERS,
    "End session": Action.END_SESSION,
}
ROLES = (Role.HOST, Role.EDITOR, Role.VIEWER)


def seed_matrix() -> dict[tuple[Action, Role], bool]:
    matrix = {}
    for line in SEED_TABLE.strip().splitlines()[2:]:
        name, *marks = (cell.strip() for cell in line.strip("|").split("|"))
        for role, mark in zip(ROLES, marks, strict=True):
            matrix[SEED_ROWS[name], role] = mark == "✅"
    return matrix


SEED = seed_matrix()


def test_the_seed_table_has_every_row() -> None:
    assert len(SEED) == len(SEED_ROWS) * len(ROLES)


@pytest.mark.parametrize(("action", "role"), sorted(SEED))
def test_matrix_equals_the_seed(action: Action, role: Role) -> None:
    assert can(role, action) is SEED[action, role]


# Decisions beyond the seed's rows (docs/ARCHITECTURE "Who may change the session").
@pytest.mark.parametrize(
    ("action", "role", "allowed"),
    [
        (Action.SHARE_PRESENCE, Role.VIEWER, True),  # a host may see what a watcher looks at
        (Action.SHARE_PRESENCE, Role.EDITOR, True),
        (Action.REACT, Role.EDITOR, True),
        (Action.REACT, Role.VIEWER, False),  # viewers "cannot interact"
        (Action.CHANGE_ROLES, Role.HOST, True),
        (Action.CHANGE_ROLES, Role.EDITOR, False),
        (Action.CHANGE_ROLES, Role.VIEWER, False),
    ],
)
def test_decided_rows(action: Action, role: Role, allowed: bool) -> None:
    assert can(role, action) is allowed


def test_host_may_do_everything() -> None:
    assert PERMISSIONS[Role.HOST] == frozenset(Action)


def test_roles_are_nested() -> None:
    assert PERMISSIONS[Role.VIEWER] < PERMISSIONS[Role.EDITOR] < PERMISSIONS[Role.HOST]


def client_frame_types() -> set[str]:
    union = get_args(ClientFrame)[0]
    return {get_args(model.model_fields["type"].annotation)[0] for model in get_args(union)}


def test_every_client_frame_needs_an_action() -> None:
    # create_session is answered before any session exists; a team token is its check.
    assert set(FRAME_ACTIONS) == client_frame_types() - {"create_session"}


@pytest.mark.parametrize(
    ("frame_type", "action"),
    [
        ("chat_message", Action.SEND_CHAT),
        ("add_comment", Action.ADD_COMMENT),
        ("session_update", Action.EDIT_SESSION),
        ("invite", Action.INVITE_USERS),
        ("remove_user", Action.REMOVE_USERS),
        ("end_session", Action.END_SESSION),
        ("change_role", Action.CHANGE_ROLES),
        ("add_reaction", Action.REACT),
        ("cursor_update", Action.SHARE_PRESENCE),
        ("presence_update", Action.SHARE_PRESENCE),
        ("get_history", Action.VIEW_SESSION),
    ],
)
def test_frames_map_to_the_seed_rows(frame_type: str, action: Action) -> None:
    assert FRAME_ACTIONS[frame_type] is action


def test_durable_frames_are_client_frames_and_never_ephemeral() -> None:
    assert client_frame_types() >= DURABLE_CLIENT_TYPES
    assert not DURABLE_CLIENT_TYPES & {"cursor_update", "presence_update", "ping", "get_history"}
