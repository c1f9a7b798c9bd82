"""The sidecar's stdio loop: stdin read on the event loop, not through a worker thread.

pygls's ``start_io`` reads stdin with ``run_in_executor``: each header line and each body
is a round trip through a worker thread, about four per message. That costs CPU for every
editor message, and on a busy machine each thread wake-up can add milliseconds before a
``collab/cursor`` even reaches the sidecar (docs/benchmarks.md, "Editor to editor").

Editors start the sidecar with pipes (Node and libuv, hence VS Code and Neovim, use Unix
socket pairs; others use FIFOs): those are read with an asyncio pipe transport. Anything
else (a regular file, a terminal, one socket for both directions, Windows) keeps pygls's
own reader. Writing is pygls's as before: synchronous writes to stdout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import threading
from typing import BinaryIO

from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer

__all__ = ["serve_stdio", "stdin_on_event_loop"]

log = logging.getLogger(__name__)


def stdin_on_event_loop(stdin: BinaryIO, stdout: BinaryIO) -> bool:
    """Whether ``stdin`` can be read by the event loop without disturbing ``stdout``.

    The loop puts stdin in non-blocking mode; that must not reach stdout (pygls writes it
    with blocking writes), so the two must be different pipes or sockets.
    """
    if os.name != "posix":
        return False
    try:
        read, write = os.fstat(stdin.fileno()), os.fstat(stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    pipe = stat.S_ISFIFO(read.st_mode) or stat.S_ISSOCK(read.st_mode)
    return pipe and not os.path.samestat(read, write)


def serve_stdio(
    server: LanguageServer, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
) -> None:
    """Serve LSP over stdio until the editor exits or closes stdin (like ``start_io``)."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    if not stdin_on_event_loop(stdin, stdout):
        server.start_io(stdin, stdout)
        return
    stop = threading.Event()
    server._stop_event = stop  # what pygls's shutdown() sets to end the loop
    server.protocol.set_writer(StdoutWriter(stdout))
    try:
        asyncio.run(_serve(server, stop, stdin))
    except BrokenPipeError:
        log.error("the connection to the editor is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass  # `exit` from the editor ends the loop with SystemExit, as in pygls
    finally:
        server.shutdown()  # type: ignore[no-untyped-call]


async def _serve(server: LanguageServer, stop: threading.Event, stdin: BinaryIO) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    try:
        await run_async(
            stop_event=stop,
            reader=reader,
            protocol=server.protocol,
            logger=log,
            error_handler=server.report_server_error,
        )
    except asyncio.IncompleteReadError:
        log.info("stdin ended in the middle of a message; shutting down")
