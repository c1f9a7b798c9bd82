"""The benchmark's minimal reference: a bare pygls server that publishes N precomputed
diagnostics on every ``textDocument/didOpen``.

Run by ``bench/sidecar_footprint.py`` exactly as the sidecar is run (a subprocess over
stdio, driven by the same client), so the difference between the two is what the sidecar
itself costs. ``initializationOptions``: ``count`` (how many diagnostics), ``lines`` (the
document's line count, to spread them), ``messageChars`` (the length of each message).
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

server = LanguageServer("bench-reference", "1")
_diagnostics: list[types.Diagnostic] = []


@server.feature(types.INITIALIZE)
def initialize(ls: LanguageServer, params: types.InitializeParams) -> None:
    options: Any = params.initialization_options or {}
    count = int(options.get("count", 0))
    lines = max(int(options.get("lines", 1)), 1)
    filler = "x" * max(int(options.get("messageChars", 40)) - 20, 0)
    _diagnostics[:] = [
        types.Diagnostic(
            range=types.Range(types.Position(i % lines, 0), types.Position(i % lines, 40)),
            message=f"person-{i % 50:02d}: {filler} {i}",
            severity=types.DiagnosticSeverity.Information,
            source="collab",
            code=f"m{i:015d}",
            data={"threadId": f"m{i:015d}", "outdated": False},
        )
        for i in range(count)
    ]


@server.feature(types.INITIALIZED)
def initialized(ls: LanguageServer, params: types.InitializedParams) -> None:
    # The sidecar has published diagnostics (from disk) before any didOpen in the benchmark;
    # publish once here too, to another URI, so both have converted a Diagnostic before.
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri="file:///bench-warmup", diagnostics=_diagnostics)
    )


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=_diagnostics)
    )


if __name__ == "__main__":
    server.start_io()
