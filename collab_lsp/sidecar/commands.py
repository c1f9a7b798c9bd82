"""``workspace/executeCommand`` handlers: ``collab.server.*``, one JSON object argument each.

Arguments are validated with pydantic (camelCase on the wire); a refusal by the
relay comes back as the command's error with the relay's code and message.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import websockets
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from pygls.exceptions import JsonRpcException

from collab_lsp.client import ClientState, RelayError
from collab_lsp.client.session_view import Thread
from collab_lsp.protocol.links import invite_link
from collab_lsp.protocol.models import Message, MessageType
from collab_lsp.sidecar import render
from collab_lsp.sidecar.plain import to_plain
from collab_lsp.sidecar.settings import SettingsError, merge_settings
from collab_lsp.sidecar.workspace_files import git_blob_id

if TYPE_CHECKING:
    from collab_lsp.sidecar.server import CollabServer

__all__ = ["COMMANDS", "CommandFailed"]

_REQUEST_FAILED = -32803
_ACK_WAIT_SECONDS = 5.0


class CommandFailed(JsonRpcException):
    """A command's error response: ``data.errorCode`` is the relay's code."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(
            message=message, code=_REQUEST_FAILED, data={"errorCode": code, "field": field}
        )


class _Args(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class JoinArgs(_Args):
    relay_url: str | None = None
    token: str | None = None
    invite: str | None = None
    name: str | None = None
    session_id: str | None = None


class AddCommentArgs(_Args):
    uri: str
    line: int | None = Field(default=None, ge=0, description="0-based LSP line")
    range: dict[str, Any] | None = None
    text: str = Field(min_length=1)


class ThreadArgs(_Args):
    thread_id: str
    text: str | None = None


class MessageArgs(_Args):
    message_id: str
    text: str | None = None
    emoji: str | None = None


class ChatArgs(_Args):
    text: str = Field(min_length=1)
    parent_id: str | None = None


class HistoryArgs(_Args):
    before_seq: int | None = Field(default=None, ge=0)
    limit: int = Field(default=50, ge=1, le=100)


class ListThreadsArgs(_Args):
    uri: str | None = None
    file: str | None = None
    thread_ids: list[str] | None = None
    include_resolved: bool = True


class UserArgs(_Args):
    user_id: str


class InviteArgs(_Args):
    role: Literal["editor", "viewer"] = "editor"
    ttl_seconds: int = Field(default=24 * 3600, ge=60)
    max_uses: int = Field(default=1, ge=1)


class RoleArgs(_Args):
    user_id: str
    role: Literal["host", "editor", "viewer"]


class CreateArgs(_Args):
    relay_url: str | None = None
    token: str | None = None
    title: str = Field(min_length=1)


A = TypeVar("A", bound=_Args)


def _parse(model: type[A], arguments: list[Any]) -> A:
    raw = arguments[0] if arguments else {}
    try:
        return model.model_validate(to_plain(raw))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"])
        raise CommandFailed("INVALID_ARGUMENTS", f"{field}: {error['msg']}", field) from None


def _connected(server: CollabServer) -> Any:
    if server.relay is None:
        raise CommandFailed("NOT_JOINED", "not in a session: run collab.server.join first")
    return server.relay


async def _request(
    server: CollabServer, frame: dict[str, Any], expect: str = "ack"
) -> dict[str, Any]:
    relay = _connected(server)
    try:
        return dict(await relay.request(frame, expect=expect))
    except RelayError as error:
        raise CommandFailed(error.code, error.message, error.field) from None


async def _durable(
    server: CollabServer,
    frame: dict[str, Any],
    on_done: Callable[[], None] | None = None,
    on_sent: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Send a durable frame; answer once acknowledged, or 'pending' while offline.

    ``on_sent`` runs right after the frame was handed to the connection (or queued while
    offline): work for this editor that the others need not wait for.
    """
    relay = _connected(server)
    # Not reported by spawn: a refusal within the wait is this command's error; only one
    # that comes after the command answered 'pending' is shown as a message.
    task = server.spawn(relay.request(frame), report=False)
    if on_done is not None:
        task.add_done_callback(lambda _: on_done())
    if on_sent is not None:
        # Scheduled after the task's first step, which sends the frame.
        asyncio.get_running_loop().call_soon(on_sent)
    done, _ = await asyncio.wait({task}, timeout=_ACK_WAIT_SECONDS)
    if not done:
        server.report_failure_later(task)
        return {"status": "pending", "state": relay.state.value}
    try:
        ack = task.result()
    except RelayError as error:
        raise CommandFailed(error.code, error.message, error.field) from None
    return {"status": "acknowledged", "id": ack["id"], "seq": ack["seq"]}


# -- session ------------------------------------------------------------------------------


async def join(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(JoinArgs, arguments)
    try:
        settings = merge_settings(
            server.init_options, server.configuration, args.model_dump(exclude_none=True)
        )
    except SettingsError as error:
        raise CommandFailed("INVALID_ARGUMENTS", str(error)) from None
    try:
        return await server.join(settings)
    except RelayError as error:
        raise CommandFailed(error.code, error.message, error.field) from None


async def leave(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    await server.leave()
    return {"state": ClientState.OFFLINE.value}


async def status(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    return server.state_payload()


async def create_session(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    """Create a session with a team token and join it as host."""
    args = _parse(CreateArgs, arguments)
    settings = merge_settings(
        server.init_options, server.configuration, args.model_dump(exclude_none=True)
    )
    if not settings.complete:
        raise CommandFailed("NOT_CONFIGURED", "give relayUrl and a team token to create a session")
    async with websockets.connect(f"{settings.relay_url}/ws") as websocket:
        await websocket.send(
            json.dumps(
                {"type": "create_session", "title": args.title, "auth_token": settings.token}
            )
        )
        reply = json.loads(await websocket.recv())
    if reply["type"] == "error":
        raise CommandFailed(reply["error_code"], reply["message"], reply.get("field"))
    session_id = reply["session"]["id"]
    return await server.join(settings.model_copy(update={"session_id": session_id}))


async def update_session(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    raw = to_plain(arguments[0]) if arguments else {}
    names = {"tokenCount": "token_count", "healthScore": "health_score"}
    changes = {names.get(key, key): value for key, value in dict(raw).items()}
    return await _durable(server, {"type": "session_update", "changes": changes})


# -- comments -------------------------------------------------------------------------------


async def add_comment(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(AddCommentArgs, arguments)
    relay = _connected(server)
    if relay.failure is not None:
        raise CommandFailed(relay.failure.code, relay.failure.message)
    document = server.documents.get(args.uri)
    file = server.files.relative(args.uri)
    if file is None:
        raise CommandFailed(
            "OUTSIDE_WORKSPACE", "this file is outside the workspace and is never shared", "uri"
        )
    start_line, end_line = _comment_lines(args)
    lines = document.lines if document else (server.files.read_lines(file) or [""])
    snippet = "\n".join(lines[start_line : end_line + 1])[:4000] if lines else ""
    data: dict[str, Any] = {
        "file": file,
        "line": start_line + 1,
        "content": args.text,
        "code_snippet": snippet,
    }
    if end_line != start_line:
        data["end_line"] = end_line + 1
    # Remember the code the comment was made on, so any client can re-anchor it later.
    # The commit is cached until git's refs change (no git process per comment), and an
    # open document's blob id until its text changes.
    commit = await server.files.head.commit()
    if commit is not None:
        data["commit"] = commit
        data["blob"] = document.blob_of(lines) if document else git_blob_id("\n".join(lines) + "\n")
    frame_id = _frame_id()
    frame = {"type": "add_comment", "id": frame_id, "data": data}
    server.pending_comments[frame_id] = _pending_thread(server, frame_id, data)
    if document is not None:
        document.anchors[frame_id] = render.Anchor(start_line, end_line)

    def show() -> None:
        # The pending thread, once the frame is on its way: re-rendering every thread of
        # the file first would delay the comment for everyone else.
        server.publish(file)
        server.send_threads(file)

    def settled() -> None:
        server.pending_comments.pop(frame_id, None)
        server.publish(file)
        server.send_threads(file)

    return await _durable(server, frame, on_done=settled, on_sent=show)


def _comment_lines(args: AddCommentArgs) -> tuple[int, int]:
    if args.range is not None:
        start = int(args.range["start"]["line"])
        end = int(args.range["end"]["line"])
        # A selection ending at column 0 of a line does not include that line.
        if end > start and int(args.range["end"].get("character", 0)) == 0:
            end -= 1
        return start, max(start, end)
    if args.line is None:
        raise CommandFailed("INVALID_ARGUMENTS", "give line or range", "line")
    return args.line, args.line


def _pending_thread(server: CollabServer, frame_id: str, data: dict[str, Any]) -> Thread:
    me = server.view.my_id or "me"
    message = Message(
        id=frame_id,
        seq=0,
        message_type=MessageType.COMMENT,
        user_id=me,
        username=server.view.name_of(me),
        content=data["content"],
        file=data["file"],
        line=data["line"],
        end_line=data.get("end_line"),
        code_snippet=data.get("code_snippet"),
        timestamp="",
    )
    return Thread(message)


def _frame_id() -> str:
    return uuid.uuid4().hex[:16]


async def reply(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(ThreadArgs, arguments)
    if not args.text:
        raise CommandFailed("TEXT_REQUIRED", "a reply needs text: give {threadId, text}", "text")
    frame = {"type": "add_comment", "data": {"parent_id": args.thread_id, "content": args.text}}
    return await _durable(server, frame)


async def resolve(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(ThreadArgs, arguments)
    return await _durable(server, {"type": "resolve_comment", "comment_id": args.thread_id})


async def reopen(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(ThreadArgs, arguments)
    return await _durable(server, {"type": "reopen_comment", "comment_id": args.thread_id})


async def list_threads(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(ListThreadsArgs, arguments)
    file = args.file or (server.files.relative(args.uri) if args.uri else None)
    threads = list(server.view.threads.values())
    if file is not None:
        threads = [thread for thread in threads if thread.file == file]
    if args.thread_ids is not None:
        threads = [thread for thread in threads if thread.id in args.thread_ids]
    if not args.include_resolved:
        threads = [thread for thread in threads if thread.open]
    return {"threads": [server.thread_payload(thread) for thread in threads]}


# -- chat ---------------------------------------------------------------------------------


async def send_chat(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(ChatArgs, arguments)
    frame: dict[str, Any] = {"type": "chat_message", "content": args.text}
    if args.parent_id:
        frame["parent_id"] = args.parent_id
    return await _durable(server, frame)


async def edit_message(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(MessageArgs, arguments)
    if not args.text:
        raise CommandFailed("TEXT_REQUIRED", "give the new text", "text")
    frame = {"type": "edit_message", "message_id": args.message_id, "content": args.text}
    return await _durable(server, frame)


async def delete_message(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(MessageArgs, arguments)
    return await _durable(server, {"type": "delete_message", "message_id": args.message_id})


async def react(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    return await _reaction(server, arguments, "add_reaction")


async def unreact(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    return await _reaction(server, arguments, "remove_reaction")


async def _reaction(server: CollabServer, arguments: list[Any], kind: str) -> dict[str, Any]:
    args = _parse(MessageArgs, arguments)
    if not args.emoji:
        raise CommandFailed("INVALID_ARGUMENTS", "give the emoji", "emoji")
    frame = {"type": kind, "message_id": args.message_id, "emoji": args.emoji}
    return await _durable(server, frame)


async def fetch_history(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(HistoryArgs, arguments)
    frame: dict[str, Any] = {"type": "get_history", "limit": args.limit}
    if args.before_seq is not None:
        frame["before_seq"] = args.before_seq
    history = await _request(server, frame, expect="history")
    messages = [Message.model_validate(m) for m in history["messages"]]
    server.refresh(server.view.add_history(messages))
    return {"messages": history["messages"], "hasMore": history["has_more"]}


async def jump_to_chat(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(ThreadArgs, arguments)
    server.notify("collab/chat", {"kind": "focus", "threadId": args.thread_id})
    return {"threadId": args.thread_id}


# -- people ----------------------------------------------------------------------------------


async def list_participants(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    return {"participants": render.participants_payload(server.view)}


async def follow(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(UserArgs, arguments)
    target = server.view.find_user(args.user_id)
    if target is None:
        raise CommandFailed("UNKNOWN_USER", f"{args.user_id!r} is not in this session", "userId")
    if target.user_id == server.view.my_id:
        raise CommandFailed("INVALID_ARGUMENTS", "you cannot follow yourself", "userId")
    server.following = target.user_id
    server.local_presence(following=target.user_id)
    server.send_follow()
    server.notify("collab/sessionState", server.state_payload())
    return {"following": target.user_id, "name": target.username}


async def unfollow(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    server.following = None
    server.local_presence(following=None)
    server.notify("collab/sessionState", server.state_payload())
    return {"following": None}


async def invite(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(InviteArgs, arguments)
    frame = {
        "type": "invite",
        "role": args.role,
        "ttl_seconds": args.ttl_seconds,
        "max_uses": args.max_uses,
    }
    created = await _request(server, frame, expect="invite_created")
    relay_url = server.settings.relay_url or ""
    return {
        "token": created["token"],
        "link": invite_link(relay_url, created["token"]),
        "inviteId": created["invite_id"],
        "role": created["role"],
        "expiresAt": created["expires_at"],
        "maxUses": created["max_uses"],
    }


async def remove(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    user = _user(server, _parse(UserArgs, arguments).user_id)
    return await _durable(server, {"type": "remove_user", "user_id": user})


async def change_role(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    args = _parse(RoleArgs, arguments)
    user = _user(server, args.user_id)
    return await _durable(server, {"type": "change_role", "user_id": user, "role": args.role})


async def end_session(server: CollabServer, arguments: list[Any]) -> dict[str, Any]:
    return await _durable(server, {"type": "end_session"})


def _user(server: CollabServer, name_or_id: str) -> str:
    participant = server.view.find_user(name_or_id)
    return participant.user_id if participant else name_or_id


Command = Callable[["CollabServer", list[Any]], Awaitable[dict[str, Any]]]

COMMANDS: dict[str, Command] = {
    "collab.server.join": join,
    "collab.server.leave": leave,
    "collab.server.status": status,
    "collab.server.createSession": create_session,
    "collab.server.updateSession": update_session,
    "collab.server.addComment": add_comment,
    "collab.server.reply": reply,
    "collab.server.resolve": resolve,
    "collab.server.reopen": reopen,
    "collab.server.listThreads": list_threads,
    "collab.server.sendChat": send_chat,
    "collab.server.editMessage": edit_message,
    "collab.server.deleteMessage": delete_message,
    "collab.server.react": react,
    "collab.server.unreact": unreact,
    "collab.server.fetchHistory": fetch_history,
    "collab.server.jumpToChat": jump_to_chat,
    "collab.server.listParticipants": list_participants,
    "collab.server.follow": follow,
    "collab.server.unfollow": unfollow,
    "collab.server.invite": invite,
    "collab.server.remove": remove,
    "collab.server.changeRole": change_role,
    "collab.server.endSession": end_session,
}
