"""Wiring: LSP features and ``collab/*`` notifications onto a :class:`CollabServer`."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, TypeVar

from lsprotocol import types
from pydantic import BaseModel, ValidationError
from pygls.uris import to_fs_path

from collab_lsp.client import RelayError
from collab_lsp.sidecar import render
from collab_lsp.sidecar.commands import COMMANDS, Command
from collab_lsp.sidecar.editor_messages import (
    CursorNotification,
    Position,
    StatusNotification,
    ViewportNotification,
)
from collab_lsp.sidecar.plain import to_plain
from collab_lsp.sidecar.server import CollabServer
from collab_lsp.sidecar.settings import SettingsError
from collab_lsp.sidecar.workspace_files import WorkspaceFiles, find_root

__all__ = ["build_server"]

log = logging.getLogger(__name__)


def build_server() -> CollabServer:
    server = CollabServer()
    _lifecycle(server)
    _documents(server)
    _rendering(server)
    _editor_notifications(server)
    for name, command in COMMANDS.items():
        server.command(name)(_command(server, command))
    return server


def _command(server: CollabServer, command: Command) -> Any:
    async def run(*arguments: Any) -> dict[str, Any]:
        # pygls passes the command's arguments as positional parameters.
        return await command(server, list(arguments))

    return run


def _lifecycle(server: CollabServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: CollabServer, params: types.InitializeParams) -> None:
        options = to_plain(params.initialization_options) or {}
        ls.init_options = dict(options) if isinstance(options, dict) else {}
        root = ls.workspace.root_path
        if root is None and params.workspace_folders:
            root = to_fs_path(params.workspace_folders[0].uri)
        ls.files = WorkspaceFiles(find_root(root))

    @server.feature(types.INITIALIZED)
    async def initialized(ls: CollabServer, params: types.InitializedParams) -> None:
        try:
            settings = ls.configure()
        except SettingsError as error:
            ls.show(f"collab: {error}", types.MessageType.Error)
            return
        if not settings.complete:
            ls.notify("collab/sessionState", ls.state_payload("not configured"))
            return
        with contextlib.suppress(RelayError):  # join() tells the user why
            await ls.join(settings)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def configuration(ls: CollabServer, params: types.DidChangeConfigurationParams) -> None:
        settings_value = to_plain(params.settings) or {}
        ls.configuration = dict(settings_value) if isinstance(settings_value, dict) else {}
        try:
            settings = ls.configure()
        except SettingsError as error:
            ls.show(f"collab: {error}", types.MessageType.Error)
            return
        changed = (settings.relay_url, settings.token) != (ls.settings.relay_url, ls.settings.token)
        if settings.complete and (changed or ls.relay is None):
            with contextlib.suppress(RelayError):  # join() tells the user why
                await ls.join(settings)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CollabServer, params: Any) -> None:
        await ls.leave()


def _documents(server: CollabServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CollabServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.opened(params.text_document.uri, params.text_document.text)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CollabServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        ls.changed(uri, list(params.content_changes), text)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CollabServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)


def _rendering(server: CollabServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: CollabServer, params: types.HoverParams) -> types.Hover | None:
        return render.hover(
            ls.view, _threads_at(ls, params.text_document.uri, params.position.line)
        )

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: CollabServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        document = ls.documents.get(params.text_document.uri)
        if document is None:
            return []
        return render.code_lenses(ls.threads_for(document.file), document.anchors)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
    )
    def code_action(ls: CollabServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        threads = _threads_at(ls, uri, params.range.start.line, params.range.end.line)
        return render.code_actions(ls.view, threads)

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
    def inlay_hint(ls: CollabServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        document = ls.documents.get(params.text_document.uri)
        if document is None:
            return []
        start, end = params.range.start.line, params.range.end.line
        cursors = [c for c in ls.cursors_in(document) if start <= c["position"]["line"] <= end]
        return render.inlay_hints(cursors)


def _threads_at(ls: CollabServer, uri: str, first: int, last: int | None = None) -> list[Any]:
    document = ls.documents.get(uri)
    if document is None:
        return []
    last = first if last is None else last
    found = []
    for thread in ls.threads_for(document.file):
        anchor = document.anchors.get(thread.id)
        if anchor is None or not thread.open:
            continue
        if anchor.line <= last and first <= max(anchor.end_line, anchor.line):
            found.append(thread)
    return found


def _editor_notifications(server: CollabServer) -> None:
    @server.feature("collab/cursor")
    def cursor(ls: CollabServer, params: Any) -> None:
        message = _validated(ls, "collab/cursor", CursorNotification, params)
        if message is None:
            return
        selections = [
            (_pair(s.anchor), _pair(s.active)) for s in message.selections if s.anchor != s.active
        ]
        position = message.position
        ls.local_cursor(message.uri, position.line, position.character, selections)

    @server.feature("collab/viewport")
    def viewport(ls: CollabServer, params: Any) -> None:
        message = _validated(ls, "collab/viewport", ViewportNotification, params)
        if message is not None:
            ls.viewport(message.uri, message.range.start.line, message.range.end.line)

    @server.feature("collab/status")
    def status(ls: CollabServer, params: Any) -> None:
        message = _validated(ls, "collab/status", StatusNotification, params)
        if message is not None:
            ls.local_presence(status=message.status)


M = TypeVar("M", bound=BaseModel)


def _pair(position: Position) -> tuple[int, int]:
    return position.line, position.character


def _validated(ls: CollabServer, method: str, model: type[M], params: Any) -> M | None:
    """A bad notification is logged to the editor's LSP log, never raised into a popup."""
    try:
        return model.model_validate(to_plain(params))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "params"
        ls.window_log_message(
            types.LogMessageParams(
                type=types.MessageType.Warning,
                message=f"collab: ignored {method}: {where}: {error['msg']}",
            )
        )
        return None
