"""From the session view to LSP: diagnostics, hovers, code lenses, code actions, inlay hints,
and the payloads of ``collab/*`` notifications. No I/O."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from collab_lsp.client.session_view import ParticipantView, SessionView, Thread
from collab_lsp.protocol.coordinates import PositionEncoding, column_to_lsp_character
from collab_lsp.protocol.models import Message, Selection

__all__ = [
    "PALETTE",
    "Anchor",
    "JsonCache",
    "code_actions",
    "code_lenses",
    "color_of",
    "cursor_payload",
    "diagnostics",
    "diagnostics_json",
    "hover",
    "inlay_hints",
    "participants_payload",
]

SOURCE = "collab"

# The default palette for editors that take colours from the sidecar; slot i of
# ``color_index``. Chosen to stay readable on dark and light themes.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#9a6324",
    "#469990",
    "#808000",
    "#000075",
    "#bfef45",
)


def color_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a thread sits in an open document now (0-based), and whether it is stale."""

    line: int
    end_line: int
    outdated: bool = False


def diagnostics(
    view: SessionView,
    threads: list[Thread],
    anchors: dict[str, Anchor],
    lines: list[str],
    pending: set[str],
    encoding: PositionEncoding = PositionEncoding.UTF16,
) -> list[types.Diagnostic]:
    """One diagnostic per open thread, rendered from scratch.

    The server publishes :func:`diagnostics_json` instead: the same diagnostics as JSON,
    re-rendered only for the threads that changed since the file's last publish.
    """
    result = []
    for thread in threads:
        if not thread.open:
            continue
        anchor = anchors.get(thread.id) or _stored_anchor(thread)
        start, end = _placed(anchor, lines)
        end_character = _end_character(lines, end, encoding)
        result.append(
            types.Diagnostic(
                range=types.Range(types.Position(start, 0), types.Position(end, end_character)),
                message=_summary(view, thread, anchor.outdated, thread.id in pending),
                severity=types.DiagnosticSeverity.Information,
                source=SOURCE,
                code=thread.id,
                data={"threadId": thread.id, "outdated": anchor.outdated},
            )
        )
    return result


def diagnostics_json(
    cache: JsonCache,
    view: SessionView,
    threads: list[Thread],
    anchors: dict[str, Anchor],
    lines: list[str],
    pending: set[str],
    encoding: PositionEncoding = PositionEncoding.UTF16,
) -> list[str]:
    """:func:`diagnostics` as the JSON text of each diagnostic (what pygls would send for
    them), from ``cache`` for every thread whose diagnostic is unchanged.

    A diagnostic is made of its thread's first message (the session view replaces a
    message that changes: mostly an identity check), the count of live replies, the
    author's name, whether it is pending or outdated, and its lines: the anchor clamped
    into the document and the text of its last line (the range ends there). Keep one
    cache per file.
    """

    def inputs(thread: Thread) -> tuple[tuple[object, ...], tuple[Any, ...]]:
        anchor = anchors.get(thread.id) or _stored_anchor(thread)
        start, end = _placed(anchor, lines)
        replies = len(thread.live_replies()) if thread.replies else 0
        key = (
            start,
            end,
            lines[end] if lines else "",
            anchor.outdated,
            thread.id in pending,
            replies,
            view.name_of(thread.root.user_id),
            encoding,
        )
        return (thread.root,), key

    def make(thread: Thread) -> dict[str, Any]:
        anchor = anchors.get(thread.id) or _stored_anchor(thread)
        start, end = _placed(anchor, lines)
        end_character = _end_character(lines, end, encoding)
        # The field order and omissions of lsprotocol's converter (no None fields).
        return {
            "range": {
                "start": {"line": start, "character": 0},
                "end": {"line": end, "character": end_character},
            },
            "message": _summary(view, thread, anchor.outdated, thread.id in pending),
            "severity": types.DiagnosticSeverity.Information.value,
            "code": thread.id,
            "source": SOURCE,
            "data": {"threadId": thread.id, "outdated": anchor.outdated},
        }

    return cache.render([thread for thread in threads if thread.open], inputs, make)


class JsonCache:
    """The JSON text of each thread's rendering, made again only when its inputs change.

    ``render`` is given, per thread, ``inputs`` (the messages it shows, and a key of
    everything else it depends on) and ``make`` (the rendering, JSON-ready): a thread
    whose inputs are those of its last rendering gets the same text. Only the threads of
    the last call are kept, so threads that are gone are forgotten.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[object, ...], tuple[Any, ...], str]] = {}
        self.made = 0  # renderings made (not reused), for tests

    def render(
        self,
        threads: list[Thread],
        inputs: Callable[[Thread], tuple[tuple[object, ...], tuple[Any, ...]]],
        make: Callable[[Thread], Any],
    ) -> list[str]:
        entries = {}
        texts = []
        previous = self._entries
        for thread in threads:
            objects, key = inputs(thread)
            thread_id = thread.root.id
            entry = previous.get(thread_id)
            # Tuples compare their items by identity first, so this is cheap when nothing
            # changed; equal messages (pydantic compares fields) render alike anyway.
            if entry is None or entry[1] != key or entry[0] != objects:
                entry = (objects, key, json.dumps(make(thread)))
                self.made += 1
            entries[thread_id] = entry
            texts.append(entry[2])
        self._entries = entries
        return texts


def _placed(anchor: Anchor, lines: list[str]) -> tuple[int, int]:
    """An anchor's first and last line, clamped into the document."""
    last = max(len(lines) - 1, 0)
    return min(anchor.line, last), min(max(anchor.end_line, anchor.line), last)


def _end_character(lines: list[str], end: int, encoding: PositionEncoding) -> int:
    end_text = lines[end] if lines else ""
    return column_to_lsp_character(end_text, len(end_text) + 1, encoding)


def _stored_anchor(thread: Thread) -> Anchor:
    line = (thread.root.line or 1) - 1
    end = (thread.root.end_line or thread.root.line or 1) - 1
    return Anchor(line, end)


def _summary(view: SessionView, thread: Thread, outdated: bool, pending: bool) -> str:
    replies = len(thread.live_replies())
    count = f" ({replies} {'reply' if replies == 1 else 'replies'})" if replies else ""
    flags = ("[pending] " if pending else "") + ("[outdated] " if outdated else "")
    text = thread.root.content.splitlines()[0] if thread.root.content else ""
    return f"{flags}{view.name_of(thread.root.user_id)}: {text}{count}"


def hover(view: SessionView, threads: list[Thread]) -> types.Hover | None:
    if not threads:
        return None
    sections = [_thread_markdown(view, thread) for thread in threads]
    return types.Hover(
        contents=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(sections)
        )
    )


def _thread_markdown(view: SessionView, thread: Thread) -> str:
    title = "Comment thread" + (" (resolved)" if thread.root.resolved else "")
    parts = [f"**{title}** on `{thread.file}:{thread.root.line}`"]
    if thread.root.code_snippet:
        parts.append(f"```\n{thread.root.code_snippet}\n```")
    for message in [thread.root, *thread.live_replies()]:
        parts.append(_message_markdown(view, message))
    return "\n\n".join(parts)


def _message_markdown(view: SessionView, message: Message) -> str:
    when = message.timestamp.replace("T", " ")[:16]
    edited = " (edited)" if message.edited_at else ""
    # Escaped: message text is other people's input, never markup to interpret.
    text = _escape_markdown(message.content).replace("\n", "  \n")
    reactions = "  ".join(f"{emoji} {len(users)}" for emoji, users in message.reactions.items())
    name = _escape_markdown(view.name_of(message.user_id))
    return f"**{name}** · {when}{edited}\n\n{text}" + (f"\n\n{reactions}" if reactions else "")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def _escape_markdown(text: str) -> str:
    """Show other people's text as typed: no links, images, HTML or emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def code_lenses(threads: list[Thread], anchors: dict[str, Anchor]) -> list[types.CodeLens]:
    by_line: dict[int, list[Thread]] = {}
    for thread in threads:
        if thread.open:
            line = (anchors.get(thread.id) or _stored_anchor(thread)).line
            by_line.setdefault(line, []).append(thread)
    lenses = []
    for line, here in sorted(by_line.items()):
        replies = sum(len(thread.live_replies()) for thread in here)
        title = f"💬 {len(here)} comment thread{'s' if len(here) > 1 else ''}"
        if replies:
            title += f", {replies} repl{'ies' if replies > 1 else 'y'}"
        lenses.append(
            types.CodeLens(
                range=types.Range(types.Position(line, 0), types.Position(line, 0)),
                command=types.Command(
                    title=title,
                    command="collab.server.listThreads",
                    arguments=[{"threadIds": [thread.id for thread in here]}],
                ),
            )
        )
    return lenses


def code_actions(view: SessionView, threads: list[Thread]) -> list[types.CodeAction]:
    actions = []
    for thread in threads:
        author = view.name_of(thread.root.user_id)
        argument = [{"threadId": thread.id}]
        actions.append(
            types.CodeAction(
                title=f"Reply to {author}'s comment",
                kind=types.CodeActionKind.QuickFix,
                command=types.Command(
                    title="Reply", command="collab.server.reply", arguments=argument
                ),
            )
        )
        verb, command = ("Reopen", "reopen") if thread.root.resolved else ("Resolve", "resolve")
        actions.append(
            types.CodeAction(
                title=f"{verb} {author}'s comment thread",
                kind=types.CodeActionKind.QuickFix,
                command=types.Command(
                    title=verb, command=f"collab.server.{command}", arguments=argument
                ),
            )
        )
        actions.append(
            types.CodeAction(
                title="Jump to chat",
                kind=types.CodeActionKind.Empty,
                command=types.Command(
                    title="Jump to chat", command="collab.server.jumpToChat", arguments=argument
                ),
            )
        )
    return actions


def cursor_payload(
    participant: ParticipantView,
    lines: list[str],
    encoding: PositionEncoding,
    line_offset: int = 0,
) -> dict[str, Any] | None:
    """One remote cursor in LSP coordinates of an open document."""
    presence = participant.presence
    if presence is None or presence.cursor is None:
        return None
    cursor = presence.cursor
    payload: dict[str, Any] = {
        "userId": participant.user_id,
        "name": participant.username,
        "kind": participant.kind.value,
        "colorIndex": participant.color_index,
        "color": color_of(participant.color_index),
        "position": _position(lines, cursor.line + line_offset, cursor.column, encoding),
    }
    if cursor.selection is not None:
        payload["selection"] = _selection(lines, cursor.selection, encoding, line_offset)
    return payload


def _position(
    lines: list[str], line: int, column: int, encoding: PositionEncoding
) -> dict[str, int]:
    index = min(max(line - 1, 0), max(len(lines) - 1, 0))
    text = lines[index] if lines else ""
    return {"line": index, "character": column_to_lsp_character(text, column, encoding)}


def _selection(
    lines: list[str], selection: Selection, encoding: PositionEncoding, offset: int
) -> dict[str, Any]:
    return {
        "anchor": _position(
            lines, selection.anchor.line + offset, selection.anchor.column, encoding
        ),
        "active": _position(lines, selection.head.line + offset, selection.head.column, encoding),
    }


def inlay_hints(cursors: list[dict[str, Any]]) -> list[types.InlayHint]:
    return [
        types.InlayHint(
            position=types.Position(**cursor["position"]),
            label=f"‸{cursor['name']}",
            padding_left=True,
            tooltip=f"{cursor['name']} is here",
        )
        for cursor in cursors
    ]


def participants_payload(view: SessionView) -> list[dict[str, Any]]:
    following = {p.user_id: p.presence.following for p in view.participants.values() if p.presence}
    result = []
    for participant in view.participants.values():
        presence = participant.presence
        cursor = presence.cursor if presence else None
        viewport = presence.viewport if presence else None
        result.append(
            {
                "userId": participant.user_id,
                "name": participant.username,
                "role": participant.role.value,
                "kind": participant.kind.value,
                "status": participant.status.value,
                "online": participant.online,
                "colorIndex": participant.color_index,
                "color": color_of(participant.color_index),
                "file": cursor.file if cursor else (viewport.file if viewport else None),
                "line": cursor.line if cursor else (viewport.start_line if viewport else None),
                "following": following.get(participant.user_id),
                "isYou": participant.user_id == view.my_id,
            }
        )
    return result
