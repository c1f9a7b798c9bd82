"""The sidecar language server: one relay connection beside one editor.

Editor actions (``collab/*`` notifications and ``collab.server.*`` commands) become
relay frames through :class:`RelayClient`; relay frames update the
:class:`SessionView`, and the server re-renders only what changed. Nothing here
blocks an editor request on relay I/O: cursor frames are coalesced on a timer
and durable actions are queued by the client.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError
from pygls.lsp.server import LanguageServer

from collab_lsp import __version__
from collab_lsp.client import ClientState, RelayClient, RelayError
from collab_lsp.client.session_view import Changes, SessionView, Thread
from collab_lsp.protocol import limits
from collab_lsp.protocol.coordinates import PositionEncoding, lsp_character_to_column
from collab_lsp.protocol.models import Message
from collab_lsp.sidecar import render
from collab_lsp.sidecar.anchors import LineEdit, SnippetIndex, map_lines, reanchor, shift_line
from collab_lsp.sidecar.settings import SidecarSettings, merge_settings
from collab_lsp.sidecar.workspace_files import WorkspaceFiles, git_blob_id

__all__ = ["CollabServer", "OpenDocument"]

log = logging.getLogger(__name__)


@dataclass
class OpenDocument:
    uri: str
    file: str
    text: str
    anchors: dict[str, render.Anchor] = field(default_factory=dict)
    # How far local edits moved each remote cursor's line since its last update.
    cursor_offsets: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(init=False)
    # Where each (stripped) line is, for re-anchoring threads: built when first searched.
    index: SnippetIndex = field(init=False)
    _blob: tuple[list[str], str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.set_text(self.text)

    def set_text(self, text: str) -> None:
        # Split once per change: rendering reads the lines many times.
        self.text = text
        self.lines = text.splitlines() or [""]
        self.index = SnippetIndex(self.lines)

    def blob_of(self, lines: list[str]) -> str:
        """The git blob id of ``lines`` (this document's, now or before an edit), kept for
        as long as they are the document's lines: one hash per text, not per comment."""
        if self._blob is None or self._blob[0] is not lines:
            self._blob = (lines, git_blob_id("\n".join(lines) + "\n"))
        return self._blob[1]


class CollabServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("collab-lsp", __version__)
        self.init_options: dict[str, Any] = {}
        self.configuration: dict[str, Any] = {}
        self.settings = SidecarSettings()
        self.files = WorkspaceFiles(None)
        self.view = SessionView()
        self.relay: RelayClient | None = None
        self.documents: dict[str, OpenDocument] = {}
        self.pending_comments: dict[str, Thread] = {}
        self.following: str | None = None
        self._published: set[str] = set()
        # Per file: the JSON text of each thread's diagnostic and collab/threads entry,
        # so that a new comment renders one thread, not all of the file's.
        self._diagnostic_json: dict[str, render.JsonCache] = {}
        self._thread_json: dict[str, render.JsonCache] = {}
        self._cursor_frame: dict[str, Any] | None = None
        self._cursor_timer: asyncio.TimerHandle | None = None
        self._last_cursor_sent = 0.0
        self._inlay_timer: asyncio.TimerHandle | None = None
        self._last_inlay_refresh = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned_unreachable = False

    # -- small utilities -----------------------------------------------------------------

    @property
    def encoding(self) -> PositionEncoding:
        value = str(getattr(self.workspace, "position_encoding", None) or "utf-16")
        try:
            return PositionEncoding(value)
        except ValueError:
            return PositionEncoding.UTF16

    def spawn(self, work: Any, *, report: bool = True) -> asyncio.Task[Any]:
        """Run ``work`` in the background; with ``report``, a failure is shown to the user."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if report:
            task.add_done_callback(self._report_failure)
        return task

    def report_failure_later(self, task: asyncio.Task[Any]) -> None:
        """For work whose caller stopped waiting: its outcome can only be shown."""
        if task.done():
            self._report_failure(task)
        else:
            task.add_done_callback(self._report_failure)

    def _report_failure(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        if isinstance(error, RelayError):
            self.show(f"collab: {error.message}", types.MessageType.Warning)
        else:
            log.error("background task failed", exc_info=error)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def notify(self, method: str, payload: dict[str, Any]) -> None:
        # The payloads are plain JSON already: sent as they are, not walked by pygls's
        # cattrs converter first (4x the cost of json.dumps on a participants list).
        self.protocol._send_data({"jsonrpc": "2.0", "method": method, "params": payload})

    def notify_json(self, method: str, params: str) -> None:
        """A notification whose ``params`` are JSON text already: pieces kept from earlier
        renderings are joined, not encoded again. Framed and written as pygls would."""
        self._send_body(f'{{"jsonrpc": "2.0", "method": {json.dumps(method)}, "params": {params}}}')

    def _send_body(self, body: str) -> None:
        # What pygls's JsonRPCProtocol._send_data does once it has json.dumps'ed a message.
        protocol = self.protocol
        writer = protocol.writer
        if writer is None:
            log.error("Unable to send data, no available transport!")
            return
        log.debug("Sending data: %s", body)
        data = body.encode(protocol.CHARSET)
        if getattr(protocol, "_include_headers", True):
            header = (
                f"Content-Length: {len(data)}\r\n"
                f"Content-Type: {protocol.CONTENT_TYPE}; charset={protocol.CHARSET}\r\n\r\n"
            )
            data = header.encode("ascii") + data
        try:
            result = writer.write(data)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except BrokenPipeError:
            log.exception("Error sending data. BrokenPipeError", exc_info=True)
            raise
        except Exception as error:
            log.exception("Error sending data", exc_info=True)
            self._report_server_error(error, JsonRpcInternalError)

    # -- settings and the relay connection ---------------------------------------------------

    def configure(self) -> SidecarSettings:
        return merge_settings(self.init_options, self.configuration)

    async def join(self, settings: SidecarSettings) -> dict[str, Any]:
        """Connect to the relay named by ``settings`` (leaving any current session)."""
        if not settings.complete:
            raise RelayError(
                "NOT_CONFIGURED",
                "no relay to join: set collab.relayUrl and collab.token, or give an invite link",
            )
        await self.leave()
        self.settings = settings
        self.view = SessionView()
        self._forget_renderings()
        self.relay = RelayClient(
            settings.relay_url or "",
            settings.token or "",
            session_id=settings.session_id,
            name=settings.name,
            kind=settings.kind,
            on_frame=self.on_frame,
            on_state=self.on_state,
        )
        try:
            await self.relay.start()
        except RelayError as error:
            self.relay = None
            self.show(_advice(error), types.MessageType.Error)
            raise
        return self.state_payload()

    async def leave(self) -> None:
        relay, self.relay = self.relay, None
        if relay is not None:
            await relay.close(leave=True)
        self.view = SessionView()
        self._forget_renderings()
        self.pending_comments.clear()
        self.following = None
        self.refresh(Changes(files=set(self._published_files()), participants=True, session=True))

    def on_state(self, state: ClientState, detail: str | None) -> None:
        if state is ClientState.OFFLINE and detail and self.relay is not None:
            self.show(_advice_text(detail), types.MessageType.Error)
        if state is ClientState.RECONNECTING and not self._warned_unreachable:
            self._warned_unreachable = True
            self.show(
                f"collab: cannot reach the relay ({detail}); retrying in the background",
                types.MessageType.Warning,
            )
        if state is ClientState.CONNECTED:
            self._warned_unreachable = False
        self.notify("collab/sessionState", self.state_payload(detail))

    def state_payload(self, detail: str | None = None) -> dict[str, Any]:
        session = self.view.session
        relay = self.relay
        return {
            "state": relay.state.value if relay else ClientState.OFFLINE.value,
            "detail": detail,
            "sessionId": session.id if session else None,
            "title": session.title if session else None,
            "status": session.status.value if session else None,
            "role": self.view.role.value if self.view.role else None,
            "you": self.view.my_id,
            "tokenCount": session.token_count if session else None,
            "healthScore": session.health_score if session else None,
            "participantCount": sum(1 for p in self.view.participants.values() if p.online),
            "pendingCount": len(relay.pending_ids()) if relay else 0,
            "following": self.following,
            # Given once an invite is redeemed: rejoin with it (invites are often single-use).
            "personalToken": relay.token if relay and relay.token != self.settings.token else None,
            "relayDegraded": self.view.unavailable,
        }

    # -- frames from the relay -------------------------------------------------------------

    def on_frame(self, frame: dict[str, Any]) -> None:
        try:
            changes = self.view.apply(frame)
        except ValueError:
            log.warning("ignored a relay frame that does not validate: %s", frame.get("type"))
            return
        self.refresh(changes)
        if changes.reset:
            self.spawn(self.load_comments())
        if frame.get("type") == "service_status":
            self._announce_service(frame)

    def _announce_service(self, frame: dict[str, Any]) -> None:
        if frame.get("available"):
            self.show("collab: the relay stores chat and comments again")
        else:
            self.show(
                f"collab: the relay cannot store chat or comments right now "
                f"({frame.get('reason') or 'unavailable'}); they are refused until it recovers",
                types.MessageType.Warning,
            )

    async def load_comments(self) -> None:
        """Every comment thread of the session, not only those in the recent history."""
        relay = self.relay
        if relay is None:
            return
        comments = await relay.fetch_all_comments()
        if relay is self.relay:
            messages = [Message.model_validate(m) for m in comments]
            # Rendered once, not once a page: each refresh re-renders every file.
            self.refresh(self.view.add_history(messages))
            # The session's history is long-lived: keep it out of the cyclic collector's
            # full collections (each one walks every object, ~50 ms at 1,000 threads).
            gc.collect()
            gc.freeze()

    def refresh(self, changes: Changes) -> None:
        for file in changes.files:
            self._reanchor_new_threads(file)
            self.publish(file)
            self.send_threads(file)
        if changes.cursor_files:
            self.publish_cursors(changes.cursor_files)
        if changes.participants:
            self.notify(
                "collab/participants", {"participants": render.participants_payload(self.view)}
            )
        if changes.session:
            self.notify("collab/sessionState", self.state_payload())
        for kind, payload in changes.chat:
            key = "messages" if kind == "history" else "message"
            self.notify("collab/chat", {"kind": kind, key: payload.get("messages", payload)})
        if changes.mention is not None:
            self.notify("collab/chat", {"kind": "mention", "mention": changes.mention})
        if self.following is not None and self.following in changes.moved:
            self.send_follow()
        followed = self.view.participants.get(self.following or "")
        if self.following is not None and (followed is None or not followed.online):
            self.following = None  # they left: nothing to follow any more
            self.notify("collab/sessionState", self.state_payload())

    # -- comments as diagnostics ------------------------------------------------------------

    def threads_for(self, file: str) -> list[Thread]:
        pending = [t for t in self.pending_comments.values() if t.file == file]
        return self.view.threads_in(file) + pending

    def _reanchor_new_threads(self, file: str) -> None:
        for document in self.documents.values():
            if document.file != file:
                continue
            for thread in self.threads_for(file):
                if thread.id not in document.anchors:
                    document.anchors[thread.id] = _anchor_on_open(
                        thread, document.lines, document.index
                    )

    def _forget_renderings(self) -> None:
        self._diagnostic_json.clear()
        self._thread_json.clear()

    def publish(self, file: str) -> None:
        """Every open thread of ``file`` as diagnostics: always the full list (LSP replaces
        a file's diagnostics with each publish), re-rendered only where a thread changed."""
        document = next((d for d in self.documents.values() if d.file == file), None)
        uri = document.uri if document else self.files.uri(file)
        if uri is None:
            return
        lines = document.lines if document else (self.files.read_lines(file) or [""])
        anchors = document.anchors if document else {}
        found = render.diagnostics_json(
            self._diagnostic_json.setdefault(file, render.JsonCache()),
            self.view,
            self.threads_for(file),
            anchors,
            lines,
            set(self.pending_comments),
            self.encoding,
        )
        if not found and uri not in self._published:
            return
        self.notify_json(
            types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
            f'{{"uri": {json.dumps(uri)}, "diagnostics": [{", ".join(found)}]}}',
        )
        if found:
            self._published.add(uri)
        else:
            self._published.discard(uri)

    def thread_payload(self, thread: Thread) -> dict[str, Any]:
        document = next((d for d in self.documents.values() if d.file == thread.file), None)
        anchor = document.anchors.get(thread.id) if document else None
        comments = [thread.root, *thread.live_replies()]
        return {
            "threadId": thread.id,
            "file": thread.file,
            "uri": self.files.uri(thread.file),
            "line": thread.root.line,
            "endLine": thread.root.end_line or thread.root.line,
            "currentLine": anchor.line if anchor else None,
            "outdated": anchor.outdated if anchor else False,
            "resolved": thread.root.resolved,
            "pending": thread.id in self.pending_comments,
            "comments": [message.model_dump(mode="json") for message in comments],
        }

    def send_threads(self, file: str) -> None:
        """Every thread of a file (resolved ones too), for editors that draw them natively.

        Each thread's entry is :meth:`thread_payload`, kept as JSON text until the thread,
        its anchor or its pending state changes."""
        document = next((d for d in self.documents.values() if d.file == file), None)
        uri = self.files.uri(file)
        pending = self.pending_comments

        def inputs(thread: Thread) -> tuple[tuple[object, ...], tuple[Any, ...]]:
            anchor = document.anchors.get(thread.id) if document else None
            messages = (thread.root, *thread.live_replies())
            return messages, (thread.file, uri, anchor, thread.id in pending)

        cache = self._thread_json.setdefault(file, render.JsonCache())
        threads = cache.render(self.threads_for(file), inputs, self.thread_payload)
        self.notify_json(
            "collab/threads",
            f'{{"file": {json.dumps(file)}, "uri": {json.dumps(uri)}, '
            f'"threads": [{", ".join(threads)}]}}',
        )

    def _published_files(self) -> list[str]:
        files = []
        for uri in self._published:
            file = self.files.relative(uri)
            if file is not None:
                files.append(file)
        return files

    # -- remote cursors -------------------------------------------------------------------

    def cursors_in(self, document: OpenDocument) -> list[dict[str, Any]]:
        cursors = []
        for participant in self.view.participants.values():
            presence = participant.presence
            if participant.user_id == self.view.my_id or not participant.online:
                continue
            if presence is None or presence.cursor is None or presence.cursor.file != document.file:
                continue
            offset = document.cursor_offsets.get(participant.user_id, 0)
            payload = render.cursor_payload(participant, document.lines, self.encoding, offset)
            if payload is not None:
                cursors.append(payload)
        return cursors

    def publish_cursors(self, files: set[str]) -> None:
        touched = False
        for document in self.documents.values():
            if document.file in files:
                touched = True
                document.cursor_offsets.clear()
                self.notify(
                    "collab/remoteCursors",
                    {
                        "uri": document.uri,
                        "file": document.file,
                        "cursors": self.cursors_in(document),
                    },
                )
        if touched:
            self.refresh_inlay_hints()

    def send_cursors(self, document: OpenDocument) -> None:
        payload = {"uri": document.uri, "file": document.file, "cursors": self.cursors_in(document)}
        self.notify("collab/remoteCursors", payload)

    def refresh_inlay_hints(self) -> None:
        """Ask the editor to re-pull inlay hints: at most once per cursor interval (50 ms).

        Every refresh is a request the editor answers (and VS Code then pulls hints for
        every visible editor); one per presence update of everyone in the file was a
        quarter of the sidecar's CPU at 10 people typing. The first change after a quiet
        interval is refreshed at once, and the last change of a burst always is.
        """
        capabilities = self.client_capabilities.workspace
        inlay = capabilities.inlay_hint if capabilities else None
        if inlay is None or not inlay.refresh_support or self._inlay_timer is not None:
            return
        due = self._last_inlay_refresh + limits.CURSOR_INTERVAL_SECONDS
        delay = max(0.0, due - time.monotonic())
        self._inlay_timer = asyncio.get_running_loop().call_later(delay, self._send_inlay_refresh)

    def _send_inlay_refresh(self) -> None:
        self._inlay_timer = None
        self._last_inlay_refresh = time.monotonic()
        self.workspace_inlay_hint_refresh(None)

    # -- follow mode ---------------------------------------------------------------------

    def send_follow(self) -> None:
        target = self.view.participants.get(self.following or "")
        if target is None or target.presence is None:
            return
        presence = target.presence
        if presence.viewport is not None:
            file, start, end = (
                presence.viewport.file,
                presence.viewport.start_line,
                presence.viewport.end_line,
            )
        elif presence.cursor is not None:
            file, start, end = presence.cursor.file, presence.cursor.line, presence.cursor.line
        else:
            return
        cursor = presence.cursor if presence.cursor and presence.cursor.file == file else None
        self.notify(
            "collab/follow",
            {
                "userId": target.user_id,
                "name": target.username,
                "file": file,
                "uri": self.files.uri(file),
                "line": cursor.line if cursor else start,
                "range": {
                    "start": {"line": start - 1, "character": 0},
                    "end": {"line": end - 1, "character": 0},
                },
            },
        )

    # -- editor -> relay: cursor, viewport, status --------------------------------------------

    def local_cursor(self, uri: str, line: int, character: int, selections: list[Any]) -> None:
        document = self.documents.get(uri)
        if document is None or self.relay is None:
            return
        data: dict[str, Any] = {
            "file": document.file,
            **self._wire_position(document, line, character),
        }
        if selections:
            first = selections[0]
            data["selection"] = {
                "anchor": self._wire_position(document, *first[0]),
                "head": self._wire_position(document, *first[1]),
            }
        self._cursor_frame = {"type": "cursor_update", "data": data}
        self._schedule_cursor()

    def _wire_position(self, document: OpenDocument, line: int, character: int) -> dict[str, int]:
        lines = document.lines
        text = lines[line] if 0 <= line < len(lines) else ""
        column = lsp_character_to_column(text, character, self.encoding)
        return {"line": max(line, 0) + 1, "column": column}

    def _schedule_cursor(self) -> None:
        if self._cursor_timer is not None:
            return
        due = self._last_cursor_sent + limits.CURSOR_INTERVAL_SECONDS
        delay = max(0.0, due - time.monotonic())
        self._cursor_timer = asyncio.get_running_loop().call_later(delay, self._flush_cursor)

    def _flush_cursor(self) -> None:
        self._cursor_timer = None
        frame, self._cursor_frame = self._cursor_frame, None
        if frame is None or self.relay is None:
            return
        self._last_cursor_sent = time.monotonic()
        self.spawn(self.relay.send_presence(frame))

    def local_presence(self, **fields: Any) -> None:
        if self.relay is not None:
            self.spawn(self.relay.send_presence({"type": "presence_update", **fields}))

    def viewport(self, uri: str, start_line: int, end_line: int) -> None:
        document = self.documents.get(uri)
        if document is None:
            return
        viewport = {"file": document.file, "start_line": start_line + 1, "end_line": end_line + 1}
        self.local_presence(viewport=viewport)

    # -- documents ----------------------------------------------------------------------

    def opened(self, uri: str, text: str) -> None:
        file = self.files.relative(uri)
        if file is None:
            return  # outside the workspace: never shared
        document = OpenDocument(uri, file, text)
        for thread in self.threads_for(file):
            document.anchors[thread.id] = _anchor_on_open(thread, document.lines, document.index)
        self.documents[uri] = document
        self.publish(file)
        self.send_threads(file)
        self.publish_cursors({file})

    def changed(self, uri: str, changes: list[Any], new_text: str) -> None:
        document = self.documents.get(uri)
        if document is None:
            return
        edits = [_line_edit(change) for change in changes]
        if any(edit is None for edit in edits):
            mapping = map_lines(document.text, new_text)
            move = mapping
        else:
            concrete = [edit for edit in edits if edit is not None]

            def move(line: int) -> int:
                for edit in concrete:
                    line = shift_line(line, edit)
                return line

        document.anchors = {
            key: render.Anchor(move(a.line), move(a.end_line), a.outdated)
            for key, a in document.anchors.items()
        }
        self._shift_cursors(document, move)
        document.set_text(new_text)
        self.publish(document.file)
        self.send_cursors(document)

    def _shift_cursors(self, document: OpenDocument, move: Any) -> None:
        for participant in self.view.participants.values():
            presence = participant.presence
            if presence is None or presence.cursor is None or presence.cursor.file != document.file:
                continue
            offset = document.cursor_offsets.get(participant.user_id, 0)
            line0 = presence.cursor.line - 1 + offset
            document.cursor_offsets[participant.user_id] = move(line0) - (presence.cursor.line - 1)

    def closed(self, uri: str) -> None:
        self.documents.pop(uri, None)


def _anchor_on_open(
    thread: Thread, lines: list[str], index: SnippetIndex | None = None
) -> render.Anchor:
    stored = (thread.root.line or 1) - 1
    span = (thread.root.end_line or thread.root.line or 1) - (thread.root.line or 1)
    line, outdated = reanchor(lines, thread.root.code_snippet, stored, index)
    return render.Anchor(line, line + span, outdated)


def _line_edit(change: Any) -> LineEdit | None:
    change_range = getattr(change, "range", None)
    if change_range is None:
        return None  # a full-text change: lines are mapped by diffing
    return LineEdit(
        change_range.start.line,
        change_range.start.character,
        change_range.end.line,
        change_range.end.character,
        change.text,
    )


def _advice(error: RelayError) -> str:
    return _advice_text(str(error))


def _advice_text(detail: str) -> str:
    hints = {
        "INVALID_TOKEN": "the token was refused: ask the host for a new invite",
        "TOKEN_EXPIRED": "the token has expired: ask the host for a new invite",
        "AUTH_REQUIRED": "no token: set collab.token or join with an invite link",
        "SESSION_NOT_FOUND": "that session does not exist on this relay",
        "SESSION_ENDED": "the host ended this session",
        "REMOVED": "you were removed from this session",
        "INVITE_INVALID": "the invite cannot be used: ask the host for a new one",
        "PERMISSION_DENIED": "you are not a participant: ask the host for an invite",
    }
    for code, hint in hints.items():
        if detail.startswith(code):
            return f"collab: {hint} ({detail})"
    return f"collab: {detail}"
