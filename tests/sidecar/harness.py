"""Drive real `collab-lsp` processes with pytest-lsp's client, as an editor would.

Every ``collab/*`` notification a sidecar sends is recorded; tests wait for one
that satisfies a predicate (an event, never a sleep).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.protocol import default_converter
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient, client_capabilities

from collab_lsp.sidecar.plain import to_plain

TIMEOUT = 15.0
_COLLAB_NOTIFICATIONS = (
    "collab/remoteCursors",
    "collab/participants",
    "collab/chat",
    "collab/sessionState",
    "collab/follow",
    "collab/threads",
)
EDITORS = {"vscode": "visual-studio-code", "neovim": "neovim"}


class Sidecar:
    """One editor's sidecar: a real subprocess speaking LSP over stdio."""

    def __init__(self, root: Path, editor: str = "vscode") -> None:
        self.root = root
        self.editor = editor
        # Not make_test_lsp_client(): its built-in handlers would take these methods.
        self.client = LanguageClient(converter_factory=default_converter)
        self.received: list[tuple[str, Any]] = []
        self.inlay_refreshes = 0
        self._changed = asyncio.Condition()
        self._versions: dict[str, int] = {}
        for method in (
            *_COLLAB_NOTIFICATIONS,
            types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
            types.WINDOW_SHOW_MESSAGE,
            types.WINDOW_LOG_MESSAGE,
        ):
            self.client.feature(method)(self._recorder(method))

        def inlay_refresh(client: LanguageClient, params: Any) -> None:
            self.inlay_refreshes += 1

        self.client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)(inlay_refresh)

    def _recorder(self, method: str) -> Callable[..., None]:
        def record(client: LanguageClient, params: Any) -> None:
            if method == types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS:
                self.client.diagnostics[params.uri] = params.diagnostics
            self.received.append(
                (method, to_plain(params) if method.startswith("collab/") else params)
            )
            asyncio.get_running_loop().create_task(self._notify())

        return record

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def start(self, **init_options: Any) -> None:
        await self.client.start_io(sys.executable, "-m", "collab_lsp.sidecar")
        capabilities = client_capabilities(EDITORS[self.editor])
        await self.client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities,
                root_uri=from_fs_path(str(self.root)),
                initialization_options=init_options,
            )
        )

    async def stop(self) -> None:
        await self.client.shutdown_session()
        await self.client.stop()

    def mark(self) -> int:
        """A point in the notification log: pass it as ``since`` to ignore what came before."""
        return len(self.received)

    async def wait(
        self,
        method: str,
        predicate: Callable[[Any], bool] = lambda params: True,
        since: int = 0,
    ) -> Any:
        """The first notification of ``method`` (after ``since``) satisfying ``predicate``."""
        async with asyncio.timeout(TIMEOUT), self._changed:
            while True:
                for got, params in self.received[since:]:
                    if got == method and predicate(params):
                        return params
                await self._changed.wait()

    def uri(self, relative: str) -> str:
        uri = from_fs_path(str(self.root / relative))
        assert uri is not None
        return uri

    def open(self, relative: str, text: str | None = None) -> str:
        path = self.root / relative
        if text is None:
            text = path.read_text(encoding="utf-8")
        uri = self.uri(relative)
        self._versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        return uri

    def edit(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self._versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self._versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(*start), types.Position(*end)),
                        text=text,
                    )
                ],
            )
        )

    def cursor(self, uri: str, line: int, character: int) -> None:
        position = {"line": line, "character": character}
        self.client.protocol.notify(
            "collab/cursor",
            {"uri": uri, "position": position, "selections": []},
        )

    async def command(self, name: str, **arguments: Any) -> Any:
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=f"collab.server.{name}", arguments=[arguments])
        )

    def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        return list(self.client.diagnostics.get(uri, []))

    async def wait_diagnostics(
        self, uri: str, predicate: Callable[[list[types.Diagnostic]], bool], since: int = 0
    ) -> list[types.Diagnostic]:
        params = await self.wait(
            types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
            lambda p: p.uri == uri and predicate(list(p.diagnostics)),
            since,
        )
        return list(params.diagnostics)
