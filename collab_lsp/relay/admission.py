"""Who may join a session, as whom, and what a (re)joining client is owed.

Pure decisions over the store and the token: the server attaches the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from websockets.datastructures import Headers

from collab_lsp.protocol.client_frames import JoinSession
from collab_lsp.protocol.errors import CloseCode, ErrorCode, ProtocolError
from collab_lsp.protocol.models import ParticipantKind, SessionStatus
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.auth import Authenticator, TokenClaims
from collab_lsp.relay.store.base import Store
from collab_lsp.relay.store.sqlite import new_id

__all__ = [
    "Identity",
    "admit",
    "bearer",
    "close_code_for",
    "join_from_query",
    "replay_for",
    "verify",
]

RESUME_MAX_EVENTS = 5_000
PERSONAL_TOKEN_TTL = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    username: str
    role: Role
    kind: ParticipantKind
    personal_token: str | None = None


def verify(auth: Authenticator, token: str | None) -> TokenClaims:
    if not token:
        raise ProtocolError(
            ErrorCode.AUTH_REQUIRED,
            "no token: pass ?token=..., an Authorization: Bearer header or auth_token",
        )
    return auth.verify(token)


async def admit(
    store: Store, auth: Authenticator, claims: TokenClaims, frame: JoinSession
) -> Identity:
    """Check the session and the token's right to it; redeem an invite for a personal token."""
    session_id = frame.session_id
    if claims.sid is not None and claims.sid != session_id:
        raise ProtocolError(ErrorCode.INVALID_TOKEN, "this token is for another session")
    session = await store.get_session(session_id)
    if session is None:
        raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id!r}")
    if session.status is SessionStatus.ENDED:
        raise ProtocolError(ErrorCode.SESSION_ENDED, "this session has ended")
    if claims.inv is not None:
        return await _redeem(store, auth, claims, frame)
    # The token says who is an agent; only an invite (which names nobody) lets the
    # joiner say it.
    assert claims.sub is not None
    username = claims.name or frame.name or claims.sub
    participant = await store.get_participant(session_id, claims.sub)
    if participant is not None:
        if participant.removed:
            raise ProtocolError(ErrorCode.REMOVED, "you were removed from this session")
        return Identity(claims.sub, username, participant.role, claims.kind)
    if claims.role is None or claims.sid is None:
        raise ProtocolError(
            ErrorCode.PERMISSION_DENIED,
            "you are not a participant of this session: ask the host for an invite",
        )
    return Identity(claims.sub, username, claims.role, claims.kind)


async def _redeem(
    store: Store, auth: Authenticator, claims: TokenClaims, frame: JoinSession
) -> Identity:
    assert claims.inv is not None
    username = frame.name or claims.name
    if username is None:
        raise ProtocolError(
            ErrorCode.INVALID_FRAME,
            "joining with an invite needs a display name: add name=... or 'name'",
            field="name",
        )
    invite = await store.get_invite(claims.inv)
    if invite is None or invite.session_id != frame.session_id:
        raise ProtocolError(ErrorCode.INVITE_INVALID, "this invite is not for this session")
    invite = await store.redeem_invite(claims.inv)
    user_id = new_id("u")
    personal = auth.issue(
        sub=user_id,
        name=username,
        sid=frame.session_id,
        role=invite.role,
        ttl_seconds=PERSONAL_TOKEN_TTL,
    )
    kind = frame.kind or claims.kind
    return Identity(user_id, username, invite.role, kind, personal)


async def replay_for(
    store: Store, frame: JoinSession, last_seq: int
) -> tuple[list[tuple[int, str]], bool, bool]:
    """``(events to replay, resumed, reset)`` for a join that may ask to resume."""
    if frame.resume_from is None:
        return [], False, False
    if not await _can_resume(store, frame, last_seq):
        return [], False, True
    events = await store.events_after(frame.session_id, frame.resume_from, RESUME_MAX_EVENTS + 1)
    return events, True, False


async def _can_resume(store: Store, frame: JoinSession, last_seq: int) -> bool:
    assert frame.resume_from is not None
    if frame.epoch is not None and frame.epoch != store.epoch:
        return False  # a different database: the client's seqs mean nothing here
    if frame.resume_from > last_seq or last_seq - frame.resume_from > RESUME_MAX_EVENTS:
        return False
    first = await store.first_event_seq(frame.session_id)
    return first is None or first <= frame.resume_from + 1


def close_code_for(code: ErrorCode) -> CloseCode:
    """The close code that goes with a refused join."""
    return {
        ErrorCode.SESSION_NOT_FOUND: CloseCode.SESSION_NOT_FOUND,
        ErrorCode.SESSION_ENDED: CloseCode.SESSION_ENDED,
        ErrorCode.REMOVED: CloseCode.REMOVED,
        ErrorCode.STORE_UNAVAILABLE: CloseCode.INTERNAL_ERROR,
        ErrorCode.INVALID_FRAME: CloseCode.POLICY_VIOLATION,
    }.get(code, CloseCode.AUTH_FAILED)


def bearer(headers: Headers) -> str | None:
    value = headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def join_from_query(session_id: str, query: dict[str, str], token: str | None) -> JoinSession:
    """The URL form of join_session, validated like the frame (errors name the parameter)."""
    resume_from = query.get("resume_from")
    if resume_from is not None and not (resume_from.isascii() and resume_from.isdigit()):
        raise ProtocolError(
            ErrorCode.INVALID_FRAME,
            "resume_from must be a non-negative integer",
            field="resume_from",
        )
    try:
        return JoinSession(
            type="join_session",
            session_id=session_id,
            auth_token=token,
            resume_from=int(resume_from) if resume_from is not None else None,
            epoch=query.get("epoch"),
            name=query.get("name"),
        )
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"])
        raise ProtocolError(
            ErrorCode.INVALID_FRAME, f"query parameter {field}: {error['msg']}", field=field
        ) from None
