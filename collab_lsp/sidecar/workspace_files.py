"""File identity: URIs in the editor <-> workspace-relative paths on the wire.

The root is the git top level above the LSP root (so two checkouts in different
folders agree), else the LSP root. Files outside the root are never shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from collab_lsp.protocol.coordinates import normalize_relative_path

__all__ = ["WorkspaceFiles", "find_root", "git_blob_id", "git_head"]


def find_root(lsp_root: str | None) -> Path | None:
    if not lsp_root:
        return None
    start = Path(lsp_root).resolve()
    try:
        result = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return start
    if result.returncode == 0 and result.stdout.strip():
        return Path(result.stdout.strip()).resolve()
    return start


class WorkspaceFiles:
    def __init__(self, root: Path | None) -> None:
        self.root = root

    def relative(self, uri: str) -> str | None:
        """The shared name of a document, or None if it is not inside the workspace."""
        if self.root is None:
            return None
        path = to_fs_path(uri)
        if path is None:
            return None
        try:
            relative = Path(path).resolve().relative_to(self.root)
        except ValueError:
            return None
        try:
            return normalize_relative_path(relative.as_posix())
        except ValueError:
            return None

    def uri(self, relative: str) -> str | None:
        if self.root is None:
            return None
        uri: str | None = from_fs_path(str(self.root / relative))
        return uri

    def read_lines(self, relative: str) -> list[str] | None:
        """A file's lines from disk, for files the editor has not opened."""
        if self.root is None:
            return None
        try:
            return (self.root / relative).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None


def git_blob_id(text: str) -> str:
    """The id git gives this content as a blob (what ``git hash-object`` prints)."""
    data = text.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


async def git_head(root: Path | None) -> str | None:
    """The commit checked out at ``root``, or None outside a git repository."""
    if root is None:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            "git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 5)
    except (OSError, TimeoutError):
        return None
    head = output.decode().strip()
    return head if process.returncode == 0 and head else None
