"""``collab-lsp``: the language server editors launch over stdio."""

from __future__ import annotations

import logging
import os
import sys

from collab_lsp.logs import install_token_mask
from collab_lsp.sidecar.features import build_server
from collab_lsp.sidecar.stdio import serve_stdio

__all__ = ["main"]


def main() -> int:
    # stdout is the LSP channel: logs go to stderr (or COLLAB_LOG_FILE), never stdout.
    log_file = os.environ.get("COLLAB_LOG_FILE")
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    logging.basicConfig(
        level=os.environ.get("COLLAB_LOG_LEVEL", "INFO").upper(),
        handlers=[handler],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_token_mask(handler)
    # pygls logs whole message bodies at INFO; keep them for DEBUG only.
    logging.getLogger("pygls").setLevel(
        logging.DEBUG
        if os.environ.get("COLLAB_LOG_LEVEL", "").upper() == "DEBUG"
        else logging.WARNING
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    serve_stdio(build_server())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
