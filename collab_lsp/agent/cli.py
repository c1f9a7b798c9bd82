"""`collab-lsp <command>`: scripts, bots and CI jobs in a session, through the relay client.

Bare `collab-lsp` stays the stdio language server that editors launch.

Exit codes scripts can rely on:

    0  done
    1  the relay refused the action (PERMISSION_DENIED, RATE_LIMITED, ...)
    2  bad usage or settings
    3  the relay refused to let us in (bad or expired token, unknown or ended session, removed)
    4  the relay cannot be reached
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from collab_lsp import __version__
from collab_lsp.agent import text
from collab_lsp.client import RelayError
from collab_lsp.client.mirror import SessionMirror
from collab_lsp.sidecar.settings import SettingsError, merge_settings
from collab_lsp.sidecar.workspace_files import WorkspaceFiles, find_root

__all__ = ["EXIT_CODES", "main"]

EXIT_CODES = {"ok": 0, "refused": 1, "usage": 2, "denied": 3, "unreachable": 4}
_JOIN_REFUSALS = frozenset(
    {
        "AUTH_REQUIRED",
        "INVALID_TOKEN",
        "TOKEN_EXPIRED",
        "SESSION_NOT_FOUND",
        "SESSION_ENDED",
        "REMOVED",
        "INVITE_INVALID",
        "PERMISSION_DENIED",
        "INVALID_FRAME",
    }
)

Command = Callable[[argparse.Namespace, SessionMirror, TextIO], Awaitable[int]]


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "mcp":
        from collab_lsp.agent.mcp_server import serve

        return serve(args)
    try:
        settings = merge_settings(
            {
                "relayUrl": args.relay,
                "token": args.token,
                "invite": args.invite,
                "sessionId": args.session,
                "name": args.name,
            }
        )
    except SettingsError as error:
        return _fail(f"{error}", "usage")
    if not settings.complete:
        return _fail(
            "no relay to join: give --relay and --token (or --invite), "
            "or set COLLAB_RELAY_URL and COLLAB_TOKEN",
            "usage",
        )
    mirror = SessionMirror(
        settings.relay_url or "",
        settings.token or "",
        session_id=settings.session_id,
        name=settings.name,
        record=args.command == "tail",
    )
    return asyncio.run(_run(args.run, args, mirror, out))


async def _run(
    command: Command, args: argparse.Namespace, mirror: SessionMirror, out: TextIO
) -> int:
    try:
        try:
            await mirror.start()
        except RelayError as error:
            kind = "unreachable" if error.code == "UNREACHABLE" else "denied"
            if error.code not in _JOIN_REFUSALS and kind != "unreachable":
                kind = "refused"
            return _fail(str(error), kind)
        try:
            return await command(args, mirror, out)
        except RelayError as error:
            return _fail(str(error), "refused")
    finally:
        await mirror.close()


def _fail(message: str, kind: str) -> int:
    print(f"collab-lsp: {message}", file=sys.stderr)
    return EXIT_CODES[kind]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collab-lsp",
        description="Without a command: the language server editors start over stdio. "
        "With one: take part in a session from a script, a bot or a CI job.",
        epilog="Exit codes: 0 done, 1 the relay refused the action, 2 bad usage, "
        "3 the relay refused to let us in, 4 the relay cannot be reached.",
    )
    parser.add_argument("--version", action="version", version=f"collab-lsp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--relay", help="relay URL (env COLLAB_RELAY_URL)")
    common.add_argument("--token", help="token (env COLLAB_TOKEN)")
    common.add_argument("--invite", help="invite link collab://join?... (env COLLAB_INVITE)")
    common.add_argument(
        "--session", help="session id, if the token names none (env COLLAB_SESSION)"
    )
    common.add_argument("--name", help="display name when joining with an invite (env COLLAB_NAME)")
    commands = parser.add_subparsers(dest="command", title="commands")

    say = commands.add_parser("say", parents=[common], help="send a chat message (@name mentions)")
    say.add_argument("text")
    say.set_defaults(run=_say)

    comment = commands.add_parser("comment", parents=[common], help="comment on FILE:LINE")
    comment.add_argument("location", metavar="FILE:LINE[-END]")
    comment.add_argument("text")
    comment.set_defaults(run=_comment)

    tail = commands.add_parser("tail", parents=[common], help="follow the session's events")
    tail.add_argument("--json", action="store_true", help="one JSON frame per line")
    tail.add_argument("--count", type=int, default=None, help="stop after N live events")
    tail.set_defaults(run=_tail)

    who = commands.add_parser("who", parents=[common], help="who is here, and where")
    who.add_argument("--json", action="store_true")
    who.set_defaults(run=_who)

    update = commands.add_parser("update", parents=[common], help="update the session")
    update.add_argument("--title")
    update.add_argument("--token-count", type=int)
    update.add_argument("--health-score", type=float)
    update.add_argument("--status", choices=["active", "paused"])
    update.set_defaults(run=_update)

    mcp = commands.add_parser("mcp", parents=[common], help="run an MCP server over stdio")
    mcp.add_argument("--root", help="the agent's checkout of the workspace (default: cwd)")
    return parser


# -- commands ---------------------------------------------------------------------------


async def _say(args: argparse.Namespace, mirror: SessionMirror, out: TextIO) -> int:
    ack = await mirror.client.request({"type": "chat_message", "content": args.text})
    print(f"sent (seq {ack['seq']})", file=out)
    return 0


async def _comment(args: argparse.Namespace, mirror: SessionMirror, out: TextIO) -> int:
    file, line, end_line = _location(args.location)
    data: dict[str, Any] = {"file": file, "line": line, "content": args.text}
    if end_line is not None:
        data["end_line"] = end_line
    snippet = _snippet(file, line, end_line or line)
    if snippet:
        data["code_snippet"] = snippet
    ack = await mirror.client.request({"type": "add_comment", "data": data})
    print(f"commented on {file}:{line} (thread {ack['id']}, seq {ack['seq']})", file=out)
    return 0


def _location(location: str) -> tuple[str, int, int | None]:
    file, _, lines = location.rpartition(":")
    start, _, end = lines.partition("-")
    if not file or not start.isdigit() or (end and not end.isdigit()):
        raise SystemExit(_fail(f"{location!r}: expected FILE:LINE or FILE:LINE-END", "usage"))
    root = find_root(str(Path.cwd()))
    path = Path(file)
    if path.exists() and root is not None:
        relative = WorkspaceFiles(root).relative(path.resolve().as_uri())
        if relative is None:
            raise SystemExit(_fail(f"{file} is outside the workspace {root}", "usage"))
        file = relative
    return file, int(start), int(end) if end else None


def _snippet(file: str, line: int, end_line: int) -> str:
    root = find_root(str(Path.cwd()))
    lines = WorkspaceFiles(root).read_lines(file) if root else None
    return "\n".join(lines[line - 1 : end_line]) if lines else ""


async def _tail(args: argparse.Namespace, mirror: SessionMirror, out: TextIO) -> int:
    events = mirror.events
    assert events is not None
    if not args.json:
        for message in mirror.view.chat_messages()[-20:]:
            print(text.chat_line(message), file=out)
    out.flush()
    # One line on stderr once joined: what came before is history, what follows is live.
    session = mirror.view.session
    title = session.title if session else "?"
    print(
        f"collab-lsp: following {title!r} from seq {mirror.client.last_seq} (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    seen = 0
    while args.count is None or seen < args.count:
        next_event = asyncio.ensure_future(events.get())
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({next_event, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stopped in done:
            next_event.cancel()
            break
        stopped.cancel()
        frame = next_event.result()
        line = (
            json.dumps(frame, ensure_ascii=False)
            if args.json
            else text.event_line(frame, mirror.view)
        )
        if line:
            print(line, file=out, flush=True)
            seen += 1
    return 0


async def _who(args: argparse.Namespace, mirror: SessionMirror, out: TextIO) -> int:
    people = text.participants(mirror.view)
    if args.json:
        print(json.dumps(people, ensure_ascii=False), file=out)
        return 0
    for person in people:
        print(text.participant_line(person), file=out)
    return 0


async def _update(args: argparse.Namespace, mirror: SessionMirror, out: TextIO) -> int:
    changes = {
        key: value
        for key, value in {
            "title": args.title,
            "token_count": args.token_count,
            "health_score": args.health_score,
            "status": args.status,
        }.items()
        if value is not None
    }
    if not changes:
        return _fail(
            "nothing to update: give --token-count, --health-score, --status or --title", "usage"
        )
    ack = await mirror.client.request({"type": "session_update", "changes": changes})
    print(f"updated (seq {ack['seq']})", file=out)
    return 0


def run_language_server_or_command() -> int:
    """The `collab-lsp` entry point: no arguments (or only --stdio) means the LSP server."""
    argv = sys.argv[1:]
    if not argv or argv == ["--stdio"]:
        from collab_lsp.sidecar.__main__ import main as serve_lsp

        return serve_lsp()
    with contextlib.suppress(BrokenPipeError):
        return main(argv)
    return 0
